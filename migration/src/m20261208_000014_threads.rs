//! Threads: a message may answer another of its channel inside that message's thread
//! (`messages.thread_id`, the thread's first message, its root). The root counts its replies and
//! keeps the sequence number and time of the latest (`thread_replies`, `thread_last_seq`,
//! `thread_last_at`), so a page of history shows every thread's summary without a query per
//! thread; `thread_reads` keeps how far each person has read in each thread. The server learns
//! that a message is in a thread, never what it says.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        let columns = [
            uuid_null(Messages::ThreadId),
            integer(Messages::ThreadReplies).default(0).to_owned(),
            big_integer_null(Messages::ThreadLastSeq),
            timestamp_with_time_zone_null(Messages::ThreadLastAt),
        ];
        for column in columns {
            m.alter_table(Table::alter().table(Messages::Table).add_column(column).to_owned()).await?;
        }
        m.create_index(
            Index::create()
                .name("idx_messages_thread_seq")
                .table(Messages::Table)
                .col(Messages::ThreadId)
                .col(Messages::Seq)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ThreadReads::Table)
                .col(uuid(ThreadReads::UserId))
                .col(uuid(ThreadReads::RootId))
                .col(big_integer(ThreadReads::LastReadSeq))
                .primary_key(Index::create().col(ThreadReads::UserId).col(ThreadReads::RootId))
                .foreign_key(
                    ForeignKey::create()
                        .from(ThreadReads::Table, ThreadReads::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ThreadReads::Table, ThreadReads::RootId)
                        .to(Messages::Table, Messages::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    Seq,
    ThreadId,
    ThreadReplies,
    ThreadLastSeq,
    ThreadLastAt,
}

#[derive(DeriveIden)]
enum ThreadReads {
    Table,
    UserId,
    RootId,
    LastReadSeq,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
