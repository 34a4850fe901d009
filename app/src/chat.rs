//! What the conversation UI shows, as reactive state: filled in the browser by the runtime
//! (`client`), read by the components. On the server it stays empty: message bodies exist only in
//! the browser, after decryption.

use crate::{
    error::AppError,
    model::{
        gateway::Presence,
        messages::{Envelope, EventKind, MAX_DISTINCT_REACTIONS, MessageKind, ThreadSummary, Unread},
    },
};
use leptos::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// Why a chat operation (send, edit, delete, verify) did not happen. The server's refusals stay
/// typed, so the UI can say "try again in 30 s" or which field was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatError {
    /// The server refused or failed: rate limits, field errors, permissions, network.
    Server(AppError),
    /// Encryption failed in this browser.
    Crypto(String),
    /// This browser cannot do it (yet): encryption is still starting, or the page is server-rendered.
    NotReady(&'static str),
    /// Refused here, for a reason said as is (a mistyped recovery key).
    Refused(String),
}

impl ChatError {
    pub fn crypto(e: impl std::fmt::Display) -> Self {
        Self::Crypto(e.to_string())
    }

    /// Seconds to wait before trying again, when the server said so.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Self::Server(AppError::RateLimited { retry_after_s }) => Some(*retry_after_s),
            _ => None,
        }
    }
}

impl From<AppError> for ChatError {
    fn from(e: AppError) -> Self {
        Self::Server(e)
    }
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // A field error names what was wrong: the message itself, or another field.
            Self::Server(AppError::Invalid { field, message }) if field == "ciphertext" => {
                write!(f, "the message {message}")
            }
            Self::Server(AppError::Invalid { field, message }) => write!(f, "{} {message}", field.replace('_', " ")),
            Self::Server(e) => e.fmt(f),
            Self::Crypto(e) => write!(f, "encryption failed: {e}"),
            Self::NotReady(why) => f.write_str(why),
            Self::Refused(why) => f.write_str(why),
        }
    }
}

/// How a message's encryption is shown next to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// Decrypted; its author's device was verified (SAS).
    Verified,
    /// Decrypted; its author's device is trusted on first use.
    Encrypted,
    /// Not readable (see the reason).
    Failed,
    /// Being encrypted and sent.
    Sending,
}

/// Why a message cannot be read, in terms the person can act on (the timeline words it with the
/// author's name and the time the person's access began). Never a library's error string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Unreadable {
    /// Its room key has not reached this device: it comes when a device that has it shares it.
    Missing,
    /// This device holds the room key only from a later message on (it got the key after this
    /// message was sent).
    Earlier,
    /// It failed a check (moved between channels, replayed, relabelled, damaged): not shown. The
    /// reason is this app's own words.
    Refused(String),
}

impl Unreadable {
    /// Waiting for a key (retried when keys arrive), as opposed to refused for good.
    pub fn awaits_key(&self) -> bool {
        matches!(self, Self::Missing | Self::Earlier)
    }
}

/// What a bookmark names (inside its ciphertext, in my notes channel): the message, and enough
/// of it to list without loading its conversation (its author as I saw them, its first words).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bookmarked {
    pub channel_id: Uuid,
    pub message_id: Uuid,
    pub author: String,
    pub excerpt: String,
}

/// How much of a bookmarked message its bookmark keeps (characters).
pub const BOOKMARK_EXCERPT: usize = 200;

/// One message as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub id: Uuid,
    /// The sequence number that created it (its place in the channel).
    pub seq: i64,
    pub sender: Uuid,
    /// RFC 3339, from the server.
    pub created_at: String,
    pub edited: bool,
    pub deleted: bool,
    pub reply_to: Option<Uuid>,
    /// For a reaction (its `body` is the emoji): the message it answers.
    pub reacts_to: Option<Uuid>,
    /// The text, or why it cannot be read. Never ciphertext.
    pub body: Result<String, Unreadable>,
    pub lock: Lock,
    /// The Ed25519 key of the device that wrote it, once opened: verifying that device later
    /// turns its lock to verified.
    pub sender_key: Option<String>,
    /// Forwarded from another conversation: its author there (as the forwarder named them).
    pub forwarded_from: Option<String>,
    /// A poll (its question is `body`).
    pub poll: Option<crate::poll::Poll>,
    /// For a reaction that is a vote in the poll it answers: the options chosen.
    pub vote: Option<Vec<u8>>,
    /// In a thread: its first message.
    pub thread: Option<Uuid>,
    /// When it disappears (ms since the epoch): sent while its channel had a timer.
    pub expires_ms: Option<u64>,
    /// In my notes channel: the message this bookmark names (its `body` is my note).
    pub bookmark: Option<Bookmarked>,
}

