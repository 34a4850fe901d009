//! The timeline: day separators, the "new messages" divider, grouped messages, scrolling up for older
//! pages, and who is typing.

use super::message::{Feeds, MessageRow, RowState};
use crate::chat::{Chat, Line, PENDING_FROM, Timeline, act, same_group, sent_before};
use crate::components::style::SMALL;
use crate::dates::{day_and_time, day_label};
use leptos::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

/// A row of the timeline.
// Nearly every row is a message: boxing the large variant would cost an allocation per row.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Row {
    /// A day's first message follows (the day as `YYYY-MM-DD`).
    Day(String),
    NewMessages,
    /// Stands for the messages sent before the person's access began that this device has no key
    /// for: not errors, just history they were not given.
    BeforeAccess,
    Message {
        line: Line,
        grouped: bool,
    },
    /// The others who have read up to the message above (and not beyond), for read receipts.
    SeenBy(Vec<Uuid>),
}

impl Row {
    /// Stable while the row looks the same: unchanged rows are not rebuilt.
    fn key(&self) -> String {
        use std::hash::{Hash, Hasher};
        match self {
            Self::Day(d) => format!("day:{d}"),
            Self::NewMessages => "new".into(),
            Self::BeforeAccess => "before-access".into(),
            Self::Message { line, grouped } => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                line.body.hash(&mut h);
                format!("{}:{}:{}:{grouped}:{:?}:{}", line.id, line.edited, line.deleted, line.lock, h.finish())
            }
            Self::SeenBy(readers) => {
                let mut key = "seen".to_owned();
                for r in readers {
                    key.push(':');
                    key.push_str(&r.to_string());
                }
                key
            }
        }
    }
}

/// Whether a message is one of those sent before the person's access began (`since`) that this
/// device holds no key for.
pub(super) fn before_access(line: &Line, since: Option<&str>) -> bool {
    matches!(&line.body, Err(why) if why.awaits_key()) && sent_before(&line.created_at, since)
}

/// Where each other reader's receipt goes: under the newest message they have read, unless they
/// wrote it (that they read their own message says nothing). Readers by message id, in order.
fn seen_at(t: &Timeline, me: Uuid, receipts: Option<&HashMap<Uuid, i64>>) -> HashMap<Uuid, Vec<Uuid>> {
    let mut at: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (&reader, &seq) in receipts.into_iter().flatten() {
        if reader == me {
            continue;
        }
        if let Some((_, line)) = t.lines.range(..=seq.min(PENDING_FROM - 1)).next_back()
            && line.sender != reader
        {
            at.entry(line.id).or_default().push(reader);
        }
    }
    for readers in at.values_mut() {
        readers.sort_unstable();
    }
    at
}

pub(super) fn rows(t: &Timeline, me: Uuid, since: Option<&str>, receipts: Option<&HashMap<Uuid, i64>>) -> Vec<Row> {
    let mut out = Vec::with_capacity(t.lines.len() + 4);
    let mut seen = seen_at(t, me, receipts);
    let mut prev: Option<&Line> = None;
    let mut prev_day = String::new();
    let mut divider_placed = false;
    if t.lines.values().any(|l| before_access(l, since)) {
        out.push(Row::BeforeAccess);
    }
    for line in t.lines.values().filter(|l| !before_access(l, since)) {
        let (day, _) = day_and_time(&line.created_at);
        if day != prev_day {
            out.push(Row::Day(day.clone()));
            prev_day = day;
            prev = None;
        }
        if !divider_placed && t.arrived_while_away(line, me) {
            out.push(Row::NewMessages);
            divider_placed = true;
            prev = None;
        }
        let grouped = prev.is_some_and(|p| same_group(p, line));
        out.push(Row::Message { line: line.clone(), grouped });
        prev = Some(line);
        if let Some(readers) = seen.remove(&line.id) {
            out.push(Row::SeenBy(readers));
        }
    }
    out
}

pub(super) fn name_of(names: &HashMap<Uuid, String>, id: Uuid) -> String {
    names.get(&id).cloned().unwrap_or_else(|| "Someone who left".to_owned())
}

