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
use sea_orm::{ConnectionTrait, Database};
use std::{io::Write, net::SocketAddr, path::PathBuf, sync::Arc};
use tower::ServiceExt;

/// Runs the async test body once per backend: SQLite always, PostgreSQL when configured.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($db:ident: TestDb) $body:block)*) => {$(
        mod $name {
            use super::*;
            async fn body($db: TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = TestDb::sqlite().await;
                body(db.clone()).await;
                db.drop().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = TestDb::postgres().await else { return };
                body(db.clone()).await;
                db.drop().await;
            }
        }
    )*};
}

/// A fresh, migrated, empty database.
#[derive(Clone, Debug)]
pub struct TestDb {
    pub url: String,
    pub dir: PathBuf,
    admin: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("chatalot-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("chatalot.db").display());
        Self { url, dir, admin: None }
    }

    /// `None` (after saying so on stderr, uncaptured) when `TEST_DATABASE_URL` is not set.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: PostgreSQL (set TEST_DATABASE_URL=postgres://… to run this test on PostgreSQL too)"
            );
            return None;
        };
        let name = format!("chatalot_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url).await.expect("connect to TEST_DATABASE_URL");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        admin.close().await.ok();
        let (base, _) = admin_url.rsplit_once('/').expect("TEST_DATABASE_URL ends with /<database>");
        let dir = std::env::temp_dir().join(format!("chatalot-test-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        Some(Self { url: format!("{base}/{name}"), dir, admin: Some((admin_url, name)) })
    }

    pub fn is_postgres(&self) -> bool {
        self.admin.is_some()
    }

    pub async fn drop(self) {
        if let Some((admin_url, name)) = self.admin
            && let Ok(admin) = Database::connect(&admin_url).await
        {
            let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            admin.close().await.ok();
        }
        let _ = std::fs::remove_dir_all(self.dir);
    }

    pub fn config(&self, mode: RegistrationMode) -> Config {
        Config {
            data_dir: self.dir.clone(),
            database_url: Some(self.url.clone().into()),
            registration_mode: mode,
            site_dir: Some(self.dir.join("site")),
            ..Config::default()
        }
    }

    /// State over this database with the real migrations applied.
    pub async fn state(&self, mode: RegistrationMode) -> Core {
        server::start::prepare(self.config(mode)).await.expect("prepare state")
    }
}

/// An account inserted directly (no password hashing): for tests about what accounts may do.
pub async fn new_user(db: &sea_orm::DatabaseConnection, name: &str) -> entity::user::Model {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    entity::user::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        username: Set(name.into()),
        username_key: Set(name.to_lowercase()),
        display_name: Set(name.into()),
        password_hash: Set("unused".into()),
        recovery_code_hash: Set("unused".into()),
        owner_slot: Set(None),
        is_admin: Set(false),
        created_at: Set(chrono::Utc::now()),
        password_changed_at: Set(chrono::Utc::now()),
        suspended_at: Set(None),
        presence: Set(0),
    }
    .insert(db)
    .await
    .unwrap()
}

/// Registers a device `id` for `user` (signed keys, as a browser would): messages are sent from
/// registered devices only.
pub async fn with_device(core: &Core, user: uuid::Uuid, id: &str) -> TestDevice {
    let device = TestDevice::new(user, id);
    domain::keys_directory::register_device(core, user, device.keys()).await.unwrap();
    device
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
}

impl Reply {
    async fn read(res: Response<Body>) -> Self {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        Self { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error(&self) -> app::error::AppError {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not an AppError ({e}): {} {}", self.status, self.body))
    }
}

/// A device's signing key, as the browser's vodozemac account will hold it.
pub struct TestDevice {
    pub user: uuid::Uuid,
    pub id: String,
    pub signing: ed25519_dalek::SigningKey,
}

impl TestDevice {
    pub fn new(user: uuid::Uuid, id: &str) -> Self {
        Self { user, id: id.into(), signing: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    pub fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    }

    pub fn keys(&self) -> app::model::keys::DeviceKeys {
        use ed25519_dalek::Signer;
        let curve = Self::b64(&[9u8; 32]);
        let ed = Self::b64(self.signing.verifying_key().as_bytes());
        let payload = app::model::keys::device_signing_payload(self.user, &self.id, &curve, &ed);
        let sig = self.signing.sign(payload.as_bytes());
        app::model::keys::DeviceKeys {
            user_id: self.user,
            device_id: self.id.clone(),
            curve25519: curve,
            ed25519: ed,
            signature: Self::b64(&sig.to_bytes()),
        }
    }

    pub fn key(&self, key_id: &str) -> app::model::keys::SignedKey {
        use ed25519_dalek::Signer;
        let public = Self::b64(&[key_id.len() as u8; 32]);
        let payload = app::model::keys::key_signing_payload(self.user, &self.id, key_id, &public);
        let sig = self.signing.sign(payload.as_bytes());
        app::model::keys::SignedKey { key_id: key_id.into(), public_key: public, signature: Self::b64(&sig.to_bytes()) }
    }
}
