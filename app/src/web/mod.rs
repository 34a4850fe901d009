//! The server side of the web transport (`ssr` only): the request context a server function runs
//! in, the session cookies, the client's address. The server binary's middleware uses the same
//! pieces, so cookies are read and written in one place.

pub mod client_ip;
pub mod cookies;

use axum::{
    extract::ConnectInfo,
    http::{HeaderValue, header, request::Parts},
};
use domain::{Core, accounts::Client, session::Session, tokens::DeviceCookie};
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;
use protocol::AppError;
use std::net::SocketAddr;

/// The domain, from inside a server function or a component rendered on the server.
pub fn core() -> Result<Core, AppError> {
    use_context::<Core>().ok_or_else(|| {
        let ref_id = domain::error::new_ref_id();
        tracing::error!(%ref_id, "Core missing from the server function context");
        AppError::Internal { ref_id }
    })
}

pub fn parts() -> Result<Parts, AppError> {
    use_context::<Parts>().ok_or_else(|| AppError::BadRequest { message: "no request context".into() })
}

/// The session the middleware resolved for this request.
pub fn session(parts: &Parts) -> Option<Session> {
    parts.extensions.get::<Session>().copied()
}

/// Who is making an attempt (address, user agent, device cookie): for throttling sign-ins.
pub fn client(core: &Core, parts: &Parts) -> Client {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    Client {
        ip: client_ip::client_ip(peer, &parts.headers, &core.config.trusted_proxies),
        user_agent: parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
        device: cookies::read_cookie(&parts.headers, cookies::DEVICE_COOKIE)
            .and_then(|v| DeviceCookie::open(&core.keys, &v)),
    }
}

/// The signed-in user and the domain, or `Unauthenticated`.
pub async fn actor() -> Result<(Core, entity::user::Model), AppError> {
    let core = core()?;
    let parts = parts()?;
    let user = domain::accounts::current(&core, session(&parts)).await?;
    Ok((core, user))
}

pub fn set_cookies(cookies: impl IntoIterator<Item = HeaderValue>) {
    if let Some(res) = use_context::<ResponseOptions>() {
        for c in cookies {
            res.append_header(header::SET_COOKIE, c);
        }
    }
}
