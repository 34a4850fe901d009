//! Account standing and presence: `suspended_at` (an instance admin suspended the account: it cannot
//! sign in and its sockets are closed) and `presence` (the status the user chose: online, idle, dnd
//! or invisible; it survives reconnects, so an invisible user never flashes online).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        m.alter_table(
            Table::alter().table(Users::Table).add_column(timestamp_with_time_zone_null(Users::SuspendedAt)).to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter().table(Users::Table).add_column(small_integer(Users::Presence).default(0)).to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    SuspendedAt,
    Presence,
}
