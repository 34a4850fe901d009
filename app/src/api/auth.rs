//! Accounts: register, log in, log out, recover, who am I.

use crate::{
    error::AppError,
    model::{Me, RegistrationInfo},
};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use {
    crate::web::{
        self as ctx,
        cookies::{DEVICE_COOKIE, RECOVERY_FLASH_COOKIE, clear_cookie, session_cookies, set_cookie},
    },
    domain::{
        Core,
        accounts::{self, Registration},
        session,
        tokens::DEVICE_TTL,
    },
};

/// What the registration form needs to show.
#[server(prefix = "/api/v1", endpoint = "auth/registration_status")]
pub async fn registration_status() -> Result<RegistrationInfo, AppError> {
    let core = ctx::core()?;
    let first_account = accounts::is_empty(&core).await?;
    Ok(RegistrationInfo { mode: core.config.registration_mode, first_account })
}

/// Creates an account, signs it in and sends the browser to the page that shows its recovery code.
#[server(prefix = "/api/v1", endpoint = "auth/register")]
pub async fn register(
    username: String,
    display_name: String,
    password: String,
    #[server(default)] invite_code: Option<String>,
) -> Result<(), AppError> {
    let core = ctx::core()?;
    let parts = ctx::parts()?;
    let client = ctx::client(&core, &parts);
    let registered =
        accounts::register(&core, Registration { username, display_name, password, invite_code }, &client).await?;
    let issued = session::start(&core, registered.user.id, client.user_agent).await?;
    ctx::set_cookies(session_cookies(&issued, core.config.is_https()));
    flash_recovery_code(&core, &registered.recovery_code);
    leptos_axum::redirect("/welcome");
    Ok(())
}

/// Signs in; on success the browser goes to the app.
#[server(prefix = "/api/v1", endpoint = "auth/login")]
pub async fn login(username: String, password: String) -> Result<(), AppError> {
    let core = ctx::core()?;
    let parts = ctx::parts()?;
    let client = ctx::client(&core, &parts);
    let logged_in = accounts::login(&core, &username, password, &client).await?;
    let issued = session::start(&core, logged_in.user.id, client.user_agent).await?;
    let mut cookies = session_cookies(&issued, core.config.is_https());
    if let Some(device) = logged_in.new_device {
        cookies.push(set_cookie(DEVICE_COOKIE, &device.seal(&core.keys), DEVICE_TTL, core.config.is_https()));
    }
    ctx::set_cookies(cookies);
    leptos_axum::redirect("/");
    Ok(())
}

/// Ends this browser's session.
#[server(prefix = "/api/v1", endpoint = "auth/logout")]
pub async fn logout() -> Result<(), AppError> {
    let core = ctx::core()?;
    let parts = ctx::parts()?;
    if let Some(s) = ctx::session(&parts) {
        session::logout(&core, s).await?;
    }
    ctx::set_cookies(crate::web::cookies::clear_session_cookies(core.config.is_https()));
    leptos_axum::redirect("/login");
    Ok(())
}

/// Changes the password. Every session ends (sockets too); this browser gets a new one.
#[server(prefix = "/api/v1", endpoint = "auth/change_password")]
pub async fn change_password(current_password: String, new_password: String) -> Result<(), AppError> {
    let (core, me) = ctx::actor().await?;
    let parts = ctx::parts()?;
    let client = ctx::client(&core, &parts);
    let user = accounts::change_password(&core, me, current_password, new_password).await?;
    let issued = session::start(&core, user.id, client.user_agent).await?;
    ctx::set_cookies(session_cookies(&issued, core.config.is_https()));
    Ok(())
}

/// Turns my read receipts on or off: off, nobody sees how far I have read, and I see nobody's.
#[server(prefix = "/api/v1", endpoint = "auth/read_receipts")]
pub async fn set_read_receipts(on: bool) -> Result<(), AppError> {
    let (core, me) = ctx::actor().await?;
    Ok(domain::receipts::set_sharing(&core, me.id, on).await?)
}

/// Suspends (or reinstates) an account: instance owner and admins only.
#[server(prefix = "/api/v1", endpoint = "admin/suspend")]
pub async fn suspend_user(user_id: uuid::Uuid, suspended: bool) -> Result<(), AppError> {
    let (core, me) = ctx::actor().await?;
    accounts::set_suspended(&core, &me, user_id, suspended).await?;
    Ok(())
}

/// Resets the password with the recovery code; signs in and shows the new recovery code.
#[server(prefix = "/api/v1", endpoint = "auth/recover")]
pub async fn recover(username: String, recovery_code: String, new_password: String) -> Result<(), AppError> {
    let core = ctx::core()?;
    let parts = ctx::parts()?;
    let client = ctx::client(&core, &parts);
    let recovered = accounts::recover(&core, &username, &recovery_code, new_password, &client).await?;
    let issued = session::start(&core, recovered.user.id, client.user_agent).await?;
    ctx::set_cookies(session_cookies(&issued, core.config.is_https()));
    flash_recovery_code(&core, &recovered.recovery_code);
    leptos_axum::redirect("/welcome");
    Ok(())
}

/// The recovery code just issued to this browser, once: the cookie carrying it is cleared.
#[server(prefix = "/api/v1", endpoint = "auth/take_recovery_code")]
pub async fn take_recovery_code() -> Result<Option<String>, AppError> {
    let core = ctx::core()?;
    let parts = ctx::parts()?;
    let code = crate::web::cookies::read_cookie(&parts.headers, RECOVERY_FLASH_COOKIE);
    if code.is_some() {
        ctx::set_cookies([clear_cookie(RECOVERY_FLASH_COOKIE, core.config.is_https())]);
    }
    Ok(code.filter(|c| c.len() <= 32))
}

/// The signed-in user, or `None`.
#[server(prefix = "/api/v1", endpoint = "auth/me")]
pub async fn current_user() -> Result<Option<Me>, AppError> {
    let core = ctx::core()?;
    let parts = ctx::parts()?;
    Ok(accounts::me(&core, ctx::session(&parts)).await?)
}

#[cfg(feature = "ssr")]
fn flash_recovery_code(core: &Core, code: &str) {
    ctx::set_cookies([set_cookie(RECOVERY_FLASH_COOKIE, code, chrono::Duration::minutes(10), core.config.is_https())]);
}
