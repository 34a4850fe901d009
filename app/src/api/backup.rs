//! The server-side key backup (JSON bodies). Every function acts on the caller's own backup
//! versions only; a version id that is not theirs is `NotFound`.

use crate::{
    error::AppError,
    model::{
        backup::{BackupKey, BackupPage, BackupVersion},
        messages::Ciphertext,
    },
};
use leptos::{prelude::*, server_fn::codec::Json};
use uuid::Uuid;

#[cfg(feature = "ssr")]
use {crate::web::actor, domain::backup};

/// The caller's current (newest) backup version, if any.
#[server(prefix = "/api/v1", endpoint = "backup/current", input = Json)]
pub async fn current_backup() -> Result<Option<BackupVersion>, AppError> {
    let (core, me) = actor().await?;
    Ok(backup::current(&core, me.id).await?)
}

#[server(prefix = "/api/v1", endpoint = "backup/create", input = Json)]
pub async fn create_backup(algorithm: String, auth_data: Ciphertext) -> Result<BackupVersion, AppError> {
    let (core, me) = actor().await?;
    Ok(backup::create_version(&core, me.id, &algorithm, auth_data).await?)
}

#[server(prefix = "/api/v1", endpoint = "backup/delete", input = Json)]
pub async fn delete_backup(version: Uuid) -> Result<(), AppError> {
    let (core, me) = actor().await?;
    Ok(backup::delete_version(&core, me.id, version).await?)
}

#[server(prefix = "/api/v1", endpoint = "backup/upload", input = Json)]
pub async fn upload_backup_keys(version: Uuid, keys: Vec<BackupKey>) -> Result<u64, AppError> {
    let (core, me) = actor().await?;
    Ok(backup::upload(&core, me.id, version, keys).await?)
}

#[server(prefix = "/api/v1", endpoint = "backup/download", input = Json)]
pub async fn download_backup_keys(
    version: Uuid,
    #[server(default)] after: Option<String>,
    #[server(default)] limit: Option<u64>,
) -> Result<BackupPage, AppError> {
    let (core, me) = actor().await?;
    Ok(backup::download(&core, me.id, version, after, limit).await?)
}
