//! A conversation (community channel, DM or group DM): the header, the timeline (decrypted in the
//! browser, older pages loaded by scrolling up), the composer and the member list with presence.
//! The server renders the frame, names and members; message bodies appear once this browser has
//! decrypted them.

use super::signed_in::ShellData;
use crate::{
    api::spaces::{
        CreateChannel, CreateCommunityInvite, CreateGroup, add_group_member, community_members, create_group_dm,
        kick_member, open_dm,
    },
    chat::{Chat, Line, Lock, Timeline, act, day_and_time, same_group},
    components::{
        form::{ErrorBanner, Field, INPUT, reset_after},
        sidebar::direct_label,
    },
    model::{
        gateway::Presence,
        spaces::{ChannelKind, CommunityRole, Member, MySpaces},
    },
};
use leptos::{form::ActionForm, prelude::*};
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

const SMALL: &str = "rounded px-2 py-0.5 text-xs font-medium text-slate-600 hover:bg-slate-200 focus:outline-none \
    focus-visible:ring-2 focus-visible:ring-indigo-400 dark:text-slate-300 dark:hover:bg-slate-700";
const PRIMARY: &str = "shrink-0 rounded-lg bg-indigo-600 px-3 py-2 text-sm font-semibold text-white hover:bg-indigo-500 \
    focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 disabled:opacity-50";

/// Where a channel sits, from the sidebar's data.
#[derive(Clone, Debug, PartialEq)]
struct Place {
    title: String,
    kind: ChannelKind,
    /// In a private group (invite only).
    private: bool,
    /// The community and the user's role in it (community channels only).
    community: Option<(Uuid, CommunityRole)>,
    group_id: Option<Uuid>,
}

fn place(spaces: &MySpaces, channel: Uuid, me: Uuid) -> Option<Place> {
    for c in &spaces.communities {
        for g in &c.groups {
            if let Some(ch) = g.channels.iter().find(|ch| ch.id == channel) {
                return Some(Place {
                    title: format!("# {}", ch.name),
                    kind: ch.kind,
                    private: g.private,
                    community: Some((c.id, c.my_role)),
                    group_id: Some(g.id),
                });
            }
        }
    }
    spaces.direct.iter().find(|ch| ch.id == channel).map(|ch| Place {
        title: direct_label(ch, me),
        kind: ch.kind,
        private: false,
        community: None,
        group_id: None,
    })
}

#[component]
pub fn ChannelPage() -> impl IntoView {
    let params = use_params_map();
    let channel = Memo::new(move |_| params.with(|p| p.get("id").and_then(|s| Uuid::parse_str(&s).ok())));
    move || match channel.get() {
        Some(id) => view! { <Conversation id /> }.into_any(),
        None => view! { <p class="p-4">"There is no such conversation."</p> }.into_any(),
    }
}

