//! The desktop app around this web app (Tauri, `src-tauri/`): when `window.__TAURI__` is there,
//! the vault key comes from the OS keychain, the unread count goes to the tray icon, and new
//! messages raise native notifications. In a browser every function here does nothing.
//!
//! The desktop app grants these commands to the one server it is connected to; they are reached
//! by reflection (`__TAURI__.core.invoke`), so the browser bundle links no Tauri code.

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// `window.__TAURI__.core.invoke`, when this page runs in the desktop app.
fn invoker() -> Option<Function> {
    let tauri = Reflect::get(&web_sys::window()?.into(), &"__TAURI__".into()).ok().filter(|t| t.is_object())?;
    let core = Reflect::get(&tauri, &"core".into()).ok().filter(|c| c.is_object())?;
    Reflect::get(&core, &"invoke".into()).ok()?.dyn_into().ok()
}

/// Whether this page runs in the desktop app.
pub fn available() -> bool {
    invoker().is_some()
}

async fn invoke(command: &str, args: &[(&str, JsValue)]) -> Result<JsValue, String> {
    let invoke = invoker().ok_or("not in the desktop app")?;
    let object = Object::new();
    for (name, value) in args {
        Reflect::set(&object, &(*name).into(), value).map_err(|e| format!("{e:?}"))?;
    }
    let promise: Promise = invoke
        .call2(&JsValue::NULL, &command.into(), &object)
        .map_err(|e| format!("{e:?}"))?
        .dyn_into()
        .map_err(|e| format!("{e:?}"))?;
    JsFuture::from(promise).await.map_err(|e| e.as_string().unwrap_or_else(|| format!("{e:?}")))
}

/// The vault's store key from the OS keychain: `None` in a browser.
pub async fn vault_key() -> Result<Option<[u8; 32]>, String> {
    if !available() {
        return Ok(None);
    }
    let encoded = invoke("vault_key", &[]).await?.as_string().ok_or("the keychain answered no key")?;
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded.trim())
        .map_err(|_| "the keychain's key is not base64".to_owned())?;
    bytes.try_into().map(Some).map_err(|_| "the keychain's key has the wrong length".to_owned())
}

/// The total unread count, for the tray icon (fire and forget).
pub fn set_unread(count: u64) {
    if available() {
        let count = count.min(u64::from(u32::MAX)) as f64;
        leptos::task::spawn_local(async move {
            let _ = invoke("set_unread", &[("count", count.into())]).await;
        });
    }
}

/// A native notification (the desktop app shows it only while its window is not focused).
pub fn notify(title: &str, body: &str) {
    if available() {
        let (title, body) = (JsValue::from(title), JsValue::from(body));
        leptos::task::spawn_local(async move {
            let _ = invoke("notify", &[("title", title), ("body", body)]).await;
        });
    }
}
