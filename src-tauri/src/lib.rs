//! Chatalot for the desktop: one window that shows the connect screen (`ui/`), then the chosen
//! server's own web app. The window never leaves that server: other addresses open in the
//! system browser. The server's pages get a few native powers through commands, granted at run
//! time to that one origin: the vault key from the OS keychain, the unread count on the tray
//! icon, and native notifications.

mod keychain;
pub mod links;
pub mod server;

use std::sync::Mutex;
use tauri::{
    AppHandle, Manager, Runtime, Url, WebviewUrl, WebviewWindow, WebviewWindowBuilder,
    ipc::CapabilityBuilder,
    menu::{Menu, MenuItem},
    tray::{TrayIcon, TrayIconBuilder},
    webview::NewWindowResponse,
};
use tauri_plugin_deep_link::DeepLinkExt;
use tauri_plugin_notification::NotificationExt;
use tauri_plugin_opener::OpenerExt;

/// The server this window shows, once connected.
#[derive(Default)]
struct Connected {
    server: Mutex<Option<Url>>,
    /// Origins already granted the server capability (granted once per run).
    granted: Mutex<Vec<String>>,
    /// A deep link that arrived before any server was connected.
    pending: Mutex<Option<String>>,
}

fn connected(app: &AppHandle<impl Runtime>) -> Option<Url> {
    let state = app.state::<Connected>();
    state.server.lock().ok()?.clone()
}

fn config_dir(app: &AppHandle<impl Runtime>) -> Result<std::path::PathBuf, String> {
    app.path().app_config_dir().map_err(|e| e.to_string())
}

/// The connect screen asks: is `url` a Chatalot server? If it is, remember it and show it.
#[tauri::command]
async fn connect(app: AppHandle, url: String) -> Result<String, String> {
    let server = server::parse(&url)?;
    let checked = server.clone();
    let version =
        tauri::async_runtime::spawn_blocking(move || server::check(&checked)).await.map_err(|e| e.to_string())??;
    server::save(&config_dir(&app)?, &server)?;
    show(&app, &server)?;
    Ok(version)
}

/// The remembered server, for the connect screen to offer (and to open at start).
#[tauri::command]
fn remembered(app: AppHandle) -> Option<String> {
    server::load(&config_dir(&app).ok()?).map(|u| u.to_string())
}

/// Back to the connect screen, to choose another server.
#[tauri::command]
fn switch_server(app: AppHandle) -> Result<(), String> {
    to_connect_screen(&app)
}

/// The vault's store key for the calling page's server (see `keychain`).
#[tauri::command]
fn vault_key(webview: tauri::Webview, app: AppHandle) -> Result<String, String> {
    let server = from_connected_server(&webview, &app)?;
    keychain::vault_key(&server.origin().ascii_serialization())
}

/// The web app's unread count: on the tray icon's tooltip and the window title.
#[tauri::command]
fn set_unread(webview: tauri::Webview, app: AppHandle, count: u32) -> Result<(), String> {
    from_connected_server(&webview, &app)?;
    let text = match count {
        0 => "Chatalot".to_owned(),
        n => format!("Chatalot ({n} unread)"),
    };
    if let Some(tray) = app.try_state::<TrayIcon>() {
        let _ = tray.set_tooltip(Some(&text));
        let _ = tray.set_title(Some(if count == 0 { String::new() } else { count.to_string() }));
    }
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.set_title(&text);
    }
    Ok(())
}

/// A native notification for an event the web app raises, unless the window has the focus.
#[tauri::command]
fn notify(webview: tauri::Webview, app: AppHandle, title: String, body: String) -> Result<bool, String> {
    from_connected_server(&webview, &app)?;
    let focused = app.get_webview_window("main").and_then(|w| w.is_focused().ok()).unwrap_or(false);
    if focused {
        return Ok(false);
    }
    let (title, body): (String, String) = (title.chars().take(120).collect(), body.chars().take(400).collect());
    app.notification().builder().title(title).body(body).show().map_err(|e| e.to_string())?;
    Ok(true)
}

/// Commands for the server's pages answer only the page of the connected server (the ACL grants
/// them to that origin too; this holds even if a grant outlived a switch of server).
fn from_connected_server(webview: &tauri::Webview, app: &AppHandle) -> Result<Url, String> {
    let server = connected(app).ok_or("not connected to a server")?;
    let page = webview.url().map_err(|e| e.to_string())?;
    if server::same_origin(&page, &server) { Ok(server) } else { Err("only the connected server may ask".into()) }
}