#[component]
fn Conversation(id: Uuid) -> impl IntoView {
    let data = expect_context::<ShellData>();
    let chat = expect_context::<Chat>();
    // Once this browser's encryption is ready (at once, or after the app loaded).
    Effect::new(move |_| {
        if chat.device.with(|d| matches!(d, Some(Ok(_)))) {
            act::open_channel(id);
        }
    });
    on_cleanup(move || act::close_channel(id));
    // Names of everyone in the channel, for authors and typing.
    let names = Signal::derive(move || {
        data.members_now
            .get()
            .filter(|(channel, _)| *channel == id)
            .map(|(_, list)| list.into_iter().map(|m| (m.user.id, m.user.display_name)).collect::<HashMap<_, _>>())
            .unwrap_or_default()
    });
    // Someone typing or writing here who is not in the member list joined since it loaded.
    Effect::new(move |asked: Option<std::collections::BTreeSet<Uuid>>| {
        let Some(known) = data.members_now.get().filter(|(channel, _)| *channel == id).map(|(_, list)| list) else {
            return asked.unwrap_or_default();
        };
        let known: HashSet<Uuid> = known.iter().map(|m| m.user.id).collect();
        let mut active: std::collections::BTreeSet<Uuid> =
            chat.typing.with(|t| t.get(&id).map(|m| m.keys().copied().collect()).unwrap_or_default());
        if let Some(t) = chat.opened(id) {
            t.with(|t| active.extend(t.lines.values().map(|l| l.sender)));
        }
        let unknown: std::collections::BTreeSet<Uuid> = active.into_iter().filter(|u| !known.contains(u)).collect();
        if !unknown.is_empty() && asked.as_ref() != Some(&unknown) {
            data.members_changed.update(|n| *n += 1);
        }
        unknown
    });
    let replying = RwSignal::new(None::<Uuid>);
    let members_open = RwSignal::new(false);
    // A conversation chosen in the sidebar takes the focus (its link may be rebuilt and the focus
    // would fall back to the page start): the next Tab goes on from the heading. Focus elsewhere,
    // such as the composer while the view is rebuilt, stays where it is.
    let heading = NodeRef::<leptos::html::H1>::new();
    Effect::new(move |_| {
        let Some(h) = heading.get() else { return };
        // After this render is in the document.
        request_animation_frame(move || {
            let lost = document()
                .active_element()
                .is_none_or(|e| e.tag_name() == "BODY" || e.closest("[data-testid=channel]").ok().flatten().is_some());
            if lost && chat.navigated.get_value() && h.is_connected() {
                let _ = h.focus();
            }
        });
    });
    // The body lives outside the <Transition>: a reload of the sidebar's data (after every
    // reconnect) re-renders the header only, while the timeline (scroll position, an edit in
    // progress) and the composer (focus, draft) stay. It is drawn in the browser only, where the
    // messages are decrypted anyway, and again only when the channel's place changes.
    let me = data.me.get_value().id;
    let shown = Memo::new(move |_| data.spaces_now.with(|s| s.as_ref().and_then(|s| place(s, id, me))));
    let body = move || {
        shown.get().map(|place| {
            view! {
                <div class="relative flex min-h-0 flex-1">
                    <section class="flex min-w-0 flex-1 flex-col" aria-label="Messages">
                        <TimelineView channel=id names replying />
                        <TypingLine channel=id names />
                        <Composer channel=id names replying />
                    </section>
                    <MemberPanel community=place.community group_id=place.group_id private=place.private kind=place.kind open=members_open />
                </div>
            }
        })
    };
    view! {
        <main class="flex min-h-0 flex-1 flex-col" aria-labelledby="channel-title">
            <Transition fallback=|| view! { <p class="p-4">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let spaces = data.spaces.await;
                    match spaces.as_ref().map(|s| place(s, id, me)) {
                        Err(e) => view! { <div class="p-4"><ErrorBanner error=Signal::stored(Some(e.clone())) /></div> }.into_any(),
                        Ok(None) => view! {
                            <div class="p-4 md:p-8" data-testid="no-channel">
                                <Title text="Not found" />
                                <h1 class="text-xl font-semibold">"This conversation is not available"</h1>
                                <p class="mt-2 text-slate-600 dark:text-slate-400">"It does not exist, or you are no longer in it."</p>
                            </div>
                        }.into_any(),
                        Ok(Some(place)) => view! {
                            <Title text=place.title.clone() />
                            <header class="flex items-center justify-between gap-2 border-b border-slate-200 bg-white px-4 py-2 dark:border-slate-800 dark:bg-slate-900">
                                <div class="min-w-0">
                                    <h1 id="channel-title" class="truncate font-semibold focus:outline-none" data-testid="channel-title" tabindex="-1" node_ref=heading>{place.title}</h1>
                                    <p class="text-xs text-slate-500 dark:text-slate-400">"🔒 End-to-end encrypted: the server cannot read these messages."</p>
                                </div>
                                <button
                                    type="button"
                                    class=SMALL
                                    data-testid="members-button"
                                    aria-controls="member-panel"
                                    aria-expanded=move || members_open.get().to_string()
                                    on:click=move |_| members_open.update(|o| *o = !*o)
                                >
                                    "Members"
                                </button>
                            </header>
                        }.into_any(),
                    }
                })}
            </Transition>
            {body}
        </main>
        {move || chat.device.with(|d| matches!(d, Some(Err(_)))).then(|| view! {
            <p role="alert" class="p-4 text-sm text-red-700 dark:text-red-300">
                {move || chat.device.get().and_then(Result::err).map(|e| format!("Encryption is unavailable in this browser: {e}"))}
            </p>
        })}
    }
}

/// A row of the timeline.
#[derive(Clone, Debug, PartialEq)]
enum Row {
    Day(String),
    NewMessages,
    Message { line: Line, grouped: bool },
}

