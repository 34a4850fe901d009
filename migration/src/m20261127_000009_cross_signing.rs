//! Cross-signing: each person's master signing key (public part only) and its signatures over their
//! devices. A new master key replaces the old one and drops every signature the old one made.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(MasterKeys::Table)
                .col(uuid(MasterKeys::UserId).primary_key())
                .col(string_len(MasterKeys::PublicKey, 64))
                .col(timestamp_with_time_zone(MasterKeys::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(MasterKeys::Table, MasterKeys::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DeviceSignatures::Table)
                .col(uuid(DeviceSignatures::UserId))
                .col(string_len(DeviceSignatures::DeviceId, 64))
                .col(string_len(DeviceSignatures::Signature, 128))
                .col(timestamp_with_time_zone(DeviceSignatures::CreatedAt))
                .primary_key(Index::create().col(DeviceSignatures::UserId).col(DeviceSignatures::DeviceId))
                .foreign_key(
                    ForeignKey::create()
                        .from(DeviceSignatures::Table, (DeviceSignatures::UserId, DeviceSignatures::DeviceId))
                        .to(Devices::Table, (Devices::UserId, Devices::DeviceId))
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
enum Devices {
    Table,
    UserId,
    DeviceId,
}

#[derive(DeriveIden)]
enum MasterKeys {
    Table,
    UserId,
    PublicKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DeviceSignatures {
    Table,
    UserId,
    DeviceId,
    Signature,
    CreatedAt,
}
