//! The HTTP surface through the real router, without a socket: server functions as the hydrated
//! app and as a plain HTML form call them, pages, headers, health and bad input.

use crate::common::{self, Prepare, on_both_backends};

use app::model::RegistrationMode;
use axum::{
    body::Body,
    http::{Request, header},
};
use common::{Client, TestDb};

const PASSWORD: &str = "correct horse battery";

async fn register(client: &mut Client, name: &str) -> common::Reply {
    client
        .call("auth/register", &[("username", name), ("display_name", &format!("{name} D.")), ("password", PASSWORD)])
        .await
}

on_both_backends! {
    async fn a_copied_access_token_ends_with_its_session(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let mut browser = Client::new(&state);
        register(&mut browser, "copied").await;
        // Someone copied the access token (15 minutes of validity) out of the browser.
        let stolen = browser.cookie("chatalot_at").unwrap().to_owned();
        let mut thief = Client::new(&state);
        thief.cookies.push(("chatalot_at".into(), stolen.clone()));
        assert_eq!(thief.call("spaces/mine", &[]).await.status, 200);

        // Logout: refused at once on this node (the revocation signal), without waiting for expiry.
        browser.call("auth/logout", &[]).await;
        assert_eq!(thief.call("spaces/mine", &[]).await.status, 401, "a copied token outlived logout");
        assert_eq!(thief.call("auth/me", &[]).await.body, "null");

        // A password change ends every session: within a second, every copied token is refused,
        // while the browser that changed it carries on with its new session.
        let mut browser = Client::new(&state);
        browser.call("auth/login", &[("username", "copied"), ("password", PASSWORD)]).await;
        let mut thief = Client::new(&state);
        thief.cookies.push(("chatalot_at".into(), browser.cookie("chatalot_at").unwrap().to_owned()));
        assert_eq!(thief.call("spaces/mine", &[]).await.status, 200);
        let changed = browser.call("auth/change_password", &[("current_password", PASSWORD), ("new_password", "another long one")]).await;
        assert_eq!(changed.status, 200, "{}", changed.body);
        tokio::time::sleep(domain::session::LIVENESS_FRESH_FOR + std::time::Duration::from_millis(100)).await;
        assert_eq!(thief.call("spaces/mine", &[]).await.status, 401, "a copied token outlived the password change");
        assert_eq!(browser.call("spaces/mine", &[]).await.status, 200, "the new session works");
    }

    async fn register_sign_out_and_sign_in_as_the_app_does(db: TestDb) {
        let state = db.state(RegistrationMode::InviteOnly).await;
        let mut browser = Client::new(&state);
        let reply = register(&mut browser, "alice").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("location"), Some("/welcome"));
        assert!(browser.cookie("chatalot_at").is_some() && browser.cookie("chatalot_rt").is_some());
        let flash = browser.cookie("chatalot_rc").expect("recovery code handed to /welcome").to_owned();

        // The welcome page shows the recovery code once.
        let page = browser.get("/welcome").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains(&flash), "welcome page lacks the code");
        assert!(browser.cookie("chatalot_rc").is_none(), "flash cookie not cleared");
        assert!(!browser.get("/welcome").await.body.contains(&flash), "recovery code shown twice");

        // The shell shows who is signed in; the login page sends them there.
        let shell = browser.get("/").await;
        assert_eq!(shell.status, 200);
        assert!(shell.body.contains("alice D."), "{}", shell.body);
        assert_eq!(browser.get("/login").await.status, 302);

        let out = browser.call("auth/logout", &[]).await;
        assert_eq!(out.header("location"), Some("/login"));
        assert!(browser.cookie("chatalot_at").is_none() && browser.cookie("chatalot_rt").is_none());
        // Signed out, the front page says what the server is, as a plain page (no app code);
        // the app's other pages send to sign-in.
        let front = browser.get("/").await;
        assert_eq!(front.status, 200);
        assert!(front.body.contains("data-testid=\"landing\"") && !front.body.contains("_bg.wasm"), "{}", front.body);
        let channel = browser.get(&format!("/c/{}", uuid::Uuid::nil())).await;
        assert_eq!((channel.status, channel.header("location")), (302, Some("/login")));

        let bad = browser.call("auth/login", &[("username", "alice"), ("password", "not it at all")]).await;
        assert_eq!(bad.status, 422);
        assert_eq!(bad.error().for_field("password").as_deref(), Some("Wrong username or password."));
        let ok = browser.call("auth/login", &[("username", "alice"), ("password", PASSWORD)]).await;
        assert_eq!((ok.status, ok.header("location")), (200, Some("/")));
        assert!(browser.cookie("chatalot_dev").is_some(), "device cookie set at login");
        assert!(browser.get("/").await.body.contains("alice D."));
    }

    async fn forms_work_without_javascript(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let mut browser = Client::new(&state);
        let form = [("username", "bob"), ("display_name", "Bob"), ("password", PASSWORD)];
        let reply = browser.submit("auth/register", &form, "http://localhost/register").await;
        assert_eq!((reply.status, reply.header("location")), (302, Some("/welcome")));
        browser.call("auth/logout", &[]).await;

        // A failed no-JS login redirects back with the error encoded, and the page shows it by the field.
        let reply = browser.submit("auth/login", &[("username", "bob"), ("password", "wrong password")], "http://localhost/login").await;
        assert_eq!(reply.status, 302);
        let back = reply.header("location").unwrap().to_owned();
        assert!(back.starts_with("/login?") && back.contains("__err="), "{back}");
        // The typed username comes back to fill the form in again; the password never does.
        assert!(back.contains("username=bob") && !back.contains("wrong+password") && !back.contains("password="), "{back}");
        let page = browser.get(&back).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Wrong username or password."), "error not rendered next to the field");
        assert!(page.body.contains(r#"value="bob""#), "the username was not filled in again");
    }

    async fn no_secret_in_a_redirect_and_no_redirect_off_site(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let mut browser = Client::new(&state);
        let form = [("username", "rita"), ("display_name", "Rita"), ("password", PASSWORD)];
        browser.submit("auth/register", &form, "http://localhost/register").await;
        let code = browser.cookie("chatalot_rc").unwrap().to_owned();
        browser.call("auth/logout", &[]).await;

        // A valid recovery code with a new password that is too short: the form comes back with the
        // error, and without the code (a URL lands in history, logs and Referer headers).
        let form = [("username", "rita"), ("recovery_code", code.as_str()), ("new_password", "short")];
        let back = browser.submit("auth/recover", &form, "http://localhost/recover").await;
        let location = back.header("location").unwrap();
        assert!(location.contains("__err=") && location.contains("username=rita"), "{location}");
        let bare = code.replace('-', "");
        assert!(!location.contains(&code[..4]) && !location.contains(&bare[..8]), "the recovery code is in {location}");

        // An invite code typed into a failed registration stays out of the URL too.
        let invite_only = common::with_mode(&state, RegistrationMode::InviteOnly);
        let mut stranger = Client::new(&invite_only);
        let form = [("username", "x"), ("display_name", "X"), ("password", PASSWORD), ("invite_code", "SECRETINVITE1")];
        let back = stranger.submit("auth/register", &form, "http://localhost/register").await;
        let location = back.header("location").unwrap();
        assert!(location.contains("__err=") && !location.contains("SECRETINVITE1"), "{location}");

        // A forged Referer cannot send the browser to another site.
        let back = stranger.submit("auth/login", &[("username", "rita"), ("password", "nope nope")], "https://evil.example/phish").await;
        let location = back.header("location").unwrap();
        assert!(location.starts_with("/phish?") && !location.contains("evil.example"), "{location}");
    }

    async fn the_signed_in_owner_manages_invites_and_others_cannot(db: TestDb) {
        let state = db.state(RegistrationMode::InviteOnly).await;
        let mut owner = Client::new(&state);
        register(&mut owner, "owner").await;
        let created = owner.call("invites/create", &[("max_uses", "2"), ("expires_in_hours", "48")]).await;
        assert_eq!(created.status, 200, "{}", created.body);
        let invite: app::model::Invite = serde_json::from_str(&created.body).unwrap();
        let bad = owner.call("invites/create", &[("max_uses", "-1"), ("expires_in_hours", "")]).await;
        assert_eq!(bad.status, 422);
        assert!(bad.error().for_field("max_uses").is_some());

        let mut guest = Client::new(&state);
        let reply = guest.call("auth/register", &[("username", "guest"), ("display_name", "G"), ("password", PASSWORD), ("invite_code", &invite.code)]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(guest.call("invites/list", &[]).await.status, 403);
        assert_eq!(guest.call("invites/create", &[]).await.status, 403);
        let mut stranger = Client::new(&state);
        assert_eq!(stranger.call("invites/list", &[]).await.status, 401);
        assert!(owner.get("/").await.body.contains(&invite.code), "the owner's shell lists invites");
    }

    async fn recovery_through_the_pages(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let mut laptop = Client::new(&state);
        register(&mut laptop, "dora").await;
        let code = laptop.cookie("chatalot_rc").unwrap().to_owned();
        laptop.get("/welcome").await;

        // On another computer, with the recovery code.
        let mut other = Client::new(&state);
        let wrong = other.call("auth/recover", &[("username", "dora"), ("recovery_code", "AAAA-AAAA-AAAA-AAAA"), ("new_password", "brand new pass")]).await;
        assert_eq!(wrong.status, 422);
        assert!(wrong.error().for_field("recovery_code").is_some());
        let ok = other.call("auth/recover", &[("username", "dora"), ("recovery_code", &code), ("new_password", "brand new pass")]).await;
        assert_eq!((ok.status, ok.header("location")), (200, Some("/welcome")), "{}", ok.body);
        let welcome = other.get("/welcome").await;
        let new_code = other.cookie("chatalot_rc").map(str::to_owned);
        assert!(new_code.is_none(), "flash cookie kept after display");
        assert!(!welcome.body.contains(&code) && welcome.body.contains("data-testid=\"recovery-code\""), "no new code shown");
        assert!(other.get("/").await.body.contains("dora D."), "recovery did not sign in");

        // Every earlier session is over: the laptop's refresh token no longer works.
        laptop.cookies.retain(|(n, _)| n != "chatalot_at");
        assert_eq!(laptop.call("auth/me", &[]).await.body, "null");
        let old = laptop.call("auth/login", &[("username", "dora"), ("password", PASSWORD)]).await;
        assert_eq!(old.status, 422);
        let new = laptop.call("auth/login", &[("username", "dora"), ("password", "brand new pass")]).await;
        assert_eq!(new.status, 200);
    }

    async fn closed_registration_says_so(db: TestDb) {
        let state = db.state(RegistrationMode::Closed).await;
        let mut first = Client::new(&state);
        assert!(first.get("/register").await.body.contains("data-testid=\"first-account\""));
        register(&mut first, "owner").await;
        let mut second = Client::new(&state);
        assert!(second.get("/register").await.body.contains("Registration is closed"));
        let reply = register(&mut second, "late").await;
        assert_eq!(reply.status, 422);
        assert!(reply.error().for_field("form").is_some());
    }

    async fn expired_access_tokens_are_refreshed_transparently(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let mut browser = Client::new(&state);
        register(&mut browser, "carol").await;
        let old_refresh = browser.cookie("chatalot_rt").unwrap().to_owned();
        // Drop the access token, as the browser does when it expires.
        browser.cookies.retain(|(n, _)| n != "chatalot_at");
        let me = browser.call("auth/me", &[]).await;
        assert!(me.body.contains("carol"), "{}", me.body);
        assert!(browser.cookie("chatalot_at").is_some(), "no new access token");
        assert_ne!(browser.cookie("chatalot_rt").unwrap(), old_refresh, "refresh token not rotated");
        // Tampered cookies are treated as signed out and cleared.
        browser.cookies = vec![("chatalot_at".into(), "eyJ.bogus.token".into()), ("chatalot_rt".into(), "nonsense".into())];
        let me = browser.call("auth/me", &[]).await;
        assert_eq!((me.status, me.body.as_str()), (200, "null"));
        assert!(browser.cookies.is_empty(), "dead cookies not cleared: {:?}", browser.cookies);
    }
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let db = TestDb::sqlite();
    let state = db.state(RegistrationMode::Open).await;
    let mut browser = Client::new(&state);
    for path in ["/login", "/healthz", "/no/such/page", "/favicon.svg"] {
        let reply = browser.get(path).await;
        let csp = reply.header("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(reply.header("referrer-policy"), Some("same-origin"), "{path}");
        assert!(reply.header("x-request-id").is_some(), "{path}");
    }
    let page = browser.get("/login").await;
    let csp = page.header("content-security-policy").unwrap();
    let nonce = csp.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("pages carry a nonce");
    assert!(page.body.contains(&format!("nonce=\"{nonce}\"")), "the page's script does not carry the CSP nonce");
    assert_eq!(browser.get("/no/such/page").await.status, 404);

    // Pages and server-function answers carry private data (names, messages, the recovery code):
    // no shared or browser cache may keep them.
    register(&mut browser, "cache").await;
    for path in ["/", "/welcome", "/login"] {
        assert_eq!(browser.get(path).await.header("cache-control"), Some("no-store"), "{path}");
    }
    assert_eq!(browser.call("auth/me", &[]).await.header("cache-control"), Some("no-store"), "a server function");
    assert_eq!(browser.call("spaces/mine", &[]).await.header("cache-control"), Some("no-store"), "a server function");
    db.drop().await;
}

#[tokio::test]
async fn health_reports_version_and_database() {
    let db = TestDb::sqlite();
    let state = db.state(RegistrationMode::Open).await;
    let mut browser = Client::new(&state);
    let reply = browser.get("/healthz").await;
    assert_eq!(reply.status, 200);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json["database"], "ok");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    // With the database gone mid-flight, health says so and requests get a clear error, not a panic.
    state.db.close_by_ref().await.unwrap();
    let reply = browser.get("/healthz").await;
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("\"database\":\"unavailable\""), "{}", reply.body);
    let reply = browser.call("auth/login", &[("username", "x"), ("password", "yyyyyyyy")]).await;
    assert_eq!(reply.status, 500);
    let err = reply.error();
    assert!(matches!(err, app::error::AppError::Internal { ref ref_id } if !ref_id.is_empty()), "{err:?}");
    assert!(!reply.body.to_lowercase().contains("pool"), "internal details leaked: {}", reply.body);
    db.drop().await;
}

#[tokio::test]
async fn malformed_requests_get_clear_errors() {
    let db = TestDb::sqlite();
    let state = db.state(RegistrationMode::Open).await;
    let mut browser = Client::new(&state);

    // Missing fields.
    let reply = browser.call("auth/login", &[("username", "x")]).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(matches!(reply.error(), app::error::AppError::BadRequest { .. }));

    // Wrong content type.
    let req = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(r#"{"username":"x","password":"y"}"#))
        .unwrap();
    let reply = browser.send(req).await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    // Oversized body.
    let huge = "a".repeat(server::http::MAX_BODY_BYTES + 1);
    let reply =
        browser.call("auth/register", &[("username", "big"), ("display_name", "Big"), ("password", &huge)]).await;
    assert_eq!(reply.status, 413, "{}", reply.body);

    // Oversized fields within the body limit: a field error, and nothing written.
    let long = "b".repeat(5000);
    let reply =
        browser.call("auth/register", &[("username", &long), ("display_name", "Long"), ("password", PASSWORD)]).await;
    assert_eq!(reply.status, 422);
    assert!(reply.error().for_field("username").is_some());
    assert!(domain::accounts::is_empty(&state).await.unwrap());

    // Invalid UTF-8 and broken percent-encoding.
    let req = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(&b"username=%ff%fe&password=%zz"[..]))
        .unwrap();
    let reply = browser.send(req).await;
    assert!(reply.status == 400 || reply.status == 422, "{} {}", reply.status, reply.body);

    // Unknown server function.
    let reply = browser.call("auth/nope", &[]).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error(), app::error::AppError::NotFound);

    // A cross-site form post is refused.
    let req = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::HOST, "localhost:8080")
        .body(Body::from("username=a&password=b"))
        .unwrap();
    assert_eq!(browser.send(req).await.status, 403);

    // With PUBLIC_URL set, an origin is this site only with its scheme, host and port: the same host
    // over plain http (a network attacker's page) or on another port is another site.
    let mut config = (*state.config).clone();
    config.public_url = Some("https://chat.example.com".into());
    let public = domain::Core { config: std::sync::Arc::new(config), ..state.clone() };
    let mut behind_tls = Client::new(&public);
    for (origin, allowed) in [
        ("https://chat.example.com", true),
        ("http://chat.example.com", false),
        ("https://chat.example.com:8443", false),
        ("https://evil.example", false),
    ] {
        let req = Request::post("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, origin)
            .header(header::HOST, "chat.example.com")
            .body(Body::from("username=a&password=b"))
            .unwrap();
        let status = behind_tls.send(req).await.status;
        assert_eq!(status != 403, allowed, "{origin}: {status}");
    }

    // Garbage cookies are ignored, not fatal.
    let req = Request::get("/")
        .header(header::COOKIE, "chatalot_at=%%%; chatalot_rt=;;;=")
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap();
    let reply = browser.send(req).await;
    assert_eq!(reply.status, 200, "the front page, as for anyone without a session");
    db.drop().await;
}

