//! The server-side key backup: backup versions and the sealed session keys filed under them,
//! readable and writable by their owner only. Everything stored is opaque to the server (the
//! client seals each key under a backup key the server never sees and files it under an id of its
//! own making); the server checks ownership, sizes and counts, nothing else. A version id that is
//! not the caller's is `NotFound`, exactly as if it did not exist.

use super::{error::ServerResult, state::Core};
use chrono::Utc;
use entity::{key_backup_key, key_backup_version};
use protocol::{
    error::AppError,
    model::{
        backup::{
            BackupKey, BackupPage, BackupVersion, MAX_AUTH_DATA_BYTES, MAX_BACKUP_BATCH, MAX_BACKUP_KEY_BYTES,
            MAX_BACKUP_KEYS,
        },
        messages::Ciphertext,
    },
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::OnConflict,
};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Backup versions one person may keep at once (rotating the recovery key makes a new one, and
/// the old one is deleted once the keys are copied).
pub const MAX_VERSIONS: u64 = 4;

/// The caller's version `id`, or `NotFound`.
async fn own_version(db: &impl ConnectionTrait, actor: Uuid, id: Uuid) -> ServerResult<key_backup_version::Model> {
    Ok(key_backup_version::Entity::find_by_id(id)
        .filter(key_backup_version::Column::UserId.eq(actor))
        .one(db)
        .await?
        .ok_or(AppError::NotFound)?)
}

async fn key_count(db: &impl ConnectionTrait, version: Uuid) -> ServerResult<u64> {
    Ok(key_backup_key::Entity::find().filter(key_backup_key::Column::VersionId.eq(version)).count(db).await?)
}

async fn wire(db: &impl ConnectionTrait, v: key_backup_version::Model) -> ServerResult<BackupVersion> {
    let keys = key_count(db, v.id).await?;
    Ok(BackupVersion { id: v.id, algorithm: v.algorithm, auth_data: Ciphertext(v.auth_data), keys })
}

/// The caller's newest backup version, if any.
pub async fn current(core: &Core, actor: Uuid) -> ServerResult<Option<BackupVersion>> {
    let newest = key_backup_version::Entity::find()
        .filter(key_backup_version::Column::UserId.eq(actor))
        .order_by_desc(key_backup_version::Column::Id)
        .one(&core.db)
        .await?;
    match newest {
        Some(v) => Ok(Some(wire(&core.db, v).await?)),
        None => Ok(None),
    }
}

/// Starts a new backup version (the newest becomes current).
pub async fn create_version(
    core: &Core,
    actor: Uuid,
    algorithm: &str,
    auth_data: Ciphertext,
) -> ServerResult<BackupVersion> {
    let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if algorithm.is_empty() || algorithm.len() > 64 || !algorithm.chars().all(name_ok) {
        return Err(AppError::invalid("algorithm", "must be 1–64 letters, digits, '.', '_' or '-'").into());
    }
    if auth_data.0.is_empty() || auth_data.0.len() > MAX_AUTH_DATA_BYTES {
        return Err(AppError::invalid("auth_data", format!("must be 1 to {MAX_AUTH_DATA_BYTES} bytes")).into());
    }
    let txn = crate::db::begin_write(&core.db).await?;
    let versions =
        key_backup_version::Entity::find().filter(key_backup_version::Column::UserId.eq(actor)).count(&txn).await?;
    if versions >= MAX_VERSIONS {
        return Err(AppError::invalid("version", "delete an older backup first").into());
    }
    let version = key_backup_version::Entity::insert(key_backup_version::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(actor),
        algorithm: Set(algorithm.to_owned()),
        auth_data: Set(auth_data.0),
        created_at: Set(Utc::now()),
    })
    .exec_with_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(BackupVersion {
        id: version.id,
        algorithm: version.algorithm,
        auth_data: Ciphertext(version.auth_data),
        keys: 0,
    })
}