impl Row {
    /// Stable while the row looks the same: unchanged rows are not rebuilt.
    fn key(&self) -> String {
        use std::hash::{Hash, Hasher};
        match self {
            Self::Day(d) => format!("day:{d}"),
            Self::NewMessages => "new".into(),
            Self::Message { line, grouped } => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                line.body.hash(&mut h);
                format!("{}:{}:{}:{grouped}:{:?}:{}", line.id, line.edited, line.deleted, line.lock, h.finish())
            }
        }
    }
}

fn rows(t: &Timeline, me: Uuid) -> Vec<Row> {
    let mut out = Vec::with_capacity(t.lines.len() + 4);
    let mut prev: Option<&Line> = None;
    let mut divider_placed = false;
    for line in t.lines.values() {
        let (day, _) = day_and_time(&line.created_at);
        if prev.is_none_or(|p| day_and_time(&p.created_at).0 != day) {
            out.push(Row::Day(day));
            prev = None;
        }
        if !divider_placed && line.sender != me && t.read_seq.is_some_and(|r| line.seq > r) {
            out.push(Row::NewMessages);
            divider_placed = true;
            prev = None;
        }
        let grouped = prev.is_some_and(|p| same_group(p, line));
        out.push(Row::Message { line: line.clone(), grouped });
        prev = Some(line);
    }
    out
}

fn name_of(names: &HashMap<Uuid, String>, id: Uuid) -> String {
    names.get(&id).cloned().unwrap_or_else(|| "Someone who left".to_owned())
}

#[component]
fn TimelineView(
    channel: Uuid,
    names: Signal<HashMap<Uuid, String>>,
    replying: RwSignal<Option<Uuid>>,
) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let me = chat.me.get_value();
    let timeline = chat.timeline(channel);
    let all_rows = Memo::new({
        let timeline = timeline.clone();
        move |_| timeline.with(|t| rows(t, me))
    });
    let scroller = NodeRef::<leptos::html::Div>::new();
    // Follow new messages while the view is at the bottom; keep the reading position when older
    // messages are added above.
    let stick = StoredValue::new(true);
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
            act::load_older(channel);
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
                if let Some((height, top)) = height_before.get_value() {
                    height_before.set_value(None);
                    el.set_scroll_top(el.scroll_height() - height + top);
                } else if stick.get_value() {
                    el.set_scroll_top(el.scroll_height());
                }
                let more = timeline.with_untracked(|t| t.loaded && !t.at_start && !t.loading);
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
            stick.set_value(el.scroll_height() - el.scroll_top() - el.client_height() < 80);
            if el.scroll_top() < 200 && timeline.with_untracked(|t| t.loaded && !t.at_start && !t.loading) {
                older();
            }
        }
    };
    let status = {
        let timeline = timeline.clone();
        move || {
            timeline.with(|t| {
                if t.at_start {
                    Some(view! { <p class="py-2 text-center text-xs text-slate-500" data-testid="timeline-start">"This is the beginning of the conversation."</p> }.into_any())
                } else if t.loading {
                    Some(view! { <p class="py-2 text-center text-xs text-slate-500">"Loading and decrypting…"</p> }.into_any())
                } else if t.loaded {
                    let older = older.clone();
                    Some(view! {
                        <p class="py-2 text-center">
                            <button type="button" class=SMALL data-testid="load-older" on:click=move |_| older()>"Load older messages"</button>
                        </p>
                    }.into_any())
                } else {
                    None
                }
            })
        }
    };
    let (t_err, t_removed) = (timeline.clone(), timeline.clone());
    let editing = RwSignal::new(None::<Uuid>);
    let confirming = RwSignal::new(None::<Uuid>);
    view! {
        <div
            node_ref=scroller
            class="min-h-0 flex-1 overflow-y-auto px-2 py-2 md:px-4"
            data-testid="timeline"
            role="log"
            aria-live="polite"
            aria-label="Messages"
            tabindex="0"
            on:scroll=on_scroll
        >
            {status}
            {move || t_err.with(|t| t.error.clone()).map(|e| view! { <p role="alert" class="py-2 text-sm text-red-700 dark:text-red-300">{e}</p> })}
            <For each=move || all_rows.get() key=Row::key let:row>
                {match row {
                    Row::Day(day) => view! {
                        <div class="my-3 flex items-center gap-2 text-xs text-slate-500" role="separator" data-testid="day-separator">
                            <span class="h-px flex-1 bg-slate-200 dark:bg-slate-800"></span>{day}<span class="h-px flex-1 bg-slate-200 dark:bg-slate-800"></span>
                        </div>
                    }.into_any(),
                    Row::NewMessages => view! {
                        <div class="my-2 flex items-center gap-2 text-xs font-semibold text-red-600 dark:text-red-400" role="separator" data-testid="new-messages">
                            <span class="h-px flex-1 bg-red-300 dark:bg-red-800"></span>"New messages"<span class="h-px flex-1 bg-red-300 dark:bg-red-800"></span>
                        </div>
                    }.into_any(),
                    Row::Message { line, grouped } => view! {
                        <MessageRow channel line grouped names replying editing confirming />
                    }.into_any(),
                }}
            </For>
            {move || t_removed.with(|t| t.removed).then(|| view! {
                <p role="status" class="my-3 rounded-lg bg-slate-100 p-3 text-sm dark:bg-slate-800" data-testid="removed">
                    "You are no longer in this conversation. Nothing new reaches you here."
                </p>
            })}
        </div>
    }
    .into_any()
}

