//! The hub: this node's open sockets, indexed by user, channel and community, and the dispatch of
//! signals to them. Dispatch never waits: each socket has a bounded queue. When a socket's queue is
//! full, channel events for that channel are dropped and the socket is told to resync from the
//! last sequence it was given; anything that cannot be resynced (to-device, membership changes)
//! closes the socket instead, and the client resumes from the database. Memory stays bounded.

use super::Signal;
use bytes::Bytes;
use protocol::model::{
    gateway::{Presence, ServerFrame},
    messages::ChannelEvent,
};
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// Frames waiting for one socket. Small: a socket this far behind is told to resync.
pub const QUEUE_CAPACITY: usize = 256;

/// How long a typing indicator shows unless renewed.
pub const TYPING_EXPIRES_MS: u32 = 6_000;

/// Presence changes are gathered for this long, then told in one `presences` frame per community:
/// a thousand people connecting at once cost each socket a few frames, not a thousand.
pub const PRESENCE_BATCH: std::time::Duration = std::time::Duration::from_millis(250);

/// People listed in one `presences` frame at most (about 2.3 KiB): a socket's write buffer keeps the
/// size of the largest frame it ever wrote, so large communities get several frames, not a huge one.
pub const PRESENCE_PER_FRAME: usize = 100;

/// What a socket task takes from its queue: a pointer wide, since every socket's queue keeps a
/// block of 32 slots allocated (16 bytes a slot, not the 64 that an inline event would take).
#[derive(Debug)]
pub enum Outbound {
    /// A channel event, serialised once and shared by every recipient.
    Event(Arc<SharedEvent>),
    /// Any other frame, serialised once and shared by every recipient (UTF-8 JSON).
    Frame(Arc<Bytes>),
    /// Membership may have changed: recompute subscriptions from the database.
    Resubscribe,
}

/// A channel event as every socket of its channel gets it.
#[derive(Debug)]
pub struct SharedEvent {
    pub channel_id: Uuid,
    pub seq: i64,
    /// The `event` frame (UTF-8 JSON).
    pub text: Bytes,
}

/// Why the hub closed a socket (a WebSocket close code and reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl Close {
    pub const SESSION_ENDED: Self = Self { code: 4001, reason: "session ended" };
    pub const TOO_SLOW: Self = Self { code: 4008, reason: "too slow: reconnect and resume" };
    pub const SHUTDOWN: Self = Self { code: 1012, reason: "server restarting" };
}

/// The channels a user may read (each with its community, `None` for DMs) and their communities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscriptions {
    pub channels: HashMap<Uuid, Option<Uuid>>,
    pub communities: HashSet<Uuid>,
}

/// What registering a socket gives its task.
#[derive(Debug)]
pub struct Registration {
    pub id: u64,
    pub rx: mpsc::Receiver<Outbound>,
    pub closed: watch::Receiver<Option<Close>>,
    /// Who is online in the socket's communities, as of registering: `presences` frames, one per
    /// community (changes after it arrive through `rx`).
    pub presence: Vec<Bytes>,
    /// Set when events were dropped for this socket: only then need it ask `take_lagging` (which
    /// takes the hub's lock, as every dispatch does).
    pub lagging: Arc<AtomicBool>,
}

#[derive(Clone)]
pub struct Hub {
    node: Uuid,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("node", &self.node).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Conn>,
    by_user: HashMap<Uuid, HashSet<u64>>,
    by_channel: HashMap<Uuid, HashSet<u64>>,
    by_community: HashMap<Uuid, HashSet<u64>>,
    presence: HashMap<Uuid, UserPresence>,
    /// Presence changes not yet told, per community: user → status as others see it.
    pending_presence: HashMap<Uuid, HashMap<Uuid, Presence>>,
    /// Whether a flush of `pending_presence` is on its way.
    flush_scheduled: bool,
    /// Who is online in a community, encoded once and shared by every socket that connects, until
    /// the community's next presence change is flushed.
    presence_snapshots: HashMap<Uuid, Arc<[Bytes]>>,
    /// What this node last learned about sessions' liveness (`session::resolve` asks here first).
    sessions: HashMap<Uuid, SessionLiveness>,
}

/// Whether a session was live when this node last looked, and when that was.
struct SessionLiveness {
    user: Uuid,
    live: bool,
    checked: std::time::Instant,
}

/// Sessions remembered at most; past it, entries older than the freshness window are dropped.
const MAX_REMEMBERED_SESSIONS: usize = 50_000;

struct Conn {
    user: Uuid,
    session: Uuid,
    device: Option<String>,
    subs: Subscriptions,
    tx: mpsc::Sender<Outbound>,
    closed: watch::Sender<Option<Close>>,
    /// Channels whose events were dropped, with the last sequence this socket was given before.
    lagging: HashMap<Uuid, i64>,
    /// Whether `lagging` may hold something (shared with the socket's task).
    lag_flag: Arc<AtomicBool>,
}

