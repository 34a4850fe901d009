//! The key backup panel on the start page: turn it on (the recovery key is shown once), restore
//! history in this browser with the recovery key (with progress), get a new recovery key, or turn
//! the backup off. Also the way out for a device the server re-keyed: start a new one.

use crate::{
    chat::{Backup, Chat, REKEYED, act},
    components::{
        form::{ErrorText, INPUT},
        style::{PRIMARY, SMALL},
    },
};
use leptos::prelude::*;

#[component]
pub fn KeyBackupPanel() -> impl IntoView {
    let chat = expect_context::<Chat>();
    let shown_key = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let confirm_off = RwSignal::new(false);
    let typed = RwSignal::new(String::new());
    // Runs one operation: the buttons wait, and the outcome's message (or none) is shown.
    let run = move |op: std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>>>>| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            error.set(op.await);
            busy.set(false);
        });
    };
    let turn_on = move || {
        run(Box::pin(async move {
            let key = match act::turn_on_backup().await {
                Ok(key) => key,
                Err(e) => return Some(e.to_string()),
            };
            shown_key.set(Some(key));
            None
        }))
    };
    let restore = move || {
        let key = typed.get_untracked();
        if key.trim().is_empty() {
            error.set(Some("Enter your recovery key.".into()));
            return;
        }
        run(Box::pin(async move {
            let damaged = match act::restore_backup(key).await {
                Ok(damaged) => damaged,
                Err(e) => return Some(e.to_string()),
            };
            typed.set(String::new());
            // Damaged or altered entries were skipped; everything else was restored.
            (damaged > 0).then(|| {
                format!("{damaged} keys in the backup were damaged or altered and were skipped; the rest are restored.")
            })
        }))
    };
    let turn_off = move || {
        run(Box::pin(async move {
            let outcome = act::turn_off_backup().await.err().map(|e| e.to_string());
            confirm_off.set(false);
            outcome
        }))
    };
    let state = move || {
        match chat.backup.get() {
        Backup::Unknown => view! {
            <p class="text-sm text-slate-600 dark:text-slate-400">
                "Key backup is checked once encryption has started in this browser."
            </p>
        }
        .into_any(),
        Backup::Off => view! {
            <p class="text-sm">
                "Key backup is off. Turn it on so that a browser you sign in on later can read your earlier messages."
            </p>
            <button
                type="button"
                class=PRIMARY
                data-testid="backup-on"
                disabled=move || busy.get()
                on:click=move |_| turn_on()
            >
                "Turn on key backup"
            </button>
        }
        .into_any(),
        Backup::Locked { keys } => view! {
            <p class="text-sm">
                {format!(
                    "Your key backup holds {keys} keys, but this browser cannot open it yet. Enter your recovery key to read your earlier messages here.",
                )}
            </p>
            <form
                class="flex flex-wrap items-end gap-2"
                data-testid="restore-form"
                on:submit=move |ev| {
                    ev.prevent_default();
                    restore();
                }
            >
                <label class="min-w-0 flex-1">
                    <span class="block text-sm font-medium">"Recovery key"</span>
                    <input
                        class=INPUT
                        name="recovery_key"
                        autocomplete="off"
                        spellcheck="false"
                        autocapitalize="characters"
                        data-testid="recovery-key-input"
                        prop:value=move || typed.get()
                        on:input=move |ev| typed.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit" class=PRIMARY disabled=move || busy.get() data-testid="restore">
                    "Restore history"
                </button>
            </form>
        }
        .into_any(),
        Backup::On { keys } => view! {
            <p class="text-sm" data-testid="backup-on-status">
                {format!(
                    "Key backup is on: {keys} keys are backed up, sealed so that only your recovery key opens them.",
                )}
            </p>
            <div class="flex flex-wrap gap-2">
                <button
                    type="button"
                    class=SMALL
                    data-testid="backup-new-key"
                    disabled=move || busy.get()
                    on:click=move |_| turn_on()
                >
                    "New recovery key"
                </button>
                <button
                    type="button"
                    class=SMALL
                    data-testid="backup-off"
                    disabled=move || busy.get()
                    on:click=move |_| confirm_off.set(true)
                >
                    "Turn off"
                </button>
            </div>
            {move || {
                confirm_off
                    .get()
                    .then(|| {
                        view! {
                            <div role="alertdialog" aria-label="Turn off key backup" class="mt-2 space-y-2 text-sm">
                                <p>
                                    "Turn key backup off? The server forgets the backed-up keys; a browser you sign in on later reads earlier messages only if another of your devices shares them."
                                </p>
                                <button
                                    type="button"
                                    class=SMALL
                                    data-testid="backup-off-confirm"
                                    on:click=move |_| turn_off()
                                >
                                    "Turn off key backup"
                                </button>
                                <button type="button" class=SMALL on:click=move |_| confirm_off.set(false)>
                                    "Keep it"
                                </button>
                            </div>
                        }
                    })
            }}
        }
        .into_any(),
        Backup::Restoring { done, total } => view! {
            <label class="block text-sm" data-testid="backup-progress">
                {format!("Restoring keys: {done} of {total}")}
                <progress class="mt-1 block w-full" max=total.max(1).to_string() value=done.to_string()></progress>
            </label>
        }
        .into_any(),
    }
    };
    view! {
        <section
            class="mt-8 max-w-2xl space-y-3 rounded-2xl border border-slate-200 bg-white p-4 md:p-6 dark:border-slate-800 dark:bg-slate-900"
            aria-labelledby="backup-heading"
            data-testid="key-backup"
        >
            <h2 id="backup-heading" class="text-lg font-semibold">
                "Key backup"
            </h2>
            {state}
            {move || {
                shown_key
                    .get()
                    .map(|key| {
                        view! {
                            <div role="status" class="space-y-2 rounded-lg bg-amber-50 p-3 text-sm dark:bg-amber-950">
                                <p class="font-medium">"Your recovery key (shown only this once):"</p>
                                <code class="block break-words font-mono text-base" data-testid="recovery-key">
                                    {key}
                                </code>
                                <p>
                                    "Write it down or keep it in a password manager. A browser you sign in on later needs it to read your earlier messages; nobody, not even the server's owner, can recover it for you."
                                </p>
                                <button
                                    type="button"
                                    class=SMALL
                                    data-testid="recovery-key-saved"
                                    on:click=move |_| shown_key.set(None)
                                >
                                    "I have saved it"
                                </button>
                            </div>
                        }
                    })
            }}
            <ErrorText message=error testid="backup-error" />
        </section>
    }
}

/// Shown when the server lists other keys for this browser's device (it may have been tampered
/// with): the way out is a new device for this browser, keeping its history.
#[component]
pub fn StartNewDevice() -> impl IntoView {
    let chat = expect_context::<Chat>();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let rekeyed = move || chat.device.with(|d| matches!(d, Some(Err(e)) if e == REKEYED));
    move || {
        rekeyed().then(|| {
            view! {
                <div class="mt-2 space-y-2 text-sm" data-testid="new-device-offer">
                    <p>
                        "You can start a new device in this browser: it gets new keys and a new name, the old one is removed from your account, and your contacts' apps see the change. Your history stays readable here."
                    </p>
                    <button
                        type="button"
                        class=PRIMARY
                        data-testid="start-new-device"
                        disabled=move || busy.get()
                        on:click=move |_| {
                            busy.set(true);
                            leptos::task::spawn_local(async move {
                                if let Err(e) = act::start_new_device().await {
                                    error.set(Some(e.to_string()));
                                    busy.set(false);
                                }
                            });
                        }
                    >
                        "Start a new device"
                    </button>
                    {move || error.get().map(|e| view! { <p role="alert">{e}</p> })}
                </div>
            }
        })
    }
}
