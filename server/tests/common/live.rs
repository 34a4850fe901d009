//! A real server on a real port (port 0) and a WebSocket test client that speaks the gateway protocol.

use app::model::{
    gateway::{ClientFrame, PROTOCOL_VERSION, ResumePoint, ServerFrame},
    messages::{Ciphertext, MessageKind},
};
use app::web::cookies::{ACCESS_COOKIE, REFRESH_COOKIE};
use domain::Core;
use futures_util::{SinkExt, StreamExt};
use std::{net::SocketAddr, time::Duration};
use tokio::{net::TcpStream, task::JoinHandle};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};
use uuid::Uuid;

/// How long a test waits for a frame it expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Core,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(state: Core) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = server::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, state, task }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real session for `user` (no password hashing), as a `Cookie` header value.
pub async fn cookies_for(state: &Core, user: Uuid) -> String {
    let issued = domain::session::start(state, user, None).await.unwrap();
    format!("{ACCESS_COOKIE}={}; {REFRESH_COOKIE}={}", issued.access, issued.refresh)
}

/// A signed-in HTTP client (server functions) carrying a `Cookie` header value from [`cookies_for`].
pub fn client_with(state: &Core, cookie: &str) -> super::Client {
    let mut client = super::Client::new(state);
    for pair in cookie.split("; ") {
        let (name, value) = pair.split_once('=').expect("name=value");
        client.cookies.push((name.into(), value.into()));
    }
    client
}

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
        let mut ws = Self::open(addr, &[("cookie", cookie)]).await.expect("upgrade");
        let channels = ws.hello(device, resume).await;
        (ws, channels)
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
        ciphertext: Ciphertext(bytes.to_vec()),
    }
}