#[component]
pub(super) fn TimelineView(
    channel: Uuid,
    names: Signal<HashMap<Uuid, String>>,
    replying: RwSignal<Option<Uuid>>,
    /// When the person's access to the channel began (RFC 3339), if the server said.
    since: Option<String>,
    /// Bumped when the person sends: the view goes to the newest message.
    follow: RwSignal<u32>,
    /// The replies of the thread started on this message of the channel, instead of the channel.
    #[prop(optional)]
    thread: Option<Uuid>,
) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let me = chat.me.get_value();
    let key = thread.unwrap_or(channel);
    let timeline = chat.timeline(key);
    let since = StoredValue::new(since);
    let all_rows = Memo::new({
        let timeline = timeline.clone();
        move |_| {
            // "Seen by" goes under the channel's messages.
            let receipts = if thread.is_none() { chat.receipts.with(|r| r.get(&channel).cloned()) } else { None };
            since.with_value(|since| timeline.with(|t| rows(t, me, since.as_deref(), receipts.as_ref())))
        }
    });
    // Reached the messages from before the person's access: older pages hold only more of them,
    // so they are loaded on request, not by scrolling.
    let reached_access = Memo::new(move |_| all_rows.with(|r| r.first() == Some(&Row::BeforeAccess)));
    // Messages after the start of access still waiting for their keys: counted, not a wall.
    let waiting = Memo::new({
        let timeline = timeline.clone();
        move |_| {
            since.with_value(|since| {
                timeline.with(|t| {
                    t.lines
                        .values()
                        .filter(|l| {
                            !l.deleted
                                && matches!(&l.body, Err(w) if w.awaits_key())
                                && !before_access(l, since.as_deref())
                        })
                        .count()
                })
            })
        }
    });
    let scroller = NodeRef::<leptos::html::Div>::new();
    // Follow new messages while the view is at the bottom; keep the reading position when older
    // messages are added above.
    let stick = StoredValue::new(true);
    // The same, for drawing the "jump to latest" button; and the newest message seen at the bottom.
    let at_bottom = RwSignal::new(true);
    let seen_seq = RwSignal::new(0i64);
    let newest_seq = {
        let timeline = timeline.clone();
        move || timeline.with(|t| t.lines.range(..PENDING_FROM).next_back().map_or(0, |(seq, _)| *seq))
    };
    Effect::new({
        let newest_seq = newest_seq.clone();
        move |_| {
            if at_bottom.get() {
                seen_seq.set(newest_seq());
            }
        }
    });
    // Messages from others that arrived below while the reader was scrolled up.
    let new_below = Memo::new({
        let timeline = timeline.clone();
        move |_| {
            if at_bottom.get() {
                return 0;
            }
            let seen = seen_seq.get();
            timeline.with(|t| t.lines.range(seen + 1..PENDING_FROM).filter(|(_, l)| l.sender != me).count())
        }
    });
    // Scroll events before the first rows were put in place are layout, not the reader.
    let positioned = StoredValue::new(false);
    let height_before = StoredValue::new(None::<(i32, i32)>);
    let older = {
        let timeline = timeline.clone();
        move || {
            if let Some(el) = scroller.get_untracked() {
                height_before.set_value(Some((el.scroll_height(), el.scroll_top())));
            }
            let _ = &timeline;
            act::load_older(key);
        }
    };
    Effect::new({
        let older = older.clone();
        let timeline = timeline.clone();
        move |_| {
            all_rows.track();
            let Some(el) = scroller.get() else { return };
            let (older, timeline) = (older.clone(), timeline.clone());
            // Once the new rows are laid out.
            request_animation_frame(move || {
                // The view went (another page) before this frame: its state went with it.
                if !el.is_connected() {
                    return;
                }
                if let Some((height, top)) = height_before.get_value() {
                    height_before.set_value(None);
                    el.set_scroll_top(el.scroll_height() - height + top);
                } else if stick.get_value() {
                    el.set_scroll_top(el.scroll_height());
                }
                let more = timeline.with_untracked(|t| t.loaded && !t.at_start && !t.loading)
                    && !reached_access.get_untracked();
                if timeline.with_untracked(|t| t.loaded) {
                    positioned.set_value(true);
                }
                // No scroll will come when the page is shorter than the screen, or when the
                // reader scrolled up to the top while it loaded: load the next page now.
                let short = el.scroll_height() <= el.client_height() + 1;
                let waiting_at_top = !stick.get_value() && el.scroll_top() < 200;
                if el.is_connected() && more && (short || waiting_at_top) {
                    older();
                }
            });
        }
    });
    let on_scroll = {
        let older = older.clone();
        let timeline = timeline.clone();
        move |_| {
            let Some(el) = scroller.get_untracked() else { return };
            if !positioned.get_value() {
                return;
            }
            let bottom = el.scroll_height() - el.scroll_top() - el.client_height() < 80;
            stick.set_value(bottom);
            if at_bottom.get_untracked() != bottom {
                at_bottom.set(bottom);
            }
            if el.scroll_top() < 200
                && timeline.with_untracked(|t| t.loaded && !t.at_start && !t.loading)
                && !reached_access.get_untracked()
            {
                older();
            }
        }
    };
    let status = {
        let timeline = timeline.clone();
        move || {
            timeline.with(|t| {
                    if t.at_start {
                        Some(
                            view! {
                                <p
                                    class="py-2 text-center text-xs text-slate-600 dark:text-slate-400"
                                    data-testid="timeline-start"
                                >
                                    {if thread.is_some() {
                                        "The thread starts here."
                                    } else {
                                        "This is the beginning of the conversation."
                                    }}
                                </p>
                            }
                            .into_any(),
                        )
                    } else if t.loading {
                        Some(
                            view! { <p class="py-2 text-center text-xs text-slate-600 dark:text-slate-400">"Loading and decrypting…"</p> }
                                .into_any(),
                        )
                    } else if t.loaded {
                        let older = older.clone();
                        Some(view! {
                            <p class="py-2 text-center">
                                <button type="button" class=SMALL data-testid="load-older" on:click=move |_| older()>
                                    "Load older messages"
                                </button>
                            </p>
                        }.into_any())
                    } else {
                        None
                    }
                })
        }
    };
    let (t_err, t_removed) = (timeline.clone(), timeline.clone());
    let feeds = Feeds::new(key, thread.is_none());
    let state = RowState::new(names, replying, chat.compact.into(), thread.is_none(), Some(feeds));
    let to_bottom = move || {
        stick.set_value(true);
        at_bottom.set(true);
        if let Some(el) = scroller.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
    };
    // After sending, the view goes to my message, wherever it was.
    Effect::new(move |first: Option<()>| {
        follow.track();
        if first.is_some() {
            to_bottom();
        }
    });
    let jump = move || {
        (!at_bottom.get()).then(|| {
            let label = move || match new_below.get() {
                0 => "Jump to latest ↓".to_owned(),
                1 => "Jump to latest (1 new) ↓".to_owned(),
                n => format!("Jump to latest ({n} new) ↓"),
            };
            view! {
                <button
                    type="button"
                    class="absolute bottom-3 left-1/2 z-20 -translate-x-1/2 rounded-full bg-indigo-600 px-4 py-1.5 text-sm font-semibold text-white shadow-lg hover:bg-indigo-500 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-300"
                    data-testid="jump-latest"
                    on:click=move |_| to_bottom()
                >
                    {label}
                </button>
            }
        })
    };
    view! {
        <div class="relative flex min-h-0 flex-1 flex-col">
            <div
                node_ref=scroller
                class="min-h-0 flex-1 overflow-y-auto px-1 pb-2 pt-4 md:px-3"
                data-testid=if thread.is_some() { "thread-timeline" } else { "timeline" }
                role="log"
                aria-live="polite"
                aria-label=if thread.is_some() { "Replies" } else { "Messages" }
                tabindex="0"
                on:scroll=on_scroll
            >
                {status}
                {move || {
                    let n = waiting.get();
                    (n > 0)
                        .then(|| {
                            view! {
                                <p
                                    role="status"
                                    class="sticky top-0 z-10 my-1 rounded bg-slate-100 px-3 py-1 text-center text-xs text-slate-600 dark:bg-slate-800 dark:text-slate-300"
                                    data-testid="waiting-count"
                                >
                                    {if n == 1 {
                                        "1 message is waiting for its key. It opens by itself when the key arrives."
                                            .to_owned()
                                    } else {
                                        format!(
                                            "{n} messages are waiting for their keys. They open by themselves when the keys arrive.",
                                        )
                                    }}
                                </p>
                            }
                        })
                }}
                {move || {
                    t_err
                        .with(|t| t.error.clone())
                        .map(|e| {
                            view! {
                                <p role="alert" class="py-2 text-sm text-red-700 dark:text-red-300">
                                    {e}
                                </p>
                            }
                        })
                }}
                <For each=move || all_rows.get() key=Row::key let:row>
                    {match row {
                        Row::Day(day) => {
                            view! {
                                <div
                                    class="my-3 flex items-center gap-2 text-xs text-slate-600 dark:text-slate-400"
                                    role="separator"
                                    data-testid="day-separator"
                                >
                                    <span class="h-px flex-1 bg-slate-200 dark:bg-slate-800"></span>
                                    {day_label(&day)}
                                    <span class="h-px flex-1 bg-slate-200 dark:bg-slate-800"></span>
                                </div>
                            }
                                .into_any()
                        }
                        Row::NewMessages => {
                            view! {
                                <div
                                    class="my-2 flex items-center gap-2 text-xs font-semibold text-red-600 dark:text-red-400"
                                    role="separator"
                                    data-testid="new-messages"
                                >
                                    <span class="h-px flex-1 bg-red-300 dark:bg-red-800"></span>
                                    "New messages"
                                    <span class="h-px flex-1 bg-red-300 dark:bg-red-800"></span>
                                </div>
                            }
                                .into_any()
                        }
                        Row::BeforeAccess => {
                            view! {
                                <p
                                    class="py-2 text-center text-xs text-slate-600 dark:text-slate-400"
                                    data-testid="before-access"
                                >
                                    "Earlier messages were sent before you joined."
                                </p>
                            }
                                .into_any()
                        }
                        Row::Message { line, grouped } => view! { <MessageRow channel line grouped state /> }.into_any(),
                        Row::SeenBy(readers) => {
                            let text = move || {
                                let who: Vec<String> = names.with(|n| readers.iter().map(|u| name_of(n, *u)).collect());
                                format!("Seen by {}", who.join(", "))
                            };
                            view! {
                                <p
                                    class="px-3 text-right text-xs text-slate-600 dark:text-slate-400"
                                    data-testid="seen-by"
                                >
                                    {text}
                                </p>
                            }
                                .into_any()
                        }
                    }}
                </For>
                {move || {
                    t_removed
                        .with(|t| t.removed)
                        .then(|| {
                            view! {
                                <p
                                    role="status"
                                    class="my-3 rounded-lg bg-slate-100 p-3 text-sm dark:bg-slate-800"
                                    data-testid="removed"
                                >
                                    "You are no longer in this conversation. Nothing new reaches you here."
                                </p>
                            }
                        })
                }}
            </div>
            {jump}
        </div>
    }
    .into_any()
}

/// "Alice is typing…"
#[component]
pub(super) fn TypingLine(channel: Uuid, names: Signal<HashMap<Uuid, String>>) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let me = chat.me.get_value();
    let text = move || {
        let typing: Vec<Uuid> = chat.typing.with(|all| {
            all.get(&channel).map(|m| m.keys().copied().filter(|u| *u != me).collect()).unwrap_or_default()
        });
        let who: Vec<String> = names.with(|n| typing.iter().map(|u| name_of(n, *u)).collect());
        match who.as_slice() {
            [] => String::new(),
            [one] => format!("{one} is typing…"),
            [a, b] => format!("{a} and {b} are typing…"),
            _ => "Several people are typing…".to_owned(),
        }
    };
    view! {
        <p class="h-5 px-4 text-xs text-slate-600 dark:text-slate-400" data-testid="typing" aria-live="polite">
            {text}
        </p>
    }
}
