//! The signed-in frame around every app page: sidebar (spaces, forms, account) and the page in the
//! main pane (`<Outlet/>`). It owns every resource the app pages use — a resource created by a page
//! rendered inside this frame's `<Suspense>` could keep server-side rendering waiting forever
//! (leptos#4866) — and hands them down as [`ShellData`]. It also starts the browser runtime.

use super::user_resource;
use crate::{
    api::{
        auth::Logout,
        invites::{CreateInvite, list_invites},
        messages::unread_counts,
        spaces::{CreateCommunity, JoinCommunity, channel_member_list, list_my_spaces},
    },
    chat::{Chat, Connection, VerifyStep, act},
    components::{
        form::ErrorBanner,
        sidebar::{SpaceForms, SpaceList},
    },
    error::AppError,
    model::{
        Invite, Me,
        messages::Unread,
        spaces::{Member, MySpaces},
    },
};
use leptos::{form::ActionForm, prelude::*};
use leptos_meta::Title;
use leptos_router::{components::Outlet, components::Redirect, hooks::use_location};
use uuid::Uuid;

/// The members of the channel in the address bar, with its id (`None` elsewhere).
pub type ChannelMembers = Option<(Uuid, Vec<Member>)>;

/// What the app pages read from the frame.
#[derive(Clone, Copy)]
pub struct ShellData {
    pub me: StoredValue<Me>,
    pub spaces: Resource<Result<MySpaces, AppError>>,
    pub unread: Resource<Result<Vec<Unread>, AppError>>,
    /// The members of the channel in the address bar (`None` elsewhere).
    pub members: Resource<Result<ChannelMembers, AppError>>,
    /// The last member list loaded, for reading without waiting. Reading `members` outside a
    /// `<Transition>` would make the frame's `<Suspense>` wait for every reload (each channel
    /// switch), unmounting the whole page, focus included.
    pub members_now: RwSignal<ChannelMembers>,
    /// The last `spaces` loaded (`None` until then, and on the server), likewise.
    pub spaces_now: RwSignal<Option<MySpaces>>,
    pub create_invite: ServerAction<CreateInvite>,
    pub invites: Resource<Result<Vec<Invite>, AppError>>,
    /// Bump to reload the member list (after a kick).
    pub members_changed: RwSignal<u32>,
}

/// The channel id in a `/c/{id}` path.
pub fn channel_in_path(path: &str) -> Option<Uuid> {
    path.strip_prefix("/c/").and_then(|rest| rest.split('/').next()).and_then(|id| Uuid::parse_str(id).ok())
}

