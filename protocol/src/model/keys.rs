//! Wire types of the key directory and the to-device queue. The server stores public keys and
//! opaque payloads; it checks signatures but holds no private key.

use super::messages::Ciphertext;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One-time keys per upload, and to-device messages per batch, at most.
pub const MAX_KEYS_PER_UPLOAD: usize = 100;
pub const MAX_TO_DEVICE_BATCH: usize = 100;
/// Undelivered to-device messages one device may have waiting.
pub const MAX_TO_DEVICE_QUEUE: u64 = 1000;

/// A device's public identity keys (unpadded base64), signed by its Ed25519 key over
/// [`device_signing_payload`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeys {
    pub user_id: Uuid,
    pub device_id: String,
    pub curve25519: String,
    pub ed25519: String,
    pub signature: String,
}

/// A one-time or fallback key, signed by the device's Ed25519 key over [`key_signing_payload`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedKey {
    pub key_id: String,
    pub public_key: String,
    pub signature: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCounts {
    pub one_time: u64,
    pub fallback: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedKey {
    pub user_id: Uuid,
    pub device_id: String,
    pub key: SignedKey,
    /// The device had no one-time key left: this is its fallback key (it may be handed out again).
    pub fallback: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingToDevice {
    pub recipient_user: Uuid,
    pub recipient_device: String,
    pub payload: Ciphertext,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToDeviceMessage {
    pub id: Uuid,
    pub sender_user: Uuid,
    pub sender_device: String,
    pub payload: Ciphertext,
}

/// The exact bytes a device signs to publish its identity keys.
pub fn device_signing_payload(user: Uuid, device_id: &str, curve25519: &str, ed25519: &str) -> String {
    format!("chatalot-device-v1\n{user}\n{device_id}\n{curve25519}\n{ed25519}")
}

/// The exact bytes a person's master key signs to vouch for one of their devices (cross-signing):
/// whoever trusts the master key trusts every device it signed.
pub fn cross_signing_payload(user: Uuid, device_id: &str, curve25519: &str, ed25519: &str) -> String {
    format!("chatalot-cross-sign-v1\n{user}\n{device_id}\n{curve25519}\n{ed25519}")
}

/// A person's cross-signing identity as the server relays it: their master key and its signatures
/// over their devices. Clients check every signature; trust comes from verifying the master key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossSigning {
    /// The master key's Ed25519 public key (unpadded base64), if the person has set one up.
    pub master_key: Option<String>,
    /// Devices the master key signed, over [`cross_signing_payload`].
    pub devices: Vec<DeviceSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSignature {
    pub device_id: String,
    pub signature: String,
}

/// The exact bytes a device signs to publish a one-time or fallback key.
pub fn key_signing_payload(user: Uuid, device_id: &str, key_id: &str, public_key: &str) -> String {
    format!("chatalot-key-v1\n{user}\n{device_id}\n{key_id}\n{public_key}")
}
