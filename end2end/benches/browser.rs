//! Browser figures, printed and never asserted (`cargo xtask bench` runs this against the release
//! server and site, `CHATALOT_SERVER_BIN` and `CHATALOT_SITE_DIR`):
//! - first load: the bytes a new visitor's browser transfers for the sign-in and register pages and
//!   for the chat page, and the time until the chat is usable on a slow phone (1.6 Mbit/s down,
//!   750 kbit/s up, 150 ms round trip, the CPU 4× slower: Lighthouse's "slow 4G" through the
//!   DevTools protocol), with an empty cache and with the app's files cached;
//! - felt latency: from Enter in one browser to the message shown decrypted in another, and to
//!   my own message shown in mine, with where the time goes (encrypt, request, server and fan-out,
//!   decrypt, render);
//! - a long conversation: 1,000 messages with Markdown (code blocks, quotes, lists, links) and 100
//!   reactions, opened in a fresh page: when the newest page is shown, and how long decrypting and
//!   rendering all 1,000 takes as the reader scrolls up to the beginning.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use fantoccini::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Messages in the channel the chat page opens (all decrypted before it counts as usable).
const HISTORY: usize = 30;
/// Page loads per case (the median is printed with the others).
const LOADS: usize = 3;
/// Messages timed between the two browsers (after a few that set up the session).
const MESSAGES: usize = 40;
const WARM_UP: usize = 3;
/// Between the last keystroke and Enter (a quick typist's pause).
const TYPED_BEFORE_ENTER_MS: u64 = 200;
/// Messages in the long conversation, and how many of the newest get a reaction.
const LONG: usize = 1_000;
const REACTED: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The long conversation is written faster than a person's rate limit allows.
    let db = TestDb::sqlite();
    let server = start_server_with(&db, &[("MESSAGES_PER_MINUTE", "100000")]).await;
    let (_driver, port) = start_chromedriver();
    let url = server.url.clone();
    println!("browser bench: {} against {url}", std::env::var("CHATALOT_SERVER_BIN").unwrap_or_default());
    println!("machine load before: {}", load_average());

    // The pages someone who signs in sees first, each in a fresh browser (nothing cached).
    for path in ["/login", "/register"] {
        let fresh = browser(port, true, 1280, false).await;
        fresh.goto(&format!("{url}{path}")).await.unwrap();
        let (total, parts) = transferred(&fresh).await;
        println!("first load {path}: {total} bytes transferred ({parts})");
        let _ = fresh.close().await;
    }

    let alice = browser(port, true, 1280, false).await;
    let bob = browser(port, true, 1280, false).await;
    register(&alice, &url, "alice", "Alice").await;
    register(&bob, &url, "bob", "Bob").await;
    create_community(&alice, "Bench club", &[&bob]).await;
    open_conversation(&bob, "# general").await;
    for i in 0..HISTORY {
        say(&alice, &format!("history message {i}")).await;
    }
    let chat = alice.current_url().await.unwrap().to_string();
    let last = format!("history message {}", HISTORY - 1);

    first_load(&alice, &chat, &last).await;
    felt_latency(&alice, &bob).await;
    long_conversation(&alice, &bob).await;

    println!("machine load after: {}", load_average());
    for c in [alice, bob] {
        let _ = c.close().await;
    }
    drop(server);
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Bytes the page transferred (compressed, headers included): its document and every resource.
async fn transferred(c: &Client) -> (u64, String) {
    let found = c
        .execute(
            "const nav = performance.getEntriesByType('navigation')[0]; \
             const res = performance.getEntriesByType('resource'); \
             return [nav.transferSize, res.map(r => [r.name.split('/').pop().split('?')[0], r.transferSize])];",
            vec![],
        )
        .await
        .unwrap();
    let mut total = found[0].as_u64().unwrap_or(0);
    let mut parts = vec![format!("document {total}")];
    for r in found[1].as_array().into_iter().flatten() {
        let size = r[1].as_u64().unwrap_or(0);
        total += size;
        parts.push(format!("{} {size}", r[0].as_str().unwrap_or("?")));
    }
    (total, parts.join(", "))
}

