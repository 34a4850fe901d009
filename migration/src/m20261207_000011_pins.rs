//! Pinned messages: one row per pin, keyed by channel and message. The server learns that a
//! message is pinned, by whom and when (it orders and limits the list); what it says stays
//! encrypted in the message itself.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Pins::Table)
                .col(uuid(Pins::ChannelId))
                .col(uuid(Pins::MessageId))
                .col(uuid(Pins::PinnedBy))
                .col(timestamp_with_time_zone(Pins::PinnedAt))
                .primary_key(Index::create().col(Pins::ChannelId).col(Pins::MessageId))
                .foreign_key(
                    ForeignKey::create()
                        .from(Pins::Table, Pins::ChannelId)
                        .to(Channels::Table, Channels::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Pins::Table, Pins::MessageId)
                        .to(Messages::Table, Messages::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Pins {
    Table,
    ChannelId,
    MessageId,
    PinnedBy,
    PinnedAt,
}

#[derive(DeriveIden)]
enum Channels {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
}