/// The page's link to a built asset, e.g. `/pkg/…/chatalot.js`.
fn asset_link(page: &str, file: &str) -> String {
    let end = page.find(&format!("/{file}\"")).unwrap_or_else(|| panic!("the page links no {file}"));
    let start = page[..end].rfind('"').unwrap() + 1;
    format!("{}/{file}", &page[start..end])
}

/// The server's site directory with a bundle version, as `cargo xtask build` leaves it; returns `pkg`.
fn versioned_site(db: &TestDb) -> std::path::PathBuf {
    let pkg = db.dir.join("site/pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("version"), "0123abcd\n").unwrap();
    pkg
}

#[tokio::test]
async fn built_assets_are_content_addressed_and_cached_for_a_year() {
    let db = TestDb::sqlite();
    let pkg = versioned_site(&db);
    std::fs::write(pkg.join("chatalot.js"), "export default 1;").unwrap();
    std::fs::write(pkg.join("chatalot_bg.wasm"), b"\0asm").unwrap();
    // Precompressed copies, as `cargo xtask build` writes them (a release build has both).
    std::fs::write(pkg.join("chatalot.js.gz"), "gzip bytes").unwrap();
    std::fs::write(pkg.join("chatalot.js.br"), "brotli bytes").unwrap();
    let state = db.state(RegistrationMode::Open).await;
    let mut browser = Client::new(&state);

    // An app page links the JS glue, the WASM and the stylesheet under one versioned path.
    register(&mut browser, "assets").await;
    let page = browser.get("/").await.body;
    let (js, wasm, css) =
        (asset_link(&page, "chatalot.js"), asset_link(&page, "chatalot_bg.wasm"), asset_link(&page, "chatalot.css"));
    assert!(js.starts_with("/pkg/0123abcd-"), "{js}");
    assert_eq!(js.rsplit_once('/').unwrap().0, wasm.rsplit_once('/').unwrap().0);
    assert_eq!(js.rsplit_once('/').unwrap().0, css.rsplit_once('/').unwrap().0);
    for (path, body) in [(&js, "export default 1;"), (&css, "")] {
        let reply = browser.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("cache-control"), Some("public, max-age=31536000, immutable"), "{path}");
        assert!(reply.body.contains(body), "{path}");
    }
    assert!(browser.get(&css).await.header("content-type").unwrap().starts_with("text/css"));
    // The stylesheet goes compressed (at build time) to browsers that take it, brotli first; never
    // an encoding the browser refused.
    let plain_css = browser.get(&css).await.body;
    assert!(plain_css.len() > 5_000, "the stylesheet: {} bytes", plain_css.len());
    for (accept, encoding) in [
        ("gzip, deflate, br, zstd", Some("br")),
        ("gzip;q=1.0, br;q=0", Some("gzip")),
        ("deflate, gzip", Some("gzip")),
        ("identity", None),
        ("br;q=0, gzip;q=0", None),
    ] {
        let req = Request::get(&css).header(header::ACCEPT_ENCODING, accept).body(Body::empty()).unwrap();
        let reply = browser.send(req).await;
        assert_eq!(reply.header("content-encoding"), encoding, "{accept}");
        assert_eq!(reply.header("vary"), Some("accept-encoding"), "{accept}");
        let size = reply.len;
        match encoding {
            Some(_) => assert!(size * 3 < plain_css.len(), "{accept}: {size} bytes of {}", plain_css.len()),
            None => assert_eq!(reply.body, plain_css, "{accept}"),
        }
    }
    // Brotli where the browser takes it (Chromium's header), else gzip, else the file itself.
    for (accept, encoding, body) in [
        ("gzip, deflate, br, zstd", Some("br"), "brotli bytes"),
        ("gzip, deflate", Some("gzip"), "gzip bytes"),
        ("identity", None, "export default 1;"),
    ] {
        let req = Request::get(&js).header(header::ACCEPT_ENCODING, accept).body(Body::empty()).unwrap();
        let reply = browser.send(req).await;
        assert_eq!((reply.header("content-encoding"), reply.body.as_str()), (encoding, body), "{accept}");
        assert_eq!(reply.header("cache-control"), Some("public, max-age=31536000, immutable"), "{accept}");
    }
    // A page from before an upgrade asks for its own version: not found, and nothing cached.
    let old = browser.get("/pkg/99999999-0/chatalot.js").await;
    assert_eq!(old.status, 404);
    assert_ne!(old.header("cache-control"), Some("public, max-age=31536000, immutable"));
    // The unversioned names still answer, revalidated on every use.
    let plain = browser.get("/pkg/chatalot.js").await;
    assert_eq!((plain.status, plain.header("cache-control")), (200, Some("no-cache")));
    // HTML is never cached.
    assert_eq!(browser.get("/login").await.header("cache-control"), Some("no-store"));

    // A site built without a version (by hand) is linked and served unversioned, never immutable
    // (the router reads the version when it is made).
    std::fs::remove_file(pkg.join("version")).unwrap();
    let mut browser = Client::new(&state);
    register(&mut browser, "handmade").await;
    let page = browser.get("/").await.body;
    assert_eq!(asset_link(&page, "chatalot.js"), "/pkg/chatalot.js");
    assert_eq!(asset_link(&page, "chatalot.css"), "/pkg/chatalot.css");
    for path in ["/pkg/chatalot.js", "/pkg/chatalot.css"] {
        let reply = browser.get(path).await;
        assert_eq!((reply.status, reply.header("cache-control")), (200, Some("no-cache")), "{path}");
    }
    db.drop().await;
}

