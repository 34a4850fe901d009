//! The timeline as a newcomer meets it, in real browsers (Alice on a 1280 px screen in the light
//! theme, Bob on a 360 px phone in the dark one): the front page for visitors, how many messages
//! fit on a screen (comfortable and compact), avatars, days named as people say them, actions on
//! hover / focus / tap, the view following the conversation, "jump to latest", the "new messages"
//! divider, Markdown rendered as DOM nodes (markup and script links stay text), the unread count
//! in the tab title, the skip link, the notice without JavaScript, text
//! contrast in both themes, and no error in the browser console from sign-in to sign-out.
//!
//! Run by `cargo xtask test` (it builds the server and the site and sets the paths).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use fantoccini::{
    Client,
    actions::{InputSource, MouseActions, PointerAction},
};
use sea_orm::{ActiveModelTrait, Database, EntityTrait, IntoActiveModel, Set};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TAB: &str = "\u{E004}";
const ARROW_DOWN: &str = "\u{E015}";

/// Waits until exactly `n` elements match `css`.
async fn wait_count(c: &Client, css: &str, n: usize) {
    let started = Instant::now();
    loop {
        let now = texts(c, css).await.len();
        if now == n {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{css}: {now} elements, want {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Records every console error, uncaught exception and unhandled rejection (a Rust panic in the
/// app is printed as a console error) in `localStorage`, from the first script of every page on.
const ERROR_TRAP: &str = "(() => { const keep = (what) => { try { const all = JSON.parse(localStorage.getItem('test-errors') || '[]'); \
    all.push(String(what).slice(0, 300)); localStorage.setItem('test-errors', JSON.stringify(all)); } catch (_) {} }; \
    const error = console.error.bind(console); console.error = (...a) => { keep(a.join(' ')); error(...a); }; \
    addEventListener('error', e => keep('uncaught: ' + e.message)); \
    addEventListener('unhandledrejection', e => keep('unhandled: ' + e.reason)); })();";

async fn trap_errors(c: &Client) {
    cdp(c, "Page.enable", json!({})).await;
    cdp(c, "Page.addScriptToEvaluateOnNewDocument", json!({ "source": ERROR_TRAP })).await;
}

async fn console_errors(c: &Client) -> Vec<String> {
    let found: Value =
        c.execute("return JSON.parse(localStorage.getItem('test-errors') || '[]');", vec![]).await.unwrap();
    found.as_array().unwrap().iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect()
}

/// Text on the page whose contrast with what is behind it is under WCAG AA (4.5:1, or 3:1 for large
/// text), as "text (ratio)". Colours are read by painting them (any CSS colour syntax); layers with
/// transparency are blended; hidden, transparent, disabled and screen-reader-only text is skipped.
const CONTRAST: &str = r#"
const ctx = Object.assign(document.createElement('canvas'), { width: 1, height: 1 }).getContext('2d', { willReadFrequently: true });
const rgba = (css) => { ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = '#000'; ctx.fillStyle = css; ctx.fillRect(0, 0, 1, 1);
  const d = ctx.getImageData(0, 0, 1, 1).data; return [d[0], d[1], d[2], d[3] / 255]; };
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const behind = (el) => { const layers = [];
  for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
  let base = matchMedia('(prefers-color-scheme: dark)').matches ? [0, 0, 0] : [255, 255, 255];
  for (const l of layers.reverse()) base = base.map((v, i) => l[i] * l[3] + v * (1 - l[3]));
  return base; };
const shown = (el) => { for (let e = el; e; e = e.parentElement) { const s = getComputedStyle(e);
    if (s.visibility !== 'visible' && s.visibility !== '') return false; if (Number(s.opacity) < 0.99) return false; if (s.display === 'none') return false; }
  const r = el.getBoundingClientRect(); return r.width > 1 && r.height > 1; };
const bad = [];
for (const el of document.body.querySelectorAll('*')) {
  if (['SCRIPT', 'STYLE', 'OPTION', 'NOSCRIPT', 'TITLE'].includes(el.tagName) || el.closest('[disabled]')) continue;
  const text = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
  if (!text || !shown(el)) continue;
  const s = getComputedStyle(el);
  const fg = rgba(s.color), bg = behind(el);
  const over = fg.slice(0, 3).map((v, i) => v * fg[3] + bg[i] * (1 - fg[3]));
  const [hi, lo] = [lum(over), lum(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
  const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
  if (ratio < need) bad.push(`${text.slice(0, 40)} (${ratio.toFixed(2)}: ${s.color} on rgb(${bg.map(Math.round)}))`);
}
return bad;
"#;

async fn contrast_failures(c: &Client) -> Vec<String> {
    // The pointer away from everything: a hover background is not what a reader sees at rest.
    let _ = c
        .execute("document.activeElement && document.activeElement.blur && document.activeElement.blur();", vec![])
        .await;
    let found: Value = c.execute(CONTRAST, vec![]).await.unwrap();
    found.as_array().unwrap().iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect()
}

/// Moves the mouse to the middle of the page's top-left corner (hovering nothing of interest).
async fn mouse_away(c: &Client) {
    let body = find(c, "body").await;
    let away = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
        element: body,
        duration: None,
        x: 0.0,
        y: 0.0,
    });
    c.perform_actions(away).await.unwrap();
}

/// Heights of the message rows (CSS px), grouped (`true`) or not.
async fn row_heights(c: &Client, grouped: bool) -> Vec<f64> {
    let found: Value = c
        .execute(
            "return [...document.querySelectorAll(`[data-testid=message][data-grouped=${arguments[0]}]`)] \
               .map(r => r.getBoundingClientRect().height);",
            vec![json!(grouped.to_string())],
        )
        .await
        .unwrap();
    found.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

fn per_800(heights: &[f64]) -> f64 {
    assert!(!heights.is_empty(), "no rows measured");
    800.0 / (heights.iter().sum::<f64>() / heights.len() as f64)
}

/// The scroll state of the timeline: (distance from the bottom, scrollTop).
async fn scroll_state(c: &Client) -> (f64, f64) {
    let s: Value = c
        .execute(
            "const t = document.querySelector('[data-testid=timeline]'); \
             return [t.scrollHeight - t.scrollTop - t.clientHeight, t.scrollTop];",
            vec![],
        )
        .await
        .unwrap();
    (s[0].as_f64().unwrap(), s[1].as_f64().unwrap())
}

async fn scroll_to_top(c: &Client) {
    c.execute("document.querySelector('[data-testid=timeline]').scrollTop = 0;", vec![]).await.unwrap();
    // The scroll event has run.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Whether the message containing `text` is inside the visible part of the timeline.
async fn in_view(c: &Client, text: &str) -> bool {
    c.execute(
        "const t = document.querySelector('[data-testid=timeline]').getBoundingClientRect(); \
         const r = [...document.querySelectorAll('[data-testid=message]')].find(r => r.textContent.includes(arguments[0])); \
         if (!r) return false; const b = r.getBoundingClientRect(); return b.top >= t.top - 1 && b.bottom <= t.bottom + 1;",
        vec![json!(text)],
    )
    .await
    .unwrap()
        == json!(true)
}

async fn title(c: &Client) -> String {
    c.title().await.unwrap()
}

async fn wait_title(c: &Client, want: impl Fn(&str) -> bool, what: &str) {
    let started = Instant::now();
    loop {
        let now = title(c).await;
        if want(&now) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the title never {what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The opacity of the action bar of the message containing `text`.
async fn bar_opacity(c: &Client, text: &str) -> String {
    c.execute(
        "const r = [...document.querySelectorAll('[data-testid=message]')].find(r => r.textContent.includes(arguments[0])); \
         const b = r && r.querySelector('[data-testid=message-actions]'); return b ? getComputedStyle(b).opacity : 'none';",
        vec![json!(text)],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

async fn wait_bar(c: &Client, text: &str, opacity: &str) {
    let started = Instant::now();
    loop {
        let now = bar_opacity(c, text).await;
        if now == opacity {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the bar of {text:?} stayed at opacity {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The message row element containing `text`.
async fn row(c: &Client, text: &str) -> fantoccini::elements::Element {
    let marked: Value = c
        .execute(
            "document.querySelectorAll('[data-probe]').forEach(e => e.removeAttribute('data-probe')); \
             const r = [...document.querySelectorAll('[data-testid=message]')].find(r => r.textContent.includes(arguments[0])); \
             if (r) r.setAttribute('data-probe', ''); return !!r;",
            vec![json!(text)],
        )
        .await
        .unwrap();
    assert_eq!(marked, json!(true), "no message {text:?}");
    find(c, "[data-probe]").await
}

/// An attribute of the reaction chip `emoji` under the message containing `text` ("" if none).
async fn chip_attr(c: &Client, text: &str, emoji: &str, attr: &str) -> String {
    c.execute(
        "const r = [...document.querySelectorAll('[data-testid=message]')].find(r => r.querySelector('[data-testid=message-body]')?.textContent.includes(arguments[0])); \
         const chip = r && [...r.querySelectorAll('[data-testid=reaction]')].find(c => c.dataset.emoji === arguments[1]); \
         return chip ? (arguments[2] === 'count' ? chip.textContent.replace(arguments[1], '').trim() : chip.getAttribute(arguments[2])) : '';",
        vec![json!(text), json!(emoji), json!(attr)],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

/// Waits until the chip `emoji` under the message containing `text` counts `count`.
async fn wait_chip(c: &Client, text: &str, emoji: &str, count: &str) {
    let started = Instant::now();
    loop {
        let now = chip_attr(c, text, emoji, "count").await;
        if now == count {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{emoji} on {text:?} counts {now:?}, want {count}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts `text` in the composer as if typed (ChromeDriver types only the Basic Multilingual Plane,
/// and Enter would send a line early).
async fn set_composer(c: &Client, text: &str) {
    composer_ready(c).await;
    c.execute(
        "const t = document.querySelector('[data-testid=composer]'); t.value = arguments[0]; \
         t.dispatchEvent(new Event('input', { bubbles: true }));",
        vec![json!(text)],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_reads_like_a_chat_app() {
    let db = TestDb::preferred().await;
    let server = start_server_on(&db).await;
    let database_url = db.url.clone();
    let (_driver, port) = start_chromedriver();
    let alice = browser(port, true, 1280, false).await;
    let bob = browser(port, true, 360, true).await;
    let visitor = browser(port, false, 1280, false).await;
    let url = server.url.clone();
    let (a, b, v) = (alice.clone(), bob.clone(), visitor.clone());
    let outcome = tokio::spawn(async move {
        trap_errors(&a).await;
        trap_errors(&b).await;

        // A visitor of the front page learns what this server is and how to join, on a page
        // without the app's WASM.
        a.goto(&url).await.unwrap();
        find(&a, "[data-testid=landing]").await;
        wait_contains(&a, "[data-testid=how-to-join]", "first account").await;
        let html = a.source().await.unwrap();
        assert!(!html.contains("_bg.wasm"), "the front page loads no WASM for a visitor");
        // The check finds grey on white (a positive control), then the page itself.
        a.execute(
            "const p = document.createElement('p'); p.id = 'control'; p.textContent = 'faint'; \
             p.style.color = '#aaaaaa'; document.body.append(p);",
            vec![],
        )
        .await
        .unwrap();
        let control = contrast_failures(&a).await;
        assert!(control.len() == 1 && control[0].starts_with("faint (2.2"), "{control:?}");
        a.execute("document.getElementById('control').remove();", vec![]).await.unwrap();
        assert_eq!(contrast_failures(&a).await, Vec::<String>::new(), "landing page, light");
        b.goto(&url).await.unwrap();
        find(&b, "[data-testid=landing]").await;
        assert_eq!(contrast_failures(&b).await, Vec::<String>::new(), "landing page, dark, phone");
        find(&a, "[data-testid=landing-register]").await.click().await.unwrap();
        wait_path(&a, "/register").await;

        register(&a, &url, "alice", "Alice Liddell").await;
        register(&b, &url, "bob", "Bob Stone").await;
        b.goto(&url).await.unwrap();
        find(&b, "[data-testid=app-shell]").await;
        assert!(texts(&b, "[data-testid=landing]").await.is_empty(), "signed in: the app, not the landing page");
        create_community(&a, "Timeline Club", &[&b]).await;
        open_conversation(&b, "# general").await;
        let channel = a.current_url().await.unwrap().path().to_owned();

        // A conversation: people taking turns (every message starts a group), then bursts.
        for i in 0..8 {
            say(&a, &format!("turn a{i}")).await;
            wait_contains(&b, "[data-testid=message-body]", &format!("turn a{i}")).await;
            say(&b, &format!("turn b{i}")).await;
            wait_contains(&a, "[data-testid=message-body]", &format!("turn b{i}")).await;
        }
        for i in 0..8 {
            say(&a, &format!("burst {i}")).await;
        }
        wait_contains(&b, "[data-testid=message-body]", "burst 7").await;
        // How many messages fit in 800 px: the original showed about 9.
        let (ungrouped, grouped) = (row_heights(&a, false).await, row_heights(&a, true).await);
        let (turns, bursts) = (per_800(&ungrouped), per_800(&grouped));
        println!("comfortable: {turns:.1} turn-taking messages per 800 px, {bursts:.1} in a burst");
        assert!(turns >= 18.0, "{turns:.1} messages from people taking turns fit in 800 px, want ≥ 18");
        assert!(bursts >= 30.0, "{bursts:.1} messages of a burst fit in 800 px, want ≥ 30");
        // Each group starts with its author's avatar: initials on a colour.
        let avatars = texts(&a, "[data-testid=message][data-grouped=false] [data-testid=avatar]").await;
        assert!(avatars.iter().any(|t| t == "AL") && avatars.iter().any(|t| t == "BS"), "{avatars:?}");
        assert!(texts(&a, "[data-testid=message][data-grouped=true] [data-testid=avatar]").await.is_empty());
        // Compact: one line per message, remembered by the browser.
        find(&a, "[data-testid=compact-button]").await.click().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let compact = per_800(&[row_heights(&a, false).await, row_heights(&a, true).await].concat());
        println!("compact: {compact:.1} messages per 800 px");
        assert!(compact >= 30.0, "{compact:.1} compact messages fit in 800 px, want ≥ 30");
        assert!(texts(&a, "[data-testid=message] [data-testid=avatar]").await.is_empty(), "no avatars when compact");
        a.refresh().await.unwrap();
        wait_contains(&a, "[data-testid=message-body]", "burst 7").await;
        assert_eq!(find(&a, "[data-testid=compact-button]").await.attr("aria-pressed").await.unwrap().as_deref(), Some("true"));
        find(&a, "[data-testid=compact-button]").await.click().await.unwrap();
        find(&a, "[data-testid=message] [data-testid=avatar]").await;

        // Actions appear on hover and on keyboard focus, not as a row under every message.
        mouse_away(&a).await;
        wait_bar(&a, "burst 3", "0").await;
        let hover = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
            element: row(&a, "burst 3").await,
            duration: None,
            x: 0.0,
            y: 0.0,
        });
        a.perform_actions(hover).await.unwrap();
        wait_bar(&a, "burst 3", "1").await;
        mouse_away(&a).await;
        wait_bar(&a, "burst 3", "0").await;
        a.execute(
            "[...document.querySelectorAll('[data-testid=message]')].find(r => r.textContent.includes('burst 4')) \
               .querySelector('[data-testid=reply]').focus();",
            vec![],
        )
        .await
        .unwrap();
        wait_bar(&a, "burst 4", "1").await;
        // On the phone, a tap shows them and another hides them.
        row(&b, "burst 5").await.click().await.unwrap();
        wait_bar(&b, "burst 5", "1").await;
        row(&b, "burst 5").await.click().await.unwrap();
        wait_bar(&b, "burst 5", "0").await;
        // Deleting asks first.
        act_on(&a, "burst 6", "delete").await;
        find(&a, "[data-testid=confirm-delete]").await;
        act_on(&a, "burst 6", "keep").await;
        assert!(bodies(&a).await.iter().any(|t| t == "burst 6"), "kept");

        // Days are named as people say them; the full time is on hover.
        let stamps: Value = a
            .execute("return [...document.querySelectorAll('[data-testid=message] time')].map(t => t.title);", vec![])
            .await
            .unwrap();
        let year = stamps[0].as_str().unwrap();
        assert!(year.contains("2026") || year.contains("20"), "the full date on hover: {stamps}");
        assert_eq!(texts(&a, "[data-testid=day-separator]").await.iter().map(|t| t.trim().to_owned()).collect::<Vec<_>>(), ["Today"]);
        let db = Database::connect(&database_url).await.unwrap();
        let now = chrono::Utc::now();
        for (text, days) in [("turn a0", 40), ("turn b0", 3), ("turn a1", 1)] {
            let id: String = row(&a, text).await.attr("data-id").await.unwrap().unwrap();
            let m = entity::message::Entity::find_by_id(id.parse::<uuid::Uuid>().unwrap()).one(&db).await.unwrap().unwrap();
            let mut m = m.into_active_model();
            m.created_at = Set(now - chrono::Duration::days(days));
            m.update(&db).await.unwrap();
        }
        a.refresh().await.unwrap();
        wait_contains(&a, "[data-testid=message-body]", "turn a0").await;
        let days: Vec<String> = texts(&a, "[data-testid=day-separator]").await.iter().map(|t| t.trim().to_owned()).collect();
        assert_eq!(days.len(), 4, "{days:?}");
        assert!(days[0].chars().any(char::is_alphabetic) && !days[0].contains('-'), "a date in words: {days:?}");
        let weekdays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
        assert!(weekdays.contains(&days[1].as_str()), "three days ago: its weekday: {days:?}");
        assert_eq!(days[2..], ["Yesterday", "Today"]);

        // The view follows the conversation at the bottom; scrolled up, it stays, and a button
        // says how many came.
        assert!(scroll_state(&a).await.0 < 80.0, "opened at the newest message");
        say(&b, "followed while at the bottom").await;
        wait_contains(&a, "[data-testid=message-body]", "followed while at the bottom").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(in_view(&a, "followed while at the bottom").await, "followed at the bottom");
        assert!(texts(&a, "[data-testid=jump-latest]").await.is_empty(), "no button at the bottom");
        scroll_to_top(&a).await;
        wait_contains(&a, "[data-testid=jump-latest]", "Jump to latest").await;
        say(&b, "arrived while scrolled up").await;
        wait_contains(&a, "[data-testid=jump-latest]", "(1 new)").await;
        assert!(scroll_state(&a).await.1 < 50.0, "the reading position stays");
        find(&a, "[data-testid=jump-latest]").await.click().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(in_view(&a, "arrived while scrolled up").await, "jumped to the newest");
        assert!(texts(&a, "[data-testid=jump-latest]").await.is_empty(), "no button once there");
        // Scrolled up, edit an older message, then send: the view goes to what I sent.
        scroll_to_top(&a).await;
        let edit = start_edit(&a, "turn a2", "turn a2, edited").await;
        edit.send_keys(ENTER).await.unwrap();
        wait_contains(&a, "[data-testid=message-body]", "turn a2, edited").await;
        say(&a, "sent after an edit up there").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(in_view(&a, "sent after an edit up there").await, "my message is on screen after I send");
        // "(edited)" opens the earlier versions, decrypted by the reader.
        wait_contains(&b, "[data-testid=message-body]", "turn a2, edited").await;
        act_on(&b, "turn a2, edited", "edited").await;
        wait_contains(&b, "[data-testid=version]", "turn a2").await;
        let versions = texts(&b, "[data-testid=version]").await;
        assert!(versions.len() == 1 && versions[0].starts_with("Until ") && versions[0].ends_with(": turn a2"), "{versions:?}");

        // "New messages" marks only what came while I was away; the tab title counts it.
        say(&b, "while alice looks").await;
        wait_contains(&a, "[data-testid=message-body]", "while alice looks").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(texts(&a, "[data-testid=new-messages]").await.is_empty(), "nothing is new while I look");
        assert!(!title(&a).await.starts_with('('), "no unread count while reading: {}", title(&a).await);
        find(&a, "#sidebar > a[href='/']").await.click().await.unwrap();
        wait_path(&a, "/").await;
        say(&b, "first while away").await;
        say(&b, "second while away").await;
        wait_title(&a, |t| t.starts_with("(2) "), "counted 2 unread").await;
        open_conversation(&a, "# general").await;
        wait_contains(&a, "[data-testid=message-body]", "second while away").await;
        let after_divider: Value = a
            .execute(
                "const d = document.querySelector('[data-testid=new-messages]'); \
                 let n = d && d.nextElementSibling; while (n && !n.matches('[data-testid=message]')) n = n.nextElementSibling; \
                 return n && n.querySelector('[data-testid=message-body]').textContent;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(after_divider, json!("first while away"), "the divider sits above what came while away");
        wait_title(&a, |t| !t.starts_with('('), "dropped the count once read").await;
        say(&b, "third, while alice is back").await;
        wait_contains(&a, "[data-testid=message-body]", "third, while alice is back").await;
        assert_eq!(texts(&a, "[data-testid=new-messages]").await.len(), 1, "one divider, where it was");

        // Reactions: picked from the bar, shown live to the other person with who gave them,
        // pressed when mine, toggled by a click, kept over a reload.
        act_on(&a, "turn b3", "react").await;
        act_on(&a, "turn b3", "pick-reaction][data-emoji='👍'").await;
        wait_chip(&b, "turn b3", "👍", "1").await;
        assert_eq!(chip_attr(&b, "turn b3", "👍", "title").await, "👍 1: Alice Liddell");
        assert_eq!(chip_attr(&a, "turn b3", "👍", "aria-pressed").await, "true");
        assert_eq!(chip_attr(&b, "turn b3", "👍", "aria-pressed").await, "false");
        act_on(&b, "turn b3", "reaction").await;
        wait_chip(&a, "turn b3", "👍", "2").await;
        act_on(&b, "turn b3", "react").await;
        act_on(&b, "turn b3", "pick-reaction][data-emoji='🎉'").await;
        wait_chip(&a, "turn b3", "🎉", "1").await;
        // On the phone, a long press on a chip (the browser's context menu event) says who.
        b.execute(
            "const r = [...document.querySelectorAll('[data-testid=message]')].find(r => r.textContent.includes('turn b3')); \
             const chip = [...r.querySelectorAll('[data-testid=reaction]')].find(c => c.dataset.emoji === '👍'); \
             chip.dispatchEvent(new MouseEvent('contextmenu', { bubbles: true, cancelable: true }));",
            vec![],
        )
        .await
        .unwrap();
        wait_contains(&b, "[data-testid=reactors]", "👍 2: Alice Liddell, Bob Stone").await;
        b.refresh().await.unwrap();
        wait_chip(&b, "turn b3", "👍", "2").await;
        assert_eq!(chip_attr(&b, "turn b3", "👍", "aria-pressed").await, "true", "mine after a reload");
        act_on(&a, "turn b3", "reaction").await; // Alice takes hers back
        wait_chip(&b, "turn b3", "👍", "1").await;
        // The server moves Bob's 🎉 to another message: refused by the reader, not shown anywhere.
        let target: String = row(&a, "turn a4").await.attr("data-id").await.unwrap().unwrap();
        let bob_id = entity::user::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.username == "bob")
            .unwrap()
            .id;
        let moved = entity::message::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.kind == 2 && m.sender_id == bob_id && m.deleted_at.is_none())
            .max_by_key(|m| m.seq)
            .expect("Bob's 🎉");
        let mut moved = moved.into_active_model();
        moved.reply_to = Set(Some(target.parse().unwrap()));
        moved.update(&db).await.unwrap();
        a.refresh().await.unwrap();
        wait_chip(&a, "turn b3", "👍", "1").await;
        assert!(chip_attr(&a, "turn a4", "🎉", "title").await.is_empty(), "a moved reaction is not shown");

        // Slash commands: a list while typing one, chosen by keyboard; the result is just text
        // (encrypted like any), shown as an action or a spoiler.
        let composer = composer_ready(&a).await;
        composer.send_keys("/").await.unwrap();
        let listed = texts(&a, "[data-testid=command]").await;
        assert_eq!(listed.len(), 7, "{listed:?}");
        composer.send_keys("s").await.unwrap();
        wait_count(&a, "[data-testid=command]", 3).await;
        composer.send_keys(&format!("{ARROW_DOWN}{ARROW_DOWN}{TAB}")).await.unwrap();
        assert_eq!(composer.prop("value").await.unwrap().as_deref(), Some("/spoiler "));
        composer.send_keys(&format!("the butler did it{ENTER}")).await.unwrap();
        wait_contains(&b, "[data-testid=message-body][data-kind=spoiler]", "Spoiler").await;
        assert!(!bodies(&b).await.iter().any(|t| t.contains("butler")), "hidden until asked for");
        find(&b, "[data-testid=spoiler]").await.click().await.unwrap();
        wait_contains(&b, "[data-testid=message-body]", "the butler did it").await;
        composer_ready(&a).await.send_keys(&format!("/me waves{ENTER}")).await.unwrap();
        wait_contains(&b, "[data-testid=message-body][data-kind=action]", "* Alice Liddell waves").await;
        composer_ready(&a).await.send_keys(&format!("/shrug fine{ENTER}")).await.unwrap();
        wait_contains(&b, "[data-testid=message-body]", "fine ¯\\_(ツ)_/¯").await;
        // Markdown, parsed by the receiver into DOM nodes: styles, code with colours, quotes,
        // lists and links; markup and script links stay text.
        let markdown = "MDTEST **bold** _it_ ~~gone~~ `let x` <script>alert(1)</script><b>raw</b> \
                        [docs](https://docs.rs/leptos) [bad](javascript:alert(1)) https://example.org/a.\n\
                        ```rust\nfn main() { let s = \"hi\"; } // done\n```\n> quoted\n- one\n- two";
        set_composer(&a, markdown).await;
        composer_ready(&a).await.send_keys(ENTER).await.unwrap();
        wait_contains(&b, "[data-testid=message-body]", "MDTEST").await;
        let seen: Value = b
            .execute(
                "const b = [...document.querySelectorAll('[data-testid=message-body]')].find(e => e.textContent.includes('MDTEST')); \
                 const all = (css) => [...b.querySelectorAll(css)].map(e => e.textContent); \
                 return { strong: all('strong'), em: all('em'), s: all('s'), code: all(':not(pre) > code'), \
                   markup: b.querySelectorAll('script, b').length, text: b.textContent, \
                   links: [...b.querySelectorAll('a')].map(a => [a.getAttribute('href'), a.rel, a.target, a.textContent]), \
                   coloured: all('pre[data-lang=rust] span'), quote: all('blockquote'), items: all('ul > li') };",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(seen["strong"], json!(["bold"]));
        assert_eq!(seen["em"], json!(["it"]));
        assert_eq!(seen["s"], json!(["gone"]));
        assert_eq!(seen["code"], json!(["let x"]));
        assert_eq!(seen["markup"], json!(0), "no element from the sender's markup");
        let shown = seen["text"].as_str().unwrap();
        assert!(shown.contains("<script>alert(1)</script><b>raw</b>"), "markup shown as text: {shown}");
        assert!(shown.contains("[bad](javascript:alert(1))"), "a script link stays text: {shown}");
        let rel = "noopener noreferrer nofollow";
        assert_eq!(
            seen["links"],
            json!([
                ["https://docs.rs/leptos", rel, "_blank", "docs"],
                ["https://example.org/a", rel, "_blank", "https://example.org/a"]
            ])
        );
        assert_eq!(seen["coloured"], json!(["fn", "let", "\"hi\"", "// done"]));
        assert_eq!(seen["quote"], json!(["quoted"]));
        assert_eq!(seen["items"], json!(["one", "two"]));

        // A few emoji alone are shown large; with words, as text.
        // (ChromeDriver types only the Basic Multilingual Plane: the emoji go in as an input event.)
        let composer = composer_ready(&a).await;
        a.execute(
            "const t = document.querySelector('[data-testid=composer]'); t.value = arguments[0]; \
             t.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![json!("🎉🎉")],
        )
        .await
        .unwrap();
        composer.send_keys(ENTER).await.unwrap();
        wait_contains(&b, "[data-testid=message-body][data-kind=emoji]", "🎉🎉").await;
        let size: Value = b
            .execute(
                "return parseFloat(getComputedStyle(document.querySelector('[data-kind=emoji]')).fontSize);",
                vec![],
            )
            .await
            .unwrap();
        assert!(size.as_f64().unwrap() >= 32.0, "large: {size}");
        // A command missing what it needs: refused, with what to type; the text stays.
        composer_ready(&a).await.send_keys(&format!("/me {ENTER}")).await.unwrap();
        wait_contains(&a, "[data-testid=send-error]", "/me waves").await;

        // The skip link: first on Tab, to the message box.
        // (From a fresh load: Tab starts at the top of the document.)
        a.refresh().await.unwrap();
        composer_ready(&a).await;
        a.execute("document.activeElement && document.activeElement.blur();", vec![]).await.unwrap();
        find(&a, "body").await.send_keys(TAB).await.unwrap();
        let first: Value = a
            .execute(
                "const e = document.activeElement; const r = e.getBoundingClientRect(); \
                 return [e.dataset.testid || e.tagName, e.textContent, r.width > 20 && r.height > 10];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(first, json!(["skip-link", "Skip to the message box", true]), "the skip link comes first, visible");
        a.active_element().await.unwrap().send_keys(ENTER).await.unwrap();
        let focused: Value = a.execute("return document.activeElement.id;", vec![]).await.unwrap();
        assert_eq!(focused, json!("composer"));

        // The member panel on a phone can be closed.
        find(&b, "[data-testid=members-button]").await.click().await.unwrap();
        find(&b, "[data-testid=close-members]").await.click().await.unwrap();
        let panel_shown: Value = b
            .execute("return getComputedStyle(document.querySelector('[data-testid=member-panel]')).display;", vec![])
            .await
            .unwrap();
        assert_eq!(panel_shown, json!("none"));

        // Every text readable: at least 4.5:1 (3:1 when large) in both themes.
        mouse_away(&a).await;
        assert_eq!(contrast_failures(&a).await, Vec::<String>::new(), "conversation, light");
        assert_eq!(contrast_failures(&b).await, Vec::<String>::new(), "conversation, dark, phone");
        find(&a, "#sidebar > a[href='/']").await.click().await.unwrap();
        wait_path(&a, "/").await;
        find(&a, "[data-testid=device-status]").await;
        assert_eq!(contrast_failures(&a).await, Vec::<String>::new(), "start page, light");

        // Without JavaScript, a conversation says why it is empty.
        v.goto(&format!("{url}/login")).await.unwrap();
        fill(&v, "username", "bob").await;
        fill(&v, "password", PASSWORD).await;
        submit(&v, "login-form").await;
        wait_path(&v, "/").await;
        v.goto(&format!("{url}{channel}")).await.unwrap();
        wait_contains(&v, "[data-testid=needs-javascript]", "Turn JavaScript on").await;

        // Signing out leaves no error in the console (a panic would be one).
        find(&a, "#logout-form button").await.click().await.unwrap();
        wait_path(&a, "/login").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let errors = console_errors(&a).await;
        assert!(errors.is_empty(), "console errors on Alice's side: {errors:?}");
        let errors = console_errors(&b).await;
        assert!(errors.is_empty(), "console errors on Bob's side: {errors:?}");
    })
    .await;
    for c in [alice, bob, visitor] {
        let _ = c.close().await;
    }
    drop(server);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
