//! A conversation (community channel, DM or group DM): the header, the timeline (decrypted in the
//! browser, older pages loaded by scrolling up), the composer and the member list with presence.
//! The server renders the frame, names and members; message bodies appear once this browser has
//! decrypted them.

mod bookmarks;
mod commands;
mod composer;
mod emoji;
mod forward;
mod manage;
mod members;
mod message;
mod pins;
mod poll;
mod rich;
mod scheduled;
mod thread;
mod timeline;

use crate::components::style::SMALL;
use crate::pages::signed_in::ShellData;
use crate::{
    chat::{Chat, act},
    components::{form::ErrorBanner, sidebar::direct_label},
    model::spaces::{ChannelKind, CommunityRole, HistoryVisibility, MySpaces},
};
use composer::Composer;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use members::MemberPanel;
use pins::{PinPanel, PinState, PinsButton};
use std::collections::{HashMap, HashSet};
use timeline::{TimelineView, TypingLine};
use uuid::Uuid;

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
    /// Whether newcomers read earlier messages (community channels).
    history: HistoryVisibility,
    /// When the person's access began (RFC 3339).
    since: Option<String>,
    /// The disappearing-message timer, in seconds.
    disappear: Option<u32>,
}

/// What the sidebar calls a channel ("# general", or the people of a DM).
pub(crate) fn channel_title(spaces: &MySpaces, channel: Uuid, me: Uuid) -> Option<String> {
    place(spaces, channel, me).map(|p| p.title)
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
                    history: ch.history,
                    since: ch.since.clone(),
                    disappear: ch.disappear_after_s,
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
        history: ch.history,
        since: ch.since.clone(),
        disappear: ch.disappear_after_s,
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

/// The channel's read receipts: loaded when it opens and after every reconnect (receipts sent
/// while away were lost), merged with those arriving live; none while I do not share mine.
fn load_receipts(chat: Chat, id: Uuid) {
    Effect::new(move |_| {
        let online = chat.connection.with(|c| matches!(c, crate::chat::Connection::Online));
        match chat.read_receipts.get() {
            Some(true) if online => leptos::task::spawn_local(async move {
                let Ok(list) = crate::api::messages::channel_receipts(id).await else { return };
                if chat.read_receipts.get_untracked() != Some(true) {
                    return;
                }
                chat.receipts.update(|all| {
                    let readers = all.entry(id).or_default();
                    for r in list {
                        let at = readers.entry(r.user_id).or_default();
                        *at = (*at).max(r.seq);
                    }
                });
            }),
            Some(false) => chat.receipts.update(|all| all.clear()),
            _ => {}
        }
    });
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
    // A link to one message (`?m=`, from a bookmark): shown once its conversation has loaded.
    let query = leptos_router::hooks::use_query_map();
    if let Some(target) = query.with_untracked(|q| q.get("m").and_then(|m| Uuid::parse_str(&m).ok())) {
        let timeline = chat.timeline(id);
        Effect::new(move |done: Option<bool>| {
            if done == Some(true) || !timeline.with(|t| t.loaded) {
                return done.unwrap_or(false);
            }
            leptos::task::spawn_local(async move {
                if act::reveal(id, target).await {
                    pins::flash(target);
                }
            });
            true
        });
    }
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
    let follow = RwSignal::new(0u32);
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
            if h.is_connected() && lost && chat.navigated.get_value() {
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
    // Moderators and above pin in a community; anyone in a DM or group DM.
    let can_pin = Signal::derive(move || {
        shown.with(|p| p.as_ref().is_some_and(|p| p.community.is_none_or(|(_, role)| role >= CommunityRole::Moderator)))
    });
    load_receipts(chat, id);
    let pins = PinState::load(id, can_pin);
    provide_context(pins);
    provide_context(emoji::Emoji::new());
    provide_context(bookmarks::BookmarkIndex::new(chat));
    let forwarding = forward::ForwardState::new();
    provide_context(forwarding);
    provide_context(rich::MentionNames {
        people: Signal::derive(move || {
            data.members_now
                .get()
                .filter(|(channel, _)| *channel == id)
                .map(|(_, list)| {
                    list.into_iter()
                        .map(|m| (m.user.username.to_ascii_lowercase(), (m.user.id, m.user.display_name, m.role)))
                        .collect()
                })
                .unwrap_or_default()
        }),
        me: chat.my_name,
        direct: Signal::derive(move || shown.with(|p| p.as_ref().is_some_and(|p| p.community.is_none()))),
    });
    // For the runtime's sends (again once encryption has started in this browser).
    Effect::new(move |_| {
        chat.device.track();
        if let Some(place) = shown.get() {
            act::history_setting(id, place.history == HistoryVisibility::Full);
        }
    });
    let body = move || {
        shown.get().map(|place| {
            view! {
                <div class="relative flex min-h-0 flex-1">
                    <section class="flex min-w-0 flex-1 flex-col" aria-label="Messages">
                        <TimelineView channel=id names replying since=place.since.clone() follow />
                        <TypingLine channel=id names />
                        <scheduled::ScheduledBar channel=id />
                        <Composer channel=id names replying follow />
                        <forward::ForwardDialog here=id state=forwarding />
                    </section>
                    <thread::ThreadPanel channel=id names />
                    <PinPanel state=pins names />
                    <MemberPanel
                        community=place.community
                        group_id=place.group_id
                        private=place.private
                        kind=place.kind
                        open=members_open
                    />
                </div>
            }
            // Type-erased: the page's view type is otherwise too deep for the compiler.
            .into_any()
        })
    };
    view! {
        <main class="flex min-h-0 flex-1 flex-col" aria-labelledby="channel-title">
            <Transition fallback=|| {
                view! { <p class="p-4">"Loading…"</p> }
            }>
                {move || Suspend::new(async move {
                    let spaces = data.spaces.await;
                    match spaces.as_ref().map(|s| place(s, id, me)) {
                        Err(e) => {
                            view! {
                                <div class="p-4">
                                    <ErrorBanner error=Signal::stored(Some(e.clone())) />
                                </div>
                            }
                                .into_any()
                        }
                        Ok(None) => {
                            view! {
                                <div class="p-4 md:p-8" data-testid="no-channel">
                                    <Title text="Not found" />
                                    <h1 class="text-xl font-semibold">"This conversation is not available"</h1>
                                    <p class="mt-2 text-slate-600 dark:text-slate-400">
                                        "It does not exist, or you are no longer in it."
                                    </p>
                                </div>
                            }
                                .into_any()
                        }
                        Ok(Some(place)) => {
                            view! {
                                <Title text=place.title.clone() />
                                <header class="flex items-center justify-between gap-2 border-b border-slate-200 bg-white px-4 py-2 dark:border-slate-800 dark:bg-slate-900">
                                    <div class="min-w-0">
                                        <h1
                                            id="channel-title"
                                            class="truncate font-semibold focus:outline-none"
                                            data-testid="channel-title"
                                            tabindex="-1"
                                            node_ref=heading
                                        >
                                            {place.title}
                                        </h1>
                                        <p class="text-xs text-slate-600 dark:text-slate-400">
                                            "🔒 End-to-end encrypted: the server cannot read these messages."
                                            {place
                                                .community
                                                .is_some()
                                                .then(|| {
                                                    view! {
                                                        " "
                                                        <HistorySetting
                                                            channel=id
                                                            history=place.history
                                                            moderator=place
                                                                .community
                                                                .is_some_and(|(_, r)| r >= CommunityRole::Moderator)
                                                        />
                                                    }
                                                })} " "
                                            <DisappearingSetting
                                                channel=id
                                                seconds=place.disappear
                                                may_set=place
                                                    .community
                                                    .is_none_or(|(_, r)| r >= CommunityRole::Moderator)
                                            />
                                        </p>
                                    </div>
                                    <div class="flex shrink-0 items-center gap-1">
                                        <PinsButton state=pins />
                                        <button
                                            type="button"
                                            class=SMALL
                                            data-testid="compact-button"
                                            title="One line per message, without avatars"
                                            aria-pressed=move || chat.compact.get().to_string()
                                            on:click=move |_| {
                                                let on = !chat.compact.get_untracked();
                                                chat.compact.set(on);
                                                act::set_compact(on);
                                            }
                                        >
                                            "Compact"
                                        </button>
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
                                    </div>
                                </header>
                            }
                                .into_any()
                        }
                    }
                })}
            </Transition>
            <noscript>
                <p
                    class="m-4 rounded-lg border border-amber-300 bg-amber-50 p-4 text-amber-900 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-100"
                    data-testid="needs-javascript"
                >
                    "Messages here are end-to-end encrypted: they are opened and written in your browser, by "
                    "JavaScript. Turn JavaScript on for this site to read and send them."
                </p>
            </noscript>
            {body}
        </main>
        {move || {
            chat.device
                .with(|d| matches!(d, Some(Err(_))))
                .then(|| {
                    view! {
                        <p role="alert" class="p-4 text-sm text-red-700 dark:text-red-300">
                            {move || {
                                chat.device
                                    .get()
                                    .and_then(Result::err)
                                    .map(|e| format!("Encryption is unavailable in this browser: {e}"))
                            }}
                        </p>
                        <div class="px-4">
                            <crate::pages::key_backup::StartNewDevice />
                        </div>
                    }
                })
        }}
    }
}

/// A header setting's refusal, beside it.
fn inline_error(error: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        error.get().map(|e| {
            view! {
                <span role="alert" class="text-red-700 dark:text-red-300">
                    {e}
                </span>
            }
        })
    }
}

/// The disappearing-message timers offered (seconds, and how they are said).
const TIMERS: [(u32, &str); 5] =
    [(3_600, "1 hour"), (8 * 3_600, "8 hours"), (86_400, "1 day"), (7 * 86_400, "1 week"), (30 * 86_400, "30 days")];

fn timer_words(seconds: u32) -> String {
    match TIMERS.iter().find(|(s, _)| *s == seconds) {
        Some((_, words)) => (*words).to_owned(),
        None if seconds.is_multiple_of(86_400) => format!("{} days", seconds / 86_400),
        None => format!("{} hours", seconds.div_ceil(3_600)),
    }
}

/// Whether messages here disappear, as the header says it; moderators (anyone in a DM) change it.
#[component]
fn DisappearingSetting(channel: Uuid, seconds: Option<u32>, may_set: bool) -> impl IntoView {
    let said = seconds.map(|s| format!("⏱ Messages disappear {} after they are sent.", timer_words(s)));
    if !may_set {
        return view! { <span data-testid="disappearing">{said}</span> }.into_any();
    }
    let chat = expect_context::<Chat>();
    let error = RwSignal::new(None::<String>);
    let change = move |ev: leptos::ev::Event| {
        let chosen = event_target_value(&ev).parse::<u32>().ok().filter(|s| *s > 0);
        leptos::task::spawn_local(async move {
            match crate::api::spaces::set_disappearing(channel, chosen).await {
                Ok(_) => {
                    error.set(None);
                    chat.spaces_changed.update(|n| *n += 1);
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    // The current timer is offered even if it is not one of the usual ones.
    let mut offered: Vec<(u32, String)> = TIMERS.iter().map(|(s, w)| (*s, (*w).to_owned())).collect();
    if let Some(s) = seconds.filter(|s| !TIMERS.iter().any(|(t, _)| t == s)) {
        offered.push((s, timer_words(s)));
    }
    view! {
        <label class="inline-flex items-center gap-1">
            <span aria-hidden="true">"⏱"</span>
            <span class="sr-only">"Disappearing messages"</span>
            <select
                class="rounded border border-slate-300 bg-transparent px-1 py-0 text-xs dark:border-slate-700"
                data-testid="disappearing"
                on:change=change
            >
                <option value="0" selected=seconds.is_none()>
                    "Messages stay"
                </option>
                {offered
                    .into_iter()
                    .map(|(s, words)| {
                        view! {
                            <option value=s.to_string() selected=seconds == Some(s)>
                                {format!("Disappear after {words}")}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </label>
        {inline_error(error)}
    }
    .into_any()
}

/// Who reads this channel's earlier messages, as the header says it; moderators change it here.
#[component]
fn HistorySetting(channel: Uuid, history: HistoryVisibility, moderator: bool) -> impl IntoView {
    let words = |h: HistoryVisibility| match h {
        HistoryVisibility::Joined => "New members read from when they join.",
        HistoryVisibility::Full => "New members read the full history.",
    };
    if !moderator {
        return view! { <span data-testid="history-setting">{words(history)}</span> }.into_any();
    }
    let chat = expect_context::<Chat>();
    let error = RwSignal::new(None::<String>);
    let change = move |ev: leptos::ev::Event| {
        let chosen =
            if event_target_value(&ev) == "full" { HistoryVisibility::Full } else { HistoryVisibility::Joined };
        leptos::task::spawn_local(async move {
            match crate::api::spaces::set_channel_history(channel, chosen).await {
                Ok(_) => {
                    error.set(None);
                    chat.spaces_changed.update(|n| *n += 1);
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    view! {
        <label class="inline-flex items-center gap-1">
            <span class="sr-only">"Who reads earlier messages"</span>
            <select
                class="rounded border border-slate-300 bg-transparent px-1 py-0 text-xs dark:border-slate-700"
                data-testid="history-setting"
                on:change=change
            >
                <option value="joined" selected=history == HistoryVisibility::Joined>
                    {words(HistoryVisibility::Joined)}
                </option>
                <option value="full" selected=history == HistoryVisibility::Full>
                    {words(HistoryVisibility::Full)}
                </option>
            </select>
        </label>
        {inline_error(error)}
    }
    .into_any()
}
