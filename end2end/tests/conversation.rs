//! The rest of a conversation in real browsers, on PostgreSQL when `TEST_DATABASE_URL` is set (the
//! chat test covers SQLite): a group made from the UI, a long history paged by scrolling up on a
//! 360 px phone, the member panel there, altered / truncated / moved ciphertext shown as
//! "cannot be read" with a reason, a server that swaps a device's keys (the warning), and a
//! keyboard-only pass. Afterwards none of the message text (edits included) is in the database or the
//! data directory.
//!
//! Run by `cargo xtask test` (it builds the server and the site and sets the paths).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use common::*;
use ed25519_dalek::{Signer, SigningKey};
use fantoccini::{Client, Locator};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set, Statement,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TAB: &str = "\u{E004}";

/// How many messages make a history longer than one page (50).
const LONG: usize = 60;

fn page_canary(n: usize) -> String {
    format!("canary-page-{n:03}")
}

/// The path of the page (`/c/{id}` in a conversation).
async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

/// The server lies about `username`'s device: it now lists other keys under the same device id,
/// validly signed by a key the server made up (a signature proves only that the keys belong
/// together, not to whom). Returns the device id. The payload mirrors
/// `app::model::keys::device_signing_payload`: if that changes, the client reports a forged key
/// instead and this test fails.
async fn swap_device_keys(db: &DatabaseConnection, username: &str) -> String {
    let user = entity::user::Entity::find()
        .filter(entity::user::Column::Username.eq(username))
        .one(db)
        .await
        .unwrap()
        .expect("user exists");
    // Their first device.
    let device = entity::device::Entity::find()
        .filter(entity::device::Column::UserId.eq(user.id))
        .order_by_asc(entity::device::Column::CreatedAt)
        .one(db)
        .await
        .unwrap()
        .expect("the browser registered its device");
    let signing = SigningKey::from_bytes(&[0x5a; 32]);
    let ed25519 = STANDARD_NO_PAD.encode(signing.verifying_key().as_bytes());
    let curve25519 = STANDARD_NO_PAD.encode([0x42u8; 32]);
    let payload = format!("chatalot-device-v1\n{}\n{}\n{curve25519}\n{ed25519}", user.id, device.device_id);
    let signature = STANDARD_NO_PAD.encode(signing.sign(payload.as_bytes()).to_bytes());
    let id = device.device_id.clone();
    let mut row = device.into_active_model();
    row.curve25519 = Set(curve25519);
    row.ed25519 = Set(ed25519);
    row.signature = Set(signature);
    row.update(db).await.unwrap();
    id
}

/// Every text and byte column of every table in PostgreSQL that contains `needle`, as `table.column`.
async fn postgres_hits(db: &DatabaseConnection, needle: &str) -> Vec<String> {
    let backend = db.get_database_backend();
    let columns = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'public'",
        ))
        .await
        .unwrap();
    assert!(columns.len() > 20, "the schema is there to search");
    let mut hits = vec![];
    for row in columns {
        let (table, column, kind): (String, String, String) =
            (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap(), row.try_get_by_index(2).unwrap());
        // Bytes are searched as bytes; everything else as its text form.
        let test = if kind == "bytea" {
            format!("position(convert_to('{needle}', 'UTF8') in \"{column}\") > 0")
        } else {
            format!("\"{column}\"::text LIKE '%{needle}%'")
        };
        let found = db
            .query_one_raw(Statement::from_string(backend, format!("SELECT count(*) FROM \"{table}\" WHERE {test}")))
            .await
            .unwrap()
            .unwrap();
        if found.try_get_by_index::<i64>(0).unwrap() > 0 {
            hits.push(format!("{table}.{column}"));
        }
    }
    hits
}

