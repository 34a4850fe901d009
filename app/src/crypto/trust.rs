//! Trust in other devices: trust on first use with a loud warning when a device's key changes,
//! and verification by comparing emoji or numbers (SAS) over an Olm channel.
//!
//! The SAS flow, both sides' frames travelling as [`ToDeviceContent`] inside Olm envelopes:
//! 1. The initiator sends `sas_start` with a commitment: SHA-256 of its ephemeral public key and
//!    the transaction id. It cannot change that key after seeing the other's.
//! 2. The responder answers `sas_key` with its ephemeral key.
//! 3. The initiator answers `sas_key` with its key; the responder checks it against the commitment.
//! 4. Both show 7 emoji (or 3 numbers) derived from the shared secret; the people compare them.
//! 5. If they match, each sends `sas_mac`: a MAC of its Ed25519 device key under the shared secret.
//!    Checking the other's MAC proves that the device key the server listed is the one on the other
//!    screen: the device is then marked verified.

use super::{CryptoError, CryptoResult, device::Device, device::VerifiedDevice, olm::ToDeviceContent};
use serde::{Deserialize, Serialize};
use sha2_11::{Digest, Sha256};
use std::collections::BTreeMap;
use uuid::Uuid;
use vodozemac::{
    Curve25519PublicKey,
    sas::{EstablishedSas, Mac, Sas},
};

/// What a device looked like the last time it was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Known {
    ed25519: String,
    verified: bool,
}

/// How a device's keys compare with what was seen before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// First contact: remembered (trust on first use).
    New,
    /// The same key as before.
    Same,
    /// Another key under a known device: show a warning until the user accepts it or verifies.
    Changed { previous: String },
}

/// Remembered devices (persist it with the rest of the crypto state).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// By `user/device` (a string key, so that the map serialises as a JSON object).
    known: BTreeMap<String, Known>,
}

fn device_key(device: &VerifiedDevice) -> String {
    format!("{}/{}", device.user, device.device_id)
}

impl Trust {
    /// Records a device on first sight; reports a key change without accepting it.
    pub fn observe(&mut self, device: &VerifiedDevice) -> Seen {
        let key = device_key(device);
        match self.known.get(&key) {
            None => {
                self.known.insert(key, Known { ed25519: device.ed25519.clone(), verified: false });
                Seen::New
            }
            Some(k) if k.ed25519 == device.ed25519 => Seen::Same,
            Some(k) => Seen::Changed { previous: k.ed25519.clone() },
        }
    }

    /// The user saw the warning and accepts the new key (unverified).
    pub fn accept(&mut self, device: &VerifiedDevice) {
        self.accept_key(device.user, &device.device_id, &device.ed25519);
    }

    /// [`Trust::accept`] by the parts the warning names.
    pub fn accept_key(&mut self, user: Uuid, device_id: &str, ed25519: &str) {
        self.known.insert(format!("{user}/{device_id}"), Known { ed25519: ed25519.to_owned(), verified: false });
    }

    /// Whether this exact key was verified.
    pub fn is_verified(&self, device: &VerifiedDevice) -> bool {
        self.known.get(&device_key(device)).is_some_and(|k| k.verified && k.ed25519 == device.ed25519)
    }

    /// Users with at least one device verified at its current key.
    pub fn verified_users(&self) -> std::collections::BTreeSet<Uuid> {
        self.known
            .iter()
            .filter(|(_, k)| k.verified)
            .filter_map(|(key, _)| key.split('/').next().and_then(|u| Uuid::parse_str(u).ok()))
            .collect()
    }

    fn mark_verified(&mut self, device: &VerifiedDevice) {
        self.known.insert(device_key(device), Known { ed25519: device.ed25519.clone(), verified: true });
    }
}