impl Line {
    /// A message as shown after trying to open its envelope.
    pub fn new(envelope: &Envelope, deleted: bool, opened: Result<(String, bool), Unreadable>) -> Self {
        let reaction = envelope.kind == MessageKind::Reaction;
        let lock = match &opened {
            _ if deleted => Lock::Encrypted,
            Ok((_, true)) => Lock::Verified,
            Ok((_, false)) => Lock::Encrypted,
            Err(_) => Lock::Failed,
        };
        Self {
            id: envelope.id,
            seq: envelope.seq,
            sender: envelope.sender_id,
            created_at: envelope.created_at.clone(),
            edited: envelope.edited_at.is_some(),
            deleted,
            reply_to: if reaction { None } else { envelope.reply_to },
            reacts_to: if reaction { envelope.reply_to } else { None },
            body: if deleted { Ok(String::new()) } else { opened.map(|(body, _)| body) },
            lock,
            sender_key: None,
            forwarded_from: None,
            poll: None,
            vote: None,
            thread: envelope.thread_id,
            expires_ms: envelope.expires_at.as_deref().and_then(crate::dates::epoch_ms),
            bookmark: None,
        }
    }

    /// Its time has come (disappearing messages), or will within `slack_ms`.
    pub fn expired(&self, now_ms: u64, slack_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms.saturating_add(slack_ms))
    }
}

/// One channel's messages, as far as they are loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// By the sequence number that created each message; my own messages still on their way
    /// (shown at once, [`Lock::Sending`]) are keyed from [`PENDING_FROM`] up, after every real one.
    pub lines: BTreeMap<i64, Line>,
    /// Where the next older page starts; `None` once the beginning is loaded (or before the first).
    pub next_before: Option<i64>,
    /// The first page has arrived.
    pub loaded: bool,
    pub at_start: bool,
    pub loading: bool,
    /// The highest event sequence number seen: where a reconnect resumes.
    pub last_seq: i64,
    /// The read cursor when the channel was last opened: the "new messages" divider goes after it.
    pub read_seq: Option<i64>,
    /// The newest message when the channel was last opened: what arrives while the person is
    /// looking is not marked new.
    pub opened_seq: i64,
    /// The user can no longer read this channel (left, kicked, banned).
    pub removed: bool,
    pub error: Option<String>,
    /// Messages whose room key has not arrived yet: tried again when keys come in.
    pub undecrypted: BTreeMap<i64, Envelope>,
    /// Reactions (opened) to the loaded messages, by the sequence number that created each. Change
    /// them through [`Timeline::add_reaction`] and [`Timeline::remove_reaction`], which keep
    /// `reactions_to` in step.
    pub reactions: BTreeMap<i64, Line>,
    /// The sequence numbers of the reactions to each message: a row's chips read only its own.
    pub reactions_to: HashMap<Uuid, BTreeSet<i64>>,
    /// For a thread's timeline (keyed by its first message): the channel it is in.
    pub thread_of: Option<Uuid>,
    /// For a channel's timeline: the threads started on its loaded messages, by first message.
    pub threads: HashMap<Uuid, ThreadSummary>,
    /// The thread events already counted in `threads` (an event may come twice: as the answer
    /// to my own request and on the socket).
    pub thread_events: BTreeSet<i64>,
}

/// A pinned message, opened here, with who pinned it and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedLine {
    pub line: Line,
    pub pinned_by: Uuid,
    /// RFC 3339.
    pub pinned_at: String,
}

/// A message of mine waiting to be sent, opened here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledLine {
    /// Also the message's id once sent.
    pub id: Uuid,
    /// RFC 3339.
    pub deliver_at: String,
    pub body: Result<String, Unreadable>,
}

/// One kind of reaction on a message, as its chip shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chip {
    pub emoji: String,
    /// Who reacted so, in the order they did (each once).
    pub people: Vec<Uuid>,
    /// My reaction of this kind (to remove it), if I gave one.
    pub mine: Option<Uuid>,
}

/// Where the keys of my own messages still on their way begin in [`Timeline::lines`]: above any
/// sequence number a server hands out.
pub const PENDING_FROM: i64 = i64::MAX / 2;

impl Timeline {
    /// Whether the "new messages" divider goes above this message: it came from someone else
    /// while the person was away (after their read cursor, before they opened the channel).
    pub fn arrived_while_away(&self, line: &Line, me: Uuid) -> bool {
        line.sender != me && self.read_seq.is_some_and(|r| line.seq > r) && line.seq <= self.opened_seq
    }

