//! Start-up: data directory, signing key, database, state, listener, graceful shutdown.

use crate::{
    http::{router, site_dir},
    listen::{Limits, raise_open_file_limit, serve},
};
use app::routes::OUTPUT_NAME;
use domain::{
    Core,
    config::Config,
    db,
    keys::Keys,
    password::Passwords,
    realtime::{Close, Hub, Realtime},
    session, throttle,
};
use secrecy::ExposeSecret;
use std::{path::PathBuf, sync::Arc, time::Duration};

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the server could not start; printed as one line before exiting non-zero.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot load or create the token signing key in {path}: {source}")]
    Key { path: PathBuf, source: std::io::Error },
    #[error("cannot open the {backend} database: {source}")]
    Database { backend: &'static str, source: sea_orm::DbErr },
    #[error("{0}")]
    NewerSchema(String),
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    Bus(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Everything up to a ready `Core`: data directory, key, database with migrations applied, bus.
pub async fn prepare(config: Config) -> Result<Core, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| StartError::DataDir { path: config.data_dir.clone(), source })?;
    let keys = Keys::load_or_create(&config.data_dir)
        .map_err(|source| StartError::Key { path: config.data_dir.clone(), source })?;
    let url = config.database_url();
    let backend = if url.expose_secret().starts_with("sqlite:") { "SQLite" } else { "PostgreSQL" };
    let db = db::connect_and_migrate(&url).await.map_err(|source| match source {
        sea_orm::DbErr::Custom(message) if message.starts_with(db::NEWER_SCHEMA) => StartError::NewerSchema(message),
        source => StartError::Database { backend, source },
    })?;
    let site = site_dir(&config);
    if !site.join("pkg").join(format!("{OUTPUT_NAME}.js")).is_file() {
        tracing::warn!(site = %site.display(), "web assets not found: pages render, but will not hydrate (build with `cargo xtask build`)");
    }
    let realtime = match config.nats_url.as_ref().filter(|u| !u.expose_secret().trim().is_empty()) {
        Some(url) => crate::nats::connect(url, Hub::new(uuid::Uuid::new_v4())).await.map_err(StartError::Bus)?,
        None => Realtime::local(),
    };
    Ok(Core { db, config: Arc::new(config), keys: Arc::new(keys), passwords: Passwords::default(), realtime })
}

/// Runs the server until SIGTERM or Ctrl-C, then finishes in-flight requests and exits.
pub async fn run(config: Config) -> Result<(), StartError> {
    let addr = config.listen_addr;
    let started = std::time::Instant::now();
    let limits = Limits::new(&config, raise_open_file_limit());
    // One server per SQLite file: `restore` and a second server wait for this lock. (Nodes on
    // PostgreSQL may share a DATA_DIR: it holds only the signing key they must share anyway.)
    let _lock = match crate::backup::sqlite_file(&config) {
        Ok(database) => {
            if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StartError::DataDir { path: dir.to_owned(), source })?;
            }
            Some(crate::backup::lock(&database).map_err(StartError::Locked)?)
        }
        Err(_) => None,
    };
    let state = prepare(config).await?;
    tokio::spawn({
        let passwords = state.passwords.clone();
        async move { passwords.warm_up().await }
    });
    tokio::spawn(janitor(state.clone()));
    tokio::spawn(postman(state.clone()));
    let listener = crate::listen::bind(addr).map_err(|source| StartError::Listen { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let bus = state.realtime.bus.kind();
    tracing::info!(addr = %local, bus, ms = started.elapsed().as_millis() as u64, "listening on http://{local}");
    tracing::info!(
        max = limits.max_connections,
        per_ip = limits.per_address,
        header_timeout_s = limits.header_timeout.as_secs(),
        "connection limits"
    );
    // After SIGTERM, in-flight requests get DRAIN_TIMEOUT to finish; then the server stops anyway.
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let realtime = state.realtime.clone();
    let signal = async move {
        shutdown_signal().await;
        let _ = stopping_tx.send(true);
        // Sockets are long-lived: tell their clients to reconnect (to another node, or to us after
        // the restart) and tell the other nodes these users are gone from this one.
        let offline = realtime.hub.local_presence(false);
        realtime.hub.close_all(Close::SHUTDOWN);
        realtime.publish_all(offline).await;
    };
    let serve = serve(listener, router(state.clone()), limits, signal);
    let deadline = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        served = serve => served.map_err(StartError::Serve)?,
        () = deadline => tracing::warn!(secs = DRAIN_TIMEOUT.as_secs(), "in-flight requests did not finish in time; stopping anyway"),
    }
    state.db.close_by_ref().await.ok();
    tracing::info!("stopped");
    Ok(())
}

/// Deletes expired refresh tokens and throttle counters, hourly.
async fn janitor(state: Core) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        let tokens = session::purge(&state.db, now).await;
        let counters = throttle::purge(&state.db, now - chrono::Duration::days(1)).await;
        if let (Err(e), _) | (_, Err(e)) = (&tokens, &counters) {
            tracing::warn!(error = %e, "janitor: purge failed");
        }
    }
}

/// How often scheduled messages that are due are sent (an indexed look at what is due).
const DELIVERY_ROUND: Duration = Duration::from_secs(2);

/// Sends scheduled messages when they are due, and erases disappearing messages whose time has
/// come (every node does; see `domain::scheduled` and `domain::messages::expire_due`).
async fn postman(state: Core) {
    let mut tick = tokio::time::interval(DELIVERY_ROUND);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = domain::scheduled::deliver_due(&state, chrono::Utc::now()).await {
            tracing::warn!(error = %e, "scheduled messages: delivery failed; trying again");
        }
        if let Err(e) = domain::messages::expire_due(&state, chrono::Utc::now()).await {
            tracing::warn!(error = %e, "disappearing messages: erasing failed; trying again");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
