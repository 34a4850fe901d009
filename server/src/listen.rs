//! The accept loop: every TCP connection passes here before a byte of HTTP is read.
//!
//! - **Caps**: at most `per_address` open connections from one client address and `per_network`
//!   from its network (an IPv4 /24, an IPv6 /48). A connection over a cap is closed as soon as it
//!   is accepted (early shedding): it costs one `accept` and one `close`, never a task, a buffer or
//!   a file descriptor that lingers. Trusted proxies carry many clients, so they are exempt.
//! - **The total**, `max_connections`, is kept by eviction: a new connection over it closes the
//!   oldest connection that has not yet been answered (one that has sent at most part of a
//!   request), so a flood of half-open connections from many networks cannot keep working clients
//!   out; only when every open connection has been answered is the new one shed.
//! - **Timeouts**: a client has `header_timeout` to send a request's headers, and a keep-alive
//!   connection that sends nothing for as long is closed (hyper's header-read timer runs while it
//!   waits for the next request, too). Request bodies and handlers are bounded by the router's
//!   request timeout; WebSockets by the gateway's hello timeout and heartbeat.
//! - **Shutdown**: on the signal, the listener closes, every connection finishes its request in
//!   flight and closes, and [`serve`] returns once they all have.
//!
//! A slot is held by the connection's I/O object, so it lives as long as the connection does,
//! after a WebSocket upgrade too.

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request},
};
use domain::throttle::{address_of, network_of};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    io,
    net::IpAddr,
    pin::{Pin, pin},
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, watch},
};
use tower::ServiceExt;

/// The default total cap, whatever the file limit allows.
const MAX_CONNECTIONS_DEFAULT: u64 = 16_384;
/// How often the number of shed connections is logged, at most.
const SHED_LOG_EVERY: Duration = Duration::from_secs(10);

/// The connection limits of one node.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub per_address: usize,
    pub per_network: usize,
    pub header_timeout: Duration,
    /// Addresses exempt from the per-address and per-network caps (trusted reverse proxies).
    pub exempt: Vec<IpAddr>,
}

impl Limits {
    /// The limits a configuration asks for; `open_files` is the process's open-file limit, which
    /// bounds the default total (a quarter stays free for the database, logs and the bus).
    pub fn new(config: &domain::config::Config, open_files: u64) -> Self {
        let fits = (open_files / 4 * 3).max(64) as usize;
        let max_connections = match config.max_connections {
            // More than the file limit allows would end in failed accepts instead of evictions.
            Some(n) if n > fits => {
                tracing::warn!(
                    configured = n,
                    open_files,
                    using = fits,
                    "MAX_CONNECTIONS is above what the open-file limit allows; raise the limit (see the README)"
                );
                fits
            }
            Some(n) => n,
            None => fits.min(MAX_CONNECTIONS_DEFAULT as usize),
        };
        Self {
            max_connections,
            per_address: config.max_connections_per_ip,
            per_network: config.max_connections_per_ip.saturating_mul(4),
            header_timeout: Duration::from_secs(config.header_timeout_secs),
            exempt: config.trusted_proxies.clone(),
        }
    }
}

/// How many connections the kernel may queue before the accept loop takes them (Linux caps it at
/// `net.core.somaxconn`, 4096 by default): bursts wait there instead of being dropped.
const BACKLOG: u32 = 4096;

/// A listening socket on `addr` with a deep backlog.
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Raises this process's soft open-file limit to its hard limit (many systems start services with
/// a soft limit of 1,024) and returns the limit in force.
pub fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit; assuming 1024");
            1024
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    by_network: HashMap<IpAddr, usize>,
    /// Connections not yet answered, oldest first (ids only grow), with the bell that evicts them.
    unanswered: BTreeMap<u64, Arc<Notify>>,
    next_id: u64,
}

/// Open connections, counted under one lock (held for a few map operations per accept and close).
#[derive(Debug, Clone)]
struct Tracker {
    counts: Arc<Mutex<Counts>>,
    limits: Arc<Limits>,
    /// Rung whenever a slot is given back.
    freed: Arc<Notify>,
}

