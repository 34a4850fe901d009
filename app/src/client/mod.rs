//! The browser runtime (hydrated build only): this profile's encryption device ([`vault`]), the
//! gateway connection ([`gateway`]) and the operations the conversation UI calls: open a channel
//! (history, decrypted here), send, edit, delete, typing, read cursors. Results land in the
//! reactive [`Chat`] state the components read.
//!
//! One runtime per signed-in page load; it stops when the signed-in layout goes away (sign out).

pub mod backup;
pub mod desktop;
mod gateway;
pub mod storage;
mod vault;
pub mod verification;

use crate::{
    api::messages::{
        channel_pins, delete_message, edit_message, mark_thread_read, message_history, message_versions, pin_message,
        schedule_message, scheduled_messages, send_message, thread_messages, unread_counts, unschedule_message,
    },
    chat::{Chat, ChatError, KeyNotice, Line, Lock, PENDING_FROM, PinnedLine, Timeline, Unreadable},
    crypto::{
        CryptoError,
        channel::ChannelPlaintext,
        machine::{KeyWarning, Machine},
    },
    model::{
        gateway::ClientFrame,
        messages::{Envelope, EventKind, MessageKind},
    },
};
use futures::channel::mpsc::UnboundedSender;
use leptos::prelude::*;
use std::{cell::RefCell, rc::Rc};
use uuid::Uuid;
use vault::Vault;

thread_local! {
    static RUNTIME: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
    /// The signed-in user whose runtime was started (also when it could not open its device).
    static RUNTIME_USER: std::cell::Cell<Option<Uuid>> = const { std::cell::Cell::new(None) };
}

pub(crate) struct Runtime {
    chat: Chat,
    vault: Vault,
    /// Frames for the current socket (`None` while disconnected).
    outbox: RefCell<Option<UnboundedSender<ClientFrame>>>,
    /// When this tab last said "typing" per channel (ms), to say it at most every 3 s.
    typing_sent: RefCell<std::collections::HashMap<Uuid, f64>>,
    flows: verification::Flows,
    /// The end of the queue of sends: each waits for the one before, so messages typed in quick
    /// succession are stored in the order they were written.
    last_send: RefCell<Option<futures::channel::oneshot::Receiver<()>>>,
    /// Numbers my messages on their way (their keys from `PENDING_FROM`).
    pending_count: std::cell::Cell<u64>,
    /// Held by the one tab of this profile that receives to-device messages (room keys, SAS): two
    /// tabs decrypting the same Olm message would each see the other's copy as a replay.
    leader: RefCell<Option<storage::TabLock>>,
    /// Sessions already asked of this person's other devices (channel, author key, session id).
    requested: RefCell<std::collections::HashSet<(Uuid, String, String)>>,
    /// My bookmarks are being loaded (once per tab).
    loading_notes: std::cell::Cell<bool>,
    /// A key backup upload is running / more keys came in while it ran.
    uploading: std::cell::Cell<bool>,
    upload_again: std::cell::Cell<bool>,
}

/// A message as shown, and its envelope if it waits for its key (to try again).
type Opened = (Line, Option<Envelope>);

fn current() -> Option<Rc<Runtime>> {
    RUNTIME.with_borrow(Clone::clone)
}

/// Milliseconds since the epoch (`dates::now_ms`, as the runtime's timers count them).
pub(crate) fn now_ms() -> f64 {
    crate::dates::now_ms() as f64
}

/// Now on the page's high-resolution clock, as milliseconds since the epoch (comparable between
/// the tabs and browsers of one machine).
pub(crate) fn precise_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or_else(now_ms, |p| p.time_origin() + p.now())
}

/// Where a message's time goes, for the browser bench (`cargo xtask bench`): when the page has set
/// `window.__chatalot_trace` to an array, each traced step appends `[step, started, ended]`
/// ([`precise_ms`]). Otherwise nothing is kept.
pub(crate) fn trace(step: &str, started: f64) {
    use wasm_bindgen::JsCast;
    let Some(window) = web_sys::window() else { return };
    let Ok(list) = js_sys::Reflect::get(&window, &"__chatalot_trace".into()) else { return };
    if let Some(list) = list.dyn_ref::<js_sys::Array>() {
        list.push(&js_sys::Array::of3(&step.into(), &started.into(), &precise_ms().into()));
    }
}

/// Starts the runtime for the signed-in user of `chat` (once per signed-in layout).
pub fn start(chat: Chat) {
    RUNTIME_USER.set(Some(chat.me.get_value()));
    chat.compact.set(local_storage().and_then(|s| s.get_item(COMPACT_KEY).ok().flatten()).as_deref() == Some("1"));
    chat.recent_emoji.set(stored_recent_emoji());
    if desktop::available() {
        // The desktop app's tray shows the total unread count.
        Effect::new(move |_| {
            let total = chat.unread.with(|u| u.as_ref().map_or(0, |u| u.values().map(|u| u.count).sum::<u64>()));
            desktop::set_unread(total);
        });
    }
    leptos::task::spawn_local(async move {
        match Vault::open(chat.me.get_value()).await {
            Ok((vault, status)) => {
                let runtime = Rc::new(Runtime {
                    chat,
                    vault,
                    outbox: RefCell::new(None),
                    typing_sent: Default::default(),
                    flows: Default::default(),
                    last_send: RefCell::new(None),
                    pending_count: std::cell::Cell::new(0),
                    leader: RefCell::new(None),
                    requested: Default::default(),
                    uploading: Default::default(),
                    loading_notes: Default::default(),
                    upload_again: Default::default(),
                });
                RUNTIME.set(Some(runtime.clone()));
                leptos::task::spawn_local(forget_expired(runtime.clone()));
                // Views waiting for the runtime (an open channel after a reload) start now.
                chat.device.set(Some(Ok(status)));
                runtime.lead().await;
                verification::refresh_verified(&runtime).await;
                leptos::task::spawn_local({
                    let runtime = runtime.clone();
                    async move { backup::refresh(&runtime).await }
                });
                gateway::run(runtime).await;
            }
            Err(e) => chat.device.set(Some(Err(e))),
        }
    });
}

