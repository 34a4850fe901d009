//! Load generator for the path a browser takes. Starts the release server binary on a fresh
//! database, makes N users members of one channel, connects N sockets (`/ws`, where the browser
//! receives) and sends at a steady rate from a few of them through the `messages/send` server
//! function (where the browser sends: HTTP, session cookies, form-encoded base64 ciphertext);
//! prints deliveries per second, send→deliver latency (p50/p99/max) and the server's RSS. Then
//! connects many idle sockets and prints the RSS each one costs. It prints figures; it never fails
//! on time. `--via ws` sends `send` frames over the socket instead, for comparison.
//!
//! With `--storm 1000,5000` it also connects that many members of one community at once and
//! prints the frames and bytes each connect cost (presence) and when everyone saw everyone online.
//! Server CPU per delivery comes from `/proc/<pid>/stat`; the generator's own CPU is printed beside it.
//!
//! `cargo xtask bench [-- --sizes 100,1000 --idle 5000 --storm 1000,5000 --rate 20 --seconds 10 --via http|ws --database-url postgres://… --protocol N]`

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
    storm: Vec<usize>,
    history: usize,
    database_url: Option<String>,
    /// The gateway protocol to say hello with (an older server speaks an older one).
    protocol: u16,
}

fn args() -> Result<Args> {
    let mut a = Args {
        via: Via::Http,
        sizes: vec![100, 1000],
        idle: 5000,
        rate: 20,
        seconds: 10,
        senders: 10,
        storm: vec![1000, 5000],
        history: 100_000,
        database_url: None,
        protocol: protocol::model::gateway::PROTOCOL_VERSION,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        // A comma-separated list; empty or 0 for none.
        let list = |v: String| -> Result<Vec<usize>> {
            v.split(',').map(str::trim).filter(|s| !s.is_empty() && *s != "0").map(|s| number(s.to_owned())).collect()
        };
        match flag.as_str() {
            "--sizes" => a.sizes = list(value()?)?,
            "--idle" => a.idle = number(value()?)?,
            "--rate" => a.rate = number(value()?)? as u32,
            "--seconds" => a.seconds = number(value()?)? as u64,
            "--senders" => a.senders = number(value()?)?.max(1),
            "--database-url" => a.database_url = Some(value()?),
            "--storm" => a.storm = list(value()?)?,
            "--history" => a.history = number(value()?)?,
            "--protocol" => a.protocol = number(value()?)? as u16,
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
    for &n in &args.storm {
        storm(&bin, &args, n).await?;
    }
    if args.history > 0 {
        history(&bin, &args, args.history).await?;
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

/// Opens a socket, says hello in `protocol` and waits for `ready`; returns the socket and the
/// bytes of the frames read.
async fn connect(addr: SocketAddr, cookie: &str, protocol: u16) -> Result<(Socket, usize)> {
    let mut socket = Ws::open(addr, &[("cookie", cookie)]).await.map_err(|e| format!("upgrade: {e}"))?.into_inner();
    let hello = ClientFrame::Hello { protocol, device: None, resume: vec![] };
    let text = serde_json::to_string(&hello).map_err(|e| e.to_string())?;
    socket.send(Message::text(text)).await.map_err(|e| format!("hello: {e}"))?;
    loop {
        match tokio::time::timeout(testkit::ws::PATIENCE, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ServerFrame>(&text) {
                Ok(ServerFrame::Ready { .. }) => return Ok((socket, text.len())),
                other => return Err(format!("expected ready, got {other:?}")),
            },
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => return Err(format!("expected ready, got {other:?}")),
        }
    }
}

/// Connects one socket per cookie (several at a time).
async fn connect_all(addr: SocketAddr, cookies: &[String], protocol: u16) -> Result<Vec<Socket>> {
    let mut sockets = Vec::with_capacity(cookies.len());
    for chunk in cookies.chunks(64) {
        let tasks: Vec<_> = chunk.iter().map(|c| tokio::spawn(connect_owned(addr, c.clone(), protocol))).collect();
        for t in tasks {
            sockets.push(t.await.map_err(|e| e.to_string())??.0);
        }
    }
    Ok(sockets)
}

async fn connect_owned(addr: SocketAddr, cookie: String, protocol: u16) -> Result<(Socket, usize)> {
    connect(addr, &cookie, protocol).await
}

/// When a delivered event was sent (µs since the epoch, the first 16 bytes of its ciphertext),
/// read without decoding the whole frame: the generator shares the machine's cores with the
/// server, and every microsecond it spends is one the server does not get.
fn sent_at(text: &str) -> Option<u64> {
    const KEY: &str = r#""ciphertext":""#;
    if !text.starts_with(r#"{"type":"event""#) {
        return None;
    }
    let at = text.find(KEY)? + KEY.len();
    // 24 base64 characters hold the first 18 bytes.
    let bytes = Ciphertext::from_base64(text.get(at..at + 24)?).ok()?.0;
    Some(u128::from_le_bytes(bytes.get(..16)?.try_into().ok()?) as u64)
}

/// A `/proc/<pid>/status` figure in KiB (`RssAnon`, `RssFile`, …); 0 if unreadable.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system, all threads, living and ended) a process has used so far, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // Linux reports these in USER_HZ, 100 per second on every architecture it runs on.
    (ticks(14) + ticks(15)) as f64 / 100.0
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
    // Start-up precomputes a dummy password hash (Argon2id, 64 MiB, freed at once): past it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = node.rss_kib();
    let pid = node.process.pid();
    let (rss_file, rss_anon) = (status_kib(pid, "RssFile"), status_kib(pid, "RssAnon"));
    let sockets = connect_all(node.addr, &cookies, args.protocol).await?;
    println!(
        "setup {:.1} s; server RSS {:.1} MiB before sockets ({:.1} MiB of it the binary's code and data pages, \
         file-backed and shared; {:.1} MiB anonymous), {:.1} MiB with {n} sockets",
        setup.elapsed().as_secs_f64(),
        rss_idle as f64 / 1024.0,
        rss_file as f64 / 1024.0,
        rss_anon as f64 / 1024.0,
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
                if let Some(sent) = sent_at(&text) {
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
    let server_pid = node.process.pid().to_string();
    let (server_cpu, own_cpu) = (cpu_seconds(&server_pid), cpu_seconds("self"));
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
                    thread_id: None,
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
    let (server_cpu, own_cpu) = (cpu_seconds(&server_pid) - server_cpu, cpu_seconds("self") - own_cpu);
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
    println!(
        "server CPU {server_cpu:.2} s: {:.2} µs per delivery; the load generator took {own_cpu:.2} s of CPU beside it",
        server_cpu * 1e6 / all.len().max(1) as f64
    );
    Ok(())
}

/// A channel of `n` messages; its latest 50 fetched through `messages/history` (the server
/// function a browser calls when it opens the channel) with 8 requests in flight for 5 s.
async fn history(bin: &Path, args: &Args, n: usize) -> Result {
    println!("\n== history: the latest 50 of a {n}-message channel, 1 and then 8 requests in flight");
    let node = Node::start(bin, args.database_url.as_deref()).await?;
    let setup = Instant::now();
    let (channel, cookies) = node.members(2).await?;
    let sender = entity::user::Entity::find().one(&node.state.db).await.map_err(|e| e.to_string())?;
    let sender = sender.ok_or("no user")?.id;
    let now = chrono::Utc::now();
    let mut seq = 0i64;
    while (seq as usize) < n {
        let batch: Vec<entity::message::ActiveModel> = (0..500.min(n - seq as usize))
            .map(|_| {
                seq += 1;
                entity::message::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    channel_id: Set(channel),
                    seq: Set(seq),
                    sender_id: Set(sender),
                    sender_device: Set("BENCH".into()),
                    client_txn: Set(format!("h{seq}")),
                    kind: Set(0),
                    reply_to: Set(None),
                    thread_id: Set(None),
                    thread_replies: Set(0),
                    thread_last_seq: Set(None),
                    thread_last_at: Set(None),
                    ciphertext: Set(vec![7; 200]),
                    created_at: Set(now),
                    edited_at: Set(None),
                    deleted_at: Set(None),
                    expires_at: Set(None),
                }
            })
            .collect();
        entity::message::Entity::insert_many(batch).exec(&node.state.db).await.map_err(|e| e.to_string())?;
    }
    entity::channel::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(channel),
        last_seq: Set(seq),
        ..Default::default()
    }
    .update(&node.state.db)
    .await
    .map_err(|e| e.to_string())?;
    // A channel that grew to 100,000 messages has table statistics (autovacuum keeps them); one
    // bulk-loaded a second ago has none, and PostgreSQL then plans a page as a scan of the whole
    // channel. Measure the steady state.
    {
        use sea_orm::ConnectionTrait;
        node.state.db.execute_unprepared("ANALYZE").await.map_err(|e| e.to_string())?;
    }
    println!("setup {:.1} s", setup.elapsed().as_secs_f64());
    let http = HttpSender::new(node.addr);
    let body = format!("channel_id={channel}&limit=50");
    // Warm up: connections, caches, the query plan.
    for _ in 0..50 {
        http.call("messages/history", &cookies[0], &body).await?;
    }
    let server_pid = node.process.pid().to_string();
    // Latency is a request's own time, one at a time: with 8 in flight on 2 cores each request
    // also waits for the 7 others (by Little's law the mean is 8 / throughput). Throughput is
    // measured with 8 in flight.
    for in_flight in [1, 8] {
        let server_cpu = cpu_seconds(&server_pid);
        let until = Instant::now() + Duration::from_secs(5);
        let started = Instant::now();
        let workers: Vec<_> = (0..in_flight)
            .map(|_| {
                let (http, cookie, body) = (http.clone(), cookies[0].clone(), body.clone());
                tokio::spawn(async move {
                    let mut took = vec![];
                    while Instant::now() < until {
                        let t = Instant::now();
                        http.call("messages/history", &cookie, &body).await?;
                        took.push(t.elapsed().as_micros() as u64);
                    }
                    Ok::<_, String>(took)
                })
            })
            .collect();
        let mut all = vec![];
        for w in workers {
            all.extend(w.await.map_err(|e| e.to_string())??);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let server_cpu = cpu_seconds(&server_pid) - server_cpu;
        all.sort_unstable();
        println!(
            "{in_flight} in flight: {} requests in {elapsed:.1} s: {:.0} req/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server CPU {:.0} µs per request",
            all.len(),
            all.len() as f64 / elapsed,
            percentile(&all, 0.50),
            percentile(&all, 0.99),
            percentile(&all, 1.0),
            server_cpu * 1e6 / all.len().max(1) as f64
        );
    }
    node.stop().await;
    Ok(())
}

/// `n` members of one community connect at once (64 at a time, as fast as the server answers).
/// Each socket counts the frames and bytes it gets and notes when it has seen all the others
/// online; prints the cost per connect and when everyone saw everyone.
async fn storm(bin: &Path, args: &Args, n: usize) -> Result {
    println!("\n== connect storm: {n} members of one community connect at once");
    let node = Node::start(bin, args.database_url.as_deref()).await?;
    let setup = Instant::now();
    let (_, cookies) = node.members(n).await?;
    let ids: Vec<Uuid> = entity::user::Entity::find()
        .all(&node.state.db)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let everyone: Arc<std::collections::HashSet<Uuid>> = Arc::new(ids.into_iter().collect());
    println!("setup {:.1} s", setup.elapsed().as_secs_f64());
    let server_pid = node.process.pid().to_string();
    let (server_cpu, own_cpu) = (cpu_seconds(&server_pid), cpu_seconds("self"));
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Result<Duration>>();
    let frames = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = vec![];
    for cookie in cookies {
        let (gate, done_tx, frames, bytes, everyone) =
            (gate.clone(), done_tx.clone(), frames.clone(), bytes.clone(), everyone.clone());
        let (addr, protocol) = (node.addr, args.protocol);
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire().await;
            let (socket, ready) = match connect(addr, &cookie, protocol).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = done_tx.send(Err(e));
                    return;
                }
            };
            drop(permit);
            frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            bytes.fetch_add(ready, std::sync::atomic::Ordering::Relaxed);
            let (_sink, mut stream) = socket.split();
            let mut online = std::collections::HashSet::new();
            let mut told = false;
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                bytes.fetch_add(text.len(), std::sync::atomic::Ordering::Relaxed);
                let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else { continue };
                let seen = match &frame {
                    ServerFrame::Presence { user_id, status } => vec![(*user_id, *status)],
                    other => other.presences(),
                };
                for (user, status) in seen {
                    if status == protocol::model::gateway::Presence::Offline {
                        online.remove(&user);
                    } else {
                        online.insert(user);
                    }
                }
                if !told && online.len() == everyone.len() {
                    told = true;
                    let _ = done_tx.send(Ok(started.elapsed()));
                }
            }
        }));
    }
    drop(done_tx);
    let mut settled = Duration::ZERO;
    let mut failed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for _ in 0..n {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(Ok(at))) => settled = settled.max(at),
            Ok(Some(Err(e))) => {
                if failed == 0 {
                    eprintln!("bench: a connect failed: {e}");
                }
                failed += 1;
            }
            Ok(None) | Err(_) => break,
        }
    }
    let frames_at_settle = frames.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await; // stragglers
    let (server_cpu, own_cpu) = (cpu_seconds(&server_pid) - server_cpu, cpu_seconds("self") - own_cpu);
    let (frames, bytes) =
        (frames.load(std::sync::atomic::Ordering::Relaxed), bytes.load(std::sync::atomic::Ordering::Relaxed));
    if settled.is_zero() || failed > 0 {
        println!("NOT SETTLED: {failed} connects failed; the others did not all see everyone online within 120 s");
    } else {
        println!("every socket saw all {n} members online {:.2} s after the first connect", settled.as_secs_f64());
    }
    println!(
        "{frames} frames, {:.1} MiB in all ({frames_at_settle} frames by then): {:.1} frames and {:.1} KiB per connect; server CPU {server_cpu:.2} s, RSS {:.1} MiB; the generator took {own_cpu:.2} s of CPU (reading every frame)",
        bytes as f64 / 1048576.0,
        frames as f64 / n as f64,
        bytes as f64 / 1024.0 / n as f64,
        node.rss_kib() as f64 / 1024.0
    );
    node.stop().await;
    for t in tasks {
        let _ = t.await;
    }
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
        self.call("messages/send", cookie, &body).await
    }

    /// Calls the server function at `/api/v1/{path}` with a form body; the answer is read and dropped.
    async fn call(&self, path: &str, cookie: &str, body: &str) -> Result {
        let body = body.to_owned();
        let request = hyper::Request::post(format!("http://{}/api/v1/{path}", self.addr))
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
    drop(connect(node.addr, &cookies[0], args.protocol).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = node.rss_kib();
    let wanted: Vec<String> = (0..k).map(|i| cookies[i % cookies.len()].clone()).collect();
    let started = Instant::now();
    let sockets = connect_all(node.addr, &wanted, args.protocol).await?;
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
