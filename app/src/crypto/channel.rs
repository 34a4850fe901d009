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
    olm::{ForwardedSession, ToDeviceContent},
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, hash_map::Entry};
use uuid::Uuid;
use vodozemac::megolm::{
    ExportedSessionKey, GroupSession, InboundGroupSession, MegolmMessage, SessionConfig, SessionKey,
};

/// An outbound session is replaced after this many messages…
pub const ROTATE_AFTER_MESSAGES: u32 = 100;
/// …or this long (milliseconds), whichever comes first.
pub const ROTATE_AFTER_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// A device joining a channel that shares its history gets this many of the sender's own sessions
/// there at most (a session covers up to 100 messages)…
pub const HISTORY_SESSIONS: usize = 120;
/// …in to-device messages of at most this many sessions each (an exported session is about 300
/// bytes of JSON; a to-device payload is at most 64 KiB).
pub const HISTORY_PER_MESSAGE: usize = 60;

/// A device forwards at most this many sessions to another device of its person at once…
pub const FORWARD_SESSIONS: usize = 2000;
/// …in to-device messages of at most this many sessions each (an author and an exported session
/// are about 800 bytes once sealed; a to-device payload is at most 64 KiB).
pub const FORWARD_PER_MESSAGE: usize = 40;

/// What every channel message encrypts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPlaintext {
    /// Checked on receipt: a ciphertext moved to another channel is refused.
    pub channel_id: Uuid,
    pub body: String,
    /// For an edit: the message it replaces.
    #[serde(default)]
    pub edit_of: Option<Uuid>,
    /// For a reaction (`body` is the emoji): the message it answers. Checked on receipt against
    /// the envelope, so the server can neither move a reaction nor pass a message off as one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub react_to: Option<Uuid>,
    /// The message this one replies to, bound so that the server cannot change which message a
    /// reply quotes (checked when `binds_reply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Uuid>,
    /// Set by every client that binds replies: then `reply_to` must be what the envelope says,
    /// including "none". Messages written before (without it) are not checked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binds_reply: bool,
    /// A forwarded message: the name of its author where it was first written, as the person who
    /// forwarded it saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<String>,
    /// A poll (`body` is its question): its options and rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<crate::poll::Poll>,
    /// A vote in the poll `react_to` names (sent as a reaction, so that the server cannot tell a
    /// vote from a reaction): the indices of the options chosen (none: the vote taken back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote: Option<Vec<u8>>,
    /// In a thread: its first message. Checked on receipt against the envelope, so the server can
    /// move a message neither into a thread nor out of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Uuid>,
    /// A bookmark, in my own notes channel (`body` is my note): the message it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<crate::chat::Bookmarked>,
    pub sent_at_ms: u64,
}

impl ChannelPlaintext {
    /// A new message (not an edit, a reaction or a forward), with its reply bound.
    pub fn message(channel_id: Uuid, body: String, reply_to: Option<Uuid>, sent_at_ms: u64) -> Self {
        Self {
            channel_id,
            body,
            edit_of: None,
            react_to: None,
            reply_to,
            binds_reply: true,
            forwarded_from: None,
            poll: None,
            vote: None,
            thread: None,
            bookmark: None,
            sent_at_ms,
        }
    }
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
    /// Per channel that shares its history: the devices this device gave its earlier sessions to.
    pub(super) history_given: HashMap<Uuid, BTreeSet<VerifiedDevice>>,
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

    /// For a channel whose newcomers read its history: this device's own sessions there (from
    /// their first message), for each recipient that has not had them yet. Sent with the room key;
    /// if sending fails, call [`Channels::ungive_history`].
    pub fn share_history(
        &mut self,
        me: &Device,
        channel_id: Uuid,
        recipients: &[VerifiedDevice],
    ) -> Vec<(VerifiedDevice, ToDeviceContent)> {
        let mine = me.as_verified();
        let given = self.history_given.entry(channel_id).or_default();
        let missing: Vec<VerifiedDevice> =
            recipients.iter().filter(|d| **d != mine && !given.contains(*d)).cloned().collect();
        if missing.is_empty() {
            return vec![];
        }
        given.extend(missing.iter().cloned());
        let mut own: Vec<(String, String)> = self
            .inbound
            .iter()
            .filter(|((channel, sender_key, _), _)| *channel == channel_id && *sender_key == mine.curve25519)
            .map(|((_, _, session_id), i)| (session_id.clone(), i.session.export_at_first_known_index().to_base64()))
            .collect();
        own.sort();
        own.truncate(HISTORY_SESSIONS);
        let mut out = vec![];
        for device in missing {
            for chunk in own.chunks(HISTORY_PER_MESSAGE) {
                out.push((device.clone(), ToDeviceContent::History { channel_id, sessions: chunk.to_vec() }));
            }
        }
        out
    }

