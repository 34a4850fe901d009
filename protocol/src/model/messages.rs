//! Wire types of messages: opaque envelopes around end-to-end-encrypted ciphertext.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The largest ciphertext a message may carry.
pub const MAX_CIPHERTEXT: usize = 64 * 1024;
/// The longest message text a client sends (UTF-8 bytes). Encrypted, wrapped and base64-encoded in
/// its envelope, ordinary text of this length stays under `MAX_CIPHERTEXT`; the sealed size is
/// checked again before sending (text that is mostly escapes can grow more).
pub const MAX_TEXT_BYTES: usize = 40_000;
/// The most reactions one person keeps on one message (the server refuses more).
pub const MAX_REACTIONS_PER_PERSON: u64 = 20;
/// The most different reactions a message shows: clients count the first 20 kinds (in the order
/// they were first given) and ignore the rest, the same on every device.
pub const MAX_DISTINCT_REACTIONS: usize = 20;
/// History page sizes.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 100;

/// Encrypted bytes the server stores and relays but never reads. Base64 on the wire; never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Ciphertext(pub Vec<u8>);

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ciphertext(<{} bytes>)", self.0.len())
    }
}

impl Ciphertext {
    pub fn from_base64(text: &str) -> Result<Self, String> {
        STANDARD.decode(text.trim()).map(Self).map_err(|e| format!("is not valid base64 ({e})"))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }
}

impl Serialize for Ciphertext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Ciphertext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// What a message is, as far as the server needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// An encrypted message.
    Text,
    /// An encrypted message about an encrypted file.
    File,
    /// An encrypted reaction (an emoji) to the message named by `reply_to`. The server knows that
    /// someone reacted to that message, never with what.
    Reaction,
}

impl MessageKind {
    pub fn to_db(self) -> i16 {
        match self {
            Self::Text => 0,
            Self::File => 1,
            Self::Reaction => 2,
        }
    }

    pub fn from_db(v: i16) -> Self {
        match v {
            1 => Self::File,
            2 => Self::Reaction,
            _ => Self::Text,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "text" => Some(Self::Text),
            "file" => Some(Self::File),
            "reaction" => Some(Self::Reaction),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: Uuid,
    pub channel_id: Uuid,
    /// The sequence number of the event that created the message.
    pub seq: i64,
    pub sender_id: Uuid,
    pub sender_device: String,
    pub client_txn: String,
    pub kind: MessageKind,
    pub reply_to: Option<Uuid>,
    /// In a thread: the thread's first message (its root), of the same channel. A reaction is in
    /// the thread of the message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<Uuid>,
    pub ciphertext: Ciphertext,
    /// RFC 3339.
    pub created_at: String,
    pub edited_at: Option<String>,
    /// RFC 3339: when the message disappears (sent while its channel had a timer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Edited,
    Deleted,
}

/// One event of a channel's stream. `message` is the message as it is now (for a deleted message,
/// its envelope with empty ciphertext).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEvent {
    pub channel_id: Uuid,
    pub seq: i64,
    pub kind: EventKind,
    pub message: Envelope,
}

/// Unread messages in one channel (messages by others after the user's read cursor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unread {
    pub channel_id: Uuid,
    pub count: u64,
    pub last_read_seq: i64,
}

/// A message with its earlier versions (an edited message keeps them), for "edit history".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditHistory {
    /// The message as it is now.
    pub message: Envelope,
    /// Its earlier versions, oldest first.
    pub earlier: Vec<EarlierVersion>,
}

/// One earlier version of a message: its ciphertext then, and when an edit replaced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierVersion {
    pub ciphertext: Ciphertext,
    /// RFC 3339.
    pub replaced_at: String,
}

/// The most earlier versions one message keeps (the server refuses edits beyond).
pub const MAX_VERSIONS: u64 = 100;

/// The most messages a channel keeps pinned (the server refuses more).
pub const MAX_PINS: u64 = 50;

/// A pinned message, still encrypted, with who pinned it and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub message: Envelope,
    pub pinned_by: Uuid,
    /// RFC 3339.
    pub pinned_at: String,
}

/// Read receipts are kept in conversations of at most this many readers (DMs, group DMs and
/// small channels): beyond, "seen by" says little and costs every reader a frame per read.
pub const MAX_RECEIPT_READERS: u64 = 25;

/// How far another reader of a channel has read (a read receipt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub user_id: Uuid,
    /// The sequence number of the last event they have seen.
    pub seq: i64,
}

/// The most messages one person may have waiting to be sent.
pub const MAX_SCHEDULED_PER_PERSON: u64 = 50;
/// The soonest a message may be scheduled, in seconds from now.
pub const MIN_SCHEDULE_AHEAD_S: i64 = 10;
/// The furthest, in days from now.
pub const MAX_SCHEDULE_AHEAD_DAYS: i64 = 365;

/// A message of mine waiting to be sent, still encrypted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledMessage {
    /// Also the message's id once sent.
    pub id: Uuid,
    pub channel_id: Uuid,
    pub sender_device: String,
    pub reply_to: Option<Uuid>,
    pub ciphertext: Ciphertext,
    /// RFC 3339.
    pub deliver_at: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A thread as its first message (the root) shows it: how many replies, the latest one's
/// sequence number and time, and how far I have read in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSummary {
    pub root: Uuid,
    /// Replies not deleted.
    pub replies: u32,
    /// The sequence number of the latest reply.
    pub last_seq: i64,
    /// RFC 3339: when the latest reply was sent.
    pub last_at: String,
    /// The sequence number of the latest reply I have seen (0: none).
    pub read_seq: i64,
}

/// A page of history, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Messages (never reactions), newest first: of the channel, outside threads; or of one thread.
    pub messages: Vec<Envelope>,
    /// The reactions (not deleted) to the messages of this page, oldest first.
    #[serde(default)]
    pub reactions: Vec<Envelope>,
    /// The threads started on the messages of this page (those with replies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<ThreadSummary>,
    /// Pass as `before_seq` for the next (older) page; `None` at the beginning of the channel.
    pub next_before: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_is_base64_on_the_wire_and_hidden_in_debug() {
        let c = Ciphertext(vec![0, 1, 2, 250]);
        assert_eq!(serde_json::to_string(&c).unwrap(), r#""AAEC+g==""#);
        assert_eq!(serde_json::from_str::<Ciphertext>(r#""AAEC+g==""#).unwrap(), c);
        assert!(serde_json::from_str::<Ciphertext>(r#""not base64!""#).is_err());
        assert_eq!(format!("{c:?}"), "Ciphertext(<4 bytes>)");
    }
}
