//! End-to-end encrypted conversations between real browsers: three people, each in their own
//! headless Chromium profile (their own device keys in their own IndexedDB), against the real
//! server. A community channel, a DM and a group DM; typing, presence, edit, delete, reply, reload;
//! a kick; and afterwards, none of the message text anywhere in the server's data directory.
//!
//! Run by `cargo xtask test` (it builds the server and the site and sets the paths).

mod common;

use common::*;
use fantoccini::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Keys as WebDriver spells them.
const ENTER: &str = "\u{E007}";
const SHIFT: &str = "\u{E008}";
const RELEASE: &str = "\u{E000}";

async fn register(c: &Client, url: &str, username: &str, display_name: &str) {
    c.goto(&format!("{url}/register")).await.unwrap();
    hydrated(c).await;
    fill(c, "username", username).await;
    fill(c, "display_name", display_name).await;
    fill(c, "password", PASSWORD).await;
    submit(c, "register-form").await;
    wait_path(c, "/welcome").await;
    find(c, "[data-testid=continue]").await.click().await.unwrap();
    wait_path(c, "/").await;
    // The browser became an encryption device before anyone shares keys with it.
    wait_prefix(c, "[data-testid=device-status]", "This device: ").await;
}

/// The text of every element matching `css`.
async fn texts(c: &Client, css: &str) -> Vec<String> {
    let found: Value = c
        .execute("return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);", vec![json!(css)])
        .await
        .unwrap();
    found.as_array().unwrap().iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect()
}

/// Waits until some element matching `css` contains `needle`.
async fn wait_contains(c: &Client, css: &str, needle: &str) {
    let started = Instant::now();
    loop {
        let now = texts(c, css).await;
        if now.iter().any(|t| t.contains(needle)) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{css}: nothing contains {needle:?}; have {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens a conversation from the sidebar (on a phone, through the menu).
async fn open_conversation(c: &Client, label: &str) {
    let narrow: Value = c.execute("return window.innerWidth < 768;", vec![]).await.unwrap();
    if narrow == json!(true) {
        find(c, "[data-testid=menu-button]").await.click().await.unwrap();
    }
    let started = Instant::now();
    loop {
        // The label exactly (the link's text also holds its unread count).
        let clicked: Value = c
            .execute(
                "const s = [...document.querySelectorAll('[data-testid=channel] a > span:first-child')]                    .find(s => s.textContent.trim() === arguments[0]); if (s) s.closest('a').click(); return !!s;",
                vec![json!(label)],
            )
            .await
            .unwrap();
        if clicked == json!(true) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no conversation {label:?} in the sidebar");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_text(c, "[data-testid=channel-title]", label).await;
}

async fn composer_ready(c: &Client) -> fantoccini::elements::Element {
    let started = Instant::now();
    loop {
        let box_ = find(c, "[data-testid=composer]").await;
        if box_.prop("disabled").await.unwrap().as_deref() == Some("false") {
            return box_;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the composer never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types a message and presses Enter.
async fn say(c: &Client, text: &str) {
    composer_ready(c).await.send_keys(&format!("{text}{ENTER}")).await.unwrap();
    wait_contains(c, "[data-testid=message-body]", text).await;
}

async fn bodies(c: &Client) -> Vec<String> {
    texts(c, "[data-testid=message-body]").await
}

/// The message row (as found by its text) and clicks one of its buttons.
async fn act_on(c: &Client, message: &str, button: &str) {
    let clicked: Value = c
        .execute(
            "const row = [...document.querySelectorAll('[data-testid=message]')] \
               .find(r => r.querySelector('[data-testid=message-body]')?.textContent.includes(arguments[0])); \
             const b = row && row.querySelector(`[data-testid=${arguments[1]}]`); if (b) b.click(); return !!b;",
            vec![json!(message), json!(button)],
        )
        .await
        .unwrap();
    assert_eq!(clicked, json!(true), "no {button} button on {message:?}");
}

/// Every file under `dir`, with its path.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

fn occurs(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

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
        fill(&a, "name", "Canary Club").await;
        submit(&a, "create-community-form").await;
        open_conversation(&a, "# general").await;
        find(&a, "#community-invite-form button").await.click().await.unwrap();
        let code = text(&a, "[data-testid=community-invite-code]").await;
        for who in [&b, &c] {
            if who.execute("return window.innerWidth < 768;", vec![]).await.unwrap() == json!(true) {
                find(who, "[data-testid=menu-button]").await.click().await.unwrap();
            }
            fill(who, "code", &code).await;
            submit(who, "join-form").await;
            wait_contains(who, "[data-testid=community] h2", "Canary Club").await;
        }
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
        assert!(
            find(&a, "[data-testid=message]").await.attr("data-lock").await.unwrap().as_deref() == Some("encrypted"),
            "messages show their lock state"
        );
        screenshot(&a, "chat-channel-desktop").await;

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
        act_on(&a, "canary-alpha hello Bob", "edit").await;
        let edit = find(&a, "[data-testid=edit-box]").await;
        edit.clear().await.unwrap();
        edit.send_keys(&format!("canary-delta edited hello{ENTER}")).await.unwrap();
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
        assert!(!bodies(&b).await.iter().any(|t| t.contains("Could not decrypt")), "{:?}", bodies(&b).await);

        // A DM: Alice starts it from the member list; it appears in Bob's sidebar.
        wait_contains(&a, "[data-testid=member]", "Bob").await;
        let dm_button: Value = a
            .execute(
                "const m = [...document.querySelectorAll('[data-testid=member]')].find(m => m.textContent.includes('Bob')); \
                 m.querySelector('[data-testid=message-member]').click(); return true;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(dm_button, json!(true));
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
        a.execute(
            "const m = [...document.querySelectorAll('[data-testid=member]')].find(m => m.textContent.includes('Bob')); \
             m.querySelector('[data-testid=verify]').click();",
            vec![],
        )
        .await
        .unwrap();
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
        say(&b, "canary-kilo from a verified device").await;
        wait_contains(&a, "[data-testid=message-body]", "canary-kilo").await;
        let lock: Value = a
            .execute(
                "const r = [...document.querySelectorAll('[data-testid=message]')].find(r => r.textContent.includes('canary-kilo')); \
                 return r.dataset.lock;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(lock, json!("verified"));

        // Alice kicks Carol: Carol's open channel says so, and nothing sent afterwards reaches her.
        open_conversation(&c, "# general").await;
        open_conversation(&a, "# general").await;
        a.execute(
            "const m = [...document.querySelectorAll('[data-testid=member]')].find(m => m.textContent.includes('Carol')); \
             m.querySelector('[data-testid=kick]').click();",
            vec![],
        )
        .await
        .unwrap();
        // The open channel says so (then the sidebar drops it and the page says it is gone).
        find(&c, "[data-testid=removed], [data-testid=no-channel]").await;
        say(&a, "canary-juliet after the kick").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-juliet after the kick").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!bodies(&c).await.iter().any(|t| t.contains("canary-juliet")), "{:?}", bodies(&c).await);
        c.refresh().await.unwrap();
        find(&c, "[data-testid=no-channel]").await;
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
            "line two",
        ] {
            assert!(!occurs(bytes, canary), "{canary:?} found in {}", path.display());
        }
    }
    drop(server);
}
