//! The app's start page (in the signed-in frame): a greeting, this browser's encryption device,
//! the key backup, and registration invites for instance managers.

use super::signed_in::ShellData;
use crate::{
    api::{auth::set_read_receipts, invites::CreateInvite, keys::list_devices},
    chat::{Chat, act},
    components::{
        form::{BUTTON, ErrorBanner, ErrorText, Field},
        style::SMALL,
    },
    error::AppError,
    model::{Invite, messages::MAX_RECEIPT_READERS},
};
use leptos::{form::ActionForm, prelude::*};
use leptos_meta::Title;

#[component]
pub fn HomePage() -> impl IntoView {
    let data = expect_context::<ShellData>();
    let me = data.me.get_value();
    let is_manager = me.is_owner || me.is_admin;
    view! {
        <Title text="" />
        <main class="flex-1 overflow-y-auto p-4 md:p-8">
            <h1 class="text-2xl font-semibold">"Welcome, " {me.display_name.clone()}</h1>
            <p class="mt-2 text-slate-600 dark:text-slate-400">
                "Pick a conversation from the sidebar. Messages you send are end-to-end encrypted."
            </p>
            <DeviceBadge />
            <OwnDevices />
            <super::key_backup::KeyBackupPanel />
            <Bookmarks />
            <ReadReceipts initial=me.read_receipts />
            {is_manager.then(|| view! { <InvitePanel create=data.create_invite invites=data.invites /> })}
        </main>
    }
}

/// This browser's encryption device: set up after hydration (keys never exist on the server).
#[component]
fn DeviceBadge() -> impl IntoView {
    let chat = expect_context::<Chat>();
    view! {
        <p class="mt-4 text-sm text-slate-600 dark:text-slate-400" data-testid="device-status">
            {move || match chat.device.get() {
                None => {
                    "End-to-end encryption starts once the app has loaded in this browser (it needs JavaScript)."
                        .to_owned()
                }
                Some(Ok(d)) => format!("This device: {} · key {}", d.device_id, d.fingerprint),
                Some(Err(e)) => format!("Encryption is unavailable in this browser: {e}"),
            }}
        </p>
        <super::key_backup::StartNewDevice />
    }
}