/// A user some node has sockets for.
struct UserPresence {
    chosen: Presence,
    nodes: HashSet<Uuid>,
    communities: Vec<Uuid>,
    /// What others were last told.
    shown: Presence,
}

/// Whether a frame may be dropped when the queue is full (typing, presence), or must arrive or close.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loss {
    Droppable,
    CloseInstead,
}

fn encode(f: &ServerFrame) -> Bytes {
    // Serialising these types cannot fail (no maps with non-string keys, no custom serialisers).
    Bytes::from(serde_json::to_string(f).unwrap_or_default())
}

fn frame(f: &ServerFrame) -> Arc<Bytes> {
    Arc::new(encode(f))
}

impl Hub {
    pub fn new(node: Uuid) -> Self {
        Self { node, inner: Arc::default() }
    }

    /// This node's id (in presence signals).
    pub fn node(&self) -> Uuid {
        self.node
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the indexes half-updated in a way that matters
        // more than refusing every socket would; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// Adds a socket. Events for its channels queue up from now on.
    pub fn register(&self, user: Uuid, session: Uuid, device: Option<String>, subs: Subscriptions) -> Registration {
        let mut inner = self.lock();
        Self::add(&mut inner, user, session, device, subs)
    }

    /// Adds a socket unless its user already has `max` on this node (checked and added under one
    /// lock, so racing connections cannot slip past the limit).
    pub fn register_within(
        &self,
        max: usize,
        user: Uuid,
        session: Uuid,
        device: Option<String>,
        subs: Subscriptions,
    ) -> Option<Registration> {
        let mut inner = self.lock();
        if inner.by_user.get(&user).is_some_and(|ids| ids.len() >= max) {
            return None;
        }
        Some(Self::add(&mut inner, user, session, device, subs))
    }

    fn add(inner: &mut Inner, user: Uuid, session: Uuid, device: Option<String>, subs: Subscriptions) -> Registration {
        inner.next_id += 1;
        let id = inner.next_id;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (closed_tx, closed) = watch::channel(None);
        inner.by_user.entry(user).or_default().insert(id);
        index(inner, id, &subs);
        let presence = presence_snapshots(inner, &subs.communities);
        let lag_flag = Arc::new(AtomicBool::new(false));
        let lagging = HashMap::new();
        let conn = Conn { user, session, device, subs, tx, closed: closed_tx, lagging, lag_flag: lag_flag.clone() };
        inner.conns.insert(id, conn);
        Registration { id, rx, closed, presence, lagging: lag_flag }
    }

    /// Removes a socket. Returns the presence signal to publish if it was its user's last one here.
    pub fn unregister(&self, id: u64) -> Option<Signal> {
        let mut inner = self.lock();
        let conn = remove(&mut inner, id)?;
        self.offline_if_last(&inner, conn.user)
    }

    fn offline_if_last(&self, inner: &Inner, user: Uuid) -> Option<Signal> {
        if inner.by_user.contains_key(&user) {
            return None;
        }
        let p = inner.presence.get(&user)?;
        Some(Signal::Presence {
            user_id: user,
            node: self.node,
            status: p.chosen,
            connected: false,
            communities: p.communities.clone(),
        })
    }

    /// The status a user chose, while they are connected anywhere.
    pub fn chosen_presence(&self, user: Uuid) -> Option<Presence> {
        self.lock().presence.get(&user).map(|p| p.chosen)
    }

    /// The communities a socket's user is in, as of its last subscription update.
    pub fn communities_of(&self, id: u64) -> Vec<Uuid> {
        self.lock().conns.get(&id).map(|c| c.subs.communities.iter().copied().collect()).unwrap_or_default()
    }

    pub fn is_subscribed(&self, id: u64, channel: Uuid) -> bool {
        self.lock().conns.get(&id).is_some_and(|c| c.subs.channels.contains_key(&channel))
    }

    /// Replaces a socket's subscriptions; returns the channels added and removed.
    pub fn resubscribe(&self, id: u64, subs: Subscriptions) -> (Vec<Uuid>, Vec<Uuid>) {
        let mut inner = self.lock();
        let Some(old) = inner.conns.get(&id).map(|c| c.subs.clone()) else {
            return (vec![], vec![]);
        };
        unindex(&mut inner, id, &old);
        index(&mut inner, id, &subs);
        let added = subs.channels.keys().filter(|c| !old.channels.contains_key(c)).copied().collect();
        let removed = old.channels.keys().filter(|c| !subs.channels.contains_key(c)).copied().collect();
        if let Some(conn) = inner.conns.get_mut(&id) {
            conn.subs = subs;
        }
        (added, removed)
    }

    /// The channels whose events were dropped for this socket (and the last sequence it was given
    /// in each), cleared: the socket tells its client to resync them.
    pub fn take_lagging(&self, id: u64) -> Vec<(Uuid, i64)> {
        self.lock().conns.get_mut(&id).map(|c| c.lagging.drain().collect()).unwrap_or_default()
    }

    /// Who is online in each of `communities` (a community the socket just joined): `presences`
    /// frames, none for a community where nobody is.
    pub fn presence_frames(&self, communities: &HashSet<Uuid>) -> Vec<Bytes> {
        presence_snapshots(&mut self.lock(), communities)
    }

    /// Tells every socket the presence changes gathered since the last flush: one frame per
    /// community, encoded once. Runs `PRESENCE_BATCH` after the first change of a batch (tests
    /// without a runtime call it themselves).
    pub fn flush_presence(&self) {
        let mut inner = self.lock();
        flush_presence(&mut inner);
    }

    /// Presence signals for every user with sockets on this node (`connected: false` when stopping).
    pub fn local_presence(&self, connected: bool) -> Vec<Signal> {
        self.local_presence_of(&self.lock(), connected)
    }

    fn local_presence_of(&self, inner: &Inner, connected: bool) -> Vec<Signal> {
        inner
            .by_user
            .keys()
            .filter_map(|user| {
                let p = inner.presence.get(user)?;
                Some(Signal::Presence {
                    user_id: *user,
                    node: self.node,
                    status: p.chosen,
                    connected,
                    communities: p.communities.clone(),
                })
            })
            .collect()
    }

    /// Whether a session is live, if this node learned it less than `fresh_for` ago (or learned it
    /// ended: an ended session never comes back).
    pub fn session_liveness(&self, session: Uuid, fresh_for: std::time::Duration) -> Option<bool> {
        let inner = self.lock();
        let known = inner.sessions.get(&session)?;
        (!known.live || known.checked.elapsed() < fresh_for).then_some(known.live)
    }

    /// Remembers what the database said about a session.
    pub fn remember_session(&self, user: Uuid, session: Uuid, live: bool) {
        let mut inner = self.lock();
        if inner.sessions.len() >= MAX_REMEMBERED_SESSIONS {
            let window = std::time::Duration::from_secs(60);
            inner.sessions.retain(|_, s| s.checked.elapsed() < window && s.live);
            if inner.sessions.len() >= MAX_REMEMBERED_SESSIONS {
                inner.sessions.clear();
            }
        }
        inner.sessions.insert(session, SessionLiveness { user, live, checked: std::time::Instant::now() });
    }

    /// Closes every socket (shutdown).
    pub fn close_all(&self, why: Close) {
        let mut inner = self.lock();
        let ids: Vec<u64> = inner.conns.keys().copied().collect();
        for id in ids {
            if let Some(conn) = remove(&mut inner, id) {
                conn.closed.send_replace(Some(why));
            }
        }
    }

    /// Hands a signal to the local sockets that may see it. Returns signals to publish in turn.
    pub fn dispatch(&self, signal: Signal) -> Vec<Signal> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        match signal {
            Signal::Event { event } => dispatch_event(inner, &event),
            Signal::Typing { channel_id, user_id } => {
                let f = frame(&ServerFrame::Typing { channel_id, user_id, expires_in_ms: TYPING_EXPIRES_MS });
                let ids = ids_of(&inner.by_channel, [channel_id]);
                let ids: Vec<u64> =
                    ids.into_iter().filter(|id| inner.conns.get(id).is_some_and(|c| c.user != user_id)).collect();
                send_all(inner, ids, &f, Loss::Droppable);
            }
            Signal::Presence { user_id, node, status, connected, communities } => {
                dispatch_presence(inner, user_id, node, status, connected, communities);
                self.schedule_presence_flush(inner);
            }
            Signal::Read { user_id, channel_id, seq } => {
                let f = frame(&ServerFrame::Read { channel_id, seq });
                let ids = ids_of(&inner.by_user, [user_id]);
                send_all(inner, ids, &f, Loss::CloseInstead);
            }
            Signal::Receipt { user_id, channel_id, seq } => {
                // A socket that misses one shows an older "seen by" until the next read or reload.
                let f = frame(&ServerFrame::Receipt { channel_id, user_id, seq });
                let ids: Vec<u64> = ids_of(&inner.by_channel, [channel_id])
                    .into_iter()
                    .filter(|id| inner.conns.get(id).is_some_and(|c| c.user != user_id))
                    .collect();
                send_all(inner, ids, &f, Loss::Droppable);
            }
            Signal::ToDevice { user_id, device_id, message } => {
                let f = frame(&ServerFrame::ToDevice { message });
                let ids: Vec<u64> = ids_of(&inner.by_user, [user_id])
                    .into_iter()
                    .filter(|id| inner.conns.get(id).is_some_and(|c| c.device.as_deref() == Some(device_id.as_str())))
                    .collect();
                send_all(inner, ids, &f, Loss::CloseInstead);
            }
            Signal::DeviceRemoved { user_id, device_id, channels } => {
                let f = frame(&ServerFrame::DeviceRemoved { user_id, device_id });
                let mut ids = ids_of(&inner.by_channel, channels);
                ids.extend(ids_of(&inner.by_user, [user_id]));
                send_all(inner, ids, &f, Loss::CloseInstead);
            }
            Signal::LeftCommunity { user_id, community_id } => {
                for id in ids_of(&inner.by_user, [user_id]) {
                    let Some(old) = inner.conns.get(&id).map(|c| c.subs.clone()) else { continue };
                    let mut subs = old.clone();
                    subs.channels.retain(|_, c| *c != Some(community_id));
                    subs.communities.remove(&community_id);
                    unindex(inner, id, &old);
                    index(inner, id, &subs);
                    let gone: Vec<Uuid> =
                        old.channels.keys().filter(|c| !subs.channels.contains_key(c)).copied().collect();
                    if let Some(conn) = inner.conns.get_mut(&id) {
                        conn.subs = subs;
                        conn.lagging.retain(|c, _| !gone.contains(c));
                    }
                    for channel_id in gone {
                        send_all(inner, [id], &frame(&ServerFrame::ChannelRemoved { channel_id }), Loss::CloseInstead);
                    }
                }
            }
            Signal::Resubscribe { users } => {
                let ids = ids_of(&inner.by_user, users);
                resubscribe_all(inner, ids);
            }
            Signal::CommunityChanged { community_id } => {
                let ids = ids_of(&inner.by_community, [community_id]);
                resubscribe_all(inner, ids);
            }
            Signal::ChannelChanged { channel_id } => {
                let ids = ids_of(&inner.by_channel, [channel_id]);
                send_all(inner, ids, &frame(&ServerFrame::ChannelChanged { channel_id }), Loss::CloseInstead);
            }
            Signal::PinsChanged { channel_id } => {
                // A socket that misses it shows stale pins until the next change or reload.
                let ids = ids_of(&inner.by_channel, [channel_id]);
                send_all(inner, ids, &frame(&ServerFrame::PinsChanged { channel_id }), Loss::Droppable);
            }
            Signal::MembersChanged { community_id } => {
                // A socket that misses it shows a stale list until the next change or reload:
                // not worth closing a slow socket for.
                let ids = ids_of(&inner.by_community, [community_id]);
                send_all(inner, ids, &frame(&ServerFrame::MembersChanged { community_id }), Loss::Droppable);
            }
            Signal::Revoke { user_id, session } => {
                // Server functions stop accepting the session's access tokens at once: one session
                // is known dead; for "all of a user's sessions", forgetting makes the next request
                // ask the database (the session that replaced them stays live).
                match session {
                    Some(s) => {
                        let checked = std::time::Instant::now();
                        inner.sessions.insert(s, SessionLiveness { user: user_id, live: false, checked });
                    }
                    None => inner.sessions.retain(|_, s| s.user != user_id),
                }
                for id in ids_of(&inner.by_user, [user_id]) {
                    if inner.conns.get(&id).is_some_and(|c| session.is_none_or(|s| c.session == s))
                        && let Some(conn) = remove(inner, id)
                    {
                        conn.closed.send_replace(Some(Close::SESSION_ENDED));
                    }
                }
                return self.offline_if_last(inner, user_id).into_iter().collect();
            }
            Signal::PresenceQuery { node } if node != self.node => return self.local_presence_of(inner, true),
            Signal::PresenceQuery { .. } => {}
        }
        vec![]
    }
}