fn lock_badge(lock: Lock) -> (&'static str, &'static str) {
    match lock {
        Lock::Verified => ("🔒✓", "End-to-end encrypted, from a verified device"),
        Lock::Encrypted => ("🔒", "End-to-end encrypted (the sender's device is not verified)"),
        Lock::Failed => ("⚠", "Could not be decrypted"),
        Lock::Sending => ("…", "Sending"),
    }
}

#[component]
fn MessageRow(
    channel: Uuid,
    line: Line,
    grouped: bool,
    names: Signal<HashMap<Uuid, String>>,
    replying: RwSignal<Option<Uuid>>,
    editing: RwSignal<Option<Uuid>>,
    confirming: RwSignal<Option<Uuid>>,
) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let mine = line.sender == chat.me.get_value();
    let (_, time) = day_and_time(&line.created_at);
    let (icon, lock_title) = lock_badge(line.lock);
    let id = line.id;
    let sender = line.sender;
    let quoted = line.reply_to.map(|target| {
        let timeline = chat.timeline(channel);
        move || {
            let found = timeline.with(|t| t.find(target).cloned());
            match found {
                Some(l) => format!(
                    "↪ {}: {}",
                    names.with(|n| name_of(n, l.sender)),
                    l.body
                        .as_deref()
                        .map(|b| b.chars().take(80).collect::<String>())
                        .unwrap_or_else(|_| "(could not decrypt)".into())
                ),
                None => "↪ an earlier message".to_owned(),
            }
        }
    });
    let (body, deleted) = (line.body.clone(), line.deleted);
    let body_view = move || {
        match (body.clone(), deleted) {
        (_, true) => view! { <p class="italic text-slate-500" data-testid="message-body">"Message deleted"</p> }.into_any(),
        (Ok(text), false) => view! { <p class="whitespace-pre-wrap break-words" data-testid="message-body">{text}</p> }.into_any(),
        (Err(reason), false) => view! {
            <p class="break-words italic text-red-700 dark:text-red-300" data-testid="message-body">{format!("Could not decrypt: {reason}")}</p>
        }.into_any(),
    }
    };
    let can_act = !line.deleted && line.body.is_ok();
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
    view! {
        <article
            class=if grouped { "group rounded px-2 py-0.5 hover:bg-slate-100 dark:hover:bg-slate-900" } else { "group mt-2 rounded px-2 py-0.5 hover:bg-slate-100 dark:hover:bg-slate-900" }
            data-testid="message"
            data-id=id.to_string()
            data-seq=line.seq.to_string()
            data-lock=format!("{:?}", line.lock).to_lowercase()
        >
            {(!grouped).then(|| view! {
                <header class="flex items-baseline gap-2">
                    <span class="font-semibold" data-testid="author">{move || names.with(|n| name_of(n, sender))}</span>
                    <time class="text-xs text-slate-500" datetime=line.created_at.clone()>{time.clone()}</time>
                </header>
            })}
            {quoted.map(|q| view! { <p class="truncate border-l-2 border-slate-300 pl-2 text-xs text-slate-500 dark:border-slate-700" data-testid="reply-quote">{q}</p> })}
            <div class="flex items-start gap-2">
                <span class="mt-0.5 shrink-0 text-xs" title=lock_title aria-label=lock_title data-testid="lock">{icon}</span>
                <div class="min-w-0 flex-1">
                    {move || if editing.get() == Some(id) {
                        view! {
                            <form class="space-y-1" on:submit=move |ev| { ev.prevent_default(); save(); }>
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
                                            editing.set(None);
                                        }
                                    }
                                ></textarea>
                                <div class="flex gap-2 text-xs">
                                    <button type="submit" class=SMALL data-testid="save-edit">"Save"</button>
                                    <button type="button" class=SMALL on:click=move |_| editing.set(None)>"Cancel"</button>
                                    <span class="text-slate-500">"Enter saves · Esc cancels"</span>
                                </div>
                                {move || edit_error.get().map(|e| view! { <p role="alert" class="text-xs text-red-700">{e}</p> })}
                            </form>
                        }.into_any()
                    } else {
                        view! {
                            <div>
                                {body_view.clone()()}
                                {line.edited.then(|| view! { <span class="text-xs text-slate-500" data-testid="edited">" (edited)"</span> })}
                            </div>
                        }.into_any()
                    }}
                </div>
                {grouped.then(|| view! { <time class="hidden shrink-0 text-xs text-slate-400 group-hover:inline" datetime=line.created_at.clone()>{time.clone()}</time> })}
            </div>
            {can_act.then(|| view! {
                <div class="flex gap-1 pl-6" data-testid="message-actions">
                    <button type="button" class=SMALL data-testid="reply" on:click=move |_| replying.set(Some(id))>"Reply"</button>
                    {mine.then(|| view! {
                        <button type="button" class=SMALL data-testid="edit" on:click=move |_| editing.set(Some(id))>"Edit"</button>
                        {move || if confirming.get() == Some(id) {
                            view! {
                                <span class="text-xs">"Delete for everyone?"</span>
                                <button type="button" class=SMALL data-testid="confirm-delete" on:click=move |_| {
                                    confirming.set(None);
                                    leptos::task::spawn_local(async move {
                                        if let Err(e) = act::delete(channel, id).await {
                                            edit_error.set(Some(e.to_string()));
                                        }
                                    });
                                }>"Delete"</button>
                                <button type="button" class=SMALL on:click=move |_| confirming.set(None)>"Keep"</button>
                            }.into_any()
                        } else {
                            view! { <button type="button" class=SMALL data-testid="delete" on:click=move |_| confirming.set(Some(id))>"Delete"</button> }.into_any()
                        }}
                    })}
                </div>
            })}
        </article>
    }
    .into_any()
}

