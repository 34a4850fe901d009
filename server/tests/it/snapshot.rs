//! Backups of the whole database while people post: `chatalot-server backup` / `restore` on SQLite
//! (the real binary), `pg_dump` / `pg_restore` on PostgreSQL. Every message acknowledged before the
//! backup began must be in the restored database.

use crate::common::{self, Prepare, new_user};
use app::model::{
    CommunityCreationMode, RegistrationMode,
    messages::{Ciphertext, MessageKind},
};
use domain::{Core, messages, spaces};
use sea_orm::EntityTrait;
use std::{
    collections::HashSet,
    path::Path,
    process::{Command, Output},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use testkit::{TestDb, process::ServerProcess};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_chatalot-server");

/// The binary with `DATA_DIR` and nothing else from the environment that could point it elsewhere.
fn server(data_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for var in domain::config::env_vars().chain(["CHATALOT_CONFIG"]) {
        cmd.env_remove(var);
    }
    cmd.env("DATA_DIR", data_dir).env("RUST_LOG", "error").args(args).output().unwrap()
}

fn said(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Messages a sender had acknowledged, with when.
type Acked = Arc<Mutex<Vec<(Uuid, Instant)>>>;

/// Three members posting as fast as the server answers until `stop` is set.
async fn posting(core: &Core, stop: Arc<AtomicBool>) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let db = &core.db;
    let owner = new_user(db, "owner").await;
    let club = spaces::create_community(core, &owner, CommunityCreationMode::Open, "Club", "").await.unwrap();
    let invite = spaces::create_invite(core, owner.id, club, None, None).await.unwrap();
    let general = spaces::my_spaces(core, owner.id).await.unwrap().communities[0].groups[0].channels[0].id;
    let acked: Acked = Arc::default();
    let mut tasks = Vec::new();
    for n in 0..3 {
        let member = new_user(db, &format!("member{n}")).await;
        spaces::join(core, member.id, &invite.code).await.unwrap();
        common::with_device(core, member.id, "DEVICE1").await;
        let (core, stop, acked) = (core.clone(), stop.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let send = messages::Send {
                    channel_id: general,
                    device: "DEVICE1".into(),
                    client_txn: format!("{n}-{i}"),
                    kind: MessageKind::Text,
                    reply_to: None,
                    thread_id: None,
                    ciphertext: Ciphertext(vec![n as u8 + 1; 200]),
                };
                // Contention may refuse a send (a domain error); only acknowledged ones count.
                if let Ok(stored) = messages::send(&core, member.id, send).await {
                    acked.lock().unwrap().push((stored.message.id, Instant::now()));
                }
            }
        }));
    }
    (acked, tasks)
}

/// Posts for a while, runs `snapshot` (on a blocking thread) amid the posting, posts a while
/// longer, and returns the messages acknowledged before the snapshot began and the total sent.
async fn snapshot_under_load(core: &Core, snapshot: impl FnOnce() + Send + 'static) -> (HashSet<Uuid>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, tasks) = posting(core, stop.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let began = Instant::now();
    tokio::task::spawn_blocking(snapshot).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap();
    let before: HashSet<Uuid> = acked.iter().filter(|(_, at)| *at < began).map(|(id, _)| *id).collect();
    assert!(before.len() > 20, "too little load to prove anything: {} messages before the backup", before.len());
    (before, acked.len())
}

