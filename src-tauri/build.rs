//! The app's own commands get ACL permissions (`allow-<command>`), which capabilities grant: the
//! connect screen (local) and, at run time, the one configured server's origin (remote).
fn main() {
    let commands = &["connect", "remembered", "switch_server", "vault_key", "set_unread", "notify"];
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .unwrap_or_else(|e| panic!("tauri-build: {e}"));
}
