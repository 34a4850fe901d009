//! The persistence boundary. Crypto state is sealed into strings under a 32-byte store key that
//! never leaves the browser (vodozemac's pickle encryption: AES-256-CBC + HMAC-SHA-256 per
//! record), then handed to a [`CryptoStore`]: in memory for tests, IndexedDB in the browser.
//!
//! Callers write state *before* sending what it produced (a reused ratchet state would reuse
//! message keys) and after every decryption.

use super::{
    CryptoError, CryptoResult,
    channel::{Channels, Inbound, Outbound},
    device::{Device, VerifiedDevice},
    machine::Machine,
};
use serde::{Deserialize, Serialize};
use std::{cell::RefCell, collections::HashMap, future::Future};
use uuid::Uuid;
use vodozemac::{
    megolm::{GroupSession, GroupSessionPickle, InboundGroupSession, InboundGroupSessionPickle},
    olm::{Account, AccountPickle, Session, SessionPickle},
};

/// The key that seals local crypto state.
pub struct StoreKey(pub [u8; 32]);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

/// Where sealed records live. Async because IndexedDB is.
pub trait CryptoStore {
    fn load(&self, name: &str) -> impl Future<Output = CryptoResult<Option<String>>>;
    fn save(&self, name: &str, sealed: String) -> impl Future<Output = CryptoResult<()>>;
}

/// A store for tests (and for a device that must not persist).
#[derive(Debug, Default)]
pub struct MemoryStore(RefCell<HashMap<String, String>>);

impl CryptoStore for MemoryStore {
    async fn load(&self, name: &str) -> CryptoResult<Option<String>> {
        Ok(self.0.borrow().get(name).cloned())
    }

    async fn save(&self, name: &str, sealed: String) -> CryptoResult<()> {
        self.0.borrow_mut().insert(name.to_owned(), sealed);
        Ok(())
    }
}

impl MemoryStore {
    /// Every sealed record (tests look for leaked secrets in them).
    pub fn dump(&self) -> String {
        self.0.borrow().values().cloned().collect::<Vec<_>>().join("\n")
    }
}

fn store_error(e: impl std::fmt::Display) -> CryptoError {
    CryptoError::Store(e.to_string())
}

#[derive(Serialize, Deserialize)]
struct DeviceRecord {
    user: Uuid,
    device_id: String,
    account: String,
    sessions: HashMap<String, Vec<String>>,
}

#[derive(Serialize, Deserialize)]
struct OutboundRecord {
    channel: Uuid,
    session: String,
    created_ms: u64,
    sent: u32,
    shared_with: Vec<VerifiedDevice>,
}

#[derive(Serialize, Deserialize)]
struct InboundRecord {
    channel: Uuid,
    sender: VerifiedDevice,
    session: String,
}

#[derive(Serialize, Deserialize)]
struct ChannelsRecord {
    outbound: Vec<OutboundRecord>,
    inbound: Vec<InboundRecord>,
    /// Replay memory as first written, an entry per message: still read, no longer written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<(String, u32, Uuid)>,
    /// Replay memory per session: base64 of 20-byte entries (message index as u32 little-endian,
    /// then the message id), a fifth of the size of the form above. Every operation of the
    /// browser runtime writes this record, so its size is the cost of a long history.
    #[serde(default)]
    seen_packed: Vec<(String, String)>,
}

fn pack_seen(seen: &HashMap<(String, u32), Uuid>) -> Vec<(String, String)> {
    use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
    let mut by_session: std::collections::BTreeMap<&str, Vec<u8>> = std::collections::BTreeMap::new();
    for ((session, index), message) in seen {
        let bytes = by_session.entry(session).or_default();
        bytes.extend_from_slice(&index.to_le_bytes());
        bytes.extend_from_slice(message.as_bytes());
    }
    by_session.into_iter().map(|(session, bytes)| (session.to_owned(), STANDARD_NO_PAD.encode(bytes))).collect()
}

fn unpack_seen(packed: Vec<(String, String)>, into: &mut HashMap<(String, u32), Uuid>) -> CryptoResult<()> {
    use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
    for (session, encoded) in packed {
        let bytes = STANDARD_NO_PAD.decode(encoded).map_err(store_error)?;
        if bytes.len() % 20 != 0 {
            return Err(CryptoError::Store("damaged replay memory".into()));
        }
        for entry in bytes.chunks_exact(20) {
            let (index, message) = entry.split_at(4);
            let index = u32::from_le_bytes(index.try_into().map_err(store_error)?);
            let message = Uuid::from_slice(message).map_err(store_error)?;
            into.insert((session.clone(), index), message);
        }
    }
    Ok(())
}