/// "Alice is typing…"
#[component]
fn TypingLine(channel: Uuid, names: Signal<HashMap<Uuid, String>>) -> impl IntoView {
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
    view! { <p class="h-5 px-4 text-xs text-slate-500" data-testid="typing" aria-live="polite">{text}</p> }
}

#[component]
fn Composer(channel: Uuid, names: Signal<HashMap<Uuid, String>>, replying: RwSignal<Option<Uuid>>) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let timeline = chat.timeline(channel);
    let draft = RwSignal::new(chat.drafts.with_value(|d| d.get(&channel).cloned()).unwrap_or_default());
    Effect::new(move |_| {
        let text = draft.get();
        chat.drafts.update_value(|d| {
            if text.is_empty() {
                d.remove(&channel);
            } else {
                d.insert(channel, text);
            }
        });
    });
    let error = RwSignal::new(None::<String>);
    let ready = move || matches!(chat.device.get(), Some(Ok(_)));
    let removed = Signal::derive(move || timeline.with(|t| t.removed));
    let submit = move || {
        let body = draft.get_untracked();
        if body.trim().is_empty() {
            return;
        }
        draft.set(String::new());
        let reply_to = replying.get_untracked();
        leptos::task::spawn_local(async move {
            match act::send(channel, body.clone(), reply_to).await {
                Ok(()) => {
                    error.set(None);
                    replying.set(None);
                }
                Err(e) => {
                    // Nothing typed is lost: the text comes back into the box.
                    draft.update(|d| *d = if d.is_empty() { body } else { format!("{body}\n{d}") });
                    error.set(Some(format!("Not sent: {e}")));
                }
            }
        });
    };
    let reply_banner = move || {
        replying.get().map(|target| {
            let who = chat.timeline(channel).with(|t| t.find(target).map(|l| l.sender));
            let who = who.map(|u| names.with(|n| name_of(n, u))).unwrap_or_default();
            view! {
                <div class="flex items-center justify-between px-4 text-xs text-slate-600 dark:text-slate-300" data-testid="replying">
                    <span>{format!("Replying to {who}")}</span>
                    <button type="button" class=SMALL on:click=move |_| replying.set(None)>"Cancel reply"</button>
                </div>
            }
        })
    };
    view! {
        {reply_banner}
        <form
            class="flex items-end gap-2 border-t border-slate-200 bg-white p-2 dark:border-slate-800 dark:bg-slate-900"
            on:submit=move |ev| { ev.prevent_default(); submit(); }
        >
            <textarea
                rows="2"
                class="block min-h-[2.5rem] w-full resize-y rounded-lg border border-slate-300 bg-white px-3 py-2 text-base focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500 disabled:opacity-60 dark:border-slate-700 dark:bg-slate-950"
                data-testid="composer"
                aria-label="Message"
                placeholder=move || if removed.get() { "You can no longer write here." } else if ready() { "Message (Enter sends, Shift+Enter for a new line)" } else { "Encryption is starting…" }
                disabled=move || !ready() || removed.get()
                prop:value=move || draft.get()
                on:input=move |ev| {
                    draft.set(event_target_value(&ev));
                    act::typing(channel);
                }
                on:keydown=move |ev| {
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        submit();
                    }
                }
            ></textarea>
            <button type="submit" class=PRIMARY data-testid="send" disabled=move || !ready() || removed.get()>"Send"</button>
        </form>
        {move || error.get().map(|e| view! { <p role="alert" class="px-4 pb-2 text-sm text-red-700 dark:text-red-300" data-testid="send-error">{e}</p> })}
    }
    .into_any()
}