impl Hub {
    /// Flushes pending presence after `PRESENCE_BATCH`, once per batch. Without a Tokio runtime
    /// (unit tests) the caller flushes.
    fn schedule_presence_flush(&self, inner: &mut Inner) {
        if inner.flush_scheduled || inner.pending_presence.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        inner.flush_scheduled = true;
        let hub = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            tokio::time::sleep(PRESENCE_BATCH).await;
            if let Some(hub) = hub.upgrade() {
                let mut inner = hub.lock().unwrap_or_else(|p| p.into_inner());
                flush_presence(&mut inner);
            }
        });
    }
}

fn flush_presence(inner: &mut Inner) {
    inner.flush_scheduled = false;
    for (community, changes) in std::mem::take(&mut inner.pending_presence) {
        inner.presence_snapshots.remove(&community);
        let ids = ids_of(&inner.by_community, [community]);
        for f in presences_frames(changes.into_iter()) {
            send_all(inner, ids.iter().copied(), &Arc::new(f), Loss::Droppable);
        }
    }
}

/// `presences` frames listing each user under their status, `PRESENCE_PER_FRAME` people each.
fn presences_frames(users: impl Iterator<Item = (Uuid, Presence)>) -> Vec<Bytes> {
    let users: Vec<(Uuid, Presence)> = users.collect();
    users
        .chunks(PRESENCE_PER_FRAME)
        .map(|chunk| {
            let (mut online, mut idle, mut dnd, mut offline) = (vec![], vec![], vec![], vec![]);
            for (user, status) in chunk {
                match status {
                    Presence::Online => online.push(*user),
                    Presence::Idle => idle.push(*user),
                    Presence::Dnd => dnd.push(*user),
                    Presence::Invisible | Presence::Offline => offline.push(*user),
                }
            }
            encode(&ServerFrame::Presences { online, idle, dnd, offline })
        })
        .collect()
}

