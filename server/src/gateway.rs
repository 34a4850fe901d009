//! `/ws`: the real-time gateway. One task per socket: it authenticates the upgrade, waits for
//! `hello`, subscribes the socket to what its user may read (computed here, never asked for),
//! replays what a reconnecting client missed, then relays frames both ways until the socket, the
//! session or the token ends. The protocol's types live in `protocol::model::gateway`.
//!
//! Ordering: a channel's events carry gap-free sequence numbers. Live events of one channel can
//! arrive slightly out of order when two senders race; clients order by `seq`, and resume from the
//! highest sequence below which they have everything. Events replayed on resume come first and
//! live duplicates of them are skipped, so a resume has no gap and no duplicate.

use app::web::cookies::socket_token;
use axum::{
    extract::{
        Extension, State,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use domain::{
    Core,
    error::ServerError,
    keys_directory, messages, presence,
    realtime::{Close, Outbound, Registration},
    session::{self, Session, SocketAuth},
    spaces,
};
use entity::user;
use futures_util::{SinkExt, future::BoxFuture};
use protocol::{
    AppError,
    model::{
        gateway::{ClientFrame, ErrorCode, MAX_FRAME_BYTES, PROTOCOL_VERSION, Presence, ResumePoint, ServerFrame},
        messages::ChannelEvent,
    },
};
use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};
use uuid::Uuid;

/// The socket layer refuses messages above this outright (closing the socket); frames between
/// `MAX_FRAME_BYTES` and this get an error frame and the socket stays open.
const MAX_SOCKET_MESSAGE: usize = 2 * MAX_FRAME_BYTES;
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 2 * 1024;
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(25);
/// A socket that has sent nothing (not even a pong) for this long is closed.
const IDLE_LIMIT: Duration = Duration::from_secs(75);
/// How often an open socket checks that its session is still live. Revocation closes sockets at
/// once (a `Revoke` signal); this catches a session that simply ran out, without a reconnect every
/// time an access token expires.
const SESSION_CHECK_EVERY: Duration = Duration::from_secs(300);
/// A client that does not take a frame within this long is too slow; it reconnects and resumes.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const TYPING_EVERY: Duration = Duration::from_secs(3);
/// Queued frames written with one flush at most.
const WRITE_BATCH: usize = 64;
/// Frames per second a socket may send on average, and in a burst.
const FRAMES_PER_SECOND: f64 = 20.0;
const FRAME_BURST: f64 = 60.0;
/// A client sending this many unreadable frames is closed.
const MAX_BAD_FRAMES: u32 = 20;
/// Open sockets one account may have on one node: every device and tab of a person, with room to
/// spare; a stolen session or a runaway script cannot hold thousands.
const MAX_SOCKETS_PER_USER: usize = 32;
/// Replayed events are read from the database in pages of this many.
const REPLAY_PAGE: u32 = 500;

/// `GET /ws`: authenticates, then upgrades.
pub async fn upgrade(
    State(state): State<Core>,
    headers: HeaderMap,
    refreshed: Option<Extension<Session>>,
    ws: WebSocketUpgrade,
) -> Response {
    if !crate::http::origin_allowed(&state, &headers) {
        return (StatusCode::FORBIDDEN, "cross-origin socket refused").into_response();
    }
    let token = socket_token(&headers);
    let auth = match session::authenticate_socket(&state, token.as_deref(), refreshed.map(|e| e.0)).await {
        Ok(auth) => auth,
        Err(e) => return crate::http::error_response(AppError::from(e)),
    };
    // tungstenite reads in 128 KiB chunks by default: most of an idle socket's memory. Client frames
    // are small; a large one still arrives whole, over several reads.
    // Likewise, the write buffer keeps the capacity it ever reached: frames queued together go
    // out in writes of about this size, not in one large buffer kept for the socket's life.
    let ws = ws
        .max_message_size(MAX_SOCKET_MESSAGE)
        .max_frame_size(MAX_SOCKET_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    ws.on_upgrade(move |socket| async move {
        let user = auth.user.id;
        if let Err(e) = Connection::run(state, auth, socket).await {
            tracing::debug!(%user, reason = %e, "socket ended");
        }
    })
}

/// Why a socket task ended early (for the debug log; the client got a close frame when possible).
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("socket error or closed")]
    Socket,
    #[error("client too slow")]
    Slow,
    #[error("{0}")]
    Refused(&'static str),
}

struct Connection {
    state: Core,
    socket: WebSocket,
    user: user::Model,
    device: Option<String>,
    id: u64,
    /// Per channel, the highest sequence replayed from the database on resume: live copies are skipped.
    replayed: HashMap<Uuid, i64>,
    last_typing: HashMap<Uuid, Instant>,
    tokens: f64,
    refilled: Instant,
    bad_frames: u32,
    last_heard: Instant,
    /// Set by the hub when it dropped events for this socket.
    lagging: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What opening a socket leaves for the loop that serves it.
struct Opened {
    conn: Connection,
    rx: tokio::sync::mpsc::Receiver<Outbound>,
    closed: tokio::sync::watch::Receiver<Option<Close>>,
    session: Uuid,
    channels: Vec<Uuid>,
    snapshot: Vec<axum::body::Bytes>,
    resume: Vec<ResumePoint>,
}

impl Connection {
    /// The socket's whole life. An idle socket's task keeps only the serve loop's state: every
    /// larger step (opening, greeting, a client's frame, a resubscription, a session check) runs
    /// as a boxed future that exists while it runs, so thousands of idle sockets stay small.
    async fn run(state: Core, auth: SocketAuth, socket: WebSocket) -> Result<(), End> {
        let Opened { mut conn, rx, closed, session, channels, snapshot, resume } =
            Box::pin(Self::open(state, auth, socket)).await?;
        let mut ended = Box::pin(conn.greet(channels, snapshot, resume)).await;
        if ended.is_ok() {
            ended = conn.serve(rx, closed, session).await;
        }
        Box::pin(presence::disconnected(&conn.state, conn.id)).await;
        ended
    }

    /// Hello, the device check, subscriptions and registering with the hub.
    async fn open(state: Core, auth: SocketAuth, mut socket: WebSocket) -> Result<Opened, End> {
        let SocketAuth { user, session } = auth;
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
            Ok(Some(Ok(Message::Text(text)))) => ClientFrame::decode(&text),
            Ok(Some(Ok(_))) => Err((ErrorCode::BadFrame, "the first frame must be a text hello".into())),
            Ok(_) => return Err(End::Socket),
            Err(_) => return close(&mut socket, 4002, "no hello in time").await,
        };
        let (device, resume) = match hello {
            Ok(ClientFrame::Hello { protocol, device, resume }) if protocol == PROTOCOL_VERSION => (device, resume),
            Ok(ClientFrame::Hello { protocol, .. }) => {
                let message = format!("protocol {protocol} is not spoken here; this server speaks {PROTOCOL_VERSION}");
                send_frame(&mut socket, &error(ErrorCode::UnsupportedProtocol, message, None)).await?;
                return close(&mut socket, 4003, "unsupported protocol").await;
            }
            Ok(_) => {
                send_frame(&mut socket, &error(ErrorCode::BadFrame, "the first frame must be hello".into(), None))
                    .await?;
                return close(&mut socket, 4004, "expected hello").await;
            }
            Err((code, message)) => {
                send_frame(&mut socket, &error(code, message, None)).await?;
                return close(&mut socket, 4004, "expected hello").await;
            }
        };
        if let Some(d) = &device
            && let Err(e) = keys_directory::own_device(&state.db, user.id, d).await
        {
            let e = AppError::from(e);
            let message = format!("device {d:?} is not registered to you");
            send_frame(&mut socket, &error(code_of(&e), message, None)).await?;
            return close(&mut socket, 4004, "unknown device").await;
        }
        let subs = match spaces::subscriptions(&state.db, user.id).await {
            Ok(s) => s,
            Err(e) => return internal(&mut socket, e).await,
        };
        let communities: Vec<Uuid> = subs.communities.iter().copied().collect();
        let channels: Vec<Uuid> = subs.channels.keys().copied().collect();
        let registered =
            state.realtime.hub.register_within(MAX_SOCKETS_PER_USER, user.id, session, device.clone(), subs);
        let Some(Registration { id, rx, closed, presence: snapshot, lagging }) = registered else {
            let message = format!("at most {MAX_SOCKETS_PER_USER} open connections per account on this server");
            send_frame(&mut socket, &error(ErrorCode::RateLimited, message, None)).await?;
            return close(&mut socket, 4029, "too many connections").await;
        };
        let status = Presence::from_db(user.presence);
        let conn = Connection {
            state,
            socket,
            user,
            device,
            id,
            replayed: HashMap::new(),
            last_typing: HashMap::new(),
            tokens: FRAME_BURST,
            refilled: Instant::now(),
            bad_frames: 0,
            last_heard: Instant::now(),
            lagging,
        };
        presence::connected(&conn.state, conn.user.id, status, communities).await;
        Ok(Opened { conn, rx, closed, session, channels, snapshot, resume })
    }

    /// `ready`, who is online, the socket's own status, what a resuming client missed, and the
    /// to-device messages waiting for this device.
    async fn greet(
        &mut self,
        channels: Vec<Uuid>,
        snapshot: Vec<axum::body::Bytes>,
        resume: Vec<ResumePoint>,
    ) -> Result<(), End> {
        // The channels this socket was subscribed to are the ones the person may read.
        let unread = match messages::unread_counts_in(&self.state.db, self.user.id, &channels).await {
            Ok(u) => u,
            Err(e) => return internal(&mut self.socket, e).await,
        };
        self.send(&ServerFrame::Ready { protocol: PROTOCOL_VERSION, user_id: self.user.id, channels, unread }).await?;
        for presences in snapshot {
            self.write_json(presences).await?;
        }
        self.flush().await?;
        self.send(&ServerFrame::Presence { user_id: self.user.id, status: Presence::from_db(self.user.presence) })
            .await?;
        for point in resume.into_iter().take(1000) {
            self.replay(point).await?;
        }
        self.pending_to_device().await
    }

    /// Relays frames both ways until the socket, the session or the hub ends it. Per delivered
    /// event this is the server's hot path: one wake, a queue pop, one buffered frame and one
    /// write for everything queued; nothing here allocates.
    async fn serve(
        &mut self,
        mut rx: tokio::sync::mpsc::Receiver<Outbound>,
        closed: tokio::sync::watch::Receiver<Option<Close>>,
        session: Uuid,
    ) -> Result<(), End> {
        use tokio::time::Instant as Deadline;
        let session = Session { user_id: self.user.id, session_id: session };
        // One timer for both periodic duties: it fires at whichever is due first. The session
        // checks are spread by socket id, so sockets opened together do not all ask at once.
        let mut next_check = Deadline::now() + SESSION_CHECK_EVERY.mul_f64(0.5 + (self.id % 1024) as f64 / 1024.0);
        let mut next_ping = Deadline::now() + PING_EVERY;
        let timer = tokio::time::sleep_until(next_check.min(next_ping));
        tokio::pin!(timer);
        loop {
            // The hub closes a socket by dropping its queue's sender after saying why in
            // `closed`: `recv` then yields `None` once the queue is empty, and `has_changed` (an
            // atomic load) stops the socket before writing more of a backlog.
            tokio::select! {
                // Queued frames first: a wake for a delivery then costs no read attempt on the
                // socket. Reads are not starved: the queue is empty after each batch unless the
                // client is too slow to keep up, and then it is told to resync or is closed.
                biased;
                out = rx.recv() => {
                    let Some(out) = out else { return closed_by_hub(&mut self.socket, &closed).await };
                    if !self.deliver(out, &mut rx, &closed).await? {
                        return closed_by_hub(&mut self.socket, &closed).await;
                    }
                    if rx.is_empty() && self.lagging.swap(false, std::sync::atomic::Ordering::AcqRel) {
                        Box::pin(self.resync()).await?;
                    }
                }
                msg = self.socket.recv() => {
                    self.last_heard = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(text))) => Box::pin(self.frame(&text)).await?,
                        Some(Ok(Message::Binary(_))) => {
                            Box::pin(self.bad_frame(ErrorCode::BadFrame, "frames are JSON text".into())).await?;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => return Ok(()),
                        Some(Err(e)) => {
                            // Oversized messages land here: say why before closing.
                            let _: Result<(), End> = close(&mut self.socket, 1009, "frame too large or malformed").await;
                            tracing::debug!(error = %e, "socket read failed");
                            return Err(End::Socket);
                        }
                    }
                }
                () = &mut timer => {
                    let now = Deadline::now();
                    if now >= next_check {
                        match Box::pin(session::session_live(&self.state, session)).await {
                            Ok(true) => {}
                            Ok(false) => return close(&mut self.socket, 4001, "session ended").await,
                            Err(e) => return internal(&mut self.socket, e).await,
                        }
                        next_check = now + SESSION_CHECK_EVERY;
                    }
                    if now >= next_ping {
                        if self.last_heard.elapsed() > IDLE_LIMIT {
                            return close(&mut self.socket, 1001, "idle").await;
                        }
                        Box::pin(self.write(Message::Ping(Default::default()))).await?;
                        next_ping = now + PING_EVERY;
                    }
                    timer.as_mut().reset(next_check.min(next_ping));
                }
            }
        }
    }

    /// Tells the client which channels to fetch again: events were dropped for it.
    async fn resync(&mut self) -> Result<(), End> {
        for (channel_id, after_seq) in self.state.realtime.hub.take_lagging(self.id) {
            self.send(&ServerFrame::Resync { channel_id, after_seq }).await?;
        }
        Ok(())
    }

    /// Writes `first` and what else is already queued (up to `WRITE_BATCH` frames) with one flush:
    /// one system call for the batch, which the client must take within `SEND_TIMEOUT`. `false`
    /// if the hub closed this socket meanwhile (checked before each frame: an atomic load).
    async fn deliver(
        &mut self,
        first: Outbound,
        rx: &mut tokio::sync::mpsc::Receiver<Outbound>,
        closed: &tokio::sync::watch::Receiver<Option<Close>>,
    ) -> Result<bool, End> {
        let batch = async {
            let mut next = Some(first);
            let mut written = 0;
            while let Some(out) = next.take() {
                if closed.has_changed().unwrap_or(true) {
                    return Ok(false);
                }
                let text = match out {
                    // Events a resume already replayed are skipped.
                    Outbound::Event(event) => {
                        self.replayed.get(&event.channel_id).is_none_or(|r| event.seq > *r).then(|| event.text.clone())
                    }
                    Outbound::Frame(text) => Some((*text).clone()),
                    Outbound::Resubscribe => {
                        Box::pin(self.resubscribe()).await?;
                        None
                    }
                };
                if let Some(text) = text {
                    self.socket.feed(json_message(text)?).await.map_err(|_| End::Socket)?;
                }
                written += 1;
                if written < WRITE_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.socket.flush().await.map_err(|_| End::Socket)?;
            Ok(true)
        };
        tokio::time::timeout(SEND_TIMEOUT, batch).await.unwrap_or(Err(End::Slow))
    }

    /// Membership may have changed: subscriptions again from the database, the client told
    /// which channels came and went, and presence for a community just joined.
    async fn resubscribe(&mut self) -> Result<(), End> {
        let subs = match spaces::subscriptions(&self.state.db, self.user.id).await {
            Ok(s) => s,
            Err(e) => return internal(&mut self.socket, e).await,
        };
        let hub = &self.state.realtime.hub;
        let before: HashSet<Uuid> = hub.communities_of(self.id).into_iter().collect();
        let joined: HashSet<Uuid> = subs.communities.difference(&before).copied().collect();
        let communities: Vec<Uuid> = subs.communities.iter().copied().collect();
        let (added, removed) = hub.resubscribe(self.id, subs);
        for channel_id in removed {
            self.send(&ServerFrame::ChannelRemoved { channel_id }).await?;
        }
        for channel_id in added {
            self.send(&ServerFrame::ChannelAdded { channel_id }).await?;
        }
        if !joined.is_empty() {
            // A new community: who is online there, and its members learn about this user.
            for presences in self.state.realtime.hub.presence_frames(&joined) {
                self.write_json(presences).await?;
            }
            self.flush().await?;
            if let Some(status) = self.state.realtime.hub.chosen_presence(self.user.id) {
                presence::connected(&self.state, self.user.id, status, communities).await;
            }
        }
        Ok(())
    }

    /// Sends every event after the client's resume point, oldest first, from the database.
    async fn replay(&mut self, point: ResumePoint) -> Result<(), End> {
        if !self.state.realtime.hub.is_subscribed(self.id, point.channel_id) {
            return self.send(&ServerFrame::ChannelRemoved { channel_id: point.channel_id }).await;
        }
        let mut after = point.last_seq.max(0);
        loop {
            let page =
                messages::events_since(&self.state, self.user.id, point.channel_id, after, Some(REPLAY_PAGE)).await;
            let page: Vec<ChannelEvent> = match page {
                Ok(p) => p,
                Err(ServerError::App(AppError::NotFound)) => {
                    return self.send(&ServerFrame::ChannelRemoved { channel_id: point.channel_id }).await;
                }
                Err(e) => return internal(&mut self.socket, e).await,
            };
            let full = page.len() == REPLAY_PAGE as usize;
            for event in page {
                after = event.seq;
                self.send(&ServerFrame::Event { event }).await?;
            }
            self.replayed.insert(point.channel_id, after);
            if !full {
                return Ok(());
            }
        }
    }

    /// To-device messages that waited for this device (the oldest 100; the client fetches more after acking).
    async fn pending_to_device(&mut self) -> Result<(), End> {
        let Some(device) = self.device.clone() else { return Ok(()) };
        match keys_directory::fetch_to_device(&self.state, self.user.id, &device).await {
            Ok(waiting) => {
                for message in waiting {
                    self.send(&ServerFrame::ToDevice { message }).await?;
                }
                Ok(())
            }
            Err(e) => internal(&mut self.socket, e).await,
        }
    }

    /// One frame from the client.
    async fn frame(&mut self, text: &str) -> Result<(), End> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * FRAMES_PER_SECOND).min(FRAME_BURST);
        self.refilled = now;
        let frame = match ClientFrame::decode(text) {
            Ok(f) => f,
            Err((code, message)) => return self.bad_frame(code, message).await,
        };
        if self.tokens < 1.0 {
            let txn = match &frame {
                ClientFrame::Send { client_txn, .. } => Some(client_txn.clone()),
                _ => None,
            };
            return self.send(&error(ErrorCode::RateLimited, "slow down: too many frames".into(), txn)).await;
        }
        self.tokens -= 1.0;
        match frame {
            ClientFrame::Hello { .. } => self.bad_frame(ErrorCode::BadFrame, "hello was already said".into()).await,
            ClientFrame::Send { channel_id, device, client_txn, kind, reply_to, thread_id, ciphertext } => {
                if self.device.as_ref().is_some_and(|d| *d != device) {
                    let message = "device differs from the one this socket said hello with".into();
                    return self.send(&error(ErrorCode::Invalid, message, Some(client_txn))).await;
                }
                let client_txn_again = client_txn.clone();
                let input = messages::Send {
                    channel_id,
                    device,
                    client_txn: client_txn_again,
                    kind,
                    reply_to,
                    thread_id,
                    ciphertext,
                };
                match messages::send(&self.state, self.user.id, input).await {
                    Ok(stored) => self.send(&ServerFrame::Sent { client_txn, message: stored.message }).await,
                    Err(e) => self.refused(e, Some(client_txn)).await,
                }
            }
            ClientFrame::Edit { message_id, ciphertext } => {
                let edited = messages::edit(&self.state, self.user.id, message_id, ciphertext).await;
                self.answer(edited.map(drop)).await
            }
            ClientFrame::Delete { message_id } => {
                let deleted = messages::delete(&self.state, self.user.id, message_id).await;
                self.answer(deleted.map(drop)).await
            }
            ClientFrame::Typing { channel_id } => {
                // The socket's own throttle: a client renews "typing" every few seconds at most.
                if self.last_typing.get(&channel_id).is_some_and(|t| t.elapsed() < TYPING_EVERY) {
                    return Ok(());
                }
                self.last_typing.insert(channel_id, Instant::now());
                let typing = presence::typing(&self.state, &self.user, channel_id).await;
                self.answer(typing).await
            }
            ClientFrame::SetPresence { status } => {
                let communities = self.state.realtime.hub.communities_of(self.id);
                match presence::set(&self.state, &self.user, status, communities).await {
                    Ok(user) => {
                        self.user = user;
                        Ok(())
                    }
                    Err(e) => self.refused(e, None).await,
                }
            }
            ClientFrame::MarkRead { channel_id, seq } => {
                let read = messages::mark_read(&self.state, self.user.id, channel_id, seq).await;
                self.answer(read.map(drop)).await
            }
            ClientFrame::Ping { nonce } => self.send(&ServerFrame::Pong { nonce }).await,
        }
    }

    /// A frame the server could not read: an error frame; too many of them close the socket.
    async fn bad_frame(&mut self, code: ErrorCode, message: String) -> Result<(), End> {
        self.bad_frames += 1;
        if self.bad_frames > MAX_BAD_FRAMES {
            return close(&mut self.socket, 1008, "too many malformed frames").await;
        }
        self.send(&error(code, message, None)).await
    }

    /// A request the services refused: its error, as a frame.
    async fn refused(&mut self, e: ServerError, client_txn: Option<String>) -> Result<(), End> {
        let e = AppError::from(e);
        let message = match &e {
            AppError::Invalid { field, message } => format!("{field}: {message}"),
            other => other.to_string(),
        };
        self.send(&error(code_of(&e), message, client_txn)).await
    }

    /// Nothing to say when a command succeeded (its signal comes back to this socket too); its
    /// error otherwise.
    async fn answer(&mut self, done: Result<(), ServerError>) -> Result<(), End> {
        match done {
            Ok(()) => Ok(()),
            Err(e) => self.refused(e, None).await,
        }
    }

    async fn send(&mut self, frame: &ServerFrame) -> Result<(), End> {
        send_frame(&mut self.socket, frame).await
    }

    async fn write(&mut self, msg: Message) -> Result<(), End> {
        write(&mut self.socket, msg).await
    }

    /// A frame the hub serialised (shared by every recipient, not copied), buffered: it goes out
    /// with the next flush (`send`, `flush`), or once the buffer is full.
    async fn write_json(&mut self, text: axum::body::Bytes) -> Result<(), End> {
        in_time(self.socket.feed(json_message(text)?)).await
    }

    async fn flush(&mut self) -> Result<(), End> {
        in_time(self.socket.flush()).await
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A task that ends by panic or cancellation still leaves the hub (publishing offline is
        // then left to the next presence change: a panic is already a bug to fix).
        let _ = self.state.realtime.hub.unregister(self.id);
    }
}

