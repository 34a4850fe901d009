//! Disappearing messages: a channel may have a timer (`channels.disappear_after_s`, 1 hour to 30
//! days, set by moderators, or by anyone in a DM); each message sent while it runs carries the time
//! it expires (`messages.expires_at`), and a round on every node erases what has expired. The
//! index finds the expired ones without reading the others.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table(Channels::Table).add_column(integer_null(Channels::DisappearAfterS)).to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .add_column(timestamp_with_time_zone_null(Messages::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("idx_messages_expires_at").table(Messages::Table).col(Messages::ExpiresAt).to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Channels {
    Table,
    DisappearAfterS,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    ExpiresAt,
}