#[component]
pub fn SignedIn() -> impl IntoView {
    let user = user_resource();
    let chat = Chat::default();
    provide_context(chat);
    let create_invite = ServerAction::<CreateInvite>::new();
    let invites = Resource::new(move || create_invite.version().get(), |_| list_invites());
    let (join, create) = (ServerAction::<JoinCommunity>::new(), ServerAction::<CreateCommunity>::new());
    let changed = move || (join.version().get(), create.version().get(), chat.spaces_changed.get());
    let spaces = Resource::new(changed, |_| list_my_spaces());
    let unread = Resource::new(changed, |_| unread_counts());
    let path = use_location().pathname;
    let members_changed = chat.members_changed;
    let members = Resource::new(
        move || (path.with(|p| channel_in_path(p)), members_changed.get(), chat.spaces_changed.get()),
        |(channel, _, _)| async move {
            match channel {
                Some(id) => channel_member_list(id).await.map(|list| Some((id, list))),
                None => Ok(None),
            }
        },
    );
    // Outside the <Suspense> below: these reads do not make it wait.
    let members_now = RwSignal::new(None);
    Effect::new(move |_| {
        if let Some(Ok(list)) = members.get() {
            members_now.set(list);
        }
    });
    let spaces_now = RwSignal::new(None);
    Effect::new(move |_| {
        if let Some(Ok(s)) = spaces.get() {
            spaces_now.set(Some(s));
        }
    });
    view! {
        <Suspense fallback=|| {
            view! { <p class="p-4">"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(me)) => {
                        let data = ShellData {
                            me: StoredValue::new(me),
                            spaces,
                            unread,
                            members,
                            members_now,
                            spaces_now,
                            create_invite,
                            invites,
                            members_changed,
                        };
                        view! { <Shell data join create /> }.into_any()
                    }
                    Ok(None) if path.get_untracked() == "/" => front_page(),
                    Ok(None) => {
                        // A visitor of the front page learns what this server is; elsewhere, sign in first.
                        view! { <Redirect path="/login" /> }
                            .into_any()
                    }
                    Err(e) => {
                        view! {
                            <div class="p-4">
                                <ErrorBanner error=Signal::stored(Some(e)) />
                            </div>
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// The front page for a visitor. The server sends it as a plain page; the app meets it only when
/// a session ended while it ran, and then loads it from the server, which keeps its code out of
/// the browser bundle.
#[cfg(feature = "ssr")]
fn front_page() -> AnyView {
    view! { <super::landing::Landing /> }.into_any()
}

#[cfg(not(feature = "ssr"))]
fn front_page() -> AnyView {
    Effect::new(|_| {
        let _ = window().location().reload();
    });
    ().into_any()
}

#[component]
fn Shell(data: ShellData, join: ServerAction<JoinCommunity>, create: ServerAction<CreateCommunity>) -> impl IntoView {
    provide_context(data);
    let chat = expect_context::<Chat>();
    let me = data.me.get_value();
    chat.me.set_value(me.id);
    chat.my_name.set_value(me.username.to_ascii_lowercase());
    if chat.read_receipts.get_untracked().is_none() {
        chat.read_receipts.set(Some(me.read_receipts));
    }
    // Which channels are DMs, for the runtime's check of who may call everyone.
    Effect::new(move |_| {
        data.spaces_now.with(|s| {
            if let Some(s) = s {
                chat.direct.set_value(s.direct.iter().map(|c| c.id).collect());
            }
        })
    });
    #[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
    {
        Effect::new(move |started: Option<()>| {
            if started.is_none() {
                crate::client::start(chat);
            }
        });
        on_cleanup(crate::client::stop);
    }
    let sidebar_open = RwSignal::new(false);
    // Following a link in the folded (mobile) sidebar shows the page.
    let location = use_location();
    Effect::new(move |first: Option<()>| {
        location.pathname.track();
        sidebar_open.set(false);
        if first.is_some() {
            chat.navigated.set_value(true);
        }
    });
    let logout = ServerAction::<Logout>::new();
    let is_manager = me.is_owner || me.is_admin;
    // The tab's title counts unread messages, so a tab in the background says when something came.
    let unread_total = move || chat.unread.with(|u| u.as_ref().map_or(0, |u| u.values().map(|u| u.count).sum::<u64>()));
    let here = use_location().pathname;
    let in_channel = move || here.with(|p| channel_in_path(p).is_some());
    // Keyboard users skip the sidebar: to the message box in a conversation, else to the page.
    let skip = move |ev: leptos::ev::MouseEvent| {
        use leptos::wasm_bindgen::JsCast;
        let target = if in_channel() { "composer" } else { "main" };
        if let Some(el) =
            document().get_element_by_id(target).and_then(|e| e.dyn_into::<leptos::web_sys::HtmlElement>().ok())
        {
            ev.prevent_default();
            let _ = el.focus();
        }
    };
    view! {
        <Title formatter=move |page: String| crate::routes::title_text(&page, unread_total()) />
        <a
            href=move || if in_channel() { "#composer" } else { "#main" }
            class="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:rounded-md focus:bg-white focus:px-3 focus:py-2 focus:font-semibold focus:text-indigo-700 focus:shadow-lg focus:outline-none focus:ring-2 focus:ring-indigo-500 dark:focus:bg-slate-900 dark:focus:text-indigo-300"
            data-testid="skip-link"
            on:click=skip
        >
            {move || if in_channel() { "Skip to the message box" } else { "Skip to the content" }}
        </a>
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
                <a href="/" class="font-bold text-indigo-600 dark:text-indigo-400" data-testid="home-link">
                    "Chatalot"
                </a>
            </header>
            <nav
                id="sidebar"
                aria-label="Communities and conversations"
                class=move || {
                    format!(
                        "{} w-full shrink-0 flex-col border-r border-slate-200 bg-white md:flex md:w-72 dark:border-slate-800 dark:bg-slate-900",
                        if sidebar_open.get() { "flex" } else { "hidden" },
                    )
                }
            >
                <a href="/" class="hidden px-4 py-3 text-lg font-bold text-indigo-600 md:block dark:text-indigo-400">
                    "Chatalot"
                </a>
                <div class="flex-1 overflow-y-auto">
                    <SpaceList spaces=data.spaces unread=data.unread me=me.id />
                </div>
                <SpaceForms join create can_create=is_manager />
                <div class="flex items-center justify-between gap-2 border-t border-slate-200 px-4 py-3 dark:border-slate-800">
                    <div class="min-w-0">
                        <p class="truncate text-sm font-semibold" data-testid="display-name">
                            {me.display_name.clone()}
                        </p>
                        <p class="truncate text-xs text-slate-600 dark:text-slate-400">"@"{me.username.clone()}</p>
                        <ConnectionStatus />
                    </div>
                    <ActionForm action=logout attr:id="logout-form">
                        <button
                            type="submit"
                            class="rounded-md px-2 py-1 text-sm text-slate-600 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800"
                        >
                            "Sign out"
                        </button>
                    </ActionForm>
                </div>
            </nav>
            <div id="main" tabindex="-1" class="flex min-h-0 min-w-0 flex-1 flex-col focus:outline-none">
                <KeyWarnings />
                <VerifyDialog />
                <Outlet />
            </div>
        </div>
    }
}

/// Whether live updates are flowing.
#[component]
fn ConnectionStatus() -> impl IntoView {
    let chat = expect_context::<Chat>();
    view! {
        <p class="truncate text-xs text-slate-600 dark:text-slate-400" data-testid="connection" role="status">
            {move || match chat.connection.get() {
                Connection::Starting => "Starting…".to_owned(),
                Connection::Connecting => "Connecting…".to_owned(),
                Connection::Online => "● Connected".to_owned(),
                Connection::Offline(reason) => reason,
            }}
        </p>
    }
}

const WARNING_BUTTON: &str = "rounded px-2 font-semibold hover:bg-amber-100 focus:outline-none focus-visible:ring-2 \
    focus-visible:ring-amber-500 dark:hover:bg-amber-900";

/// Key-change and forged-key warnings, until dismissed (a changed key can be accepted there).
#[component]
fn KeyWarnings() -> impl IntoView {
    let chat = expect_context::<Chat>();
    view! {
        <For each=move || chat.warnings.get() key=|w| w.text.clone() let:warning>
            <div
                role="alert"
                data-testid="key-warning"
                class="flex items-start justify-between gap-2 border-b border-amber-300 bg-amber-50 px-4 py-2 text-sm text-amber-900 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-100"
            >
                <span>"⚠ " {warning.text.clone()}</span>
                <span class="flex shrink-0 gap-1">
                    {warning
                        .accept
                        .clone()
                        .map(|(user, device_id, key)| {
                            view! {
                                <button
                                    type="button"
                                    class=WARNING_BUTTON
                                    data-testid="accept-key"
                                    on:click=move |_| leptos::task::spawn_local(
                                        act::accept_key(user, device_id.clone(), key.clone()),
                                    )
                                >
                                    "Accept new key"
                                </button>
                            }
                        })}
                    <button
                        type="button"
                        class=WARNING_BUTTON
                        on:click=move |_| chat.warnings.update(|all| all.retain(|w| *w != warning))
                    >
                        "Dismiss"
                    </button>
                </span>
            </div>
        </For>
    }
}

/// The device verification in progress (SAS): request, codes to compare, outcome.
#[component]
fn VerifyDialog() -> impl IntoView {
    let chat = expect_context::<Chat>();
    let data = expect_context::<ShellData>();
    const BUTTON: &str = "rounded-lg px-3 py-2 text-sm font-semibold focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400";
    let me = data.me.get_value().id;
    let name = move |user: Uuid| {
        if user == me {
            return "You".to_owned();
        }
        data.members_now
            .with(|now| {
                now.as_ref()
                    .and_then(|(_, l)| l.iter().find(|m| m.user.id == user).map(|m| m.user.display_name.clone()))
            })
            .unwrap_or_else(|| "Someone".to_owned())
    };
    move || {
        chat.verify.get().map(|v| {
            let who = name(v.user);
            let body = match v.step {
                VerifyStep::Choose(devices) => view! {
                    <p>
                        {format!(
                            "{who} has several devices. Ask which one they are holding: each shows its name and key on its home page (\"This device\").",
                        )}
                    </p>
                    <ul class="mt-3 space-y-2">
                        {devices
                            .into_iter()
                            .map(|d| {
                                let id = d.device_id.clone();
                                view! {
                                    <li>
                                        <button
                                            type="button"
                                            class=format!(
                                                "{BUTTON} w-full text-left ring-1 ring-indigo-200 hover:bg-indigo-100 dark:ring-indigo-800 dark:hover:bg-indigo-900",
                                            )
                                            data-testid="verify-device"
                                            data-device=d.device_id.clone()
                                            on:click=move |_| leptos::task::spawn_local(
                                                act::choose_verification(id.clone()),
                                            )
                                        >
                                            <span class="font-mono">{d.device_id.clone()}</span>
                                            {d.verified.then_some(" · already verified")}
                                            <span class="block truncate font-mono text-xs font-normal">
                                                {format!("key {}", d.fingerprint)}
                                            </span>
                                        </button>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                    <button type="button" class=format!("{BUTTON} mt-3") on:click=move |_| act::decline_verification()>
                        "Cancel"
                    </button>
                }.into_any(),
                VerifyStep::Incoming => view! {
                    <p>
                        {format!(
                            "{who} wants to verify this device with you. Do it when you can both see each other's screen (or talk on a call).",
                        )}
                    </p>
                    <div class="mt-3 flex gap-2">
                        <button
                            type="button"
                            class=format!("{BUTTON} bg-indigo-600 text-white")
                            data-testid="verify-accept"
                            on:click=move |_| leptos::task::spawn_local(act::accept_verification())
                        >
                            "Start"
                        </button>
                        <button type="button" class=BUTTON on:click=move |_| act::decline_verification()>
                            "Not now"
                        </button>
                    </div>
                }.into_any(),
                VerifyStep::Waiting => view! { <p>{format!("Waiting for {who}…")}</p> }.into_any(),
                VerifyStep::Compare { emoji, numbers } => view! {
                    <p>{format!("Check that {who} sees the same emoji, in the same order:")}</p>
                    <ol class="mt-3 flex flex-wrap gap-3" data-testid="sas-emoji">
                        {emoji
                            .into_iter()
                            .map(|(e, n)| {
                                view! {
                                    <li class="flex w-16 flex-col items-center text-center">
                                        <span class="text-3xl" aria-hidden="true">
                                            {e}
                                        </span>
                                        <span class="text-xs">{n}</span>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ol>
                    <p class="mt-2 text-sm">
                        "Or compare the numbers: " <span class="font-mono" data-testid="sas-numbers">
                            {format!("{} {} {}", numbers.0, numbers.1, numbers.2)}
                        </span>
                    </p>
                    <div class="mt-3 flex gap-2">
                        <button
                            type="button"
                            class=format!("{BUTTON} bg-green-600 text-white")
                            data-testid="sas-match"
                            on:click=move |_| leptos::task::spawn_local(act::confirm_verification(true))
                        >
                            "They match"
                        </button>
                        <button
                            type="button"
                            class=format!("{BUTTON} bg-red-600 text-white")
                            data-testid="sas-mismatch"
                            on:click=move |_| leptos::task::spawn_local(act::confirm_verification(false))
                        >
                            "They differ"
                        </button>
                    </div>
                }.into_any(),
                VerifyStep::Confirmed => view! { <p>{format!("Waiting for {who} to confirm…")}</p> }.into_any(),
                VerifyStep::Done => view! {
                    <p data-testid="verify-done">
                        {format!("✓ {who}'s device is verified. Their messages now show a verified lock.")}
                    </p>
                    <button type="button" class=format!("{BUTTON} mt-3") on:click=move |_| act::decline_verification()>
                        "Close"
                    </button>
                }.into_any(),
                VerifyStep::Failed(why) => view! {
                    <p role="alert" class="text-red-700 dark:text-red-300" data-testid="verify-failed">
                        {format!("Verification failed: {why}")}
                    </p>
                    <button type="button" class=format!("{BUTTON} mt-3") on:click=move |_| act::decline_verification()>
                        "Close"
                    </button>
                }.into_any(),
            };
            view! {
                <section
                    role="dialog"
                    aria-label="Verify a device"
                    data-testid="verify-dialog"
                    class="border-b border-indigo-300 bg-indigo-50 px-4 py-3 text-sm dark:border-indigo-800 dark:bg-indigo-950"
                >
                    <h2 class="font-semibold">
                        {if v.device_id.is_empty() {
                            format!("Verify {who}")
                        } else {
                            format!("Verify device {}", v.device_id)
                        }}
                    </h2>
                    {body}
                </section>
            }
        })
    }
}
