//! Headless Chromium (driven through ChromeDriver) against the real server binary:
//! register → sign out → sign in → the app shell, once with JavaScript disabled (server-rendered
//! forms only) and once hydrated (no page reloads; interactions that only work after hydration).
//!
//! Run by `cargo xtask test`, which builds the server and the site and sets
//! `CHATALOT_SERVER_BIN` and `CHATALOT_SITE_DIR`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_work_without_javascript() {
    with_browser(false, 1280, false, |c, url| async move {
        c.goto(&format!("{url}/register")).await.unwrap();
        assert!(text(&c, "[data-testid=first-account]").await.contains("owner"));
        fill(&c, "username", "nojs").await;
        fill(&c, "display_name", "No Script").await;
        fill(&c, "password", PASSWORD).await;
        submit(&c, "register-form").await;
        wait_path(&c, "/welcome").await;
        let code = text(&c, "[data-testid=recovery-code]").await;
        assert_eq!(code.len(), 19, "recovery code {code:?}");
        find(&c, "[data-testid=continue]").await.click().await.unwrap();
        wait_path(&c, "/").await;
        assert_eq!(text(&c, "[data-testid=display-name]").await, "No Script");

        submit(&c, "logout-form").await;
        wait_path(&c, "/login").await;
        // Without JavaScript the password toggle does nothing: proof that this run is not hydrated.
        find(&c, "[data-toggle-for=password]").await.click().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let kind = find(&c, "input[name=password]").await.attr("type").await.unwrap();
        assert_eq!(kind.as_deref(), Some("password"));

        // A wrong password is reported next to the field, by the server-rendered page.
        fill(&c, "username", "nojs").await;
        fill(&c, "password", "not the password").await;
        submit(&c, "login-form").await;
        wait_text(&c, "[data-error-for=password]", "Wrong username or password.").await;
        let kept = find(&c, "input[name=username]").await.prop("value").await.unwrap();
        assert_eq!(kept.as_deref(), Some("nojs"), "the typed username was lost");
        let password = find(&c, "input[name=password]").await.prop("value").await.unwrap();
        assert_eq!(password.as_deref(), Some(""), "a password came back from the server");

        fill(&c, "username", "nojs").await;
        fill(&c, "password", PASSWORD).await;
        submit(&c, "login-form").await;
        wait_path(&c, "/").await;
        assert_eq!(text(&c, "[data-testid=display-name]").await, "No Script");

        // The sidebar lists what the user belongs to; forms work without JavaScript, errors included.
        find(&c, "[data-testid=no-spaces]").await;
        fill(&c, "code", "NOPE-NOPE-NOPE").await;
        submit(&c, "join-form").await;
        wait_text(&c, "[data-error-for=code]", "This invite code is not valid (unknown, used up or expired).").await;
        fill(&c, "name", "Book club").await;
        submit(&c, "create-community-form").await;
        wait_text(&c, "[data-testid=community] h2", "Book club").await;
        assert!(text(&c, "[data-testid=channel]").await.contains("# general"));
        screenshot(&c, "shell-desktop-nojs").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_work_hydrated_without_reloads() {
    with_browser(true, 360, false, |c, url| async move {
        // Registering happens on a plain page (no app code): the form posts, errors come back by the field.
        c.goto(&format!("{url}/register")).await.unwrap();
        toggle_works(&c).await;
        let loaded: Value = c
            .execute("return performance.getEntriesByType('resource').map(e => e.name).join(' ');", vec![])
            .await
            .unwrap();
        assert!(!loaded.as_str().unwrap().contains("chatalot_bg.wasm"), "the register page loaded the app: {loaded}");
        fill(&c, "username", "hy").await;
        fill(&c, "display_name", "Hydra").await;
        fill(&c, "password", PASSWORD).await;
        submit(&c, "register-form").await;
        wait_text(&c, "[data-error-for=username]", "must be at least 3 characters").await;
        // What was typed comes back, except the password.
        assert_eq!(find(&c, "input[name=display_name]").await.prop("value").await.unwrap().as_deref(), Some("Hydra"));
        assert_eq!(find(&c, "input[name=password]").await.prop("value").await.unwrap().as_deref(), Some(""));

        fill(&c, "username", "hydra").await;
        fill(&c, "password", PASSWORD).await;
        submit(&c, "register-form").await;
        wait_path(&c, "/welcome").await;
        assert_eq!(text(&c, "[data-testid=recovery-code]").await.len(), 19);
        screenshot(&c, "welcome-mobile").await;
        find(&c, "[data-testid=continue]").await.click().await.unwrap();
        wait_path(&c, "/").await;
        // The app: from here on, nothing reloads the page. Anything set on `window` survives only
        // as long as the page is not reloaded.
        let device = wait_prefix(&c, "[data-testid=device-status]", "This device: ").await;
        c.execute("window.__chatalot_no_reload = 'still here';", vec![]).await.unwrap();

        // 360 px wide: the sidebar folds behind the menu button, and nothing overflows sideways.
        assert_eq!(c.execute("return window.innerWidth;", vec![]).await.unwrap(), json!(360));
        let overflow: Value =
            c.execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await.unwrap();
        assert!(overflow.as_i64().unwrap() <= 0, "horizontal overflow of {overflow} px at 360 px");
        let menu = find(&c, "[data-testid=menu-button]").await;
        assert_eq!(menu.attr("aria-expanded").await.unwrap().as_deref(), Some("false"));
        menu.click().await.unwrap();
        assert_eq!(
            find(&c, "[data-testid=menu-button]").await.attr("aria-expanded").await.unwrap().as_deref(),
            Some("true")
        );
        assert_eq!(text(&c, "[data-testid=display-name]").await, "Hydra");
        // Creating a community updates the sidebar in place.
        fill(&c, "name", "Hydra club").await;
        submit(&c, "create-community-form").await;
        wait_text(&c, "[data-testid=community] h2", "Hydra club").await;
        assert_eq!(marker(&c).await, json!("still here"), "creating a community reloaded the page");
        screenshot(&c, "shell-mobile-menu").await;

        // Signing out and in again happens inside the app, errors included.
        submit(&c, "logout-form").await;
        wait_path(&c, "/login").await;
        toggle_works(&c).await;
        fill(&c, "username", "hydra").await;
        fill(&c, "password", "not the password").await;
        submit(&c, "login-form").await;
        wait_text(&c, "[data-error-for=password]", "Wrong username or password.").await;
        fill(&c, "password", PASSWORD).await;
        submit(&c, "login-form").await;
        wait_path(&c, "/").await;
        find(&c, "[data-testid=app-shell]").await;
        assert_eq!(marker(&c).await, json!("still here"), "sign out / sign in reloaded the page");
        // A full reload restores the same device from IndexedDB instead of making a new identity.
        c.refresh().await.unwrap();
        assert_eq!(wait_prefix(&c, "[data-testid=device-status]", "This device: ").await, device);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_system_color_scheme() {
    with_browser(true, 1280, true, |c, url| async move {
        c.goto(&format!("{url}/login")).await.unwrap();
        find(&c, "#login-form").await;
        let dark = background_brightness(&c).await;
        assert!(dark < 60, "dark preference, but the background brightness is {dark}");
    })
    .await;
    with_browser(true, 1280, false, |c, url| async move {
        c.goto(&format!("{url}/login")).await.unwrap();
        find(&c, "#login-form").await;
        let light = background_brightness(&c).await;
        assert!(light > 200, "light preference, but the background brightness is {light}");
    })
    .await;
}
