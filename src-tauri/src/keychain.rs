//! The vault's store key in the OS keychain, one per server origin.
//!
//! In a browser, the web app keeps its store key wrapped by a non-extractable WebCrypto key in
//! IndexedDB. In the desktop app it asks for this key instead: 32 random bytes made once and kept
//! by the operating system's secret store (Secret Service on Linux, Keychain on macOS, Credential
//! Manager on Windows), never in the app's files. Only the configured server's pages may ask
//! (the capability and a check of the caller's origin), and only for their own origin's key.

use base64::{Engine, engine::general_purpose::STANDARD};

const SERVICE: &str = "chat.chatalot.desktop";

/// Chooses the secret store once at start. `CHATALOT_DESKTOP_KEYRING=keyutils` uses the Linux
/// kernel keyring (no D-Bus; for tests and CI: it does not survive a reboot).
pub fn init() {
    #[cfg(target_os = "linux")]
    {
        let builder = match std::env::var("CHATALOT_DESKTOP_KEYRING").as_deref() {
            Ok("keyutils") => keyring::keyutils::default_credential_builder(),
            _ => keyring::secret_service::default_credential_builder(),
        };
        keyring::set_default_credential_builder(builder);
    }
}

/// The key for `origin`, made and stored on first use. Base64 of 32 bytes.
pub fn vault_key(origin: &str) -> Result<String, String> {
    let entry = keyring::Entry::new(SERVICE, origin).map_err(|e| format!("the keychain refused: {e}"))?;
    match entry.get_password() {
        Ok(existing) if STANDARD.decode(&existing).is_ok_and(|k| k.len() == 32) => Ok(existing),
        Ok(_) => Err("the keychain holds a damaged key for this server".into()),
        Err(keyring::Error::NoEntry) => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
            let encoded = STANDARD.encode(key);
            entry.set_password(&encoded).map_err(|e| format!("the keychain refused to store the key: {e}"))?;
            // Read back: a store that silently keeps nothing (a mock) must not pass for one.
            match entry.get_password() {
                Ok(stored) if stored == encoded => Ok(encoded),
                _ => Err("the keychain did not keep the key".into()),
            }
        }
        Err(e) => Err(format!("the keychain is not available: {e}")),
    }
}
