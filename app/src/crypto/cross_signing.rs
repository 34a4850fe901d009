//! Cross-signing: each person has a master key (Ed25519) that signs their own devices. Verifying
//! one device of a person by SAS also verifies their master key, when that device carries its
//! signature; from then on every device the master key signed is trusted too, without another
//! comparison. The server relays master keys and signatures but cannot make them: a key it swaps
//! in is not the one verified, and signatures are checked here.

use super::{CryptoError, CryptoResult, device::VerifiedDevice};
use crate::model::keys::{CrossSigning, cross_signing_payload};
use serde::{Deserialize, Serialize};
use vodozemac::{Ed25519PublicKey, Ed25519SecretKey, Ed25519Signature};

/// The private half of this person's master key, held by the device that made it.
#[derive(Serialize, Deserialize)]
pub struct MasterSecret(String);

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSecret(..)")
    }
}

impl MasterSecret {
    pub fn generate() -> Self {
        Self(Ed25519SecretKey::new().to_base64())
    }

    fn key(&self) -> CryptoResult<Ed25519SecretKey> {
        Ed25519SecretKey::from_base64(&self.0).map_err(|e| CryptoError::Store(e.to_string()))
    }

    /// The public key, as published.
    pub fn public(&self) -> CryptoResult<String> {
        Ok(self.key()?.public_key().to_base64())
    }

    /// The signature vouching for `device` (its user, id and both keys).
    pub fn sign(&self, device: &VerifiedDevice) -> CryptoResult<String> {
        let payload = cross_signing_payload(device.user, &device.device_id, &device.curve25519, &device.ed25519);
        Ok(self.key()?.sign(payload.as_bytes()).to_base64())
    }
}

/// The devices among `devices` (all of `info`'s person) that `info`'s master key validly signed.
pub fn signed<'a>(info: &CrossSigning, devices: &'a [VerifiedDevice]) -> Vec<&'a VerifiedDevice> {
    let Some(master) = info.master_key.as_deref().and_then(|k| Ed25519PublicKey::from_base64(k).ok()) else {
        return vec![];
    };
    devices
        .iter()
        .filter(|d| {
            info.devices.iter().any(|s| {
                s.device_id == d.device_id
                    && Ed25519Signature::from_base64(&s.signature).is_ok_and(|sig| {
                        let payload = cross_signing_payload(d.user, &d.device_id, &d.curve25519, &d.ed25519);
                        master.verify(payload.as_bytes(), &sig).is_ok()
                    })
            })
        })
        .collect()
}
