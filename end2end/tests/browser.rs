//! Headless Chromium (driven through ChromeDriver) against the real server binary:
//! register → sign out → sign in → the app shell, once with JavaScript disabled (server-rendered
//! forms only) and once hydrated (no page reloads; interactions that only work after hydration).
//!
//! Run by `cargo xtask test`, which builds the server and the site and sets
//! `CHATALOT_SERVER_BIN` and `CHATALOT_SITE_DIR`.

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const PASSWORD: &str = "correct horse battery";

/// A child process killed when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn env_path(name: &str) -> PathBuf {
    let value = std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} is not set: browser tests need the built server and site; run them with `cargo xtask test`")
    });
    let path = PathBuf::from(value);
    assert!(path.exists(), "{name}={} does not exist; run `cargo xtask test`", path.display());
    path
}

struct Server {
    url: String,
    _process: Guard,
    data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

async fn start_server() -> Server {
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

fn start_chromedriver() -> (Guard, u16) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver on PATH (cargo xtask test installs it)");
    (Guard(child), port)
}

async fn browser(driver_port: u16, javascript: bool, width: u32, dark: bool) -> Client {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium");
    let profile = std::env::temp_dir().join(format!("chatalot-chrome-{driver_port}-{javascript}"));
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
async fn with_browser<F, Fut>(javascript: bool, width: u32, dark: bool, body: F)
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

async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css:?}: {e}"))
}

