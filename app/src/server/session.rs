//! Sessions: cookies, the refresh-token family lifecycle, and resolving a request to a user.
//!
//! A session is a family of refresh tokens. The browser holds a short-lived access token (JWT)
//! and the current refresh token, both in HttpOnly cookies. When the access token has expired,
//! the request's refresh token is rotated; presenting a token that was rotated more than
//! [`ROTATION_GRACE`] ago means it was copied, and the whole family is revoked.

use super::{
    error::ServerResult,
    keys::Keys,
    state::AppState,
    tokens::{self, ACCESS_TTL, REFRESH_TTL, ROTATION_GRACE},
};
use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{DateTime, Utc};
use cookie::{Cookie, SameSite};
use entity::refresh_token::{self, Column};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::ExprTrait,
};
use uuid::Uuid;

pub const ACCESS_COOKIE: &str = "chatalot_at";
pub const REFRESH_COOKIE: &str = "chatalot_rt";
pub const DEVICE_COOKIE: &str = "chatalot_dev";
/// Carries a freshly issued recovery code to the one page that shows it, then is cleared.
pub const RECOVERY_FLASH_COOKIE: &str = "chatalot_rc";

/// The signed-in user of a request, put into the request's extensions by the session middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

/// The value of cookie `name` in the request, if present.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value for an HttpOnly, SameSite=Lax cookie on `/`.
pub fn set_cookie(name: &str, value: &str, max_age: chrono::Duration, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age.num_seconds()))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie values are ASCII")
}

pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", chrono::Duration::zero(), secure)
}

/// What examining a request's cookies found.
#[derive(Debug, Default)]
pub struct Resolved {
    pub session: Option<Session>,
    /// Cookies to set on the response (rotated tokens, or clearing dead ones).
    pub set_cookies: Vec<HeaderValue>,
}

/// Resolves the request's cookies to a session, rotating the refresh token if the access token is
/// missing or expired.
pub async fn resolve(state: &AppState, headers: &HeaderMap) -> ServerResult<Resolved> {
    let secure = state.config.is_https();
    if let Some(claims) = read_cookie(headers, ACCESS_COOKIE).and_then(|t| tokens::verify_access(&state.keys, &t)) {
        return Ok(Resolved {
            session: Some(Session { user_id: claims.sub, session_id: claims.sid }),
            set_cookies: vec![],
        });
    }
    let Some(raw) = read_cookie(headers, REFRESH_COOKIE) else {
        return Ok(Resolved::default());
    };
    let now = Utc::now();
    Ok(match refresh(&state.db, &state.keys, &raw, now).await? {
        Refresh::Rotated { session, access, refresh } => Resolved {
            session: Some(session),
            set_cookies: vec![
                set_cookie(ACCESS_COOKIE, &access, ACCESS_TTL, secure),
                set_cookie(REFRESH_COOKIE, &refresh, REFRESH_TTL, secure),
            ],
        },
        Refresh::Grace(session) => Resolved { session: Some(session), set_cookies: vec![] },
        Refresh::Invalid => Resolved {
            session: None,
            set_cookies: vec![clear_cookie(ACCESS_COOKIE, secure), clear_cookie(REFRESH_COOKIE, secure)],
        },
    })
}

/// The cookies of a new session for `user_id` (login, registration, recovery).
pub async fn start(state: &AppState, user_id: Uuid, user_agent: Option<String>) -> ServerResult<Vec<HeaderValue>> {
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
    .insert(&state.db)
    .await?;
    let access = tokens::issue_access(&state.keys, user_id, family, now)?;
    let secure = state.config.is_https();
    Ok(vec![
        set_cookie(ACCESS_COOKIE, &access, ACCESS_TTL, secure),
        set_cookie(REFRESH_COOKIE, &raw, REFRESH_TTL, secure),
    ])
}