    /// The reactions to a message, one chip per kind in the order each kind was first given; at
    /// most [`MAX_DISTINCT_REACTIONS`] kinds (later kinds are ignored, on every device alike).
    /// Adds (or replaces) a reaction.
    pub fn add_reaction(&mut self, line: Line) {
        let Some(target) = line.reacts_to else { return };
        self.reactions_to.entry(target).or_default().insert(line.seq);
        self.reactions.insert(line.seq, line);
    }

    /// Removes the reaction created at `seq`, if it is here.
    pub fn remove_reaction(&mut self, seq: i64) {
        let Some(target) = self.reactions.remove(&seq).and_then(|r| r.reacts_to) else { return };
        if let Some(seqs) = self.reactions_to.get_mut(&target) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.reactions_to.remove(&target);
            }
        }
    }

    pub fn chips(&self, message: Uuid, me: Uuid) -> Vec<Chip> {
        let mut chips: Vec<Chip> = vec![];
        let Some(seqs) = self.reactions_to.get(&message) else { return chips };
        // In the order they were given (their sequence numbers), as every device sees them.
        let given = seqs.iter().filter_map(|seq| self.reactions.get(seq));
        for r in given.filter(|r| r.reacts_to == Some(message) && !r.deleted && r.vote.is_none()) {
            let Ok(emoji) = &r.body else { continue };
            let at = match chips.iter().position(|c| &c.emoji == emoji) {
                Some(at) => at,
                None if chips.len() < MAX_DISTINCT_REACTIONS => {
                    chips.push(Chip { emoji: emoji.clone(), people: vec![], mine: None });
                    chips.len() - 1
                }
                None => continue,
            };
            let chip = &mut chips[at];
            if !chip.people.contains(&r.sender) {
                chip.people.push(r.sender);
            }
            if r.sender == me && chip.mine.is_none() {
                chip.mine = Some(r.id);
            }
        }
        chips
    }

    /// A poll's result, counted here from the votes this timeline holds (see [`crate::poll::tally`]).
    pub fn tally(&self, poll_id: Uuid, poll: &crate::poll::Poll, me: Uuid) -> crate::poll::Tally {
        let casts = self
            .reactions_to
            .get(&poll_id)
            .into_iter()
            .flatten()
            .filter_map(|seq| self.reactions.get(seq))
            .filter(|r| r.reacts_to == Some(poll_id) && !r.deleted)
            .filter_map(|r| {
                Some(crate::poll::Cast {
                    voter: r.sender,
                    seq: r.seq,
                    at_ms: crate::dates::epoch_ms(&r.created_at)?,
                    options: r.vote.as_deref()?,
                })
            });
        crate::poll::tally(poll, casts, me)
    }

    /// Counts an event of a channel in the summary of the thread it is in (once per event: it may
    /// come twice). `reading`: that thread is open on screen, so a new reply is read at once. A
    /// thread's first message deleted takes the thread with it.
    pub fn count_thread_event(&mut self, seq: i64, kind: EventKind, message: &Envelope, reading: bool) {
        let Some(root) = message.thread_id else {
            if kind == EventKind::Deleted {
                self.threads.remove(&message.id);
            }
            return;
        };
        if message.kind == MessageKind::Reaction || kind == EventKind::Edited || !self.thread_events.insert(seq) {
            return;
        }
        if kind == EventKind::Created {
            let s = self.threads.entry(root).or_insert_with(|| ThreadSummary {
                root,
                replies: 0,
                last_seq: 0,
                last_at: String::new(),
                read_seq: 0,
            });
            s.replies += 1;
            if message.seq >= s.last_seq {
                s.last_seq = message.seq;
                s.last_at = message.created_at.clone();
            }
            if reading {
                s.read_seq = s.last_seq;
            }
        } else if let Some(s) = self.threads.get_mut(&root) {
            s.replies = s.replies.saturating_sub(1);
            if s.replies == 0 {
                self.threads.remove(&root);
            }
        }
    }

    /// Forgets the messages and reactions whose time has come (disappearing messages): their text
    /// leaves this browser's memory, whether or not the server's erasure has arrived yet. Whether
    /// anything went.
    pub fn forget_expired(&mut self, now_ms: u64) -> bool {
        let before = (self.lines.len(), self.reactions.len());
        self.lines.retain(|_, l| !l.expired(now_ms, 0));
        self.undecrypted
            .retain(|_, e| e.expires_at.as_deref().and_then(crate::dates::epoch_ms).is_none_or(|at| at > now_ms));
        let gone: Vec<i64> = self.reactions.iter().filter(|(_, r)| r.expired(now_ms, 0)).map(|(s, _)| *s).collect();
        for seq in gone {
            self.remove_reaction(seq);
        }
        before != (self.lines.len(), self.reactions.len())
    }

    /// Whether it holds a message or reaction that disappears at some time.
    pub fn has_expiring(&self) -> bool {
        self.lines.values().chain(self.reactions.values()).any(|l| l.expires_ms.is_some())
    }

    /// The oldest message the server has (not one on its way).
    pub fn oldest_seq(&self) -> Option<i64> {
        self.lines.range(..PENDING_FROM).next().map(|(seq, _)| *seq)
    }

    /// The message with this id, if loaded.
    pub fn find(&self, id: Uuid) -> Option<&Line> {
        self.lines.values().find(|l| l.id == id)
    }
}

