//! Accounts, devices and sessions, made directly in the database (no password hashing).

use domain::Core;
use ed25519_dalek::Signer;
use protocol::model::keys::{DeviceKeys, SignedKey, device_signing_payload, key_signing_payload};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection};
use uuid::Uuid;

/// An account inserted directly: for tests about what accounts may do (it cannot sign in).
pub async fn new_user(db: &DatabaseConnection, name: &str) -> entity::user::Model {
    let now = chrono::Utc::now();
    entity::user::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(name.into()),
        username_key: Set(name.to_lowercase()),
        display_name: Set(name.into()),
        password_hash: Set("made by the test kit: cannot sign in".into()),
        recovery_code_hash: Set("-".into()),
        owner_slot: Set(None),
        is_admin: Set(false),
        created_at: Set(now),
        password_changed_at: Set(now),
        suspended_at: Set(None),
        presence: Set(0),
        read_receipts: Set(true),
    }
    .insert(db)
    .await
    .unwrap()
}

/// A real session for `user`, as a `Cookie` header value (the browser's cookies).
pub async fn session_cookie(core: &Core, user: Uuid) -> String {
    let issued = domain::session::start(core, user, None).await.unwrap();
    format!("{}={}; {}={}", protocol::cookies::ACCESS, issued.access, protocol::cookies::REFRESH, issued.refresh)
}

/// Registers a device `id` for `user` with signed keys, as a browser would: messages are accepted
/// from registered devices only.
pub async fn with_device(core: &Core, user: Uuid, id: &str) -> TestDevice {
    let device = TestDevice::new(user, id);
    domain::keys_directory::register_device(core, user, device.keys()).await.unwrap();
    device
}

/// A device's signing key, as the browser's vodozemac account holds it.
pub struct TestDevice {
    pub user: Uuid,
    pub id: String,
    pub signing: ed25519_dalek::SigningKey,
}

impl TestDevice {
    pub fn new(user: Uuid, id: &str) -> Self {
        Self { user, id: id.into(), signing: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    pub fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    }

    /// The device's identity keys, signed by it.
    pub fn keys(&self) -> DeviceKeys {
        let curve = Self::b64(&[9u8; 32]);
        let ed = Self::b64(self.signing.verifying_key().as_bytes());
        let payload = device_signing_payload(self.user, &self.id, &curve, &ed);
        let sig = self.signing.sign(payload.as_bytes());
        DeviceKeys {
            user_id: self.user,
            device_id: self.id.clone(),
            curve25519: curve,
            ed25519: ed,
            signature: Self::b64(&sig.to_bytes()),
        }
    }

    /// A one-time (or fallback) key, signed by the device.
    pub fn key(&self, key_id: &str) -> SignedKey {
        let public = Self::b64(&[key_id.len() as u8; 32]);
        let payload = key_signing_payload(self.user, &self.id, key_id, &public);
        let sig = self.signing.sign(payload.as_bytes());
        SignedKey { key_id: key_id.into(), public_key: public, signature: Self::b64(&sig.to_bytes()) }
    }
}