/// Deletes one of the caller's backup versions and every key in it (turning backup off, or the
/// last step of rotating the recovery key).
pub async fn delete_version(core: &Core, actor: Uuid, version: Uuid) -> ServerResult<()> {
    let txn = crate::db::begin_write(&core.db).await?;
    own_version(&txn, actor, version).await?;
    key_backup_key::Entity::delete_many().filter(key_backup_key::Column::VersionId.eq(version)).exec(&txn).await?;
    key_backup_version::Entity::delete_by_id(version).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}

fn check_key_id(id: &str) -> Result<(), AppError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-');
    if id.is_empty() || id.len() > 64 || !id.chars().all(ok) {
        return Err(AppError::invalid("key_id", "must be 1–64 base64 characters"));
    }
    Ok(())
}

/// Stores sealed keys in one of the caller's versions (a key already there under the same id is
/// replaced: the client sends a better copy, one that opens earlier messages); returns how many
/// keys the version holds.
pub async fn upload(core: &Core, actor: Uuid, version: Uuid, keys: Vec<BackupKey>) -> ServerResult<u64> {
    if keys.is_empty() || keys.len() > MAX_BACKUP_BATCH {
        return Err(AppError::invalid("keys", format!("must be 1 to {MAX_BACKUP_BATCH} per upload")).into());
    }
    let mut ids = BTreeSet::new();
    for key in &keys {
        check_key_id(&key.key_id)?;
        if key.sealed.0.is_empty() || key.sealed.0.len() > MAX_BACKUP_KEY_BYTES {
            return Err(AppError::invalid("sealed", format!("must be 1 to {MAX_BACKUP_KEY_BYTES} bytes")).into());
        }
        if !ids.insert(key.key_id.as_str()) {
            return Err(AppError::invalid("keys", "the same key_id twice in one upload").into());
        }
    }
    let txn = crate::db::begin_write(&core.db).await?;
    // The version row is the lock: concurrent uploads to one version count one after the other.
    key_backup_version::Entity::find_by_id(version)
        .filter(key_backup_version::Column::UserId.eq(actor))
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound)?;
    let known = key_backup_key::Entity::find()
        .select_only()
        .column(key_backup_key::Column::KeyId)
        .filter(key_backup_key::Column::VersionId.eq(version))
        .filter(key_backup_key::Column::KeyId.is_in(ids.iter().copied()))
        .into_tuple::<String>()
        .all(&txn)
        .await?
        .len() as u64;
    let after = key_count(&txn, version).await? + keys.len() as u64 - known;
    if after > MAX_BACKUP_KEYS {
        return Err(AppError::invalid("keys", format!("a backup holds at most {MAX_BACKUP_KEYS} keys")).into());
    }
    let now = Utc::now();
    let rows = keys.into_iter().map(|k| key_backup_key::ActiveModel {
        version_id: Set(version),
        key_id: Set(k.key_id),
        sealed: Set(k.sealed.0),
        updated_at: Set(now),
    });
    key_backup_key::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([key_backup_key::Column::VersionId, key_backup_key::Column::KeyId])
                .update_columns([key_backup_key::Column::Sealed, key_backup_key::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(after)
}

/// One page of the caller's version, in `key_id` order, after `after` (at most
/// `MAX_BACKUP_BATCH`).
pub async fn download(
    core: &Core,
    actor: Uuid,
    version: Uuid,
    after: Option<String>,
    limit: Option<u64>,
) -> ServerResult<BackupPage> {
    own_version(&core.db, actor, version).await?;
    if let Some(after) = &after {
        check_key_id(after)?;
    }
    let limit = limit.unwrap_or(MAX_BACKUP_BATCH as u64).clamp(1, MAX_BACKUP_BATCH as u64);
    let mut query = key_backup_key::Entity::find().filter(key_backup_key::Column::VersionId.eq(version));
    if let Some(after) = after {
        query = query.filter(key_backup_key::Column::KeyId.gt(after));
    }
    let rows = query.order_by_asc(key_backup_key::Column::KeyId).limit(limit + 1).all(&core.db).await?;
    let more = rows.len() as u64 > limit;
    let keys: Vec<BackupKey> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| BackupKey { key_id: r.key_id, sealed: Ciphertext(r.sealed) })
        .collect();
    let next = more.then(|| keys.last().map(|k| k.key_id.clone())).flatten();
    Ok(BackupPage { keys, next })
}
