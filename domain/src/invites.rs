//! Registration invite codes, created by the instance owner (or an instance admin).

use super::{accounts::random_code, error::ServerResult, policy, state::Core};
use chrono::{DateTime, Duration, Utc};
use entity::{
    registration_invite::{self, Column},
    user,
};
use protocol::{error::AppError, model::Invite};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Condition, Expr, ExprTrait},
};
use uuid::Uuid;

pub const MAX_USES_LIMIT: i32 = 10_000;
pub const MAX_EXPIRY_HOURS: i64 = 8_760;

/// Parses the optional form fields; empty means "no limit".
pub fn parse_limits(max_uses: &str, expires_in_hours: &str) -> Result<(Option<i32>, Option<i64>), AppError> {
    let max_uses = match max_uses.trim() {
        "" => None,
        s => match s.parse::<i32>() {
            Ok(n) if (1..=MAX_USES_LIMIT).contains(&n) => Some(n),
            _ => {
                return Err(AppError::invalid(
                    "max_uses",
                    format!("must be a whole number from 1 to {MAX_USES_LIMIT}, or empty for unlimited"),
                ));
            }
        },
    };
    let hours = match expires_in_hours.trim() {
        "" => None,
        s => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_EXPIRY_HOURS).contains(&n) => Some(n),
            _ => {
                return Err(AppError::invalid(
                    "expires_in_hours",
                    format!("must be a whole number of hours from 1 to {MAX_EXPIRY_HOURS}, or empty for never"),
                ));
            }
        },
    };
    Ok((max_uses, hours))
}

pub async fn create(
    core: &Core,
    creator: &user::Model,
    max_uses: Option<i32>,
    expires_in_hours: Option<i64>,
) -> ServerResult<Invite> {
    let db = &core.db;
    policy::may_administer(creator)?;
    let now = Utc::now();
    let model = registration_invite::ActiveModel {
        id: Set(Uuid::now_v7()),
        code: Set(random_code(3)),
        created_by: Set(creator.id),
        max_uses: Set(max_uses),
        uses: Set(0),
        expires_at: Set(expires_in_hours.map(|h| now + Duration::hours(h))),
        created_at: Set(now),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(to_wire(&model, now))
}

pub async fn list(core: &Core, user: &user::Model) -> ServerResult<Vec<Invite>> {
    let db = &core.db;
    policy::may_administer(user)?;
    let now = Utc::now();
    let rows = registration_invite::Entity::find().order_by_desc(Column::CreatedAt).all(db).await?;
    Ok(rows.iter().map(|r| to_wire(r, now)).collect())
}

/// A code as typed, as it is stored: upper case, dashes every four characters.
fn stored_form(code: &str) -> String {
    let code = super::accounts::normalize_code(code);
    code.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

/// The condition under which an invite can still be used.
fn usable_now(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(Column::RevokedAt.is_null())
        .add(
            Condition::any().add(Column::MaxUses.is_null()).add(Expr::col(Column::Uses).lt(Expr::col(Column::MaxUses))),
        )
        .add(Condition::any().add(Column::ExpiresAt.is_null()).add(Column::ExpiresAt.gt(now)))
}

/// Whether `code` could be used now (nothing is used up: registration asks before it says anything
/// about the username, and consumes the code when it commits).
pub async fn is_usable(db: &impl ConnectionTrait, code: &str, now: DateTime<Utc>) -> ServerResult<bool> {
    let found = registration_invite::Entity::find()
        .filter(Column::Code.eq(stored_form(code)))
        .filter(usable_now(now))
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// Uses up one use of `code` if it is usable; `false` if it is not (atomic on both backends).
pub async fn consume(db: &impl ConnectionTrait, code: &str, now: DateTime<Utc>) -> ServerResult<bool> {
    let result = registration_invite::Entity::update_many()
        .col_expr(Column::Uses, Expr::col(Column::Uses).add(1))
        .filter(Column::Code.eq(stored_form(code)))
        .filter(usable_now(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

fn to_wire(m: &registration_invite::Model, now: DateTime<Utc>) -> Invite {
    let usable =
        m.revoked_at.is_none() && m.max_uses.is_none_or(|max| m.uses < max) && m.expires_at.is_none_or(|e| e > now);
    Invite {
        code: m.code.clone(),
        max_uses: m.max_uses,
        uses: m.uses,
        expires_at: m.expires_at.map(|e| e.to_rfc3339()),
        usable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_clear_errors() {
        assert_eq!(parse_limits("", ""), Ok((None, None)));
        assert_eq!(parse_limits(" 5 ", "24"), Ok((Some(5), Some(24))));
        assert!(parse_limits("0", "").unwrap_err().for_field("max_uses").is_some());
        assert!(parse_limits("", "8761").unwrap_err().for_field("expires_in_hours").is_some());
        assert!(parse_limits("many", "").is_err());
    }
}