/// Presses Tab until the focused element matches `css` (at most `limit` times); returns how many
/// focused elements had no visible focus indicator on the way, by description.
async fn tab_to(c: &Client, css: &str, limit: usize) -> Vec<String> {
    let mut unmarked = vec![];
    for _ in 0..limit {
        c.active_element().await.unwrap().send_keys(TAB).await.unwrap();
        let state: Value = c
            .execute(
                "const e = document.activeElement; const s = getComputedStyle(e); \
                 const marked = (s.outlineStyle !== 'none' && s.outlineWidth !== '0px') || s.boxShadow !== 'none'; \
                 return { hit: e.matches(arguments[0]), marked, what: e.tagName + ' ' + (e.getAttribute('aria-label') || e.textContent.trim().slice(0, 30)) };",
                vec![json!(css)],
            )
            .await
            .unwrap();
        if state["marked"] != json!(true) {
            unmarked.push(state["what"].as_str().unwrap_or_default().to_owned());
        }
        if state["hit"] == json!(true) {
            return unmarked;
        }
    }
    panic!("Tab never reached {css:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_groups_forgeries_and_key_changes() {
    let db = TestDb::preferred().await;
    let server = start_server_on(&db).await;
    let database_url = db.url.clone();
    let (_driver, port) = start_chromedriver();
    let alice = browser(port, true, 1280, false).await;
    let bob = browser(port, true, 360, false).await;
    // Bob's second device, signed in later.
    let bob_desk = browser(port, true, 1280, false).await;
    let url = server.url.clone();
    let (a, b, b2) = (alice.clone(), bob.clone(), bob_desk.clone());
    let db_url = database_url.clone();
    let outcome = tokio::spawn(async move {
        register(&a, &url, "alice", "Alice").await;
        register(&b, &url, "bob", "Bob").await;
        create_community(&a, "Lantern Club", &[&b]).await;
        let general = path(&a).await;
        let leftover = find(&a, "#create-community-form input[name=name]").await.prop("value").await.unwrap();
        assert_eq!(leftover.as_deref(), Some(""), "a form that succeeded starts blank again");

        // Alice makes a group from the member panel; it opens at its own "general" channel, and it
        // appears in Bob's sidebar without a reload.
        fill_id(&a, "new-group-name", "Night Shift").await;
        submit(&a, "create-group-form").await;
        let night = wait_path_change(&a, &general).await;
        wait_text(&a, "[data-testid=channel-title]", "# general").await;
        assert!(night.starts_with("/c/"), "{night}");
        wait_contains(&b, "[data-testid=community]", "Night Shift").await;

        // A history longer than one page: Bob, on a phone, sees the newest page, and scrolling up
        // brings the rest, in order, down to the start of the conversation.
        let burst: String = (1..=LONG).map(|n| format!("{}{ENTER}", page_canary(n))).collect();
        composer_ready(&a).await.send_keys(&burst).await.unwrap();
        wait_sent(&a, &page_canary(LONG)).await;
        b.goto(&format!("{url}{night}")).await.unwrap();
        wait_contains(&b, "[data-testid=message-body]", &page_canary(LONG)).await;
        let first_page = bodies(&b).await;
        assert!(
            first_page.len() <= 50 && !first_page.iter().any(|t| t == &page_canary(1)),
            "one page at first: {} messages",
            first_page.len()
        );
        let started = Instant::now();
        loop {
            b.execute("document.querySelector('[data-testid=timeline]').scrollTop = 0;", vec![]).await.unwrap();
            if b.find(Locator::Css("[data-testid=timeline-start]")).await.is_ok() {
                break;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let state = b
                    .execute("const t = document.querySelector('[data-testid=timeline]'); return [t.scrollTop, t.scrollHeight, t.clientHeight, t.textContent.slice(0, 200)];", vec![])
                    .await
                    .unwrap();
                panic!("scrolling up never reached the start: {} messages, {state}", bodies(&b).await.len());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let all = bodies(&b).await;
        let expected: Vec<String> = (1..=LONG).map(page_canary).collect();
        assert_eq!(all, expected, "every message once, oldest first");
        screenshot(&b, "history-mobile").await;

        // The member panel on the phone: it opens over the conversation, fits the screen, shows
        // both people with their presence, and closes again.
        find(&b, "[data-testid=members-button]").await.click().await.unwrap();
        wait_contains(&b, "[data-testid=member]", "Alice").await;
        let fits: Value = b
            .execute(
                "const r = document.querySelector('[data-testid=member-panel]').getBoundingClientRect(); \
                 return r.left >= 0 && r.right <= window.innerWidth && r.width > 300 && r.height > 100;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(fits, json!(true), "the member panel fits a 360 px screen");
        assert_eq!(texts(&b, "[data-testid=member] [data-testid=presence]").await.len(), 2);
        screenshot(&b, "members-mobile").await;
        find(&b, "[data-testid=members-button]").await.click().await.unwrap();
        assert!(!find(&b, "[data-testid=member-panel]").await.is_displayed().await.unwrap());

        // What Bob typed but did not send waits for him in that conversation.
        composer_ready(&b).await.send_keys("canary-quebec half a thought").await.unwrap();
        open_conversation(&b, "# general").await;
        assert_eq!(composer_ready(&b).await.prop("value").await.unwrap().as_deref(), Some(""));
        b.back().await.unwrap();
        wait_text(&b, "[data-testid=channel-title]", "# general").await;
        assert_eq!(path(&b).await, night);
        let draft = composer_ready(&b).await;
        assert_eq!(draft.prop("value").await.unwrap().as_deref(), Some("canary-quebec half a thought"));
        draft.clear().await.unwrap();

        // Bob is editing a message when the community changes (Alice adds a channel): his sidebar
        // shows it, and the edit stays open with his text and the focus.
        say(&b, "canary-sierra first try").await;
        start_edit(&b, "canary-sierra first try", "canary-tango second").await;
        fill_id(&a, "new-channel-name", "later").await;
        submit(&a, "create-channel-form").await;
        wait_contains(&b, "[data-testid=channel]", "# later").await;
        assert_eq!(find(&a, "#new-channel-name").await.prop("value").await.unwrap().as_deref(), Some(""));
        let kept: Value = b
            .execute(
                "const e = document.querySelector('[data-testid=edit-box]'); \
                 return [!!e && document.activeElement === e, e && e.value];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(kept, json!([true, "canary-tango second"]), "the edit in progress survived");
        b.active_element().await.unwrap().send_keys(&format!(" thoughts{ENTER}")).await.unwrap();
        wait_contains(&a, "[data-testid=message-body]", "canary-tango second thoughts").await;

        // Ciphertext that is not what its sender wrote: a genuine message of #general posted into
        // Night Shift, the same with bytes changed, and cut short. Each shows as "could not
        // decrypt" with its reason, the genuine text is never shown, and later messages still work.
        open_conversation(&a, "# general").await;
        say(&a, "canary-lima only for general").await;
        let posted: Value = a
            .execute_async(
                "const [from, to, done] = arguments; \
                 const call = (fn, args) => fetch('/api/v1/' + fn, { method: 'POST', body: new URLSearchParams(args) }) \
                   .then(r => r.json()); \
                 call('messages/history', { channel_id: from }).then(async page => { \
                   const m = page.messages.find(m => m.seq === Math.max(...page.messages.map(m => m.seq))); \
                   const bytes = Uint8Array.from(atob(m.ciphertext), c => c.charCodeAt(0)); \
                   const flipped = bytes.slice(); flipped[Math.floor(flipped.length / 2)] ^= 0x55; \
                   const b64 = a => btoa(String.fromCharCode(...a)); \
                   const out = []; \
                   for (const [name, ct] of [['moved', m.ciphertext], ['flipped', b64(flipped)], ['cut', b64(bytes.slice(0, 20))]]) { \
                     const r = await call('messages/send', { channel_id: to, device: m.sender_device, \
                       client_txn: 'forged-' + name + '-' + Date.now(), ciphertext_b64: ct }); \
                     out.push(!!r.id); \
                   } \
                   done(out); \
                 }, e => done(String(e)));",
                vec![json!(general.trim_start_matches("/c/")), json!(night.trim_start_matches("/c/"))],
            )
            .await
            .unwrap();
        assert_eq!(posted, json!([true, true, true]), "the server relays what it cannot read");
        let started = Instant::now();
        let undecryptable = loop {
            let now: Vec<String> = texts(&b, "[data-unreadable]").await;
            if now.len() == 3 {
                break now;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{:?}", bodies(&b).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for line in &undecryptable {
            assert!(line.len() > 20, "a reason is given: {line:?}");
            assert!(!line.contains("session") && !line.contains("index"), "plain words: {line:?}");
        }
        assert!(
            undecryptable.iter().any(|l| l.contains("Waiting for Alice's device to share the key")),
            "the moved message has no key in this channel: {undecryptable:?}"
        );
        assert!(
            !texts(&b, "[data-unreadable=refused]").await.is_empty(),
            "the cut one is refused, not awaited: {undecryptable:?}"
        );
        assert!(!bodies(&b).await.iter().any(|t| t.contains("canary-lima")), "a moved message is never shown");
        screenshot(&b, "undecryptable-mobile").await;
        b.goto(&format!("{url}{general}")).await.unwrap();
        wait_contains(&b, "[data-testid=message-body]", "canary-lima only for general").await;
        say(&b, "canary-november still fine").await;
        wait_contains(&a, "[data-testid=message-body]", "canary-november still fine").await;
        start_edit(&b, "canary-november still fine", &format!("canary-romeo edited{ENTER}")).await;
        wait_contains(&a, "[data-testid=message-body]", "canary-romeo edited").await;

        // Bob signs in on a second browser: with two devices, verifying him starts with picking the
        // one in front of him (each shows its id on its home page). Only that one is asked.
        let second = sign_in(&b2, &url, "bob").await;
        member_action(&a, "Bob", "verify").await;
        let pick = find(&a, &format!("[data-testid=verify-device][data-device='{second}']")).await;
        assert_eq!(texts(&a, "[data-testid=verify-device]").await.len(), 2, "both of Bob's devices are offered");
        screenshot(&a, "verify-choose").await;
        pick.click().await.unwrap();
        find(&b2, "[data-testid=verify-accept]").await.click().await.unwrap();
        assert_eq!(text(&a, "[data-testid=sas-numbers]").await, text(&b2, "[data-testid=sas-numbers]").await);
        find(&a, "[data-testid=sas-match]").await.click().await.unwrap();
        find(&b2, "[data-testid=sas-match]").await.click().await.unwrap();
        find(&a, "[data-testid=verify-done]").await;
        find(&b2, "[data-testid=verify-done]").await;
        assert!(b.find(Locator::Css("[data-testid=verify-dialog]")).await.is_err(), "Bob's phone was not asked");

        // A private group: Alice makes it (only she is in), adds Bob from its member panel, and
        // Bob, who could not see it before, reads what is said there from then on.
        fill_id(&a, "new-group-name", "Staff").await;
        find(&a, "#create-group-form [data-testid=group-private]").await.click().await.unwrap();
        submit(&a, "create-group-form").await;
        wait_contains(&a, "[data-testid=community]", "Staff · private").await;
        let staff = wait_path_change(&a, &general).await;
        assert!(!texts(&b, "[data-testid=community]").await.concat().contains("Staff"), "Bob cannot see it yet");
        find(&a, "[data-testid=add-people]").await.click().await.unwrap();
        find(&a, "[data-testid=add-member-choice]").await.select_by_label("Bob").await.unwrap();
        find(&a, "[data-testid=add-member]").await.click().await.unwrap();
        wait_contains(&a, "[data-testid=member]", "Bob").await;
        wait_contains(&b, "[data-testid=community]", "Staff").await;
        say(&a, "canary-victor staff only").await;
        b.goto(&format!("{url}{staff}")).await.unwrap();
        wait_contains(&b, "[data-testid=message-body]", "canary-victor staff only").await;
        for who in [&a, &b] {
            who.goto(&format!("{url}{general}")).await.unwrap();
            wait_text(who, "[data-testid=channel-title]", "# general").await;
            // Started: the device is registered (before the server's lie below).
            composer_ready(who).await;
        }

        // The server now lists other keys for Bob's phone. The next time Alice's browser looks at
        // Bob's devices (to send), it warns, names the device, and sends the room key only to
        // Bob's other device: the message goes out, the phone (whose real key Alice no longer
        // believes) cannot open it, and neither could whoever holds the new key.
        let db = Database::connect(&db_url).await.unwrap();
        let device_id = swap_device_keys(&db, "bob").await;
        db.close().await.ok();
        say(&a, "canary-oscar after the swap").await;
        wait_contains(&a, "[data-testid=key-warning]", &device_id).await;
        wait_contains(&a, "[data-testid=key-warning]", "changed").await;
        screenshot(&a, "key-warning").await;
        b2.goto(&format!("{url}{general}")).await.unwrap();
        wait_contains(&b2, "[data-testid=message-body]", "canary-oscar after the swap").await;
        wait_contains(&b, "[data-unreadable]", "Waiting for Alice's device").await;
        assert!(!bodies(&b).await.iter().any(|t| t.contains("canary-oscar")));
        // The phone, reloaded, finds the server listing other keys for itself: it says so, and
        // sends nothing.
        b.refresh().await.unwrap();
        wait_contains(&b, "[role=alert]", "other keys for this very device").await;
        assert_eq!(find(&b, "[data-testid=composer]").await.prop("disabled").await.unwrap().as_deref(), Some("true"));
        // Accepting the new key (as if Bob had set his phone up again) ends the warning; the
        // made-up key's one-time keys are not signed by it, so it still gets nothing.
        find(&a, "[data-testid=accept-key]").await.click().await.unwrap();
        let started = Instant::now();
        while a.find(Locator::Css("[data-testid=accept-key]")).await.is_ok() {
            assert!(started.elapsed() < Duration::from_secs(10), "the warning stayed after accepting");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        say(&a, "canary-uniform after accepting").await;
        wait_contains(&a, "[data-testid=key-warning]", "did not sign").await;
        wait_contains(&b2, "[data-testid=message-body]", "canary-uniform after accepting").await;

        // The way out on the phone: a new device for this browser. The old id leaves the account,
        // what the phone read before stays readable, and it writes and reads again.
        find(&b, "[data-testid=start-new-device]").await.click().await.unwrap();
        wait_path(&b, &general).await;
        composer_ready(&b).await;
        wait_contains(&b, "[data-testid=message-body]", "canary-romeo edited").await;
        say(&b, "canary-whiskey from the new phone").await;
        wait_contains(&a, "[data-testid=message-body]", "canary-whiskey from the new phone").await;
        say(&a, "canary-xray to the new phone").await;
        wait_contains(&b, "[data-testid=message-body]", "canary-xray to the new phone").await;
        let db = Database::connect(&db_url).await.unwrap();
        let listed: Vec<String> = entity::device::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.device_id)
            .collect();
        db.close().await.ok();
        assert!(!listed.contains(&device_id), "the re-keyed device left the account: {listed:?}");

        // Keyboard only: from a fresh load, Tab reaches the sidebar, Enter opens a conversation,
        // Tab reaches the composer, Enter sends; every stop on the way shows where the focus is.
        a.goto(&format!("{url}/")).await.unwrap();
        find(&a, "[data-testid=channel] a").await;
        let mut unmarked = tab_to(&a, "[data-testid=channel] a", 40).await;
        a.active_element().await.unwrap().send_keys(ENTER).await.unwrap();
        find(&a, "[data-testid=channel-title]").await;
        composer_ready(&a).await;
        unmarked.extend(tab_to(&a, "[data-testid=composer]", 80).await);
        a.active_element().await.unwrap().send_keys(&format!("canary-papa by keyboard{ENTER}")).await.unwrap();
        wait_contains(&a, "[data-testid=message-body]", "canary-papa by keyboard").await;
        assert!(unmarked.is_empty(), "focus is invisible on: {unmarked:?}");
    })
    .await;
    for browser in [alice, bob, bob_desk] {
        let _ = browser.close().await;
    }
    if let Err(e) = outcome {
        drop(server);
        db.drop().await;
        std::panic::resume_unwind(e.into_panic());
    }

    // None of the message text is stored anywhere the server keeps things: every message of this
    // test starts with "canary-". The community's name (not encrypted) is found, so the search works.
    let everything = files(&server.data);
    if db.is_postgres() {
        let db = Database::connect(&db.url).await.unwrap();
        assert!(!postgres_hits(&db, "Lantern Club").await.is_empty(), "positive control not found in PostgreSQL");
        // Byte columns are searched too: the envelope's field names are there, its text is not.
        let envelopes = postgres_hits(&db, "session_id").await;
        assert!(envelopes.contains(&"messages.ciphertext".to_owned()), "byte search control: {envelopes:?}");
        assert_eq!(postgres_hits(&db, "canary-").await, Vec::<String>::new(), "message text in PostgreSQL");
        db.close().await.ok();
    } else {
        assert!(everything.iter().any(|(_, bytes)| occurs(bytes, "Lantern Club")), "positive control not found");
    }
    for (file, bytes) in &everything {
        assert!(!occurs(bytes, "canary-"), "message text found in {}", file.display());
    }
    drop(server);
    db.drop().await;
}