/// Why a connection was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shed {
    Total,
    Address,
    Network,
}

impl Tracker {
    fn new(limits: Limits) -> Self {
        Self { counts: Arc::default(), limits: Arc::new(limits), freed: Arc::default() }
    }

    /// Waits while evicted connections are still open beyond the cap by more than a little.
    /// Eviction rings the connection's task, which closes it a moment later; accepting goes on
    /// meanwhile (a stalled accept loop would let the kernel's backlog fill and drop everyone's
    /// connection attempts), but if the tasks fall far behind, it waits for them, so open
    /// descriptors never run more than `slack` ahead of the cap.
    async fn within_cap(&self) {
        let bound = self.limits.max_connections + self.slack();
        loop {
            let freed = self.freed.notified();
            let mut freed = pin!(freed);
            freed.as_mut().enable();
            if self.open() <= bound {
                return;
            }
            // Bounded, in case a wake-up is missed: the loop checks again.
            let _ = tokio::time::timeout(Duration::from_millis(50), freed).await;
        }
    }

    /// How far evictions may run ahead of the cap (an eighth of it, at most 256): the default cap
    /// leaves a quarter of the file limit free.
    fn slack(&self) -> usize {
        (self.limits.max_connections / 8).clamp(1, 256)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every update is a single step.
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a slot for a connection from `ip`, or says which cap it would break.
    fn admit(&self, ip: IpAddr) -> Result<Slot, Shed> {
        let exempt = self.limits.exempt.contains(&ip);
        let (address, network) = (address_of(ip), network_of(ip));
        let mut counts = self.lock();
        if !exempt {
            if counts.by_address.get(&address).copied().unwrap_or(0) >= self.limits.per_address {
                return Err(Shed::Address);
            }
            if counts.by_network.get(&network).copied().unwrap_or(0) >= self.limits.per_network {
                return Err(Shed::Network);
            }
        }
        if counts.total >= self.limits.max_connections {
            // The evicted connection gives its slot back when its task has closed it, a moment later.
            let Some((_, bell)) = counts.unanswered.pop_first() else { return Err(Shed::Total) };
            bell.notify_one();
        }
        if !exempt {
            *counts.by_address.entry(address).or_default() += 1;
            *counts.by_network.entry(network).or_default() += 1;
        }
        counts.total += 1;
        counts.next_id += 1;
        let (id, evicted) = (counts.next_id, Arc::new(Notify::new()));
        counts.unanswered.insert(id, evicted.clone());
        Ok(Slot { tracker: self.clone(), keys: (!exempt).then_some((address, network)), id, evicted, answered: false })
    }

    fn open(&self) -> usize {
        self.lock().total
    }
}

/// One open connection's place in the counts, given back when dropped.
#[derive(Debug)]
struct Slot {
    tracker: Tracker,
    keys: Option<(IpAddr, IpAddr)>,
    id: u64,
    /// Rung when the connection is evicted to make room.
    evicted: Arc<Notify>,
    answered: bool,
}

impl Slot {
    /// The server has written to this connection: it is a working client's, no longer evictable.
    fn answered(&mut self) {
        if !self.answered {
            self.answered = true;
            self.tracker.lock().unanswered.remove(&self.id);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.tracker.lock();
        let counts = &mut *guard;
        counts.total = counts.total.saturating_sub(1);
        if !self.answered {
            counts.unanswered.remove(&self.id);
        }
        if let Some((address, network)) = self.keys {
            for (map, key) in [(&mut counts.by_address, address), (&mut counts.by_network, network)] {
                if let Some(n) = map.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        map.remove(&key);
                    }
                }
            }
        }
        drop(guard);
        self.tracker.freed.notify_waiters();
    }
}