/// The snapshot frames of each of `communities`, one after the other.
fn presence_snapshots(inner: &mut Inner, communities: &HashSet<Uuid>) -> Vec<Bytes> {
    communities.iter().flat_map(|c| presence_snapshot(inner, *c).to_vec()).collect()
}

/// Everyone shown online in `community`, as frames (cached until its next change); none when
/// nobody is.
fn presence_snapshot(inner: &mut Inner, community: Uuid) -> Arc<[Bytes]> {
    if let Some(f) = inner.presence_snapshots.get(&community) {
        return f.clone();
    }
    let online = inner
        .presence
        .iter()
        .filter(|(_, p)| p.shown != Presence::Offline && p.communities.contains(&community))
        .map(|(user, p)| (*user, p.shown));
    let frames: Arc<[Bytes]> = presences_frames(online).into();
    inner.presence_snapshots.insert(community, frames.clone());
    frames
}

fn ids_of(index: &HashMap<Uuid, HashSet<u64>>, keys: impl IntoIterator<Item = Uuid>) -> HashSet<u64> {
    keys.into_iter().filter_map(|k| index.get(&k)).flatten().copied().collect()
}

fn index(inner: &mut Inner, id: u64, subs: &Subscriptions) {
    for channel in subs.channels.keys() {
        inner.by_channel.entry(*channel).or_default().insert(id);
    }
    for community in &subs.communities {
        inner.by_community.entry(*community).or_default().insert(id);
    }
}

