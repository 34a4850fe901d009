//! Registration invites (instance owner and admins).

use crate::{error::AppError, model::Invite};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use {
    super::ctx,
    crate::server::{accounts, invites, state::app_state},
};

/// Creates an invite code. Empty fields mean unlimited uses / never expires.
#[server(prefix = "/api/v1", endpoint = "invites/create")]
pub async fn create_invite(
    #[server(default)] max_uses: String,
    #[server(default)] expires_in_hours: String,
) -> Result<Invite, AppError> {
    let state = app_state()?;
    let parts = ctx::parts()?;
    let user = accounts::current(&state, ctx::session(&parts)).await?;
    let (max_uses, hours) = invites::parse_limits(&max_uses, &expires_in_hours)?;
    Ok(invites::create(&state.db, &user, max_uses, hours).await?)
}

/// Every invite code, newest first.
#[server(prefix = "/api/v1", endpoint = "invites/list")]
pub async fn list_invites() -> Result<Vec<Invite>, AppError> {
    let state = app_state()?;
    let parts = ctx::parts()?;
    let user = accounts::current(&state, ctx::session(&parts)).await?;
    Ok(invites::list(&state.db, &user).await?)
}