/// A device's Ed25519 key grouped in fours, for reading aloud when comparing.
pub fn fingerprint(ed25519: &str) -> String {
    ed25519.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

/// Whether a message was sent before `since` (both RFC 3339 in UTC, as the server writes them:
/// chrono's `to_rfc3339` orders as text, since `+` sorts before the digits and the dot of a
/// fraction).
pub fn sent_before(created_at: &str, since: Option<&str>) -> bool {
    since.is_some_and(|since| created_at < since)
}

/// The gateway connection as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Before the app has loaded (and on the server).
    Starting,
    Connecting,
    Online,
    /// Retrying after a failure (the reason is shown).
    Offline(String),
}

/// This browser's encryption device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    pub device_id: String,
    /// The Ed25519 key, grouped for reading aloud when comparing.
    pub fingerprint: String,
    /// When this browser's device was set up (RFC 3339 UTC), if it was recorded: messages sent
    /// before it could only reach it through a key share or the key backup.
    pub created_at: Option<String>,
}

/// The error of a device the server re-keyed (its answer: start a new device).
pub const REKEYED: &str = "the server lists other keys for this very device. It may have been tampered with; \
                           nothing is sent from this browser";

/// The key backup, as the person sees it from this browser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Backup {
    /// Not known yet (before the app has loaded, or while asking the server).
    #[default]
    Unknown,
    /// No backup: history lives only on the person's devices.
    Off,
    /// A backup exists, but this browser does not have its key: the recovery key opens it.
    Locked { keys: u64 },
    /// This browser backs up every key it gets.
    On { keys: u64 },
    /// Restoring: keys imported so far (and damaged ones skipped), of how many.
    Restoring { done: u64, total: u64 },
}

/// Where a device verification (SAS) stands, as the dialog shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyStep {
    /// The other person has several devices: which one is in front of them?
    Choose(Vec<DeviceChoice>),
    /// The other person asked to verify; accept or decline.
    Incoming,
    /// Waiting for the other side.
    Waiting,
    /// Compare these on both screens: emoji (symbol, name) and three numbers.
    Compare {
        emoji: Vec<(String, String)>,
        numbers: (u16, u16, u16),
    },
    /// We said they match; waiting for the other side to say so too.
    Confirmed,
    Done,
    Failed(String),
}

/// One of a person's devices, to pick for verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceChoice {
    pub device_id: String,
    /// Its key, grouped for reading aloud (as "This device" shows it on its own screen).
    pub fingerprint: String,
    pub verified: bool,
}