/// A TCP stream that holds its connection's slot.
#[derive(Debug)]
struct Counted {
    stream: TcpStream,
    slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.slot.answered();
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.slot.answered();
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Shed connections since the last log line, logged at most every [`SHED_LOG_EVERY`].
struct ShedLog {
    since: Instant,
    counts: [u64; 3],
}

impl ShedLog {
    fn note(&mut self, why: Shed, open: usize) {
        self.counts[why as usize] += 1;
        if self.since.elapsed() >= SHED_LOG_EVERY {
            let [total, address, network] = std::mem::take(&mut self.counts);
            tracing::warn!(total, address, network, open, "connections over a cap were closed on accept");
            self.since = Instant::now();
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` completes, then waits for the
/// open connections to finish (bound that wait from outside).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let tracker = Tracker::new(limits);
    // Connections hold a receiver; when the sender is dropped, they shut down gracefully, and
    // `closed()` tells when the last one is gone.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shed = ShedLog { since: Instant::now(), counts: [0; 3] };
    let mut shutdown = pin!(shutdown);
    loop {
        tracker.within_cap().await;
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match tracker.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                // Closing at once (with a reset, not a lingering FIN handshake) frees the descriptor now.
                let _ = stream.set_zero_linger();
                drop(stream);
                shed.note(why, tracker.open());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let evicted = slot.evicted.clone();
        let io = TokioIo::new(Counted { stream, slot });
        let service = router.clone().map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.map(Body::new)
        });
        let connection = http.serve_connection(io, TowerToHyperService::new(service)).with_upgrades();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                // Dropping the connection closes it.
                () = evicted.notified() => return,
                _ = stop.changed() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    stop_tx.closed().await;
    Ok(())
}

/// A failed `accept`: a connection that went away before it was accepted is nothing; running out
/// of file descriptors (or memory) is logged and waited out briefly instead of spinning.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; pausing 50 ms");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn limits(total: usize, per_address: usize, per_network: usize) -> Limits {
        Limits {
            max_connections: total,
            per_address,
            per_network,
            header_timeout: Duration::from_secs(1),
            exempt: vec!["10.0.0.1".parse().unwrap()],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_per_address_and_network_and_slots_come_back() {
        let t = Tracker::new(limits(100, 2, 3));
        let a1 = t.admit(ip("192.0.2.1")).unwrap();
        let _a2 = t.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(t.admit(ip("192.0.2.1")).unwrap_err(), Shed::Address);
        let _b = t.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(t.admit(ip("192.0.2.3")).unwrap_err(), Shed::Network, "the /24 is full");
        let _c = t.admit(ip("198.51.100.1")).unwrap();
        let _proxy: Vec<_> = (0..5).map(|_| t.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(t.open(), 9, "the proxy is exempt from the per-address caps");
        drop(a1);
        assert_eq!(t.open(), 8);
        let _again = t.admit(ip("192.0.2.3")).unwrap();
        assert_eq!(t.lock().by_address.len(), 4, "{:?}", t.lock());
    }

    #[test]
    fn the_total_evicts_the_oldest_unanswered_connection_first() {
        let t = Tracker::new(limits(3, 10, 10));
        let mut answered = t.admit(ip("192.0.2.1")).unwrap();
        answered.answered();
        let old = t.admit(ip("198.51.100.1")).unwrap();
        let newer = t.admit(ip("198.51.100.2")).unwrap();
        let _new = t.admit(ip("203.0.113.1")).unwrap();
        assert!(old.evicted.notified().now_or_never().is_some(), "the oldest unanswered one is evicted");
        assert!(newer.evicted.notified().now_or_never().is_none());
        drop(old);
        let mut full: Vec<Slot> = Vec::new();
        // Once everything open has been answered, a newcomer is shed instead.
        for mut s in [newer, _new] {
            s.answered();
            full.push(s);
        }
        assert_eq!(t.admit(ip("203.0.113.9")).unwrap_err(), Shed::Total);
        assert_eq!(t.open(), 3);
    }

    #[test]
    fn the_default_total_follows_the_file_limit() {
        let config = domain::config::Config::default();
        assert_eq!(Limits::new(&config, 1024).max_connections, 768);
        assert_eq!(Limits::new(&config, 1 << 20).max_connections, 16_384);
        let config = domain::config::Config { max_connections: Some(50), ..config };
        assert_eq!(Limits::new(&config, 1 << 20).max_connections, 50);
        let config = domain::config::Config { max_connections: Some(50_000), ..config };
        assert_eq!(Limits::new(&config, 1024).max_connections, 768, "never above the file limit");
    }
}
