//! Registration invites (instance owner and admins).

use crate::{error::AppError, model::Invite};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use {crate::web::actor, domain::invites};

/// Creates an invite code. Empty fields mean unlimited uses / never expires.
#[server(prefix = "/api/v1", endpoint = "invites/create")]
pub async fn create_invite(
    #[server(default)] max_uses: String,
    #[server(default)] expires_in_hours: String,
) -> Result<Invite, AppError> {
    let (core, me) = actor().await?;
    let (max_uses, hours) = invites::parse_limits(&max_uses, &expires_in_hours)?;
    Ok(invites::create(&core, &me, max_uses, hours).await?)
}

/// Every invite code, newest first.
#[server(prefix = "/api/v1", endpoint = "invites/list")]
pub async fn list_invites() -> Result<Vec<Invite>, AppError> {
    let (core, me) = actor().await?;
    Ok(invites::list(&core, &me).await?)
}
