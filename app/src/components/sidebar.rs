//! The sidebar's list of spaces: communities with their groups and channels, then DMs and group
//! DMs, each with its unread count; and the forms to create or join a community.

use crate::{
    api::spaces::{CreateCommunity, JoinCommunity},
    chat::Chat,
    components::form::{ErrorBanner, Field, reset_after},
    error::AppError,
    model::{
        messages::Unread,
        spaces::{ChannelSummary, MySpaces},
    },
};
use leptos::{form::ActionForm, prelude::*};
use uuid::Uuid;

use super::style::PRIMARY;

fn unread_of(unread: &[Unread], channel: Uuid) -> u64 {
    unread.iter().find(|u| u.channel_id == channel).map_or(0, |u| u.count)
}

/// One conversation: a link with its unread count (live once the app is connected, the
/// server-rendered count before).
fn channel_row(ch: ChannelSummary, label: String, rendered_unread: u64) -> impl IntoView {
    let chat = use_context::<Chat>();
    let id = ch.id;
    let unread = move || {
        chat.and_then(|c| c.unread.with(|u| u.as_ref().map(|u| u.get(&id).map_or(0, |u| u.count))))
            .unwrap_or(rendered_unread)
    };
    let current = move || chat.is_some_and(|c| c.viewing.get() == Some(id));
    // Mentions of me, counted in this browser after decryption.
    let mentions = move || chat.map_or(0, |c| c.mentions.with(|m| m.get(&id).copied().unwrap_or(0)));
    let title = {
        let label = label.clone();
        move || {
            let said = match unread() {
                0 => label.clone(),
                n => format!("{label}, {n} unread"),
            };
            match mentions() {
                0 => said,
                1 => format!("{said}, 1 mention of you"),
                n => format!("{said}, {n} mentions of you"),
            }
        }
    };
    view! {
        <li data-testid="channel" data-channel-id=id.to_string()>
            <a
                href=format!("/c/{id}")
                class=move || {
                    format!(
                        "flex items-center justify-between rounded-md px-2 py-1 hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 dark:hover:bg-slate-800 {}",
                        if current() { "bg-slate-100 font-semibold dark:bg-slate-800" } else { "" },
                    )
                }
                aria-current=move || current().then_some("page")
                title=title
            >
                <span class="truncate">{label}</span>
                {move || {
                    (mentions() > 0)
                        .then(|| {
                            view! {
                                <span
                                    class="ml-auto rounded-full bg-amber-800 px-1.5 text-xs font-semibold text-white"
                                    data-testid="mention-badge"
                                    title="Mentions of you"
                                >
                                    {format!("@{}", mentions())}
                                </span>
                            }
                        })
                }}
                {move || {
                    (unread() > 0)
                        .then(|| {
                            view! {
                                <span
                                    class="ml-2 rounded-full bg-indigo-600 px-2 text-xs font-semibold text-white"
                                    data-testid="unread-badge"
                                >
                                    {unread()}
                                </span>
                            }
                        })
                }}
            </a>
        </li>
    }
}

/// A DM or group DM is named after the other people in it.
pub fn direct_label(ch: &ChannelSummary, me: Uuid) -> String {
    let mut others: Vec<&str> = ch.members.iter().filter(|m| m.id != me).map(|m| m.display_name.as_str()).collect();
    others.sort_unstable();
    if others.is_empty() { "Only you".to_owned() } else { others.join(", ") }
}

