//! Sessions: the refresh-token family lifecycle, and resolving presented tokens to a user. How the
//! tokens travel (the browser's HttpOnly cookies) is the transport's business (`app::web::cookies`).
//!
//! A session is a family of refresh tokens. The client holds a short-lived access token (JWT)
//! and the current refresh token. When the access token has expired,
//! the request's refresh token is rotated; presenting a token that was rotated more than
//! [`ROTATION_GRACE`] ago means it was copied, and the whole family is revoked.

use super::{
    error::ServerResult,
    keys::Keys,
    realtime::Signal,
    state::Core,
    tokens::{self, REFRESH_TTL, ROTATION_GRACE},
};
use chrono::{DateTime, Utc};
use entity::refresh_token::{self, Column};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::ExprTrait,
};
use uuid::Uuid;

/// The signed-in user of a request (the server's session middleware puts it into the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

/// A fresh pair of tokens for a session: the transport puts them in cookies (or hands them to a
/// native client). Never printed.
pub struct Issued {
    pub access: String,
    pub refresh: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issued { <tokens> }")
    }
}

/// What the tokens a request presented amount to.
#[derive(Debug, Default)]
pub struct Resolved {
    pub session: Option<Session>,
    /// The refresh token was rotated: the client must store these.
    pub issued: Option<Issued>,
    /// The tokens presented are dead: the client should forget them.
    pub forget: bool,
}

/// Resolves a request's tokens to a session, rotating the refresh token if the access token is
/// missing or expired. A valid access token of a session that has ended (logout, password change,
/// recovery, suspension, a stolen refresh token) is refused too, within [`LIVENESS_FRESH_FOR`]
/// on every node: a copied access token does not outlive its session.
pub async fn resolve(core: &Core, access: Option<&str>, refresh_token: Option<&str>) -> ServerResult<Resolved> {
    if let Some(claims) = access.and_then(|t| tokens::verify_access(&core.keys, t)) {
        let session = Session { user_id: claims.sub, session_id: claims.sid };
        if session_live(core, session).await? {
            return Ok(Resolved { session: Some(session), ..Resolved::default() });
        }
        return Ok(Resolved { forget: true, ..Resolved::default() });
    }
    let Some(raw) = refresh_token else {
        return Ok(Resolved::default());
    };
    Ok(match rotate(&core.db, &core.keys, raw, Utc::now()).await? {
        Ok(Refresh::Rotated { session, access, refresh }) => {
            Resolved { session: Some(session), issued: Some(Issued { access, refresh }), forget: false }
        }
        Ok(Refresh::Grace(session)) => Resolved { session: Some(session), ..Resolved::default() },
        Ok(Refresh::Invalid) => Resolved { forget: true, ..Resolved::default() },
        // Someone presented a token that was already rotated: one of the two is a thief. The whole
        // session is revoked; its open sockets close now.
        Err(session) => {
            core.realtime.publish(Signal::Revoke { user_id: session.user_id, session: Some(session.session_id) }).await;
            Resolved { forget: true, ..Resolved::default() }
        }
    })
}

/// How long a node believes what it last learned about a session's liveness.
pub const LIVENESS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a session is still live: this node's memory of the last second, or one indexed query.
/// `Revoke` signals update that memory on every node at once. Open sockets ask every few minutes;
/// revocation does not wait for that, it closes them through the hub at once.
pub async fn session_live(core: &Core, session: Session) -> ServerResult<bool> {
    let hub = &core.realtime.hub;
    if let Some(live) = hub.session_liveness(session.session_id, LIVENESS_FRESH_FOR) {
        return Ok(live);
    }
    let live = is_live(&core.db, session.session_id, Utc::now()).await?;
    hub.remember_session(session.user_id, session.session_id, live);
    Ok(live)
}

/// A new session for `user_id` (login, registration, recovery).
pub async fn start(core: &Core, user_id: Uuid, user_agent: Option<String>) -> ServerResult<Issued> {
    let now = Utc::now();
    let family = Uuid::now_v7();
    let (raw, hash) = tokens::new_secret();
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        family_id: Set(family),
        token_hash: Set(hash),
        created_at: Set(now),
        expires_at: Set(now + REFRESH_TTL),
        rotated_at: Set(None),
        revoked_at: Set(None),
        user_agent: Set(user_agent.map(|ua| ua.chars().take(256).collect())),
    }
    .insert(&core.db)
    .await?;
    let access = tokens::issue_access(&core.keys, user_id, family, now)?;
    Ok(Issued { access, refresh: raw })
}