/// Cookies that end the session in this browser.
pub fn clear_session_cookies(secure: bool) -> Vec<HeaderValue> {
    vec![clear_cookie(ACCESS_COOKIE, secure), clear_cookie(REFRESH_COOKIE, secure)]
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Refresh {
    Rotated {
        session: Session,
        access: String,
        refresh: String,
    },
    /// The token was rotated moments ago (a parallel request): still valid, no new cookies.
    Grace(Session),
    Invalid,
}

pub async fn refresh(
    db: &sea_orm::DatabaseConnection,
    keys: &Keys,
    raw: &str,
    now: DateTime<Utc>,
) -> ServerResult<Refresh> {
    if raw.len() > 128 {
        return Ok(Refresh::Invalid);
    }
    let txn = db.begin().await?;
    let Some(row) =
        refresh_token::Entity::find().filter(Column::TokenHash.eq(tokens::sha256_hex(raw))).one(&txn).await?
    else {
        return Ok(Refresh::Invalid);
    };
    let session = Session { user_id: row.user_id, session_id: row.family_id };
    if row.revoked_at.is_some() || row.expires_at <= now {
        return Ok(Refresh::Invalid);
    }
    if let Some(rotated_at) = row.rotated_at {
        if now - rotated_at <= ROTATION_GRACE {
            return Ok(Refresh::Grace(session));
        }
        revoke_family(&txn, row.family_id, now).await?;
        txn.commit().await?;
        tracing::warn!(user = %row.user_id, session = %row.family_id, "a rotated refresh token was reused; session revoked");
        return Ok(Refresh::Invalid);
    }
    // Claim the rotation; a concurrent request that lost the race gets the grace path.
    let claimed = refresh_token::Entity::update_many()
        .col_expr(Column::RotatedAt, sea_orm::sea_query::Expr::value(now))
        .filter(Column::Id.eq(row.id))
        .filter(Column::RotatedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        return Ok(Refresh::Grace(session));
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
    Ok(Refresh::Rotated { session, access, refresh: new_raw })
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

/// Who opens a socket, and until when their access token is good.
#[derive(Debug)]
pub struct SocketAuth {
    pub user: entity::user::Model,
    pub session: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Authenticates a WebSocket upgrade: an `Authorization: Bearer` access token (desktop, bots,
/// tests), else the access-token cookie, else the session the middleware just refreshed. Unlike a
/// plain request, the session must also still be live in the database: a socket opened with the
/// access token of a logged-out session is refused, not served for the token's last minutes.
pub async fn authenticate_socket(
    state: &AppState,
    headers: &HeaderMap,
    refreshed: Option<Session>,
) -> ServerResult<SocketAuth> {
    let now = Utc::now();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let claims =
        bearer.or_else(|| read_cookie(headers, ACCESS_COOKIE)).and_then(|t| tokens::verify_access(&state.keys, &t));
    let (session, expires_at) = match (claims, refreshed) {
        (Some(c), _) => {
            (Session { user_id: c.sub, session_id: c.sid }, DateTime::from_timestamp(c.exp, 0).unwrap_or(now))
        }
        (None, Some(s)) => (s, now + ACCESS_TTL),
        (None, None) => return Err(crate::error::AppError::Unauthenticated.into()),
    };
    if !is_live(&state.db, session.session_id, now).await? {
        return Err(crate::error::AppError::Unauthenticated.into());
    }
    let user = super::accounts::current(state, Some(session)).await?;
    Ok(SocketAuth { user, session: session.session_id, expires_at })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_and_lax() {
        let v = set_cookie(ACCESS_COOKIE, "abc", ACCESS_TTL, false);
        let s = v.to_str().unwrap();
        assert!(s.starts_with("chatalot_at=abc"), "{s}");
        for part in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=900"] {
            assert!(s.contains(part), "{s} lacks {part}");
        }
        assert!(!s.contains("Secure"));
        assert!(set_cookie(ACCESS_COOKIE, "abc", ACCESS_TTL, true).to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn reads_cookies_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; chatalot_rt=xyz; b=2".parse().unwrap());
        assert_eq!(read_cookie(&h, REFRESH_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(read_cookie(&h, ACCESS_COOKIE), None);
        let mut bad = HeaderMap::new();
        bad.insert(header::COOKIE, ";;==; =".parse().unwrap());
        assert_eq!(read_cookie(&bad, ACCESS_COOKIE), None);
    }
}
