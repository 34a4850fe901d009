//! The HTTP surface: pages and server functions (leptos_axum), static assets, health, and the
//! middleware every response passes through (security headers, sessions, error statuses).

use app::{App, routes::OUTPUT_NAME, shell, web::cookies};
use axum::{
    Json, Router,
    body::{Body, to_bytes},
    extract::{FromRef, Request, State},
    handler::Handler,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use domain::{Core, config::Config, error::new_ref_id, session::Session};
use leptos::{
    config::{Env, LeptosOptions},
    prelude::provide_context,
};
use leptos_axum::{LeptosRoutes, file_and_error_handler_with_context, generate_route_list};
use protocol::{AppError, model::messages::MAX_CIPHERTEXT};
use std::path::Path;
use tower_http::{
    CompressionLevel,
    compression::{
        CompressionLayer,
        predicate::{Predicate, SizeAbove},
    },
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    services::ServeDir,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

/// The largest request body; anything bigger is refused with 413. A server function's form carries
/// at most one ciphertext of `MAX_CIPHERTEXT` bytes as base64 (4 characters per 3 bytes), which
/// form-encoding can triple (`+`, `/` and `=` become `%2B`, `%2F`, `%3D`), and a few small fields.
pub const MAX_BODY_BYTES: usize = 3 * 4 * MAX_CIPHERTEXT.div_ceil(3) + 16 * 1024;

/// The longest any request may take.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The compiled stylesheet (see `build.rs`).
const APP_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/app.css"));
/// The stylesheet compressed at build time (`build.rs`).
const APP_CSS_BR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.css.br"));
const APP_CSS_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.css.gz"));
const APP_CSS_ETAG: &str = env!("CHATALOT_CSS_ETAG");

/// What the router's handlers can reach: the domain, and Leptos's options (derived from the
/// configuration) for rendering pages.
#[derive(Clone, Debug)]
pub struct Web {
    pub core: Core,
    pub leptos: LeptosOptions,
}

impl FromRef<Web> for LeptosOptions {
    fn from_ref(web: &Web) -> Self {
        web.leptos.clone()
    }
}

impl FromRef<Web> for Core {
    fn from_ref(web: &Web) -> Self {
        web.core.clone()
    }
}

/// Where the built web assets are: configured, else `site` beside the binary if there is one (a
/// dev build's: `<target>/debug/site`), else `../site` relative to it (a release build's,
/// `<target>/site`, and a deployment's `bin/` and `site/`).
pub fn site_dir(config: &Config) -> std::path::PathBuf {
    if let Some(dir) = &config.site_dir {
        return dir.clone();
    }
    let Some(bin) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) else {
        return std::path::PathBuf::from("site");
    };
    let beside = bin.join("site");
    if beside.is_dir() { beside } else { bin.parent().unwrap_or(&bin).join("site") }
}

/// The file in `<site>/pkg` where `cargo xtask build` leaves a hash of the browser bundle it built
/// (the JS glue and the WASM).
pub const BUNDLE_VERSION_FILE: &str = "version";

/// How long a browser may keep an asset whose URL names its content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Where pages find the built assets. When the build left a version, `pkg/<bundle>-<stylesheet>`:
/// the path changes whenever a byte of the JS, the WASM or the stylesheet does, so it is served
/// `immutable` for a year, and after an upgrade no browser pairs new JS with old WASM (a page from
/// before asks for its own version and gets 404, never a mix). Without one (a site built by hand),
/// plain `pkg`, revalidated on every use.
fn pkg_dir(site: &Path) -> String {
    let bundle = std::fs::read_to_string(site.join("pkg").join(BUNDLE_VERSION_FILE)).unwrap_or_default();
    let bundle = bundle.trim();
    if bundle.is_empty() || bundle.len() > 64 || !bundle.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return "pkg".to_owned();
    }
    format!("pkg/{bundle}-{}", APP_CSS_ETAG.trim_matches('"'))
}

/// Leptos's options for this configuration.
pub fn leptos_options(config: &Config) -> LeptosOptions {
    let site = site_dir(config);
    LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_pkg_dir(pkg_dir(&site))
        .site_root(site.to_string_lossy().into_owned())
        .env(Env::PROD)
        .site_addr(config.listen_addr)
        .build()
}