/// Ends one session (logout): its tokens are revoked and its open sockets closed.
pub async fn logout(core: &Core, session: Session) -> ServerResult<()> {
    revoke_family(&core.db, session.session_id, Utc::now()).await?;
    core.realtime.publish(Signal::Revoke { user_id: session.user_id, session: Some(session.session_id) }).await;
    Ok(())
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Refresh {
    Rotated {
        session: Session,
        access: String,
        refresh: String,
    },
    /// The token was rotated moments ago (a parallel request): still valid, no new tokens.
    Grace(Session),
    Invalid,
}

/// Presents a refresh token: rotates it, or says why not.
pub async fn refresh(
    db: &sea_orm::DatabaseConnection,
    keys: &Keys,
    raw: &str,
    now: DateTime<Utc>,
) -> ServerResult<Refresh> {
    Ok(rotate(db, keys, raw, now).await?.unwrap_or(Refresh::Invalid))
}

/// [`refresh`], or `Err(session)` when a rotated token came back after the grace period: one of
/// its two holders is a thief, and the session has been revoked.
async fn rotate(
    db: &sea_orm::DatabaseConnection,
    keys: &Keys,
    raw: &str,
    now: DateTime<Utc>,
) -> ServerResult<Result<Refresh, Session>> {
    if raw.len() > 128 {
        return Ok(Ok(Refresh::Invalid));
    }
    let txn = crate::db::begin_write(db).await?;
    let Some(row) =
        refresh_token::Entity::find().filter(Column::TokenHash.eq(tokens::sha256_hex(raw))).one(&txn).await?
    else {
        return Ok(Ok(Refresh::Invalid));
    };
    let session = Session { user_id: row.user_id, session_id: row.family_id };
    if row.revoked_at.is_some() || row.expires_at <= now {
        return Ok(Ok(Refresh::Invalid));
    }
    if let Some(rotated_at) = row.rotated_at {
        if now - rotated_at <= ROTATION_GRACE {
            return Ok(Ok(Refresh::Grace(session)));
        }
        revoke_family(&txn, row.family_id, now).await?;
        txn.commit().await?;
        tracing::warn!(user = %row.user_id, session = %row.family_id, "a rotated refresh token was reused; session revoked");
        return Ok(Err(session));
    }
    // Claim the rotation; a concurrent request that lost the race gets the grace path.
    let claimed = refresh_token::Entity::update_many()
        .col_expr(Column::RotatedAt, sea_orm::sea_query::Expr::value(now))
        .filter(Column::Id.eq(row.id))
        .filter(Column::RotatedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        return Ok(Ok(Refresh::Grace(session)));
    }
    let (new_raw, new_hash) = tokens::new_secret();
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(row.user_id),
        family_id: Set(row.family_id),
        token_hash: Set(new_hash),
        created_at: Set(now),
        expires_at: Set(now + REFRESH_TTL),
        rotated_at: Set(None),
        revoked_at: Set(None),
        user_agent: Set(row.user_agent),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    let access = tokens::issue_access(keys, row.user_id, row.family_id, now)?;
    Ok(Ok(Refresh::Rotated { session, access, refresh: new_raw }))
}

/// Revokes every token of one session.
pub async fn revoke_family(db: &impl ConnectionTrait, family: Uuid, now: DateTime<Utc>) -> ServerResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(Column::RevokedAt, sea_orm::sea_query::Expr::value(now))
        .filter(Column::FamilyId.eq(family))
        .filter(Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Revokes every session of a user (password reset).
pub async fn revoke_all(db: &impl ConnectionTrait, user: Uuid, now: DateTime<Utc>) -> ServerResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(Column::RevokedAt, sea_orm::sea_query::Expr::value(now))
        .filter(Column::UserId.eq(user))
        .filter(Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Whether a session is still live: not logged out, revoked or expired.
pub async fn is_live(db: &impl ConnectionTrait, family: Uuid, now: DateTime<Utc>) -> ServerResult<bool> {
    Ok(refresh_token::Entity::find()
        .filter(Column::FamilyId.eq(family))
        .filter(Column::RevokedAt.is_null())
        .filter(Column::ExpiresAt.gt(now))
        .one(db)
        .await?
        .is_some())
}

/// Who opens a socket, and the session it lives by. The socket outlives the access token that
/// opened it: it stays open while the session is live (`session_live`), and a `Revoke` closes it at once.
#[derive(Debug)]
pub struct SocketAuth {
    pub user: entity::user::Model,
    pub session: Uuid,
}

/// Authenticates a WebSocket upgrade: an access token (from an `Authorization: Bearer` header or
/// the access-token cookie), else the session the middleware just refreshed. Unlike a plain
/// request, the session must also still be live in the database: a socket opened with the access
/// token of a logged-out session is refused, not served for the token's last minutes.
pub async fn authenticate_socket(
    core: &Core,
    access: Option<&str>,
    refreshed: Option<Session>,
) -> ServerResult<SocketAuth> {
    let now = Utc::now();
    let claims = access.and_then(|t| tokens::verify_access(&core.keys, t));
    let session = match (claims, refreshed) {
        (Some(c), _) => Session { user_id: c.sub, session_id: c.sid },
        (None, Some(s)) => s,
        (None, None) => return Err(protocol::AppError::Unauthenticated.into()),
    };
    if !is_live(&core.db, session.session_id, now).await? {
        return Err(protocol::AppError::Unauthenticated.into());
    }
    let user = super::accounts::current(core, Some(session)).await?;
    Ok(SocketAuth { user, session: session.session_id })
}

/// Deletes tokens that expired or were revoked more than a week ago.
pub async fn purge(db: &impl ConnectionTrait, now: DateTime<Utc>) -> ServerResult<u64> {
    let cutoff = now - chrono::Duration::days(7);
    let gone = refresh_token::Entity::delete_many()
        .filter(Column::ExpiresAt.lt(cutoff).or(Column::RevokedAt.lt(cutoff)))
        .exec(db)
        .await?;
    Ok(gone.rows_affected)
}