/// Every few seconds, forgets the disappearing messages whose time has come, in every timeline
/// opened here, until the runtime stops.
async fn forget_expired(rt: Rc<Runtime>) {
    while rt.is_current() {
        gateway::sleep(5_000).await;
        let now = crate::dates::now_ms();
        let opened: Vec<ArcRwSignal<Timeline>> = rt.chat.timelines.with_value(|m| m.values().cloned().collect());
        for t in opened {
            if t.with_untracked(Timeline::has_expiring) {
                let mut changed = false;
                t.update_untracked(|t| changed = t.forget_expired(now));
                if changed {
                    t.notify();
                }
            }
        }
    }
}

/// Stops the runtime (sign out): the socket closes, nothing more is decrypted.
pub fn stop() {
    if let Some(runtime) = RUNTIME.take() {
        runtime.outbox.borrow_mut().take();
        runtime.leader.borrow_mut().take();
    }
}

impl Runtime {
    /// Becomes the tab that receives to-device messages if no other tab is; otherwise waits in
    /// the background to take over when that tab closes (then reconnects as the leader).
    async fn lead(self: &Rc<Self>) {
        let name = format!("chatalot-leader-{}", self.chat.me.get_value());
        if let Ok(Some(held)) = storage::lock(&name, false).await {
            *self.leader.borrow_mut() = Some(held);
            return;
        }
        let rt = self.clone();
        leptos::task::spawn_local(async move {
            if let Ok(Some(held)) = storage::lock(&name, true).await
                && rt.is_current()
            {
                *rt.leader.borrow_mut() = Some(held);
                // Dropping the outbox ends the current connection; the loop reconnects.
                rt.outbox.borrow_mut().take();
            }
        });
    }

    fn is_leader(&self) -> bool {
        self.leader.borrow().is_some()
    }

    fn is_current(self: &Rc<Self>) -> bool {
        current().is_some_and(|c| Rc::ptr_eq(&c, self))
    }

    fn send_frame(&self, frame: ClientFrame) {
        if let Some(out) = self.outbox.borrow().as_ref() {
            let _ = out.unbounded_send(frame);
        }
    }

    /// Shows the key warnings the last operation raised.
    fn take_warnings(&self, machine: &mut Machine) {
        for w in machine.warnings.drain(..) {
            let notice = match w {
                KeyWarning::Forged { device_id, reason, .. } => KeyNotice {
                    text: format!(
                        "The server lists keys for device {device_id} that it did not sign ({reason}). Nothing is encrypted to it."
                    ),
                    accept: None,
                },
                KeyWarning::MasterChanged { .. } => KeyNotice {
                    text: "The identity key of someone you verified changed. Their devices are no longer trusted \
                           through it; verify them again before trusting what they send."
                        .to_owned(),
                    accept: None,
                },
                KeyWarning::Changed { user, device_id, now, .. } => KeyNotice {
                    text: format!(
                        "The key of device {device_id} changed since you last saw it. Nothing is sent to that device \
                         until you accept the new key or verify its owner. If they did not set that device up again, \
                         someone may be listening in."
                    ),
                    accept: Some((user, device_id, now)),
                },
            };
            self.chat.warnings.update(|all| {
                if !all.contains(&notice) {
                    all.push(notice)
                }
            });
        }
    }