/// The whole application.
pub fn router(core: Core) -> Router {
    let state = Web { leptos: leptos_options(&core.config), core: core.clone() };
    let routes = generate_route_list(App);
    let context = move || provide_context(core.clone());
    let render = {
        let options = state.leptos.clone();
        move || shell(options.clone())
    };
    let not_found = file_and_error_handler_with_context::<Web, _>(context.clone(), shell).with_state(state.clone());
    let site = Path::new(&*state.leptos.site_root);
    let assets = ServeDir::new(site).precompressed_br().precompressed_gzip().fallback(not_found);
    // The versioned path (see `pkg_dir`): the same files, kept for a year. Any other version falls
    // through to `assets`, where no such directory exists: 404.
    let versioned = Router::new()
        .route(&format!("/{OUTPUT_NAME}.css"), get(stylesheet))
        .fallback_service(ServeDir::new(site.join("pkg")).precompressed_br().precompressed_gzip())
        .layer(middleware::map_response(|mut res: Response| async move {
            if res.status().is_success() {
                res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
            }
            res
        }));
    let pkg = state.leptos.site_pkg_dir.to_string();
    let router = match pkg.strip_prefix("pkg/") {
        Some(version) => Router::new().nest(&format!("/pkg/{version}"), versioned),
        None => Router::new(),
    };

    router
        .route("/healthz", get(health))
        .route("/ws", get(crate::gateway::upgrade))
        .route("/api/{*rest}", axum::routing::any(|| async { error_response(AppError::NotFound) }))
        .route(&format!("/pkg/{OUTPUT_NAME}.css"), get(stylesheet))
        .leptos_routes_with_context(&state, routes, context, render)
        .fallback_service(assets)
        .layer(middleware::from_fn_with_state(state.core.clone(), resolve_session))
        .layer(middleware::from_fn(error_status))
        .layer(middleware::from_fn(mark_compressible))
        .layer(
            CompressionLayer::new()
                .br(true)
                .gzip(true)
                // Fast levels: these are made per request (quality 11 would take milliseconds per page).
                .quality(CompressionLevel::Precise(4))
                .compress_when(CompressibleAnswers),
        )
        .layer(middleware::from_fn(keep_form_values))
        .layer(middleware::from_fn_with_state(state.core.clone(), same_origin_posts))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // A request that takes longer than this (a stuck database, a slow client) gets 408 and frees its task.
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(middleware::from_fn_with_state(state.core.clone(), security_headers))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            // Only the path: query strings may carry invite codes.
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), id)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The server functions whose answers are compressed: those that can run to tens of KB (a history
/// page is ~30 KB of JSON, mostly base64 ciphertext and ids). Only these: BREACH recovers a secret
/// from the size of compressed bodies that also hold text an attacker chose, so answers that carry
/// codes or tokens (accounts, invites, administration) and pages are never compressed.
const COMPRESSED_ANSWERS: &[&str] =
    &["messages/", "spaces/", "keys/", "backup/", "to_device/", "cross_signing/", "devices/", "channels/", "emoji/"];

/// Answers smaller than this gain less than compressing them costs.
const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// Marks a response as one of [`COMPRESSED_ANSWERS`] (the compression layer sees only responses).
#[derive(Clone, Copy)]
struct Compressible;

fn is_compressible(path: &str) -> bool {
    path.strip_prefix("/api/v1/")
        .is_some_and(|endpoint| COMPRESSED_ANSWERS.iter().any(|prefix| endpoint.starts_with(prefix)))
}

async fn mark_compressible(req: Request, next: Next) -> Response {
    let compressible = is_compressible(req.uri().path());
    let mut res = next.run(req).await;
    if compressible {
        res.extensions_mut().insert(Compressible);
    }
    res
}

/// Compress a marked answer above [`COMPRESS_ABOVE_BYTES`] (brotli or gzip, as the client accepts).
#[derive(Clone, Copy)]
struct CompressibleAnswers;

impl Predicate for CompressibleAnswers {
    fn should_compress<B: http_body::Body>(&self, res: &axum::http::Response<B>) -> bool {
        res.extensions().get::<Compressible>().is_some() && SizeAbove::new(COMPRESS_ABOVE_BYTES).should_compress(res)
    }
}

/// Adds the headers every response carries (a page's own CSP, with its nonce, is kept).
async fn security_headers(State(state): State<Core>, req: Request, next: Next) -> Response {
    // Built assets (`/pkg/…`, the favicon) are public and may be cached; everything else (pages,
    // server-function answers) may carry someone's private data.
    let path = req.uri().path();
    let public_asset = path.starts_with("/pkg/") || path == "/favicon.svg";
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(csp) = HeaderValue::from_str(&app::server_csp(None))
    {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    let mut set = |name: HeaderName, value: &'static str| {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "same-origin");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(HeaderName::from_static("permissions-policy"), "camera=(), microphone=(), geolocation=(), payment=()");
    if state.config.is_https() {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    // Versioned assets already say `immutable`; the rest revalidate.
    set(header::CACHE_CONTROL, if public_asset { "no-cache" } else { "no-store" });
    res
}

/// Resolves the session cookies to a [`Session`] in the request extensions, rotating an expired
/// access token; the rotated cookies are added to the response unless the handler set its own.
async fn resolve_session(State(state): State<Core>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let skip = path.starts_with("/pkg/") || path == "/healthz" || path == "/favicon.svg";
    let (session, set_cookies) = if skip {
        (None, vec![])
    } else {
        match cookies::resolve(&state, req.headers()).await {
            Ok(r) => r,
            Err(e) => return error_response(AppError::from(e)),
        }
    };
    if let Some(s) = session {
        req.extensions_mut().insert::<Session>(s);
    }
    let mut res = next.run(req).await;
    let handler_cookies: Vec<String> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split('=').next())
        .map(str::to_owned)
        .collect();
    for cookie in set_cookies {
        let name = cookie.to_str().ok().and_then(|v| v.split('=').next()).unwrap_or_default().to_owned();
        if !handler_cookies.contains(&name) {
            res.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    res
}

/// Server functions report every error with status 500; this gives each `AppError` its own
/// status (422 for a bad field, 401, 429, …) in one place.
async fn error_status(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR || !res.headers().contains_key("serverfnerror") {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(err) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Without JavaScript, a rejected form post is redirected back to its page with the error in the
/// query string. This adds the submitted values (except passwords) to that redirect, so the page
/// can fill the form in again: bad input gets an error and loses nothing.
async fn keep_form_values(req: Request, next: Next) -> Response {
    let is_plain_form_post = req.method() == Method::POST
        && req.uri().path().starts_with("/api/")
        && header_has(req.headers(), header::ACCEPT, "text/html")
        && header_has(req.headers(), header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if !is_plain_form_post {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return error_response(AppError::BadRequest { message: "the form is too large".into() });
    };
    let mut res = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
    let location = res.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if res.status().is_redirection() && location.contains("__err=") {
        // Back to the page the form came from (the Referer), as a path: never to another site.
        let mut back = same_site_path(location);
        let kept = form_urlencoded::parse(&bytes)
            .filter(|(k, v)| !is_secret_field(k) && !k.starts_with("__") && !v.is_empty() && v.len() <= 256)
            .fold(form_urlencoded::Serializer::new(String::new()), |mut s, (k, v)| {
                s.append_pair(&k, &v);
                s
            })
            .finish();
        if !kept.is_empty() {
            back = format!("{back}&{kept}");
        }
        match HeaderValue::from_str(&back) {
            Ok(value) => res.headers_mut().insert(header::LOCATION, value),
            Err(_) => res.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/")),
        };
    }
    res
}

/// Fields whose values must never be copied into a URL (where history, logs and Referer headers
/// keep them): passwords, recovery and invite codes, tokens.
fn is_secret_field(name: &str) -> bool {
    ["password", "code", "token", "secret"].iter().any(|s| name.contains(s))
}

/// The path (and query) of a redirect target: `https://anywhere/x?y` becomes `/x?y`, so a forged
/// Referer cannot send a browser to another site; a protocol-relative `//host` becomes `/`.
fn same_site_path(location: &str) -> String {
    let path = match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => location,
    };
    if path.starts_with('/') && !path.starts_with("//") { path.to_owned() } else { "/".to_owned() }
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, needle: &str) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains(needle))
}

/// Refuses state-changing requests whose `Origin` is another site (defence in depth on top of
/// SameSite cookies, e.g. against login CSRF).
async fn same_origin_posts(State(state): State<Core>, req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !origin_allowed(&state, req.headers()) {
        return (StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
    }
    next.run(req).await
}

/// Whether the request's `Origin` (if it names one) is this site: its `Host`, or `PUBLIC_URL`.
pub(crate) fn origin_allowed(state: &Core, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    // With PUBLIC_URL known, the site is exactly that origin: scheme, host and port.
    if let Some(public) = state.config.public_url.as_deref() {
        return origin.eq_ignore_ascii_case(public.trim_end_matches('/'));
    }
    // Without it, the server does not know its own scheme (TLS may end at a proxy): the origin must
    // be an http(s) origin of the host the request names.
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    match origin.split_once("://") {
        Some(("http" | "https", origin_host)) => origin_host.eq_ignore_ascii_case(host),
        _ => false,
    }
}

pub(crate) fn error_response(err: AppError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(err)).into_response()
}

#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    database: &'static str,
    /// "in-process" or "nats".
    bus: &'static str,
    /// Open sockets on this node.
    sockets: usize,
}

/// `GET /healthz`: 200 when the database answers, 503 when it does not.
async fn health(State(state): State<Core>) -> Response {
    let db_ok = state.database_ok().await;
    let body = Health {
        status: if db_ok { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        database: if db_ok { "ok" } else { "unavailable" },
        bus: state.realtime.bus.kind(),
        sockets: state.realtime.hub.connections(),
    };
    if !db_ok {
        tracing::warn!(ref_id = %new_ref_id(), "health check: database unavailable");
    }
    let status = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

async fn stylesheet(headers: HeaderMap) -> Response {
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(APP_CSS_ETAG) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, APP_CSS_ETAG)]).into_response();
    }
    let (encoding, body): (Option<&str>, Body) = match accepted_encoding(&headers) {
        Some("br") => (Some("br"), Body::from(APP_CSS_BR)),
        Some(_) => (Some("gzip"), Body::from(APP_CSS_GZ)),
        None => (None, Body::from(APP_CSS)),
    };
    let mut res = (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ETAG, APP_CSS_ETAG),
            (header::VARY, "accept-encoding"),
        ],
        body,
    )
        .into_response();
    if let Some(encoding) = encoding {
        res.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    res
}