/// What the user belongs to, from the server (rendered on the server for a fast first paint).
#[component]
pub fn SpaceList(
    spaces: Resource<Result<MySpaces, AppError>>,
    unread: Resource<Result<Vec<Unread>, AppError>>,
    me: Uuid,
) -> impl IntoView {
    view! {
        <Transition fallback=|| {
            view! { <p class="px-4 py-2 text-sm text-slate-600 dark:text-slate-400">"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                let unread = unread.await.unwrap_or_default();
                match spaces.await {
                    Ok(s) if s.communities.is_empty() && s.direct.is_empty() => {
                        view! {
                            <p class="px-4 py-2 text-sm text-slate-600 dark:text-slate-400" data-testid="no-spaces">
                                "You are not in any community yet. Join one with an invite code."
                            </p>
                        }
                            .into_any()
                    }
                    Ok(s) => {
                        view! {
                            <div class="space-y-4 px-2 py-2 text-sm" data-testid="space-list">
                                {s
                                    .communities
                                    .into_iter()
                                    .map(|c| {
                                        view! {
                                            <section aria-label=c.name.clone() data-testid="community">
                                                <h2 class="px-2 font-semibold">{c.name.clone()}</h2>
                                                {c
                                                    .groups
                                                    .into_iter()
                                                    .map(|g| {
                                                        view! {
                                                            <h3 class="mt-2 px-2 text-xs font-semibold uppercase tracking-wide text-slate-600 dark:text-slate-400">
                                                                {g.name.clone()}{g.private.then_some(" · private")}
                                                            </h3>
                                                            <ul>
                                                                {g
                                                                    .channels
                                                                    .into_iter()
                                                                    .map(|ch| {
                                                                        let label = format!("# {}", ch.name);
                                                                        let count = unread_of(&unread, ch.id);
                                                                        channel_row(ch, label, count)
                                                                    })
                                                                    .collect_view()}
                                                            </ul>
                                                        }
                                                    })
                                                    .collect_view()}
                                            </section>
                                        }
                                    })
                                    .collect_view()}
                                {(!s.direct.is_empty())
                                    .then(|| {
                                        view! {
                                            <section aria-label="Direct messages">
                                                <h2 class="px-2 font-semibold">"Direct messages"</h2>
                                                <ul>
                                                    {s
                                                        .direct
                                                        .into_iter()
                                                        .map(|ch| {
                                                            let label = direct_label(&ch, me);
                                                            let count = unread_of(&unread, ch.id);
                                                            channel_row(ch, label, count)
                                                        })
                                                        .collect_view()}
                                                </ul>
                                            </section>
                                        }
                                    })}
                            </div>
                        }
                            .into_any()
                    }
                    Err(e) => {
                        view! {
                            <div class="px-2">
                                <ErrorBanner error=Signal::stored(Some(e)) />
                            </div>
                        }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
}

/// Join a community with its invite code; instance managers can also create one.
#[component]
pub fn SpaceForms(
    join: ServerAction<JoinCommunity>,
    create: ServerAction<CreateCommunity>,
    can_create: bool,
) -> impl IntoView {
    let join_error = Signal::derive(move || join.value().get().and_then(Result::err));
    let create_error = Signal::derive(move || create.value().get().and_then(Result::err));
    let (join_form, create_form) = (NodeRef::new(), NodeRef::new());
    reset_after(join_form, move || matches!(join.value().get(), Some(Ok(_))));
    reset_after(create_form, move || matches!(create.value().get(), Some(Ok(_))));
    view! {
        <div class="space-y-3 border-t border-slate-200 px-4 py-3 dark:border-slate-800">
            <ActionForm action=join node_ref=join_form attr:id="join-form" attr:class="space-y-2">
                <Field name="code" label="Join with an invite code" autocomplete="off" error=join_error />
                <button type="submit" class=PRIMARY>
                    "Join"
                </button>
            </ActionForm>
            <ErrorBanner error=join_error />
            {can_create
                .then(|| {
                    view! {
                        <ActionForm
                            action=create
                            node_ref=create_form
                            attr:id="create-community-form"
                            attr:class="space-y-2"
                        >
                            <Field name="name" label="New community" autocomplete="off" error=create_error />
                            <button type="submit" class=PRIMARY>
                                "Create"
                            </button>
                        </ActionForm>
                        <ErrorBanner error=create_error />
                    }
                })}
        </div>
    }
}
