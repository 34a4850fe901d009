//! Everyone who should read a message can (issue 11), in real browsers against the real server:
//! - a second browser of Bob's reads nothing of the earlier history, and says why in plain words;
//!   a mistyped or wrong recovery key is refused; the right one restores every earlier message in
//!   place, without a reload, with progress on the way;
//! - Carol joins (Alice's open member panel lists her at once) a channel whose newcomers read from
//!   when they join: one quiet line stands for the earlier messages, not a wall of errors;
//! - Dave joins a channel switched to "full history": the earlier messages open for him as soon as
//!   their author writes again, without a reload;
//! - without the recovery key, Bob's third browser reads the history once he verifies it from his
//!   first (online) one, which forwards its keys;
//! - Alice verified Bob's first browser once; the third, signed by Bob's master key, is trusted by
//!   her without another comparison (cross-signing).
//!
//! Run by `cargo xtask test` (it builds the server and the site and sets the paths).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;
use std::time::{Duration, Instant};

/// Waits until the number of elements matching `css` is `n`.
async fn wait_count(c: &fantoccini::Client, css: &str, n: usize) {
    let started = Instant::now();
    loop {
        let now = texts(c, css).await;
        if now.len() == n {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{css}: expected {n}, have {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the message containing `text` shows the verified lock.
async fn wait_verified(c: &fantoccini::Client, text: &str) {
    let started = Instant::now();
    while lock_of(c, text).await != json!("verified") {
        assert!(started.elapsed() < Duration::from_secs(20), "{text}: {:?}", lock_of(c, text).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reaches_new_devices_and_newcomers() {
    let db = TestDb::sqlite();
    let server = start_server_on(&db).await;
    let (_driver, port) = start_chromedriver();
    let alice = browser(port, true, 1280, false).await;
    let bob = browser(port, true, 1280, false).await;
    let bob2 = browser(port, true, 360, false).await;
    let carol = browser(port, true, 1280, false).await;
    let url = server.url.clone();
    let data = server.data.clone();
    let all = [alice.clone(), bob.clone(), bob2.clone(), carol.clone()];
    let (a, b, b2, c) = (alice, bob, bob2, carol);
    let outcome = tokio::spawn(async move {
        register(&a, &url, "alice", "Alice").await;
        register(&b, &url, "bob", "Bob").await;
        create_community(&a, "History Club", &[&b]).await;
        open_conversation(&b, "# general").await;
        say(&a, "canary-hist-one from alice").await;
        say(&b, "canary-hist-two from bob").await;
        wait_contains(&a, "[data-testid=message-body]", "canary-hist-two from bob").await;

        // Bob turns key backup on: the recovery key is shown once.
        b.goto(&format!("{url}/")).await.unwrap();
        find(&b, "[data-testid=backup-on]").await.click().await.unwrap();
        let recovery = text(&b, "[data-testid=recovery-key]").await;
        assert_eq!(recovery.split(' ').count(), 14, "{recovery:?}");
        // Two sessions, and his master key (his first browser made it).
        wait_contains(&b, "[data-testid=backup-on-status]", "3 keys").await;
        find(&b, "[data-testid=recovery-key-saved]").await.click().await.unwrap();
        screenshot(&b, "backup-on").await;
        // Messages after turning it on are backed up as they come.
        open_conversation(&b, "# general").await;
        say(&a, "canary-hist-three after backup").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-hist-three after backup").await;

        // His second browser (a phone) reads nothing of that yet, and says why and what helps.
        sign_in(&b2, &url, "bob").await;
        open_conversation(&b2, "# general").await;
        wait_count(&b2, "[data-unreadable=waiting]", 3).await;
        let reasons = texts(&b2, "[data-unreadable=waiting]").await;
        for reason in &reasons {
            assert!(reason.contains("before this browser was set up"), "{reason:?}");
            assert!(reason.contains("key backup"), "{reason:?}");
            assert!(!reason.to_lowercase().contains("index") && !reason.contains("session"), "{reason:?}");
        }
        wait_contains(&b2, "[data-testid=waiting-count]", "3 messages are waiting for their keys").await;
        screenshot(&b2, "waiting-for-keys-mobile").await;

        // The start page (the top bar's "Chatalot" on a phone) offers the restore. A mistyped key
        // and a made-up one are refused with a reason; nothing changes.
        find(&b2, "[data-testid=home-link]").await.click().await.unwrap();
        let input = find(&b2, "[data-testid=recovery-key-input]").await;
        b2.execute("window.__kept = 'same page';", vec![]).await.unwrap();
        let mut typo = recovery.clone().into_bytes();
        typo[5] = if typo[5] == b'A' { b'B' } else { b'A' };
        input.send_keys(&String::from_utf8(typo).unwrap()).await.unwrap();
        find(&b2, "[data-testid=restore]").await.click().await.unwrap();
        wait_contains(&b2, "[data-testid=backup-error]", "mistyped").await;
        input.clear().await.unwrap();
        input.send_keys("AAAA AAAA AAAA AAAA AAAA AAAA AAAA AAAA AAAA AAAA AAAA AAAA AAAA").await.unwrap();
        find(&b2, "[data-testid=restore]").await.click().await.unwrap();
        wait_contains(&b2, "[data-testid=backup-error]", "not a recovery key").await;
        find(&b2, "[data-testid=restore-form]").await;

        // The right one, typed loosely (lower case, dashes): every earlier message opens.
        input.clear().await.unwrap();
        input.send_keys(&recovery.to_lowercase().replace(' ', "-")).await.unwrap();
        find(&b2, "[data-testid=restore]").await.click().await.unwrap();
        wait_contains(&b2, "[data-testid=backup-on-status]", "Key backup is on").await;
        assert!(texts(&b2, "[data-testid=backup-error]").await.is_empty());
        find(&b2, "[data-testid=menu-button]").await.click().await.unwrap();
        open_conversation(&b2, "# general").await;
        for line in ["canary-hist-one from alice", "canary-hist-two from bob", "canary-hist-three after backup"] {
            wait_contains(&b2, "[data-testid=message-body]", line).await;
        }
        assert!(texts(&b2, "[data-testid=waiting-count]").await.is_empty());
        assert_eq!(b2.execute("return window.__kept;", vec![]).await.unwrap(), json!("same page"), "no reload");

        // Carol joins: the channel's newcomers read from when they join (the default, said in the
        // header). One quiet line for what came before; nothing shown as an error.
        register(&c, &url, "carol", "Carol").await;
        open_conversation(&a, "# general").await;
        find(&a, "#community-invite-form button").await.click().await.unwrap();
        let code = text(&a, "[data-testid=community-invite-code]").await;
        c.goto(&format!("{url}/")).await.unwrap();
        fill(&c, "code", &code).await;
        submit(&c, "join-form").await;
        wait_contains(&c, "[data-testid=community] h2", "History Club").await;
        // Alice's member panel, open all along, lists Carol without a reload.
        wait_contains(&a, "[data-testid=member]", "Carol").await;
        open_conversation(&c, "# general").await;
        wait_contains(&c, "[data-testid=history-setting]", "from when they join").await;
        find(&c, "[data-testid=before-access]").await;
        assert!(texts(&c, "[data-unreadable]").await.is_empty(), "{:?}", bodies(&c).await);
        say(&a, "canary-hist-four welcome carol").await;
        wait_contains(&c, "[data-testid=message-body]", "canary-hist-four welcome carol").await;
        assert!(!bodies(&c).await.iter().any(|t| t.contains("canary-hist-one")));

        // Alice (the owner) switches the channel to full history; Dave joins. Alice's earlier
        // messages open for him once she writes again, in place.
        let setting = find(&a, "select[data-testid=history-setting]").await;
        setting.select_by_value("full").await.unwrap();
        wait_contains(&c, "[data-testid=history-setting]", "full history").await;
        let dave = c.clone();
        dave.goto(&format!("{url}/")).await.unwrap();
        submit(&dave, "logout-form").await;
        wait_path(&dave, "/login").await;
        register(&dave, &url, "dave", "Dave").await;
        fill(&dave, "code", &code).await;
        submit(&dave, "join-form").await;
        wait_contains(&dave, "[data-testid=community] h2", "History Club").await;
        open_conversation(&dave, "# general").await;
        find(&dave, "[data-testid=before-access]").await;
        dave.execute("window.__kept = 'dave';", vec![]).await.unwrap();
        say(&a, "canary-hist-five welcome dave").await;
        for line in ["canary-hist-one from alice", "canary-hist-four welcome carol", "canary-hist-five welcome dave"] {
            wait_contains(&dave, "[data-testid=message-body]", line).await;
        }
        // Bob's earlier message waits for Bob's device (he has not written since).
        assert!(!bodies(&dave).await.iter().any(|t| t.contains("canary-hist-two")));
        assert_eq!(dave.execute("return window.__kept;", vec![]).await.unwrap(), json!("dave"), "no reload");
        screenshot(&dave, "full-history-newcomer").await;

        // Without the recovery key: Bob signs in on a third browser, verifies it from his first
        // (online) one by comparing emoji, and that one forwards every key it holds. The waiting
        // messages open in place.
        let bob3 = dave;
        submit(&bob3, "logout-form").await;
        wait_path(&bob3, "/login").await;
        let third = sign_in(&bob3, &url, "bob").await;
        open_conversation(&bob3, "# general").await;
        wait_contains(&bob3, "[data-unreadable=waiting]", "before this browser was set up").await;
        bob3.execute("window.__kept = 'bob3';", vec![]).await.unwrap();
        // Alice verifies Bob once, on his first browser (which made his master key).
        b.goto(&format!("{url}/")).await.unwrap();
        let first = device_id(&b).await;
        open_conversation(&a, "# general").await;
        member_action(&a, "Bob", "verify").await;
        find(&a, &format!("[data-testid=verify-device][data-device='{first}']")).await.click().await.unwrap();
        find(&b, "[data-testid=verify-accept]").await.click().await.unwrap();
        assert_eq!(text(&a, "[data-testid=sas-emoji]").await, text(&b, "[data-testid=sas-emoji]").await);
        find(&a, "[data-testid=sas-match]").await.click().await.unwrap();
        find(&b, "[data-testid=sas-match]").await.click().await.unwrap();
        find(&a, "[data-testid=verify-done]").await;
        find(&b, "[data-testid=verify-done]").await;
        // His first browser lists the new device on its start page; he verifies it from there.
        let verify = find(&b, &format!("[data-device='{third}'] [data-testid=verify-own-device]")).await;
        verify.click().await.unwrap();
        find(&bob3, "[data-testid=verify-accept]").await.click().await.unwrap();
        assert_eq!(text(&b, "[data-testid=sas-emoji]").await, text(&bob3, "[data-testid=sas-emoji]").await);
        find(&b, "[data-testid=sas-match]").await.click().await.unwrap();
        find(&bob3, "[data-testid=sas-match]").await.click().await.unwrap();
        find(&b, "[data-testid=verify-done]").await;
        find(&bob3, "[data-testid=verify-done]").await;
        for line in ["canary-hist-one from alice", "canary-hist-two from bob", "canary-hist-five welcome dave"] {
            wait_contains(&bob3, "[data-testid=message-body]", line).await;
        }
        assert_eq!(bob3.execute("return window.__kept;", vec![]).await.unwrap(), json!("bob3"), "no reload");
        // Cross-signing: Alice never compared anything with the third browser, and trusts what it
        // writes, because Bob's master key (verified once) signed it.
        say(&bob3, "canary-hist-six from the third browser").await;
        wait_contains(&a, "[data-testid=message-body]", "canary-hist-six from the third browser").await;
        wait_verified(&a, "canary-hist-six").await;
        // The phone restored with the recovery key got the master key from the backup and signed
        // itself then: Alice trusts it too, though nobody ever compared anything with it.
        say(&b2, "canary-hist-seven from the phone").await;
        wait_contains(&a, "[data-testid=message-body]", "canary-hist-seven from the phone").await;
        wait_verified(&a, "canary-hist-seven").await;
    })
    .await;
    for client in all {
        let _ = client.close().await;
    }
    // The key backup is ciphertext on the server: none of the message text is in the data
    // directory (the canary search), which holds the backup (its table has Bob's keys) and a
    // known plaintext (the community's name, not end-to-end encrypted: the positive control).
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    let backed_up = entity::key_backup_key::Entity::find().count(&conn).await.unwrap();
    assert!(backed_up >= 3, "Bob's sessions are in the backup table: {backed_up}");
    conn.close().await.ok();
    let stored = files(&data);
    assert!(stored.iter().any(|(_, bytes)| occurs(bytes, "History Club")), "the search sees the database");
    for (path, bytes) in &stored {
        assert!(!occurs(bytes, "canary-hist"), "message text in {path:?}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&db.dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
