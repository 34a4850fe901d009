//! The real desktop window, driven through WebKitWebDriver (directly: tauri-driver's proxy drops
//! sessions on this kind of machine) under Xvfb, against a real Chatalot server.
//!
//! `cargo xtask desktop --test` runs it inside `xvfb-run`, `dbus-run-session` and a fresh kernel
//! session keyring (`keyctl session -`), with `CHATALOT_SERVER_BIN` and `CHATALOT_SITE_DIR` set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed unwrap is a failed test

use serde_json::{Value, json};
use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const APP: &str = env!("CARGO_BIN_EXE_chatalot-desktop");
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() > within {
            panic!("{what}: not within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(url: &str) -> Option<u16> {
    ureq::get(url).config().http_status_as_error(false).build().call().ok().map(|r| r.status().as_u16())
}

/// The Chatalot server under test, on a free port with a fresh data directory.
fn chat_server(dir: &Path) -> (Running, String) {
    let bin =
        std::env::var("CHATALOT_SERVER_BIN").expect("CHATALOT_SERVER_BIN: run this with cargo xtask desktop --test");
    let site = std::env::var("CHATALOT_SITE_DIR").expect("CHATALOT_SITE_DIR: run this with cargo xtask desktop --test");
    let port = free_port();
    let child = Command::new(bin)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", dir.join("server"))
        .env("SITE_DIR", site)
        .env("REGISTRATION_MODE", "open")
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the chat server");
    let url = format!("http://127.0.0.1:{port}");
    let server = Running(child);
    wait_for("the chat server's /healthz", Duration::from_secs(30), || get(&format!("{url}/healthz")) == Some(200));
    (server, url)
}

/// An https server whose certificate nobody vouches for (self-signed).
fn untrusted_tls_server(dir: &Path) -> (Running, String) {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success());
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &port.to_string(), "-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let running = Running(child);
    wait_for("the TLS server", Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    (running, format!("https://127.0.0.1:{port}"))
}

/// A WebDriver session on the app, through WebKitWebDriver.
struct Session {
    base: String,
}

impl Session {
    fn start(driver: &str) -> Self {
        let caps = json!({"capabilities": {"alwaysMatch": {"webkitgtk:browserOptions": {"binary": APP, "args": []}}}});
        let reply: Value =
            ureq::post(&format!("{driver}/session")).send_json(&caps).unwrap().body_mut().read_json().unwrap();
        let id = reply["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {reply}")).to_owned();
        Self { base: format!("{driver}/session/{id}") }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let mut reply = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            (_, body) => agent.post(&url).send_json(body.unwrap_or(json!({}))),
        }
        .unwrap();
        let value: Value = reply.body_mut().read_json().unwrap();
        value["value"].clone()
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap_or_default().to_owned()
    }

    fn find(&self, css: &str) -> Option<String> {
        let found = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        found[ELEMENT].as_str().map(str::to_owned)
    }

    fn wait_find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(found) = self.find(css) {
                return found;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let source = self.call("GET", "/source", None);
                let source = source.as_str().unwrap_or_default();
                let asked = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
                panic!(
                    "element {css}: not within 30 s (WebDriver: {asked}); the window is at {} showing:\n{}",
                    self.url(),
                    &source[..source.len().min(3000)]
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self, css: &str) -> String {
        let element = self.wait_find(css);
        self.call("GET", &format!("/element/{element}/text"), None).as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the text of `css` contains `needle`; returns it.
    fn wait_text(&self, css: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css);
            if text.contains(needle) {
                return text;
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!("{css} never said {needle:?}; it says {text:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_find(css);
        self.call("POST", &format!("/element/{element}/clear"), Some(json!({})));
        self.call("POST", &format!("/element/{element}/value"), Some(json!({"text": text})));
    }

    fn click(&self, css: &str) {
        let element = self.wait_find(css);
        self.call("POST", &format!("/element/{element}/click"), Some(json!({})));
    }

    /// Runs `script` (an async body: `await` works, `return` answers) in the page.
    fn run(&self, script: &str) -> Value {
        let wrapped = format!(
            "const done = arguments[arguments.length - 1]; (async () => {{ {script} }})().then(done, e => done({{error: String(e)}}));"
        );
        self.call("POST", "/execute/async", Some(json!({"script": wrapped, "args": []})))
    }

    fn wait_url(&self, prefix: &str) {
        wait_for(&format!("the window at {prefix}"), Duration::from_secs(30), || self.url().starts_with(prefix));
    }

    fn screenshot(&self, to: &Path) {
        use base64::Engine;
        let png = self.call("GET", "/screenshot", None);
        if let Some(data) = png.as_str()
            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data)
        {
            let _ = std::fs::write(to, bytes);
        }
    }

    fn end(self) {
        self.call("DELETE", "", None);
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chatalot-desktop-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    dir
}

#[test]
#[ignore = "drives the real window under Xvfb: run it with `cargo xtask desktop --test`"]
fn connect_register_keychain_links_and_a_bad_certificate() {
    let dir = scratch();
    let (_server, url) = chat_server(&dir);
    let (_tls, bad_tls) = untrusted_tls_server(&dir);
    // The system browser, as the app sees it: a stub xdg-open that writes down what it was given.
    let opened = dir.join("opened.txt");
    let stub = dir.join("bin").join("xdg-open");
    std::fs::write(&stub, format!("#!/bin/sh\necho \"$@\" >> '{}'\n", opened.display())).unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());

    let driver_port = free_port();
    let home = dir.join("home");
    let _driver = Running(
        Command::new("WebKitWebDriver")
            .arg(format!("--port={driver_port}"))
            .env("TAURI_WEBVIEW_AUTOMATION", "true")
            .env("CHATALOT_DESKTOP_KEYRING", "keyutils")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("PATH", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("WebKitWebDriver (Debian: webkit2gtk-driver)"),
    );
    let driver = format!("http://127.0.0.1:{driver_port}");
    wait_for("WebKitWebDriver", Duration::from_secs(20), || get(&format!("{driver}/status")) == Some(200));

    let app = Session::start(&driver);
    app.wait_find("#server-url");
    assert!(app.url().starts_with("tauri://localhost"), "the connect screen is the app's own page: {}", app.url());

    // Plain http to another machine: refused before anything is sent.
    app.type_into("#server-url", "http://192.0.2.10:8080");
    app.click("#connect-button");
    app.wait_text("[data-testid=connect-error]", "https://");
    // A certificate nobody vouches for: refused, with the reason.
    app.type_into("#server-url", &bad_tls);
    app.click("#connect-button");
    let said = app.wait_text("[data-testid=connect-error]", "certificate");
    println!("bad certificate: {said}");
    assert!(app.url().starts_with("tauri://localhost"), "the window went to the untrusted server");

    // The real server: checked, remembered, shown.
    app.type_into("#server-url", &url);
    app.click("#connect-button");
    app.wait_url(&url);
    app.call("POST", "/url", Some(json!({"url": format!("{url}/register")})));
    app.wait_find("#register-form");
    // The page's script runs in the window: the password's Show toggle works.
    wait_for("the password toggle", Duration::from_secs(30), || {
        app.click("[data-toggle-for=password]");
        let kind = app.run("return document.querySelector('input[name=password]').type;");
        kind.as_str() == Some("text")
    });
    app.type_into("input[name=username]", "desk");
    app.type_into("input[name=display_name]", "Desk Top");
    app.type_into("input[name=password]", "correct horse battery");
    app.click("#register-form button[type=submit]");
    app.click("[data-testid=continue]");
    // The shell, with this window as an encryption device whose vault key is in the keychain.
    wait_for("the device status", Duration::from_secs(40), || {
        app.find("[data-testid=device-status]").is_some()
            && app.text("[data-testid=device-status]").starts_with("This device: ")
    });
    println!("shell: {}", app.text("[data-testid=device-status]"));

    // The keychain round trip, as the web app does it: the same 32-byte key twice.
    let keys = app.run(
        "const a = await window.__TAURI__.core.invoke('vault_key'); \
         const b = await window.__TAURI__.core.invoke('vault_key'); return [a, b];",
    );
    let (a, b) = (keys[0].as_str().unwrap_or_default(), keys[1].as_str().unwrap_or_default());
    assert!(a.len() == 44 && a == b, "vault_key round trip: {keys}");
    // The server's page cannot point the app at another server: `connect` is the connect screen's.
    let denied = app.run("return await window.__TAURI__.core.invoke('connect', {url: 'https://example.org'});");
    assert!(denied["error"].as_str().unwrap_or_default().contains("not allowed"), "connect from the server: {denied}");
    // Tray and notification commands answer the server's page.
    let unread = app.run("return await window.__TAURI__.core.invoke('set_unread', {count: 3});");
    assert!(unread.get("error").is_none(), "set_unread: {unread}");

    // A link elsewhere opens in the system browser; the window stays.
    app.run("location.href = 'https://example.org/elsewhere'; return 1;");
    wait_for("the system browser", Duration::from_secs(10), || {
        std::fs::read_to_string(&opened).unwrap_or_default().contains("https://example.org/elsewhere")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(app.url().starts_with(&url), "the window left the server: {}", app.url());
    let shot = dir.join("desktop.png");
    app.screenshot(&shot);
    let target = std::env::var("CHATALOT_DESKTOP_SCREENSHOT").map(PathBuf::from).unwrap_or(shot);
    let _ = std::fs::copy(dir.join("desktop.png"), &target);
    app.end();

    // A new start opens the remembered server by itself, and the same keychain key.
    let again = Session::start(&driver);
    again.wait_url(&url);
    let key = again.run("return await window.__TAURI__.core.invoke('vault_key');");
    assert_eq!(key.as_str(), Some(a), "the keychain key changed across starts");
    // Switching goes back to the connect screen, with the server filled in.
    again.run("window.__TAURI__.core.invoke('switch_server'); return 1;");
    again.wait_url("tauri://localhost");
    // The page fills the field once it has asked for the remembered server (asynchronously).
    let filled = || {
        let value = again.run("return document.querySelector('#server-url').value;");
        value.as_str().map(|v| v.trim_end_matches('/').to_owned()).unwrap_or_default()
    };
    wait_for("the remembered server in the field", Duration::from_secs(10), || !filled().is_empty());
    assert_eq!(filled(), url);
    again.end();
    let _ = std::fs::remove_dir_all(&dir);
}