/// A key warning on screen until dismissed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyNotice {
    pub text: String,
    /// For a changed key: the device (user, device id) and the new key the person may accept.
    pub accept: Option<(Uuid, String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verify {
    pub txn: String,
    pub user: Uuid,
    pub device_id: String,
    pub step: VerifyStep,
}

/// Everything the conversation UI reads, provided as context by the signed-in layout.
#[derive(Clone, Copy)]
pub struct Chat {
    pub me: StoredValue<Uuid>,
    /// My username, lowercased: what an `@mention` of me says.
    pub my_name: StoredValue<String>,
    /// Messages mentioning me not read yet, per channel: counted here after decryption (the server
    /// is not told who is mentioned), apart from the unread count.
    pub mentions: RwSignal<HashMap<Uuid, u32>>,
    /// The DMs and group DMs among my channels (where anyone may call everyone).
    pub direct: StoredValue<std::collections::HashSet<Uuid>>,
    pub device: RwSignal<Option<Result<DeviceStatus, String>>>,
    pub connection: RwSignal<Connection>,
    /// Timelines of the channels opened in this tab (reference-counted: they outlive the views).
    pub timelines: StoredValue<HashMap<Uuid, ArcRwSignal<Timeline>>>,
    /// Who is typing where, with the time (ms since the epoch) the indicator expires.
    pub typing: RwSignal<HashMap<Uuid, BTreeMap<Uuid, f64>>>,
    pub presence: RwSignal<HashMap<Uuid, Presence>>,
    /// Live unread counts once the gateway said `ready` (before that, the server-rendered ones).
    pub unread: RwSignal<Option<HashMap<Uuid, Unread>>>,
    /// Bumped when the list of channels changed (joined, added, removed): the sidebar reloads.
    pub spaces_changed: RwSignal<u32>,
    /// Bumped when a community's members changed (someone joined, left or got a new role, here or
    /// elsewhere): the member panel reloads.
    pub members_changed: RwSignal<u32>,
    /// Bumped per channel when its pins changed (here or elsewhere): its pin list reloads.
    pub pins_changed: RwSignal<HashMap<Uuid, u32>>,
    /// Read receipts of the channels opened here: how far each other reader has read (only in
    /// small channels, only from people who share them; loaded when the channel opens).
    pub receipts: RwSignal<HashMap<Uuid, HashMap<Uuid, i64>>>,
    /// Whether I share read receipts (and see others'): set once from my account, then by my choice.
    pub read_receipts: RwSignal<Option<bool>>,
    /// Bumped when I scheduled or cancelled a message here: the list of waiting ones reloads.
    pub scheduled_changed: RwSignal<u32>,
    /// The channel on screen, if any.
    pub viewing: RwSignal<Option<Uuid>>,
    /// Key warnings not dismissed yet (a changed or forged device key).
    pub warnings: RwSignal<Vec<KeyNotice>>,
    /// The verification in progress, if any.
    pub verify: RwSignal<Option<Verify>>,
    /// Users with a device this user verified.
    pub verified: RwSignal<std::collections::BTreeSet<Uuid>>,
    /// What is typed but not sent, per channel: kept when the view is rebuilt or another channel
    /// is opened, lost only with the tab.
    pub drafts: StoredValue<HashMap<Uuid, String>>,
    /// The page changed in the browser since it loaded (a link followed, not a fresh load).
    pub navigated: StoredValue<bool>,
    /// The key backup's state.
    pub backup: RwSignal<Backup>,
    /// Timelines in the compact layout (one line per message, no avatars): this browser's choice.
    pub compact: RwSignal<bool>,
    /// The emoji this browser used last, the latest first (the picker's "Recently used").
    pub recent_emoji: RwSignal<Vec<String>>,
    /// The thread open beside the channel on screen (its first message), if any.
    pub thread: RwSignal<Option<Uuid>>,
    /// My notes channel (where my bookmarks are), once known: its timeline holds them.
    pub notes: RwSignal<Option<Uuid>>,
}

impl Default for Chat {
    /// Empty state; the signed-in frame sets `me` once it knows the user.
    fn default() -> Self {
        Self {
            me: StoredValue::new(Uuid::nil()),
            my_name: StoredValue::new(String::new()),
            mentions: RwSignal::new(HashMap::new()),
            direct: StoredValue::new(Default::default()),
            device: RwSignal::new(None),
            connection: RwSignal::new(Connection::Starting),
            timelines: StoredValue::new(HashMap::new()),
            typing: RwSignal::new(HashMap::new()),
            presence: RwSignal::new(HashMap::new()),
            unread: RwSignal::new(None),
            spaces_changed: RwSignal::new(0),
            members_changed: RwSignal::new(0),
            pins_changed: RwSignal::new(HashMap::new()),
            receipts: RwSignal::new(HashMap::new()),
            read_receipts: RwSignal::new(None),
            scheduled_changed: RwSignal::new(0),
            viewing: RwSignal::new(None),
            warnings: RwSignal::new(vec![]),
            verify: RwSignal::new(None),
            verified: RwSignal::new(Default::default()),
            drafts: StoredValue::new(HashMap::new()),
            navigated: StoredValue::new(false),
            backup: RwSignal::new(Backup::Unknown),
            compact: RwSignal::new(false),
            recent_emoji: RwSignal::new(vec![]),
            thread: RwSignal::new(None),
            notes: RwSignal::new(None),
        }
    }
}

/// How a message calls on me: by name, through `@here`/`@everyone`, or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Me,
    Everyone,
    No,
}

/// How `text` calls on `me` (a lowercased username). Whether its sender may call everyone is
/// the caller's check.
pub fn call_in(text: &str, me: &str) -> Call {
    let names = crate::markdown::mentions(text);
    if !me.is_empty() && names.iter().any(|n| n == me) {
        Call::Me
    } else if names.iter().any(|n| crate::markdown::EVERYONE.contains(&n.as_str())) {
        Call::Everyone
    } else {
        Call::No
    }
}