fn unindex(inner: &mut Inner, id: u64, subs: &Subscriptions) {
    fn drop_from(index: &mut HashMap<Uuid, HashSet<u64>>, key: &Uuid, id: u64) {
        if let Some(set) = index.get_mut(key) {
            set.remove(&id);
            if set.is_empty() {
                index.remove(key);
            }
        }
    }
    for channel in subs.channels.keys() {
        drop_from(&mut inner.by_channel, channel, id);
    }
    for community in &subs.communities {
        drop_from(&mut inner.by_community, community, id);
    }
}

fn remove(inner: &mut Inner, id: u64) -> Option<Conn> {
    let conn = inner.conns.remove(&id)?;
    unindex(inner, id, &conn.subs);
    if let Some(set) = inner.by_user.get_mut(&conn.user) {
        set.remove(&id);
        if set.is_empty() {
            inner.by_user.remove(&conn.user);
        }
    }
    Some(conn)
}

/// Queues `f` for each socket; a full queue drops it or closes the socket, as `loss` says.
fn send_all(inner: &mut Inner, ids: impl IntoIterator<Item = u64>, f: &Arc<Bytes>, loss: Loss) {
    for id in ids {
        let Some(conn) = inner.conns.get(&id) else { continue };
        if let Err(mpsc::error::TrySendError::Full(_)) = conn.tx.try_send(Outbound::Frame(f.clone()))
            && loss == Loss::CloseInstead
            && let Some(conn) = remove(inner, id)
        {
            conn.closed.send_replace(Some(Close::TOO_SLOW));
        }
    }
}

fn resubscribe_all(inner: &mut Inner, ids: impl IntoIterator<Item = u64>) {
    for id in ids {
        let Some(conn) = inner.conns.get(&id) else { continue };
        if let Err(mpsc::error::TrySendError::Full(_)) = conn.tx.try_send(Outbound::Resubscribe)
            && let Some(conn) = remove(inner, id)
        {
            conn.closed.send_replace(Some(Close::TOO_SLOW));
        }
    }
}

