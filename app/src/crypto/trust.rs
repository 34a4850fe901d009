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
pub(super) struct Known {
    ed25519: String,
    verified: bool,
    /// The master key (cross-signing) whose valid signature over this very key was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed_by: Option<String>,
}

/// A person's cross-signing master key as this device knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Master {
    pub(super) key: String,
    /// Verified: one of their devices was verified (SAS) and that device is signed by this key.
    pub(super) verified: bool,
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
    /// Master keys by user id.
    #[serde(default)]
    masters: BTreeMap<String, Master>,
}

fn device_key(device: &VerifiedDevice) -> String {
    format!("{}/{}", device.user, device.device_id)
}

impl Trust {
    /// Every remembered device (`user/device` → what is known), for storing one record each.
    pub(super) fn entries(&self) -> &BTreeMap<String, Known> {
        &self.known
    }

    pub(super) fn insert_entry(&mut self, name: String, known: Known) {
        self.known.insert(name, known);
    }

    pub(super) fn masters(&self) -> &BTreeMap<String, Master> {
        &self.masters
    }

    pub(super) fn insert_master(&mut self, user: String, master: Master) {
        self.masters.insert(user, master);
    }

    /// The master key this device trusts for `user` (verified), if any.
    pub fn verified_master(&self, user: Uuid) -> Option<&str> {
        self.masters.get(&user.to_string()).filter(|m| m.verified).map(|m| m.key.as_str())
    }

    /// The master key last seen for `user`, verified or not.
    pub fn master(&self, user: Uuid) -> Option<&str> {
        self.masters.get(&user.to_string()).map(|m| m.key.as_str())
    }

    /// Remembers `user`'s master key (unverified unless it is the same key already verified).
    /// Returns the previously verified key when this one differs from it: the person's identity
    /// changed, which the UI must say.
    pub fn observe_master(&mut self, user: Uuid, key: &str) -> Option<String> {
        match self.masters.get(&user.to_string()) {
            Some(m) if m.key == key => None,
            Some(m) if m.verified => Some(m.key.clone()),
            _ => {
                self.masters.insert(user.to_string(), Master { key: key.to_owned(), verified: false });
                None
            }
        }
    }

    /// `user`'s master key is trusted from now on (a verified device of theirs carries its
    /// signature, or it is this person's own).
    pub fn verify_master(&mut self, user: Uuid, key: &str) {
        self.masters.insert(user.to_string(), Master { key: key.to_owned(), verified: true });
    }

    /// The master key `master` signed this exact device key (the caller checked the signature).
    /// A device seen for the first time is remembered with it.
    pub fn mark_signed(&mut self, device: &VerifiedDevice, master: &str) {
        let entry = self.known.entry(device_key(device)).or_insert_with(|| Known {
            ed25519: device.ed25519.clone(),
            verified: false,
            signed_by: None,
        });
        if entry.ed25519 == device.ed25519 {
            entry.signed_by = Some(master.to_owned());
        }
    }

    /// Whether `device` is signed by a master key this device verified.
    pub fn is_cross_signed(&self, device: &VerifiedDevice) -> bool {
        self.known.get(&device_key(device)).is_some_and(|k| {
            k.ed25519 == device.ed25519
                && k.signed_by.as_deref().is_some_and(|m| self.verified_master(device.user) == Some(m))
        })
    }

    /// Records a device on first sight; reports a key change without accepting it.
    pub fn observe(&mut self, device: &VerifiedDevice) -> Seen {
        let key = device_key(device);
        match self.known.get(&key) {
            None => {
                self.known.insert(key, Known { ed25519: device.ed25519.clone(), verified: false, signed_by: None });
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
        self.known.insert(
            format!("{user}/{device_id}"),
            Known { ed25519: ed25519.to_owned(), verified: false, signed_by: None },
        );
    }

    /// Whether this exact key was verified: by SAS, or through a master key this device verified
    /// (cross-signing).
    pub fn is_verified(&self, device: &VerifiedDevice) -> bool {
        self.known.get(&device_key(device)).is_some_and(|k| k.verified && k.ed25519 == device.ed25519)
            || self.is_cross_signed(device)
    }

    /// Users with at least one device verified at its current key.
    pub fn verified_users(&self) -> std::collections::BTreeSet<Uuid> {
        self.known
            .iter()
            .filter(|(_, k)| k.verified)
            .filter_map(|(key, _)| key.split('/').next().and_then(|u| Uuid::parse_str(u).ok()))
            .chain(self.masters.iter().filter(|(_, m)| m.verified).filter_map(|(u, _)| Uuid::parse_str(u).ok()))
            .collect()
    }

    fn mark_verified(&mut self, device: &VerifiedDevice) {
        let signed_by = self
            .known
            .get(&device_key(device))
            .filter(|k| k.ed25519 == device.ed25519)
            .and_then(|k| k.signed_by.clone());
        self.known.insert(device_key(device), Known { ed25519: device.ed25519.clone(), verified: true, signed_by });
    }

    /// Whether this exact key was verified by SAS on this device.
    pub fn is_sas_verified(&self, device: &VerifiedDevice) -> bool {
        self.known.get(&device_key(device)).is_some_and(|k| k.verified && k.ed25519 == device.ed25519)
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
