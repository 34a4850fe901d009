//! Accounts: register, log in, log out, recover, who am I.

use crate::{
    error::AppError,
    model::{Me, RegistrationInfo},
};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use {
    super::ctx,
    crate::server::{
        accounts::{self, Registration},
        realtime::Signal,
        session::{self, DEVICE_COOKIE, RECOVERY_FLASH_COOKIE, clear_cookie, set_cookie},
        state::app_state,
        tokens::DEVICE_TTL,
    },
};

/// What the registration form needs to show.
#[server(prefix = "/api/v1", endpoint = "auth/registration_status")]
pub async fn registration_status() -> Result<RegistrationInfo, AppError> {
    let state = app_state()?;
    let first_account = accounts::is_empty(&state).await?;
    Ok(RegistrationInfo { mode: state.config.registration_mode, first_account })
}

/// Creates an account, signs it in and sends the browser to the page that shows its recovery code.
#[server(prefix = "/api/v1", endpoint = "auth/register")]
pub async fn register(
    username: String,
    display_name: String,
    password: String,
    #[server(default)] invite_code: Option<String>,
) -> Result<(), AppError> {
    let state = app_state()?;
    let parts = ctx::parts()?;
    let client = ctx::client(&state, &parts);
    let registered =
        accounts::register(&state, Registration { username, display_name, password, invite_code }, &client).await?;
    let cookies = session::start(&state, registered.user.id, client.user_agent).await?;
    ctx::set_cookies(cookies);
    flash_recovery_code(&state, &registered.recovery_code);
    leptos_axum::redirect("/welcome");
    Ok(())
}

/// Signs in; on success the browser goes to the app.
#[server(prefix = "/api/v1", endpoint = "auth/login")]
pub async fn login(username: String, password: String) -> Result<(), AppError> {
    let state = app_state()?;
    let parts = ctx::parts()?;
    let client = ctx::client(&state, &parts);
    let logged_in = accounts::login(&state, &username, password, &client).await?;
    let mut cookies = session::start(&state, logged_in.user.id, client.user_agent).await?;
    if let Some(device) = logged_in.new_device {
        cookies.push(set_cookie(DEVICE_COOKIE, &device.seal(&state.keys), DEVICE_TTL, state.config.is_https()));
    }
    ctx::set_cookies(cookies);
    leptos_axum::redirect("/");
    Ok(())
}

/// Ends this browser's session.
#[server(prefix = "/api/v1", endpoint = "auth/logout")]
pub async fn logout() -> Result<(), AppError> {
    let state = app_state()?;
    let parts = ctx::parts()?;
    if let Some(s) = ctx::session(&parts) {
        session::revoke_family(&state.db, s.session_id, chrono::Utc::now()).await?;
        state.realtime.publish(Signal::Revoke { user_id: s.user_id, session: Some(s.session_id) }).await;
    }
    ctx::set_cookies(session::clear_session_cookies(state.config.is_https()));
    leptos_axum::redirect("/login");
    Ok(())
}

/// Changes the password. Every session ends (sockets too); this browser gets a new one.
#[server(prefix = "/api/v1", endpoint = "auth/change_password")]
pub async fn change_password(current_password: String, new_password: String) -> Result<(), AppError> {
    let (state, me) = ctx::actor().await?;
    let parts = ctx::parts()?;
    let client = ctx::client(&state, &parts);
    let user = accounts::change_password(&state, me, current_password, new_password).await?;
    state.realtime.publish(Signal::Revoke { user_id: user.id, session: None }).await;
    ctx::set_cookies(session::start(&state, user.id, client.user_agent).await?);
    Ok(())
}

/// Suspends (or reinstates) an account: instance owner and admins only.
#[server(prefix = "/api/v1", endpoint = "admin/suspend")]
pub async fn suspend_user(user_id: uuid::Uuid, suspended: bool) -> Result<(), AppError> {
    let (state, me) = ctx::actor().await?;
    accounts::set_suspended(&state.db, &me, user_id, suspended).await?;
    if suspended {
        state.realtime.publish(Signal::Revoke { user_id, session: None }).await;
    }
    Ok(())
}

/// Resets the password with the recovery code; signs in and shows the new recovery code.
#[server(prefix = "/api/v1", endpoint = "auth/recover")]
pub async fn recover(username: String, recovery_code: String, new_password: String) -> Result<(), AppError> {
    let state = app_state()?;
    let parts = ctx::parts()?;
    let client = ctx::client(&state, &parts);
    let recovered = accounts::recover(&state, &username, &recovery_code, new_password, &client).await?;
    state.realtime.publish(Signal::Revoke { user_id: recovered.user.id, session: None }).await;
    let cookies = session::start(&state, recovered.user.id, client.user_agent).await?;
    ctx::set_cookies(cookies);
    flash_recovery_code(&state, &recovered.recovery_code);
    leptos_axum::redirect("/welcome");
    Ok(())
}

/// The recovery code just issued to this browser, once: the cookie carrying it is cleared.
#[server(prefix = "/api/v1", endpoint = "auth/take_recovery_code")]
pub async fn take_recovery_code() -> Result<Option<String>, AppError> {
    let state = app_state()?;
    let parts = ctx::parts()?;
    let code = session::read_cookie(&parts.headers, RECOVERY_FLASH_COOKIE);
    if code.is_some() {
        ctx::set_cookies([clear_cookie(RECOVERY_FLASH_COOKIE, state.config.is_https())]);
    }
    Ok(code.filter(|c| c.len() <= 32))
}

/// The signed-in user, or `None`.
#[server(prefix = "/api/v1", endpoint = "auth/me")]
pub async fn current_user() -> Result<Option<Me>, AppError> {
    let state = app_state()?;
    let parts = ctx::parts()?;
    match accounts::current(&state, ctx::session(&parts)).await {
        Ok(user) => Ok(Some(accounts::to_me(&user))),
        Err(e) => match AppError::from(e) {
            AppError::Unauthenticated => Ok(None),
            other => Err(other),
        },
    }
}

#[cfg(feature = "ssr")]
fn flash_recovery_code(state: &crate::server::state::AppState, code: &str) {
    ctx::set_cookies([set_cookie(RECOVERY_FLASH_COOKIE, code, chrono::Duration::minutes(10), state.config.is_https())]);
}