/// `br` or `gzip` when the request's `Accept-Encoding` takes it (brotli first), else `None`.
/// An encoding listed with `q=0` is refused.
fn accepted_encoding(headers: &HeaderMap) -> Option<&'static str> {
    let accepted =
        headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    let mut found = (false, false);
    for item in accepted {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused =
            parts.any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0));
        match name {
            "br" if !refused => found.0 = true,
            "gzip" if !refused => found.1 = true,
            _ => {}
        }
    }
    match found {
        (true, _) => Some("br"),
        (false, true) => Some("gzip"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::is_compressible;

    #[test]
    fn only_answers_without_secrets_are_compressed() {
        for path in ["/api/v1/messages/history", "/api/v1/spaces/mine", "/api/v1/backup/keys", "/api/v1/keys/claim"] {
            assert!(is_compressible(path), "{path}");
        }
        // Codes, tokens and invite codes sit beside text a caller chose: BREACH territory.
        for path in [
            "/api/v1/auth/register",
            "/api/v1/auth/recover",
            "/api/v1/invites/list",
            "/api/v1/communities/invites",
            "/api/v1/admin/users",
            "/login",
            "/",
            "/pkg/chatalot.js",
            "/api/v1/messagesX",
        ] {
            assert!(!is_compressible(path), "{path}");
        }
    }
}
