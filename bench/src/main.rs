//! Gateway load generator. Starts the release server binary on a fresh database, makes N users
//! members of one channel, connects N sockets and sends at a steady rate from a few of them; prints
//! deliveries per second, send→deliver latency (p50/p99/max) and the server's RSS. Then connects
//! many idle sockets and prints the RSS each one costs. It prints figures; it never fails on time.
//!
//! `cargo xtask bench [-- --sizes 100,1000 --idle 5000 --rate 20 --seconds 10 --database-url postgres://…]`

use domain::{Core, config::Config, session, spaces};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use protocol::model::{
    CommunityCreationMode,
    gateway::{ClientFrame, PROTOCOL_VERSION, ServerFrame},
    messages::{Ciphertext, MessageKind},
};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};
use uuid::Uuid;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Result<T = ()> = std::result::Result<T, String>;

struct Args {
    sizes: Vec<usize>,
    idle: usize,
    rate: u32,
    seconds: u64,
    senders: usize,
    database_url: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args { sizes: vec![100, 1000], idle: 5000, rate: 20, seconds: 10, senders: 10, database_url: None };
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
    child: Child,
    addr: SocketAddr,
    state: Core,
    dir: PathBuf,
}

impl Node {
    async fn start(bin: &Path, database_url: Option<&str>) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("chatalot-bench-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let database_url = match database_url {
            Some(base) => fresh_postgres(base).await?,
            None => format!("sqlite://{}?mode=rwc", dir.join("chatalot.db").display()),
        };
        let config = Config {
            data_dir: dir.clone(),
            database_url: Some(database_url.clone().into()),
            site_dir: Some(dir.join("site")),
            ..Config::default()
        };
        let state = server::start::prepare(config).await.map_err(|e| e.to_string())?;
        let addr =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .env("LISTEN_ADDR", addr.to_string())
            .env("DATA_DIR", &dir)
            .env("DATABASE_URL", &database_url)
            .env("SITE_DIR", dir.join("site"))
            .env("RUST_LOG", "error")
            .env_remove("NATS_URL")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let node = Self { child, addr, state, dir };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err("the server did not start listening within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(node)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
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
            let issued = session::start(core, *id, None).await.map_err(e)?;
            cookies.push(format!("chatalot_at={}; chatalot_rt={}", issued.access, issued.refresh));
        }
        Ok((channel, cookies))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fresh_postgres(admin_url: &str) -> Result<String> {
    use sea_orm::ConnectionTrait;
    let name = format!("chatalot_bench_{}", Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(admin_url).await.map_err(|e| e.to_string())?;
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.map_err(|e| e.to_string())?;
    let (base, _) = admin_url.rsplit_once('/').ok_or("--database-url must end with /<database>")?;
    Ok(format!("{base}/{name}"))
}

async fn new_user(db: &sea_orm::DatabaseConnection, name: &str) -> Result<Uuid> {
    let now = chrono::Utc::now();
    let user = entity::user::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(name.into()),
        username_key: Set(name.into()),
        display_name: Set(name.into()),
        password_hash: Set("bench accounts cannot sign in".into()),
        recovery_code_hash: Set("-".into()),
        owner_slot: Set(None),
        is_admin: Set(false),
        created_at: Set(now),
        password_changed_at: Set(now),
        suspended_at: Set(None),
        presence: Set(0),
    };
    let id = user.insert(db).await.map_err(|e| e.to_string())?.id;
    // Messages come from registered devices. The bench never decrypts, so the keys are placeholders.
    entity::device::ActiveModel {
        user_id: Set(id),
        device_id: Set("BENCH".into()),
        curve25519: Set("-".into()),
        ed25519: Set("-".into()),
        signature: Set("-".into()),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|e| e.to_string())?;
    Ok(id)
}

/// Opens a socket and waits for `ready`.
async fn connect(addr: SocketAddr, cookie: &str) -> Result<Socket> {
    let mut req = format!("ws://{addr}/ws").into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("cookie", HeaderValue::from_str(cookie).map_err(|e| e.to_string())?);
    let (mut ws, _) = connect_async(req).await.map_err(|e| format!("connect: {e}"))?;
    let hello = ClientFrame::Hello { protocol: PROTOCOL_VERSION, device: None, resume: vec![] };
    ws.send(Message::text(serde_json::to_string(&hello).unwrap_or_default())).await.map_err(|e| e.to_string())?;
    while let Some(msg) = ws.next().await {
        if let Message::Text(text) = msg.map_err(|e| e.to_string())?
            && text.contains(r#""type":"ready""#)
        {
            return Ok(ws);
        }
    }
    Err("the socket closed before ready".into())
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
        "\n== N = {n}: {n} members of one channel, {} senders, {} messages/s for {} s",
        args.senders.min(n),
        args.rate,
        args.seconds
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

    let per_sender = (f64::from(args.rate) / sinks.len() as f64).max(0.001);
    let total = (u64::from(args.rate) * args.seconds) as usize;
    let mut peak = 0;
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / (per_sender * sinks.len() as f64)));
    let started = Instant::now();
    while sent < total {
        tick.tick().await;
        let count = sinks.len();
        let sink = &mut sinks[sent % count];
        let mut payload = (epoch.elapsed().as_micros()).to_le_bytes().to_vec();
        payload.resize(200, 0); // a short text message, encrypted, is about this size
        let frame = ClientFrame::Send {
            channel_id: channel,
            device: "BENCH".into(),
            client_txn: format!("b{sent}"),
            kind: MessageKind::Text,
            reply_to: None,
            ciphertext: Ciphertext(payload),
        };
        sink.send(Message::text(serde_json::to_string(&frame).unwrap_or_default())).await.map_err(|e| e.to_string())?;
        sent += 1;
        if sent.is_multiple_of(20) {
            peak = peak.max(node.rss_kib());
        }
    }
    let sending = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await; // in-flight deliveries
    peak = peak.max(node.rss_kib());
    let rss_end = node.rss_kib();
    drop((node, quiet)); // the server goes away: every reader finishes
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

async fn idle(bin: &Path, args: &Args, k: usize) -> Result {
    println!("\n== {k} idle sockets (sessions of 100 users)");
    let node = Node::start(bin, args.database_url.as_deref()).await?;
    let (_, cookies) = node.members(100).await?;
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
    Ok(())
}
