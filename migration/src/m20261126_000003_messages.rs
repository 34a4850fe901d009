//! Messages as opaque envelopes: the server stores ciphertext it never parses, and every message
//! event in a channel (created, edited, deleted) gets the channel's next sequence number.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Messages::Table)
                .col(pk_uuid(Messages::Id))
                .col(uuid(Messages::ChannelId))
                .col(big_integer(Messages::Seq))
                .col(uuid(Messages::SenderId))
                .col(string_len(Messages::SenderDevice, 64))
                .col(string_len(Messages::ClientTxn, 64))
                .col(small_integer(Messages::Kind))
                .col(uuid_null(Messages::ReplyTo))
                .col(blob(Messages::Ciphertext))
                .col(timestamp_with_time_zone(Messages::CreatedAt))
                .col(timestamp_with_time_zone_null(Messages::EditedAt))
                .col(timestamp_with_time_zone_null(Messages::DeletedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Messages::Table, Messages::ChannelId)
                        .to(Channels::Table, Channels::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Messages::Table, Messages::SenderId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_messages_channel_seq")
                .table(Messages::Table)
                .col(Messages::ChannelId)
                .col(Messages::Seq)
                .unique()
                .to_owned(),
        )
        .await?;
        // A retried send (same sender, same client transaction id) finds the original.
        m.create_index(
            Index::create()
                .name("idx_messages_sender_txn")
                .table(Messages::Table)
                .col(Messages::SenderId)
                .col(Messages::ClientTxn)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MessageEdits::Table)
                .col(pk_uuid(MessageEdits::Id))
                .col(uuid(MessageEdits::MessageId))
                .col(blob(MessageEdits::Ciphertext))
                .col(timestamp_with_time_zone(MessageEdits::ReplacedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(MessageEdits::Table, MessageEdits::MessageId)
                        .to(Messages::Table, Messages::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_message_edits_message")
                .table(MessageEdits::Table)
                .col(MessageEdits::MessageId)
                .to_owned(),
        )
        .await?;

        // kind: 0 created, 1 edited, 2 deleted. Catch-up after a reconnect reads these in order.
        m.create_table(
            Table::create()
                .table(ChannelEvents::Table)
                .col(uuid(ChannelEvents::ChannelId))
                .col(big_integer(ChannelEvents::Seq))
                .col(small_integer(ChannelEvents::Kind))
                .col(uuid(ChannelEvents::MessageId))
                .col(timestamp_with_time_zone(ChannelEvents::CreatedAt))
                .primary_key(Index::create().col(ChannelEvents::ChannelId).col(ChannelEvents::Seq))
                .foreign_key(
                    ForeignKey::create()
                        .from(ChannelEvents::Table, ChannelEvents::ChannelId)
                        .to(Channels::Table, Channels::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ChannelEvents::Table, ChannelEvents::MessageId)
                        .to(Messages::Table, Messages::Id)
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
enum Channels {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ChannelId,
    Seq,
    SenderId,
    SenderDevice,
    ClientTxn,
    Kind,
    ReplyTo,
    Ciphertext,
    CreatedAt,
    EditedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum MessageEdits {
    Table,
    Id,
    MessageId,
    Ciphertext,
    ReplacedAt,
}

#[derive(DeriveIden)]
enum ChannelEvents {
    Table,
    ChannelId,
    Seq,
    Kind,
    MessageId,
    CreatedAt,
}