async fn message_ids(url: &str) -> HashSet<Uuid> {
    let db = domain::db::connect_and_migrate(&url.to_owned().into()).await.unwrap();
    let ids = entity::message::Entity::find().all(&db).await.unwrap().into_iter().map(|m| m.id).collect();
    db.close().await.ok();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_backup_while_members_post_restores_every_acknowledged_message() {
    let db = TestDb::sqlite();
    let mut state = db.state(RegistrationMode::Open).await;
    state.config = Arc::new(domain::config::Config { messages_per_minute: 100_000, ..(*state.config).clone() });
    let file = db.dir.with_extension("backup.db");
    let (data_dir, target) = (db.dir.clone(), file.clone());
    let (before, sent) = snapshot_under_load(&state, move || {
        let out = server(&data_dir, &["backup", target.to_str().unwrap()]);
        assert!(out.status.success(), "backup failed: {}", said(&out));
        assert!(said(&out).contains("backup written to"), "{}", said(&out));
    })
    .await;

    // Restore into a fresh data directory; the server there starts and has the messages.
    let fresh = db.dir.with_extension("restored");
    let out = server(&fresh, &["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "restore failed: {}", said(&out));
    let restored = message_ids(&format!("sqlite://{}/chatalot.db?mode=rwc", fresh.display())).await;
    let missing = before.difference(&restored).count();
    eprintln!(
        "SQLite backup under load: {sent} messages acknowledged in all, {} before the backup began, {} in the \
         restored database, {missing} missing",
        before.len(),
        restored.len()
    );
    assert_eq!(missing, 0, "acknowledged messages are missing from the restored database");
    assert!(restored.len() < sent, "the snapshot holds messages from after it ended");

    // The restored data directory serves.
    let running = ServerProcess::start(Path::new(BIN), &fresh, &[]);
    // While it runs: a restore refuses (nothing changes), and so does a second server.
    let out = server(&fresh, &["restore", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("stop it first"), "{}", said(&out));
    // (On the running server's port: were the lock not there, it would fail to listen, not hang.)
    let mut second = Command::new(BIN);
    second.env_remove("DATABASE_URL").env("DATA_DIR", &fresh).env("LISTEN_ADDR", running.addr.to_string());
    let second = second.output().unwrap();
    assert_eq!(second.status.code(), Some(1), "{}", said(&second));
    assert!(said(&second).contains("is running on"), "{}", said(&second));
    // A backup of the running server works, and never overwrites a file.
    let again = fresh.join("again.db");
    assert!(server(&fresh, &["backup", again.to_str().unwrap()]).status.success());
    let out = server(&fresh, &["backup", again.to_str().unwrap()]);
    assert!(!out.status.success() && said(&out).contains("already exists"), "{}", said(&out));
    drop(running);

    // Stopped: restoring over a database keeps the old one beside it.
    let out = server(&fresh, &["restore", again.to_str().unwrap()]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("kept as"), "{}", said(&out));
    let kept = std::fs::read_dir(&fresh).unwrap().flatten().filter(|e| {
        e.file_name().to_string_lossy().starts_with("chatalot.db.before-restore-")
            && !e.file_name().to_string_lossy().ends_with("-wal")
            && !e.file_name().to_string_lossy().ends_with("-shm")
    });
    assert_eq!(kept.count(), 1);
    state.db.close_by_ref().await.ok();
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_file(&file);
    db.drop().await;
}

#[test]
fn bad_snapshots_are_refused_and_change_nothing() {
    let dir = std::env::temp_dir().join(format!("chatalot-snap-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.db");
    std::fs::write(&junk, b"this is not a database at all, only some text that is long enough").unwrap();
    let out = server(&dir, &["restore", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("not a Chatalot database"), "{}", said(&out));
    assert!(!said(&out).contains("panicked"), "{}", said(&out));
    assert!(!dir.join("chatalot.db").exists(), "a refused restore left a database behind");
    let out = server(&dir, &["restore", dir.join("missing.db").to_str().unwrap()]);
    assert!(said(&out).contains("is not a file"), "{}", said(&out));
    // Nothing to back up yet.
    let out = server(&dir, &["backup", dir.join("b.db").to_str().unwrap()]);
    assert!(said(&out).contains("no database"), "{}", said(&out));
    // On PostgreSQL the command says what to use instead.
    let mut cmd = Command::new(BIN);
    cmd.env("DATA_DIR", &dir).env("DATABASE_URL", "postgres://chat@127.0.0.1:1/chat");
    let out = cmd.args(["backup", dir.join("b.db").to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("pg_dump"), "{}", said(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's PostgreSQL backup, `pg_dump --format=custom` while members post, then
/// `pg_restore` into a new database: every acknowledged message is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(chatalot_pg), ignore = "PostgreSQL: set TEST_DATABASE_URL=postgres://… when building the tests")]
async fn pg_dump_while_members_post_restores_every_acknowledged_message() {
    let db = TestDb::postgres().await;
    let mut state = db.state(RegistrationMode::Open).await;
    state.config = Arc::new(domain::config::Config { messages_per_minute: 100_000, ..(*state.config).clone() });
    let file = db.dir.join("chatalot.dump");
    let (url, target) = (db.url.clone(), file.clone());
    let (before, sent) = snapshot_under_load(&state, move || {
        let out = Command::new("pg_dump")
            .args(["--format=custom", "--no-owner", "--file"])
            .arg(&target)
            .arg(&url)
            .output()
            .expect("pg_dump is not installed (Debian: postgresql-client)");
        assert!(out.status.success(), "pg_dump: {}", said(&out));
    })
    .await;
    state.db.close_by_ref().await.ok();
    let fresh = TestDb::postgres().await;
    let out = Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(&fresh.url)
        .arg(&file)
        .output()
        .expect("pg_restore is not installed (Debian: postgresql-client)");
    assert!(out.status.success(), "pg_restore: {}", said(&out));
    let restored = message_ids(&fresh.url).await;
    let missing = before.difference(&restored).count();
    eprintln!(
        "PostgreSQL pg_dump under load: {sent} messages acknowledged in all, {} before the dump began, {} restored, \
         {missing} missing",
        before.len(),
        restored.len()
    );
    assert_eq!(missing, 0, "acknowledged messages are missing after pg_restore");
    fresh.drop().await;
    db.drop().await;
}