#[tokio::test]
async fn sign_in_pages_load_no_app_code() {
    let db = TestDb::sqlite();
    versioned_site(&db);
    let state = db.state(RegistrationMode::Open).await;
    let mut browser = Client::new(&state);
    let app_code = ["chatalot.js", "chatalot_bg.wasm", "modulepreload", "hydrate"];
    let plain = |path: &str, body: &str| {
        for code in app_code {
            assert!(!body.contains(code), "{path} loads the app: {code}");
        }
        // The stylesheet still comes, and the little script for the password toggle and busy button.
        assert!(body.contains("/chatalot.css\""), "{path}: no stylesheet");
        assert!(body.contains("data-toggle-for") || !body.contains("type=\"password\""), "{path}: no toggle");
        assert!(body.contains(app::routes::PLAIN_PAGE_SCRIPT), "{path}: no page script");
    };
    for path in ["/login", "/register", "/recover", "/login?username=x&__err=y"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        plain(path, &page.body);
    }
    // Signing in works as a form post from such a page; the recovery code page is plain too.
    let form = [("username", "plain"), ("display_name", "Plain"), ("password", PASSWORD)];
    let reply = browser.submit("auth/register", &form, "http://localhost/register").await;
    assert_eq!(reply.header("location"), Some("/welcome"));
    let welcome = browser.get("/welcome").await;
    plain("/welcome", &welcome.body);
    assert!(welcome.body.contains("data-testid=\"recovery-code\""));
    // The app's pages hydrate: they load the bundle.
    for path in ["/", "/no/such/page"] {
        let body = browser.get(path).await.body;
        assert!(body.contains("chatalot_bg.wasm") && body.contains("chatalot.js"), "{path} does not load the app");
        assert!(!body.contains(app::routes::PLAIN_PAGE_SCRIPT), "{path}");
    }
    db.drop().await;
}