/// A frame the hub serialised, as a text message (its bytes shared, not copied).
fn json_message(text: axum::body::Bytes) -> Result<Message, End> {
    Utf8Bytes::try_from(text).map(Message::Text).map_err(|_| End::Refused("a frame that is not UTF-8"))
}

fn error(code: ErrorCode, message: String, client_txn: Option<String>) -> ServerFrame {
    ServerFrame::Error { code, message, client_txn }
}

fn code_of(e: &AppError) -> ErrorCode {
    match e {
        AppError::Invalid { .. } | AppError::BadRequest { .. } => ErrorCode::Invalid,
        AppError::Unauthenticated => ErrorCode::Unauthenticated,
        AppError::Forbidden => ErrorCode::Forbidden,
        AppError::NotFound => ErrorCode::NotFound,
        AppError::RateLimited { .. } => ErrorCode::RateLimited,
        AppError::Internal { .. } | AppError::Network { .. } => ErrorCode::Internal,
    }
}

async fn write(socket: &mut WebSocket, msg: Message) -> Result<(), End> {
    in_time(socket.send(msg)).await
}

/// A write to the socket, which the client must take within `SEND_TIMEOUT`.
async fn in_time(io: impl std::future::Future<Output = Result<(), axum::Error>>) -> Result<(), End> {
    match tokio::time::timeout(SEND_TIMEOUT, io).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Socket),
        Err(_) => Err(End::Slow),
    }
}

