//! The signed-in app shell: sidebar, main pane, account menu. Later issues fill the panes.

use super::user_resource;
use crate::{
    api::{
        auth::Logout,
        invites::{CreateInvite, list_invites},
        messages::unread_counts,
        spaces::{CreateCommunity, JoinCommunity, list_my_spaces},
    },
    components::{
        form::{BUTTON, ErrorBanner, Field},
        sidebar::{SpaceForms, SpaceList},
    },
    error::AppError,
    model::{Invite, Me, messages::Unread, spaces::MySpaces},
};
use leptos::{form::ActionForm, prelude::*};
use leptos_meta::Title;
use leptos_router::components::Redirect;

#[component]
pub fn HomePage() -> impl IntoView {
    // Every resource of the page is created here, outside any <Suspense>: a resource created while
    // a Suspense renders can keep server-side rendering waiting forever (leptos#4866).
    let user = user_resource();
    let create_invite = ServerAction::<CreateInvite>::new();
    let invites = Resource::new(move || create_invite.version().get(), |_| list_invites());
    let (join, create) = (ServerAction::<JoinCommunity>::new(), ServerAction::<CreateCommunity>::new());
    let changed = move || (join.version().get(), create.version().get());
    let spaces = Resource::new(changed, |_| list_my_spaces());
    let unread = Resource::new(changed, |_| unread_counts());
    view! {
        <Title text="" />
        <Suspense fallback=|| view! { <p class="p-4">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(me)) => view! { <Shell me create_invite invites spaces unread join create /> }.into_any(),
                    Ok(None) => view! { <Redirect path="/login" /> }.into_any(),
                    Err(e) => view! { <div class="p-4"><ErrorBanner error=Signal::stored(Some(e)) /></div> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Shell(
    me: Me,
    create_invite: ServerAction<CreateInvite>,
    invites: Resource<Result<Vec<Invite>, AppError>>,
    spaces: Resource<Result<MySpaces, AppError>>,
    unread: Resource<Result<Vec<Unread>, AppError>>,
    join: ServerAction<JoinCommunity>,
    create: ServerAction<CreateCommunity>,
) -> impl IntoView {
    let sidebar_open = RwSignal::new(false);
    let logout = ServerAction::<Logout>::new();
    let is_manager = me.is_owner || me.is_admin;
    view! {
        <div class="flex h-screen flex-col md:flex-row" data-testid="app-shell">
            // Top bar on small screens; the menu button needs the hydrated app.
            <header class="flex items-center justify-between border-b border-slate-200 bg-white px-4 py-2 md:hidden dark:border-slate-800 dark:bg-slate-900">
                <button
                    type="button"
                    data-testid="menu-button"
                    class="rounded-md px-2 py-1 text-sm font-medium hover:bg-slate-100 dark:hover:bg-slate-800"
                    aria-controls="sidebar"
                    aria-expanded=move || sidebar_open.get().to_string()
                    on:click=move |_| sidebar_open.update(|o| *o = !*o)
                >
                    "☰ Menu"
                </button>
                <span class="font-bold text-indigo-600 dark:text-indigo-400">"Chatalot"</span>
            </header>
            <nav
                id="sidebar"
                aria-label="Communities and conversations"
                class=move || format!(
                    "{} w-full shrink-0 flex-col border-r border-slate-200 bg-white md:flex md:w-72 dark:border-slate-800 dark:bg-slate-900",
                    if sidebar_open.get() { "flex" } else { "hidden" },
                )
            >
                <div class="hidden px-4 py-3 text-lg font-bold text-indigo-600 md:block dark:text-indigo-400">"Chatalot"</div>
                <div class="flex-1 overflow-y-auto">
                    <SpaceList spaces unread />
                </div>
                <SpaceForms join create can_create=is_manager />
                <div class="flex items-center justify-between gap-2 border-t border-slate-200 px-4 py-3 dark:border-slate-800">
                    <div class="min-w-0">
                        <p class="truncate text-sm font-semibold" data-testid="display-name">{me.display_name.clone()}</p>
                        <p class="truncate text-xs text-slate-500 dark:text-slate-400">"@"{me.username.clone()}</p>
                    </div>
                    <ActionForm action=logout attr:id="logout-form">
                        <button type="submit" class="rounded-md px-2 py-1 text-sm text-slate-600 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800">
                            "Sign out"
                        </button>
                    </ActionForm>
                </div>
            </nav>
            <main class="flex-1 overflow-y-auto p-4 md:p-8">
                <h1 class="text-2xl font-semibold">"Welcome, " {me.display_name.clone()}</h1>
                <p class="mt-2 text-slate-600 dark:text-slate-400">"Pick a conversation from the sidebar. Messages you send are end-to-end encrypted."</p>
                <DeviceBadge user=me.id />
                {is_manager.then(|| view! { <InvitePanel create=create_invite invites /> })}
            </main>
        </div>
    }
}

/// This browser's encryption device: set up after hydration (keys never exist on the server).
#[component]
fn DeviceBadge(user: uuid::Uuid) -> impl IntoView {
    let status = RwSignal::new(None::<Result<(String, String), String>>);
    #[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            let result = crate::client::ensure_device(user).await.map(|s| (s.device_id, s.fingerprint));
            status.set(Some(result));
        });
    });
    #[cfg(not(all(feature = "hydrate", target_arch = "wasm32")))]
    let _ = user;
    view! {
        <p class="mt-4 text-sm text-slate-600 dark:text-slate-400" data-testid="device-status">
            {move || match status.get() {
                None => "End-to-end encryption starts once the app has loaded in this browser (it needs JavaScript).".to_owned(),
                Some(Ok((id, fingerprint))) => format!("This device: {id} · key {fingerprint}"),
                Some(Err(e)) => format!("Encryption is unavailable in this browser: {e}"),
            }}
        </p>
    }
}