fn presence_dot(p: Presence) -> (&'static str, &'static str) {
    match p {
        Presence::Online => ("bg-green-500", "online"),
        Presence::Idle => ("bg-amber-400", "idle"),
        Presence::Dnd => ("bg-red-500", "do not disturb"),
        Presence::Invisible | Presence::Offline => ("bg-slate-400", "offline"),
    }
}

#[component]
fn MemberPanel(
    community: Option<(Uuid, CommunityRole)>,
    group_id: Option<Uuid>,
    private: bool,
    kind: ChannelKind,
    open: RwSignal<bool>,
) -> impl IntoView {
    let data = expect_context::<ShellData>();
    let chat = expect_context::<Chat>();
    let me = data.me.get_value().id;
    let selected = RwSignal::new(HashSet::<Uuid>::new());
    let error = RwSignal::new(None::<String>);
    let navigate = use_navigate();
    let go = StoredValue::new(move |id: Uuid| navigate(&format!("/c/{id}"), Default::default()));
    let message = move |user: Uuid| {
        leptos::task::spawn_local(async move {
            match open_dm(user).await {
                Ok(dm) => {
                    chat.spaces_changed.update(|n| *n += 1);
                    go.with_value(|go| go(dm.id));
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let group_dm = move |_| {
        let members: Vec<Uuid> = selected.get_untracked().into_iter().collect();
        leptos::task::spawn_local(async move {
            match create_group_dm(members).await {
                Ok(dm) => {
                    selected.set(HashSet::new());
                    chat.spaces_changed.update(|n| *n += 1);
                    go.with_value(|go| go(dm.id));
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let kick = move |user: Uuid| {
        let Some((community_id, _)) = community else { return };
        leptos::task::spawn_local(async move {
            match kick_member(community_id, user).await {
                Ok(()) => data.members_changed.update(|n| *n += 1),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let my_role = community.map(|(_, r)| r);
    let row = move |m: Member| {
        let id = m.user.id;
        let status = move || chat.presence.with(|p| p.get(&id).copied().unwrap_or(Presence::Offline));
        let can_kick = my_role.is_some_and(|r| r >= CommunityRole::Moderator && r > m.role) && id != me;
        view! {
            <li class="flex flex-wrap items-center gap-x-2 gap-y-1 py-1" data-testid="member" data-user=id.to_string()>
                <span
                    class=move || format!("inline-block h-2.5 w-2.5 shrink-0 rounded-full {}", presence_dot(status()).0)
                    data-testid="presence"
                    data-status=move || presence_dot(status()).1
                    title=move || presence_dot(status()).1
                ></span>
                <span class="min-w-0 flex-1 basis-32 truncate">
                    {m.user.display_name.clone()}
                    {(id == me).then_some(" (you)")}
                    {move || chat.verified.with(|v| v.contains(&id)).then(|| view! {
                        <span class="ml-1 text-green-700 dark:text-green-400" data-testid="verified" title="You verified their device">"✓ verified"</span>
                    })}
                    <span class="sr-only">{move || format!(", {}", presence_dot(status()).1)}</span>
                </span>
                {(id != me).then(|| view! {
                    <input
                        type="checkbox"
                        class="h-4 w-4"
                        aria-label=format!("Select {} for a group DM", m.user.display_name)
                        data-testid="select-member"
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            selected.update(|s| { if on { s.insert(id); } else { s.remove(&id); } });
                        }
                    />
                    <button type="button" class=SMALL data-testid="message-member" on:click=move |_| message(id)>"Message"</button>
                    <button type="button" class=SMALL data-testid="verify" on:click=move |_| leptos::task::spawn_local(async move {
                        if let Err(e) = act::start_verification(id).await {
                            error.set(Some(format!("Cannot verify: {e}")));
                        }
                    })>"Verify"</button>
                })}
                {can_kick.then(|| view! {
                    <button type="button" class=SMALL data-testid="kick" on:click=move |_| kick(id)>"Kick"</button>
                })}
            </li>
        }
    };
    view! {
        <aside
            id="member-panel"
            aria-label="Members"
            class=move || format!(
                "{} w-full shrink-0 flex-col overflow-y-auto border-l border-slate-200 bg-white p-3 text-sm md:static md:flex md:w-64 dark:border-slate-800 dark:bg-slate-900 absolute inset-0 z-10",
                if open.get() { "flex" } else { "hidden" },
            )
            data-testid="member-panel"
        >
            <h2 class="font-semibold">"Members"</h2>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.members.await {
                        Ok(Some((_, list))) => view! { <ul class="mt-2">{list.into_iter().map(row).collect_view()}</ul> }.into_any(),
                        Ok(None) => ().into_any(),
                        Err(e) => view! { <ErrorBanner error=Signal::stored(Some(e)) /> }.into_any(),
                    }
                })}
            </Transition>
            {move || (selected.with(|s| s.len()) >= 2).then(|| view! {
                <button type="button" class=PRIMARY data-testid="start-group-dm" on:click=group_dm>
                    {move || format!("Group DM with {} people", selected.with(|s| s.len()))}
                </button>
            })}
            {move || error.get().map(|e| view! { <p role="alert" class="mt-2 text-red-700 dark:text-red-300">{e}</p> })}
            {(kind == ChannelKind::Text).then(|| view! { <ManageCommunity community group_id private /> })}
        </aside>
    }
    .into_any()
}

/// Invites, new channels and new groups, for community admins.
#[component]
fn ManageCommunity(community: Option<(Uuid, CommunityRole)>, group_id: Option<Uuid>, private: bool) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let invite = ServerAction::<CreateCommunityInvite>::new();
    let new_channel = ServerAction::<CreateChannel>::new();
    let new_group = ServerAction::<CreateGroup>::new();
    let navigate = use_navigate();
    // The sidebar lists the new channel or group; a new group opens at its "general" channel.
    Effect::new(move |_| {
        if matches!(new_channel.value().get(), Some(Ok(_))) {
            chat.spaces_changed.update(|n| *n += 1);
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(group)) = new_group.value().get() {
            chat.spaces_changed.update(|n| *n += 1);
            if let Some(general) = group.channels.first() {
                navigate(&format!("/c/{}", general.id), Default::default());
            }
        }
    });
    let invite_error = Signal::derive(move || invite.value().get().and_then(Result::err));
    let channel_error = Signal::derive(move || new_channel.value().get().and_then(Result::err));
    let group_error = Signal::derive(move || new_group.value().get().and_then(Result::err));
    let channel_form = NodeRef::new();
    reset_after(channel_form, move || matches!(new_channel.value().get(), Some(Ok(_))));
    let (Some((community_id, role)), Some(group_id)) = (community, group_id) else { return ().into_any() };
    if role < CommunityRole::Admin {
        return ().into_any();
    }
    view! {
        <div class="mt-4 space-y-3 border-t border-slate-200 pt-3 dark:border-slate-800">
            <h2 class="font-semibold">"Manage"</h2>
            <ActionForm action=invite attr:id="community-invite-form" attr:class="space-y-2">
                <input type="hidden" name="community_id" value=community_id.to_string() />
                <button type="submit" class=PRIMARY>"Create an invite code"</button>
            </ActionForm>
            {move || invite.value().get().and_then(Result::ok).map(|i| view! {
                <p class="text-sm">"Share this code: " <code class="font-mono font-semibold" data-testid="community-invite-code">{i.code}</code></p>
            })}
            <ErrorBanner error=invite_error />
            <ActionForm action=new_channel node_ref=channel_form attr:id="create-channel-form" attr:class="space-y-2">
                <input type="hidden" name="group_id" value=group_id.to_string() />
                <Field name="name" id="new-channel-name" label="New channel in this group" autocomplete="off" error=channel_error />
                <button type="submit" class=PRIMARY>"Create channel"</button>
            </ActionForm>
            <ErrorBanner error=channel_error />
            <ActionForm action=new_group attr:id="create-group-form" attr:class="space-y-2">
                <input type="hidden" name="community_id" value=community_id.to_string() />
                <Field name="name" id="new-group-name" label="New group in this community" autocomplete="off" error=group_error />
                <label class="flex items-center gap-2 text-sm">
                    <input type="checkbox" name="private" value="true" class="h-4 w-4" data-testid="group-private" />
                    "Private (only people you add)"
                </label>
                <button type="submit" class=PRIMARY>"Create group"</button>
            </ActionForm>
            <ErrorBanner error=group_error />
            {private.then(|| view! { <AddToGroup community_id group_id /> })}
        </div>
    }
    .into_any()
}

/// Adds community members to a private group (its channels' member lists show who is in).
#[component]
fn AddToGroup(community_id: Uuid, group_id: Uuid) -> impl IntoView {
    let data = expect_context::<ShellData>();
    // Loaded on demand (a click), not as a resource: this view renders inside the frame's Suspense.
    let candidates = RwSignal::new(None::<Result<Vec<Member>, crate::error::AppError>>);
    let chosen = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let load =
        move |_| leptos::task::spawn_local(async move { candidates.set(Some(community_members(community_id).await)) });
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Ok(user) = Uuid::parse_str(&chosen.get_untracked()) else {
            error.set(Some("Choose someone to add.".into()));
            return;
        };
        leptos::task::spawn_local(async move {
            match add_group_member(group_id, user).await {
                Ok(()) => {
                    error.set(None);
                    chosen.set(String::new());
                    candidates.set(None);
                    data.members_changed.update(|n| *n += 1);
                }
                Err(e) => error.set(Some(format!("Not added: {e}"))),
            }
        });
    };
    let picker = move || {
        match candidates.get() {
        None => view! {
            <button type="button" class=PRIMARY data-testid="add-people" on:click=load>"Add people to this group"</button>
        }
        .into_any(),
        Some(Err(e)) => view! { <ErrorBanner error=Signal::stored(Some(e)) /> }.into_any(),
        Some(Ok(all)) => {
            let present: HashSet<Uuid> =
                data.members_now.with(|m| m.as_ref().map(|(_, l)| l.iter().map(|m| m.user.id).collect()).unwrap_or_default());
            let others: Vec<Member> = all.into_iter().filter(|m| !present.contains(&m.user.id)).collect();
            if others.is_empty() {
                return view! { <p class="text-sm text-slate-600 dark:text-slate-400">"Everyone in the community is in this group."</p> }
                    .into_any();
            }
            view! {
                <form class="space-y-2" on:submit=add>
                    <label for="add-to-group" class="block text-sm font-medium">"Add to this private group"</label>
                    <select id="add-to-group" class=INPUT data-testid="add-member-choice"
                        on:change=move |ev| chosen.set(event_target_value(&ev))>
                        <option value="">"Choose someone…"</option>
                        {others.into_iter().map(|m| view! { <option value=m.user.id.to_string()>{m.user.display_name}</option> }).collect_view()}
                    </select>
                    <button type="submit" class=PRIMARY data-testid="add-member">"Add"</button>
                </form>
            }
            .into_any()
        }
    }
    };
    view! {
        <div class="space-y-2" data-testid="add-to-group">
            {picker}
            {move || error.get().map(|e| view! { <p role="alert" class="text-sm text-red-700 dark:text-red-300">{e}</p> })}
        </div>
    }
    .into_any()
}