    /// Decrypts envelopes (one lock for the batch) into lines, deleted ones without decrypting.
    async fn open_all(&self, envelopes: Vec<(Envelope, bool)>) -> Vec<(Line, Option<Envelope>)> {
        let result = self
            .vault
            .with(async |m: &mut Machine, _| {
                envelopes
                    .into_iter()
                    .map(|(e, deleted)| {
                        if deleted {
                            return (Line::new(&e, true, Ok((String::new(), false))), None);
                        }
                        match m.open(&e) {
                            Ok(o) => {
                                let line = Line::new(&e, false, Ok((o.body, o.verified)));
                                (
                                    Line {
                                        sender_key: Some(o.sender_key),
                                        forwarded_from: o.forwarded_from,
                                        poll: o.poll,
                                        vote: o.vote,
                                        bookmark: o.bookmark,
                                        ..line
                                    },
                                    None,
                                )
                            }
                            Err(err) => {
                                let why = unreadable(err);
                                let retry = why.awaits_key().then(|| e.clone());
                                (Line::new(&e, false, Err(why)), retry)
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        match result {
            Ok(lines) => lines,
            Err(e) => vec![(
                Line {
                    id: Uuid::nil(),
                    seq: i64::MIN,
                    sender: Uuid::nil(),
                    created_at: String::new(),
                    edited: false,
                    deleted: false,
                    reply_to: None,
                    reacts_to: None,
                    body: Err(Unreadable::Refused(e.to_string())),
                    lock: Lock::Failed,
                    sender_key: None,
                    forwarded_from: None,
                    poll: None,
                    vote: None,
                    thread: None,
                    expires_ms: None,
                    bookmark: None,
                },
                None,
            )],
        }
    }

    /// Asks this person's other verified devices for the keys of messages that did not open
    /// (once per session and page load; devices answer only if they verified this one).
    fn request_missing(self: &Rc<Self>, channel_id: Uuid, envelopes: &[&Envelope]) {
        let mut wanted = vec![];
        for e in envelopes {
            if let Some((author, session)) = crate::crypto::channel::Channels::session_of(&e.ciphertext.0) {
                let key = (channel_id, author, session);
                if self.requested.borrow_mut().insert(key.clone()) {
                    wanted.push(key);
                }
            }
        }
        if wanted.is_empty() {
            return;
        }
        let rt = self.clone();
        leptos::task::spawn_local(async move {
            let asked = rt.vault.with(async |m: &mut Machine, relay| m.request_keys(relay, wanted).await).await;
            if let Ok(Err(e)) | Err(e) = asked {
                leptos::logging::warn!("could not ask your other devices for keys: {e}");
            }
        });
    }

    /// Puts opened lines into the channel's timeline (replacing older versions of the same message).
    /// `live`: events, not a history page (edits of messages above the loaded pages are skipped).
    /// Puts my message in the timeline as it is sent; returns its key there.
    fn show_pending(&self, channel_id: Uuid, body: &str, reply_to: Option<Uuid>, thread: Option<Uuid>) -> i64 {
        let key = PENDING_FROM + self.pending_count.get() as i64;
        self.pending_count.set(self.pending_count.get().wrapping_add(1) % (1 << 40));
        let line = Line {
            id: Uuid::new_v4(),
            seq: key,
            sender: self.chat.me.get_value(),
            created_at: String::from(js_sys::Date::new_0().to_iso_string()),
            edited: false,
            deleted: false,
            reply_to,
            reacts_to: None,
            body: Ok(body.to_owned()),
            lock: Lock::Sending,
            sender_key: None,
            forwarded_from: None,
            poll: None,
            vote: None,
            thread,
            expires_ms: None,
            bookmark: None,
        };
        if let Some(timeline) = self.chat.opened(thread.unwrap_or(channel_id)) {
            timeline.update(|t| {
                t.lines.insert(key, line);
            });
        }
        key
    }

    fn upsert(&self, channel_id: Uuid, lines: Vec<(Line, Option<Envelope>)>, live: bool) {
        self.upsert_replacing(channel_id, lines, live, None);
    }

    /// [`Self::upsert`]; `sent` is the key of the row shown while my message was on its way,
    /// which its stored copy replaces. A thread's lines go to its own timeline (if opened here).
    fn upsert_replacing(&self, channel_id: Uuid, lines: Vec<(Line, Option<Envelope>)>, live: bool, sent: Option<i64>) {
        let mut by_timeline: Vec<(Uuid, Vec<Opened>)> = vec![];
        for (line, retry) in lines {
            // The error line of a store that would not open belongs to the timeline asked for.
            let key = if line.id.is_nil() { channel_id } else { line.thread.unwrap_or(channel_id) };
            match by_timeline.iter_mut().find(|(k, _)| *k == key) {
                Some((_, list)) => list.push((line, retry)),
                None => by_timeline.push((key, vec![(line, retry)])),
            }
        }
        for (key, lines) in by_timeline {
            self.upsert_into(key, lines, live, sent);
        }
    }

    fn upsert_into(&self, key: Uuid, lines: Vec<Opened>, live: bool, sent: Option<i64>) {
        let Some(timeline) = self.chat.opened(key) else { return };
        let me = self.chat.me.get_value();
        timeline.update(|t| {
            for (line, retry) in lines {
                if line.id.is_nil() {
                    t.error = line.body.err().map(|e| match e {
                        Unreadable::Refused(reason) => format!("Messages cannot be opened in this browser: {reason}"),
                        _ => "Messages cannot be opened in this browser.".to_owned(),
                    });
                    continue;
                }
                // An edit or delete of a message older than the loaded pages: shown when scrolled to.
                let oldest = t.oldest_seq();
                if live && !t.lines.contains_key(&line.seq) && !t.at_start && oldest.is_some_and(|o| line.seq < o) {
                    continue;
                }
                match retry {
                    Some(e) => {
                        t.undecrypted.insert(line.seq, e);
                    }
                    None => {
                        t.undecrypted.remove(&line.seq);
                    }
                }
                // A disappearing message erased at its time goes without a trace (not "deleted"),
                // as does one whose time has come here (clocks differ: a minute's slack).
                if line.expired(crate::dates::now_ms(), if line.deleted { 60_000 } else { 0 }) {
                    t.lines.remove(&line.seq);
                    t.remove_reaction(line.seq);
                    t.undecrypted.remove(&line.seq);
                    continue;
                }
                // A reaction goes with its message; one that was removed, or refused, goes.
                if line.reacts_to.is_some() {
                    if line.deleted || matches!(&line.body, Err(why) if !why.awaits_key()) {
                        t.remove_reaction(line.seq);
                    } else {
                        t.add_reaction(line);
                    }
                    continue;
                }
                // The server's copy of my message takes the place of the row shown while it was
                // on its way. Arriving on the socket before the send returned, it is matched by
                // text: sends go in order, so the first such row is its own.
                if let Some(key) = sent {
                    t.lines.remove(&key);
                } else if line.sender == me && !t.lines.contains_key(&line.seq) {
                    let pending =
                        t.lines.range(PENDING_FROM..).find(|(_, p)| p.body == line.body && p.reply_to == line.reply_to);
                    if let Some(key) = pending.map(|(key, _)| *key) {
                        t.lines.remove(&key);
                    }
                }
                t.lines.insert(line.seq, line);
            }
        });
    }

    /// New events of a channel (live, or replayed after a reconnect).
    async fn apply_events(&self, channel_id: Uuid, events: Vec<crate::model::messages::ChannelEvent>) {
        let me = self.chat.me.get_value();
        let viewing = self.chat.viewing.get_untracked() == Some(channel_id);
        let mut newest = 0;
        let mut fresh_from_others = 0;
        // Replies in threads are not the channel's unread messages: their thread counts them.
        let counts = |e: &crate::model::messages::ChannelEvent| {
            e.kind == EventKind::Created
                && e.message.sender_id != me
                && e.message.kind != MessageKind::Reaction
                && e.message.thread_id.is_none()
        };
        for e in &events {
            newest = newest.max(e.seq);
            if counts(e) {
                fresh_from_others += 1;
            }
        }
        // Others' new messages, to look for mentions of me in (after decryption, here only);
        // a mention in a thread counts too.
        let fresh: Vec<(Envelope, bool)> = events
            .iter()
            .filter(|e| !viewing && e.kind == EventKind::Created && e.message.sender_id != me)
            .filter(|e| e.message.kind != MessageKind::Reaction)
            .map(|e| (e.message.clone(), false))
            .collect();
        // Thread summaries on the channel's messages; a reply in the thread open here is read.
        let open_thread = self.chat.thread.get_untracked();
        let mut read_in_thread = None;
        if let Some(timeline) = self.chat.opened(channel_id)
            && events.iter().any(|e| e.message.thread_id.is_some() || e.kind == EventKind::Deleted)
        {
            timeline.update(|t| {
                for e in &events {
                    let reading = viewing && e.message.thread_id.is_some() && e.message.thread_id == open_thread;
                    if reading && e.kind == EventKind::Created {
                        read_in_thread = e.message.thread_id.map(|root| (root, e.seq));
                    }
                    t.count_thread_event(e.seq, e.kind, &e.message, reading);
                }
            });
        }
        if let Some((root, seq)) = read_in_thread {
            leptos::task::spawn_local(async move {
                let _ = mark_thread_read(root, seq).await;
            });
        }
        // Someone's message ends their "typing".
        self.chat.typing.update(|all| {
            if let Some(typing) = all.get_mut(&channel_id) {
                for e in &events {
                    typing.remove(&e.message.sender_id);
                }
            }
        });
        if let Some(timeline) = self.chat.opened(channel_id) {
            let envelopes: Vec<(Envelope, bool)> =
                events.into_iter().map(|e| (e.message, e.kind == EventKind::Deleted)).collect();
            let started = precise_ms();
            let lines = self.open_all(envelopes).await;
            trace("decrypt", started);
            self.upsert(channel_id, lines, true);
            timeline.update(|t| t.last_seq = t.last_seq.max(newest));
            if !self.is_leader() {
                // Another tab receives the room keys; they are in the shared store by now.
                self.retry_undecrypted().await;
            }
        }
        if viewing {
            self.mark_read(channel_id, newest);
        }
        if fresh_from_others > 0 {
            let body = match fresh_from_others {
                1 => "1 new message".to_owned(),
                n => format!("{n} new messages"),
            };
            desktop::notify("Chatalot", &body);
        }
        if !fresh.is_empty() {
            self.count_mentions(channel_id, fresh, false).await;
        }
        if !viewing && fresh_from_others > 0 {
            self.chat.unread.update(|u| {
                if let Some(u) = u.as_mut() {
                    let entry = u.entry(channel_id).or_insert(crate::model::messages::Unread {
                        channel_id,
                        count: 0,
                        last_read_seq: 0,
                    });
                    entry.count += fresh_from_others;
                }
            });
        }
    }

    /// Tries again the messages whose room key had not arrived.
    async fn retry_undecrypted(&self) {
        let opened: Vec<(Uuid, ArcRwSignal<Timeline>)> =
            self.chat.timelines.with_value(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect());
        for (channel_id, timeline) in opened {
            let pending: Vec<(Envelope, bool)> =
                timeline.with_untracked(|t| t.undecrypted.values().map(|e| (e.clone(), false)).collect());
            if !pending.is_empty() {
                let lines = self.open_all(pending).await;
                self.upsert(channel_id, lines, true);
            }
        }
    }

    /// Opens others' messages and adds those that mention me to the channel's mention count
    /// (`replace`: sets it instead, for a recount of everything unread).
    async fn count_mentions(&self, channel_id: Uuid, envelopes: Vec<(Envelope, bool)>, replace: bool) {
        use crate::chat::{Call, call_in};
        let my_name = self.chat.my_name.get_value();
        let lines = self.open_all(envelopes).await;
        let calls: Vec<(Call, Uuid)> =
            lines.iter().filter_map(|(l, _)| l.body.as_ref().ok().map(|b| (call_in(b, &my_name), l.sender))).collect();
        let mut found = calls.iter().filter(|(c, _)| *c == Call::Me).count();
        // Everyone may be called by anyone in a DM, by moderators and above in a community: the
        // member list says who (asked only when someone called everyone).
        if calls.iter().any(|(c, _)| *c == Call::Everyone) {
            let direct = self.chat.direct.with_value(|d| d.contains(&channel_id));
            let callers: std::collections::HashSet<Uuid> = if direct {
                Default::default()
            } else {
                crate::api::spaces::channel_member_list(channel_id)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|m| m.role >= crate::model::spaces::CommunityRole::Moderator)
                    .map(|m| m.user.id)
                    .collect()
            };
            found += calls.iter().filter(|(c, who)| *c == Call::Everyone && (direct || callers.contains(who))).count();
        }
        let found = u32::try_from(found).unwrap_or(u32::MAX);
        if found > 0 || replace {
            self.chat.mentions.update(|m| {
                let n = m.entry(channel_id).or_default();
                *n = if replace { found } else { n.saturating_add(found) };
                if *n == 0 {
                    m.remove(&channel_id);
                }
            });
        }
    }

    /// After a (re)connect: counts the mentions among each channel's unread messages (the first
    /// 100 of each, in at most 50 channels: a bound on the work at start), since they are not
    /// kept anywhere but here.
    async fn recount_mentions(&self, unread: Vec<crate::model::messages::Unread>) {
        let me = self.chat.me.get_value();
        for u in unread.into_iter().filter(|u| u.count > 0).take(50) {
            let after = u.last_read_seq;
            let Ok(events) = crate::api::messages::channel_events(u.channel_id, after, Some(100)).await else {
                continue;
            };
            let fresh = events
                .into_iter()
                .filter(|e| {
                    e.kind == EventKind::Created && e.message.sender_id != me && e.message.kind != MessageKind::Reaction
                })
                .map(|e| (e.message, false))
                .collect();
            self.count_mentions(u.channel_id, fresh, true).await;
        }
    }

    fn mark_read(&self, channel_id: Uuid, seq: i64) {
        if seq <= 0 {
            return;
        }
        self.chat.mentions.update(|m| {
            m.remove(&channel_id);
        });
        self.chat.unread.update(|u| {
            if let Some(entry) = u.as_mut().and_then(|u| u.get_mut(&channel_id)) {
                entry.count = 0;
                entry.last_read_seq = entry.last_read_seq.max(seq);
            }
        });
        self.send_frame(ClientFrame::MarkRead { channel_id, seq });
    }
}

/// What the person is told about a message that did not open.
fn unreadable(e: CryptoError) -> Unreadable {
    match e {
        CryptoError::UnknownSession(_) => Unreadable::Missing,
        CryptoError::BeforeKey => Unreadable::Earlier,
        CryptoError::WrongSender(_) => Unreadable::Refused("its sender is not who the server says".into()),
        CryptoError::WrongChannel => Unreadable::Refused("it was written for another conversation".into()),
        CryptoError::Replay => Unreadable::Refused("it is a copy of an earlier message".into()),
        CryptoError::Store(_) | CryptoError::Relay(_) => {
            Unreadable::Refused("this browser could not open its key store; reload the page".into())
        }
        _ => Unreadable::Refused("it is damaged or was not encrypted by its sender's device".into()),
    }
}

fn runtime() -> Result<Rc<Runtime>, ChatError> {
    current().ok_or(ChatError::NotReady("encryption is still starting in this browser; try again in a moment"))
}

/// Where this browser keeps its choice of the compact timeline.
const COMPACT_KEY: &str = "chatalot.compact";

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

/// Remembers in this browser whether timelines are compact (one line per message).
pub fn set_compact(on: bool) {
    if let Some(storage) = local_storage() {
        let _ = if on { storage.set_item(COMPACT_KEY, "1") } else { storage.remove_item(COMPACT_KEY) };
    }
}

/// Where this browser keeps the emoji it used last (JSON, the latest first).
const RECENT_EMOJI_KEY: &str = "chatalot.emoji.recent";
/// How many it keeps.
const RECENT_EMOJI: usize = 16;

fn stored_recent_emoji() -> Vec<String> {
    let stored = local_storage().and_then(|s| s.get_item(RECENT_EMOJI_KEY).ok().flatten()).unwrap_or_default();
    let mut list: Vec<String> = serde_json::from_str(&stored).unwrap_or_default();
    // Whatever another program left there: short strings only, a bounded list.
    list.retain(|e| !e.is_empty() && e.len() <= 32);
    list.truncate(RECENT_EMOJI);
    list
}

/// Puts an emoji first among the recently used (in this browser).
pub fn remember_emoji(emoji: &str) {
    let Some(rt) = current() else { return };
    let mut list = rt.chat.recent_emoji.get_untracked();
    list.retain(|e| e != emoji);
    list.insert(0, emoji.to_owned());
    list.truncate(RECENT_EMOJI);
    if let (Some(storage), Ok(json)) = (local_storage(), serde_json::to_string(&list)) {
        let _ = storage.set_item(RECENT_EMOJI_KEY, &json);
    }
    rt.chat.recent_emoji.set(list);
}

/// Shows a channel: loads (and decrypts) its newest page the first time, marks it read.
pub fn open_channel(channel_id: Uuid) {
    let Some(rt) = current() else { return };
    let timeline = rt.chat.timeline(channel_id);
    rt.chat.viewing.set(Some(channel_id));
    if timeline.with_untracked(|t| t.loaded || t.loading) {
        // Back in a channel opened before: the divider marks what came while the person was away.
        let read =
            rt.chat.unread.with_untracked(|u| u.as_ref().and_then(|u| u.get(&channel_id)).map(|u| u.last_read_seq));
        let last = timeline.with_untracked(|t| t.last_seq);
        timeline.update(|t| {
            if let Some(read) = read {
                t.read_seq = Some(read);
            }
            t.opened_seq = last;
        });
        rt.mark_read(channel_id, last);
        return;
    }
    timeline.update(|t| t.loading = true);
    leptos::task::spawn_local(async move {
        let read_seq = match rt.chat.unread.with_untracked(|u| u.as_ref().map(|u| u.get(&channel_id).copied())) {
            Some(found) => found.map(|u| u.last_read_seq),
            None => unread_counts()
                .await
                .ok()
                .and_then(|all| all.into_iter().find(|u| u.channel_id == channel_id).map(|u| u.last_read_seq)),
        };
        load_page(&rt, channel_id, None).await;
        timeline.update(|t| {
            t.read_seq = read_seq.or(Some(0));
            t.opened_seq = t.last_seq;
        });
        let last = timeline.with_untracked(|t| t.last_seq);
        if rt.chat.viewing.get_untracked() == Some(channel_id) {
            rt.mark_read(channel_id, last);
        }
    });
}

/// Loads a page of a channel's timeline, or of a thread's (`key` its first message).
async fn load_page(rt: &Rc<Runtime>, key: Uuid, before: Option<i64>) {
    let timeline = rt.chat.timeline(key);
    let thread_of = timeline.with_untracked(|t| t.thread_of);
    let loaded = match thread_of {
        Some(_) => thread_messages(key, before, None).await,
        None => message_history(key, before, None).await,
    };
    let channel_id = thread_of.unwrap_or(key);
    match loaded {
        Ok(page) => {
            let newest = page.messages.first().map_or(0, |m| m.seq);
            if !page.threads.is_empty() {
                timeline.update(|t| t.threads.extend(page.threads.iter().map(|s| (s.root, s.clone()))));
            }
            let envelopes = page.messages.into_iter().chain(page.reactions).map(|m| (m, false)).collect();
            let lines = rt.open_all(envelopes).await;
            let missing: Vec<&Envelope> = lines.iter().filter_map(|(_, retry)| retry.as_ref()).collect();
            rt.request_missing(channel_id, &missing);
            rt.upsert(key, lines, false);
            timeline.update(|t| {
                t.loading = false;
                t.loaded = true;
                t.next_before = page.next_before;
                t.at_start = page.next_before.is_none();
                if before.is_none() {
                    t.last_seq = t.last_seq.max(newest);
                }
            });
        }
        Err(e) => timeline.update(|t| {
            t.loading = false;
            t.error = Some(format!("Could not load messages: {e}"));
        }),
    }
}

/// Loads my bookmarks once per tab: my notes channel's messages (at most 10 pages, the newest
/// 1,000), decrypted here; kept up to date by the gateway like any opened channel.
pub fn load_bookmarks() {
    let Some(rt) = current() else { return };
    if rt.chat.notes.get_untracked().is_some() || rt.loading_notes.replace(true) {
        return;
    }
    leptos::task::spawn_local(async move {
        let Ok(notes) = crate::api::spaces::notes_channel().await else {
            rt.loading_notes.set(false);
            return;
        };
        let timeline = rt.chat.timeline(notes);
        timeline.update(|t| t.loading = true);
        load_page(&rt, notes, None).await;
        for _ in 0..9 {
            let Some(before) = timeline.with_untracked(|t| t.next_before) else { break };
            timeline.update(|t| t.loading = true);
            load_page(&rt, notes, Some(before)).await;
        }
        rt.chat.notes.set(Some(notes));
    });
}

/// Bookmarks a message with a private note (or changes the note of its bookmark): a message in my
/// notes channel, encrypted for my devices only, naming it inside the ciphertext.
pub async fn bookmark(target: crate::chat::Bookmarked, note: String) -> Result<(), ChatError> {
    let rt = runtime()?;
    let notes = match rt.chat.notes.get_untracked() {
        Some(notes) => notes,
        None => crate::api::spaces::notes_channel().await?,
    };
    let existing = rt.chat.opened(notes).and_then(|t| {
        t.with_untracked(|t| {
            t.lines
                .values()
                .find(|l| !l.deleted && l.bookmark.as_ref().is_some_and(|b| b.message_id == target.message_id))
                .map(|l| l.id)
        })
    });
    if let Some(id) = existing {
        return edit(notes, id, note).await;
    }
    let stored = send_now(&rt, notes, note, Sending { bookmark: Some(target), ..Sending::default() }).await?;
    let lines = rt.open_all(vec![(stored, false)]).await;
    rt.upsert(notes, lines, true);
    Ok(())
}

/// Removes a bookmark (`id`: its message in my notes channel).
pub async fn unbookmark(id: Uuid) -> Result<(), ChatError> {
    let rt = runtime()?;
    let notes = rt.chat.notes.get_untracked().ok_or(ChatError::NotReady("bookmarks are still loading"))?;
    delete(notes, id).await
}

/// Opens the thread started on `root` beside its channel: loads (and decrypts) its newest replies
/// the first time, and marks it read.
pub fn open_thread(channel_id: Uuid, root: Uuid) {
    let Some(rt) = current() else { return };
    let timeline = rt.chat.thread_timeline(channel_id, root);
    rt.chat.thread.set(Some(root));
    leptos::task::spawn_local(async move {
        if !timeline.with_untracked(|t| t.loaded || t.loading) {
            timeline.update(|t| t.loading = true);
            load_page(&rt, root, None).await;
        }
        rt.read_thread(channel_id, root);
    });
}

/// Closes the thread open beside the channel (its timeline stays loaded, and up to date, in this tab).
pub fn close_thread() {
    if let Some(rt) = current() {
        rt.chat.thread.set(None);
    }
}

impl Runtime {
    /// Marks the thread started on `root` read up to its latest reply.
    fn read_thread(&self, channel_id: Uuid, root: Uuid) {
        let Some(channel) = self.chat.opened(channel_id) else { return };
        let mut latest = 0;
        channel.update(|t| {
            if let Some(s) = t.threads.get_mut(&root)
                && s.read_seq < s.last_seq
            {
                s.read_seq = s.last_seq;
                latest = s.last_seq;
            }
        });
        if latest > 0 {
            leptos::task::spawn_local(async move {
                let _ = mark_thread_read(root, latest).await;
            });
        }
    }
}

/// Loads the next older page (infinite scroll upward).
pub fn load_older(channel_id: Uuid) {
    let Some(rt) = current() else { return };
    let timeline = rt.chat.timeline(channel_id);
    let Some(before) = timeline.with_untracked(|t| (!t.loading && t.loaded).then_some(t.next_before).flatten()) else {
        return;
    };
    timeline.update(|t| t.loading = true);
    leptos::task::spawn_local(async move { load_page(&rt, channel_id, Some(before)).await });
}

/// The user left the channel view.
pub fn close_channel(channel_id: Uuid) {
    if let Some(rt) = current()
        && rt.chat.viewing.get_untracked() == Some(channel_id)
    {
        rt.chat.viewing.set(None);
    }
}

async fn encrypt(rt: &Runtime, plaintext: ChannelPlaintext) -> Result<String, ChatError> {
    let sealed = rt
        .vault
        .with(async |m: &mut Machine, relay| {
            let out = m.encrypt(relay, &plaintext, now_ms() as u64).await;
            rt.take_warnings(m);
            out
        })
        .await
        .map_err(ChatError::crypto)?
        .map_err(ChatError::crypto)?;
    // The server would refuse it: say so here, with nothing sent (the caller keeps the text).
    if sealed.0.len() > crate::model::messages::MAX_CIPHERTEXT {
        return Err(ChatError::Refused("This message is too long once encrypted: shorten it.".into()));
    }
    Ok(sealed.to_base64())
}

/// Encrypts and sends a message (in the thread started on `thread`, if any); returns once the
/// server stored it.
pub async fn send(
    channel_id: Uuid,
    body: String,
    reply_to: Option<Uuid>,
    thread: Option<Uuid>,
) -> Result<(), ChatError> {
    let rt = runtime()?;
    // Shown at once, marked as sending, in place of the message until the server has it.
    let pending = rt.show_pending(channel_id, &body, reply_to, thread);
    let sending = Sending { reply_to, thread, ..Sending::default() };
    let stored = match send_now(&rt, channel_id, body, sending).await {
        Ok(stored) => stored,
        Err(e) => {
            if let Some(timeline) = rt.chat.opened(thread.unwrap_or(channel_id)) {
                timeline.update(|t| {
                    t.lines.remove(&pending);
                });
            }
            return Err(e);
        }
    };
    // The socket's copy of the event, if it comes later, replaces it with the same content.
    let lines = rt.open_all(vec![(stored, false)]).await;
    rt.upsert_replacing(channel_id, lines, true, Some(pending));
    Ok(())
}

/// What goes with a message's text.
#[derive(Default)]
struct Sending {
    reply_to: Option<Uuid>,
    thread: Option<Uuid>,
    forwarded_from: Option<String>,
    poll: Option<crate::poll::Poll>,
    bookmark: Option<crate::chat::Bookmarked>,
}

/// Encrypts and sends, one send at a time (in the order they were asked for).
async fn send_now(rt: &Rc<Runtime>, channel_id: Uuid, body: String, with: Sending) -> Result<Envelope, ChatError> {
    let Sending { reply_to, thread, forwarded_from, poll, bookmark } = with;
    // Dropped when this send ends (however it ends): the next one goes.
    let (_turn_done, turn) = futures::channel::oneshot::channel::<()>();
    if let Some(before) = rt.last_send.replace(Some(turn)) {
        let _ = before.await;
    }
    let plaintext = ChannelPlaintext {
        forwarded_from,
        poll,
        thread,
        bookmark,
        ..ChannelPlaintext::message(channel_id, body, reply_to, now_ms() as u64)
    };
    let started = precise_ms();
    let sealed = encrypt(rt, plaintext).await?;
    trace("encrypt", started);
    let txn = Uuid::new_v4().simple().to_string();
    let device = rt.vault.device_id().to_owned();
    let started = precise_ms();
    let stored = send_message(channel_id, device, txn, String::new(), reply_to, sealed, thread).await?;
    trace("request", started);
    // The message ended "typing" for the others; the next keystroke says it again.
    rt.typing_sent.borrow_mut().remove(&channel_id);
    // The send may have started a new session: into the key backup with it.
    leptos::task::spawn_local({
        let rt = rt.clone();
        async move { backup::upload(&rt).await }
    });
    Ok(stored)
}

/// Forwards a text to another conversation: encrypted there like a new message, marked as
/// forwarded from `author` (inside the ciphertext).
pub async fn forward(channel_id: Uuid, body: String, author: String) -> Result<(), ChatError> {
    let rt = runtime()?;
    let sending = Sending { forwarded_from: Some(author), ..Sending::default() };
    let stored = send_now(&rt, channel_id, body, sending).await?;
    let lines = rt.open_all(vec![(stored, false)]).await;
    rt.upsert(channel_id, lines, true);
    Ok(())
}

/// Replaces a message's text (encrypted like a new message, naming the one it edits).
pub async fn edit(channel_id: Uuid, message_id: Uuid, body: String) -> Result<(), ChatError> {
    let rt = runtime()?;
    // The edit binds the reply the message has (when this tab has the message to say which).
    // (and keeps a forwarded message marked so).
    // It stays in its thread, if in one.
    let original = rt.chat.find_line(channel_id, message_id).map(|(_, l)| l);
    let plaintext = ChannelPlaintext {
        edit_of: Some(message_id),
        binds_reply: original.is_some(),
        forwarded_from: original.as_ref().and_then(|l| l.forwarded_from.clone()),
        thread: original.as_ref().and_then(|l| l.thread),
        bookmark: original.as_ref().and_then(|l| l.bookmark.clone()),
        ..ChannelPlaintext::message(channel_id, body, original.and_then(|l| l.reply_to), now_ms() as u64)
    };
    let sealed = encrypt(&rt, plaintext).await?;
    let event = edit_message(message_id, sealed).await?;
    rt.apply_events(channel_id, vec![event]).await;
    Ok(())
}

/// The earlier versions of a message, oldest first, opened here: (the text or why it cannot be
/// read, when it was replaced). Each is checked as the message was (an original from the
/// author's device, an edit naming this message).
pub async fn versions(message_id: Uuid) -> Result<Vec<(Result<String, Unreadable>, String)>, ChatError> {
    let rt = runtime()?;
    let all = message_versions(message_id).await?;
    let envelopes = all
        .earlier
        .iter()
        .map(|v| (Envelope { ciphertext: v.ciphertext.clone(), ..all.message.clone() }, false))
        .collect();
    let opened = rt.open_all(envelopes).await;
    Ok(opened.into_iter().zip(all.earlier).map(|((line, _), v)| (line.body, v.replaced_at)).collect())
}

/// Reacts to a message with an emoji (encrypted like a message, naming the one it answers).
pub async fn react(channel_id: Uuid, message_id: Uuid, emoji: String) -> Result<(), ChatError> {
    send_reaction(channel_id, message_id, emoji, None).await
}

/// Votes in a poll (`options`: the indices chosen; none takes my vote back). Sent as a reaction,
/// so the server cannot tell; my earlier votes in it are then deleted (the latest counts anyway).
pub async fn vote(channel_id: Uuid, poll_id: Uuid, options: Vec<u8>) -> Result<(), ChatError> {
    let rt = runtime()?;
    let me = rt.chat.me.get_value();
    let earlier: Vec<Uuid> = rt
        .chat
        .find_line(channel_id, poll_id)
        .map(|(t, _)| {
            t.with_untracked(|t| {
                t.reactions_to
                    .get(&poll_id)
                    .into_iter()
                    .flatten()
                    .filter_map(|seq| t.reactions.get(seq))
                    .filter(|r| r.sender == me && r.vote.is_some() && !r.deleted)
                    .map(|r| r.id)
                    .collect()
            })
        })
        .unwrap_or_default();
    send_reaction(channel_id, poll_id, String::new(), Some(options)).await?;
    for id in earlier {
        // Best effort: a vote left behind is outvoted by the newer one.
        let _ = delete(channel_id, id).await;
    }
    Ok(())
}

/// Sends a poll: the question as the text, the options and rules beside it, all encrypted.
pub async fn send_poll(
    channel_id: Uuid,
    question: String,
    poll: crate::poll::Poll,
    thread: Option<Uuid>,
) -> Result<(), ChatError> {
    poll.check(&question).map_err(ChatError::Refused)?;
    let rt = runtime()?;
    let stored =
        send_now(&rt, channel_id, question, Sending { thread, poll: Some(poll), ..Sending::default() }).await?;
    let lines = rt.open_all(vec![(stored, false)]).await;
    rt.upsert(channel_id, lines, true);
    Ok(())
}

/// Encrypts a message now and leaves it with the server, to send at `deliver_at_ms`.
pub async fn schedule(
    channel_id: Uuid,
    body: String,
    reply_to: Option<Uuid>,
    deliver_at_ms: u64,
) -> Result<(), ChatError> {
    let rt = runtime()?;
    let plaintext = ChannelPlaintext::message(channel_id, body, reply_to, now_ms() as u64);
    let sealed = encrypt(&rt, plaintext).await?;
    let device = rt.vault.device_id().to_owned();
    let at = crate::dates::rfc3339_of_ms(deliver_at_ms);
    schedule_message(channel_id, device, sealed, at, reply_to).await?;
    rt.chat.scheduled_changed.update(|n| *n += 1);
    // The message may have started a new session: into the key backup with it.
    leptos::task::spawn_local(async move { backup::upload(&rt).await });
    Ok(())
}

/// My messages waiting to be sent in a channel, opened here, the soonest first.
pub async fn scheduled(channel_id: Uuid) -> Result<Vec<crate::chat::ScheduledLine>, ChatError> {
    let rt = runtime()?;
    let me = rt.chat.me.get_value();
    let waiting: Vec<_> = scheduled_messages().await?.into_iter().filter(|m| m.channel_id == channel_id).collect();
    // Opened under the id it will be sent with, as the message will be.
    let envelopes = waiting
        .iter()
        .map(|m| {
            let envelope = Envelope {
                id: m.id,
                channel_id,
                seq: 0,
                sender_id: me,
                sender_device: m.sender_device.clone(),
                client_txn: String::new(),
                kind: MessageKind::Text,
                reply_to: m.reply_to,
                thread_id: None,
                ciphertext: m.ciphertext.clone(),
                created_at: m.created_at.clone(),
                edited_at: None,
                expires_at: None,
            };
            (envelope, false)
        })
        .collect();
    let opened = rt.open_all(envelopes).await;
    Ok(opened
        .into_iter()
        .zip(waiting)
        .map(|((line, _), m)| crate::chat::ScheduledLine { id: m.id, deliver_at: m.deliver_at, body: line.body })
        .collect())
}

/// Cancels a message of mine waiting to be sent.
pub async fn unschedule(id: Uuid) -> Result<(), ChatError> {
    let rt = runtime()?;
    unschedule_message(id).await?;
    rt.chat.scheduled_changed.update(|n| *n += 1);
    Ok(())
}

async fn send_reaction(
    channel_id: Uuid,
    message_id: Uuid,
    body: String,
    vote: Option<Vec<u8>>,
) -> Result<(), ChatError> {
    let rt = runtime()?;
    // A reaction is in the thread of the message it answers.
    let thread = rt.chat.find_line(channel_id, message_id).and_then(|(_, l)| l.thread);
    let plaintext = ChannelPlaintext {
        react_to: Some(message_id),
        binds_reply: false,
        vote,
        thread,
        ..ChannelPlaintext::message(channel_id, body, None, now_ms() as u64)
    };
    let sealed = encrypt(&rt, plaintext).await?;
    let txn = Uuid::new_v4().simple().to_string();
    let device = rt.vault.device_id().to_owned();
    let stored = send_message(channel_id, device, txn, "reaction".into(), Some(message_id), sealed, thread).await?;
    let lines = rt.open_all(vec![(stored, false)]).await;
    rt.upsert(channel_id, lines, true);
    // The reaction may have started a new session: into the key backup with it.
    leptos::task::spawn_local(async move { backup::upload(&rt).await });
    Ok(())
}

/// A channel's pinned messages, opened here, the latest pinned first.
pub async fn pins(channel_id: Uuid) -> Result<Vec<PinnedLine>, ChatError> {
    let rt = runtime()?;
    let pins = channel_pins(channel_id).await?;
    let opened = rt.open_all(pins.iter().map(|p| (p.message.clone(), false)).collect()).await;
    Ok(opened
        .into_iter()
        .zip(pins)
        .map(|((line, _), p)| PinnedLine { line, pinned_by: p.pinned_by, pinned_at: p.pinned_at })
        .collect())
}

/// Pins or unpins a message (the gateway tells every reader, this tab included).
pub async fn set_pinned(message_id: Uuid, pinned: bool) -> Result<(), ChatError> {
    pin_message(message_id, pinned).await?;
    Ok(())
}

/// Loads older pages of a channel until `message_id` is in its timeline (at most 20 pages, 2,000
/// messages back); whether it is there.
pub async fn reveal(channel_id: Uuid, message_id: Uuid) -> bool {
    let Some(rt) = current() else { return false };
    let timeline = rt.chat.timeline(channel_id);
    for _ in 0..20 {
        let (found, before, busy) =
            timeline.with_untracked(|t| (t.find(message_id).is_some(), t.next_before, t.loading));
        if found {
            return true;
        }
        if busy {
            gateway::sleep(100).await;
            continue;
        }
        let Some(before) = before else { return false };
        timeline.update(|t| t.loading = true);
        load_page(&rt, channel_id, Some(before)).await;
    }
    timeline.with_untracked(|t| t.find(message_id).is_some())
}

pub async fn delete(channel_id: Uuid, message_id: Uuid) -> Result<(), ChatError> {
    let rt = runtime()?;
    let event = delete_message(message_id).await?;
    rt.apply_events(channel_id, vec![event]).await;
    Ok(())
}

/// The person accepts a changed device key (unverified): that device gets room keys again.
pub async fn accept_key(user: Uuid, device_id: String, ed25519: String) {
    let Some(rt) = current() else { return };
    let accepted = rt.vault.with(async |m: &mut Machine, _| m.trust.accept_key(user, &device_id, &ed25519)).await;
    if accepted.is_ok() {
        rt.chat
            .warnings
            .update(|all| all.retain(|n| n.accept.as_ref().is_none_or(|(_, d, k)| *d != device_id || *k != ed25519)));
    }
}

/// "Start a new device": after the server re-keyed this browser's device, replaces it with a new
/// one (keeping the history) and reloads the page, which registers it.
pub async fn start_new_device() -> Result<(), ChatError> {
    let Some(me) = RUNTIME_USER.get() else {
        return Err(ChatError::NotReady("encryption has not started in this browser"));
    };
    vault::start_new_device(me).await.map_err(ChatError::crypto)?;
    if let Some(w) = web_sys::window() {
        let _ = w.location().reload();
    }
    Ok(())
}

/// Records a channel's history setting (from the sidebar's data): in a channel whose newcomers
/// read the history, sending also shares this device's earlier sessions with devices that lack them.
pub fn history_setting(channel_id: Uuid, full: bool) {
    if let Some(rt) = current() {
        let mut set = rt.vault.relay.full_history.borrow_mut();
        if full {
            set.insert(channel_id);
        } else {
            set.remove(&channel_id);
        }
    }
}

/// Tells the others this user is typing (at most every 3 s per channel).
pub fn typing(channel_id: Uuid) {
    let Some(rt) = current() else { return };
    // The send that follows needs the channel's devices: fetched now, it need not wait for them.
    leptos::task::spawn_local({
        let rt = rt.clone();
        async move { rt.vault.relay.prefetch(channel_id).await }
    });
    let now = now_ms();
    let due = rt.typing_sent.borrow().get(&channel_id).is_none_or(|at| now - at > 3000.0);
    if due {
        rt.typing_sent.borrow_mut().insert(channel_id, now);
        rt.send_frame(ClientFrame::Typing { channel_id });
    }
}
