//! Per-channel history visibility: whether people who join a channel read what was sent before
//! (`1`, full history) or only from when they joined (`0`, the default).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter().table(Channels::Table).add_column(small_integer(Channels::History).default(0)).to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Channels {
    Table,
    History,
}
