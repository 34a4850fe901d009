//! One message: its author, avatar and time, its text (or why it cannot be read), its lock, and its
//! actions (reply, edit, delete) in a bar shown on hover, on focus, or when the message is tapped.

use super::commands::{ACTION, emoji_only, spoiler};
use super::rich;
use super::timeline::name_of;
use crate::chat::{Chat, Chip, Line, Lock, Timeline, Unreadable, act, sent_before};
use crate::components::{avatar::Avatar, style::SMALL};
use crate::dates::{full_time, time_label};
use crate::markdown;
use crate::model::messages::ThreadSummary;
use leptos::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

pub(super) fn lock_badge(lock: Lock) -> (&'static str, &'static str) {
    match lock {
        Lock::Verified => ("🔒✓", "End-to-end encrypted, from a verified device"),
        Lock::Encrypted => ("🔒", "End-to-end encrypted (the sender's device is not verified)"),
        Lock::Failed => ("⚠", "Cannot be read"),
        Lock::Sending => ("…", "Sending"),
    }
}

/// Why a message cannot be read and what will fix it, in plain words.
pub(super) fn unreadable_text(
    why: &Unreadable,
    author: String,
    created_at: &str,
    device_since: Option<&str>,
) -> String {
    match why {
        Unreadable::Refused(reason) => format!("Not shown: {reason}."),
        _ if sent_before(created_at, device_since) => "Sent before this browser was set up: its key comes from your \
                                                         other signed-in device or from your key backup."
            .to_owned(),
        Unreadable::Missing | Unreadable::Earlier => {
            format!("Waiting for {author}'s device to share the key: it will arrive when that device comes online.")
        }
    }
}

/// What a message row shares with the rest of the timeline.
#[derive(Clone, Copy)]
pub(super) struct RowState {
    pub names: Signal<HashMap<Uuid, String>>,
    pub replying: RwSignal<Option<Uuid>>,
    pub editing: RwSignal<Option<Uuid>>,
    /// The message whose deletion awaits confirmation.
    pub confirming: RwSignal<Option<Uuid>>,
    /// The message whose action bar stays shown (tapped on a touch screen, or long-pressed).
    pub selected: RwSignal<Option<Uuid>>,
    /// One line per message, no avatars.
    pub compact: Signal<bool>,
    /// The message whose reaction picker is open.
    pub reacting: RwSignal<Option<Uuid>>,
    /// Rows of the channel's own timeline: they start threads and show their summaries (a
    /// thread's replies, and its first message above them, do not).
    pub threads: bool,
    /// What each row shows of the rest of its timeline, when the rows are a whole timeline's.
    pub feeds: Option<Feeds>,
}

/// What a row shows of the rest of its timeline: its reaction chips, the message it answers (its
/// author and text, when loaded) and, in a channel, the summary of the thread started on it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Feed {
    pub chips: Vec<Chip>,
    pub quoted: Option<(Uuid, Result<String, ()>)>,
    pub summary: Option<ThreadSummary>,
}

/// One signal per message of a timeline carrying its [`Feed`], so that a change to the timeline
/// reaches only the rows it changes. Rows that each read the whole timeline all ran again on every
/// change, each unsubscribing from and subscribing to one signal with a subscriber per row: work
/// quadratic in the rows shown (most of the 45 ms per message of a 1,000-message burst).
#[derive(Clone, Copy)]
pub(super) struct Feeds {
    /// The timeline the rows are of (a channel's, or a thread's).
    key: Uuid,
    threads: bool,
    me: Uuid,
    feeds: StoredValue<HashMap<Uuid, ArcRwSignal<Feed>>>,
}