/// Grants the server's origin its commands (once), then shows it in the window.
fn show(app: &AppHandle, server: &Url) -> Result<(), String> {
    let origin = server.origin().ascii_serialization();
    let state = app.state::<Connected>();
    {
        let mut granted = state.granted.lock().map_err(|e| e.to_string())?;
        if !granted.contains(&origin) {
            let capability = CapabilityBuilder::new(format!("server-{}", granted.len()))
                .remote(format!("{origin}/*"))
                .local(false)
                .window("main")
                .permission("allow-vault-key")
                .permission("allow-set-unread")
                .permission("allow-notify")
                .permission("allow-switch-server");
            app.add_capability(capability).map_err(|e| e.to_string())?;
            granted.push(origin);
        }
    }
    *state.server.lock().map_err(|e| e.to_string())? = Some(server.clone());
    let pending = state.pending.lock().ok().and_then(|mut p| p.take());
    let target = pending.and_then(|link| links::target(&link, server)).unwrap_or_else(|| server.clone());
    window(app)?.navigate(target).map_err(|e| e.to_string())
}

fn to_connect_screen(app: &AppHandle) -> Result<(), String> {
    let state = app.state::<Connected>();
    *state.server.lock().map_err(|e| e.to_string())? = None;
    let local = Url::parse(if cfg!(windows) { "http://tauri.localhost/" } else { "tauri://localhost/" })
        .map_err(|e| e.to_string())?;
    window(app)?.navigate(local.join("index.html?switch=1").map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

fn window(app: &AppHandle) -> Result<WebviewWindow, String> {
    app.get_webview_window("main").ok_or_else(|| "the window is gone".to_owned())
}

/// A `chatalot://` link: open it in the connected server (or once one is connected).
fn open_link(app: &AppHandle, link: &str) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
    match connected(app) {
        Some(server) => {
            if let (Some(target), Ok(window)) = (links::target(link, &server), window(app)) {
                let _ = window.navigate(target);
            }
        }
        None => {
            let state = app.state::<Connected>();
            if let Ok(mut pending) = state.pending.lock() {
                *pending = Some(link.to_owned());
            }
        }
    }
}

fn tray(app: &AppHandle) -> tauri::Result<TrayIcon> {
    let show = MenuItem::with_id(app, "show", "Show Chatalot", true, None::<&str>)?;
    let switch = MenuItem::with_id(app, "switch", "Switch server…", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &switch, &quit])?;
    let mut builder = TrayIconBuilder::with_id("main").tooltip("Chatalot").menu(&menu).on_menu_event(|app, event| {
        match event.id().as_ref() {
            "show" => open_link(app, ""),
            "switch" => {
                let _ = to_connect_screen(app);
            }
            "quit" => app.exit(0),
            _ => {}
        }
    });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)
}

pub fn run() {
    keychain::init();
    let app = tauri::Builder::default()
        // First: a second start hands its arguments (a chatalot:// link) to this one and exits.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            let link = argv.iter().find(|a| a.starts_with("chatalot://")).cloned().unwrap_or_default();
            open_link(app, &link);
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        .manage(Connected::default())
        .invoke_handler(tauri::generate_handler![connect, remembered, switch_server, vault_key, set_unread, notify])
        .setup(|app| {
            let handle = app.handle().clone();
            let navigating = handle.clone();
            let opening = handle.clone();
            WebviewWindowBuilder::new(app, "main", WebviewUrl::App("index.html".into()))
                .title("Chatalot")
                .inner_size(1100.0, 760.0)
                .min_inner_size(360.0, 480.0)
                // The window shows the connect screen and the connected server, nothing else.
                .on_navigation(move |url| {
                    if links::is_local(url) || connected(&navigating).is_some_and(|s| server::same_origin(url, &s)) {
                        return true;
                    }
                    if links::is_external(url) {
                        let _ = navigating.opener().open_url(url.as_str(), None::<&str>);
                    }
                    false
                })
                .on_new_window(move |url, _| {
                    if links::is_external(&url) {
                        let _ = opening.opener().open_url(url.as_str(), None::<&str>);
                    }
                    NewWindowResponse::Deny
                })
                .build()?;
            match tray(&handle) {
                Ok(tray) => {
                    app.manage(tray);
                }
                // No tray host (a bare X server, some desktops): the app works without it.
                Err(e) => eprintln!("chatalot-desktop: no tray icon: {e}"),
            }
            let links = handle.clone();
            app.deep_link().on_open_url(move |event| {
                if let Some(url) = event.urls().first() {
                    open_link(&links, url.as_str());
                }
            });
            if let Ok(Some(urls)) = app.deep_link().get_current()
                && let Some(url) = urls.first()
            {
                open_link(&handle, url.as_str());
            }
            Ok(())
        })
        .build(tauri::generate_context!());
    match app {
        Ok(app) => app.run(|_, _| {}),
        Err(e) => {
            eprintln!("chatalot-desktop: cannot start: {e}");
            std::process::exit(1);
        }
    }
}
