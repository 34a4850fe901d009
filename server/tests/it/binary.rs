//! The real binary: `--help`, configuration and start-up errors (one line, non-zero exit, no
//! panic), health, and graceful shutdown on SIGTERM.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_chatalot-server");

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chatalot-bin-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    for var in
        ["LISTEN_ADDR", "DATA_DIR", "DATABASE_URL", "REGISTRATION_MODE", "SITE_DIR", "PUBLIC_URL", "TRUSTED_PROXIES"]
    {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied()).env("RUST_LOG", "error").output().unwrap()
}

fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("chatalot-server:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(needle), "{stderr}");
}

#[test]
fn help_lists_the_configuration() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let settings = domain::config::SETTINGS.iter().map(|s| s.env);
    for var in settings.chain(["RUST_LOG", "--config"]) {
        assert!(help.contains(var), "--help lacks {var}:\n{help}");
    }
}

#[test]
fn invalid_configuration_is_one_line_and_exit_2() {
    assert_one_line_error(&run(&[("LISTEN_ADDR", "localhost-ish")]), 2, "LISTEN_ADDR");
    assert_one_line_error(&run(&[("REGISTRATION_MODE", "maybe")]), 2, "maybe");
    assert_one_line_error(&run(&[("DATABASE_URL", "mysql://db/chat")]), 2, "DATABASE_URL");
    let out = Command::new(BIN).args(["--config", "/nonexistent/chatalot.toml"]).output().unwrap();
    assert_one_line_error(&out, 2, "does not exist");
    let out = Command::new(BIN).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unreachable_database_at_start_up_is_one_line_and_exit_1() {
    let dir = temp_dir("nodb");
    // Nothing listens on port 1.
    let out =
        run(&[("DATA_DIR", dir.to_str().unwrap()), ("DATABASE_URL", "postgres://chat:secret-pw@127.0.0.1:1/chat")]);
    assert_one_line_error(&out, 1, "cannot open the PostgreSQL database");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("secret-pw"), "the password was printed");
    let _ = std::fs::remove_dir_all(dir);
}

/// An older binary on a database a newer one migrated: it refuses to start, and says why and what
/// to do, instead of running on a schema it does not know.
#[tokio::test]
async fn an_older_binary_refuses_a_newer_schema() {
    use sea_orm::{ConnectionTrait, Statement};
    let dir = temp_dir("newer");
    let url = format!("sqlite://{}/chatalot.db?mode=rwc", dir.display());
    let db = domain::db::connect_and_migrate(&url.clone().into()).await.unwrap();
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29990101_000001_from_the_future', 0)",
    ))
    .await
    .unwrap();
    db.close().await.unwrap();
    let out = tokio::task::spawn_blocking(move || {
        run(&[("DATA_DIR", dir.to_str().unwrap()), ("DATABASE_URL", &url), ("LISTEN_ADDR", "127.0.0.1:0")])
    })
    .await
    .unwrap();
    assert_one_line_error(&out, 1, "a newer version of Chatalot");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("m29990101_000001_from_the_future"), "{stderr}");
    assert!(stderr.contains("restore a backup"), "{stderr}");
}

#[test]
fn unusable_data_directory_is_one_line_and_exit_1() {
    let dir = temp_dir("file");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    assert_one_line_error(&run(&[("DATA_DIR", file.to_str().unwrap())]), 1, "cannot create the data directory");
    let _ = std::fs::remove_dir_all(dir);
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

#[cfg(unix)]
#[test]
fn starts_healthy_on_sqlite_and_stops_gracefully_on_sigterm() {
    let dir = temp_dir("run");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", &dir)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let health = loop {
        if let Some(reply) = get(port, "/healthz") {
            break reply;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never became healthy");
        std::thread::sleep(Duration::from_millis(20));
    };
    let ready = started.elapsed();
    assert!(health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"database\":\"ok\""), "{health}");
    // Created on first start: the database (WAL mode) and the signing key.
    assert!(dir.join("chatalot.db").is_file() && dir.join("token_signing_key.pem").is_file());
    assert!(dir.join("chatalot.db-wal").exists(), "SQLite is not in WAL mode");
    // The container's health check: the binary itself, no shell or curl.
    let check = |addr: &str| Command::new(BIN).arg("healthcheck").env("LISTEN_ADDR", addr).output().unwrap();
    let healthy = check(&format!("127.0.0.1:{port}"));
    assert!(healthy.status.success(), "{}", String::from_utf8_lossy(&healthy.stderr));
    // Listening on every address: it asks the loopback one.
    assert!(check(&format!("0.0.0.0:{port}")).status.success());

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(stopped.elapsed() < Duration::from_secs(10), "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    child.stdout.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "exit {status}: {log}");
    assert!(log.contains("shutting down") && log.contains("stopped"), "{log}");
    let down = check(&format!("127.0.0.1:{port}"));
    assert_one_line_error(&down, 1, "not healthy");
    eprintln!("start to healthy: {} ms", ready.as_millis());
    let _ = std::fs::remove_dir_all(dir);
}

/// The bundle version the server at `bin` links its pages to, started without `SITE_DIR`.
fn linked_bundle(bin: &std::path::Path, data: &std::path::Path) -> String {
    std::fs::create_dir_all(data).unwrap();
    let server = testkit::process::ServerProcess::start(bin, data, &[("SITE_DIR", "")]);
    let (status, page) = server.get("/login").unwrap();
    assert_eq!(status, 200);
    page.split("/pkg/").nth(1).and_then(|s| s.split('-').next()).unwrap_or_default().to_owned()
}

/// A dev build keeps its site beside the binary (`<target>/debug/site`) and a release build one
/// level up (`<target>/site`, or a deployment's `site/` beside `bin/`): each binary serves its own,
/// so the release server never serves the debug bundle.
#[test]
fn each_binary_serves_the_site_of_its_own_build() {
    let dir = temp_dir("site");
    let bin = dir.join("release").join("chatalot-server");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    if std::fs::hard_link(BIN, &bin).is_err() {
        std::fs::copy(BIN, &bin).unwrap();
    }
    let write_site = |site: std::path::PathBuf, version: &str| {
        std::fs::create_dir_all(site.join("pkg")).unwrap();
        std::fs::write(site.join("pkg/version"), version).unwrap();
    };
    // A release layout: the site one level up from the binary.
    write_site(dir.join("site"), "releasebundle");
    assert_eq!(linked_bundle(&bin, &dir.join("data-1")), "releasebundle");
    // A dev build's site beside its binary wins.
    write_site(dir.join("release").join("site"), "devbundle");
    assert_eq!(linked_bundle(&bin, &dir.join("data-2")), "devbundle");
    let _ = std::fs::remove_dir_all(&dir);
}
