//! End-to-end encrypted conversations between real browsers: three people, each in their own
//! headless Chromium profile (their own device keys in their own IndexedDB), against the real
//! server. A community channel, a DM and a group DM; typing, presence, edit, delete, reply, reload;
//! a kick; and afterwards, none of the message text anywhere in the server's data directory.
//!
//! Run by `cargo xtask test` (it builds the server and the site and sets the paths).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_people_talk_end_to_end_encrypted() {
    let server = start_server().await;
    let (_driver, port) = start_chromedriver();
    let alice = browser(port, true, 1280, false).await;
    let bob = browser(port, true, 1280, false).await;
    let carol = browser(port, true, 360, false).await;
    let url = server.url.clone();
    let data = server.data.clone();
    let (a, b, c) = (alice.clone(), bob.clone(), carol.clone());
    let outcome = tokio::spawn(async move {
        register(&a, &url, "alice", "Alice").await;
        register(&b, &url, "bob", "Bob").await;
        register(&c, &url, "carol", "Carol").await;

        // Alice creates a community and an invite; Bob and Carol join with the code.
        create_community(&a, "Canary Club", &[&b, &c]).await;
        open_conversation(&b, "# general").await;
        open_conversation(&c, "# general").await;

        // Messages both ways, decrypted in each browser. Shift+Enter makes a new line.
        say(&a, "canary-alpha hello Bob").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-alpha hello Bob").await;
        wait_contains(&c, "[data-testid=message-body]", "canary-alpha hello Bob").await;
        composer_ready(&b)
            .await
            .send_keys(&format!("canary-bravo line one{SHIFT}{ENTER}{RELEASE}line two{ENTER}"))
            .await
            .unwrap();
        wait_contains(&a, "[data-testid=message-body]", "canary-bravo line one\nline two").await;
        // Bob's message on Alice's screen: encrypted, from a device she has not verified; her own,
        // from her own device (which her master key signed), verified.
        assert_eq!(lock_of(&a, "canary-bravo").await, json!("encrypted"), "messages show their lock state");
        assert_eq!(lock_of(&a, "canary-alpha").await, json!("verified"), "her own device is cross-signed");
        screenshot(&a, "chat-channel-desktop").await;

        // My own message shows at once, marked as sending, and becomes the stored one when the
        // server has it. On Alice's slowed link a request takes at least 1.5 s.
        network(&a, false, 1500).await;
        composer_ready(&a).await.send_keys(&format!("canary-lima on a slow link{ENTER}")).await.unwrap();
        let pressed = Instant::now();
        loop {
            if lock_of(&a, "canary-lima").await == json!("sending") {
                break;
            }
            assert!(pressed.elapsed() < Duration::from_millis(1200), "my message was not shown before the server had it");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        wait_contains(&b, "[data-testid=message-body]", "canary-lima on a slow link").await;
        let started = Instant::now();
        while lock_of(&a, "canary-lima").await != json!("verified") {
            assert!(started.elapsed() < Duration::from_secs(15), "the sent message stayed marked as sending");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(texts(&a, "[data-testid=message-body]").await.iter().filter(|t| t.contains("canary-lima")).count(), 1);
        network(&a, false, 0).await;

        // Typing shows on the other side; presence shows in the member list.
        // (Typing is announced at most every 3 s, so keep typing as a person would.)
        let started = Instant::now();
        while text(&a, "[data-testid=typing]").await != "Bob is typing…" {
            assert!(started.elapsed() < Duration::from_secs(15), "Alice never saw Bob typing");
            composer_ready(&b).await.send_keys("x").await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let started = Instant::now();
        loop {
            let status: Value = a
                .execute(
                    "const m = [...document.querySelectorAll('[data-testid=member]')].find(m => m.textContent.includes('Bob')); \
                     return m && m.querySelector('[data-testid=presence]').dataset.status;",
                    vec![],
                )
                .await
                .unwrap();
            if status == json!("online") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "Bob shows as {status} to Alice");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        find(&b, "[data-testid=composer]").await.clear().await.unwrap();

        // Reply, edit and delete reach the others.
        act_on(&b, "canary-alpha hello Bob", "reply").await;
        find(&b, "[data-testid=replying]").await;
        say(&b, "canary-charlie a reply").await;
        wait_contains(&a, "[data-testid=reply-quote]", "Alice: canary-alpha").await;
        start_edit(&a, "canary-alpha hello Bob", &format!("canary-delta edited hello{ENTER}")).await;
        wait_contains(&b, "[data-testid=message-body]", "canary-delta edited hello").await;
        wait_contains(&b, "[data-testid=edited]", "(edited)").await;
        say(&a, "canary-echo to be deleted").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-echo to be deleted").await;
        act_on(&a, "canary-echo to be deleted", "delete").await;
        act_on(&a, "canary-echo to be deleted", "confirm-delete").await;
        wait_contains(&b, "[data-testid=message-body]", "Message deleted").await;
        assert!(!bodies(&b).await.iter().any(|t| t.contains("canary-echo")));

        // A reload decrypts the history again from this browser's stored keys.
        b.refresh().await.unwrap();
        wait_contains(&b, "[data-testid=message-body]", "canary-delta edited hello").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-charlie a reply").await;
        assert!(texts(&b, "[data-unreadable]").await.is_empty(), "{:?}", bodies(&b).await);

        // A DM: Alice starts it from the member list; it appears in Bob's sidebar.
        wait_contains(&a, "[data-testid=member]", "Bob").await;
        member_action(&a, "Bob", "message-member").await;
        wait_contains(&a, "[data-testid=channel-title]", "Bob").await;
        say(&a, "canary-foxtrot just between us").await;
        open_conversation(&b, "Alice").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-foxtrot just between us").await;
        say(&b, "canary-golf DM answer").await;
        wait_contains(&a, "[data-testid=message-body]", "canary-golf DM answer").await;

        // A group DM with all three.
        open_conversation(&a, "# general").await;
        a.execute(
            "for (const m of document.querySelectorAll('[data-testid=member]')) { \
               const box = m.querySelector('[data-testid=select-member]'); if (box) box.click(); }",
            vec![],
        )
        .await
        .unwrap();
        find(&a, "[data-testid=start-group-dm]").await.click().await.unwrap();
        wait_contains(&a, "[data-testid=channel-title]", "Carol").await;
        say(&a, "canary-hotel hello both").await;
        open_conversation(&c, "Alice, Bob").await;
        wait_contains(&c, "[data-testid=message-body]", "canary-hotel hello both").await;
        say(&c, "canary-india from Carol").await;
        open_conversation(&b, "Alice, Carol").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-india from Carol").await;
        screenshot(&c, "chat-group-dm-mobile").await;

        // Alice and Bob verify each other's devices by comparing emoji (SAS over Olm).
        open_conversation(&a, "# general").await;
        open_conversation(&b, "# general").await;
        member_action(&a, "Bob", "verify").await;
        find(&b, "[data-testid=verify-accept]").await.click().await.unwrap();
        let (alice_sees, bob_sees) = (text(&a, "[data-testid=sas-emoji]").await, text(&b, "[data-testid=sas-emoji]").await);
        assert_eq!(alice_sees, bob_sees, "both screens show the same emoji");
        assert_eq!(text(&a, "[data-testid=sas-numbers]").await, text(&b, "[data-testid=sas-numbers]").await);
        screenshot(&a, "chat-verify").await;
        find(&a, "[data-testid=sas-match]").await.click().await.unwrap();
        find(&b, "[data-testid=sas-match]").await.click().await.unwrap();
        find(&a, "[data-testid=verify-done]").await;
        find(&b, "[data-testid=verify-done]").await;
        wait_contains(&a, "[data-testid=member]", "✓ verified").await;
        // What Bob's device wrote before is shown as verified too, without a reload.
        assert_eq!(lock_of(&a, "canary-charlie").await, json!("verified"));
        say(&b, "canary-kilo from a verified device").await;
        wait_contains(&a, "[data-testid=message-body]", "canary-kilo").await;
        assert_eq!(lock_of(&a, "canary-kilo").await, json!("verified"));

        // Alice kicks Carol: Carol's open channel says so, and nothing sent afterwards reaches her.
        open_conversation(&c, "# general").await;
        open_conversation(&a, "# general").await;
        member_action(&a, "Carol", "kick").await;
        // Nothing happens before Alice confirms.
        find(&a, "[data-testid=confirm-kick]").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(texts(&c, "[data-testid=removed]").await.is_empty(), "kicked without confirmation");
        member_action(&a, "Carol", "confirm-kick").await;
        // The open channel says so (then the sidebar drops it and the page says it is gone).
        find(&c, "[data-testid=removed], [data-testid=no-channel]").await;
        say(&a, "canary-juliet after the kick").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-juliet after the kick").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!bodies(&c).await.iter().any(|t| t.contains("canary-juliet")), "{:?}", bodies(&c).await);
        c.refresh().await.unwrap();
        find(&c, "[data-testid=no-channel]").await;

        // A send that fails loses nothing: the text goes back into the composer, the row goes.
        network(&a, true, 0).await;
        composer_ready(&a).await.send_keys(&format!("canary-mike while offline{ENTER}")).await.unwrap();
        wait_contains(&a, "[data-testid=send-error]", "Not sent").await;
        assert!(!bodies(&a).await.iter().any(|t| t.contains("canary-mike")), "{:?}", bodies(&a).await);
        let kept = find(&a, "[data-testid=composer]").await.prop("value").await.unwrap();
        assert_eq!(kept.as_deref(), Some("canary-mike while offline"));
        network(&a, false, 0).await;

        // A message over the size limit is refused in the composer, with its length and the limit
        // said; nothing is sent and nothing typed is lost (it once failed with "expected value at
        // line 1 column 1").
        let long = format!("canary-oscar {}", "x".repeat(80_000));
        let set: Value = a
            .execute(
                "const t = document.querySelector('[data-testid=composer]'); t.value = arguments[0]; \
                 t.dispatchEvent(new Event('input', { bubbles: true })); return t.value.length;",
                vec![json!(long)],
            )
            .await
            .unwrap();
        assert_eq!(set, json!(long.len()));
        wait_contains(&a, "[data-testid=length-warning]", "at most 40.0 KB").await;
        composer_ready(&a).await.send_keys(ENTER).await.unwrap();
        wait_contains(&a, "[data-testid=send-error]", "Too long to send: 80.0 KB of text").await;
        let kept = find(&a, "[data-testid=composer]").await.prop("value").await.unwrap().unwrap_or_default();
        assert_eq!(kept.len(), long.len(), "the text stays in the composer");
        a.execute(
            "const t = document.querySelector('[data-testid=composer]'); t.value = ''; \
             t.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![],
        )
        .await
        .unwrap();
        assert!(texts(&a, "[data-testid=length-warning]").await.iter().all(|t| t.is_empty()));
        say(&a, "canary-papa after the long one").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-papa after the long one").await;
        assert!(!bodies(&b).await.iter().any(|t| t.contains("canary-oscar")), "the long message was never sent");
    })
    .await;
    for browser in [alice, bob, carol] {
        let _ = browser.close().await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    // The server stored all of that, and none of it is readable there: no message text in any
    // file of its data directory (SQLite database, write-ahead log, keys). The community's name,
    // which is not encrypted, is found: the search itself works.
    let everything = files(&data);
    assert!(everything.iter().any(|(_, bytes)| occurs(bytes, "Canary Club")), "positive control not found");
    for (path, bytes) in &everything {
        for canary in [
            "canary-alpha",
            "canary-bravo",
            "canary-charlie",
            "canary-delta",
            "canary-echo",
            "canary-foxtrot",
            "canary-golf",
            "canary-hotel",
            "canary-india",
            "canary-juliet",
            "canary-kilo",
            "canary-lima",
            "canary-mike",
            "line two",
        ] {
            assert!(!occurs(bytes, canary), "{canary:?} found in {}", path.display());
        }
    }
    drop(server);
}
