//! Failure throttling for authentication, stored in the database so that every server node sees
//! the same counts and a restart does not reset them.
//!
//! Each attempt is checked against several keys (the client IP, and either the account or the
//! device cookie). Either only failures count (`check`, then `record_failure`), or every attempt
//! does (`take`, atomic under concurrency); a key that reaches its limit refuses further attempts
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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
        count_one(limit, now).exec(db).await?;
    }
    Ok(())
}

/// Counts this attempt against every key and refuses it with `RateLimited` if any key is now
/// over its limit. The increment and the check are one statement per key, so concurrent
/// attempts cannot all pass a check made before any of them counted: of any number of parallel
/// attempts, at most `max_failures` per window get through. Inside a transaction that is then
/// rolled back, a refused attempt is not counted.
pub async fn take(db: &impl ConnectionTrait, limits: &[Limit], now: DateTime<Utc>) -> ServerResult<()> {
    for limit in limits {
        let row = count_one(limit, now).exec_with_returning(db).await?;
        if row.failures > limit.max_failures {
            let wait = Ord::max((row.window_start + limit.window - now).num_seconds(), 1);
            return Err(AppError::RateLimited { retry_after_s: wait as u64 }.into());
        }
    }
    Ok(())
}

/// The upsert that counts one attempt against `limit`'s key.
fn count_one(limit: &Limit, now: DateTime<Utc>) -> sea_orm::Insert<ActiveModel> {
    let open = Expr::col((Entity, Column::WindowStart)).gt(now - limit.window);
    let failures = CaseStatement::new().case(open.clone(), Expr::col((Entity, Column::Failures)).add(1)).finally(1);
    let window_start = CaseStatement::new().case(open, Expr::col((Entity, Column::WindowStart))).finally(now);
    Entity::insert(ActiveModel { key: Set(limit.key.clone()), window_start: Set(now), failures: Set(1) }).on_conflict(
        OnConflict::column(Column::Key)
            .value(Column::Failures, failures)
            .value(Column::WindowStart, window_start)
            .to_owned(),
    )
}

/// Takes back one attempt counted by [`take`] from every key: the attempt succeeded, and only
/// failures should count against these keys. One statement per key, in key order: a single
/// multi-row update locks its rows in no fixed order, and two of them at once can deadlock on
/// PostgreSQL (many sign-ins from one network share the address and network rows).
pub async fn give_back(db: &impl ConnectionTrait, limits: &[Limit]) -> ServerResult<()> {
    let mut keys: Vec<&str> = limits.iter().map(|l| l.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        Entity::update_many()
            .col_expr(Column::Failures, Expr::col(Column::Failures).sub(1))
            .filter(Column::Key.eq(key))
            .filter(Column::Failures.gt(0))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// The network an address belongs to, as throttles and connection caps count them: an IPv4 /24
/// or an IPv6 /48 (IPv4-mapped IPv6 addresses count as IPv4). One party usually holds a whole
/// network, so limits per network are what many addresses cannot multiply.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(v4.to_bits() & 0xffff_ff00)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(IpAddr::V4(v4)),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 80) - 1))),
        },
    }
}

/// One client's address as limits count it: an IPv6 host usually owns its whole /64.
pub fn address_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_addresses() {
        assert_eq!(network_of(ip("203.0.113.77")), ip("203.0.113.0"));
        assert_eq!(network_of(ip("::ffff:203.0.113.77")), ip("203.0.113.0"));
        assert_eq!(network_of(ip("2001:db8:aaaa:bbbb::1")), ip("2001:db8:aaaa::"));
        assert_eq!(address_of(ip("2001:db8:aaaa:bbbb:1:2:3:4")), ip("2001:db8:aaaa:bbbb::"));
        assert_eq!(address_of(ip("::ffff:203.0.113.77")), ip("203.0.113.77"));
        assert_eq!(address_of(ip("203.0.113.77")), ip("203.0.113.77"));
    }
}