/// Seals the device (account and Olm sessions).
pub fn seal_device(device: &Device, key: &StoreKey) -> CryptoResult<String> {
    let record = DeviceRecord {
        user: device.user,
        device_id: device.device_id.clone(),
        account: device.account.pickle().encrypt(&key.0),
        sessions: device
            .sessions
            .iter()
            .map(|(peer, sessions)| (peer.clone(), sessions.iter().map(|s| s.pickle().encrypt(&key.0)).collect()))
            .collect(),
    };
    serde_json::to_string(&record).map_err(store_error)
}

pub fn open_device(sealed: &str, key: &StoreKey) -> CryptoResult<Device> {
    let record: DeviceRecord = serde_json::from_str(sealed).map_err(store_error)?;
    let account = Account::from_pickle(AccountPickle::from_encrypted(&record.account, &key.0).map_err(store_error)?);
    let mut sessions = HashMap::new();
    for (peer, pickles) in record.sessions {
        let opened: CryptoResult<Vec<Session>> = pickles
            .iter()
            .map(|p| Ok(Session::from_pickle(SessionPickle::from_encrypted(p, &key.0).map_err(store_error)?)))
            .collect();
        sessions.insert(peer, opened?);
    }
    Ok(Device { user: record.user, device_id: record.device_id, account, sessions })
}

/// Seals the Megolm state (outbound and inbound sessions, replay bookkeeping).
pub fn seal_channels(channels: &Channels, key: &StoreKey) -> CryptoResult<String> {
    let record = ChannelsRecord {
        outbound: channels
            .outbound
            .iter()
            .map(|(channel, o)| OutboundRecord {
                channel: *channel,
                session: o.session.pickle().encrypt(&key.0),
                created_ms: o.created_ms,
                sent: o.sent,
                shared_with: o.shared_with.iter().cloned().collect(),
            })
            .collect(),
        inbound: channels
            .inbound
            .iter()
            .map(|((channel, _, _), i)| InboundRecord {
                channel: *channel,
                sender: i.sender.clone(),
                session: i.session.pickle().encrypt(&key.0),
            })
            .collect(),
        seen: vec![],
        seen_packed: pack_seen(&channels.seen),
    };
    serde_json::to_string(&record).map_err(store_error)
}

pub fn open_channels(sealed: &str, key: &StoreKey) -> CryptoResult<Channels> {
    let record: ChannelsRecord = serde_json::from_str(sealed).map_err(store_error)?;
    let mut channels = Channels::default();
    for o in record.outbound {
        let session =
            GroupSession::from_pickle(GroupSessionPickle::from_encrypted(&o.session, &key.0).map_err(store_error)?);
        channels.outbound.insert(
            o.channel,
            Outbound {
                session,
                created_ms: o.created_ms,
                sent: o.sent,
                shared_with: o.shared_with.into_iter().collect(),
            },
        );
    }
    for i in record.inbound {
        let pickle = InboundGroupSessionPickle::from_encrypted(&i.session, &key.0).map_err(store_error)?;
        let session = InboundGroupSession::from_pickle(pickle);
        channels.inbound.insert(
            (i.channel, i.sender.curve25519.clone(), session.session_id()),
            Inbound { session, sender: i.sender },
        );
    }
    channels.seen = record.seen.into_iter().map(|(s, i, m)| ((s, i), m)).collect();
    unpack_seen(record.seen_packed, &mut channels.seen)?;
    Ok(channels)
}

/// Saves the whole state (account and Olm sessions, Megolm sessions, remembered devices).
pub async fn save(store: &impl CryptoStore, machine: &Machine, key: &StoreKey) -> CryptoResult<()> {
    store.save("device", seal_device(&machine.device, key)?).await?;
    store.save("channels", seal_channels(&machine.channels, key)?).await?;
    // Public keys and verification marks: nothing secret (integrity rests on the browser profile).
    store.save("trust", serde_json::to_string(&machine.trust).map_err(store_error)?).await
}

/// Loads the state saved by [`save`], if any.
pub async fn load(store: &impl CryptoStore, key: &StoreKey) -> CryptoResult<Option<Machine>> {
    let Some(device) = store.load("device").await? else { return Ok(None) };
    let mut machine = Machine::new(open_device(&device, key)?);
    if let Some(sealed) = store.load("channels").await? {
        machine.channels = open_channels(&sealed, key)?;
    }
    if let Some(trust) = store.load("trust").await? {
        machine.trust = serde_json::from_str(&trust).map_err(store_error)?;
    }
    Ok(Some(machine))
}
