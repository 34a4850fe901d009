//! The real server binary as a child process: on a free port, with its own data directory, waited
//! for until `/healthz` answers 200, killed when dropped.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free port on the loopback interface (bound, then released for the server to take).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap()
}

/// A running server process.
pub struct ServerProcess {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`
    pub url: String,
    child: Child,
}

impl ServerProcess {
    /// Starts `bin` with `DATA_DIR=data_dir`, `LISTEN_ADDR` on a free port, `SITE_DIR` inside the
    /// data directory unless given, logs at `warn` unless given, and `env` on top (an empty value
    /// removes the variable); waits up to 30 s for `/healthz` to answer 200.
    pub fn start(bin: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let addr = free_addr();
        let mut command = Command::new(bin);
        command
            .env("LISTEN_ADDR", addr.to_string())
            .env("DATA_DIR", data_dir)
            .env("SITE_DIR", data_dir.join("site"))
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("NATS_URL")
            .stdout(Stdio::null());
        for (name, value) in env {
            match value.is_empty() {
                true => command.env_remove(name),
                false => command.env(name, value),
            };
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let process = Self { addr, url: format!("http://{addr}"), child };
        let started = Instant::now();
        while process.get("/healthz").is_none_or(|(status, _)| status != 200) {
            assert!(started.elapsed() < Duration::from_secs(30), "the server on {addr} did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
        process
    }

    /// A plain HTTP/1.0 GET: the status and body, or `None` if nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).as_bytes()).ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).ok()?;
        let status = reply.split_whitespace().nth(1)?.parse().ok()?;
        let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Some((status, body))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory, from `/proc` (0 where there is none).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A path from an environment variable that must exist (the built server, the built site).
pub fn env_path(name: &str) -> PathBuf {
    let value = std::env::var_os(name)
        .unwrap_or_else(|| panic!("{name} is not set: run the tests with `cargo xtask test`, which builds it"));
    let path = PathBuf::from(value);
    assert!(path.exists(), "{name}={} does not exist; run `cargo xtask test`", path.display());
    path
}
