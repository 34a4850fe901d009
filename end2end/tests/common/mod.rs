//! What every browser test needs: the real server binary on a free port with a fresh data
//! directory, ChromeDriver, headless Chromium sessions (each with its own profile), and waiting
//! helpers that poll instead of sleeping.

#![allow(dead_code)] // each test file uses its own subset

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const PASSWORD: &str = "correct horse battery";

/// A child process killed when the test ends, however it ends.
pub struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn env_path(name: &str) -> PathBuf {
    let value = std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} is not set: browser tests need the built server and site; run them with `cargo xtask test`")
    });
    let path = PathBuf::from(value);
    assert!(path.exists(), "{name}={} does not exist; run `cargo xtask test`", path.display());
    path
}

pub struct Server {
    pub url: String,
    _process: Guard,
    pub data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

pub async fn start_server() -> Server {
    let bin = env_path("CHATALOT_SERVER_BIN");
    let site = env_path("CHATALOT_SITE_DIR");
    let port = free_port();
    let data = std::env::temp_dir().join(format!("chatalot-e2e-{port}-{}", std::process::id()));
    let process = Command::new(bin)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", &data)
        .env("SITE_DIR", site)
        .env("REGISTRATION_MODE", "open")
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start chatalot-server");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "server did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { url, _process: Guard(process), data }
}

pub fn start_chromedriver() -> (Guard, u16) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver on PATH (cargo xtask test installs it)");
    (Guard(child), port)
}

pub async fn browser(driver_port: u16, javascript: bool, width: u32, dark: bool) -> Client {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium");
    // A fresh profile per session: separate people, and no IndexedDB left from an earlier run.
    static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = std::env::temp_dir().join(format!("chatalot-chrome-{}-{driver_port}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let mut options = json!({
        "binary": chromium,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            format!("--window-size={width},900"), format!("--user-data-dir={}", profile.display()),
        ],
    });
    if width < 500 {
        // Desktop Chromium windows cannot be narrower than ~500 px: emulate a phone's viewport instead.
        options["mobileEmulation"] = json!({ "deviceMetrics": { "width": width, "height": 740, "pixelRatio": 1.0 } });
    }
    if dark {
        // The operating system's "dark" preference, as the page's `prefers-color-scheme` sees it.
        options["args"]
            .as_array_mut()
            .unwrap()
            .extend([json!("--force-dark-mode"), json!("--blink-settings=preferredColorScheme=0")]);
    }
    if !javascript {
        options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let started = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
        {
            Ok(c) => return c,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot start a Chromium session: {e}"),
        }
    }
}

/// Runs `body` with a browser and always closes the browser, even when `body` panics.
pub async fn with_browser<F, Fut>(javascript: bool, width: u32, dark: bool, body: F)
where
    F: FnOnce(Client, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let server = start_server().await;
    let (_driver, port) = start_chromedriver();
    let client = browser(port, javascript, width, dark).await;
    let url = server.url.clone();
    let outcome = tokio::spawn({
        let client = client.clone();
        async move { body(client, url).await }
    })
    .await;
    let _ = client.close().await;
    drop(server);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

pub async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css:?}: {e}"))
}

/// The element's text. A page that navigates between finding and reading (a form post without
/// JavaScript) leaves a stale element: look it up again.
pub async fn text(c: &Client, css: &str) -> String {
    let mut tries = 0;
    loop {
        match find(c, css).await.text().await {
            Ok(text) => return text,
            Err(e) if tries < 20 && e.to_string().contains("stale element") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reading {css:?}: {e}"),
        }
    }
}

/// Waits until the element's text is `expected` (errors appear after an asynchronous round trip).
pub async fn wait_text(c: &Client, css: &str, expected: &str) {
    let started = Instant::now();
    loop {
        let now = text(c, css).await;
        if now == expected {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{css}: expected {expected:?}, got {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the element's text starts with `prefix`; returns the text.
pub async fn wait_prefix(c: &Client, css: &str, prefix: &str) -> String {
    let started = Instant::now();
    loop {
        let now = text(c, css).await;
        if now.starts_with(prefix) {
            return now;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{css}: expected {prefix:?}…, got {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn fill(c: &Client, name: &str, value: &str) {
    let field = find(c, &format!("input[name={name}]")).await;
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

pub async fn wait_path(c: &Client, path: &str) {
    let started = Instant::now();
    loop {
        let url = c.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "expected {path}, still at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Saves a screenshot when `CHATALOT_E2E_SCREENSHOTS` names a directory (for looking at the UI).
pub async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("CHATALOT_E2E_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
    }
}

pub async fn submit(c: &Client, form: &str) {
    find(c, &format!("#{form} button[type=submit]")).await.click().await.unwrap();
}

pub async fn hydrated(c: &Client) {
    // The Show/Hide toggle only works once the WASM app has hydrated the page.
    let started = Instant::now();
    loop {
        find(c, "[data-toggle-for=password]").await.click().await.unwrap();
        let kind = find(c, "input[name=password]").await.attr("type").await.unwrap();
        if kind.as_deref() == Some("text") {
            find(c, "[data-toggle-for=password]").await.click().await.unwrap();
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the page never hydrated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn marker(c: &Client) -> Value {
    c.execute("return window.__chatalot_no_reload || null;", vec![]).await.unwrap()
}

/// The brightness (0–255) of the page background.
pub async fn background_brightness(c: &Client) -> i64 {
    let rgb: Value = c
        .execute(
            // Paint the computed colour (which may be oklch) on a canvas to read it back as sRGB.
            "const ctx = document.createElement('canvas').getContext('2d'); \
             ctx.fillStyle = getComputedStyle(document.body).backgroundColor; ctx.fillRect(0, 0, 1, 1); \
             const [r, g, b] = ctx.getImageData(0, 0, 1, 1).data; return Math.round((r + g + b) / 3);",
            vec![],
        )
        .await
        .unwrap();
    rgb.as_i64().unwrap()
}
