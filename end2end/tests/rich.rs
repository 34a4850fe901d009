//! The rich conversation in real browsers, one test per feature.
//!
//! Pins: Alice (the community's owner, 1280 px) pins and unpins; Bob (a member, on a 360 px phone)
//! sees the pins arrive live, may not pin, opens the list after a reload and jumps to a pinned
//! message that is older than the loaded page, and the pin list shows the message decrypted (the
//! server holds only which message is pinned).
//!
//! Mentions: "@" completes members' names; a mention of Bob is counted in his sidebar apart from
//! the unread count (by his browser, after decryption), still after a reload, and marked in the
//! timeline; `@everyone` counts only from a moderator or above, as every reader's client checks.
//!
//! Forwarding: Alice forwards a message to her DM with Bob (on a phone); Bob reads it there, marked
//! as forwarded, and the server's files never held its text.
//!
//! Run by `cargo xtask test` (it builds the server and the site and sets the paths).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use fantoccini::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TAB: &str = "\u{E004}";

/// The pins button's text ("Pins" or "Pins (n)") once it equals `want`.
async fn wait_pins_button(c: &Client, want: &str) {
    let started = Instant::now();
    loop {
        let now = text(c, "[data-testid=pins-button]").await;
        if now == want {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the pins button says {now:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the sidebar's mention badge of `channel` says `want` ("" for none).
async fn wait_mention_badge(c: &Client, want: &str) {
    let started = Instant::now();
    loop {
        let now: Value = c
            .execute(
                "const b = document.querySelector('[data-testid=mention-badge]'); return b ? b.textContent : '';",
                vec![],
            )
            .await
            .unwrap();
        if now == json!(want) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the mention badge says {now}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the message containing `text` is marked as mentioning me.
async fn marked(c: &Client, text: &str) -> bool {
    let found: Value = c
        .execute(
            "const row = [...document.querySelectorAll('[data-testid=message]')] \
               .find(r => r.querySelector('[data-testid=message-body]')?.textContent.includes(arguments[0])); \
             return row ? row.hasAttribute('data-mentions-me') : null;",
            vec![json!(text)],
        )
        .await
        .unwrap();
    assert!(found.is_boolean(), "no message {text:?}");
    found == json!(true)
}

/// Alice and Bob sign up; Alice creates the community `name` and Bob joins it.
async fn alice_and_bob_in(a: &Client, b: &Client, url: &str, name: &str) {
    register(a, url, "alice", "Alice Liddell").await;
    register(b, url, "bob", "Bob Stone").await;
    b.goto(url).await.unwrap();
    find(b, "[data-testid=app-shell]").await;
    create_community(a, name, &[b]).await;
}

/// The action buttons (their `data-testid`) of the message containing `text`.
async fn actions_of(c: &Client, text: &str) -> Vec<String> {
    let found: Value = c
        .execute(
            "const row = [...document.querySelectorAll('[data-testid=message]')] \
               .find(r => r.querySelector('[data-testid=message-body]')?.textContent.includes(arguments[0])); \
             return row ? [...row.querySelectorAll('[data-testid=message-actions] button')].map(b => b.dataset.testid) : null;",
            vec![json!(text)],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderators_pin_and_everyone_jumps_to_pins() {
    let server = start_server().await;
    let (_driver, port) = start_chromedriver();
    let alice = browser(port, true, 1280, false).await;
    let bob = browser(port, true, 360, true).await;
    let url = server.url.clone();
    let (a, b) = (alice.clone(), bob.clone());
    let outcome = tokio::spawn(async move {
        alice_and_bob_in(&a, &b, &url, "Pin Club").await;
        open_conversation(&b, "# general").await;

        composer_ready(&a).await.send_keys(&format!("the **house rules** are here{ENTER}")).await.unwrap();
        wait_sent(&a, "house rules").await;
        wait_contains(&b, "[data-testid=message-body]", "house rules").await;
        wait_pins_button(&b, "Pins").await;
        // The owner may pin; a member may not (no button, and the list has no "Unpin").
        assert!(actions_of(&a, "house rules").await.contains(&"pin-message".to_owned()));
        assert!(!actions_of(&b, "house rules").await.contains(&"pin-message".to_owned()));
        act_on(&a, "house rules", "pin-message").await;
        // Bob learns at once: the count, and the mark on the message.
        wait_pins_button(&b, "Pins (1)").await;
        wait_contains(&b, "[data-testid=pinned-mark]", "Pinned").await;
        wait_pins_button(&a, "Pins (1)").await;
        assert!(actions_of(&a, "house rules").await.contains(&"unpin-message".to_owned()));

        // Enough messages that the pinned one is older than the page a reload shows.
        for i in 0..55 {
            composer_ready(&a).await.send_keys(&format!("filler {i}{ENTER}")).await.unwrap();
        }
        wait_sent(&a, "filler 54").await;
        b.refresh().await.unwrap();
        wait_contains(&b, "[data-testid=message-body]", "filler 54").await;
        assert!(!bodies(&b).await.iter().any(|t| t.contains("house rules")), "not loaded after a reload");
        wait_pins_button(&b, "Pins (1)").await;

        // The list, decrypted here (with its Markdown), and a jump back to the message.
        find(&b, "[data-testid=pins-button]").await.click().await.unwrap();
        wait_contains(&b, "[data-testid=pin]", "house rules").await;
        let bold = text(&b, "[data-testid=pin] strong").await;
        assert_eq!(bold, "house rules");
        assert!(texts(&b, "[data-testid=pin] [data-testid=unpin]").await.is_empty(), "a member cannot unpin");
        find(&b, "[data-testid=jump-to-pin]").await.click().await.unwrap();
        wait_contains(&b, "[data-testid=message-body]", "house rules").await;
        let started = Instant::now();
        loop {
            // On the phone the list steps aside; the message is on screen, marked for a moment.
            let shown: Value = b
                .execute(
                    "const row = [...document.querySelectorAll('[data-testid=message]')] \
                       .find(r => r.textContent.includes('house rules')); \
                     const r = row.getBoundingClientRect(); \
                     return { flash: row.hasAttribute('data-flash'), top: r.top, bottom: r.bottom, height: innerHeight, \
                       panel: getComputedStyle(document.querySelector('[data-testid=pin-panel]')).display };",
                    vec![],
                )
                .await
                .unwrap();
            let in_view = shown["top"].as_f64().unwrap() >= 0.0
                && shown["bottom"].as_f64().unwrap() <= shown["height"].as_f64().unwrap();
            if shown["flash"] == json!(true) && in_view && shown["panel"] == json!("none") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the pinned message was not shown: {shown}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Unpinning from the list: gone for both, live.
        find(&a, "[data-testid=pins-button]").await.click().await.unwrap();
        wait_contains(&a, "[data-testid=pin]", "house rules").await;
        find(&a, "[data-testid=pin] [data-testid=unpin]").await.click().await.unwrap();
        wait_pins_button(&a, "Pins").await;
        wait_pins_button(&b, "Pins").await;
        wait_contains(&a, "[data-testid=no-pins]", "Nothing is pinned yet").await;
        assert!(texts(&b, "[data-testid=pinned-mark]").await.is_empty());
    })
    .await;
    for c in [alice, bob] {
        let _ = c.close().await;
    }
    drop(server);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_are_completed_counted_and_marked() {
    let server = start_server().await;
    let (_driver, port) = start_chromedriver();
    let alice = browser(port, true, 1280, false).await;
    let bob = browser(port, true, 1280, true).await;
    let url = server.url.clone();
    let (a, b) = (alice.clone(), bob.clone());
    let outcome = tokio::spawn(async move {
        alice_and_bob_in(&a, &b, &url, "Mention Club").await;
        // Bob is on the start page, not in the conversation.
        b.goto(&url).await.unwrap();
        find(&b, "[data-testid=app-shell]").await;

        // "@" lists the members whose name starts so; Tab completes it. The owner may call
        // everyone, so "@e" offers it.
        let composer = composer_ready(&a).await;
        composer.send_keys("hey @b").await.unwrap();
        wait_contains(&a, "[data-testid=mention-option]", "@bob").await;
        assert_eq!(texts(&a, "[data-testid=mention-option]").await.len(), 1, "not herself, only Bob");
        composer.send_keys(TAB).await.unwrap();
        assert_eq!(composer.prop("value").await.unwrap().as_deref(), Some("hey @bob "));
        composer.send_keys(&format!("look at this{ENTER}")).await.unwrap();
        wait_sent(&a, "look at this").await;
        composer_ready(&a).await.send_keys("@e").await.unwrap();
        wait_contains(&a, "[data-testid=mention-option]", "@everyone").await;
        composer_ready(&a).await.send_keys(&format!("{TAB}meeting now{ENTER}")).await.unwrap();
        wait_sent(&a, "meeting now").await;
        say(&a, "nothing for bob here").await;

        // Bob's browser counts what mentions him, apart from the unread count.
        wait_mention_badge(&b, "@2").await;
        wait_contains(&b, "[data-testid=unread-badge]", "3").await;
        // Still after a reload: counted again from the unread messages.
        b.refresh().await.unwrap();
        find(&b, "[data-testid=app-shell]").await;
        wait_mention_badge(&b, "@2").await;

        // In the conversation: marked, the name shown, the count gone.
        open_conversation(&b, "# general").await;
        wait_contains(&b, "[data-testid=message-body]", "look at this").await;
        wait_mention_badge(&b, "").await;
        assert!(marked(&b, "look at this").await);
        assert!(marked(&b, "meeting now").await, "everyone, from the owner");
        assert!(!marked(&b, "nothing for bob").await);
        assert_eq!(text(&b, "[data-testid=mention][data-me]").await, "@Bob Stone");
        // A member may not call everyone: not offered, and not marked for Alice when typed.
        let composer = composer_ready(&b).await;
        composer.send_keys("@e").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(texts(&b, "[data-testid=mention-option]").await.is_empty(), "a member is not offered @everyone");
        composer.send_keys(&format!("veryone party{ENTER}")).await.unwrap();
        wait_sent(&b, "party").await;
        // Enter with the list open completes the name (as Tab does); the next one sends.
        let composer = composer_ready(&b).await;
        composer.send_keys("thanks @alice").await.unwrap();
        wait_contains(&b, "[data-testid=mention-option]", "@alice").await;
        composer.send_keys(ENTER).await.unwrap();
        assert_eq!(composer.prop("value").await.unwrap().as_deref(), Some("thanks @alice "));
        composer.send_keys(ENTER).await.unwrap();
        wait_sent(&b, "thanks").await;
        wait_contains(&a, "[data-testid=message-body]", "thanks").await;
        assert!(!marked(&a, "party").await, "everyone from a member marks nothing");
        assert!(marked(&a, "thanks").await);
    })
    .await;
    for c in [alice, bob] {
        let _ = c.close().await;
    }
    drop(server);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_message_is_encrypted_again_and_marked() {
    let server = start_server().await;
    let (_driver, port) = start_chromedriver();
    let alice = browser(port, true, 1280, false).await;
    let bob = browser(port, true, 360, true).await;
    let url = server.url.clone();
    let data = server.data.clone();
    let (a, b) = (alice.clone(), bob.clone());
    let outcome = tokio::spawn(async move {
        alice_and_bob_in(&a, &b, &url, "Forward Club").await;
        // Their DM, opened from the member list; then back to the channel.
        find(&a, "[data-testid=member]").await;
        member_action(&a, "Bob Stone", "message-member").await;
        wait_text(&a, "[data-testid=channel-title]", "Bob Stone").await;
        open_conversation(&a, "# general").await;
        say(&a, "canary-fwd-7d1 the plan").await;

        act_on(&a, "canary-fwd-7d1", "forward").await;
        find(&a, "[data-testid=forward-dialog]").await;
        let listed = texts(&a, "[data-testid=forward-target]").await;
        assert!(listed.contains(&"Bob Stone".to_owned()), "{listed:?}");
        assert!(!listed.iter().any(|t| t.ends_with("# general")), "not where it is: {listed:?}");
        find(&a, "[data-testid=forward-filter]").await.send_keys("bob").await.unwrap();
        let listed = texts(&a, "[data-testid=forward-target]").await;
        assert_eq!(listed, ["Bob Stone"]);
        find(&a, "[data-testid=forward-target]").await.click().await.unwrap();
        wait_contains(&a, "[data-testid=forward-note]", "Forwarded to Bob Stone").await;
        assert!(texts(&a, "[data-testid=forward-dialog]").await.is_empty(), "closed");

        open_conversation(&b, "Alice Liddell").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-fwd-7d1 the plan").await;
        assert_eq!(text(&b, "[data-testid=forwarded]").await, "↪ Forwarded from Alice Liddell");
        // A reply (bound inside the ciphertext) still reads as one.
        act_on(&b, "canary-fwd-7d1", "reply").await;
        say(&b, "got the plan").await;
        open_conversation(&a, "Bob Stone").await;
        wait_contains(&a, "[data-testid=message-body]", "got the plan").await;
        wait_contains(&a, "[data-testid=reply-quote]", "canary-fwd-7d1").await;

        // Encrypted again for the DM: the server's files never held the text (the positive
        // control: the name Alice registered with is there).
        let files = files(&data);
        assert!(files.iter().any(|(_, bytes)| occurs(bytes, "Alice Liddell")), "the check reads the data");
        let leaks: Vec<_> = files.iter().filter(|(_, bytes)| occurs(bytes, "canary-fwd-7d1")).map(|(p, _)| p).collect();
        assert!(leaks.is_empty(), "forwarded text in {leaks:?}");
    })
    .await;
    for c in [alice, bob] {
        let _ = c.close().await;
    }
    drop(server);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
