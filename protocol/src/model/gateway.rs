//! The real-time gateway protocol (`/ws`), shared by the server and every client: JSON text frames
//! tagged by `type`. Versioned: a client says which protocol it speaks in `hello`; the server
//! answers with the version it speaks in `ready`, and refuses versions it does not know.
//!
//! A connection: the client sends `hello` (with the device it speaks for, and where it left each
//! channel); the server answers `ready` (the channels it is subscribed to, computed from membership,
//! and unread counts), then every missed event per resume point, then live frames. Sends are
//! acknowledged with `sent` only once stored. The server decides subscriptions; the client never
//! asks for a channel.

use super::{
    keys::ToDeviceMessage,
    messages::{ChannelEvent, Ciphertext, Envelope, MessageKind, Unread},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The protocol version this build speaks.
/// 2: others' presence comes in `presences` frames (a snapshot on connect, then batched changes).
pub const PROTOCOL_VERSION: u16 = 2;
/// The largest frame accepted: a maximal ciphertext in base64 plus the envelope around it.
pub const MAX_FRAME_BYTES: usize = 96 * 1024;

/// Where a reconnecting client left a channel: it receives every event after `last_seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    pub channel_id: Uuid,
    pub last_seq: i64,
}

/// What a user shows others. `Invisible` is sent by its owner only; everyone else sees `Offline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Idle,
    Dnd,
    Invisible,
    Offline,
}

impl Presence {
    /// How others see this status: invisible is indistinguishable from offline.
    pub fn as_seen_by_others(self) -> Self {
        if self == Self::Invisible { Self::Offline } else { self }
    }

    /// The stored form of a chosen status (`users.presence`); `None` for `Offline`, which is not a choice.
    pub fn to_db(self) -> Option<i16> {
        match self {
            Self::Online => Some(0),
            Self::Idle => Some(1),
            Self::Dnd => Some(2),
            Self::Invisible => Some(3),
            Self::Offline => None,
        }
    }

    pub fn from_db(v: i16) -> Self {
        match v {
            1 => Self::Idle,
            2 => Self::Dnd,
            3 => Self::Invisible,
            _ => Self::Online,
        }
    }
}

/// Client → server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// First frame: the protocol spoken and where to resume.
    Hello {
        protocol: u16,
        /// The registered device this connection speaks for: to-device messages for it arrive here.
        #[serde(default)]
        device: Option<String>,
        #[serde(default)]
        resume: Vec<ResumePoint>,
    },
    Send {
        channel_id: Uuid,
        device: String,
        client_txn: String,
        kind: MessageKind,
        reply_to: Option<Uuid>,
        /// In a thread: its root.
        #[serde(default)]
        thread_id: Option<Uuid>,
        ciphertext: Ciphertext,
    },
    Edit {
        message_id: Uuid,
        ciphertext: Ciphertext,
    },
    Delete {
        message_id: Uuid,
    },
    Typing {
        channel_id: Uuid,
    },
    SetPresence {
        status: Presence,
    },
    MarkRead {
        channel_id: Uuid,
        seq: i64,
    },
    Ping {
        nonce: u64,
    },
}

/// Why the server refused a frame or closed the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not a known frame, or fields missing.
    BadFrame,
    TooLarge,
    UnsupportedProtocol,
    NotFound,
    Forbidden,
    Invalid,
    RateLimited,
    Unauthenticated,
    Internal,
}

