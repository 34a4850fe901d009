//! A `/ws` client that speaks the gateway protocol, for tests and the benchmark.

use futures_util::{SinkExt, StreamExt};
use protocol::model::{
    gateway::{ClientFrame, PROTOCOL_VERSION, ResumePoint, ServerFrame},
    messages::{Ciphertext, MessageKind},
};
use std::{net::SocketAddr, time::Duration};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};
use uuid::Uuid;

/// How long a test waits for a frame it expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// What the socket produced next. (Short-lived test values: boxing the frame would only make matching clumsy.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Got {
    Frame(ServerFrame),
    Closed { code: u16, reason: String },
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Opens `/ws` with extra request headers (`Cookie`, `Authorization`, `Origin`).
    pub async fn open(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<Self, tungstenite::Error> {
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        for (name, value) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            req.headers_mut().insert(name, HeaderValue::from_str(value).unwrap());
        }
        let (stream, _) = connect_async(req).await?;
        Ok(Self { stream })
    }

    /// Opens `/ws` with session cookies and says hello; returns the socket and its `ready` channels.
    pub async fn connect(
        addr: SocketAddr,
        cookie: &str,
        device: Option<&str>,
        resume: Vec<ResumePoint>,
    ) -> (Self, Vec<Uuid>) {
        Self::try_connect(addr, cookie, device, resume).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Ws::connect`], reporting failure instead of panicking (for the benchmark).
    pub async fn try_connect(
        addr: SocketAddr,
        cookie: &str,
        device: Option<&str>,
        resume: Vec<ResumePoint>,
    ) -> Result<(Self, Vec<Uuid>), String> {
        let mut ws = Self::open(addr, &[("cookie", cookie)]).await.map_err(|e| format!("upgrade: {e}"))?;
        let hello = ClientFrame::Hello { protocol: PROTOCOL_VERSION, device: device.map(str::to_owned), resume };
        let text = serde_json::to_string(&hello).map_err(|e| e.to_string())?;
        ws.stream.send(Message::text(text)).await.map_err(|e| format!("hello: {e}"))?;
        match ws.next(PATIENCE).await {
            Some(Got::Frame(ServerFrame::Ready { channels, .. })) => Ok((ws, channels)),
            other => Err(format!("expected ready, got {other:?}")),
        }
    }

    /// The underlying stream (to split it into a sink and a stream).
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.stream
    }

    pub async fn hello(&mut self, device: Option<&str>, resume: Vec<ResumePoint>) -> Vec<Uuid> {
        self.send(&ClientFrame::Hello { protocol: PROTOCOL_VERSION, device: device.map(str::to_owned), resume }).await;
        match self.recv().await {
            ServerFrame::Ready { channels, .. } => channels,
            other => panic!("expected ready, got {other:?}"),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        self.raw(Message::text(serde_json::to_string(frame).unwrap())).await;
    }

    pub async fn raw(&mut self, msg: Message) {
        self.stream.send(msg).await.expect("socket send");
    }

    /// The next frame or close within `within`; `None` if nothing came.
    pub async fn next(&mut self, within: Duration) -> Option<Got> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()?;
            return Some(match msg {
                Some(Ok(Message::Text(text))) => {
                    Got::Frame(serde_json::from_str(&text).unwrap_or_else(|e| panic!("unreadable frame {text}: {e}")))
                }
                Some(Ok(Message::Close(frame))) => Got::Closed {
                    code: frame.as_ref().map_or(1005, |f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
                Some(Err(_)) | None => Got::Closed { code: 1006, reason: "connection dropped".into() },
            });
        }
    }

    /// The next frame; panics on silence or close.
    pub async fn recv(&mut self) -> ServerFrame {
        match self.next(PATIENCE).await {
            Some(Got::Frame(f)) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame `pick` accepts, skipping others (presence, typing, …).
    pub async fn recv_where<T>(&mut self, mut pick: impl FnMut(ServerFrame) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Got::Frame(f)) => {
                    if let Some(t) = pick(f) {
                        return t;
                    }
                }
                other => panic!("expected a matching frame, got {other:?}"),
            }
        }
    }

    /// Every frame that arrives within `window` (the socket must stay open).
    pub async fn during(&mut self, window: Duration) -> Vec<ServerFrame> {
        let deadline = tokio::time::Instant::now() + window;
        let mut frames = vec![];
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                None => return frames,
                Some(Got::Frame(f)) => frames.push(f),
                Some(closed) => panic!("socket closed: {closed:?} after {frames:?}"),
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            match self.next(PATIENCE).await {
                Some(Got::Closed { code, reason }) => return (code, reason),
                Some(Got::Frame(_)) => continue,
                None => panic!("the socket stayed open"),
            }
        }
    }
}

/// A `send` frame with opaque bytes.
pub fn send_frame(channel_id: Uuid, client_txn: &str, bytes: &[u8]) -> ClientFrame {
    ClientFrame::Send {
        channel_id,
        device: "DEVICE1".into(),
        client_txn: client_txn.into(),
        kind: MessageKind::Text,
        reply_to: None,
        thread_id: None,
        ciphertext: Ciphertext(bytes.to_vec()),
    }
}
