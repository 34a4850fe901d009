//! A real server on a real port (port 0), and the test kit's WebSocket client.

use domain::Core;
use std::net::SocketAddr;
use tokio::task::JoinHandle;

pub use testkit::{
    session_cookie as cookies_for,
    ws::{Got, PATIENCE, Ws, send_frame},
};

/// The real router on a real port (port 0), in this process: tests reach the same `Core`.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Core,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(state: Core) -> Self {
        let listener = server::listen::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = server::listen::Limits::new(&state.config, 1024);
        let router = server::router(state.clone());
        let task = tokio::spawn(async move {
            server::listen::serve(listener, router, limits, std::future::pending()).await.unwrap();
        });
        Self { addr, state, task }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
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
