//! What every browser test needs: the real server binary on a free port with a fresh data
//! directory, ChromeDriver, headless Chromium sessions (each with its own profile), and waiting
//! helpers that poll instead of sleeping.

#![allow(dead_code)] // each test file uses its own subset

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
pub use testkit::{
    TestDb,
    process::{ServerProcess, env_path},
};

pub const PASSWORD: &str = "correct horse battery";

/// A Chrome DevTools Protocol command, through ChromeDriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp(Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

/// Runs the DevTools command `cmd` in `c`'s page (network and CPU throttling, say).
pub async fn cdp(c: &Client, cmd: &str, params: Value) -> Value {
    c.issue_cmd(Cdp(json!({ "cmd": cmd, "params": params }))).await.unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// Makes every request of `c` take `latency_ms` longer (0: as fast as the machine), or fail (offline).
pub async fn network(c: &Client, offline: bool, latency_ms: u64) {
    cdp(c, "Network.enable", json!({})).await;
    let conditions =
        json!({ "offline": offline, "latency": latency_ms, "downloadThroughput": -1, "uploadThroughput": -1 });
    cdp(c, "Network.emulateNetworkConditions", conditions).await;
}

/// A child process killed when the test ends, however it ends.
pub struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    testkit::process::free_addr().port()
}

/// The real server binary, with the built site, accepting registrations.
pub struct Server {
    pub url: String,
    /// Its data directory.
    pub data: PathBuf,
    _process: ServerProcess,
    /// The SQLite database it owns (removed with it), if it was not given one.
    owned: Option<TestDb>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(db) = self.owned.take() {
            let _ = std::fs::remove_dir_all(&db.dir);
        }
    }
}

/// The server on a fresh SQLite database of its own.
pub async fn start_server() -> Server {
    let db = TestDb::sqlite();
    let mut server = start_server_on(&db).await;
    server.owned = Some(db);
    server
}

/// The server on `db` (its directory is the server's data directory).
pub async fn start_server_on(db: &TestDb) -> Server {
    start_server_with(db, &[]).await
}

