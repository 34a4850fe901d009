//! Fresh databases for tests.
//!
//! PostgreSQL variants run when `TEST_DATABASE_URL` is set when the tests are compiled: the test
//! crate's build script then sets `cfg(chatalot_pg)`. Without it they are compiled as ignored, so
//! the runner reports them as skipped (with the reason), never as passed.

use sea_orm::{ConnectionTrait, Database};
use std::path::PathBuf;

/// Why PostgreSQL variants were skipped (shown by the test runner).
pub const PG_SKIPPED: &str = "PostgreSQL: set TEST_DATABASE_URL=postgres://… when building the tests";

/// Runs the async test body once per backend: SQLite always, PostgreSQL when configured
/// (`cfg(chatalot_pg)`, set by the test crate's build script from `TEST_DATABASE_URL`).
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($db:ident: TestDb) $body:block)*) => {$(
        mod $name {
            use super::*;
            async fn body($db: $crate::TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::TestDb::sqlite();
                body(db.clone()).await;
                db.drop().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(chatalot_pg), ignore = "PostgreSQL: set TEST_DATABASE_URL=postgres://… when building the tests")]
            async fn postgres() {
                let db = $crate::TestDb::postgres().await;
                body(db.clone()).await;
                db.drop().await;
            }
        }
    )*};
}

/// A fresh, empty database (not yet migrated: starting the server or `TestDb::state` does that).
#[derive(Clone, Debug)]
pub struct TestDb {
    pub url: String,
    /// A directory of its own (the SQLite file, the server's data directory).
    pub dir: PathBuf,
    admin: Option<(String, String)>,
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chatalot-test-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = temp_dir("sqlite");
        let url = format!("sqlite://{}?mode=rwc", dir.join("chatalot.db").display());
        Self { url, dir, admin: None }
    }

    /// A new database on the server `TEST_DATABASE_URL` names (panics, failing the test, when it is
    /// not set or not reachable: a PostgreSQL test that cannot run must not pass).
    pub async fn postgres() -> Self {
        let admin_url = std::env::var("TEST_DATABASE_URL").expect(PG_SKIPPED);
        Self::postgres_at(&admin_url).await
    }

    /// A new database on the PostgreSQL server of `admin_url` (`postgres://…/<any database>`).
    pub async fn postgres_at(admin_url: &str) -> Self {
        let name = format!("chatalot_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url).await.expect("connect to TEST_DATABASE_URL");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create a test database");
        admin.close().await.ok();
        let (base, _) = admin_url.rsplit_once('/').expect("TEST_DATABASE_URL ends with /<database>");
        Self { url: format!("{base}/{name}"), dir: temp_dir(&name), admin: Some((admin_url.to_owned(), name)) }
    }

    /// PostgreSQL when `TEST_DATABASE_URL` is set, else SQLite (tests that run once, on the best
    /// backend available, say which they used).
    pub async fn preferred() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Self::postgres_at(&url).await,
            _ => {
                eprintln!("SKIPPED: PostgreSQL for this test (TEST_DATABASE_URL is not set); it runs on SQLite");
                Self::sqlite()
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.admin.is_some()
    }

    /// Drops the database (PostgreSQL) and deletes the directory.
    pub async fn drop(self) {
        if let Some((admin_url, name)) = self.admin
            && let Ok(admin) = Database::connect(&admin_url).await
        {
            let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            admin.close().await.ok();
        }
        let _ = std::fs::remove_dir_all(self.dir);
    }
}
