//! The persistence boundary. Crypto state is sealed into strings under a 32-byte store key that
//! never leaves the browser, one record per part (the account, each peer's Olm sessions, each
//! Megolm session, each session's replay memory, each remembered device), and handed to a
//! [`CryptoStore`]: in memory for tests, IndexedDB in the browser. A save writes only the records
//! whose plaintext changed. (The first layout, whole-state records under vodozemac's pickle
//! encryption, is still read, and moved to this one on first load.)
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
    /// Every record whose name starts with `prefix`.
    fn load_prefix(&self, prefix: &str) -> impl Future<Output = CryptoResult<Vec<(String, String)>>>;
    /// Writes and deletes records all at once (or none of them).
    fn commit(&self, writes: Vec<(String, String)>, deletes: Vec<String>) -> impl Future<Output = CryptoResult<()>>;
}

/// A store for tests (and for a device that must not persist).
#[derive(Debug, Default)]
pub struct MemoryStore(pub(super) RefCell<HashMap<String, String>>);

impl CryptoStore for MemoryStore {
    async fn load(&self, name: &str) -> CryptoResult<Option<String>> {
        Ok(self.0.borrow().get(name).cloned())
    }

    async fn save(&self, name: &str, sealed: String) -> CryptoResult<()> {
        self.0.borrow_mut().insert(name.to_owned(), sealed);
        Ok(())
    }

    async fn load_prefix(&self, prefix: &str) -> CryptoResult<Vec<(String, String)>> {
        let all = self.0.borrow();
        let mut out: Vec<_> =
            all.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort();
        Ok(out)
    }

    async fn commit(&self, writes: Vec<(String, String)>, deletes: Vec<String>) -> CryptoResult<()> {
        let mut all = self.0.borrow_mut();
        for name in deletes {
            all.remove(&name);
        }
        all.extend(writes);
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
    /// Per channel that shares its history: devices given this device's earlier sessions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history_given: Vec<(Uuid, Vec<VerifiedDevice>)>,
}

fn pack_seen(seen: &HashMap<(String, u32), Uuid>) -> Vec<(String, String)> {
    use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
    let mut by_session: std::collections::BTreeMap<&str, Vec<u8>> = std::collections::BTreeMap::new();
    // In index order: the same memory packs to the same bytes (a save compares them).
    let mut entries: Vec<_> = seen.iter().collect();
    entries.sort_unstable_by_key(|((session, index), _)| (session.as_str(), *index));
    for ((session, index), message) in entries {
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
        history_given: channels
            .history_given
            .iter()
            .map(|(channel, devices)| (*channel, devices.iter().cloned().collect()))
            .collect(),
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
    channels.history_given =
        record.history_given.into_iter().map(|(channel, devices)| (channel, devices.into_iter().collect())).collect();
    Ok(channels)
}

/// Seals any other record (such as the key backup's state) under the store key, bound to its name.
pub fn seal_value<T: Serialize>(name: &str, value: &T, key: &StoreKey) -> CryptoResult<String> {
    use base64::Engine;
    let json = serde_json::to_vec(value).map_err(store_error)?;
    let sealed = super::backup::seal(&key.0, name.as_bytes(), &json)?;
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.encode(sealed))
}

pub fn open_value<T: serde::de::DeserializeOwned>(name: &str, sealed: &str, key: &StoreKey) -> CryptoResult<T> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(sealed).map_err(store_error)?;
    let json = super::backup::open(&key.0, name.as_bytes(), &bytes)
        .ok_or_else(|| CryptoError::Store(format!("the {name} record does not open under this browser's key")))?;
    serde_json::from_slice(&json).map_err(store_error)
}

// The second layout: one sealed record per part of the state, so that an operation writes what it
// changed and nothing else (the first layout rewrote the whole state, ~400 KiB at 10,000 messages,
// on every operation). Each record is JSON (vodozemac's pickles unencrypted inside) sealed with
// XChaCha20-Poly1305 under the store key, bound to its name, so records cannot be swapped.

/// The prefix of every record of the second layout.
const V2: &str = "v2/";
/// The generation: bumped by every save, so another tab's cached copy knows it is stale.
const GENERATION: &str = "v2/generation";

#[derive(Serialize, Deserialize)]
struct AccountRecord {
    user: Uuid,
    device_id: String,
    account: AccountPickle,
}

#[derive(Serialize, Deserialize)]
struct OutboundRecord2 {
    channel: Uuid,
    session: GroupSessionPickle,
    created_ms: u64,
    sent: u32,
    shared_with: Vec<VerifiedDevice>,
}

#[derive(Serialize, Deserialize)]
struct InboundRecord2 {
    channel: Uuid,
    sender: VerifiedDevice,
    session: InboundGroupSessionPickle,
}