impl Chat {
    /// The timeline of a channel, created empty on first use.
    pub fn timeline(&self, channel_id: Uuid) -> ArcRwSignal<Timeline> {
        if let Some(t) = self.timelines.with_value(|m| m.get(&channel_id).cloned()) {
            return t;
        }
        let t = ArcRwSignal::new(Timeline::default());
        self.timelines.update_value(|m| {
            m.insert(channel_id, t.clone());
        });
        t
    }

    /// My bookmarks, the latest first (once loaded): each a message of my notes channel.
    pub fn bookmarks(&self) -> Vec<Line> {
        let Some(notes) = self.notes.get() else { return vec![] };
        self.timeline(notes).with(|t| {
            t.lines.values().rev().filter(|l| !l.deleted && l.bookmark.is_some() && l.body.is_ok()).cloned().collect()
        })
    }

    /// The timeline of a thread (keyed by its first message), created empty on first use.
    pub fn thread_timeline(&self, channel_id: Uuid, root: Uuid) -> ArcRwSignal<Timeline> {
        let t = self.timeline(root);
        if t.with_untracked(|t| t.thread_of.is_none()) {
            t.update_untracked(|t| t.thread_of = Some(channel_id));
        }
        t
    }

    /// A message loaded in the timeline of `channel_id` or of one of its threads, with that timeline.
    pub fn find_line(&self, channel_id: Uuid, id: Uuid) -> Option<(ArcRwSignal<Timeline>, Line)> {
        let candidates: Vec<ArcRwSignal<Timeline>> = self.timelines.with_value(|m| {
            m.iter()
                .filter(|(key, t)| **key == channel_id || t.with_untracked(|t| t.thread_of == Some(channel_id)))
                .map(|(_, t)| t.clone())
                .collect()
        });
        candidates.into_iter().find_map(|t| {
            let line = t.with_untracked(|t| t.find(id).cloned())?;
            Some((t, line))
        })
    }

    /// The timeline of a channel if it was opened in this tab.
    pub fn opened(&self, channel_id: Uuid) -> Option<ArcRwSignal<Timeline>> {
        self.timelines.with_value(|m| m.get(&channel_id).cloned())
    }

    /// The device with Ed25519 key `key` was just verified: its messages on screen say so.
    pub fn mark_verified(&self, key: &str) {
        let timelines: Vec<ArcRwSignal<Timeline>> = self.timelines.with_value(|m| m.values().cloned().collect());
        for t in timelines {
            let mine = |l: &Line| l.lock == Lock::Encrypted && l.sender_key.as_deref() == Some(key);
            if t.with_untracked(|t| t.lines.values().any(mine)) {
                t.update(|t| t.lines.values_mut().filter(|l| mine(l)).for_each(|l| l.lock = Lock::Verified));
            }
        }
    }
}

/// Whether two messages are shown as one group (same author, same day, less than 5 minutes apart).
pub fn same_group(prev: &Line, next: &Line) -> bool {
    if prev.sender != next.sender {
        return false;
    }
    let minutes = |l: &Line| {
        let (day, time) = crate::dates::day_and_time(&l.created_at);
        let hm: Vec<i64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
        (day, hm.first().copied().unwrap_or(0) * 60 + hm.get(1).copied().unwrap_or(0))
    };
    let ((d1, m1), (d2, m2)) = (minutes(prev), minutes(next));
    d1 == d2 && (m2 - m1).abs() < 5
}

/// What the conversation UI asks of the browser runtime. On the server these are never called
/// (effects and event handlers run only in the browser); they exist so components compile there.
pub mod act {
    #[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
    pub use crate::client::{
        accept_key,
        backup::{restore_backup, turn_off as turn_off_backup, turn_on as turn_on_backup},
        bookmark, close_channel, close_thread, delete, edit, forward, history_setting, load_bookmarks, load_older,
        open_channel, open_thread, pins, react, remember_emoji, reveal, schedule, scheduled, send, send_poll,
        set_compact, set_pinned, start_new_device, typing, unbookmark, unschedule,
        verification::{
            accept as accept_verification, choose as choose_verification, confirm as confirm_verification,
            decline as decline_verification, start as start_verification, start_device as verify_device,
        },
        versions, vote,
    };