fn dispatch_event(inner: &mut Inner, event: &ChannelEvent) {
    let Some(ids) = inner.by_channel.get(&event.channel_id) else { return };
    let text = encode(&ServerFrame::Event { event: event.clone() });
    let shared = Arc::new(SharedEvent { channel_id: event.channel_id, seq: event.seq, text });
    for id in ids {
        let Some(conn) = inner.conns.get_mut(id) else { continue };
        // Events of one channel can arrive slightly out of order (racing senders): the resync
        // point is the lowest sequence dropped, minus one.
        if let Some(after) = conn.lagging.get_mut(&event.channel_id) {
            *after = (*after).min(event.seq - 1);
            continue;
        }
        let out = Outbound::Event(shared.clone());
        if let Err(mpsc::error::TrySendError::Full(_)) = conn.tx.try_send(out) {
            conn.lagging.insert(event.channel_id, event.seq - 1);
            conn.lag_flag.store(true, Ordering::Release);
        }
    }
}

fn dispatch_presence(
    inner: &mut Inner,
    user: Uuid,
    node: Uuid,
    chosen: Presence,
    connected: bool,
    communities: Vec<Uuid>,
) {
    let p = inner.presence.entry(user).or_insert_with(|| UserPresence {
        chosen,
        nodes: HashSet::new(),
        communities: vec![],
        shown: Presence::Offline,
    });
    p.chosen = chosen;
    // Communities the user just joined: their members learn the user's status even if unchanged.
    let joined: Vec<Uuid> = communities.iter().filter(|c| !p.communities.contains(c)).copied().collect();
    p.communities = communities;
    if connected {
        p.nodes.insert(node);
    } else {
        p.nodes.remove(&node);
    }
    let shown = if p.nodes.is_empty() { Presence::Offline } else { chosen.as_seen_by_others() };
    let changed = shown != p.shown;
    p.shown = shown;
    let communities = p.communities.clone();
    if p.nodes.is_empty() {
        inner.presence.remove(&user);
    }
    let own = ids_of(&inner.by_user, [user]);
    if connected {
        send_all(inner, own, &frame(&ServerFrame::Presence { user_id: user, status: chosen }), Loss::Droppable);
    }
    let audience = if changed {
        communities
    } else if shown != Presence::Offline {
        joined
    } else {
        vec![]
    };
    // Told with the next flush; a later change in the same batch replaces this one.
    for community in audience {
        inner.pending_presence.entry(community).or_default().insert(user, shown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::model::messages::{Ciphertext, Envelope, EventKind, MessageKind};

    fn subs(channels: &[(Uuid, Option<Uuid>)]) -> Subscriptions {
        Subscriptions {
            channels: channels.iter().copied().collect(),
            communities: channels.iter().filter_map(|(_, c)| *c).collect(),
        }
    }

    fn event(channel_id: Uuid, seq: i64) -> Signal {
        Signal::Event {
            event: ChannelEvent {
                channel_id,
                seq,
                kind: EventKind::Created,
                message: Envelope {
                    id: Uuid::now_v7(),
                    channel_id,
                    seq,
                    sender_id: Uuid::nil(),
                    sender_device: "d".into(),
                    client_txn: format!("t{seq}"),
                    kind: MessageKind::Text,
                    reply_to: None,
                    thread_id: None,
                    ciphertext: Ciphertext(vec![1]),
                    created_at: String::new(),
                    edited_at: None,
                    expires_at: None,
                },
            },
        }
    }

    #[test]
    fn a_queued_frame_is_a_pointer_wide() {
        // Each socket's queue keeps a block of 32 slots allocated: this is most of its size.
        assert!(std::mem::size_of::<Outbound>() <= 16, "{} bytes", std::mem::size_of::<Outbound>());
    }

    #[test]
    fn a_full_queue_drops_events_and_asks_for_a_resync_from_the_last_one_given() {
        let hub = Hub::new(Uuid::new_v4());
        let (ch, community) = (Uuid::new_v4(), Uuid::new_v4());
        let mut reg = hub.register(Uuid::new_v4(), Uuid::new_v4(), None, subs(&[(ch, Some(community))]));
        for seq in 1..=(QUEUE_CAPACITY as i64 + 50) {
            hub.dispatch(event(ch, seq));
        }
        assert_eq!(hub.take_lagging(reg.id), vec![(ch, QUEUE_CAPACITY as i64)]);
        let mut seen = 0;
        while let Ok(Outbound::Event(e)) = reg.rx.try_recv() {
            seen += 1;
            assert_eq!(e.seq, seen);
        }
        assert_eq!(seen, QUEUE_CAPACITY as i64, "the queue is bounded");
        assert!(reg.closed.borrow().is_none(), "lagging on events resyncs, it does not close");
    }

    #[test]
    fn leaving_a_community_unsubscribes_at_once() {
        let hub = Hub::new(Uuid::new_v4());
        let (kept, lost, community) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let user = Uuid::new_v4();
        let mut reg = hub.register(user, Uuid::new_v4(), None, subs(&[(kept, None), (lost, Some(community))]));
        hub.dispatch(Signal::LeftCommunity { user_id: user, community_id: community });
        hub.dispatch(event(lost, 1));
        hub.dispatch(event(kept, 1));
        let Outbound::Frame(text) = reg.rx.try_recv().unwrap() else { panic!("expected channel_removed") };
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("channel_removed") && text.contains(&lost.to_string()), "{text}");
        assert!(matches!(reg.rx.try_recv().unwrap(), Outbound::Event(e) if e.channel_id == kept));
        assert!(reg.rx.try_recv().is_err());
    }

    #[test]
    fn a_changed_channel_and_its_pins_are_announced_to_its_readers_only() {
        let hub = Hub::new(Uuid::new_v4());
        let (channel, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut reader = hub.register(Uuid::new_v4(), Uuid::new_v4(), None, subs(&[(channel, None)]));
        let mut outsider = hub.register(Uuid::new_v4(), Uuid::new_v4(), None, subs(&[(other, None)]));
        hub.dispatch(Signal::ChannelChanged { channel_id: channel });
        let Outbound::Frame(text) = reader.rx.try_recv().unwrap() else { panic!("expected channel_changed") };
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("channel_changed") && text.contains(&channel.to_string()), "{text}");
        hub.dispatch(Signal::PinsChanged { channel_id: channel });
        let Outbound::Frame(text) = reader.rx.try_recv().unwrap() else { panic!("expected pins_changed") };
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("pins_changed") && text.contains(&channel.to_string()), "{text}");
        assert!(outsider.rx.try_recv().is_err());
    }

    #[test]
    fn a_receipt_goes_to_the_other_readers_only() {
        let hub = Hub::new(Uuid::new_v4());
        let (channel, other) = (Uuid::new_v4(), Uuid::new_v4());
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let mut reader = hub.register(bob, Uuid::new_v4(), None, subs(&[(channel, None)]));
        let mut herself = hub.register(alice, Uuid::new_v4(), None, subs(&[(channel, None)]));
        let mut outsider = hub.register(Uuid::new_v4(), Uuid::new_v4(), None, subs(&[(other, None)]));
        hub.dispatch(Signal::Receipt { user_id: alice, channel_id: channel, seq: 7 });
        let Outbound::Frame(text) = reader.rx.try_recv().unwrap() else { panic!("expected receipt") };
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains(r#""type":"receipt""#) && text.contains(&alice.to_string()), "{text}");
        assert!(herself.rx.try_recv().is_err());
        assert!(outsider.rx.try_recv().is_err());
    }

    #[test]
    fn changed_members_are_announced_to_the_community_only() {
        let hub = Hub::new(Uuid::new_v4());
        let (community, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut member = hub.register(Uuid::new_v4(), Uuid::new_v4(), None, subs(&[(Uuid::new_v4(), Some(community))]));
        let mut outsider = hub.register(Uuid::new_v4(), Uuid::new_v4(), None, subs(&[(Uuid::new_v4(), Some(other))]));
        hub.dispatch(Signal::MembersChanged { community_id: community });
        let Outbound::Frame(text) = member.rx.try_recv().unwrap() else { panic!("expected members_changed") };
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("members_changed") && text.contains(&community.to_string()), "{text}");
        assert!(outsider.rx.try_recv().is_err());
    }

    #[test]
    fn revoking_a_session_closes_only_its_sockets_and_reports_the_user_offline() {
        let hub = Hub::new(Uuid::new_v4());
        let (user, s1, s2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let a = hub.register(user, s1, None, Subscriptions::default());
        let b = hub.register(user, s2, None, Subscriptions::default());
        hub.dispatch(Signal::Presence {
            user_id: user,
            node: hub.node(),
            status: Presence::Online,
            connected: true,
            communities: vec![],
        });
        assert!(hub.dispatch(Signal::Revoke { user_id: user, session: Some(s1) }).is_empty());
        assert_eq!(*a.closed.borrow(), Some(Close::SESSION_ENDED));
        assert_eq!(*b.closed.borrow(), None);
        let after = hub.dispatch(Signal::Revoke { user_id: user, session: None });
        assert!(matches!(after.as_slice(), [Signal::Presence { connected: false, .. }]), "{after:?}");
        assert_eq!(hub.connections(), 0);
    }

    #[test]
    fn invisible_users_look_offline_to_others_and_invisible_to_themselves() {
        let hub = Hub::new(Uuid::new_v4());
        let (me, mate, community) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut mine = hub.register(me, Uuid::new_v4(), None, subs(&[(Uuid::new_v4(), Some(community))]));
        let mut theirs = hub.register(mate, Uuid::new_v4(), None, subs(&[(Uuid::new_v4(), Some(community))]));
        let presence = |status, connected| Signal::Presence {
            user_id: me,
            node: hub.node(),
            status,
            connected,
            communities: vec![community],
        };
        hub.dispatch(presence(Presence::Online, true));
        hub.flush_presence();
        hub.dispatch(presence(Presence::Invisible, true));
        hub.flush_presence();
        let text = |o: Outbound| match o {
            Outbound::Frame(t) => String::from_utf8_lossy(&t).into_owned(),
            other => panic!("{other:?}"),
        };
        let presences = |online: Vec<Uuid>, offline: Vec<Uuid>| {
            serde_json::to_string(&ServerFrame::Presences { online, idle: vec![], dnd: vec![], offline }).unwrap()
        };
        let online = presences(vec![me], vec![]);
        assert_eq!(text(theirs.rx.try_recv().unwrap()), online);
        assert_eq!(text(theirs.rx.try_recv().unwrap()), presences(vec![], vec![me]));
        // The batches list `me` to my own sockets too; my own status is what `presence` says.
        assert!(text(mine.rx.try_recv().unwrap()).contains(r#""status":"online""#));
        assert_eq!(text(mine.rx.try_recv().unwrap()), online);
        assert!(text(mine.rx.try_recv().unwrap()).contains(r#""status":"invisible""#));
        assert!(hub.presence_frames(&HashSet::from([community])).is_empty(), "nobody shows online");
    }

    /// A thousand people connecting: each socket gets one snapshot and one frame per batch, not a
    /// frame per person (the O(N²) storm).
    #[test]
    fn presence_changes_are_batched_per_community_and_snapshots_shared() {
        let hub = Hub::new(Uuid::new_v4());
        let community = Uuid::new_v4();
        let connect = |user: Uuid| {
            let reg = hub.register(user, Uuid::new_v4(), None, subs(&[(Uuid::new_v4(), Some(community))]));
            hub.dispatch(Signal::Presence {
                user_id: user,
                node: hub.node(),
                status: Presence::Online,
                connected: true,
                communities: vec![community],
            });
            reg
        };
        let early: Vec<Uuid> = (0..500).map(|_| Uuid::new_v4()).collect();
        let mut first = connect(early[0]);
        assert!(first.presence.is_empty(), "nobody was online");
        let mut regs: Vec<Registration> = early[1..].iter().map(|u| connect(*u)).collect();
        hub.flush_presence();
        let late: Vec<Uuid> = (0..500).map(|_| Uuid::new_v4()).collect();
        let newcomer = connect(late[0]);
        regs.extend(late[1..].iter().map(|u| connect(*u)));
        hub.flush_presence();

        let decode = |b: &Bytes| serde_json::from_slice::<ServerFrame>(b).unwrap();
        let drain = |reg: &mut Registration| {
            let mut frames = vec![];
            while let Ok(Outbound::Frame(f)) = reg.rx.try_recv() {
                frames.push(decode(&f));
            }
            frames
        };
        // The first socket: its own status, then each flush's changes, 100 people a frame.
        let frames = drain(&mut first);
        let per_wave = 500usize.div_ceil(PRESENCE_PER_FRAME);
        assert_eq!(
            frames.len(),
            1 + 2 * per_wave,
            "{:?}",
            frames.iter().map(|f| f.presences().len()).collect::<Vec<_>>()
        );
        let seen: HashSet<Uuid> = frames.iter().flat_map(ServerFrame::presences).map(|(u, _)| u).collect();
        assert!(early.iter().chain(&late).all(|u| seen.contains(u)), "every arrival is told");
        // A socket of the second wave: the snapshot names the first wave.
        assert_eq!(newcomer.presence.len(), per_wave);
        let snapshot: HashSet<Uuid> =
            newcomer.presence.iter().flat_map(|f| decode(f).presences()).map(|(u, _)| u).collect();
        assert_eq!(snapshot, early.iter().copied().collect::<HashSet<_>>());
        // Sockets of one wave share the snapshot's bytes (encoded once).
        let (a, b) = (&regs[600].presence[0], &regs[700].presence[0]);
        assert_eq!(a.as_ptr(), b.as_ptr(), "one encoding shared");
        let total: usize = regs.iter_mut().map(|r| drain(r).len()).sum::<usize>() + frames.len();
        assert!(total <= 12 * 1000, "{total} frames for 1,000 connects (a frame per person would be 1,000,000)");
        assert!(newcomer.presence.iter().all(|f| f.len() < 2400), "frames stay small");
    }
}