async fn send_frame(socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), End> {
    let text = serde_json::to_string(frame).map_err(|_| End::Refused("unserialisable frame"))?;
    write(socket, Message::Text(text.into())).await
}

/// Closes the socket with `code` and `reason`; the task ends (always `Err`). Boxed: a socket
/// closes once, and its task need not keep room for it meanwhile.
fn close<'a, T: Send + 'a>(
    socket: &'a mut WebSocket,
    code: u16,
    reason: &'static str,
) -> BoxFuture<'a, Result<T, End>> {
    Box::pin(async move {
        let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
        let _ = write(socket, Message::Close(Some(frame))).await;
        Err(End::Refused(reason))
    })
}

/// The hub dropped this socket: closes it with the reason the hub gave (set before it dropped the
/// socket's queue), or as a restart if it gave none.
async fn closed_by_hub<T: Send>(
    socket: &mut WebSocket,
    closed: &tokio::sync::watch::Receiver<Option<Close>>,
) -> Result<T, End> {
    let why = (*closed.borrow()).unwrap_or(Close::SHUTDOWN);
    close(socket, why.code, why.reason).await
}

/// Tells the client about an internal error and closes the socket (boxed, as `close`).
fn internal<T: Send>(socket: &mut WebSocket, e: ServerError) -> BoxFuture<'_, Result<T, End>> {
    Box::pin(async move {
        let e = AppError::from(e); // logs it once with a reference id
        let _ = send_frame(socket, &error(ErrorCode::Internal, e.to_string(), None)).await;
        close(socket, 1011, "internal error").await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<A, B, C, F>(_: impl FnOnce(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every open socket keeps its task's future for its whole life: thousands of idle members
    /// must not each hold the state of the largest thing a socket ever does (it was 11 KiB).
    #[test]
    fn an_idle_socket_task_is_small() {
        let size = future_size(Connection::run);
        // About 2.4 KiB today, a third of it the `Connection` itself.
        assert!(size <= 3 * 1024, "the socket task's future is {size} bytes");
    }
}
