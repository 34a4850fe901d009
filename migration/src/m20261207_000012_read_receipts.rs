//! Read receipts: `users.read_receipts`, whether the person shares how far they have read with the
//! others of their DMs, group DMs and small channels (and sees theirs). On by default; turning it
//! off stops both. The cursors themselves are the existing `read_cursors`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table(Users::Table).add_column(boolean(Users::ReadReceipts).default(true)).to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    ReadReceipts,
}