    /// Sessions to forward to another device of this person: those `wanted` (channel, author's
    /// Curve25519 key, session id) that this device holds, or all of them (at most
    /// [`FORWARD_SESSIONS`]); in messages of [`FORWARD_PER_MESSAGE`].
    pub fn forward(&self, wanted: Option<&[(Uuid, String, String)]>) -> Vec<ToDeviceContent> {
        let mut sessions: Vec<ForwardedSession> = match wanted {
            Some(wanted) => wanted.iter().filter_map(|k| self.inbound.get(k).map(|i| (k, i))).collect::<Vec<_>>(),
            None => self.inbound.iter().collect(),
        }
        .into_iter()
        .map(|((channel_id, _, session_id), i)| ForwardedSession {
            channel_id: *channel_id,
            author: i.sender.clone(),
            session_id: session_id.clone(),
            exported: i.session.export_at_first_known_index().to_base64(),
        })
        .collect();
        sessions.truncate(FORWARD_SESSIONS);
        sessions.chunks(FORWARD_PER_MESSAGE).map(|c| ToDeviceContent::Forward { sessions: c.to_vec() }).collect()
    }

    /// Accepts sessions forwarded by another device of this person (the caller checked that it
    /// is one, and verified). Returns how many were taken.
    pub fn add_forwarded(&mut self, content: &ToDeviceContent) -> CryptoResult<usize> {
        let ToDeviceContent::Forward { sessions } = content else {
            return Err(CryptoError::Malformed("not a forward".into()));
        };
        if sessions.len() > FORWARD_PER_MESSAGE {
            return Err(CryptoError::Malformed("too many sessions in one forward".into()));
        }
        let mut taken = 0;
        for s in sessions {
            let key = ExportedSessionKey::from_base64(&s.exported).map_err(malformed)?;
            if self.import(s.channel_id, &s.author, &s.session_id, &key).is_ok() {
                taken += 1;
            }
        }
        Ok(taken)
    }

    /// The author's Curve25519 key and session id a channel ciphertext names (to ask for it).
    pub fn session_of(bytes: &[u8]) -> Option<(String, String)> {
        let envelope: Envelope = serde_json::from_slice(bytes).ok()?;
        Some((envelope.sender_key, envelope.session_id))
    }

    /// Counts `device` as not having this device's history of a channel (it could not be sent).
    pub fn ungive_history(&mut self, channel_id: Uuid, device: &VerifiedDevice) {
        if let Some(given) = self.history_given.get_mut(&channel_id) {
            given.remove(device);
        }
    }

    /// Accepts earlier sessions that arrived over Olm from `sender` (the author of their
    /// messages: the sessions are filed under its key). A copy that starts earlier replaces the
    /// one held; one that starts later is ignored. Returns the channel they are for.
    pub fn add_history(&mut self, sender: &VerifiedDevice, content: &ToDeviceContent) -> CryptoResult<Uuid> {
        let ToDeviceContent::History { channel_id, sessions } = content else {
            return Err(CryptoError::Malformed("not a history share".into()));
        };
        if sessions.len() > HISTORY_PER_MESSAGE {
            return Err(CryptoError::Malformed("too many sessions in one history share".into()));
        }
        for (session_id, exported) in sessions {
            let key = ExportedSessionKey::from_base64(exported).map_err(malformed)?;
            self.import(*channel_id, sender, session_id, &key)?;
        }
        Ok(*channel_id)
    }

    /// Files an exported session under its author: kept if new; merged with the copy held (the
    /// earlier start wins) if they are the same session; a copy that is not the same session as
    /// the one held under that id is refused.
    pub(super) fn import(
        &mut self,
        channel_id: Uuid,
        author: &VerifiedDevice,
        session_id: &str,
        key: &ExportedSessionKey,
    ) -> CryptoResult<()> {
        let mut session = InboundGroupSession::import(key, SessionConfig::version_1());
        if session.session_id() != session_id {
            return Err(CryptoError::Malformed("a shared session does not match its id".into()));
        }
        match self.inbound.entry((channel_id, author.curve25519.clone(), session_id.to_owned())) {
            Entry::Vacant(slot) => {
                slot.insert(Inbound { session, sender: author.clone() });
            }
            Entry::Occupied(mut held) => {
                let merged = held.get_mut().session.merge(&mut session);
                held.get_mut().session = merged
                    .ok_or_else(|| CryptoError::Malformed("a shared session conflicts with the one held".into()))?;
            }
        }
        Ok(())
    }

    /// Counts `device` as not having the current session of a channel (its room key could not be
    /// sent): the next `prepare` offers it again.
    pub fn unshare(&mut self, channel_id: Uuid, device: &VerifiedDevice) {
        if let Some(out) = self.outbound.get_mut(&channel_id) {
            out.shared_with.remove(device);
        }
    }

    /// This browser took a new device identity: its outbound sessions (and whom they and its
    /// history were given to) belong to the old one. Inbound sessions stay: the history stays
    /// readable.
    pub fn forget_outbound(&mut self) {
        self.outbound.clear();
        self.history_given.clear();
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
        let decrypted = inbound.session.decrypt(&message).map_err(|e| match e {
            vodozemac::megolm::DecryptionError::UnknownMessageIndex(..) => CryptoError::BeforeKey,
            e => CryptoError::Decrypt(e.to_string()),
        })?;
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