/// Marks, in every page `c` loads next, the moment the chat is usable: the composer takes text
/// and the newest message (`last`) is shown decrypted.
async fn watch_usable(c: &Client, last: &str) -> Value {
    let source = format!(
        "window.__usable = null; \
         const check = () => {{ \
           const box = document.querySelector('[data-testid=composer]'); \
           const shown = [...document.querySelectorAll('[data-testid=message-body]')].some(e => e.textContent === {last}); \
           if (box && !box.disabled && shown) window.__usable = performance.now(); else requestAnimationFrame(check); \
         }}; \
         requestAnimationFrame(check);",
        last = json!(last)
    );
    cdp(c, "Page.enable", json!({})).await;
    cdp(c, "Page.addScriptToEvaluateOnNewDocument", json!({ "source": source })).await["identifier"].clone()
}

async fn first_load(c: &Client, chat: &str, last: &str) {
    let watcher = watch_usable(c, last).await;
    network(c, false, 0).await;
    // Lighthouse's "slow 4G": 150 ms round trip, 1.6 Mbit/s down, 750 kbit/s up; a 4× slower CPU.
    let slow = json!({ "offline": false, "latency": 150, "downloadThroughput": 200_000, "uploadThroughput": 93_750 });
    for (case, clear) in [("empty cache", true), ("app files cached", false)] {
        let mut times = Vec::new();
        for _ in 0..LOADS {
            if clear {
                cdp(c, "Network.clearBrowserCache", json!({})).await;
            }
            cdp(c, "Network.emulateNetworkConditions", slow.clone()).await;
            cdp(c, "Emulation.setCPUThrottlingRate", json!({ "rate": 4 })).await;
            c.goto(chat).await.unwrap();
            let started = Instant::now();
            let usable = loop {
                let at = c.execute("return window.__usable;", vec![]).await.unwrap();
                if let Some(ms) = at.as_f64() {
                    break ms;
                }
                assert!(started.elapsed() < Duration::from_secs(120), "the chat never became usable");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let paint = c
                .execute("return performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null;", vec![])
                .await
                .unwrap();
            let (bytes, parts) = transferred(c).await;
            cdp(c, "Emulation.setCPUThrottlingRate", json!({ "rate": 1 })).await;
            network(c, false, 0).await;
            println!(
                "chat page, slow 4G + 4x CPU, {case}: usable at {usable:.0} ms, first paint {:.0} ms, {bytes} bytes ({parts})",
                paint.as_f64().unwrap_or(f64::NAN)
            );
            times.push(usable);
        }
        times.sort_by(f64::total_cmp);
        println!("chat page, slow 4G + 4x CPU, {case}: median time to usable {:.0} ms", times[times.len() / 2]);
    }
    cdp(c, "Page.removeScriptToEvaluateOnNewDocument", json!({ "identifier": watcher })).await;
}

/// Records, in `c`'s page, when each message `felt-N` first appears in the timeline.
async fn watch_arrivals(c: &Client) {
    c.execute(
        "window.__seen = {}; window.__chatalot_trace = []; \
         new MutationObserver(() => { \
           const now = performance.timeOrigin + performance.now(); \
           for (const e of document.querySelectorAll('[data-testid=message-body]')) { \
             const m = /^felt-(\\d+)$/.exec(e.textContent); \
             if (m && !(m[1] in window.__seen)) window.__seen[m[1]] = now; \
           } \
         }).observe(document.body, { subtree: true, childList: true, characterData: true }); return 1;",
        vec![],
    )
    .await
    .unwrap();
}

async fn felt_latency(a: &Client, b: &Client) {
    open_conversation(a, "# general").await;
    composer_ready(a).await;
    watch_arrivals(a).await;
    watch_arrivals(b).await;
    let mut pressed = Vec::new();
    for i in 0..WARM_UP + MESSAGES {
        // Typed as a person does (the composer hears the input), then Enter a moment later; the
        // time is taken just before Enter.
        a.execute(
            "const box = document.querySelector('[data-testid=composer]'); \
             box.value = arguments[0]; box.dispatchEvent(new Event('input', { bubbles: true })); return 1;",
            vec![json!(format!("felt-{i}"))],
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(TYPED_BEFORE_ENTER_MS)).await;
        let t0 = a
            .execute(
                "const box = document.querySelector('[data-testid=composer]'); \
                 const t0 = performance.timeOrigin + performance.now(); \
                 box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true })); \
                 return t0;",
                vec![],
            )
            .await
            .unwrap();
        pressed.push(t0.as_f64().unwrap());
        let started = Instant::now();
        while b.execute("return String(arguments[0]) in window.__seen;", vec![json!(i)]).await.unwrap() != json!(true) {
            assert!(started.elapsed() < Duration::from_secs(20), "felt-{i} never reached the other browser");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Its confirmation back in the sender's browser, before the next.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let seen = |c: &Client| {
        let c = c.clone();
        async move { c.execute("return [window.__seen, window.__chatalot_trace];", vec![]).await.unwrap() }
    };
    let (sent, got) = (seen(a).await, seen(b).await);
    let steps = |trace: &Value, name: &str| -> Vec<(f64, f64)> {
        trace
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s[0] == json!(name))
            .map(|s| (s[1].as_f64().unwrap_or(f64::NAN), s[2].as_f64().unwrap_or(f64::NAN)))
            .collect()
    };
    let (encrypt, request) = (steps(&sent[1], "encrypt"), steps(&sent[1], "request"));
    let (receive, decrypt) = (steps(&got[1], "receive"), steps(&got[1], "decrypt"));
    let at = |v: &Value, i: usize| v[0][i.to_string()].as_f64().unwrap_or(f64::NAN);
    let (mut total, mut own) = (Vec::new(), Vec::new());
    let mut parts: [Vec<f64>; 6] = Default::default();
    // One message at a time: the n-th traced step of each kind belongs to the n-th message.
    let nth = |list: &[(f64, f64)], i: usize| list.get(i).copied().unwrap_or((f64::NAN, f64::NAN));
    for (i, &t0) in pressed.iter().enumerate().skip(WARM_UP) {
        total.push(at(&got, i) - t0);
        own.push(at(&sent, i) - t0);
        let (e, r, rc, d) = (nth(&encrypt, i), nth(&request, i), nth(&receive, i), nth(&decrypt, i));
        parts[0].push(e.0 - t0);
        parts[1].push(e.1 - e.0);
        parts[2].push(r.1 - r.0);
        parts[3].push(rc.0 - r.0);
        parts[4].push(d.1 - d.0);
        parts[5].push(at(&got, i) - d.1);
    }
    println!(
        "traced steps: {} encrypt, {} request (sender); {} receive, {} decrypt (other browser)",
        encrypt.len(),
        request.len(),
        receive.len(),
        decrypt.len()
    );
    println!(
        "felt latency over {MESSAGES} messages, Enter → shown decrypted in the other browser: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&total, 50.0),
        pct(&total, 99.0),
        pct(&total, 100.0)
    );
    println!("Enter → my own message shown: p50 {:.1} ms, p99 {:.1} ms", pct(&own, 50.0), pct(&own, 99.0));
    let names = [
        "Enter → encryption starts",
        "encrypt",
        "request (sender's round trip)",
        "request sent → other browser receives (server, fan-out)",
        "decrypt",
        "decrypted → in the other browser's page",
    ];
    for (name, values) in names.iter().zip(&parts) {
        println!("  {name}: p50 {:.1} ms, p99 {:.1} ms", pct(values, 50.0), pct(values, 99.0));
    }
}

/// The n-th message of the long conversation: Markdown of several kinds, as people write.
fn long_message(i: usize) -> String {
    match i % 5 {
        0 => format!("message {i}: **bold**, _italic_, `code` and a link https://example.org/{i}"),
        1 => format!("message {i}\n```rust\nfn main() {{\n    println!(\"{i}\");\n}}\n```"),
        2 => format!("message {i}\n> quoted\n- one\n- two"),
        3 => format!("message {i}: ||a spoiler|| and ~~struck~~"),
        _ => format!("message {i}, plain text of a usual length for a chat message, nothing more"),
    }
}

/// Alice writes `LONG` messages (and reacts to `REACTED`) in her DM with Bob; Bob opens it in a
/// fresh page and scrolls up to the beginning.
async fn long_conversation(a: &Client, b: &Client) {
    open_conversation(a, "# general").await;
    find(a, "[data-testid=member]").await;
    member_action(a, "Bob", "message-member").await;
    wait_text(a, "[data-testid=channel-title]", "Bob").await;
    composer_ready(a).await;
    let texts: Vec<String> = (0..LONG).map(long_message).collect();
    let started = Instant::now();
    // Typed and sent one after the other without waiting (the app sends them in order).
    a.execute(
        "const box = document.querySelector('[data-testid=composer]'); \
         for (const text of arguments[0]) { \
           box.value = text; box.dispatchEvent(new Event('input', { bubbles: true })); \
           box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true })); \
         } return 1;",
        vec![json!(texts)],
    )
    .await
    .unwrap();
    loop {
        let done = a
            .execute(
                "return document.querySelectorAll('[data-lock=sending]').length === 0 && \
                   [...document.querySelectorAll('[data-testid=message-body]')].some(e => e.textContent.startsWith(arguments[0]));",
                vec![json!(format!("message {}", LONG - 1))],
            )
            .await
            .unwrap();
        if done == json!(true) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the long conversation was never all sent");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "long conversation: {LONG} messages encrypted and sent from one browser in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for i in LONG - REACTED..LONG {
        // "React", then the first quick reaction, on the row whose text is "message i…".
        for button in ["react", "pick-reaction"] {
            a.execute(
                "const re = new RegExp('^message ' + arguments[0] + '[^0-9]'); \
                 const row = [...document.querySelectorAll('[data-testid=message]')] \
                   .find(r => re.test(r.querySelector('[data-testid=message-body]')?.textContent ?? '')); \
                 row.querySelector(`[data-testid=${arguments[1]}]`).click(); return 1;",
                vec![json!(i), json!(button)],
            )
            .await
            .unwrap();
        }
    }
    let started = Instant::now();
    while a.execute("return document.querySelectorAll('[data-testid=reaction]').length;", vec![]).await.unwrap()
        != json!(REACTED)
    {
        assert!(started.elapsed() < Duration::from_secs(120), "the reactions were never all shown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dm = a.current_url().await.unwrap().to_string();

    // Bob: a fresh page on the conversation, then up to its beginning.
    b.goto(&dm).await.unwrap();
    let newest = format!("message {}", LONG - 1);
    let started = Instant::now();
    let shown_at = loop {
        let at = b
            .execute(
                "return [...document.querySelectorAll('[data-testid=message-body]')].some(e => e.textContent.startsWith(arguments[0])) \
                   ? performance.now() : null;",
                vec![json!(newest)],
            )
            .await
            .unwrap();
        if let Some(ms) = at.as_f64() {
            break ms;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the newest message was never shown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let scrolled = Instant::now();
    let rows = loop {
        let state = b
            .execute(
                "const el = document.querySelector('[data-testid=timeline]'); el.scrollTop = 0; \
                 el.dispatchEvent(new Event('scroll')); \
                 return [document.querySelectorAll('[data-testid=message]').length, \
                         !!document.querySelector('[data-testid=timeline-start]')];",
                vec![],
            )
            .await
            .unwrap();
        if state[1] == json!(true) {
            break state[0].as_u64().unwrap_or(0);
        }
        assert!(scrolled.elapsed() < Duration::from_secs(300), "the beginning was never reached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let all = scrolled.elapsed().as_secs_f64() * 1_000.0;
    let heap =
        b.execute("return performance.memory ? performance.memory.usedJSHeapSize : null;", vec![]).await.unwrap();
    println!(
        "long conversation ({rows} messages, Markdown, {REACTED} reactions), fresh page: newest page shown at {shown_at:.0} ms; \
         scrolling up to the beginning decrypted and rendered the rest in {all:.0} ms ({:.1} ms per 100 messages); JS heap {:.1} MB",
        all / (rows.max(1) as f64) * 100.0,
        heap.as_f64().unwrap_or(f64::NAN) / 1e6
    );
}

fn pct(values: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}