/// This person's other devices: verifying one here (comparing emoji on both) makes each trust the
/// other, and this browser then gives it every key it holds, so it reads the history too.
#[component]
fn OwnDevices() -> impl IntoView {
    let chat = expect_context::<Chat>();
    let me = chat.me.get_value();
    let error = RwSignal::new(None::<String>);
    // Fetched in the browser only (a resource made by a page inside the signed-in frame could
    // hold server-side rendering; see `signed_in.rs`), again once encryption has started here.
    let devices = RwSignal::new(None::<Vec<crate::model::keys::DeviceKeys>>);
    Effect::new(move |_| {
        if chat.device.with(|d| matches!(d, Some(Ok(_)))) {
            leptos::task::spawn_local(async move {
                if let Ok(all) = list_devices(me).await {
                    devices.set(Some(all));
                }
            });
        }
    });
    let this = move || chat.device.with(|d| d.as_ref().and_then(|d| d.as_ref().ok()).map(|d| d.device_id.clone()));
    let list = move || {
        let here = this();
        devices.get().filter(|all| all.len() > 1).map(|all| {
            view! {
                <section class="mt-6 max-w-2xl" aria-labelledby="devices-heading" data-testid="own-devices">
                    <h2 id="devices-heading" class="text-lg font-semibold">
                        "Your devices"
                    </h2>
                    <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">
                        "Verify your other devices (compare the emoji on both): they then trust each other and share the keys to your earlier messages."
                    </p>
                    <ul class="mt-2 divide-y divide-slate-200 dark:divide-slate-800">
                        {all
                            .into_iter()
                            .map(|d| {
                                let mine = here.as_deref() == Some(d.device_id.as_str());
                                let id = d.device_id.clone();
                                let key = crate::chat::fingerprint(&d.ed25519);
                                view! {
                                    <li
                                        class="flex flex-wrap items-center justify-between gap-2 py-2 text-sm"
                                        data-testid="own-device"
                                        data-device=d.device_id.clone()
                                    >
                                        <span class="min-w-0">
                                            <span class="font-mono">{d.device_id.clone()}</span>
                                            {mine.then_some(" (this browser)")}
                                            <span class="block truncate font-mono text-xs text-slate-600 dark:text-slate-400">
                                                {format!("key {key}")}
                                            </span>
                                        </span>
                                        {(!mine)
                                            .then(|| {
                                                view! {
                                                    <button
                                                        type="button"
                                                        class=SMALL
                                                        data-testid="verify-own-device"
                                                        on:click=move |_| {
                                                            let id = id.clone();
                                                            leptos::task::spawn_local(async move {
                                                                if let Err(e) = act::verify_device(me, id).await {
                                                                    error.set(Some(e.to_string()));
                                                                }
                                                            });
                                                        }
                                                    >
                                                        "Verify"
                                                    </button>
                                                }
                                            })}
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                    <ErrorText message=error />
                </section>
            }
        })
    };
    view! { <div>{list}</div> }
}

/// My bookmarks, each with my note, where it is and "Open" (to the message) and "Remove"; read
/// from my notes channel in this browser (the server holds them encrypted for my devices).
#[component]
fn Bookmarks() -> impl IntoView {
    let chat = expect_context::<Chat>();
    let data = expect_context::<ShellData>();
    let me = data.me.get_value().id;
    Effect::new(move |_| {
        if chat.device.with(|d| matches!(d, Some(Ok(_)))) {
            act::load_bookmarks();
        }
    });
    let error = RwSignal::new(None::<String>);
    let list = Memo::new(move |_| chat.bookmarks());
    let items = move || {
        if chat.notes.get().is_none() {
            return view! { <p class="mt-2 text-sm text-slate-600 dark:text-slate-400">"Loading…"</p> }.into_any();
        }
        if list.with(Vec::is_empty) {
            return view! {
                <p class="mt-2 text-sm text-slate-600 dark:text-slate-400" data-testid="no-bookmarks">
                    "Nothing bookmarked yet. Under “⋯” on a message, choose “Bookmark”."
                </p>
            }
            .into_any();
        }
        view! {
            <ul class="mt-2 space-y-2">
                {list
                    .get()
                    .into_iter()
                    .filter_map(|line| {
                        let b = line.bookmark.clone()?;
                        let place = data
                            .spaces_now
                            .with(|s| {
                                s.as_ref().and_then(|s| crate::pages::channel::channel_title(s, b.channel_id, me))
                            })
                            .unwrap_or_else(|| "a conversation you left".to_owned());
                        let note = line.body.clone().unwrap_or_default();
                        let id = line.id;
                        Some(
                            view! {
                                <li
                                    class="rounded-lg border border-slate-200 p-3 text-sm dark:border-slate-800"
                                    data-testid="bookmark-item"
                                >
                                    <p class="text-xs text-slate-600 dark:text-slate-400">
                                        {format!("{} in {place}", b.author)}
                                    </p>
                                    <p class="truncate">{b.excerpt.clone()}</p>
                                    {(!note.is_empty())
                                        .then(|| {
                                            view! {
                                                <p
                                                    class="mt-1 text-emerald-800 dark:text-emerald-300"
                                                    data-testid="bookmark-item-note"
                                                >
                                                    {format!("🔖 {note}")}
                                                </p>
                                            }
                                        })}
                                    <div class="mt-1 flex gap-2">
                                        <a
                                            class=SMALL
                                            href=format!("/c/{}?m={}", b.channel_id, b.message_id)
                                            data-testid="bookmark-open"
                                        >
                                            "Open"
                                        </a>
                                        <button
                                            type="button"
                                            class=SMALL
                                            data-testid="bookmark-remove"
                                            on:click=move |_| {
                                                leptos::task::spawn_local(async move {
                                                    if let Err(e) = act::unbookmark(id).await {
                                                        error.set(Some(e.to_string()));
                                                    }
                                                });
                                            }
                                        >
                                            "Remove"
                                        </button>
                                    </div>
                                </li>
                            },
                        )
                    })
                    .collect_view()}
            </ul>
        }
        .into_any()
    };
    view! {
        <section class="mt-6 max-w-2xl" aria-labelledby="bookmarks-heading" data-testid="bookmarks">
            <h2 id="bookmarks-heading" class="text-lg font-semibold">
                "Bookmarks"
            </h2>
            <p class="text-sm text-slate-600 dark:text-slate-400">
                "Only you can read your bookmarks and notes, on your devices: they are end-to-end encrypted."
            </p>
            {items}
            <ErrorText message=error />
        </section>
    }
}

/// The read-receipts switch: off, nobody sees how far I have read and I see nobody's.
#[component]
fn ReadReceipts(initial: bool) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let error = RwSignal::new(None::<String>);
    let on = move || chat.read_receipts.get().unwrap_or(initial);
    let toggle = move |ev: leptos::ev::Event| {
        let wanted = event_target_checked(&ev);
        leptos::task::spawn_local(async move {
            match set_read_receipts(wanted).await {
                Ok(()) => {
                    error.set(None);
                    chat.read_receipts.set(Some(wanted));
                }
                Err(e) => {
                    error.set(Some(e.to_string()));
                    // The box shows what is stored again.
                    chat.read_receipts.update(|_| {});
                }
            }
        });
    };
    view! {
        <section class="mt-6 max-w-2xl" aria-labelledby="privacy-heading">
            <h2 id="privacy-heading" class="text-lg font-semibold">
                "Privacy"
            </h2>
            <label class="mt-2 flex items-start gap-2 text-sm">
                <input
                    type="checkbox"
                    class="mt-0.5 h-4 w-4"
                    data-testid="read-receipts"
                    data-on=move || on().to_string()
                    // In the page as sent, and kept true to what is stored once the app runs.
                    checked=initial
                    prop:checked=on
                    on:change=toggle
                />
                <span>
                    "Read receipts"
                    <span class="block text-slate-600 dark:text-slate-400">
                        {format!(
                            "In direct messages and small conversations (up to {MAX_RECEIPT_READERS} people), others see how far you have read, and you see how far they have. Turned off, neither.",
                        )}
                    </span>
                </span>
            </label>
            <ErrorText message=error />
        </section>
    }
}

/// Registration invite codes, for the instance owner and admins.
#[component]
fn InvitePanel(create: ServerAction<CreateInvite>, invites: Resource<Result<Vec<Invite>, AppError>>) -> impl IntoView {
    let error = Signal::derive(move || create.value().get().and_then(Result::err));
    view! {
        <section
            class="mt-8 max-w-2xl rounded-2xl border border-slate-200 bg-white p-4 md:p-6 dark:border-slate-800 dark:bg-slate-900"
            aria-labelledby="invites-heading"
        >
            <h2 id="invites-heading" class="text-lg font-semibold">
                "Registration invites"
            </h2>
            <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">
                "People register with one of these codes (at /register?invite=CODE). Leave a field empty for no limit."
            </p>
            <ActionForm
                action=create
                attr:class="mt-4 grid grid-cols-1 gap-4 md:grid-cols-3 md:items-start"
                attr:id="invite-form"
            >
                <Field name="max_uses" label="Max uses" kind="number" required=false error />
                <Field name="expires_in_hours" label="Expires in (hours)" kind="number" required=false error />
                <div class="md:pt-6">
                    <button type="submit" class=BUTTON>
                        "Create invite"
                    </button>
                </div>
            </ActionForm>
            <ErrorBanner error />
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match invites.await {
                        Ok(list) if list.is_empty() => {
                            view! { <p class="mt-4 text-sm text-slate-600 dark:text-slate-400">"No invites yet."</p> }
                                .into_any()
                        }
                        Ok(list) => {
                            view! {
                                <ul
                                    class="mt-4 divide-y divide-slate-200 dark:divide-slate-800"
                                    data-testid="invite-list"
                                >
                                    {list
                                        .into_iter()
                                        .map(|i| {
                                            view! {
                                                <li class="flex flex-wrap items-center justify-between gap-2 py-2 text-sm">
                                                    <code class="font-mono" data-testid="invite-code">
                                                        {i.code}
                                                    </code>
                                                    <span class="text-slate-600 dark:text-slate-400">
                                                        {format!(
                                                            "{} used{}",
                                                            i.uses,
                                                            i.max_uses.map(|m| format!(" of {m}")).unwrap_or_default(),
                                                        )}
                                                        {i
                                                            .expires_at
                                                            .map(|e| {
                                                                format!(
                                                                    " · expires {}",
                                                                    e.get(..16).unwrap_or(&e).replace('T', " "),
                                                                )
                                                            })} {(!i.usable).then_some(" · no longer usable")}
                                                    </span>
                                                </li>
                                            }
                                        })
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <ErrorBanner error=Signal::stored(Some(e)) /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