/// Server → client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Ready {
        protocol: u16,
        user_id: Uuid,
        channels: Vec<Uuid>,
        unread: Vec<Unread>,
    },
    /// A message event in a channel the user is in, in sequence order per channel.
    Event {
        event: ChannelEvent,
    },
    /// The acknowledgement of a `send`: the stored message (the original one for a retry).
    Sent {
        client_txn: String,
        message: Envelope,
    },
    /// Show "typing" for `expires_in_ms` unless renewed (or a message from the user arrives).
    Typing {
        channel_id: Uuid,
        user_id: Uuid,
        expires_in_ms: u32,
    },
    /// The user's own status (as they chose it, `invisible` included), on connect and when it changes.
    Presence {
        user_id: Uuid,
        status: Presence,
    },
    /// Others' statuses, many people per frame. After `ready`: everyone online in the user's
    /// communities (whoever is not listed is offline); afterwards, the changes of a short interval,
    /// gathered. Others never appear `invisible`. A frame may list the recipient too: their own
    /// status is the one `presence` frames carry.
    ///
    /// Each list is one string of ids, 22 characters each (the id's 16 bytes in unpadded base64url):
    /// a snapshot of thousands of people is 44 % smaller than as JSON UUIDs.
    Presences {
        #[serde(default, skip_serializing_if = "Vec::is_empty", with = "packed_ids")]
        online: Vec<Uuid>,
        #[serde(default, skip_serializing_if = "Vec::is_empty", with = "packed_ids")]
        idle: Vec<Uuid>,
        #[serde(default, skip_serializing_if = "Vec::is_empty", with = "packed_ids")]
        dnd: Vec<Uuid>,
        #[serde(default, skip_serializing_if = "Vec::is_empty", with = "packed_ids")]
        offline: Vec<Uuid>,
    },
    /// Another session of the same user moved a read cursor.
    Read {
        channel_id: Uuid,
        seq: i64,
    },
    /// Another reader of a small channel read up to `seq` (a read receipt; only from people who
    /// share them, in channels of at most `MAX_RECEIPT_READERS` readers). `seq` 0: they turned
    /// receipts off, forget theirs.
    Receipt {
        channel_id: Uuid,
        user_id: Uuid,
        seq: i64,
    },
    ToDevice {
        message: ToDeviceMessage,
    },
    DeviceRemoved {
        user_id: Uuid,
        device_id: String,
    },
    /// The user can now read this channel (joined, added, new DM).
    ChannelAdded {
        channel_id: Uuid,
    },
    /// The user can no longer read this channel: nothing more about it will arrive.
    ChannelRemoved {
        channel_id: Uuid,
    },
    /// The channel's settings changed (such as who reads its history): read it again.
    ChannelChanged {
        channel_id: Uuid,
    },
    /// A message of the channel was pinned or unpinned: read its pins again.
    PinsChanged {
        channel_id: Uuid,
    },
    /// Someone joined or left the community, was kicked or banned, or changed role: member lists
    /// shown from it are read again. (Who and what is not said: the list says it.)
    MembersChanged {
        community_id: Uuid,
    },
    /// The connection fell behind on this channel: fetch what was missed, then carry on.
    Resync {
        channel_id: Uuid,
        after_seq: i64,
    },
    Error {
        code: ErrorCode,
        message: String,
        client_txn: Option<String>,
    },
    Pong {
        nonce: u64,
    },
}

/// A list of ids as one string: each id's 16 bytes in unpadded base64url, 22 characters, back to back.
mod packed_ids {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use uuid::Uuid;

    const LEN: usize = 22;

    pub fn serialize<S: Serializer>(ids: &[Uuid], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(ids.len() * LEN);
        for id in ids {
            URL_SAFE_NO_PAD.encode_string(id.as_bytes(), &mut out);
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Uuid>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if !text.len().is_multiple_of(LEN) {
            return Err(D::Error::custom(format!("packed ids come in {LEN} characters each")));
        }
        text.as_bytes()
            .chunks(LEN)
            .map(|chunk| {
                let bytes = URL_SAFE_NO_PAD.decode(chunk).map_err(D::Error::custom)?;
                Uuid::from_slice(&bytes).map_err(D::Error::custom)
            })
            .collect()
    }
}

impl ServerFrame {
    /// What this frame says of `user`'s status, if anything.
    pub fn status_of(&self, user: Uuid) -> Option<Presence> {
        match self {
            Self::Presence { user_id, status } => (*user_id == user).then_some(*status),
            _ => self.presence_lists()?.into_iter().find_map(|(ids, status)| ids.contains(&user).then_some(status)),
        }
    }

    /// Every (user, status) a `presences` frame lists.
    pub fn presences(&self) -> Vec<(Uuid, Presence)> {
        let Some(lists) = self.presence_lists() else { return vec![] };
        lists.into_iter().flat_map(|(ids, status)| ids.iter().map(move |id| (*id, status))).collect()
    }

