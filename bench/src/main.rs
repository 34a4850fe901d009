//! Load generator for the path a browser takes. Starts the release server binary on a fresh
//! database, makes N users members of one channel, connects N sockets (`/ws`, where the browser
//! receives) and sends at a steady rate from a few of them through the `messages/send` server
//! function (where the browser sends: HTTP, session cookies, form-encoded base64 ciphertext);
//! prints deliveries per second, send→deliver latency (p50/p99/max) and the server's RSS. Then
//! connects many idle sockets and prints the RSS each one costs. It prints figures; it never fails
//! on time. `--via ws` sends `send` frames over the socket instead, for comparison.
//!
//! `cargo xtask bench [-- --sizes 100,1000 --idle 5000 --rate 20 --seconds 10 --via http|ws --database-url postgres://…]`

use domain::{Core, config::Config, spaces};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use protocol::model::{
    CommunityCreationMode,
    gateway::{ClientFrame, ServerFrame},
    messages::{Ciphertext, MessageKind},
};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use testkit::{TestDb, process::ServerProcess, ws::Ws};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};
use uuid::Uuid;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Result<T = ()> = std::result::Result<T, String>;

/// Where messages are sent: the browser's server function, or the socket's `send` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Http,
    Ws,
}

struct Args {
    via: Via,
    sizes: Vec<usize>,
    idle: usize,
    rate: u32,
    seconds: u64,
    senders: usize,
    database_url: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        via: Via::Http,
        sizes: vec![100, 1000],
        idle: 5000,
        rate: 20,
        seconds: 10,
        senders: 10,
        database_url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--sizes" => a.sizes = value()?.split(',').map(|s| number(s.trim().to_owned())).collect::<Result<_>>()?,
            "--idle" => a.idle = number(value()?)?,
            "--rate" => a.rate = number(value()?)? as u32,
            "--seconds" => a.seconds = number(value()?)? as u64,
            "--senders" => a.senders = number(value()?)?.max(1),
            "--database-url" => a.database_url = Some(value()?),
            "--via" => {
                a.via = match value()?.as_str() {
                    "http" => Via::Http,
                    "ws" => Via::Ws,
                    other => return Err(format!("--via: {other:?} is neither http nor ws")),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result {
    let args = args()?;
    let bin = server_binary()?;
    println!("server binary: {}", bin.display());
    println!("machine: {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
    for &n in &args.sizes {
        load(&bin, &args, n).await?;
    }
    if args.idle > 0 {
        idle(&bin, &args, args.idle).await?;
    }
    Ok(())
}

fn server_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("CHATALOT_SERVER_BIN") {
        return Ok(bin.into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("chatalot-server");
    bin.is_file().then_some(bin).ok_or_else(|| "build the server first (cargo xtask bench does)".into())
}

/// A server process on a fresh database, and this process's own view of that database (for setup).
struct Node {
    process: ServerProcess,
    addr: SocketAddr,
    state: Core,
    db: TestDb,
}

impl Node {
    async fn start(bin: &Path, database_url: Option<&str>) -> Result<Self> {
        let db = match database_url {
            Some(admin) => TestDb::postgres_at(admin).await,
            None => TestDb::sqlite(),
        };
        let config = Config {
            data_dir: db.dir.clone(),
            database_url: Some(db.url.clone().into()),
            site_dir: Some(db.dir.join("site")),
            ..Config::default()
        };
        let state = server::start::prepare(config).await.map_err(|e| e.to_string())?;
        // One address plays thousands of clients, and a few of them send for everyone: lift the
        // per-address connection cap and the per-person send rate, which would otherwise (rightly)
        // refuse this load.
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("RUST_LOG", "error"),
            ("MAX_CONNECTIONS_PER_IP", "1000000"),
            ("MESSAGES_PER_MINUTE", "100000"),
        ];
        let process = ServerProcess::start(bin, &db.dir, &env);
        Ok(Self { addr: process.addr, process, state, db })
    }

    fn rss_kib(&self) -> u64 {
        self.process.rss_kib()
    }

    /// Stops the server and drops its database.
    async fn stop(self) {
        drop(self.process);
        self.state.db.close_by_ref().await.ok();
        self.db.drop().await;
    }

    /// `users` members of one community; returns its first channel and a session cookie per user.
    async fn members(&self, users: usize) -> Result<(Uuid, Vec<String>)> {
        let db = &self.state.db;
        let core = &self.state;
        let e = |e: domain::ServerError| format!("{:?}", protocol::AppError::from(e));
        let mut ids = Vec::with_capacity(users);
        for i in 0..users {
            ids.push(new_user(db, &format!("user{i}")).await?);
        }
        let owner = entity::user::Entity::find_by_id(ids[0]).one(db).await.map_err(|e| e.to_string())?;
        let owner = owner.ok_or("the first user vanished")?;
        let club = spaces::create_community(core, &owner, CommunityCreationMode::Open, "Bench", "").await.map_err(e)?;
        let invite = spaces::create_invite(core, owner.id, club, None, None).await.map_err(e)?;
        for id in &ids[1..] {
            spaces::join(core, *id, &invite.code).await.map_err(e)?;
        }
        let channel = spaces::my_spaces(core, owner.id).await.map_err(e)?.communities[0].groups[0].channels[0].id;
        let mut cookies = Vec::with_capacity(users);
        for id in &ids {
            cookies.push(testkit::session_cookie(core, *id).await);
        }
        Ok((channel, cookies))
    }
}

/// A bench account with a device to send from: the server accepts messages from registered
/// devices only. The bench never decrypts, so the device's keys are placeholders.
async fn new_user(db: &sea_orm::DatabaseConnection, name: &str) -> Result<Uuid> {
    let id = testkit::new_user(db, name).await.id;
    entity::device::ActiveModel {
        user_id: Set(id),
        device_id: Set("BENCH".into()),
        curve25519: Set("-".into()),
        ed25519: Set("-".into()),
        signature: Set("-".into()),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(db)
    .await
    .map_err(|e| e.to_string())?;
    Ok(id)
}

/// Opens a socket and waits for `ready`.
async fn connect(addr: SocketAddr, cookie: &str) -> Result<Socket> {
    Ok(Ws::try_connect(addr, cookie, None, vec![]).await?.0.into_inner())
}

/// Connects one socket per cookie (several at a time).
async fn connect_all(addr: SocketAddr, cookies: &[String]) -> Result<Vec<Socket>> {
    let mut sockets = Vec::with_capacity(cookies.len());
    for chunk in cookies.chunks(64) {
        let tasks: Vec<_> = chunk.iter().map(|c| tokio::spawn(connect_owned(addr, c.clone()))).collect();
        for t in tasks {
            sockets.push(t.await.map_err(|e| e.to_string())??);
        }
    }
    Ok(sockets)
}

async fn connect_owned(addr: SocketAddr, cookie: String) -> Result<Socket> {
    connect(addr, &cookie).await
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn load(bin: &Path, args: &Args, n: usize) -> Result {
    println!(
        "\n== N = {n}: {n} members of one channel, {} senders, {} messages/s for {} s, sent via {}",
        args.senders.min(n),
        args.rate,
        args.seconds,
        match args.via {
            Via::Http => "the messages/send server function (as the browser)",
            Via::Ws => "/ws send frames",
        }
    );
    let node = Node::start(bin, args.database_url.as_deref()).await?;
    let setup = Instant::now();
    let (channel, cookies) = node.members(n).await?;
    let rss_idle = node.rss_kib();
    let sockets = connect_all(node.addr, &cookies).await?;
    println!(
        "setup {:.1} s; server RSS {:.1} MiB before sockets, {:.1} MiB with {n} sockets",
        setup.elapsed().as_secs_f64(),
        rss_idle as f64 / 1024.0,
        node.rss_kib() as f64 / 1024.0
    );

    let epoch = Instant::now();
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut sinks: Vec<SplitSink<Socket, Message>> = vec![];
    let mut quiet: Vec<SplitSink<Socket, Message>> = vec![];
    let mut readers = vec![];
    for (i, socket) in sockets.into_iter().enumerate() {
        let (sink, mut stream) = socket.split();
        if i < args.senders {
            sinks.push(sink);
        } else {
            quiet.push(sink);
        }
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let mut mine = vec![];
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                if let Ok(ServerFrame::Event { event }) = serde_json::from_str::<ServerFrame>(&text)
                    && let Ok(bytes) =
                        <[u8; 16]>::try_from(&event.message.ciphertext.0[..16.min(event.message.ciphertext.0.len())])
                {
                    let sent = u128::from_le_bytes(bytes) as u64;
                    mine.push((epoch.elapsed().as_micros() as u64).saturating_sub(sent));
                }
            }
            latencies.lock().map(|mut l| l.extend(mine)).ok();
        }));
    }

    let senders = sinks.len();
    let total = (u64::from(args.rate) * args.seconds) as usize;
    let http = HttpSender::new(node.addr);
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut requests = vec![];
    let mut peak = 0;
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate).max(0.001)));
    let started = Instant::now();
    while sent < total {
        tick.tick().await;
        let from = sent % senders;
        let mut payload = (epoch.elapsed().as_micros()).to_le_bytes().to_vec();
        payload.resize(200, 0); // a short text message, encrypted, is about this size
        let ciphertext = Ciphertext(payload);
        let client_txn = format!("b{sent}");
        match args.via {
            Via::Http => {
                // Each send is its own task, as each browser sends on its own: a slow response does
                // not hold back the next send.
                let (http, cookie, refused) = (http.clone(), cookies[from].clone(), refused.clone());
                requests.push(tokio::spawn(async move {
                    if let Err(e) = http.send(&cookie, channel, &client_txn, &ciphertext).await
                        && refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0
                    {
                        eprintln!("bench: a send failed: {e}");
                    }
                }));
            }
            Via::Ws => {
                let frame = ClientFrame::Send {
                    channel_id: channel,
                    device: "BENCH".into(),
                    client_txn,
                    kind: MessageKind::Text,
                    reply_to: None,
                    ciphertext,
                };
                let text = serde_json::to_string(&frame).unwrap_or_default();
                sinks[from].send(Message::text(text)).await.map_err(|e| e.to_string())?;
            }
        }
        sent += 1;
        if sent.is_multiple_of(20) {
            peak = peak.max(node.rss_kib());
        }
    }
    for r in requests {
        let _ = r.await;
    }
    let sending = started.elapsed();
    let refused = refused.load(std::sync::atomic::Ordering::Relaxed);
    if refused > 0 {
        println!("{refused} of {sent} sends were refused or failed");
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // in-flight deliveries
    peak = peak.max(node.rss_kib());
    let rss_end = node.rss_kib();
    node.stop().await; // the server goes away: every reader finishes
    drop(quiet);
    for r in readers {
        let _ = r.await;
    }
    let mut all = std::mem::take(&mut *latencies.lock().map_err(|_| "poisoned")?);
    all.sort_unstable();
    let expected = sent * n;
    println!(
        "sent {sent} messages in {:.1} s; {} of {expected} deliveries ({:.2} %) → {:.0} deliveries/s",
        sending.as_secs_f64(),
        all.len(),
        100.0 * all.len() as f64 / expected.max(1) as f64,
        all.len() as f64 / sending.as_secs_f64()
    );
    println!(
        "send→deliver latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; server RSS peak {:.1} MiB, at end {:.1} MiB",
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
        peak as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    Ok(())
}

/// Calls `messages/send` as the hydrated browser does: a form-encoded POST with session cookies,
/// over pooled keep-alive connections.
#[derive(Clone)]
struct HttpSender {
    addr: SocketAddr,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl HttpSender {
    fn new(addr: SocketAddr) -> Self {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build_http();
        Self { addr, client }
    }

    async fn send(&self, cookie: &str, channel: Uuid, client_txn: &str, ciphertext: &Ciphertext) -> Result {
        let body = format!(
            "channel_id={channel}&device=BENCH&client_txn={client_txn}&ciphertext_b64={}",
            ciphertext.to_base64().replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
        );
        let request = hyper::Request::post(format!("http://{}/api/v1/messages/send", self.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .header("cookie", cookie)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = self.client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        // Read the body so the connection goes back to the pool.
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
        if status.is_success() { Ok(()) } else { Err(format!("status {status}")) }
    }
}

async fn idle(bin: &Path, args: &Args, k: usize) -> Result {
    // The server allows 32 sockets per account: spread them over enough people.
    let users = k.div_ceil(30).max(100);
    println!("\n== {k} idle sockets (sessions of {users} users)");
    let node = Node::start(bin, args.database_url.as_deref()).await?;
    let (_, cookies) = node.members(users).await?;
    // Warm up: one socket opened and closed, so one-off allocations are not counted per socket.
    drop(connect(node.addr, &cookies[0]).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = node.rss_kib();
    let wanted: Vec<String> = (0..k).map(|i| cookies[i % cookies.len()].clone()).collect();
    let started = Instant::now();
    let sockets = connect_all(node.addr, &wanted).await?;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = node.rss_kib();
    println!(
        "connected {} sockets in {:.1} s; server RSS {:.1} MiB → {:.1} MiB: {:.1} KiB per idle socket",
        sockets.len(),
        took.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / k as f64
    );
    drop(sockets);
    node.stop().await;
    Ok(())
}
