//! Reactions are messages of kind 2 whose `reply_to` names the message they answer: a page of
//! history finds the reactions to its messages, and a person's reactions to one message are
//! counted, through this index instead of a scan of the channel.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("idx_messages_reply_to_kind")
                .table(Messages::Table)
                .col(Messages::ReplyTo)
                .col(Messages::Kind)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    ReplyTo,
    Kind,
}
