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
//! Read receipts: in their DM, Alice sees "Seen by Bob Stone" under the newest message Bob has
//! read, live, and Bob sees hers; once Bob turns receipts off (on his start page, kept after a
//! reload), his receipt disappears from Alice's screen at once, and neither sees the other's, live
//! or after a reload.
//!
//! Emoji: the picker searches (Enter takes the first), inserts where the caret is and remembers
//! what was used (still after a reload); `:fir` completes to 🔥 by Tab; an emoji alone is shown
//! large; a reaction comes from the whole picker, on a phone, and arrives live.
//!
//! Polls: Alice makes one in the dialog (`/poll`, a mistake refused, several answers allowed);
//! Bob, on a phone, votes and changes his votes, Alice votes too, and both browsers count the
//! same, live and after a reload; `/poll question | a | b` makes a single-choice poll where a new
//! vote replaces the old; the question and options never reach the server's files.
//!
//! Scheduled messages: Alice schedules two (a malformed command says how), cancels one, and the
//! other reaches Bob at its time, sent by the server, never readable there.
//!
//! Threads: Alice starts one on a message and replies in the panel beside the channel; Bob, on a
//! phone, sees the reply count arrive live, marked unread, opens the thread (the whole screen),
//! answers, and Alice's open panel shows it at once; the channel's timeline never holds a reply;
//! after a reload the thread is read and holds both replies; their text never reaches the server.
//!
//! Disappearing messages: Alice (a moderator) sets a timer in the channel's header; Bob sees it
//! said there; a message sent then carries its time, and when that time comes (moved forward in
//! the database) it vanishes from both screens without a trace, stays gone after a reload, and the
//! server keeps none of its ciphertext; a message sent before the timer stays.
//!
//! Bookmarks: Alice bookmarks Bob's message with a private note (Bob sees nothing of it); her
//! start page lists it with the note, "Open" leads back to the message; she changes the note and
//! removes the bookmark; neither the note nor what it names reaches the server's files.
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