    #[cfg(not(all(feature = "hydrate", target_arch = "wasm32")))]
    mod server_side {
        use super::super::ChatError;
        use uuid::Uuid;
        const BROWSER_ONLY: ChatError = ChatError::NotReady("messages are encrypted in the browser");
        pub fn open_channel(_: Uuid) {}
        pub fn close_channel(_: Uuid) {}
        pub fn open_thread(_: Uuid, _: Uuid) {}
        pub fn load_bookmarks() {}
        pub async fn bookmark(_: super::super::Bookmarked, _: String) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn unbookmark(_: Uuid) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub fn close_thread() {}
        pub fn load_older(_: Uuid) {}
        pub fn typing(_: Uuid) {}
        pub fn history_setting(_: Uuid, _: bool) {}
        pub fn set_compact(_: bool) {}
        pub fn remember_emoji(_: &str) {}
        pub async fn schedule(_: Uuid, _: String, _: Option<Uuid>, _: u64) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn scheduled(_: Uuid) -> Result<Vec<super::super::ScheduledLine>, ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn unschedule(_: Uuid) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn vote(_: Uuid, _: Uuid, _: Vec<u8>) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn send_poll(_: Uuid, _: String, _: crate::poll::Poll, _: Option<Uuid>) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn start_new_device() -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn turn_on_backup() -> Result<String, ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn turn_off_backup() -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn restore_backup(_: String) -> Result<u64, ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn send(_: Uuid, _: String, _: Option<Uuid>, _: Option<Uuid>) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn edit(_: Uuid, _: Uuid, _: String) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn delete(_: Uuid, _: Uuid) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn react(_: Uuid, _: Uuid, _: String) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn pins(_: Uuid) -> Result<Vec<super::super::PinnedLine>, ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn forward(_: Uuid, _: String, _: String) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn set_pinned(_: Uuid, _: bool) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn reveal(_: Uuid, _: Uuid) -> bool {
            false
        }
        pub async fn versions(_: Uuid) -> Result<Vec<(Result<String, super::super::Unreadable>, String)>, ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn start_verification(_: Uuid) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn choose_verification(_: String) {}
        pub async fn verify_device(_: Uuid, _: String) -> Result<(), ChatError> {
            Err(BROWSER_ONLY)
        }
        pub async fn accept_key(_: Uuid, _: String, _: String) {}
        pub async fn accept_verification() {}
        pub fn decline_verification() {}
        pub async fn confirm_verification(_: bool) {}
    }
    #[cfg(not(all(feature = "hydrate", target_arch = "wasm32")))]
    pub use server_side::*;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_errors_say_what_to_do() {
        let limited = ChatError::from(AppError::RateLimited { retry_after_s: 30 });
        assert_eq!(limited.retry_after_s(), Some(30));
        assert_eq!(limited.to_string(), "too many attempts; try again in 30 s");
        let big = ChatError::from(AppError::invalid("ciphertext", "must be at most 65536 bytes"));
        assert_eq!(big.to_string(), "the message must be at most 65536 bytes");
        let txn = ChatError::from(AppError::invalid("client_txn", "must be 1–64 characters"));
        assert_eq!(txn.to_string(), "client txn must be 1–64 characters");
        assert_eq!(ChatError::NotReady("wait").retry_after_s(), None);
    }

    fn line(sender: Uuid, at: &str) -> Line {
        Line {
            id: Uuid::new_v4(),
            seq: 1,
            sender,
            created_at: at.into(),
            edited: false,
            deleted: false,
            reply_to: None,
            reacts_to: None,
            body: Ok("x".into()),
            lock: Lock::Encrypted,
            sender_key: None,
            forwarded_from: None,
            poll: None,
            vote: None,
            thread: None,
            expires_ms: None,
            bookmark: None,
        }
    }

    #[test]
    fn reactions_become_chips_by_kind_with_a_bound() {
        let (me, bob, message) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut t = Timeline::default();
        let mut react = |seq: i64, sender: Uuid, emoji: &str, to: Uuid| {
            let r = Line { seq, reacts_to: Some(to), body: Ok(emoji.into()), ..line(sender, "2026-12-07T10:00:00Z") };
            t.add_reaction(r.clone());
            r.id
        };
        react(1, bob, "👍", message);
        let mine = react(2, me, "👍", message);
        react(3, bob, "👍", message); // the same person twice counts once
        react(4, bob, "🎉", message);
        react(5, bob, "🙂", Uuid::new_v4()); // another message
        for (i, emoji) in (0..30).map(|i| (10 + i, format!("e{i}"))) {
            react(i, bob, &emoji, message);
        }
        let chips = t.chips(message, me);
        assert_eq!(chips.len(), MAX_DISTINCT_REACTIONS);
        assert_eq!(chips[0], Chip { emoji: "👍".into(), people: vec![bob, me], mine: Some(mine) });
        assert_eq!(chips[1].emoji, "🎉");
        assert_eq!(chips.last().unwrap().emoji, "e17", "the first 20 kinds, in order");
        assert!(t.chips(Uuid::new_v4(), me).is_empty());
    }

