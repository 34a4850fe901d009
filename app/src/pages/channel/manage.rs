//! Managing a community from its conversation: invite codes, new groups and channels, adding
//! people to a private group.

use crate::components::style::PRIMARY;
use crate::pages::signed_in::ShellData;
use crate::{
    api::spaces::{CreateChannel, CreateCommunityInvite, CreateGroup, add_group_member, community_members},
    chat::Chat,
    components::form::{ErrorBanner, ErrorText, Field, INPUT, reset_after},
    model::spaces::{CommunityRole, Member},
};
use leptos::{form::ActionForm, prelude::*};
use leptos_router::hooks::use_navigate;
use std::collections::HashSet;
use uuid::Uuid;

/// Invites, new channels and new groups, for community admins.
#[component]
pub(super) fn ManageCommunity(
    community: Option<(Uuid, CommunityRole)>,
    group_id: Option<Uuid>,
    private: bool,
) -> impl IntoView {
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
                <button type="submit" class=PRIMARY>
                    "Create an invite code"
                </button>
            </ActionForm>
            {move || {
                invite
                    .value()
                    .get()
                    .and_then(Result::ok)
                    .map(|i| {
                        view! {
                            <p class="text-sm">
                                "Share this code: "
                                <code class="font-mono font-semibold" data-testid="community-invite-code">
                                    {i.code}
                                </code>
                            </p>
                        }
                    })
            }}
            <ErrorBanner error=invite_error />
            <ActionForm action=new_channel node_ref=channel_form attr:id="create-channel-form" attr:class="space-y-2">
                <input type="hidden" name="group_id" value=group_id.to_string() />
                <Field
                    name="name"
                    id="new-channel-name"
                    label="New channel in this group"
                    autocomplete="off"
                    error=channel_error
                />
                <button type="submit" class=PRIMARY>
                    "Create channel"
                </button>
            </ActionForm>
            <ErrorBanner error=channel_error />
            <ActionForm action=new_group attr:id="create-group-form" attr:class="space-y-2">
                <input type="hidden" name="community_id" value=community_id.to_string() />
                <Field
                    name="name"
                    id="new-group-name"
                    label="New group in this community"
                    autocomplete="off"
                    error=group_error
                />
                <label class="flex items-center gap-2 text-sm">
                    <input type="checkbox" name="private" value="true" class="h-4 w-4" data-testid="group-private" />
                    "Private (only people you add)"
                </label>
                <button type="submit" class=PRIMARY>
                    "Create group"
                </button>
            </ActionForm>
            <ErrorBanner error=group_error />
            {private.then(|| view! { <AddToGroup community_id group_id /> })}
        </div>
    }
    .into_any()
}

/// Adds community members to a private group (its channels' member lists show who is in).
#[component]
pub(super) fn AddToGroup(community_id: Uuid, group_id: Uuid) -> impl IntoView {
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
    let picker = move || match candidates.get() {
        None => view! {
            <button type="button" class=PRIMARY data-testid="add-people" on:click=load>
                "Add people to this group"
            </button>
        }
        .into_any(),
        Some(Err(e)) => view! { <ErrorBanner error=Signal::stored(Some(e)) /> }.into_any(),
        Some(Ok(all)) => {
            let present: HashSet<Uuid> = data
                .members_now
                .with(|m| m.as_ref().map(|(_, l)| l.iter().map(|m| m.user.id).collect()).unwrap_or_default());
            let others: Vec<Member> = all.into_iter().filter(|m| !present.contains(&m.user.id)).collect();
            if others.is_empty() {
                return view! { <p class="text-sm text-slate-600 dark:text-slate-400">"Everyone in the community is in this group."</p> }
                    .into_any();
            }
            view! {
                <form class="space-y-2" on:submit=add>
                    <label for="add-to-group" class="block text-sm font-medium">
                        "Add to this private group"
                    </label>
                    <select
                        id="add-to-group"
                        class=INPUT
                        data-testid="add-member-choice"
                        on:change=move |ev| chosen.set(event_target_value(&ev))
                    >
                        <option value="">"Choose someone…"</option>
                        {others
                            .into_iter()
                            .map(|m| view! { <option value=m.user.id.to_string()>{m.user.display_name}</option> })
                            .collect_view()}
                    </select>
                    <button type="submit" class=PRIMARY data-testid="add-member">
                        "Add"
                    </button>
                </form>
            }
            .into_any()
        }
    };
    view! {
        <div class="space-y-2" data-testid="add-to-group">
            {picker}
            <ErrorText message=error />
        </div>
    }
    .into_any()
}