    /// A `presences` frame's lists, each with the status it stands for.
    fn presence_lists(&self) -> Option<[(&[Uuid], Presence); 4]> {
        match self {
            Self::Presences { online, idle, dnd, offline } => Some([
                (online.as_slice(), Presence::Online),
                (idle.as_slice(), Presence::Idle),
                (dnd.as_slice(), Presence::Dnd),
                (offline.as_slice(), Presence::Offline),
            ]),
            _ => None,
        }
    }
}

impl ClientFrame {
    /// Parses one text frame, refusing oversized frames before reading them.
    pub fn decode(text: &str) -> Result<Self, (ErrorCode, String)> {
        if text.len() > MAX_FRAME_BYTES {
            return Err((ErrorCode::TooLarge, format!("frames are at most {MAX_FRAME_BYTES} bytes")));
        }
        serde_json::from_str(text).map_err(|e| (ErrorCode::BadFrame, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_tagged_json() {
        let hello = ClientFrame::Hello {
            protocol: PROTOCOL_VERSION,
            device: None,
            resume: vec![ResumePoint { channel_id: Uuid::nil(), last_seq: 7 }],
        };
        let text = serde_json::to_string(&hello).unwrap();
        assert_eq!(
            text,
            r#"{"type":"hello","protocol":2,"device":null,"resume":[{"channel_id":"00000000-0000-0000-0000-000000000000","last_seq":7}]}"#
        );
        assert_eq!(ClientFrame::decode(&text).unwrap(), hello);
        let typing = serde_json::to_string(&ServerFrame::Typing {
            channel_id: Uuid::nil(),
            user_id: Uuid::nil(),
            expires_in_ms: 1,
        })
        .unwrap();
        assert!(typing.starts_with(r#"{"type":"typing","#), "{typing}");
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let batch = ServerFrame::Presences { online: vec![a], idle: vec![], dnd: vec![], offline: vec![b] };
        let text = serde_json::to_string(&batch).unwrap();
        assert_eq!(
            text, r#"{"type":"presences","online":"AAAAAAAAAAAAAAAAAAAAAQ","offline":"AAAAAAAAAAAAAAAAAAAAAg"}"#,
            "empty lists are left out; ids are packed"
        );
        let many =
            ServerFrame::Presences { online: vec![a, b, Uuid::new_v4()], idle: vec![], dnd: vec![b], offline: vec![] };
        assert_eq!(serde_json::from_str::<ServerFrame>(&serde_json::to_string(&many).unwrap()).unwrap(), many);
        for bad in
            [r#"{"type":"presences","online":"AAAA"}"#, r#"{"type":"presences","online":"!AAAAAAAAAAAAAAAAAAAAA"}"#]
        {
            assert!(serde_json::from_str::<ServerFrame>(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::from_str::<ServerFrame>(&text).unwrap(), batch);
        assert_eq!(
            (batch.status_of(a), batch.status_of(b), batch.status_of(Uuid::nil())),
            (Some(Presence::Online), Some(Presence::Offline), None)
        );
    }

    #[test]
    fn bad_frames_are_refused_with_a_code() {
        assert_eq!(ClientFrame::decode("not json").unwrap_err().0, ErrorCode::BadFrame);
        assert_eq!(ClientFrame::decode(r#"{"type":"launch_missiles"}"#).unwrap_err().0, ErrorCode::BadFrame);
        assert_eq!(ClientFrame::decode(r#"{"type":"typing"}"#).unwrap_err().0, ErrorCode::BadFrame);
        let huge = format!(r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
        assert_eq!(ClientFrame::decode(&huge).unwrap_err().0, ErrorCode::TooLarge);
    }

    #[test]
    fn invisible_looks_offline_to_others() {
        for p in [Presence::Online, Presence::Idle, Presence::Dnd, Presence::Invisible] {
            assert_eq!(Presence::from_db(p.to_db().unwrap()), p);
        }
        assert_eq!(Presence::Offline.to_db(), None);
        assert_eq!(Presence::Invisible.as_seen_by_others(), Presence::Offline);
        assert_eq!(Presence::Dnd.as_seen_by_others(), Presence::Dnd);
    }
}
