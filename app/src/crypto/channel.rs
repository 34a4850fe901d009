//! Megolm for channel messages (community channels, DMs and group DMs alike).
//!
//! Each sending device has one outbound session per channel. Before sending, [`Channels::prepare`]
//! makes sure that session may be used for the channel's current recipient devices (rotating it
//! if anyone left, a device went away or changed keys, or it is 100 messages or 7 days old) and
//! returns the room keys to seal over Olm for devices that do not have it yet. New members get the
//! session at its current index, so they read from the moment they joined.
//!
//! Megolm itself does not refuse replays; [`Channels::decrypt`] does, by remembering which message
//! each (session, index) belongs to. The channel id travels inside the plaintext and is checked.

use super::{
    CryptoError, CryptoResult,
    device::{Device, VerifiedDevice},
    olm::ToDeviceContent,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, hash_map::Entry};
use uuid::Uuid;
use vodozemac::megolm::{GroupSession, InboundGroupSession, MegolmMessage, SessionConfig, SessionKey};

/// An outbound session is replaced after this many messages…
pub const ROTATE_AFTER_MESSAGES: u32 = 100;
/// …or this long (milliseconds), whichever comes first.
pub const ROTATE_AFTER_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// What every channel message encrypts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPlaintext {
    /// Checked on receipt: a ciphertext moved to another channel is refused.
    pub channel_id: Uuid,
    pub body: String,
    /// For an edit: the message it replaces.
    #[serde(default)]
    pub edit_of: Option<Uuid>,
    pub sent_at_ms: u64,
}

/// A channel message as the server stores it (inside `Ciphertext`).
#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u8,
    /// The sending device's Curve25519 key.
    sender_key: String,
    session_id: String,
    body: String,
}

pub(super) struct Outbound {
    pub(super) session: GroupSession,
    pub(super) created_ms: u64,
    pub(super) sent: u32,
    /// Devices the session key was given to.
    pub(super) shared_with: BTreeSet<VerifiedDevice>,
}

pub(super) struct Inbound {
    pub(super) session: InboundGroupSession,
    /// The device whose Olm envelope carried the key: the messages' author.
    pub(super) sender: VerifiedDevice,
}

/// A decrypted message and who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decrypted {
    pub plaintext: ChannelPlaintext,
    pub sender: VerifiedDevice,
    pub index: u32,
}

/// All Megolm state of one device.
#[derive(Default)]
pub struct Channels {
    pub(super) outbound: HashMap<Uuid, Outbound>,
    /// By (channel, sender Curve25519 key, session id).
    pub(super) inbound: HashMap<(Uuid, String, String), Inbound>,
    /// (session id, message index) → the message it was first seen in.
    pub(super) seen: HashMap<(String, u32), Uuid>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("outbound", &self.outbound.len())
            .field("inbound", &self.inbound.len())
            .finish_non_exhaustive()
    }
}

fn malformed(e: impl std::fmt::Display) -> CryptoError {
    CryptoError::Malformed(e.to_string())
}

impl Channels {
    /// Readies the outbound session of `channel` for `recipients` (every verified device of every
    /// current member; this device is skipped) and returns the room keys to seal and send over Olm
    /// before the message itself. Keys are counted as shared once returned: if sending them fails,
    /// call [`Channels::rotate`] so that the next send starts afresh.
    pub fn prepare(
        &mut self,
        me: &Device,
        channel_id: Uuid,
        recipients: &[VerifiedDevice],
        now_ms: u64,
    ) -> Vec<(VerifiedDevice, ToDeviceContent)> {
        let mine = me.as_verified();
        let recipients: BTreeSet<VerifiedDevice> = recipients.iter().filter(|d| **d != mine).cloned().collect();
        let stale = self.outbound.get(&channel_id).is_none_or(|o| {
            o.sent >= ROTATE_AFTER_MESSAGES
                || now_ms.saturating_sub(o.created_ms) >= ROTATE_AFTER_MS
                || !o.shared_with.is_subset(&recipients)
        });
        if stale {
            let session = GroupSession::new(SessionConfig::version_1());
            // This device reads its own messages through an inbound copy, like everyone else.
            let own = InboundGroupSession::new(&session.session_key(), SessionConfig::version_1());
            self.inbound.insert(
                (channel_id, mine.curve25519.clone(), session.session_id()),
                Inbound { session: own, sender: mine },
            );
            self.outbound
                .insert(channel_id, Outbound { session, created_ms: now_ms, sent: 0, shared_with: BTreeSet::new() });
        }
        let Some(out) = self.outbound.get_mut(&channel_id) else { return vec![] };
        let (session_id, session_key) = (out.session.session_id(), out.session.session_key().to_base64());
        let missing: Vec<VerifiedDevice> = recipients.difference(&out.shared_with).cloned().collect();
        out.shared_with.extend(missing.iter().cloned());
        missing
            .into_iter()
            .map(|d| {
                let content = ToDeviceContent::RoomKey {
                    channel_id,
                    session_id: session_id.clone(),
                    session_key: session_key.clone(),
                };
                (d, content)
            })
            .collect()
    }