/// The 64 SAS emoji and their names (the table Matrix clients use, so people recognise them).
pub const SAS_EMOJI: [(&str, &str); 64] = [
    ("🐶", "Dog"),
    ("🐱", "Cat"),
    ("🦁", "Lion"),
    ("🐎", "Horse"),
    ("🦄", "Unicorn"),
    ("🐷", "Pig"),
    ("🐘", "Elephant"),
    ("🐰", "Rabbit"),
    ("🐼", "Panda"),
    ("🐓", "Rooster"),
    ("🐧", "Penguin"),
    ("🐢", "Turtle"),
    ("🐟", "Fish"),
    ("🐙", "Octopus"),
    ("🦋", "Butterfly"),
    ("🌷", "Flower"),
    ("🌳", "Tree"),
    ("🌵", "Cactus"),
    ("🍄", "Mushroom"),
    ("🌏", "Globe"),
    ("🌙", "Moon"),
    ("☁️", "Cloud"),
    ("🔥", "Fire"),
    ("🍌", "Banana"),
    ("🍎", "Apple"),
    ("🍓", "Strawberry"),
    ("🌽", "Corn"),
    ("🍕", "Pizza"),
    ("🎂", "Cake"),
    ("❤️", "Heart"),
    ("😀", "Smiley"),
    ("🤖", "Robot"),
    ("🎩", "Hat"),
    ("👓", "Glasses"),
    ("🔧", "Spanner"),
    ("🎅", "Santa"),
    ("👍", "Thumbs Up"),
    ("☂️", "Umbrella"),
    ("⌛", "Hourglass"),
    ("⏰", "Clock"),
    ("🎁", "Gift"),
    ("💡", "Light Bulb"),
    ("📕", "Book"),
    ("✏️", "Pencil"),
    ("📎", "Paperclip"),
    ("✂️", "Scissors"),
    ("🔒", "Lock"),
    ("🔑", "Key"),
    ("🔨", "Hammer"),
    ("☎️", "Telephone"),
    ("🏁", "Flag"),
    ("🚂", "Train"),
    ("🚲", "Bicycle"),
    ("✈️", "Aeroplane"),
    ("🚀", "Rocket"),
    ("🏆", "Trophy"),
    ("⚽", "Ball"),
    ("🎸", "Guitar"),
    ("🎺", "Trumpet"),
    ("🔔", "Bell"),
    ("⚓", "Anchor"),
    ("🎧", "Headphones"),
    ("📁", "Folder"),
    ("📌", "Pin"),
];

/// What both screens show: 7 emoji (indices into the SAS emoji table) and 3 numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortCode {
    pub emoji: [u8; 7],
    pub decimals: (u16, u16, u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Initiator,
    Responder,
}

enum Stage {
    /// Our ephemeral key, not yet combined.
    Keyed(Sas),
    /// Responder waiting for the initiator's key: ours, and the commitment to theirs.
    AwaitingReveal(Sas, String),
    Established(EstablishedSas),
    Gone,
}

/// One verification with one other device.
pub struct Verification {
    txn: String,
    role: Role,
    me: VerifiedDevice,
    peer: VerifiedDevice,
    stage: Stage,
    /// We confirmed the emoji matched (and sent our MAC).
    confirmed: bool,
    /// Their MAC checked out.
    their_mac_ok: bool,
}

impl std::fmt::Debug for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verification").field("txn", &self.txn).field("peer", &self.peer).finish_non_exhaustive()
    }
}

fn commitment(key: &Curve25519PublicKey, txn: &str) -> String {
    let digest = Sha256::new().chain_update(key.to_base64()).chain_update("|").chain_update(txn).finalize();
    vodozemac::base64_encode(digest)
}

fn refused(why: &'static str) -> CryptoError {
    CryptoError::Malformed(format!("verification: {why}"))
}

impl Verification {
    /// Starts verifying `peer`; send the returned content to it over Olm.
    pub fn start(me: &Device, peer: &VerifiedDevice) -> (Self, ToDeviceContent) {
        let txn = Uuid::new_v4().to_string();
        let sas = Sas::new();
        let content = ToDeviceContent::SasStart { txn: txn.clone(), commitment: commitment(&sas.public_key(), &txn) };
        let flow = Self {
            txn,
            role: Role::Initiator,
            me: me.as_verified(),
            peer: peer.clone(),
            stage: Stage::Keyed(sas),
            confirmed: false,
            their_mac_ok: false,
        };
        (flow, content)
    }

