//! Connection floods against the real binary: tens of thousands of half-open connections (each
//! sends part of a request head, then nothing) from one address, from one network, and from a
//! whole /16, while a signed-in person and a health check keep being answered within a second.
//! Everything stays on loopback (the 127.0.0.0/8 range gives the attackers their own addresses).

use crate::common::{Prepare, new_user};
use app::model::RegistrationMode;
use std::{
    collections::VecDeque,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};
use testkit::{TestDb, process::ServerProcess, session_cookie};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

const BIN: &str = env!("CARGO_BIN_EXE_chatalot-server");
/// The flood the issue measured.
const FLOOD: usize = 20_000;
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: chat\r\nX-Slow: ";

/// How many sockets this process can hold at once beside what it already has (at most `wanted`):
/// the soft open-file limit, raised to the hard one. The server inherits it.
fn room_for(wanted: usize) -> usize {
    let soft = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let room = (soft as usize).saturating_sub(512).min(wanted);
    if room < 5_000 {
        eprintln!(
            "!! the open-file limit ({soft}) lets this test hold only {room} connections at once: a weaker flood"
        );
    }
    room
}

/// Opens `n` connections from `source(i)` and sends each a partial request head; keeps the newest
/// `room` of them open (the attacker's own file limit; by then the server has closed the older ones).
async fn flood(server: SocketAddr, n: usize, room: usize, source: impl Fn(usize) -> Ipv4Addr) -> VecDeque<TcpStream> {
    let mut held = VecDeque::with_capacity(room);
    for i in 0..n {
        if held.len() == room {
            held.pop_front();
        }
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source(i), 0))).unwrap();
        // A shed connection is reset; the attacker keeps going either way.
        if let Ok(mut stream) = socket.connect(server).await {
            let _ = stream.write_all(PARTIAL_HEAD).await;
            held.push_back(stream);
        }
    }
    held
}

/// One request from a working client on 127.0.0.1: its status and how long the answer took.
async fn timed_get(server: SocketAddr, path: &str, cookie: &str) -> (u16, Duration) {
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = TcpStream::connect(server).await.ok()?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.ok()?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.ok()?;
        String::from_utf8_lossy(&reply).split_whitespace().nth(1)?.parse().ok()
    })
    .await;
    (answer.ok().flatten().unwrap_or(0), started.elapsed())
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// While `attack` runs, probes `/healthz` and a signed-in page every 100 ms; returns the attack's
/// result and the slowest probe. Every probe must be answered with 200.
async fn probing<T>(server: SocketAddr, cookie: &str, attack: impl Future<Output = T>) -> (T, Duration) {
    let mut attack = std::pin::pin!(attack);
    let mut slowest = Duration::ZERO;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            result = &mut attack => return (result, slowest),
            _ = tick.tick() => {
                for (path, cookie) in [("/healthz", ""), ("/", cookie)] {
                    let (status, took) = timed_get(server, path, cookie).await;
                    assert_eq!(status, 200, "{path} during the flood (after {took:?})");
                    slowest = slowest.max(took);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_floods_leave_everyone_else_served() {
    let room = room_for(FLOOD);
    let db = TestDb::sqlite();
    let state = db.state(RegistrationMode::Open).await;
    let person = new_user(&state.db, "person").await;
    let cookie = session_cookie(&state, person.id).await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("HEADER_TIMEOUT_SECS", "2"),
        ("MAX_CONNECTIONS", "3000"),
        ("MAX_CONNECTIONS_PER_IP", "200"),
    ];
    let server = ServerProcess::start(Path::new(BIN), &db.dir, &env);
    let addr = server.addr;
    let baseline = open_files(server.pid());

    // 1. One address: at most 200 of its connections stay open.
    let one = Ipv4Addr::new(127, 3, 0, 1);
    let (held, slowest) = probing(addr, &cookie, flood(addr, 2_000, room, |_| one)).await;
    let open = open_files(server.pid()).saturating_sub(baseline);
    assert!(open <= 200 + 20, "{open} descriptors open for one address's 2,000 connections");
    assert!(slowest < Duration::from_secs(1), "slowest answer during the one-address flood: {slowest:?}");
    drop(held);

    // 2. One /24 network, 100 addresses: at most 4 × 200 stay open.
    let from_network = |i: usize| Ipv4Addr::new(127, 4, 0, 1 + (i % 100) as u8);
    let (held, slowest) = probing(addr, &cookie, flood(addr, FLOOD, room, from_network)).await;
    let open = open_files(server.pid()).saturating_sub(baseline);
    assert!(open <= 800 + 20, "{open} descriptors open for one network's {FLOOD} connections");
    assert!(slowest < Duration::from_secs(1), "slowest answer during the one-network flood: {slowest:?}");
    drop(held);

    // 3. A whole /16 (a few connections per address, under every per-address cap): the total cap
    //    holds by evicting the oldest unanswered connections, so working clients still get in.
    let started = Instant::now();
    let from_range = |i: usize| Ipv4Addr::new(127, 5, (i / 250) as u8, 1 + (i % 250) as u8);
    let (held, slowest) = probing(addr, &cookie, flood(addr, FLOOD, room, from_range)).await;
    let open = open_files(server.pid()).saturating_sub(baseline);
    eprintln!(
        "{FLOOD} half-open connections from a /16 in {:.1} s: {open} descriptors open on the server, slowest answer {slowest:?}",
        started.elapsed().as_secs_f64()
    );
    // Evicted connections close a moment after they are evicted: at most 256 ahead of the cap.
    assert!(open <= 3000 + 256 + 20, "{open} descriptors open (cap 3,000)");
    assert!(slowest < Duration::from_secs(1), "slowest answer during the /16 flood: {slowest:?}");

    // The header timeout closes what is left, though the attacker keeps its end open.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let open = open_files(server.pid()).saturating_sub(baseline);
    assert!(open <= 20, "{open} descriptors still open 3 s after the flood, with a 2 s header timeout");
    drop(held);
}