    /// Counts `device` as not having the current session of a channel (its room key could not be
    /// sent): the next `prepare` offers it again.
    pub fn unshare(&mut self, channel_id: Uuid, device: &VerifiedDevice) {
        if let Some(out) = self.outbound.get_mut(&channel_id) {
            out.shared_with.remove(device);
        }
    }

    /// Forgets the outbound session of a channel: the next message starts a new one. Call when a
    /// member leaves or is removed (`prepare` also notices from the recipient list).
    pub fn rotate(&mut self, channel_id: Uuid) {
        self.outbound.remove(&channel_id);
    }

    /// Encrypts a message (or an edit) for a channel readied with [`Channels::prepare`].
    pub fn encrypt(&mut self, me: &Device, plaintext: &ChannelPlaintext) -> CryptoResult<Vec<u8>> {
        let out = self
            .outbound
            .get_mut(&plaintext.channel_id)
            .ok_or_else(|| CryptoError::UnknownSession("no outbound session: prepare the channel first".into()))?;
        let json = serde_json::to_vec(plaintext).map_err(malformed)?;
        let message = out.session.encrypt(json);
        out.sent += 1;
        let envelope = Envelope {
            v: 1,
            sender_key: me.curve25519(),
            session_id: out.session.session_id(),
            body: message.to_base64(),
        };
        serde_json::to_vec(&envelope).map_err(malformed)
    }

    /// Accepts a room key that arrived over Olm from `sender` (already checked by
    /// [`Device::decrypt_to_device`]). Returns the channel it is for.
    pub fn add_room_key(&mut self, sender: &VerifiedDevice, content: &ToDeviceContent) -> CryptoResult<Uuid> {
        let ToDeviceContent::RoomKey { channel_id, session_id, session_key } = content else {
            return Err(CryptoError::Malformed("not a room key".into()));
        };
        let key = SessionKey::from_base64(session_key).map_err(malformed)?;
        let session = InboundGroupSession::new(&key, SessionConfig::version_1());
        if session.session_id() != *session_id {
            return Err(CryptoError::Malformed("the room key does not match its session id".into()));
        }
        // A key already held is kept: a second copy cannot move the first known index forward or
        // re-attribute the session.
        self.inbound
            .entry((*channel_id, sender.curve25519.clone(), session_id.clone()))
            .or_insert(Inbound { session, sender: sender.clone() });
        Ok(*channel_id)
    }

    /// Decrypts the ciphertext of message `message_id` that arrived in `channel_id`.
    pub fn decrypt(&mut self, channel_id: Uuid, message_id: Uuid, bytes: &[u8]) -> CryptoResult<Decrypted> {
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(malformed)?;
        if envelope.v != 1 {
            return Err(CryptoError::Malformed(format!("envelope version {}", envelope.v)));
        }
        let message = MegolmMessage::from_base64(&envelope.body).map_err(malformed)?;
        let key = (channel_id, envelope.sender_key, envelope.session_id.clone());
        let inbound =
            self.inbound.get_mut(&key).ok_or_else(|| CryptoError::UnknownSession(envelope.session_id.clone()))?;
        let decrypted = inbound.session.decrypt(&message).map_err(|e| CryptoError::Decrypt(e.to_string()))?;
        let plaintext: ChannelPlaintext = serde_json::from_slice(&decrypted.plaintext).map_err(malformed)?;
        if plaintext.channel_id != channel_id {
            return Err(CryptoError::WrongChannel);
        }
        let sender = inbound.sender.clone();
        match self.seen.entry((envelope.session_id, decrypted.message_index)) {
            Entry::Occupied(first) if *first.get() != message_id => return Err(CryptoError::Replay),
            Entry::Occupied(_) => {}
            Entry::Vacant(slot) => {
                slot.insert(message_id);
            }
        }
        Ok(Decrypted { plaintext, sender, index: decrypted.message_index })
    }
}
