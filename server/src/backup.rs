//! `chatalot-server backup FILE` and `chatalot-server restore FILE` for the SQLite database.
//!
//! A backup is a consistent snapshot taken while the server runs: SQLite's `VACUUM INTO` reads
//! the database inside one read transaction (WAL mode lets writers go on meanwhile) and writes a
//! compact copy, which is checked (`PRAGMA quick_check`) before it takes the file's name. The
//! snapshot is a plain SQLite database. A restore (server stopped) checks the file the same way,
//! refuses one from a newer version, keeps the database it replaces beside it, and puts the copy
//! in place atomically. PostgreSQL is backed up with its own tools (`pg_dump`; see the README).

use domain::config::Config;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use secrecy::ExposeSecret;
use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    str::FromStr,
};

/// What a backup or a restore reports in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub bytes: u64,
    pub messages: i64,
    pub accounts: i64,
    /// The newest migration the snapshot's schema has.
    pub schema: String,
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} KiB: {} accounts, {} messages, schema {}",
            self.bytes.div_ceil(1024),
            self.accounts,
            self.messages,
            self.schema
        )
    }
}

/// The SQLite file the configuration uses, or an error saying what to do on PostgreSQL.
pub fn sqlite_file(config: &Config) -> Result<PathBuf, String> {
    let url = config.database_url();
    let url = url.expose_secret();
    if !url.starts_with("sqlite:") {
        return Err("this server keeps its data in PostgreSQL: back it up with pg_dump and bring it back with \
                    pg_restore (README, \"Backups\")"
            .into());
    }
    let options =
        sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(|e| format!("DATABASE_URL: {e}"))?;
    Ok(options.get_filename().to_path_buf())
}

/// The lock a running server holds on its SQLite database (`<database>.lock`, an advisory file
/// lock the kernel drops when the process ends, even on kill -9). A restore takes it too, so it
/// cannot replace the database under a running server, nor can two servers share one file.
pub fn lock(database: &Path) -> Result<File, String> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(format!(
            "a chatalot-server is running on {} (it holds {}): stop it first",
            database.display(),
            path.display()
        )),
        Err(fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// `backup FILE`: a consistent snapshot of the running (or stopped) server's SQLite database.
pub async fn backup(config: &Config, file: &Path) -> Result<Snapshot, String> {
    let database = sqlite_file(config)?;
    if !database.is_file() {
        return Err(format!("there is no database at {} to back up (check DATA_DIR)", database.display()));
    }
    if file.exists() {
        return Err(format!("{} already exists: choose a new file name", file.display()));
    }
    let partial = sibling(file, ".partial")?;
    let _ = fs::remove_file(&partial);
    let written = async {
        let source = open(&database, false).await?;
        let into = Value::from(partial.to_string_lossy().into_owned());
        source
            .execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, "VACUUM INTO ?", [into]))
            .await
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        source.close().await.ok();
        let snapshot = check(&partial).await?;
        File::open(&partial).and_then(|f| f.sync_all()).map_err(|e| format!("{}: {e}", partial.display()))?;
        fs::rename(&partial, file).map_err(|e| format!("cannot name the backup {}: {e}", file.display()))?;
        sync_dir(file);
        Ok(snapshot)
    }
    .await;
    if written.is_err() {
        let _ = fs::remove_file(&partial);
    }
    written
}

