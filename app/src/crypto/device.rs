//! This browser's device and the checked view of other devices.

use super::{CryptoError, CryptoResult};
use crate::model::keys::{ClaimedKey, DeviceKeys, SignedKey, device_signing_payload, key_signing_payload};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;
use vodozemac::{
    Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature,
    olm::{Account, Session},
};

/// How many unpublished one-time keys the device keeps on the server (vodozemac stores up to 50
/// public ones; keeping fewer leaves room for keys claimed but not yet used).
pub const ONE_TIME_KEY_TARGET: usize = 25;

/// This device: an Olm account bound to (user, device id).
pub struct Device {
    pub(super) user: Uuid,
    pub(super) device_id: String,
    pub(super) account: Account,
    /// Olm sessions by the peer's Curve25519 key, most recently used first.
    pub(super) sessions: HashMap<String, Vec<Session>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the account (its private keys).
        f.debug_struct("Device").field("user", &self.user).field("device_id", &self.device_id).finish_non_exhaustive()
    }
}

impl Device {
    pub fn new(user: Uuid, device_id: impl Into<String>) -> Self {
        Self { user, device_id: device_id.into(), account: Account::new(), sessions: HashMap::new() }
    }

    pub fn user(&self) -> Uuid {
        self.user
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn ed25519(&self) -> String {
        self.account.ed25519_key().to_base64()
    }

    pub fn curve25519(&self) -> String {
        self.account.curve25519_key().to_base64()
    }

    /// This device as others will see it once they check its keys.
    pub fn as_verified(&self) -> VerifiedDevice {
        VerifiedDevice {
            user: self.user,
            device_id: self.device_id.clone(),
            ed25519: self.ed25519(),
            curve25519: self.curve25519(),
        }
    }

    /// The identity keys to publish, signed over the canonical payload.
    pub fn device_keys(&self) -> DeviceKeys {
        let (curve, ed) = (self.curve25519(), self.ed25519());
        let signature = self.account.sign(device_signing_payload(self.user, &self.device_id, &curve, &ed)).to_base64();
        DeviceKeys { user_id: self.user, device_id: self.device_id.clone(), curve25519: curve, ed25519: ed, signature }
    }

    fn signed(&self, key_id: String, key: Curve25519PublicKey) -> SignedKey {
        let public_key = key.to_base64();
        let signature =
            self.account.sign(key_signing_payload(self.user, &self.device_id, &key_id, &public_key)).to_base64();
        SignedKey { key_id, public_key, signature }
    }

    /// One-time keys to upload so that the server holds `ONE_TIME_KEY_TARGET`, given how many it
    /// reports. Call [`Device::mark_published`] once the server has accepted them.
    pub fn one_time_keys_to_publish(&mut self, on_server: u64) -> Vec<SignedKey> {
        let wanted = ONE_TIME_KEY_TARGET.saturating_sub(on_server as usize);
        let unpublished = self.account.one_time_keys().len();
        if unpublished < wanted {
            self.account.generate_one_time_keys(wanted - unpublished);
        }
        let mut keys: Vec<SignedKey> =
            self.account.one_time_keys().into_iter().map(|(id, key)| self.signed(id.to_base64(), key)).collect();
        keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        keys
    }

    /// A fallback key to upload, if the current one was not published yet (or there is none).
    pub fn fallback_key_to_publish(&mut self) -> Option<SignedKey> {
        if self.account.fallback_key().is_empty() {
            self.account.generate_fallback_key();
        }
        self.account.fallback_key().into_iter().next().map(|(id, key)| self.signed(id.to_base64(), key))
    }

    /// The server accepted the keys returned by the `*_to_publish` calls.
    pub fn mark_published(&mut self) {
        self.account.mark_keys_as_published();
    }

    /// Replaces the fallback key (after it was used, or periodically). Publish the new one.
    pub fn rotate_fallback_key(&mut self) -> Option<SignedKey> {
        self.account.generate_fallback_key();
        self.fallback_key_to_publish()
    }
}

/// Another device (or this one), whose published keys were checked against its own Ed25519
/// signature. Only these are ever encrypted to or believed as senders.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VerifiedDevice {
    pub user: Uuid,
    pub device_id: String,
    pub ed25519: String,
    pub curve25519: String,
}

impl VerifiedDevice {
    pub(super) fn ed25519_key(&self) -> CryptoResult<Ed25519PublicKey> {
        Ed25519PublicKey::from_base64(&self.ed25519).map_err(|e| CryptoError::BadKey(e.to_string()))
    }

    pub(super) fn curve25519_key(&self) -> CryptoResult<Curve25519PublicKey> {
        Curve25519PublicKey::from_base64(&self.curve25519).map_err(|e| CryptoError::BadKey(e.to_string()))
    }
}

fn check_signature(key: &Ed25519PublicKey, payload: &str, signature: &str) -> Result<(), String> {
    let signature = Ed25519Signature::from_base64(signature).map_err(|e| e.to_string())?;
    key.verify(payload.as_bytes(), &signature).map_err(|e| e.to_string())
}

/// Checks a device's published keys: well-formed, for the user the server said, and signed by the
/// device's own Ed25519 key. A server that lies about a device cannot produce this signature.
pub fn verify_device(keys: &DeviceKeys, expected_user: Uuid) -> CryptoResult<VerifiedDevice> {
    if keys.user_id != expected_user {
        return Err(CryptoError::BadDeviceSignature("listed under another user".into()));
    }
    let ed = Ed25519PublicKey::from_base64(&keys.ed25519).map_err(|e| CryptoError::BadKey(e.to_string()))?;
    Curve25519PublicKey::from_base64(&keys.curve25519).map_err(|e| CryptoError::BadKey(e.to_string()))?;
    let payload = device_signing_payload(keys.user_id, &keys.device_id, &keys.curve25519, &keys.ed25519);
    check_signature(&ed, &payload, &keys.signature).map_err(CryptoError::BadDeviceSignature)?;
    Ok(VerifiedDevice {
        user: keys.user_id,
        device_id: keys.device_id.clone(),
        ed25519: keys.ed25519.clone(),
        curve25519: keys.curve25519.clone(),
    })
}

/// Checks a claimed one-time (or fallback) key against the device it claims to belong to.
pub fn verify_claimed_key(device: &VerifiedDevice, claimed: &ClaimedKey) -> CryptoResult<Curve25519PublicKey> {
    if claimed.user_id != device.user || claimed.device_id != device.device_id {
        return Err(CryptoError::BadKeySignature("the key was claimed for another device".into()));
    }
    let key = &claimed.key;
    let payload = key_signing_payload(device.user, &device.device_id, &key.key_id, &key.public_key);
    check_signature(&device.ed25519_key()?, &payload, &key.signature).map_err(CryptoError::BadKeySignature)?;
    Curve25519PublicKey::from_base64(&key.public_key).map_err(|e| CryptoError::BadKey(e.to_string()))
}