    /// Answers a `sas_start` from `peer` (the device the Olm envelope came from).
    pub fn accept(
        me: &Device,
        peer: &VerifiedDevice,
        start: &ToDeviceContent,
    ) -> CryptoResult<(Self, ToDeviceContent)> {
        let ToDeviceContent::SasStart { txn, commitment } = start else { return Err(refused("not a start")) };
        let sas = Sas::new();
        let reply = ToDeviceContent::SasKey { txn: txn.clone(), key: sas.public_key().to_base64() };
        let flow = Self {
            txn: txn.clone(),
            role: Role::Responder,
            me: me.as_verified(),
            peer: peer.clone(),
            stage: Stage::AwaitingReveal(sas, commitment.clone()),
            confirmed: false,
            their_mac_ok: false,
        };
        Ok((flow, reply))
    }

    pub fn txn(&self) -> &str {
        &self.txn
    }

    /// Both sides derive the same strings: the initiator's identity first.
    fn info(&self, purpose: &str) -> String {
        let (a, b) = match self.role {
            Role::Initiator => (&self.me, &self.peer),
            Role::Responder => (&self.peer, &self.me),
        };
        format!(
            "CHATALOT_SAS_V1|{purpose}|{}|{}|{}|{}|{}|{}|{}",
            a.user, a.device_id, a.ed25519, b.user, b.device_id, b.ed25519, self.txn
        )
    }

    /// Takes the other side's `sas_key`. Returns our key to send back (initiator only) and the
    /// short code to show.
    pub fn receive_key(&mut self, content: &ToDeviceContent) -> CryptoResult<(Option<ToDeviceContent>, ShortCode)> {
        let ToDeviceContent::SasKey { txn, key } = content else { return Err(refused("not a key")) };
        if *txn != self.txn {
            return Err(refused("another transaction"));
        }
        let their = Curve25519PublicKey::from_base64(key).map_err(|e| CryptoError::BadKey(e.to_string()))?;
        let (sas, reply) = match std::mem::replace(&mut self.stage, Stage::Gone) {
            Stage::Keyed(sas) if self.role == Role::Initiator => {
                let reply = ToDeviceContent::SasKey { txn: self.txn.clone(), key: sas.public_key().to_base64() };
                (sas, Some(reply))
            }
            Stage::AwaitingReveal(sas, promised) => {
                if commitment(&their, &self.txn) != promised {
                    return Err(refused("the key does not match its commitment"));
                }
                (sas, None)
            }
            _ => return Err(refused("unexpected key")),
        };
        let established = sas.diffie_hellman(their).map_err(|e| CryptoError::BadKey(e.to_string()))?;
        let bytes = established.bytes(&self.info("SAS"));
        let code = ShortCode { emoji: bytes.emoji_indices(), decimals: bytes.decimals() };
        self.stage = Stage::Established(established);
        Ok((reply, code))
    }

    /// The person confirmed that both screens show the same code: our MAC, to send.
    pub fn confirm(&mut self) -> CryptoResult<ToDeviceContent> {
        let Stage::Established(sas) = &self.stage else { return Err(refused("no code yet")) };
        self.confirmed = true;
        let mac = sas.calculate_mac(&self.me.ed25519, &self.info(&format!("MAC|{}", self.me.device_id)));
        Ok(ToDeviceContent::SasMac { txn: self.txn.clone(), mac: mac.to_base64() })
    }

    /// Takes the other side's MAC. Once both sides confirmed and the MAC checks, the peer's device
    /// key is verified in `trust` and `true` is returned.
    pub fn receive_mac(&mut self, content: &ToDeviceContent, trust: &mut Trust) -> CryptoResult<bool> {
        let ToDeviceContent::SasMac { txn, mac } = content else { return Err(refused("not a MAC")) };
        if *txn != self.txn {
            return Err(refused("another transaction"));
        }
        let Stage::Established(sas) = &self.stage else { return Err(refused("no code yet")) };
        let tag = Mac::from_base64(mac).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        sas.verify_mac(&self.peer.ed25519, &self.info(&format!("MAC|{}", self.peer.device_id)), &tag)
            .map_err(|_| CryptoError::WrongSender("the verification MAC does not match the listed device key"))?;
        self.their_mac_ok = true;
        Ok(self.finish(trust))
    }

    /// Marks the peer verified once both halves are done (call after `confirm` too).
    pub fn finish(&mut self, trust: &mut Trust) -> bool {
        if self.confirmed && self.their_mac_ok {
            trust.mark_verified(&self.peer);
            true
        } else {
            false
        }
    }
}