/// [`start_server_on`] with more settings (`("MESSAGES_PER_MINUTE", "100000")`).
pub async fn start_server_with(db: &TestDb, settings: &[(&str, &str)]) -> Server {
    let bin = env_path("CHATALOT_SERVER_BIN");
    let site = env_path("CHATALOT_SITE_DIR");
    let site = site.to_string_lossy();
    let mut env = vec![("DATABASE_URL", db.url.as_str()), ("SITE_DIR", &*site), ("REGISTRATION_MODE", "open")];
    env.extend_from_slice(settings);
    let process = ServerProcess::start(&bin, &db.dir, &env);
    Server { url: process.url.clone(), data: db.dir.clone(), _process: process, owned: None }
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
/// JavaScript) leaves a stale element: look it up again. Chromium reports that as "stale element"
/// or, when the new document is half built, as "Node with given id does not belong to the document".
pub async fn text(c: &Client, css: &str) -> String {
    let mut tries = 0;
    loop {
        match find(c, css).await.text().await {
            Ok(text) => return text,
            Err(e) if tries < 20 && is_stale(&e.to_string()) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reading {css:?}: {e}"),
        }
    }
}

fn is_stale(error: &str) -> bool {
    error.contains("stale element") || error.contains("does not belong to the document")
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

/// Types `value` into the input named `name` (found again if the page replaced it meanwhile).
pub async fn fill(c: &Client, name: &str, value: &str) {
    let mut tries = 0;
    loop {
        let field = find(c, &format!("input[name={name}]")).await;
        let typed = match field.clear().await {
            Ok(()) => field.send_keys(value).await,
            Err(e) => Err(e),
        };
        match typed {
            Ok(()) => return,
            Err(e) if tries < 20 && is_stale(&e.to_string()) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("typing into {name:?}: {e}"),
        }
    }
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

/// Clicks the form's submit button (found again if the page replaced it meanwhile, as hydration
/// may right after a load).
pub async fn submit(c: &Client, form: &str) {
    let mut tries = 0;
    loop {
        match find(c, &format!("#{form} button[type=submit]")).await.click().await {
            Ok(_) => return,
            Err(e) if tries < 20 && is_stale(&e.to_string()) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("submitting {form:?}: {e}"),
        }
    }
}

/// Waits until the password's Show/Hide toggle works: at once on a plain page (its script), once
/// the WASM app has hydrated on an app page.
pub async fn toggle_works(c: &Client) {
    let started = Instant::now();
    loop {
        find(c, "[data-toggle-for=password]").await.click().await.unwrap();
        let kind = find(c, "input[name=password]").await.attr("type").await.unwrap();
        if kind.as_deref() == Some("text") {
            find(c, "[data-toggle-for=password]").await.click().await.unwrap();
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the password toggle never worked");
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

/// Keys as WebDriver spells them.
pub const ENTER: &str = "\u{E007}";
pub const SHIFT: &str = "\u{E008}";
pub const RELEASE: &str = "\u{E000}";

pub async fn register(c: &Client, url: &str, username: &str, display_name: &str) {
    c.goto(&format!("{url}/register")).await.unwrap();
    toggle_works(c).await;
    fill(c, "username", username).await;
    fill(c, "display_name", display_name).await;
    fill(c, "password", PASSWORD).await;
    submit(c, "register-form").await;
    wait_path(c, "/welcome").await;
    find(c, "[data-testid=continue]").await.click().await.unwrap();
    wait_path(c, "/").await;
    // The browser became an encryption device before anyone shares keys with it.
    wait_prefix(c, "[data-testid=device-status]", "This device: ").await;
}

/// Signs `username` in on a browser without a session (a new device for them); returns the id of
/// the device this browser became.
pub async fn sign_in(c: &Client, url: &str, username: &str) -> String {
    c.goto(&format!("{url}/login")).await.unwrap();
    toggle_works(c).await;
    fill(c, "username", username).await;
    fill(c, "password", PASSWORD).await;
    submit(c, "login-form").await;
    wait_path(c, "/").await;
    device_id(c).await
}

/// The id of this browser's device, from the start page.
pub async fn device_id(c: &Client) -> String {
    let status = wait_prefix(c, "[data-testid=device-status]", "This device: ").await;
    status.trim_start_matches("This device: ").split(' ').next().unwrap_or_default().to_owned()
}

/// The text of every element matching `css`.
pub async fn texts(c: &Client, css: &str) -> Vec<String> {
    let found: Value = c
        .execute("return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);", vec![json!(css)])
        .await
        .unwrap();
    found.as_array().unwrap().iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect()
}

/// Waits until some element matching `css` contains `needle`.
pub async fn wait_contains(c: &Client, css: &str, needle: &str) {
    let started = Instant::now();
    loop {
        let now = texts(c, css).await;
        if now.iter().any(|t| t.contains(needle)) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{css}: nothing contains {needle:?}; have {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens a conversation from the sidebar (on a phone, through the menu).
pub async fn open_conversation(c: &Client, label: &str) {
    let narrow: Value = c.execute("return window.innerWidth < 768;", vec![]).await.unwrap();
    if narrow == json!(true) {
        find(c, "[data-testid=menu-button]").await.click().await.unwrap();
    }
    let started = Instant::now();
    loop {
        // The label exactly (the link's text also holds its unread count).
        let clicked: Value = c
            .execute(
                "const s = [...document.querySelectorAll('[data-testid=channel] a > span:first-child')]                    .find(s => s.textContent.trim() === arguments[0]); if (s) s.closest('a').click(); return !!s;",
                vec![json!(label)],
            )
            .await
            .unwrap();
        if clicked == json!(true) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no conversation {label:?} in the sidebar");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_text(c, "[data-testid=channel-title]", label).await;
}

pub async fn composer_ready(c: &Client) -> fantoccini::elements::Element {
    let started = Instant::now();
    loop {
        // The composer is rebuilt when its conversation's state changes: a box found a moment ago
        // may be gone (stale); look it up again.
        let box_ = find(c, "[data-testid=composer]").await;
        match box_.prop("disabled").await {
            Ok(disabled) if disabled.as_deref() == Some("false") => return box_,
            Ok(_) => {}
            Err(e) if is_stale(&e.to_string()) => {}
            Err(e) => panic!("the composer: {e}"),
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the composer never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types a message and presses Enter; returns once the server has it.
pub async fn say(c: &Client, text: &str) {
    composer_ready(c).await.send_keys(&format!("{text}{ENTER}")).await.unwrap();
    wait_sent(c, text).await;
}

/// Waits until my message containing `text` is shown as stored by the server (shown at once as
/// sending, it then turns into the server's copy).
pub async fn wait_sent(c: &Client, text: &str) {
    wait_contains(c, "[data-testid=message-body]", text).await;
    let started = Instant::now();
    loop {
        let sending: Value = c
            .execute(
                "return [...document.querySelectorAll('[data-testid=message]')]                    .some(r => r.dataset.lock === 'sending' && r.textContent.includes(arguments[0]));",
                vec![json!(text)],
            )
            .await
            .unwrap();
        if sending == json!(false) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{text:?} stayed marked as sending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn bodies(c: &Client) -> Vec<String> {
    texts(c, "[data-testid=message-body]").await
}

/// The message row (as found by its text) and clicks one of its buttons.
pub async fn act_on(c: &Client, message: &str, button: &str) {
    let clicked: Value = c
        .execute(
            "const row = [...document.querySelectorAll('[data-testid=message]')] \
               .find(r => r.querySelector('[data-testid=message-body]')?.textContent.includes(arguments[0])); \
             const b = row && row.querySelector(`[data-testid=${arguments[1]}]`); if (b) b.click(); return !!b;",
            vec![json!(message), json!(button)],
        )
        .await
        .unwrap();
    assert_eq!(clicked, json!(true), "no {button} button on {message:?}");
}

/// Every file under `dir`, with its path.
pub fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

pub fn occurs(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Alice (`owner`) creates a community and an invite; everyone in `joiners` joins with the code.
/// Leaves the owner in its "# general" channel.
pub async fn create_community(owner: &Client, name: &str, joiners: &[&Client]) {
    fill(owner, "name", name).await;
    submit(owner, "create-community-form").await;
    open_conversation(owner, "# general").await;
    find(owner, "#community-invite-form button").await.click().await.unwrap();
    let code = text(owner, "[data-testid=community-invite-code]").await;
    for who in joiners {
        if who.execute("return window.innerWidth < 768;", vec![]).await.unwrap() == json!(true) {
            find(who, "[data-testid=menu-button]").await.click().await.unwrap();
        }
        fill(who, "code", &code).await;
        submit(who, "join-form").await;
        wait_contains(who, "[data-testid=community] h2", name).await;
    }
}

/// Fills the input with HTML id `id` (for pages with two fields of the same name).
pub async fn fill_id(c: &Client, id: &str, value: &str) {
    let field = find(c, &format!("#{id}")).await;
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Clicks the button `button` (a `data-testid`) in the member list row of `name`.
pub async fn member_action(c: &Client, name: &str, button: &str) {
    let clicked: Value = c
        .execute(
            "const m = [...document.querySelectorAll('[data-testid=member]')].find(m => m.textContent.includes(arguments[0])); \
             const b = m && m.querySelector(`[data-testid=${arguments[1]}]`); if (b) b.click(); return !!b;",
            vec![json!(name), json!(button)],
        )
        .await
        .unwrap();
    assert_eq!(clicked, json!(true), "no {button} button for {name:?}");
}

/// The lock state (`data-lock`) of the message containing `text`.
pub async fn lock_of(c: &Client, text: &str) -> Value {
    c.execute(
        "const r = [...document.querySelectorAll('[data-testid=message]')].find(r => r.textContent.includes(arguments[0])); \
         return r && r.dataset.lock;",
        vec![json!(text)],
    )
    .await
    .unwrap()
}

/// Opens the edit box of the message containing `message` and replaces its text with `typed`
/// (add ENTER to save); returns the box.
pub async fn start_edit(c: &Client, message: &str, typed: &str) -> Element {
    act_on(c, message, "edit").await;
    let edit = find(c, "[data-testid=edit-box]").await;
    edit.clear().await.unwrap();
    edit.send_keys(typed).await.unwrap();
    edit
}

/// Waits until the page has left `from` (a path); returns the new path.
pub async fn wait_path_change(c: &Client, from: &str) -> String {
    let started = Instant::now();
    loop {
        let now = c.current_url().await.unwrap().path().to_owned();
        if now != from {
            return now;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "still at {from}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