/// Registration invite codes, for the instance owner and admins.
#[component]
fn InvitePanel(create: ServerAction<CreateInvite>, invites: Resource<Result<Vec<Invite>, AppError>>) -> impl IntoView {
    let error = Signal::derive(move || create.value().get().and_then(Result::err));
    view! {
        <section class="mt-8 max-w-2xl rounded-2xl border border-slate-200 bg-white p-4 md:p-6 dark:border-slate-800 dark:bg-slate-900" aria-labelledby="invites-heading">
            <h2 id="invites-heading" class="text-lg font-semibold">"Registration invites"</h2>
            <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">"People register with one of these codes (at /register?invite=CODE). Leave a field empty for no limit."</p>
            <ActionForm action=create attr:class="mt-4 grid grid-cols-1 gap-4 md:grid-cols-3 md:items-start" attr:id="invite-form">
                <Field name="max_uses" label="Max uses" kind="number" required=false error />
                <Field name="expires_in_hours" label="Expires in (hours)" kind="number" required=false error />
                <div class="md:pt-6"><button type="submit" class=BUTTON>"Create invite"</button></div>
            </ActionForm>
            <ErrorBanner error />
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match invites.await {
                        Ok(list) if list.is_empty() => view! { <p class="mt-4 text-sm text-slate-500">"No invites yet."</p> }.into_any(),
                        Ok(list) => view! {
                            <ul class="mt-4 divide-y divide-slate-200 dark:divide-slate-800" data-testid="invite-list">
                                {list.into_iter().map(|i| view! {
                                    <li class="flex flex-wrap items-center justify-between gap-2 py-2 text-sm">
                                        <code class="font-mono" data-testid="invite-code">{i.code}</code>
                                        <span class="text-slate-500">
                                            {format!("{} used{}", i.uses, i.max_uses.map(|m| format!(" of {m}")).unwrap_or_default())}
                                            {i.expires_at.map(|e| format!(" · expires {}", e.get(..16).unwrap_or(&e).replace('T', " ")))}
                                            {(!i.usable).then_some(" · no longer usable")}
                                        </span>
                                    </li>
                                }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(e) => view! { <ErrorBanner error=Signal::stored(Some(e)) /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
