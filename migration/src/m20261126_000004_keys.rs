//! The key directory and the to-device queue: device identity keys, signed one-time and fallback
//! keys, and opaque device-to-device payloads stored until acknowledged.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Devices::Table)
                .col(uuid(Devices::UserId))
                .col(string_len(Devices::DeviceId, 64))
                .col(string_len(Devices::Curve25519, 64))
                .col(string_len(Devices::Ed25519, 64))
                .col(string_len(Devices::Signature, 128))
                .col(timestamp_with_time_zone(Devices::CreatedAt))
                .primary_key(Index::create().col(Devices::UserId).col(Devices::DeviceId))
                .foreign_key(
                    ForeignKey::create()
                        .from(Devices::Table, Devices::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(OneTimeKeys::Table)
                .col(pk_uuid(OneTimeKeys::Id))
                .col(uuid(OneTimeKeys::UserId))
                .col(string_len(OneTimeKeys::DeviceId, 64))
                .col(string_len(OneTimeKeys::KeyId, 64))
                .col(string_len(OneTimeKeys::PublicKey, 64))
                .col(string_len(OneTimeKeys::Signature, 128))
                .foreign_key(
                    ForeignKey::create()
                        .from(OneTimeKeys::Table, (OneTimeKeys::UserId, OneTimeKeys::DeviceId))
                        .to(Devices::Table, (Devices::UserId, Devices::DeviceId))
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_one_time_keys_device_key")
                .table(OneTimeKeys::Table)
                .col(OneTimeKeys::UserId)
                .col(OneTimeKeys::DeviceId)
                .col(OneTimeKeys::KeyId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(FallbackKeys::Table)
                .col(uuid(FallbackKeys::UserId))
                .col(string_len(FallbackKeys::DeviceId, 64))
                .col(string_len(FallbackKeys::KeyId, 64))
                .col(string_len(FallbackKeys::PublicKey, 64))
                .col(string_len(FallbackKeys::Signature, 128))
                .primary_key(Index::create().col(FallbackKeys::UserId).col(FallbackKeys::DeviceId))
                .foreign_key(
                    ForeignKey::create()
                        .from(FallbackKeys::Table, (FallbackKeys::UserId, FallbackKeys::DeviceId))
                        .to(Devices::Table, (Devices::UserId, Devices::DeviceId))
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ToDevice::Table)
                .col(pk_uuid(ToDevice::Id))
                .col(uuid(ToDevice::RecipientUser))
                .col(string_len(ToDevice::RecipientDevice, 64))
                .col(uuid(ToDevice::SenderUser))
                .col(string_len(ToDevice::SenderDevice, 64))
                .col(blob(ToDevice::Payload))
                .col(timestamp_with_time_zone(ToDevice::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ToDevice::Table, (ToDevice::RecipientUser, ToDevice::RecipientDevice))
                        .to(Devices::Table, (Devices::UserId, Devices::DeviceId))
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_to_device_recipient")
                .table(ToDevice::Table)
                .col(ToDevice::RecipientUser)
                .col(ToDevice::RecipientDevice)
                .col(ToDevice::Id)
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
    Curve25519,
    Ed25519,
    Signature,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OneTimeKeys {
    Table,
    Id,
    UserId,
    DeviceId,
    KeyId,
    PublicKey,
    Signature,
}

#[derive(DeriveIden)]
enum FallbackKeys {
    Table,
    UserId,
    DeviceId,
    KeyId,
    PublicKey,
    Signature,
}

#[derive(DeriveIden)]
enum ToDevice {
    Table,
    Id,
    RecipientUser,
    RecipientDevice,
    SenderUser,
    SenderDevice,
    Payload,
    CreatedAt,
}