/// What this profile's store holds as far as this tab knows: each record's name with a digest of
/// its plaintext, and the generation it read or wrote last.
#[derive(Clone, Debug, Default)]
pub struct Written {
    digests: HashMap<String, [u8; 32]>,
    pub generation: u64,
}

/// What a save wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    pub records: usize,
    pub deleted: usize,
    /// Sealed bytes written.
    pub bytes: usize,
}

fn json(value: &impl Serialize) -> CryptoResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(store_error)
}

/// The plaintext of every record of `machine`, by name.
fn records(machine: &Machine) -> CryptoResult<Vec<(String, Vec<u8>)>> {
    let device = &machine.device;
    let channels = &machine.channels;
    let mut out = vec![(
        format!("{V2}account"),
        json(&AccountRecord {
            user: device.user,
            device_id: device.device_id.clone(),
            account: device.account.pickle(),
        })?,
    )];
    for (peer, sessions) in &device.sessions {
        let pickles: Vec<SessionPickle> = sessions.iter().map(Session::pickle).collect();
        out.push((format!("{V2}olm/{peer}"), json(&pickles)?));
    }
    for (channel, o) in &channels.outbound {
        let record = OutboundRecord2 {
            channel: *channel,
            session: o.session.pickle(),
            created_ms: o.created_ms,
            sent: o.sent,
            shared_with: o.shared_with.iter().cloned().collect(),
        };
        out.push((format!("{V2}out/{channel}"), json(&record)?));
    }
    for ((channel, sender_key, session_id), i) in &channels.inbound {
        let record = InboundRecord2 { channel: *channel, sender: i.sender.clone(), session: i.session.pickle() };
        out.push((format!("{V2}in/{channel}/{sender_key}/{session_id}"), json(&record)?));
    }
    // Replay memory per session: one record each, so a message adds to its session's record only.
    let mut seen: HashMap<&str, HashMap<(String, u32), Uuid>> = HashMap::new();
    for ((session, index), message) in &channels.seen {
        seen.entry(session).or_default().insert((session.clone(), *index), *message);
    }
    for (session, entries) in seen {
        let packed = pack_seen(&entries);
        out.push((format!("{V2}seen/{session}"), json(&packed)?));
    }
    for (channel, devices) in &channels.history_given {
        out.push((format!("{V2}given/{channel}"), json(devices)?));
    }
    for (name, known) in machine.trust.entries() {
        out.push((format!("{V2}trust/{name}"), json(known)?));
    }
    for (user, master) in machine.trust.masters() {
        out.push((format!("{V2}master/{user}"), json(master)?));
    }
    if let Some(secret) = &machine.master {
        out.push((format!("{V2}master-secret"), json(secret)?));
    }
    Ok(out)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    <sha2_11::Sha256 as sha2_11::Digest>::digest(bytes).into()
}

fn seal_record(name: &str, plain: &[u8], key: &StoreKey) -> CryptoResult<String> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.encode(super::backup::seal(&key.0, name.as_bytes(), plain)?))
}

fn open_record<T: serde::de::DeserializeOwned>(
    name: &str,
    sealed: &str,
    key: &StoreKey,
) -> CryptoResult<(T, [u8; 32])> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(sealed).map_err(store_error)?;
    let plain = super::backup::open(&key.0, name.as_bytes(), &bytes)
        .ok_or_else(|| CryptoError::Store("a record does not open under this browser's key".into()))?;
    Ok((serde_json::from_slice(&plain).map_err(store_error)?, digest(&plain)))
}

/// Where the store stands (another tab may have saved since this one last read).
pub async fn generation(store: &impl CryptoStore) -> CryptoResult<u64> {
    Ok(store.load(GENERATION).await?.and_then(|g| g.parse().ok()).unwrap_or(0))
}

/// Saves what changed since `written` (records new or different, records gone), with the next
/// generation, in one commit; `written` then describes the store.
pub async fn save(
    store: &impl CryptoStore,
    machine: &Machine,
    key: &StoreKey,
    written: &mut Written,
) -> CryptoResult<Saved> {
    let mut digests = HashMap::new();
    let mut writes = vec![];
    let mut saved = Saved::default();
    for (name, plain) in records(machine)? {
        let d = digest(&plain);
        if written.digests.get(&name) != Some(&d) {
            let sealed = seal_record(&name, &plain, key)?;
            saved.bytes += sealed.len();
            writes.push((name.clone(), sealed));
        }
        digests.insert(name, d);
    }
    let deletes: Vec<String> = written.digests.keys().filter(|n| !digests.contains_key(*n)).cloned().collect();
    saved.records = writes.len();
    saved.deleted = deletes.len();
    if !writes.is_empty() || !deletes.is_empty() {
        let generation = written.generation + 1;
        writes.push((GENERATION.to_owned(), generation.to_string()));
        store.commit(writes, deletes).await?;
        written.generation = generation;
    }
    written.digests = digests;
    Ok(saved)
}

