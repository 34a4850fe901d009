//! Test harness: a fresh database per test (SQLite file, or PostgreSQL when `TEST_DATABASE_URL`
//! is set), the real migrations, the real router, and helpers to call server functions.
#![allow(dead_code)]

pub mod live;

use app::model::RegistrationMode;
use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderMap, Request, Response, header},
};
use domain::{Core, config::Config, keys::Keys, password::Passwords};
use http_body_util::BodyExt;
use std::{net::SocketAddr, sync::Arc};
use tower::ServiceExt;

pub use testkit::{TestDb, TestDevice, new_user, on_both_backends, with_device};

/// What the server tests make of a fresh database: a configuration and a migrated `Core`.
#[allow(async_fn_in_trait)] // test-only: no Send bound needed
pub trait Prepare {
    fn config(&self, mode: RegistrationMode) -> Config;
    /// The domain over this database with the real migrations applied.
    async fn state(&self, mode: RegistrationMode) -> Core;
}

impl Prepare for TestDb {
    fn config(&self, mode: RegistrationMode) -> Config {
        Config {
            data_dir: self.dir.clone(),
            database_url: Some(self.url.clone().into()),
            registration_mode: mode,
            site_dir: Some(self.dir.join("site")),
            ..Config::default()
        }
    }

    async fn state(&self, mode: RegistrationMode) -> Core {
        server::start::prepare(self.config(mode)).await.expect("prepare state")
    }
}

/// The client-visible form of a server error.
pub fn err(e: domain::error::ServerError) -> app::error::AppError {
    e.into()
}

/// A state that shares `state`'s database and keys but has another registration mode.
pub fn with_mode(state: &Core, mode: RegistrationMode) -> Core {
    let mut config = (*state.config).clone();
    config.registration_mode = mode;
    Core { config: Arc::new(config), ..state.clone() }
}

pub fn fresh_keys() -> Arc<Keys> {
    Arc::new(Keys::generate().unwrap())
}

pub fn passwords() -> Passwords {
    Passwords::default()
}

/// Drives the real router without a socket, keeping cookies like a browser.
pub struct Client {
    pub router: Router,
    pub cookies: Vec<(String, String)>,
    pub ip: SocketAddr,
}

impl Client {
    pub fn new(state: &Core) -> Self {
        Self { router: server::router(state.clone()), cookies: vec![], ip: "192.0.2.10:5000".parse().unwrap() }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub async fn send(&mut self, mut req: Request<Body>) -> Reply {
        if !self.cookies.is_empty() && !req.headers().contains_key(header::COOKIE) {
            req.headers_mut().insert(header::COOKIE, self.cookie_header().parse().unwrap());
        }
        req.extensions_mut().insert(ConnectInfo(self.ip));
        let res = self.router.clone().oneshot(req).await.expect("router is infallible");
        let reply = Reply::read(res).await;
        for set in reply.headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            let expired = set.contains("Max-Age=0") || value.is_empty();
            if !expired {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        reply
    }

    /// Calls a server function the way the hydrated app does (form-encoded, fetch-style).
    pub async fn call(&mut self, endpoint: &str, form: &[(&str, &str)]) -> Reply {
        let body = form_encode(form);
        let req = Request::post(format!("/api/v1/{endpoint}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::CONTENT_LENGTH, body.len())
            .header(header::ACCEPT, "application/json")
            .body(Body::from(body))
            .unwrap();
        self.send(req).await
    }

    /// Calls a server function that takes a JSON body (the key directory).
    pub async fn call_json(&mut self, endpoint: &str, body: &str) -> Reply {
        let req = Request::post(format!("/api/v1/{endpoint}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(req).await
    }

    /// Submits a form the way a browser without JavaScript does.
    pub async fn submit(&mut self, endpoint: &str, form: &[(&str, &str)], referer: &str) -> Reply {
        let body = form_encode(form);
        let req = Request::post(format!("/api/v1/{endpoint}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::CONTENT_LENGTH, body.len())
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .header(header::REFERER, referer)
            .body(Body::from(body))
            .unwrap();
        self.send(req).await
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::get(path).header(header::ACCEPT, "text/html").body(Body::empty()).unwrap()).await
    }
}

pub fn form_encode(form: &[(&str, &str)]) -> String {
    form.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    /// The body's length in bytes as sent (`body` is its lossy UTF-8 reading).
    pub len: usize,
}

impl Reply {
    async fn read(res: Response<Body>) -> Self {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        Self { status, headers, len: bytes.len(), body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error(&self) -> app::error::AppError {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not an AppError ({e}): {} {}", self.status, self.body))
    }
}
