//! The member panel: who reads this conversation, their presence, and what can be done with them
//! (message, verify, kick).

use super::manage::ManageCommunity;
use crate::components::style::{PRIMARY, SMALL};
use crate::pages::signed_in::ShellData;
use crate::{
    api::spaces::{create_group_dm, kick_member, open_dm},
    chat::{Chat, act},
    components::form::ErrorBanner,
    model::{
        gateway::Presence,
        spaces::{ChannelKind, CommunityRole, Member},
    },
};
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use std::collections::HashSet;
use uuid::Uuid;

pub(super) fn presence_dot(p: Presence) -> (&'static str, &'static str) {
    match p {
        Presence::Online => ("bg-green-500", "online"),
        Presence::Idle => ("bg-amber-400", "idle"),
        Presence::Dnd => ("bg-red-500", "do not disturb"),
        Presence::Invisible | Presence::Offline => ("bg-slate-400", "offline"),
    }
}

#[component]
pub(super) fn MemberPanel(
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
    // Whose kick awaits confirmation.
    let confirming = RwSignal::new(None::<Uuid>);
    let kick = move |user: Uuid| {
        confirming.set(None);
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
                    {m.user.display_name.clone()} {(id == me).then_some(" (you)")}
                    {move || {
                        chat.verified
                            .with(|v| v.contains(&id))
                            .then(|| {
                                view! {
                                    <span
                                        class="ml-1 text-green-700 dark:text-green-400"
                                        data-testid="verified"
                                        title="You verified their device"
                                    >
                                        "✓ verified"
                                    </span>
                                }
                            })
                    }} <span class="sr-only">{move || format!(", {}", presence_dot(status()).1)}</span>
                </span>
                {(id != me)
                    .then(|| {
                        view! {
                            <input
                                type="checkbox"
                                class="h-4 w-4"
                                aria-label=format!("Select {} for a group DM", m.user.display_name)
                                data-testid="select-member"
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    selected
                                        .update(|s| {
                                            if on {
                                                s.insert(id);
                                            } else {
                                                s.remove(&id);
                                            }
                                        });
                                }
                            />
                            <button
                                type="button"
                                class=SMALL
                                data-testid="message-member"
                                on:click=move |_| message(id)
                            >
                                "Message"
                            </button>
                            <button
                                type="button"
                                class=SMALL
                                data-testid="verify"
                                on:click=move |_| leptos::task::spawn_local(async move {
                                    if let Err(e) = act::start_verification(id).await {
                                        error.set(Some(format!("Cannot verify: {e}")));
                                    }
                                })
                            >
                                "Verify"
                            </button>
                        }
                    })}
                {can_kick
                    .then(|| {
                        let name = m.user.display_name.clone();
                        move || {
                            if confirming.get() == Some(id) {
                                view! {
                                    <span class="basis-full text-xs" role="alert">
                                        {format!("Remove {name} from the community?")}
                                    </span>
                                    <button
                                        type="button"
                                        class=SMALL
                                        data-testid="confirm-kick"
                                        on:click=move |_| kick(id)
                                    >
                                        "Kick"
                                    </button>
                                    <button
                                        type="button"
                                        class=SMALL
                                        data-testid="keep-member"
                                        on:click=move |_| confirming.set(None)
                                    >
                                        "Cancel"
                                    </button>
                                }
                                    .into_any()
                            } else {
                                view! {
                                    <button
                                        type="button"
                                        class=SMALL
                                        data-testid="kick"
                                        on:click=move |_| confirming.set(Some(id))
                                    >
                                        "Kick"
                                    </button>
                                }
                                    .into_any()
                            }
                        }
                    })}
            </li>
        }
    };
    view! {
        <aside
            id="member-panel"
            aria-label="Members"
            class=move || {
                format!(
                    "{} w-full shrink-0 flex-col overflow-y-auto border-l border-slate-200 bg-white p-3 text-sm md:static md:flex md:w-64 dark:border-slate-800 dark:bg-slate-900 absolute inset-0 z-10",
                    if open.get() { "flex" } else { "hidden" },
                )
            }
            data-testid="member-panel"
        >
            <div class="flex items-center justify-between">
                <h2 class="font-semibold">"Members"</h2>
                <button
                    type="button"
                    class=format!("{SMALL} md:hidden")
                    data-testid="close-members"
                    on:click=move |_| open.set(false)
                >
                    "Close"
                </button>
            </div>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.members.await {
                        Ok(Some((_, list))) => {
                            view! { <ul class="mt-2">{list.into_iter().map(row).collect_view()}</ul> }.into_any()
                        }
                        Ok(None) => ().into_any(),
                        Err(e) => view! { <ErrorBanner error=Signal::stored(Some(e)) /> }.into_any(),
                    }
                })}
            </Transition>
            {move || {
                (selected.with(|s| s.len()) >= 2)
                    .then(|| {
                        view! {
                            <button type="button" class=PRIMARY data-testid="start-group-dm" on:click=group_dm>
                                {move || format!("Group DM with {} people", selected.with(|s| s.len()))}
                            </button>
                        }
                    })
            }}
            {move || {
                error
                    .get()
                    .map(|e| {
                        view! {
                            <p role="alert" class="mt-2 text-red-700 dark:text-red-300">
                                {e}
                            </p>
                        }
                    })
            }}
            {(kind == ChannelKind::Text).then(|| view! { <ManageCommunity community group_id private /> })}
        </aside>
    }
    .into_any()
}
