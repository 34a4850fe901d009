//! Scheduled messages: encrypted by the sender's browser when written, kept here until their time,
//! then sent as the sender (every rule of a send checked again then). The server learns when a
//! message will be sent and where, never what it says.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ScheduledMessages::Table)
                .col(uuid(ScheduledMessages::Id).primary_key())
                .col(uuid(ScheduledMessages::ChannelId))
                .col(uuid(ScheduledMessages::SenderId))
                .col(string_len(ScheduledMessages::SenderDevice, 64))
                .col(uuid_null(ScheduledMessages::ReplyTo))
                .col(blob(ScheduledMessages::Ciphertext))
                .col(timestamp_with_time_zone(ScheduledMessages::DeliverAt))
                .col(timestamp_with_time_zone(ScheduledMessages::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ScheduledMessages::Table, ScheduledMessages::ChannelId)
                        .to(Channels::Table, Channels::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ScheduledMessages::Table, ScheduledMessages::SenderId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The delivery round asks for what is due; a person's list, for theirs.
        m.create_index(
            Index::create()
                .name("scheduled_messages_deliver_at")
                .table(ScheduledMessages::Table)
                .col(ScheduledMessages::DeliverAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("scheduled_messages_sender")
                .table(ScheduledMessages::Table)
                .col(ScheduledMessages::SenderId)
                .col(ScheduledMessages::DeliverAt)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum ScheduledMessages {
    Table,
    Id,
    ChannelId,
    SenderId,
    SenderDevice,
    ReplyTo,
    Ciphertext,
    DeliverAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Channels {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