/// A fresh server with Alice's browser (1280 px, light) and Bob's (`bob_width` px, dark): runs
/// `body` with them, the server's address and its data directory, then closes both browsers,
/// whatever happened.
async fn alice_and_bob_browsers<F, Fut>(bob_width: u32, body: F)
where
    F: FnOnce(Client, Client, String, std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let server = start_server().await;
    let (_driver, port) = start_chromedriver();
    let alice = browser(port, true, 1280, false).await;
    let bob = browser(port, true, bob_width, true).await;
    let outcome = tokio::spawn(body(alice.clone(), bob.clone(), server.url.clone(), server.data.clone())).await;
    for c in [alice, bob] {
        let _ = c.close().await;
    }
    drop(server);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
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
    alice_and_bob_browsers(360, |a, b, url, _| async move {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_are_completed_counted_and_marked() {
    alice_and_bob_browsers(1280, |a, b, url, _| async move {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_message_is_encrypted_again_and_marked() {
    alice_and_bob_browsers(360, |a, b, url, data| async move {
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
}

/// Each "seen by" line with the text of the message it stands under: `[(message, seen by)]`.
async fn seen_lines(c: &Client) -> Vec<(String, String)> {
    let found: Value = c
        .execute(
            "return [...document.querySelectorAll('[data-testid=seen-by]')].map(s => { \
               let p = s.previousElementSibling; \
               while (p && p.dataset.testid !== 'message') p = p.previousElementSibling; \
               return [p ? p.querySelector('[data-testid=message-body]')?.textContent ?? '' : '', s.textContent]; });",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// Waits until the "seen by" lines are `want` (message text contained, seen-by text exact).
async fn wait_seen(c: &Client, want: &[(&str, &str)]) {
    let started = Instant::now();
    loop {
        let now = seen_lines(c).await;
        if now.len() == want.len() && now.iter().zip(want).all(|((m, s), (wm, ws))| m.contains(wm) && s == ws) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "seen-by lines {now:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_show_who_has_seen_until_turned_off() {
    alice_and_bob_browsers(360, |a, b, url, _| async move {
        alice_and_bob_in(&a, &b, &url, "Receipt Club").await;
        find(&a, "[data-testid=member]").await;
        member_action(&a, "Bob Stone", "message-member").await;
        wait_text(&a, "[data-testid=channel-title]", "Bob Stone").await;
        say(&a, "are you there").await;
        wait_seen(&a, &[]).await;

        // Bob reads it: Alice sees it live; then he answers, and sees that she read his answer.
        open_conversation(&b, "Alice Liddell").await;
        wait_contains(&b, "[data-testid=message-body]", "are you there").await;
        wait_seen(&a, &[("are you there", "Seen by Bob Stone")]).await;
        say(&b, "yes I am").await;
        wait_seen(&b, &[("yes I am", "Seen by Alice Liddell")]).await;
        // That Bob read his own message says nothing: Alice sees no line under it.
        wait_seen(&a, &[]).await;
        say(&a, "great").await;
        wait_seen(&a, &[("great", "Seen by Bob Stone")]).await;
        // Still there after a reload.
        a.refresh().await.unwrap();
        wait_contains(&a, "[data-testid=message-body]", "great").await;
        wait_seen(&a, &[("great", "Seen by Bob Stone")]).await;

        // Bob turns them off: kept after a reload.
        b.goto(&url).await.unwrap();
        // Once the app runs here (the switch is the app's).
        wait_prefix(&b, "[data-testid=device-status]", "This device").await;
        let switch = find(&b, "[data-testid=read-receipts]").await;
        assert_eq!(switch.prop("checked").await.unwrap().as_deref(), Some("true"), "on by default");
        switch.click().await.unwrap();
        wait_attr(&b, "[data-testid=read-receipts]", "data-on", "false").await;
        b.refresh().await.unwrap();
        wait_attr(&b, "[data-testid=read-receipts]", "data-on", "false").await;
        assert_eq!(
            find(&b, "[data-testid=read-receipts]").await.prop("checked").await.unwrap().as_deref(),
            Some("false")
        );
        // Withdrawn at once where Alice is looking.
        wait_seen(&a, &[]).await;

        // Neither sees the other's any more: not live, not after a reload.
        say(&a, "anyone?").await;
        open_conversation(&b, "Alice Liddell").await;
        wait_contains(&b, "[data-testid=message-body]", "anyone?").await;
        say(&b, "quietly").await;
        wait_contains(&a, "[data-testid=message-body]", "quietly").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(seen_lines(&b).await, vec![], "Bob sees no receipts");
        a.refresh().await.unwrap();
        wait_contains(&a, "[data-testid=message-body]", "quietly").await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(seen_lines(&a).await, vec![], "Alice sees none of Bob's");
    })
    .await;
}

/// Waits until the element's attribute `name` is `want`.
async fn wait_attr(c: &Client, css: &str, name: &str, want: &str) {
    let started = Instant::now();
    loop {
        let now = find(c, css).await.attr(name).await.ok().flatten();
        if now.as_deref() == Some(want) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{css} {name}={now:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The composer's text.
async fn composer_value(c: &Client) -> String {
    let v: Value = c.execute("return document.querySelector('[data-testid=composer]').value;", vec![]).await.unwrap();
    v.as_str().unwrap_or_default().to_owned()
}

/// The emoji offered, in order (`scope` narrows the search, e.g. to the recently used).
async fn offered(c: &Client, scope: &str) -> Vec<String> {
    let v: Value = c
        .execute(
            "return [...document.querySelectorAll(arguments[0] + ' [data-testid=emoji-option]')].map(b => b.dataset.emoji);",
            vec![json!(scope)],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap_or_default()
}

/// Waits until the first emoji offered in `scope` is `want`.
async fn wait_first_offered(c: &Client, scope: &str, want: &str) {
    let started = Instant::now();
    loop {
        let now = offered(c, scope).await;
        if now.first().map(String::as_str) == Some(want) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{scope}: offered {now:?}, want {want} first");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The WASM chunks this page has fetched (code loaded when first needed, `app/src/split.rs`).
async fn chunks_fetched(c: &Client) -> Vec<String> {
    let names: Value = c
        .execute(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname.split('/').pop())\
             .filter(n => /^(split|chunk)_.*\\.wasm$/.test(n));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(names).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emoji_are_searched_completed_remembered_and_reacted() {
    alice_and_bob_browsers(360, |a, b, url, _| async move {
        alice_and_bob_in(&a, &b, &url, "Emoji Club").await;
        open_conversation(&a, "# general").await;
        open_conversation(&b, "# general").await;

        // The picker: search, Enter takes the first; it goes where the caret is.
        composer_ready(&a).await.send_keys("party  time").await.unwrap();
        a.execute("const t = document.querySelector('[data-testid=composer]'); t.setSelectionRange(6, 6);", vec![])
            .await
            .unwrap();
        // Its code comes when it is first opened, not with the page.
        assert_eq!(chunks_fetched(&a).await, Vec::<String>::new());
        find(&a, "[data-testid=emoji-button]").await.click().await.unwrap();
        find(&a, "[data-testid=emoji-search]").await.send_keys("tada").await.unwrap();
        // Its own chunk, with what it shares with other split points (`chunk_*`), no other's.
        let fetched = chunks_fetched(&a).await;
        let split: Vec<&String> = fetched.iter().filter(|n| n.starts_with("split_")).collect();
        assert_eq!(split, ["split_emoji_picker.wasm"], "{fetched:?}");
        wait_first_offered(&a, "[data-testid=emoji-picker]", "🎉").await;
        find(&a, "[data-testid=emoji-search]").await.send_keys(ENTER).await.unwrap();
        assert!(texts(&a, "[data-testid=emoji-picker]").await.is_empty(), "closed");
        assert_eq!(composer_value(&a).await, "party 🎉 time");
        let active: Value = a.execute("return document.activeElement.dataset.testid;", vec![]).await.unwrap();
        assert_eq!(active, json!("composer"), "the focus is back in the box");
        composer_ready(&a).await.send_keys(ENTER).await.unwrap();
        wait_sent(&a, "party 🎉 time").await;
        wait_contains(&b, "[data-testid=message-body]", "party 🎉 time").await;

        // `:fir` completes by Tab; an emoji alone is shown large.
        composer_ready(&a).await.send_keys(":fir").await.unwrap();
        wait_contains(&a, "[data-testid=emoji-suggestion]", ":fire:").await;
        composer_ready(&a).await.send_keys(TAB).await.unwrap();
        assert_eq!(composer_value(&a).await, "🔥");
        composer_ready(&a).await.send_keys(ENTER).await.unwrap();
        find(&b, "[data-testid=message-body][data-kind=emoji]").await;
        assert_eq!(text(&b, "[data-testid=message-body][data-kind=emoji]").await, "🔥");

        // Recently used, the latest first; still after a reload. Escape closes.
        find(&a, "[data-testid=emoji-button]").await.click().await.unwrap();
        wait_first_offered(&a, "[data-testid=emoji-recent]", "🔥").await;
        assert_eq!(offered(&a, "[data-testid=emoji-recent]").await, ["🔥", "🎉"]);
        find(&a, "[data-testid=emoji-search]").await.send_keys("\u{E00C}").await.unwrap();
        assert!(texts(&a, "[data-testid=emoji-picker]").await.is_empty(), "Escape closed it");
        a.refresh().await.unwrap();
        find(&a, "[data-testid=emoji-button]").await;
        composer_ready(&a).await;
        find(&a, "[data-testid=emoji-button]").await.click().await.unwrap();
        wait_first_offered(&a, "[data-testid=emoji-recent]", "🔥").await;
        // A group at a time: the flags.
        a.execute(
            "[...document.querySelectorAll('[data-testid=emoji-group]')].find(b => b.title === 'Flags').click();",
            vec![],
        )
        .await
        .unwrap();
        wait_first_offered(&a, "[data-testid=emoji-group-list]", "🏁").await;

        // Bob, on a phone, reacts with one that is not among the quick ones.
        act_on(&b, "party", "react").await;
        act_on(&b, "party", "more-reactions").await;
        find(&b, "[data-testid=emoji-search]").await.send_keys("rocket").await.unwrap();
        wait_first_offered(&b, "[data-testid=emoji-picker]", "🚀").await;
        find(&b, "[data-testid=emoji-picker] [data-testid=emoji-option]").await.click().await.unwrap();
        find(&b, "[data-testid=reaction][data-emoji='🚀']").await;
        find(&a, "[data-testid=reaction][data-emoji='🚀']").await;
    })
    .await;
}

/// The options of the poll asking `question`: (label, count, chosen by me).
async fn poll_state(c: &Client, question: &str) -> Vec<(String, u32, bool)> {
    let v: Value = c
        .execute(
            "const card = [...document.querySelectorAll('[data-testid=poll]')] \
               .find(p => p.querySelector('[data-testid=message-body]').textContent.includes(arguments[0])); \
             if (!card) return []; \
             return [...card.querySelectorAll('[data-testid=poll-option]')].map(b => \
               [b.querySelector('span.break-words').textContent.replace(/^✓ /, ''), Number(b.dataset.count), b.getAttribute('aria-pressed') === 'true']);",
            vec![json!(question)],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap_or_default()
}

/// Waits until the poll asking `question` shows `want`.
async fn wait_poll(c: &Client, question: &str, want: &[(&str, u32, bool)]) {
    let started = Instant::now();
    loop {
        let now = poll_state(c, question).await;
        if now.len() == want.len()
            && now.iter().zip(want).all(|((l, n, m), (wl, wn, wm))| l == wl && n == wn && m == wm)
        {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "poll {question:?}: {now:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the option `label` of the poll asking `question`.
async fn vote_for(c: &Client, question: &str, label: &str) {
    let clicked: Value = c
        .execute(
            "const card = [...document.querySelectorAll('[data-testid=poll]')] \
               .find(p => p.querySelector('[data-testid=message-body]').textContent.includes(arguments[0])); \
             const b = card && [...card.querySelectorAll('[data-testid=poll-option]')] \
               .find(b => b.querySelector('span.break-words').textContent.replace(/^✓ /, '') === arguments[1]); \
             if (b && !b.disabled) b.click(); return !!b && !b.disabled;",
            vec![json!(question), json!(label)],
        )
        .await
        .unwrap();
    assert_eq!(clicked, json!(true), "no option {label:?} to click in {question:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_are_counted_alike_by_every_client() {
    alice_and_bob_browsers(360, |a, b, url, data| async move {
        alice_and_bob_in(&a, &b, &url, "Poll Club").await;
        open_conversation(&a, "# general").await;
        open_conversation(&b, "# general").await;
        let q = "canary-poll-q5 Where do we eat?";

        // The dialog's code comes when it first opens. When that fails (here the fetch; in life, a
        // tab open across an upgrade), it says so and can try again; nothing panics.
        a.execute(
            "window.realFetch = window.fetch; window.fetch = (input, init) => String(input).includes('split_poll_form') \
             ? Promise.reject(new TypeError('offline')) : window.realFetch(input, init);",
            vec![],
        )
        .await
        .unwrap();
        composer_ready(&a).await.send_keys(&format!("/poll {q}{ENTER}")).await.unwrap();
        wait_contains(&a, "[data-testid=chunk-failed]", "could not be loaded").await;
        a.execute("window.fetch = window.realFetch;", vec![]).await.unwrap();
        find(&a, "[data-testid=chunk-failed] button").await.click().await.unwrap();
        // The dialog, with the question typed after the command.
        find(&a, "[data-testid=poll-dialog]").await;
        assert!(texts(&a, "[data-testid=chunk-failed]").await.is_empty());
        assert_eq!(find(&a, "[data-testid=poll-question]").await.prop("value").await.unwrap().as_deref(), Some(q));
        find(&a, "[data-testid=poll-add-option]").await.click().await.unwrap();
        let inputs = a.find_all(fantoccini::Locator::Css("[data-testid=poll-option-input]")).await.unwrap();
        assert_eq!(inputs.len(), 3);
        inputs[0].send_keys("canary-opt5 Pizza").await.unwrap();
        inputs[1].send_keys("Sushi").await.unwrap();
        inputs[2].send_keys("sushi ").await.unwrap();
        find(&a, "[data-testid=poll-create]").await.click().await.unwrap();
        wait_text(&a, "[data-testid=poll-error]", "Two options are the same.").await;
        inputs[2].clear().await.unwrap();
        inputs[2].send_keys("Tacos").await.unwrap();
        find(&a, "[data-testid=poll-multiple]").await.click().await.unwrap();
        find(&a, "[data-testid=poll-create]").await.click().await.unwrap();
        let opts = |p: bool, s: bool, t: bool, np: u32, ns: u32, nt: u32| {
            [("canary-opt5 Pizza", np, p), ("Sushi", ns, s), ("Tacos", nt, t)]
        };
        wait_poll(&a, q, &opts(false, false, false, 0, 0, 0)).await;
        assert!(texts(&a, "[data-testid=poll-dialog]").await.is_empty(), "closed");

        // Bob (several answers), then Alice; each sees the other's votes.
        wait_poll(&b, q, &opts(false, false, false, 0, 0, 0)).await;
        vote_for(&b, q, "Sushi").await;
        wait_poll(&b, q, &opts(false, true, false, 0, 1, 0)).await;
        vote_for(&b, q, "Tacos").await;
        wait_poll(&b, q, &opts(false, true, true, 0, 1, 1)).await;
        wait_poll(&a, q, &opts(false, false, false, 0, 1, 1)).await;
        wait_contains(&a, "[data-testid=poll-summary]", "1 vote · several answers").await;
        vote_for(&a, q, "canary-opt5 Pizza").await;
        wait_poll(&b, q, &opts(false, true, true, 1, 1, 1)).await;
        wait_contains(&b, "[data-testid=poll-summary]", "2 votes").await;
        // Bob takes Sushi back.
        vote_for(&b, q, "Sushi").await;
        wait_poll(&a, q, &opts(true, false, false, 1, 0, 1)).await;
        // The same after a reload, counted again from the encrypted votes.
        b.refresh().await.unwrap();
        wait_poll(&b, q, &opts(false, false, true, 1, 0, 1)).await;

        // The short form: one answer, a new vote replaces the old.
        composer_ready(&a).await.send_keys(&format!("/poll Tea or coffee? | Tea | Coffee{ENTER}")).await.unwrap();
        wait_poll(&b, "Tea or coffee?", &[("Tea", 0, false), ("Coffee", 0, false)]).await;
        wait_contains(&b, "[data-testid=poll-summary]", "0 votes · one answer").await;
        vote_for(&b, "Tea or coffee?", "Tea").await;
        wait_poll(&b, "Tea or coffee?", &[("Tea", 1, true), ("Coffee", 0, false)]).await;
        vote_for(&b, "Tea or coffee?", "Coffee").await;
        wait_poll(&a, "Tea or coffee?", &[("Tea", 0, false), ("Coffee", 1, false)]).await;
        // Too few options: refused in the composer, the text kept.
        composer_ready(&a).await.send_keys(&format!("/poll Alone? | yes{ENTER}")).await.unwrap();
        wait_text(&a, "[data-testid=send-error]", "A poll has 2 to 10 options.").await;

        let files = files(&data);
        assert!(files.iter().any(|(_, bytes)| occurs(bytes, "Alice Liddell")), "the check reads the data");
        for canary in ["canary-poll-q5", "canary-opt5"] {
            let leaks: Vec<_> = files.iter().filter(|(_, bytes)| occurs(bytes, canary)).map(|(p, _)| p).collect();
            assert!(leaks.is_empty(), "{canary} in {leaks:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_messages_wait_can_be_cancelled_and_arrive() {
    alice_and_bob_browsers(360, |a, b, url, data| async move {
        alice_and_bob_in(&a, &b, &url, "Later Club").await;
        open_conversation(&a, "# general").await;
        open_conversation(&b, "# general").await;
        // A command without a time says what to type; the text stays.
        composer_ready(&a).await.send_keys(&format!("/schedule soon milk{ENTER}")).await.unwrap();
        wait_contains(&a, "[data-testid=send-error]", "Say when").await;
        assert_eq!(composer_ready(&a).await.prop("value").await.unwrap().as_deref(), Some("/schedule soon milk"));
        composer_ready(&a).await.clear().await.unwrap();

        composer_ready(&a).await.send_keys(&format!("/schedule 12s canary-sched-9 see you soon{ENTER}")).await.unwrap();
        wait_text(&a, "[data-testid=scheduled-toggle]", "🕓 1 message scheduled").await;
        composer_ready(&a).await.send_keys(&format!("/schedule 1h cancel me{ENTER}")).await.unwrap();
        wait_text(&a, "[data-testid=scheduled-toggle]", "🕓 2 messages scheduled").await;
        find(&a, "[data-testid=scheduled-toggle]").await.click().await.unwrap();
        wait_contains(&a, "[data-testid=scheduled-item]", "canary-sched-9 see you soon").await;
        wait_contains(&a, "[data-testid=scheduled-item]", "cancel me").await;
        let clicked: Value = a
            .execute(
                "const i = [...document.querySelectorAll('[data-testid=scheduled-item]')] \
                   .find(i => i.textContent.includes('cancel me')); \
                 i.querySelector('[data-testid=scheduled-cancel]').click(); return true;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(clicked, json!(true));
        wait_text(&a, "[data-testid=scheduled-toggle]", "🕓 1 message scheduled").await;

        // Waiting on the server, encrypted: Bob has nothing yet, the files hold no text.
        assert!(!bodies(&b).await.iter().any(|t| t.contains("canary-sched-9")), "not before its time");
        let files = files(&data);
        assert!(files.iter().any(|(_, bytes)| occurs(bytes, "Alice Liddell")), "the check reads the data");
        assert!(!files.iter().any(|(_, bytes)| occurs(bytes, "canary-sched-9")), "the text never reaches the server");

        // At its time it arrives, as Alice's; her list empties; the cancelled one never comes.
        wait_contains(&b, "[data-testid=message-body]", "canary-sched-9 see you soon").await;
        wait_contains(&a, "[data-testid=message-body]", "canary-sched-9 see you soon").await;
        let started = Instant::now();
        while !texts(&a, "[data-testid=scheduled]").await.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "the sent message stayed listed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!bodies(&b).await.iter().any(|t| t.contains("cancel me")));
    })
    .await;
}

/// The thread's composer once it can be typed in.
async fn thread_composer(c: &Client) -> fantoccini::elements::Element {
    let started = Instant::now();
    loop {
        let found = find(c, "[data-testid=thread-composer]").await;
        if found.prop("disabled").await.ok().flatten().as_deref() == Some("false") {
            return found;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the thread's composer never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The summary under the message starting a thread: (its text, whether marked unread).
async fn thread_summary(c: &Client) -> Option<(String, bool)> {
    let found: Value = c
        .execute(
            "const s = document.querySelector('[data-testid=timeline] [data-testid=thread-summary]'); \
             return s ? [s.textContent, s.hasAttribute('data-unread')] : null;",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

async fn wait_thread_summary(c: &Client, replies: &str, unread: bool) {
    let started = Instant::now();
    loop {
        let now = thread_summary(c).await;
        if now.as_ref().is_some_and(|(t, u)| t.starts_with(replies) && *u == unread) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the thread summary is {now:?}, want {replies} {unread}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const REPLIES: &str = "[data-testid=thread-timeline] [data-testid=message-body]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_keep_their_replies_beside_the_channel() {
    alice_and_bob_browsers(360, |a, b, url, data| async move {
        alice_and_bob_in(&a, &b, &url, "Thread Club").await;
        open_conversation(&a, "# general").await;
        open_conversation(&b, "# general").await;
        say(&a, "Where shall we meet?").await;
        wait_contains(&b, "[data-testid=message-body]", "Where shall we meet?").await;

        // Alice starts a thread: the panel opens beside the channel, its composer focused.
        act_on(&a, "Where shall we meet?", "start-thread").await;
        find(&a, "[data-testid=thread-panel]").await;
        wait_contains(&a, "[data-testid=thread-root] [data-testid=message-body]", "Where shall we meet?").await;
        thread_composer(&a).await.send_keys(&format!("canary-thread-1 at the station{ENTER}")).await.unwrap();
        wait_contains(&a, REPLIES, "canary-thread-1 at the station").await;
        let focused: Value = a.execute("return document.activeElement.id;", vec![]).await.unwrap();
        assert_eq!(focused, json!("thread-composer"));

        // Bob sees the count arrive, unread; the channel itself holds no reply.
        wait_thread_summary(&b, "1 reply", true).await;
        let in_channel = texts(&b, "[data-testid=timeline] [data-testid=message-body]").await;
        assert!(!in_channel.iter().any(|t| t.contains("canary-thread-1")), "{in_channel:?}");
        find(&b, "[data-testid=timeline] [data-testid=thread-summary]").await.click().await.unwrap();
        wait_contains(&b, REPLIES, "canary-thread-1 at the station").await;
        // On a phone the thread takes the whole screen.
        let covers: Value = b
            .execute(
                "const r = document.querySelector('[data-testid=thread-panel]').getBoundingClientRect(); \
                 return r.width >= window.innerWidth - 1 && r.height >= window.innerHeight - 1;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(covers, json!(true), "the thread covers the phone's screen");
        wait_thread_summary(&b, "1 reply", false).await;
        thread_composer(&b).await.send_keys(&format!("canary-thread-2 see you there{ENTER}")).await.unwrap();
        wait_contains(&b, REPLIES, "canary-thread-2 see you there").await;

        // Alice's open thread shows Bob's reply at once, read; her channel counts two.
        wait_contains(&a, REPLIES, "canary-thread-2 see you there").await;
        wait_thread_summary(&a, "2 replies", false).await;
        screenshot(&a, "thread-desktop").await;
        screenshot(&b, "thread-phone").await;
        // Escape closes the thread; the channel's composer has the focus again.
        thread_composer(&a).await.send_keys("\u{E00C}").await.unwrap();
        let started = Instant::now();
        while !texts(&a, "[data-testid=thread-panel]").await.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "Escape did not close the thread");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let focused: Value = a.execute("return document.activeElement.id;", vec![]).await.unwrap();
        assert_eq!(focused, json!("composer"));

        // After a reload Bob's thread is read, and holds both replies in order.
        b.refresh().await.unwrap();
        composer_ready(&b).await;
        wait_thread_summary(&b, "2 replies", false).await;
        find(&b, "[data-testid=timeline] [data-testid=thread-summary]").await.click().await.unwrap();
        wait_contains(&b, REPLIES, "canary-thread-2").await;
        let replies = texts(&b, REPLIES).await;
        assert_eq!(replies.len(), 2, "{replies:?}");
        assert!(replies[0].contains("canary-thread-1") && replies[1].contains("canary-thread-2"), "{replies:?}");

        let files = files(&data);
        assert!(files.iter().any(|(_, bytes)| occurs(bytes, "Thread Club")), "the check reads the data");
        assert!(!files.iter().any(|(_, bytes)| occurs(bytes, "canary-thread")), "replies never reach the server");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disappearing_messages_vanish_everywhere_at_their_time() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    alice_and_bob_browsers(360, |a, b, url, data| async move {
        alice_and_bob_in(&a, &b, &url, "Vanish Club").await;
        open_conversation(&a, "# general").await;
        open_conversation(&b, "# general").await;
        say(&a, "canary-vanish-0 stays").await;

        // Alice sets a day; Bob, a member, sees it said (he may not change it).
        find(&a, "select[data-testid=disappearing]").await.select_by_value("86400").await.unwrap();
        wait_contains(&b, "[data-testid=disappearing]", "disappear 1 day after").await;
        assert!(texts(&b, "select[data-testid=disappearing]").await.is_empty(), "members do not choose");
        say(&a, "canary-vanish-1 goes").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-vanish-1 goes").await;
        let timed: Value = b
            .execute(
                "return [...document.querySelectorAll('[data-testid=message]')] \
                   .map(r => [r.textContent.includes('canary-vanish'), !!r.querySelector('[data-testid=expires]'), \
                              r.textContent.includes('canary-vanish-1')]) \
                   .filter(([mine]) => mine).map(([, timer, goes]) => timer === goes);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(timed, json!([true, true]), "only the message sent with the timer shows it");
        screenshot(&a, "disappearing-desktop").await;
        screenshot(&b, "disappearing-phone").await;

        // Its time comes: the server erases it and both screens forget it, leaving no tombstone.
        let db_url = format!("sqlite://{}?mode=rwc", data.join("chatalot.db").display());
        let conn = sea_orm::Database::connect(&db_url).await.unwrap();
        let moved = entity::message::Entity::update_many()
            .col_expr(
                entity::message::Column::ExpiresAt,
                Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
            )
            .filter(entity::message::Column::ExpiresAt.is_not_null())
            .exec(&conn)
            .await
            .unwrap();
        assert_eq!(moved.rows_affected, 1);
        for c in [&a, &b] {
            let started = Instant::now();
            loop {
                let now = bodies(c).await;
                if !now.iter().any(|t| t.contains("canary-vanish-1") || t == "Message deleted") {
                    assert!(now.iter().any(|t| t.contains("canary-vanish-0 stays")), "{now:?}");
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(20), "still shown: {now:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        b.refresh().await.unwrap();
        composer_ready(&b).await;
        wait_contains(&b, "[data-testid=message-body]", "canary-vanish-0 stays").await;
        assert!(!bodies(&b).await.iter().any(|t| t.contains("canary-vanish-1")));
        let kept: Vec<Vec<u8>> = entity::message::Entity::find()
            .filter(entity::message::Column::ExpiresAt.is_not_null())
            .all(&conn)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.ciphertext)
            .collect();
        assert_eq!(kept, [Vec::<u8>::new()], "its ciphertext is erased");
        conn.close().await.ok();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_keep_a_private_note_and_lead_back() {
    alice_and_bob_browsers(360, |a, b, url, data| async move {
        alice_and_bob_in(&a, &b, &url, "Mark Club").await;
        open_conversation(&a, "# general").await;
        open_conversation(&b, "# general").await;
        say(&b, "The meeting moved to Thursday").await;
        wait_contains(&a, "[data-testid=message-body]", "The meeting moved to Thursday").await;

        act_on(&a, "The meeting moved", "bookmark").await;
        find(&a, "[data-testid=bookmark-note]")
            .await
            .send_keys(&format!("canary-note-7 ask about the room{ENTER}"))
            .await
            .unwrap();
        wait_contains(&a, "[data-testid=bookmarked]", "canary-note-7 ask about the room").await;
        assert!(texts(&b, "[data-testid=bookmarked]").await.is_empty(), "a bookmark is Alice's alone");

        // Her start page lists it, with the note; "Open" leads to the message and marks it.
        a.goto(&format!("{url}/")).await.unwrap();
        wait_contains(&a, "[data-testid=bookmark-item]", "The meeting moved to Thursday").await;
        wait_contains(&a, "[data-testid=bookmark-item-note]", "canary-note-7").await;
        screenshot(&a, "bookmarks-start-page").await;
        find(&a, "[data-testid=bookmark-open]").await.click().await.unwrap();
        wait_text(&a, "[data-testid=channel-title]", "# general").await;
        let started = Instant::now();
        loop {
            let flashed: Value = a
                .execute(
                    "const r = document.querySelector('[data-testid=message][data-flash]'); \
                     return r ? r.textContent : null;",
                    vec![],
                )
                .await
                .unwrap();
            if flashed.as_str().is_some_and(|t| t.contains("The meeting moved")) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the bookmarked message was not shown: {flashed}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // The note changes; then the bookmark goes.
        wait_contains(&a, "[data-testid=bookmarked]", "canary-note-7").await;
        act_on(&a, "The meeting moved", "bookmark").await;
        let note = find(&a, "[data-testid=bookmark-note]").await;
        screenshot(&a, "bookmark-form").await;
        note.clear().await.unwrap();
        note.send_keys(&format!("canary-note-8 room 4{ENTER}")).await.unwrap();
        wait_contains(&a, "[data-testid=bookmarked]", "canary-note-8 room 4").await;
        act_on(&a, "The meeting moved", "bookmark").await;
        find(&a, "[data-testid=remove-bookmark]").await.click().await.unwrap();
        let started = Instant::now();
        while !texts(&a, "[data-testid=bookmarked]").await.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "the bookmark stayed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a.goto(&format!("{url}/")).await.unwrap();
        find(&a, "[data-testid=no-bookmarks]").await;

        let files = files(&data);
        assert!(files.iter().any(|(_, bytes)| occurs(bytes, "Mark Club")), "the check reads the data");
        assert!(!files.iter().any(|(_, bytes)| occurs(bytes, "canary-note")), "notes never reach the server");
    })
    .await;
}