/// `restore FILE`: the server must be stopped. The database it replaces is kept beside it as
/// `chatalot.db.before-restore-<time>` (with its WAL), so a restore never loses anything.
pub async fn restore(config: &Config, file: &Path) -> Result<(Snapshot, Option<PathBuf>), String> {
    let database = sqlite_file(config)?;
    if !file.is_file() {
        return Err(format!("{} is not a file", file.display()));
    }
    let snapshot = check(file).await?;
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let _lock = lock(&database)?;
    let incoming = sibling(&database, ".restoring")?;
    fs::copy(file, &incoming).map_err(|e| format!("cannot copy into {}: {e}", incoming.display()))?;
    File::open(&incoming).and_then(|f| f.sync_all()).map_err(|e| format!("{}: {e}", incoming.display()))?;
    let kept = if database.exists() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let kept = sibling(&database, &format!(".before-restore-{stamp}"))?;
        for suffix in ["", "-wal", "-shm"] {
            let from = sibling(&database, suffix)?;
            if from.exists() {
                let to = sibling(&kept, suffix)?;
                fs::rename(&from, &to).map_err(|e| format!("cannot move {} aside: {e}", from.display()))?;
            }
        }
        Some(kept)
    } else {
        None
    };
    fs::rename(&incoming, &database).map_err(|e| format!("cannot put {} in place: {e}", database.display()))?;
    sync_dir(&database);
    Ok((snapshot, kept))
}

/// Opens, checks and describes a snapshot; refuses a damaged file, a file that is no Chatalot
/// database, and one a newer version wrote.
pub async fn check(file: &Path) -> Result<Snapshot, String> {
    let db = open(file, true).await?;
    let result = describe(&db, file).await;
    db.close().await.ok();
    result
}

async fn describe(db: &DatabaseConnection, file: &Path) -> Result<Snapshot, String> {
    let not_ours = |e: sea_orm::DbErr| format!("{} is not a Chatalot database: {e}", file.display());
    let one = |sql: &str| Statement::from_string(DbBackend::Sqlite, sql.to_owned());
    let row = db.query_one_raw(one("PRAGMA quick_check")).await.map_err(not_ours)?;
    let verdict: String = row.map(|r| r.try_get_by_index(0)).transpose().map_err(not_ours)?.unwrap_or_default();
    if verdict != "ok" {
        return Err(format!("{} is damaged: {verdict}", file.display()));
    }
    domain::db::refuse_newer_schema(db).await.map_err(|e| match e {
        sea_orm::DbErr::Custom(message) => format!("{}: {message}", file.display()),
        e => not_ours(e),
    })?;
    let count = |sql: &'static str| async move {
        let row = db.query_one_raw(one(sql)).await.map_err(not_ours)?;
        row.map(|r| r.try_get_by_index::<i64>(0)).transpose().map_err(not_ours).map(Option::unwrap_or_default)
    };
    let row = db.query_one_raw(one("SELECT max(version) FROM seaql_migrations")).await.map_err(not_ours)?;
    let schema: Option<String> = row.map(|r| r.try_get_by_index(0)).transpose().map_err(not_ours)?.flatten();
    let Some(schema) = schema else { return Err(format!("{} is not a Chatalot database", file.display())) };
    Ok(Snapshot {
        bytes: fs::metadata(file).map(|m| m.len()).unwrap_or_default(),
        messages: count("SELECT count(*) FROM messages").await?,
        accounts: count("SELECT count(*) FROM users").await?,
        schema,
    })
}

/// One connection to an existing SQLite file (never created). The live database is opened for
/// writing (a read-only connection cannot join a WAL database whose shared memory it may not
/// create), though nothing writes to it; a file to restore is opened read-only.
async fn open(file: &Path, read_only: bool) -> Result<DatabaseConnection, String> {
    use sea_orm::sqlx::sqlite::SqliteConnectOptions;
    let options = SqliteConnectOptions::new()
        .filename(file)
        .read_only(read_only)
        .busy_timeout(std::time::Duration::from_secs(30));
    let pool = sea_orm::sqlx::pool::PoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    Ok(sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> Result<PathBuf, String> {
    let name = path.file_name().ok_or_else(|| format!("{} names no file", path.display()))?;
    let mut name = name.to_owned();
    name.push(suffix);
    Ok(path.with_file_name(name))
}

/// Makes a rename durable (best effort: not every file system lets a directory be synced).
fn sync_dir(file: &Path) {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let _ = File::open(dir).and_then(|d| d.sync_all());
}
