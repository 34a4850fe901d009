//! Connecting to the database and bringing its schema up to date.

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// Connects (SQLite: WAL mode, foreign keys on; PostgreSQL: a pool of 20) and applies every
/// pending migration.
pub async fn connect_and_migrate(url: &SecretString) -> Result<DatabaseConnection, DbErr> {
    let url = url.expose_secret();
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false).connect_timeout(Duration::from_secs(5)).acquire_timeout(Duration::from_secs(5));
    if url.starts_with("sqlite:") {
        options.max_connections(8).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
        });
    } else {
        options.max_connections(20).min_connections(1);
    }
    let db = Database::connect(options).await?;
    refuse_newer_schema(&db).await?;
    Migrator::up(&db, None).await?;
    analyze_if_without_statistics(&db).await?;
    Ok(db)
}

/// PostgreSQL without table statistics (a database just restored with `pg_restore`, or
/// bulk-loaded) plans a page of history as a scan of the whole channel: 43 ms instead of 0.06 at
/// 100,000 messages, until autovacuum gets to it. So start-up analyzes a database whose messages
/// have no statistics yet (sampled: about a second even for a large one; nothing on a new one).
async fn analyze_if_without_statistics(db: &DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let check = "SELECT (EXISTS (SELECT 1 FROM messages) AND NOT EXISTS (SELECT 1 FROM pg_stats \
                 WHERE schemaname = current_schema() AND tablename = 'messages')) AS stale";
    let stale = db.query_one_raw(Statement::from_string(DbBackend::Postgres, check)).await?;
    if stale.map(|row| row.try_get::<bool>("", "stale")).transpose()?.unwrap_or(false) {
        tracing::info!("the database has no table statistics (restored?): analyzing it once");
        db.execute_unprepared("ANALYZE").await?;
    }
    Ok(())
}

/// The start of the message of [`refuse_newer_schema`] (callers print it as it is).
pub const NEWER_SCHEMA: &str = "this database was upgraded by a newer version of Chatalot";

/// An older binary must not run on a schema a newer one migrated: it would write rows the newer
/// code does not expect. A migration this binary does not know is such a sign.
pub async fn refuse_newer_schema(db: &DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::{ConnectionTrait, Statement};
    let statement = Statement::from_string(db.get_database_backend(), "SELECT version FROM seaql_migrations");
    // No table yet: a new database.
    let Ok(rows) = db.query_all_raw(statement).await else { return Ok(()) };
    let known: std::collections::HashSet<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
    for row in rows {
        let version: String = row.try_get("", "version")?;
        if !known.contains(&version) {
            return Err(DbErr::Custom(format!(
                "{NEWER_SCHEMA} (it has migration {version}, which this version does not know): run that newer \
                 version, or restore a backup made before the upgrade"
            )));
        }
    }
    Ok(())
}

/// Starts a transaction that will write. On SQLite it takes the write lock at `BEGIN IMMEDIATE`:
/// a deferred transaction that reads first and writes later cannot wait for the lock (SQLite
/// answers "database is locked" at once, to avoid a deadlock), while an immediate one waits up to
/// the busy timeout like any single statement. PostgreSQL starts a plain transaction.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let options = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    db.begin_with_options(options).await
}