/// The element's text. A page that navigates between finding and reading (a form post without
/// JavaScript) leaves a stale element: look it up again.
async fn text(c: &Client, css: &str) -> String {
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
async fn wait_text(c: &Client, css: &str, expected: &str) {
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
async fn wait_prefix(c: &Client, css: &str, prefix: &str) -> String {
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

async fn fill(c: &Client, name: &str, value: &str) {
    let field = find(c, &format!("input[name={name}]")).await;
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn wait_path(c: &Client, path: &str) {
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
async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("CHATALOT_E2E_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
    }
}

async fn submit(c: &Client, form: &str) {
    find(c, &format!("#{form} button[type=submit]")).await.click().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_work_without_javascript() {
    with_browser(false, 1280, false, |c, url| async move {
        c.goto(&format!("{url}/register")).await.unwrap();
        assert!(text(&c, "[data-testid=first-account]").await.contains("owner"));
        fill(&c, "username", "nojs").await;
        fill(&c, "display_name", "No Script").await;
        fill(&c, "password", PASSWORD).await;
        submit(&c, "register-form").await;
        wait_path(&c, "/welcome").await;
        let code = text(&c, "[data-testid=recovery-code]").await;
        assert_eq!(code.len(), 19, "recovery code {code:?}");
        find(&c, "[data-testid=continue]").await.click().await.unwrap();
        wait_path(&c, "/").await;
        assert_eq!(text(&c, "[data-testid=display-name]").await, "No Script");

        submit(&c, "logout-form").await;
        wait_path(&c, "/login").await;
        // Without JavaScript the password toggle does nothing: proof that this run is not hydrated.
        find(&c, "[data-toggle-for=password]").await.click().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let kind = find(&c, "input[name=password]").await.attr("type").await.unwrap();
        assert_eq!(kind.as_deref(), Some("password"));

        // A wrong password is reported next to the field, by the server-rendered page.
        fill(&c, "username", "nojs").await;
        fill(&c, "password", "not the password").await;
        submit(&c, "login-form").await;
        wait_text(&c, "[data-error-for=password]", "Wrong username or password.").await;
        let kept = find(&c, "input[name=username]").await.prop("value").await.unwrap();
        assert_eq!(kept.as_deref(), Some("nojs"), "the typed username was lost");
        let password = find(&c, "input[name=password]").await.prop("value").await.unwrap();
        assert_eq!(password.as_deref(), Some(""), "a password came back from the server");

        fill(&c, "username", "nojs").await;
        fill(&c, "password", PASSWORD).await;
        submit(&c, "login-form").await;
        wait_path(&c, "/").await;
        assert_eq!(text(&c, "[data-testid=display-name]").await, "No Script");

        // The sidebar lists what the user belongs to; forms work without JavaScript, errors included.
        find(&c, "[data-testid=no-spaces]").await;
        fill(&c, "code", "NOPE-NOPE-NOPE").await;
        submit(&c, "join-form").await;
        wait_text(&c, "[data-error-for=code]", "This invite code is not valid (unknown, used up or expired).").await;
        fill(&c, "name", "Book club").await;
        submit(&c, "create-community-form").await;
        wait_text(&c, "[data-testid=community] h2", "Book club").await;
        assert!(text(&c, "[data-testid=channel]").await.contains("# general"));
        screenshot(&c, "shell-desktop-nojs").await;
    })
    .await;
}

async fn hydrated(c: &Client) {
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

async fn marker(c: &Client) -> Value {
    c.execute("return window.__chatalot_no_reload || null;", vec![]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_work_hydrated_without_reloads() {
    with_browser(true, 360, false, |c, url| async move {
        c.goto(&format!("{url}/register")).await.unwrap();
        hydrated(&c).await;
        // Anything set on `window` survives only as long as the page is not reloaded.
        c.execute("window.__chatalot_no_reload = 'still here';", vec![]).await.unwrap();

        // Client-side validation errors come back from the server without a reload.
        fill(&c, "username", "hy").await;
        fill(&c, "display_name", "Hydra").await;
        fill(&c, "password", PASSWORD).await;
        submit(&c, "register-form").await;
        wait_text(&c, "[data-error-for=username]", "must be at least 3 characters").await;
        assert_eq!(marker(&c).await, json!("still here"));

        fill(&c, "username", "hydra").await;
        submit(&c, "register-form").await;
        wait_path(&c, "/welcome").await;
        assert_eq!(text(&c, "[data-testid=recovery-code]").await.len(), 19);
        screenshot(&c, "welcome-mobile").await;
        find(&c, "[data-testid=continue]").await.click().await.unwrap();
        wait_path(&c, "/").await;
        assert_eq!(marker(&c).await, json!("still here"), "navigation reloaded the page");

        // 360 px wide: the sidebar folds behind the menu button, and nothing overflows sideways.
        assert_eq!(c.execute("return window.innerWidth;", vec![]).await.unwrap(), json!(360));
        let overflow: Value =
            c.execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await.unwrap();
        assert!(overflow.as_i64().unwrap() <= 0, "horizontal overflow of {overflow} px at 360 px");
        let menu = find(&c, "[data-testid=menu-button]").await;
        assert_eq!(menu.attr("aria-expanded").await.unwrap().as_deref(), Some("false"));
        menu.click().await.unwrap();
        assert_eq!(
            find(&c, "[data-testid=menu-button]").await.attr("aria-expanded").await.unwrap().as_deref(),
            Some("true")
        );
        assert_eq!(text(&c, "[data-testid=display-name]").await, "Hydra");
        // This browser became an encryption device: keys made here, registered with the server.
        let device = wait_prefix(&c, "[data-testid=device-status]", "This device: ").await;
        // Creating a community updates the sidebar in place.
        fill(&c, "name", "Hydra club").await;
        submit(&c, "create-community-form").await;
        wait_text(&c, "[data-testid=community] h2", "Hydra club").await;
        assert_eq!(marker(&c).await, json!("still here"), "creating a community reloaded the page");
        screenshot(&c, "shell-mobile-menu").await;

        submit(&c, "logout-form").await;
        wait_path(&c, "/login").await;
        fill(&c, "username", "hydra").await;
        fill(&c, "password", "not the password").await;
        submit(&c, "login-form").await;
        wait_text(&c, "[data-error-for=password]", "Wrong username or password.").await;
        fill(&c, "password", PASSWORD).await;
        submit(&c, "login-form").await;
        wait_path(&c, "/").await;
        find(&c, "[data-testid=app-shell]").await;
        assert_eq!(marker(&c).await, json!("still here"), "sign out / sign in reloaded the page");
        // A full reload restores the same device from IndexedDB instead of making a new identity.
        c.refresh().await.unwrap();
        assert_eq!(wait_prefix(&c, "[data-testid=device-status]", "This device: ").await, device);
    })
    .await;
}

/// The brightness (0–255) of the page background.
async fn background_brightness(c: &Client) -> i64 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_system_color_scheme() {
    with_browser(true, 1280, true, |c, url| async move {
        c.goto(&format!("{url}/login")).await.unwrap();
        find(&c, "#login-form").await;
        let dark = background_brightness(&c).await;
        assert!(dark < 60, "dark preference, but the background brightness is {dark}");
    })
    .await;
    with_browser(true, 1280, false, |c, url| async move {
        c.goto(&format!("{url}/login")).await.unwrap();
        find(&c, "#login-form").await;
        let light = background_brightness(&c).await;
        assert!(light > 200, "light preference, but the background brightness is {light}");
    })
    .await;
}
