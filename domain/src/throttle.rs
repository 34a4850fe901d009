//! Failure throttling for authentication, stored in the database so that every server node sees
//! the same counts and a restart does not reset them.
//!
//! Each attempt is checked against several keys (the client IP, and either the account or the
//! device cookie). Only failures count; a key that reaches its limit refuses further attempts
//! until its window ends.

use super::error::ServerResult;
use chrono::{DateTime, Duration, Utc};
use entity::auth_throttle::{ActiveModel, Column, Entity};
use protocol::AppError;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{CaseStatement, Expr, ExprTrait, OnConflict},
};

/// One throttled key and its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub key: String,
    pub max_failures: i32,
    pub window: Duration,
}

impl Limit {
    pub fn new(key: impl Into<String>, max_failures: i32, window: Duration) -> Self {
        Self { key: key.into(), max_failures, window }
    }
}

/// Refuses with `RateLimited` if any key has used up its failures in the current window.
pub async fn check(db: &impl ConnectionTrait, limits: &[Limit], now: DateTime<Utc>) -> ServerResult<()> {
    let keys: Vec<&str> = limits.iter().map(|l| l.key.as_str()).collect();
    let rows = Entity::find().filter(Column::Key.is_in(keys)).all(db).await?;
    let mut retry_after: Option<i64> = None;
    for row in rows {
        let Some(limit) = limits.iter().find(|l| l.key == row.key) else { continue };
        let window_end = row.window_start + limit.window;
        if window_end > now && row.failures >= limit.max_failures {
            let wait = Ord::max((window_end - now).num_seconds(), 1);
            retry_after = Some(retry_after.map_or(wait, |w| Ord::max(w, wait)));
        }
    }
    match retry_after {
        Some(s) => Err(AppError::RateLimited { retry_after_s: s as u64 }.into()),
        None => Ok(()),
    }
}

/// Counts one failure against every key: one atomic upsert per key that increments the count
/// while its window is open and starts a new window once it has ended, so concurrent attempts
/// never lose (or reset) each other's counts.
pub async fn record_failure(db: &impl ConnectionTrait, limits: &[Limit], now: DateTime<Utc>) -> ServerResult<()> {
    for limit in limits {
        let open = Expr::col((Entity, Column::WindowStart)).gt(now - limit.window);
        let failures = CaseStatement::new().case(open.clone(), Expr::col((Entity, Column::Failures)).add(1)).finally(1);
        let window_start = CaseStatement::new().case(open, Expr::col((Entity, Column::WindowStart))).finally(now);
        Entity::insert(ActiveModel { key: Set(limit.key.clone()), window_start: Set(now), failures: Set(1) })
            .on_conflict(
                OnConflict::column(Column::Key)
                    .value(Column::Failures, failures)
                    .value(Column::WindowStart, window_start)
                    .to_owned(),
            )
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Forgets the failures of `key` (after a success that proves the key's owner is legitimate).
pub async fn clear(db: &impl ConnectionTrait, key: &str) -> ServerResult<()> {
    Entity::delete_many().filter(Column::Key.eq(key)).exec(db).await?;
    Ok(())
}

/// Deletes counters whose windows ended long ago.
pub async fn purge(db: &impl ConnectionTrait, older_than: DateTime<Utc>) -> ServerResult<u64> {
    Ok(Entity::delete_many().filter(Column::WindowStart.lt(older_than)).exec(db).await?.rows_affected)
}