    #[test]
    fn thread_events_count_once_in_their_first_message() {
        let (root, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let reply = |seq: i64, kind: MessageKind| Envelope {
            id: Uuid::new_v4(),
            channel_id: Uuid::nil(),
            seq,
            sender_id: bob,
            sender_device: "D".into(),
            client_txn: String::new(),
            kind,
            reply_to: None,
            thread_id: Some(root),
            ciphertext: Default::default(),
            created_at: format!("2026-12-08T10:00:{seq:02}Z"),
            edited_at: None,
            expires_at: None,
        };
        let mut t = Timeline::default();
        let first = reply(5, MessageKind::Text);
        t.count_thread_event(5, EventKind::Created, &first, false);
        t.count_thread_event(5, EventKind::Created, &first, false); // the same event again
        t.count_thread_event(6, EventKind::Created, &reply(6, MessageKind::Reaction), false);
        t.count_thread_event(7, EventKind::Created, &reply(7, MessageKind::Text), true);
        let s = &t.threads[&root];
        assert_eq!((s.replies, s.last_seq, s.read_seq, s.last_at.as_str()), (2, 7, 7, "2026-12-08T10:00:07Z"));
        t.count_thread_event(8, EventKind::Edited, &first, false);
        t.count_thread_event(9, EventKind::Deleted, &first, false);
        t.count_thread_event(9, EventKind::Deleted, &first, false);
        assert_eq!(t.threads[&root].replies, 1, "a deleted reply counts once");
        // The first message deleted: its thread goes.
        let root_deleted = Envelope { id: root, thread_id: None, ..first.clone() };
        t.count_thread_event(10, EventKind::Deleted, &root_deleted, false);
        assert!(t.threads.is_empty());
    }

    #[test]
    fn expired_messages_and_reactions_are_forgotten() {
        let bob = Uuid::new_v4();
        let mut t = Timeline::default();
        let at = |seq: i64, expires_ms: Option<u64>| Line { seq, expires_ms, ..line(bob, "2026-12-08T10:00:00Z") };
        t.lines.insert(1, at(1, None));
        t.lines.insert(2, at(2, Some(5_000)));
        t.lines.insert(3, at(3, Some(9_000)));
        t.add_reaction(Line { reacts_to: Some(t.lines[&1].id), ..at(4, Some(5_000)) });
        assert!(t.has_expiring());
        assert!(!t.forget_expired(4_999), "nothing due yet");
        assert!(t.forget_expired(5_000));
        assert_eq!(t.lines.keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert!(t.reactions.is_empty() && t.reactions_to.is_empty());
        assert!(t.forget_expired(10_000));
        assert!(!t.has_expiring());
    }

    #[test]
    fn consecutive_messages_group_by_author_day_and_minutes() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = line(a, "2026-11-25T10:00:00Z");
        assert!(same_group(&first, &line(a, "2026-11-25T10:04:00Z")));
        assert!(!same_group(&first, &line(a, "2026-11-25T10:05:00Z")));
        assert!(!same_group(&first, &line(b, "2026-11-25T10:01:00Z")));
        assert!(!same_group(&first, &line(a, "2026-11-26T10:00:00Z")));
    }

    #[test]
    fn only_what_came_while_away_is_marked_new() {
        let (me, other) = (Uuid::new_v4(), Uuid::new_v4());
        let at = |seq: i64, sender: Uuid| Line { seq, ..line(sender, "2026-11-25T10:00:00Z") };
        let t = Timeline { read_seq: Some(10), opened_seq: 14, ..Timeline::default() };
        assert!(!t.arrived_while_away(&at(10, other), me), "already read");
        assert!(t.arrived_while_away(&at(11, other), me));
        assert!(t.arrived_while_away(&at(14, other), me));
        assert!(!t.arrived_while_away(&at(15, other), me), "arrived while looking");
        assert!(!t.arrived_while_away(&at(12, me), me), "my own");
        let unknown = Timeline { read_seq: None, opened_seq: 14, ..Timeline::default() };
        assert!(!unknown.arrived_while_away(&at(12, other), me), "no cursor known yet");
    }

    #[test]
    fn access_start_compares_as_the_server_writes_times() {
        let since = Some("2026-11-25T10:00:05.250+00:00");
        assert!(sent_before("2026-11-25T10:00:05+00:00", since));
        assert!(sent_before("2026-11-25T10:00:05.249999+00:00", since));
        assert!(!sent_before("2026-11-25T10:00:05.250+00:00", since), "not before itself");
        assert!(!sent_before("2026-11-25T10:00:05.250001+00:00", since));
        assert!(!sent_before("2026-11-25T10:00:06+00:00", since));
        assert!(!sent_before("2020-01-01T00:00:00+00:00", None), "no start known: nothing is hidden");
    }
}
