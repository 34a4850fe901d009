//! The server-side key backup: per user, backup versions (the algorithm and the backup key wrapped
//! under the recovery key, both opaque) and the sealed session keys of each version, filed under
//! ids the client chose. Nothing here names a channel or a session.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(KeyBackupVersions::Table)
                .col(pk_uuid(KeyBackupVersions::Id))
                .col(uuid(KeyBackupVersions::UserId))
                .col(string_len(KeyBackupVersions::Algorithm, 64))
                .col(blob(KeyBackupVersions::AuthData))
                .col(timestamp_with_time_zone(KeyBackupVersions::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(KeyBackupVersions::Table, KeyBackupVersions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_key_backup_versions_user")
                .table(KeyBackupVersions::Table)
                .col(KeyBackupVersions::UserId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(KeyBackupKeys::Table)
                .col(uuid(KeyBackupKeys::VersionId))
                .col(string_len(KeyBackupKeys::KeyId, 64))
                .col(blob(KeyBackupKeys::Sealed))
                .col(timestamp_with_time_zone(KeyBackupKeys::UpdatedAt))
                .primary_key(Index::create().col(KeyBackupKeys::VersionId).col(KeyBackupKeys::KeyId))
                .foreign_key(
                    ForeignKey::create()
                        .from(KeyBackupKeys::Table, KeyBackupKeys::VersionId)
                        .to(KeyBackupVersions::Table, KeyBackupVersions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum KeyBackupVersions {
    Table,
    Id,
    UserId,
    Algorithm,
    AuthData,
    CreatedAt,
}

#[derive(DeriveIden)]
enum KeyBackupKeys {
    Table,
    VersionId,
    KeyId,
    Sealed,
    UpdatedAt,
}