/// Calls a server function as a client that sends `Accept-Encoding: accept`.
async fn call_accepting(client: &mut Client, endpoint: &str, accept: &str, form: &[(&str, &str)]) -> common::Reply {
    let req = Request::post(format!("/api/v1/{endpoint}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .header(header::ACCEPT_ENCODING, accept)
        .body(Body::from(common::form_encode(form)))
        .unwrap();
    client.send(req).await
}

#[tokio::test]
async fn large_server_function_answers_are_compressed() {
    let db = TestDb::sqlite();
    let state = db.state(RegistrationMode::Open).await;
    let mut client = Client::new(&state);
    register(&mut client, "reader").await;
    assert_eq!(client.call("communities/create", &[("name", "Mine")]).await.status, 200);
    let mine: app::model::spaces::MySpaces = serde_json::from_str(&client.call("spaces/mine", &[]).await.body).unwrap();
    let general = mine.communities[0].groups[0].channels[0].id.to_string();
    let me: app::model::Me = serde_json::from_str(&client.call("auth/me", &[]).await.body).unwrap();
    common::with_device(&state, me.id, "D1").await;
    // Ciphertext is random bytes: only the JSON around it and base64's 6 bits a character compress.
    use base64::Engine;
    for i in 0..30 {
        let txn = format!("t{i}");
        let bytes: Vec<u8> = (0..300).map(|_| rand::random::<u8>()).collect();
        let ciphertext = base64::engine::general_purpose::STANDARD.encode(bytes);
        let form =
            [("channel_id", general.as_str()), ("device", "D1"), ("client_txn", &txn), ("ciphertext_b64", &ciphertext)];
        assert_eq!(client.call("messages/send", &form).await.status, 200);
    }
    // The same call, as a browser that takes brotli and gzip, and as one that takes neither.
    let history = [("channel_id", general.as_str())];
    let plain = call_accepting(&mut client, "messages/history", "identity", &history).await;
    let packed = call_accepting(&mut client, "messages/history", "gzip, deflate, br, zstd", &history).await;
    assert_eq!((plain.status, plain.header("content-encoding")), (200, None));
    assert!(plain.len > 12_000, "a history page of 30 messages: {} bytes", plain.len);
    assert_eq!((packed.status, packed.header("content-encoding")), (200, Some("br")));
    eprintln!("history page of 30 messages: {} bytes, {} with brotli", plain.len, packed.len);
    assert!(packed.len * 10 < plain.len * 9, "brotli gave {} of {} bytes", packed.len, plain.len);
    let gzipped = call_accepting(&mut client, "messages/history", "gzip", &history).await;
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    // Small answers are not worth it.
    let small = call_accepting(&mut client, "spaces/mine", "gzip, br", &[]).await;
    assert_eq!((small.status, small.header("content-encoding")), (200, None), "{} bytes", small.body.len());
    db.drop().await;
}