/// Loads the saved state, if any (a state saved in the first layout is moved to the second).
pub async fn load(store: &impl CryptoStore, key: &StoreKey) -> CryptoResult<Option<(Machine, Written)>> {
    let all = store.load_prefix(V2).await?;
    if all.iter().all(|(name, _)| name == GENERATION) {
        return migrate(store, key).await;
    }
    let mut written = Written::default();
    let mut account = None;
    let mut device_sessions = HashMap::new();
    let mut channels = Channels::default();
    let mut trust = super::trust::Trust::default();
    let mut master = None;
    for (name, sealed) in &all {
        let Some(rest) = name.strip_prefix(V2) else { continue };
        if name == GENERATION {
            written.generation = sealed.parse().unwrap_or(0);
            continue;
        }
        let (kind, id) = rest.split_once('/').unwrap_or((rest, ""));
        let d = match kind {
            "account" => {
                let (record, d): (AccountRecord, _) = open_record(name, sealed, key)?;
                account = Some(record);
                d
            }
            "olm" => {
                let (pickles, d): (Vec<SessionPickle>, _) = open_record(name, sealed, key)?;
                device_sessions.insert(id.to_owned(), pickles.into_iter().map(Session::from_pickle).collect());
                d
            }
            "out" => {
                let (o, d): (OutboundRecord2, _) = open_record(name, sealed, key)?;
                channels.outbound.insert(
                    o.channel,
                    Outbound {
                        session: GroupSession::from_pickle(o.session),
                        created_ms: o.created_ms,
                        sent: o.sent,
                        shared_with: o.shared_with.into_iter().collect(),
                    },
                );
                d
            }
            "in" => {
                let (i, d): (InboundRecord2, _) = open_record(name, sealed, key)?;
                let session = InboundGroupSession::from_pickle(i.session);
                channels.inbound.insert(
                    (i.channel, i.sender.curve25519.clone(), session.session_id()),
                    Inbound { session, sender: i.sender },
                );
                d
            }
            "seen" => {
                let (packed, d): (Vec<(String, String)>, _) = open_record(name, sealed, key)?;
                unpack_seen(packed, &mut channels.seen)?;
                d
            }
            "given" => {
                let (devices, d): (Vec<VerifiedDevice>, _) = open_record(name, sealed, key)?;
                let channel = Uuid::parse_str(id).map_err(store_error)?;
                channels.history_given.insert(channel, devices.into_iter().collect());
                d
            }
            "trust" => {
                let (known, d) = open_record(name, sealed, key)?;
                trust.insert_entry(id.to_owned(), known);
                d
            }
            "master" => {
                let (master, d) = open_record(name, sealed, key)?;
                trust.insert_master(id.to_owned(), master);
                d
            }
            "master-secret" => {
                let (secret, d) = open_record(name, sealed, key)?;
                master = Some(secret);
                d
            }
            // A later version's record: left as it is.
            _ => continue,
        };
        written.digests.insert(name.clone(), d);
    }
    let Some(account) = account else {
        return Err(CryptoError::Store("the device record is missing".into()));
    };
    let device = Device {
        user: account.user,
        device_id: account.device_id,
        account: Account::from_pickle(account.account),
        sessions: device_sessions,
    };
    let mut machine = Machine::new(device);
    machine.channels = channels;
    machine.trust = trust;
    machine.master = master;
    Ok(Some((machine, written)))
}

/// Moves a state of the first layout (whole-state records) to the second, in one commit.
async fn migrate(store: &impl CryptoStore, key: &StoreKey) -> CryptoResult<Option<(Machine, Written)>> {
    let Some(device) = store.load("device").await? else { return Ok(None) };
    let mut machine = Machine::new(open_device(&device, key)?);
    if let Some(sealed) = store.load("channels").await? {
        machine.channels = open_channels(&sealed, key)?;
    }
    if let Some(trust) = store.load("trust").await? {
        machine.trust = serde_json::from_str(&trust).map_err(store_error)?;
    }
    let mut written = Written::default();
    let mut writes = vec![];
    for (name, plain) in records(&machine)? {
        writes.push((name.clone(), seal_record(&name, &plain, key)?));
        written.digests.insert(name, digest(&plain));
    }
    written.generation = 1;
    writes.push((GENERATION.to_owned(), "1".to_owned()));
    store.commit(writes, vec!["device".into(), "channels".into(), "trust".into()]).await?;
    Ok(Some((machine, written)))
}