impl Feeds {
    /// The feeds of timeline `key`'s rows, kept up to date (one pass over the timeline per change)
    /// while the calling view lives.
    pub fn new(key: Uuid, threads: bool) -> Self {
        let chat = expect_context::<Chat>();
        let this = Self { key, threads, me: chat.me.get_value(), feeds: StoredValue::new(HashMap::new()) };
        let timeline = chat.timeline(key);
        Effect::new(move |_| {
            let changed: Vec<(ArcRwSignal<Feed>, Feed)> = timeline.with(|t| {
                let lines: HashMap<Uuid, &Line> = t.lines.values().map(|l| (l.id, l)).collect();
                this.feeds
                    .try_update_value(|feeds| {
                        feeds.retain(|id, _| lines.contains_key(id));
                        feeds
                            .iter()
                            .filter_map(|(id, signal)| {
                                let now = this.feed(t, lines.get(id).copied()?, |id| lines.get(&id).copied());
                                signal.with_untracked(|was| *was != now).then(|| (signal.clone(), now))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            });
            for (signal, now) in changed {
                signal.set(now);
            }
        });
        this
    }

    /// `line`'s feed; `find` finds a message of the timeline by id.
    fn feed<'t>(&self, t: &'t Timeline, line: &Line, find: impl Fn(Uuid) -> Option<&'t Line>) -> Feed {
        Feed {
            chips: t.chips(line.id, self.me),
            quoted: line.reply_to.and_then(find).map(|l| (l.sender, l.body.clone().map_err(|_| ()))),
            summary: self.threads.then(|| t.threads.get(&line.id).cloned()).flatten(),
        }
    }

    /// The feed of message `id` of timeline `here`, if these are that timeline's feeds.
    fn of(self, here: Uuid, id: Uuid) -> Option<ArcRwSignal<Feed>> {
        if here != self.key {
            return None;
        }
        let timeline = expect_context::<Chat>().timeline(self.key);
        let now = timeline.with_untracked(|t| t.find(id).map(|line| self.feed(t, line, |id| t.find(id))))?;
        self.feeds.try_update_value(|feeds| feeds.entry(id).or_insert_with(|| ArcRwSignal::new(now)).clone())
    }
}

impl RowState {
    /// The rows of one timeline: nothing selected, edited or asked yet.
    pub fn new(
        names: Signal<HashMap<Uuid, String>>,
        replying: RwSignal<Option<Uuid>>,
        compact: Signal<bool>,
        threads: bool,
        feeds: Option<Feeds>,
    ) -> Self {
        Self {
            names,
            replying,
            editing: RwSignal::new(None),
            confirming: RwSignal::new(None),
            selected: RwSignal::new(None),
            compact,
            reacting: RwSignal::new(None),
            threads,
            feeds,
        }
    }
}

/// The reactions offered at once (a full emoji picker comes with emoji search).
pub(super) const QUICK_REACTIONS: [&str; 8] = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

/// "👍 2: Alice, Bob", for hovering and screen readers.
fn chip_label(emoji: &str, names: &[String]) -> String {
    format!("{emoji} {}: {}", names.len(), names.join(", "))
}

#[component]
pub(super) fn MessageRow(channel: Uuid, line: Line, grouped: bool, state: RowState) -> impl IntoView {
    let RowState { names, replying, editing, confirming, selected, compact, reacting, threads, feeds } = state;
    let chat = expect_context::<Chat>();
    // The timeline the message is in: its channel's, or its thread's.
    let here = line.thread.unwrap_or(channel);
    let mine = line.sender == chat.me.get_value();
    let time = time_label(&line.created_at);
    let full = full_time(&line.created_at);
    let (icon, lock_title) = lock_badge(line.lock);
    let id = line.id;
    let sender = line.sender;
    let author = Signal::derive(move || names.with(|n| name_of(n, sender)));
    // From the row's feed when it has one; else (the first message above a thread) from the timeline.
    let feed = feeds.and_then(|f| f.of(here, id));
    let quoted = line.reply_to.map(|target| {
        let timeline = chat.timeline(here);
        let feed = feed.clone();
        move || {
            let found = match &feed {
                Some(feed) => feed.with(|f| f.quoted.clone()),
                None => timeline.with(|t| t.find(target).map(|l| (l.sender, l.body.clone().map_err(|_| ())))),
            };
            match found {
                Some((sender, body)) => format!(
                    "↪ {}: {}",
                    names.with(|n| name_of(n, sender)),
                    body.map(|b| markdown::plain(&b).chars().take(80).collect::<String>())
                        .unwrap_or_else(|()| "(cannot be read)".into())
                ),
                None => "↪ an earlier message".to_owned(),
            }
        }
    });
    let (body, deleted) = (line.body.clone(), line.deleted);
    // A poll whose options make sense (one that does not shows its question as text).
    let poll = line.poll.clone().filter(|p| line.body.as_deref().is_ok_and(|q| p.check(q).is_ok()));
    let is_poll = poll.is_some();
    let can_vote = line.lock != Lock::Sending;
    let created_at = line.created_at.clone();
    let device_since = chat.device.with_untracked(|d| d.clone().and_then(Result::ok).and_then(|d| d.created_at));
    let body_view = move || match (body.clone(), deleted) {
        (_, true) => view! {
            <p class="italic text-slate-600 dark:text-slate-400" data-testid="message-body">
                "Message deleted"
            </p>
        }
        .into_any(),
        (Ok(text), false) => {
            if let Some(poll) = poll.clone() {
                view! { <super::poll::PollCard channel here id question=text poll can_vote /> }.into_any()
            } else if let Some(action) = text.strip_prefix(ACTION) {
                let action = action.to_owned();
                view! {
                    <p class="whitespace-pre-wrap break-words italic" data-testid="message-body" data-kind="action">
                        {move || format!("* {} {action}", author.get())}
                    </p>
                }
                .into_any()
            } else if emoji_only(&text) {
                // A few emoji alone are shown large.
                view! {
                    <p class="text-4xl leading-[3rem]" data-testid="message-body" data-kind="emoji">
                        {text}
                    </p>
                }
                .into_any()
            } else {
                let kind = spoiler(&text).is_some().then_some("spoiler");
                view! {
                    <div class="whitespace-pre-wrap break-words" data-testid="message-body" data-kind=kind>
                        {rich::blocks(markdown::parse(&text))}
                    </div>
                }
                .into_any()
            }
        }
        (Err(why), false) => {
            let refused = !why.awaits_key();
            let (created_at, device_since) = (created_at.clone(), device_since.clone());
            let text =
                move || unreadable_text(&why, names.with(|n| name_of(n, sender)), &created_at, device_since.as_deref());
            view! {
                <p
                    class=if refused {
                        "break-words italic text-red-700 dark:text-red-300"
                    } else {
                        "break-words italic text-slate-600 dark:text-slate-400"
                    }
                    data-testid="message-body"
                    data-unreadable=if refused { "refused" } else { "waiting" }
                >
                    {text}
                </p>
            }
            .into_any()
        }
    };
    // A message on its way has no id at the server yet: nothing to reply to, edit or delete.
    let can_act = !line.deleted && line.body.is_ok() && line.lock != Lock::Sending;
    let draft = RwSignal::new(line.body.clone().unwrap_or_default());
    let edit_error = RwSignal::new(None::<String>);
    let save = move || {
        let body = draft.get_untracked();
        if body.trim().is_empty() {
            return;
        }
        leptos::task::spawn_local(async move {
            match act::edit(channel, id, body).await {
                Ok(()) => {
                    editing.set(None);
                    edit_error.set(None);
                }
                Err(e) => edit_error.set(Some(e.to_string())),
            }
        });
    };
    let edit_form = move || {
        view! {
            <form
                class="space-y-1 py-1"
                on:submit=move |ev| {
                    ev.prevent_default();
                    save();
                }
            >
                <textarea
                    class="block w-full rounded border border-slate-300 bg-white p-2 text-sm dark:border-slate-700 dark:bg-slate-900"
                    data-testid="edit-box"
                    aria-label="Edit message"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            save();
                        } else if ev.key() == "Escape" {
                            ev.prevent_default();
                            editing.set(None);
                        }
                    }
                ></textarea>
                <div class="flex gap-2 text-xs">
                    <button type="submit" class=SMALL data-testid="save-edit">
                        "Save"
                    </button>
                    <button type="button" class=SMALL on:click=move |_| editing.set(None)>
                        "Cancel"
                    </button>
                    <span class="text-slate-600 dark:text-slate-400">"Enter saves · Esc cancels"</span>
                </div>
            </form>
        }
    };
    // "(edited)" opens the earlier versions, fetched and decrypted when asked for.
    let was_edited = line.edited;
    let history = RwSignal::new(None::<Result<Vec<(Result<String, Unreadable>, String)>, String>>);
    let toggle_history = move |_| {
        if history.get_untracked().is_some() {
            history.set(None);
            return;
        }
        leptos::task::spawn_local(async move {
            history.set(Some(act::versions(id).await.map_err(|e| e.to_string())));
        });
    };
    let edited = move || {
        was_edited.then(|| {
            view! {
                <button
                    type="button"
                    class="text-xs text-slate-600 hover:underline focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 dark:text-slate-400"
                    data-testid="edited"
                    title="Show earlier versions"
                    aria-expanded=move || history.with(Option::is_some).to_string()
                    on:click=toggle_history
                >
                    " (edited)"
                </button>
            }
        })
    };
    let versions = move || {
        history.get().map(|found| match found {
            Ok(list) => view! {
                <ol
                    class="mt-1 space-y-0.5 border-l-2 border-slate-300 pl-2 text-sm text-slate-700 dark:border-slate-700 dark:text-slate-300"
                    aria-label="Earlier versions"
                    data-testid="versions"
                >
                    {list
                        .into_iter()
                        .map(|(text, replaced_at)| {
                            view! {
                                <li class="whitespace-pre-wrap break-words" data-testid="version">
                                    <span class="text-xs text-slate-600 dark:text-slate-400">
                                        {format!("Until {}: ", full_time(&replaced_at))}
                                    </span>
                                    {text.unwrap_or_else(|_| "(cannot be read)".to_owned())}
                                </li>
                            }
                        })
                        .collect_view()}
                </ol>
            }
            .into_any(),
            Err(e) => view! {
                <p role="alert" class="text-xs text-red-700 dark:text-red-300">
                    {format!("Earlier versions cannot be shown: {e}")}
                </p>
            }
            .into_any(),
        })
    };
    // Disappearing: a timer, and when on hovering.
    let expires = line.expires_ms.map(|ms| format!("Disappears {}", full_time(&crate::dates::rfc3339_of_ms(ms))));
    let lock = move || {
        view! {
            <span class="shrink-0 text-xs" title=lock_title aria-label=lock_title data-testid="lock">
                {icon}
            </span>
            {expires
                .clone()
                .map(|when| {
                    view! {
                        <span class="shrink-0 text-xs" title=when.clone() aria-label=when data-testid="expires">
                            "⏱"
                        </span>
                    }
                })}
        }
    };
    let stamp = {
        let (time, full, at) = (time.clone(), full.clone(), line.created_at.clone());
        move |class: &'static str| {
            view! {
                <time class=class datetime=at.clone() title=full.clone()>
                    {time.clone()}
                </time>
            }
        }
    };
    let quote = move || {
        quoted.clone().map(|q| {
            view! {
                <p
                    class="truncate border-l-2 border-slate-300 pl-2 text-xs text-slate-600 dark:border-slate-700 dark:text-slate-400"
                    data-testid="reply-quote"
                >
                    {q}
                </p>
            }
        })
    };
    let pins = use_context::<super::pins::PinState>();
    let forwarding = use_context::<super::forward::ForwardState>();
    let readable = line.body.clone().ok();
    let forwarded_from = line.forwarded_from.clone();
    let pinned = move || pins.is_some_and(|p| p.is_pinned(id));
    // Bookmarks are kept on the channel's own messages.
    let index = use_context::<super::bookmarks::BookmarkIndex>().filter(|_| threads);
    let bookmarked = Memo::new(move |_| index.and_then(|i| i.0.with(|m| m.get(&id).map(|(_, note)| note.clone()))));
    let bookmarking = RwSignal::new(false);
    let bookmark_text = readable.clone();
    // The text, or the box editing it; then any error of an edit or delete.
    let content = move || {
        let body_view = body_view.clone();
        view! {
            {forwarded_from
                .clone()
                .map(|who| {
                    view! {
                        <p class="text-xs italic text-slate-600 dark:text-slate-400" data-testid="forwarded">
                            {format!("↪ Forwarded from {who}")}
                        </p>
                    }
                })}
            {move || if editing.get() == Some(id) { edit_form().into_any() } else { body_view().into_any() }}
            {edited()}
            {move || {
                pinned()
                    .then(|| {
                        view! {
                            <p
                                class="text-[11px] leading-4 text-amber-800 dark:text-amber-300"
                                data-testid="pinned-mark"
                            >
                                "📌 Pinned"
                            </p>
                        }
                    })
            }}
            {move || {
                bookmarked
                    .get()
                    .map(|note| {
                        view! {
                            <p
                                class="text-[11px] leading-4 text-emerald-800 dark:text-emerald-300"
                                data-testid="bookmarked"
                            >
                                {if note.is_empty() { "🔖 Bookmarked".to_owned() } else { format!("🔖 {note}") }}
                            </p>
                        }
                    })
            }}
            {move || {
                let text = bookmark_text.clone()?;
                bookmarking
                    .get()
                    .then(|| {
                        view! { <super::bookmarks::BookmarkForm channel message=id author text open=bookmarking /> }
                    })
            }}
            {versions}
            {move || {
                edit_error
                    .get()
                    .map(|e| {
                        view! {
                            <p role="alert" class="text-xs text-red-700 dark:text-red-300">
                                {e}
                            </p>
                        }
                    })
            }}
        }
    };
    // Reactions, one chip per kind: mine pressed; a click adds or removes mine.
    let chips = match feed.clone() {
        Some(feed) => Memo::new(move |_| feed.with(|f| f.chips.clone())),
        None => Memo::new({
            let timeline = chat.timeline(here);
            let me = chat.me.get_value();
            move |_| timeline.with(|t| t.chips(id, me))
        }),
    };
    let react = move |emoji: String, mine: Option<Uuid>| {
        reacting.set(None);
        leptos::task::spawn_local(async move {
            let done = match mine {
                Some(reaction) => act::delete(channel, reaction).await,
                None => act::react(channel, id, emoji).await,
            };
            if let Err(e) = done {
                edit_error.set(Some(format!("Reaction not sent: {e}")));
            }
        });
    };
    // Who gave a reaction, shown on a long press (touch screens have no hover for the title).
    let showing_who = RwSignal::new(None::<String>);
    let who_reacted = move || {
        let emoji = showing_who.get()?;
        let label = chips.with(|c| {
            c.iter().find(|c| c.emoji == emoji).map(|chip| {
                let who: Vec<String> = names.with(|n| chip.people.iter().map(|u| name_of(n, *u)).collect());
                chip_label(&chip.emoji, &who)
            })
        })?;
        Some(view! {
            <p
                role="status"
                class="mt-1 flex items-center gap-2 rounded border border-slate-200 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900"
                data-testid="reactors"
            >
                <span>{label}</span>
                <button type="button" class=SMALL on:click=move |_| showing_who.set(None)>
                    "Close"
                </button>
            </p>
        })
    };
    let chip_row = move || {
        let list = chips.get();
        (!list.is_empty()).then(|| {
            view! {
                <div class="mt-0.5 flex flex-wrap gap-1" data-testid="reactions">
                    {list
                        .into_iter()
                        .map(|chip| {
                            let who: Vec<String> = names.with(|n| chip.people.iter().map(|u| name_of(n, *u)).collect());
                            let label = chip_label(&chip.emoji, &who);
                            let (emoji, mine) = (chip.emoji.clone(), chip.mine);
                            view! {
                                <button
                                    type="button"
                                    class=if mine.is_some() {
                                        "inline-flex items-center gap-1 rounded-full border border-indigo-400 bg-indigo-50 px-2 text-sm leading-6 text-indigo-900 hover:bg-indigo-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 dark:border-indigo-500 dark:bg-indigo-950 dark:text-indigo-100"
                                    } else {
                                        "inline-flex items-center gap-1 rounded-full border border-slate-300 bg-white px-2 text-sm leading-6 text-slate-800 hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 dark:border-slate-700 dark:bg-slate-900 dark:text-slate-100"
                                    }
                                    title=label.clone()
                                    aria-label=label
                                    aria-pressed=mine.is_some().to_string()
                                    data-testid="reaction"
                                    data-emoji=chip.emoji.clone()
                                    on:click=move |_| react(emoji.clone(), mine)
                                    // A long press (or a right click) says who, instead of a menu.
                                    on:contextmenu={
                                        let emoji = chip.emoji.clone();
                                        move |ev| {
                                            ev.prevent_default();
                                            showing_who.set(Some(emoji.clone()));
                                        }
                                    }
                                >
                                    <span aria-hidden="true">{chip.emoji.clone()}</span>
                                    <span class="text-xs font-semibold" aria-hidden="true">
                                        {chip.people.len()}
                                    </span>
                                </button>
                            }
                        })
                        .collect_view()}
                </div>
            }
        })
    };
    // A thread started here: how many replies, when the latest came, whether I read it; opens it.
    let summary = match feed {
        Some(feed) => Memo::new(move |_| feed.with(|f| f.summary.clone())),
        None => Memo::new({
            let timeline = chat.timeline(channel);
            move |_| if threads { timeline.with(|t| t.threads.get(&id).cloned()) } else { None }
        }),
    };
    let thread_summary = move || {
        summary.get().map(|s| {
            let unread = s.last_seq > s.read_seq;
            let label = format!(
                "{} · Last reply {} {}",
                if s.replies == 1 { "1 reply".to_owned() } else { format!("{} replies", s.replies) },
                crate::dates::day_label(&crate::dates::day_and_time(&s.last_at).0),
                time_label(&s.last_at),
            );
            let aria = format!("{label}{}. Open the thread", if unread { ", unread" } else { "" });
            view! {
                <button
                    type="button"
                    class="mt-0.5 inline-flex items-center gap-1.5 rounded px-1 text-xs font-semibold text-indigo-700 hover:underline focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 dark:text-indigo-300"
                    data-testid="thread-summary"
                    data-unread=unread.then_some("")
                    aria-label=aria
                    on:click=move |_| act::open_thread(channel, id)
                >
                    {unread
                        .then(|| {
                            view! {
                                <span class="h-2 w-2 rounded-full bg-red-600 dark:bg-red-400" aria-hidden="true"></span>
                            }
                        })}
                    {label}
                </button>
            }
        })
    };
    // One structure for the three looks (less code in the bundle than three): a gutter (the
    // avatar that starts a group; the time in a group, on hover; the time, compact), then the
    // header (starting a group), the quote, the lock and the text with its reactions.
    let layout = move || {
        let (quote, stamp, content) = (quote.clone(), stamp.clone(), content.clone());
        let compact = compact.get();
        let starts = !compact && !grouped;
        view! {
            <div class=if compact {
                "w-14 shrink-0 leading-[1.375rem]"
            } else if grouped {
                "flex w-10 shrink-0 justify-center leading-[1.375rem]"
            } else {
                "flex w-10 shrink-0 justify-center pt-0.5"
            }>
                {if starts {
                    view! { <Avatar user=sender name=author size="h-8 w-8 text-xs" /> }.into_any()
                } else {
                    stamp(
                            if compact {
                                "whitespace-nowrap text-xs tabular-nums text-slate-600 dark:text-slate-400"
                            } else {
                                "invisible whitespace-nowrap text-[10px] text-slate-600 group-hover:visible group-focus-within:visible dark:text-slate-400"
                            },
                        )
                        .into_any()
                }}
            </div>
            <div class="min-w-0 flex-1">
                {starts
                    .then(|| {
                        view! {
                            <header class="flex items-baseline gap-2 leading-[1.125rem]">
                                <span class="truncate text-sm font-semibold" data-testid="author">
                                    {author}
                                </span>
                                {stamp("shrink-0 text-xs text-slate-600 dark:text-slate-400")}
                            </header>
                        }
                    })} {quote()}
                <div class="flex items-start gap-2 leading-[1.375rem]">
                    {lock()}
                    <div class="min-w-0 flex-1">
                        {compact
                            .then(|| {
                                view! {
                                    <span class="float-left mr-2 text-sm font-semibold" data-testid="author">
                                        {author}
                                    </span>
                                }
                            })} {content()} {chip_row} {who_reacted} {thread_summary}
                    </div>
                </div>
            </div>
        }
    };
    let delete_confirm = move || {
        view! {
            <span class="px-1 text-xs">"Delete for everyone?"</span>
            <button
                type="button"
                class=SMALL
                data-testid="confirm-delete"
                on:click=move |_| {
                    confirming.set(None);
                    selected.set(None);
                    leptos::task::spawn_local(async move {
                        if let Err(e) = act::delete(channel, id).await {
                            edit_error.set(Some(e.to_string()));
                        }
                    });
                }
            >
                "Delete"
            </button>
            <button type="button" class=SMALL data-testid="keep" on:click=move |_| confirming.set(None)>
                "Keep"
            </button>
        }
    };
    // The whole emoji picker, from "…" beside the quick reactions.
    let all_emoji = RwSignal::new(false);
    let pick_any = Callback::new(move |emoji: String| {
        all_emoji.set(false);
        let mine = chips.with_untracked(|c| c.iter().find(|c| c.emoji == emoji).and_then(|c| c.mine));
        // Picking one I already gave keeps it (the chip removes it).
        if mine.is_none() {
            react(emoji, None);
        } else {
            reacting.set(None);
        }
    });
    let close_all = Callback::new(move |()| all_emoji.set(false));
    let picker = move || {
        let mine: Vec<(String, Option<Uuid>)> = chips.with(|c| c.iter().map(|c| (c.emoji.clone(), c.mine)).collect());
        let full = mine.len() >= crate::model::messages::MAX_DISTINCT_REACTIONS;
        view! {
            {QUICK_REACTIONS
                .iter()
                .map(|emoji| {
                    let given = mine.iter().find(|(e, _)| e == emoji).and_then(|(_, m)| *m);
                    let new_kind = !mine.iter().any(|(e, _)| e == emoji);
                    view! {
                        <button
                            type="button"
                            class="rounded px-1 text-lg leading-7 hover:bg-slate-200 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 disabled:opacity-40 dark:hover:bg-slate-700"
                            aria-label=format!("React with {emoji}")
                            aria-pressed=given.is_some().to_string()
                            disabled=full && new_kind
                            data-testid="pick-reaction"
                            data-emoji=*emoji
                            on:click=move |_| react((*emoji).to_owned(), given)
                        >
                            {*emoji}
                        </button>
                    }
                })
                .collect_view()}
            <button
                type="button"
                class=SMALL
                aria-label="More reactions"
                aria-haspopup="dialog"
                data-testid="more-reactions"
                on:click=move |_| all_emoji.set(true)
            >
                "…"
            </button>
            <button type="button" class=SMALL aria-label="Close reactions" on:click=move |_| reacting.set(None)>
                "✕"
            </button>
            {move || {
                all_emoji
                    .get()
                    .then(|| {
                        view! {
                            <super::emoji::EmojiPicker
                                on_pick=pick_any
                                on_close=close_all
                                class="fixed inset-x-2 bottom-2 mx-auto md:bottom-auto md:left-auto md:right-8 md:top-24 md:mx-0"
                                label="React with an emoji"
                            />
                        }
                    })
            }}
        }
    };
    // Forward, pin, edit and delete wait behind "⋯", so that the bar stays small (on a phone it
    // covers part of the message). They are in the page, hidden, until then.
    let more = RwSignal::new(false);
    let extra = move || if more.get() { SMALL.to_owned() } else { format!("{SMALL} hidden") };
    let actions = move || {
        view! {
            <button
                type="button"
                class=SMALL
                data-testid="react"
                aria-label="Add a reaction"
                on:click=move |_| reacting.set(Some(id))
            >
                "☺+"
            </button>
            <button
                type="button"
                class=SMALL
                data-testid="reply"
                on:click=move |_| {
                    selected.set(None);
                    replying.set(Some(id));
                }
            >
                "Reply"
            </button>
            {threads
                .then(|| {
                    view! {
                        <button
                            type="button"
                            class=SMALL
                            data-testid="start-thread"
                            aria-label="Reply in a thread"
                            title="Reply in a thread"
                            on:click=move |_| {
                                selected.set(None);
                                act::open_thread(channel, id);
                            }
                        >
                            "🧵"
                        </button>
                    }
                })}
            <button
                type="button"
                class=move || if more.get() { "hidden".to_owned() } else { SMALL.to_owned() }
                data-testid="more-actions"
                aria-label="More actions"
                aria-expanded=move || more.get().to_string()
                on:click=move |_| more.set(true)
            >
                "⋯"
            </button>
            {forwarding
                .zip(readable.clone())
                .map(|(f, text)| {
                    view! {
                        <button
                            type="button"
                            class=extra
                            data-testid="forward"
                            on:click=move |_| {
                                selected.set(None);
                                f.open
                                    .set(
                                        Some(super::forward::Forwarding {
                                            body: text.clone(),
                                            author: author.get_untracked(),
                                        }),
                                    );
                            }
                        >
                            "Forward"
                        </button>
                    }
                })}
            {index
                .is_some()
                .then(|| {
                    view! {
                        <button
                            type="button"
                            class=extra
                            data-testid="bookmark"
                            on:click=move |_| {
                                selected.set(None);
                                bookmarking.set(true);
                            }
                        >
                            {move || if bookmarked.with(Option::is_some) { "Edit bookmark" } else { "Bookmark" }}
                        </button>
                    }
                })}
            {move || {
                pins.filter(|p| p.can_pin.get())
                    .map(|p| {
                        let now = pinned();
                        view! {
                            <button
                                type="button"
                                class=extra
                                data-testid=if now { "unpin-message" } else { "pin-message" }
                                on:click=move |_| {
                                    selected.set(None);
                                    p.set(id, !now);
                                }
                            >
                                {if now { "Unpin" } else { "Pin" }}
                            </button>
                        }
                    })
            }}
            {(mine && !is_poll)
                .then(|| {
                    view! {
                        <button
                            type="button"
                            class=extra
                            data-testid="edit"
                            on:click=move |_| {
                                selected.set(None);
                                editing.set(Some(id));
                            }
                        >
                            "Edit"
                        </button>
                        <button
                            type="button"
                            class=extra
                            data-testid="delete"
                            on:click=move |_| confirming.set(Some(id))
                        >
                            "Delete"
                        </button>
                    }
                })}
        }
    };
    // Shown while hovered, while one of its buttons has the focus, or when tapped (touch screens
    // have no hover); always while a deletion awaits its answer. Out of the flow, so a message
    // takes no room for it.
    let bar = can_act.then(|| {
        let shown = move || selected.get() == Some(id) || confirming.get() == Some(id) || reacting.get() == Some(id);
        view! {
            <div
                role="toolbar"
                aria-label="Message actions"
                data-testid="message-actions"
                // `message-actions` (style/main.css): shown on hover (not on touch screens), focus or tap.
                class=move || {
                    format!(
                        "message-actions absolute -top-3 right-2 z-10 flex items-center gap-0.5 rounded-md border border-slate-200 bg-white p-0.5 shadow-sm dark:border-slate-700 dark:bg-slate-800 {}",
                        if editing.get() == Some(id) { "hidden" } else { "" },
                    )
                }
                data-shown=move || shown().then_some("")
            >
                {move || {
                    if confirming.get() == Some(id) {
                        delete_confirm().into_any()
                    } else if reacting.get() == Some(id) {
                        picker().into_any()
                    } else {
                        actions().into_any()
                    }
                }}
            </div>
        }
    });
    // Mentions me (by name, or everyone from someone who may): marked, as the sidebar counted it.
    let mentions_me = {
        let names = use_context::<super::rich::MentionNames>();
        let text = line.body.clone().ok().filter(|_| !line.deleted && !mine);
        Memo::new(move |_| names.zip(text.as_deref()).is_some_and(|(n, t)| n.mentions_me(sender, t)))
    };
    view! {
        <article
            class=move || {
                format!(
                    "group relative flex gap-2 rounded px-2 {} {}",
                    if mentions_me.get() {
                        "border-l-2 border-amber-500 bg-amber-50 hover:bg-amber-100 dark:bg-amber-950 dark:hover:bg-amber-900"
                    } else {
                        "hover:bg-slate-100 dark:hover:bg-slate-900"
                    },
                    if compact.get() { "py-px" } else if grouped { "" } else { "pt-0.5" },
                )
            }
            data-mentions-me=move || mentions_me.get().then_some("")
            data-testid="message"
            data-id=id.to_string()
            data-seq=line.seq.to_string()
            data-lock=format!("{:?}", line.lock).to_lowercase()
            data-grouped=grouped.to_string()
            // A tap (touch screens have no hover) or a long press shows the actions.
            on:click=move |ev| {
                let on_control = event_target::<leptos::web_sys::Element>(&ev)
                    .closest("button, a, textarea, input, select")
                    .ok()
                    .flatten()
                    .is_some();
                if can_act && !on_control {
                    selected.update(|s| *s = if *s == Some(id) { None } else { Some(id) });
                    more.set(false);
                }
            }
        >
            {layout}
            {bar}
        </article>
    }
    .into_any()
}
