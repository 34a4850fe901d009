//! Read cursors: how far each user has read in each channel (a sequence number), for unread counts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ReadCursors::Table)
                .col(uuid(ReadCursors::UserId))
                .col(uuid(ReadCursors::ChannelId))
                .col(big_integer(ReadCursors::LastReadSeq))
                .col(timestamp_with_time_zone(ReadCursors::UpdatedAt))
                .primary_key(Index::create().col(ReadCursors::UserId).col(ReadCursors::ChannelId))
                .foreign_key(
                    ForeignKey::create()
                        .from(ReadCursors::Table, ReadCursors::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ReadCursors::Table, ReadCursors::ChannelId)
                        .to(Channels::Table, Channels::Id)
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
enum ReadCursors {
    Table,
    UserId,
    ChannelId,
    LastReadSeq,
    UpdatedAt,
}
