//! Server functions, one module per domain. Each is thin: read the request context,
//! call one service, map the error. Paths are stable (`/api/v1/...`) so that a cached WASM bundle
//! or the desktop app keeps working against a newer server.

pub mod auth;
pub mod invites;
pub mod keys;
pub mod messages;
pub mod spaces;

#[cfg(feature = "ssr")]
pub(crate) mod ctx {
    //! The request context a server function runs in.
    use crate::{
        error::AppError,
        server::{
            accounts::Client,
            client_ip::client_ip,
            session::{DEVICE_COOKIE, Session, read_cookie},
            state::AppState,
            tokens::DeviceCookie,
        },
    };
    use axum::{
        extract::ConnectInfo,
        http::{HeaderValue, header, request::Parts},
    };
    use leptos::prelude::use_context;
    use leptos_axum::ResponseOptions;
    use std::net::SocketAddr;

    pub fn parts() -> Result<Parts, AppError> {
        use_context::<Parts>().ok_or_else(|| AppError::BadRequest { message: "no request context".into() })
    }

    /// The session the middleware resolved for this request.
    pub fn session(parts: &Parts) -> Option<Session> {
        parts.extensions.get::<Session>().copied()
    }

    pub fn client(state: &AppState, parts: &Parts) -> Client {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Client {
            ip: client_ip(peer, &parts.headers, &state.config.trusted_proxies),
            user_agent: parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
            device: read_cookie(&parts.headers, DEVICE_COOKIE).and_then(|v| DeviceCookie::open(&state.keys, &v)),
        }
    }

    /// The signed-in user and the state, or `Unauthenticated`.
    pub async fn actor() -> Result<(AppState, entity::user::Model), AppError> {
        let state = crate::server::state::app_state()?;
        let parts = parts()?;
        let user = crate::server::accounts::current(&state, session(&parts)).await?;
        Ok((state, user))
    }

    pub fn set_cookies(cookies: impl IntoIterator<Item = HeaderValue>) {
        if let Some(res) = use_context::<ResponseOptions>() {
            for c in cookies {
                res.append_header(header::SET_COOKIE, c);
            }
        }
    }
}
