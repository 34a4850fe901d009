//! One message: its author and time, its text (or why it cannot be read), its lock, reply, edit
//! and delete.

use super::timeline::name_of;
use crate::chat::{Chat, Line, Lock, Unreadable, act, day_and_time, sent_before};
use crate::components::style::SMALL;
use leptos::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

pub(super) fn lock_badge(lock: Lock) -> (&'static str, &'static str) {
    match lock {
        Lock::Verified => ("🔒✓", "End-to-end encrypted, from a verified device"),
        Lock::Encrypted => ("🔒", "End-to-end encrypted (the sender's device is not verified)"),
        Lock::Failed => ("⚠", "Cannot be read"),
        Lock::Sending => ("…", "Sending"),
    }
}

/// Why a message cannot be read and what will fix it, in plain words.
pub(super) fn unreadable_text(
    why: &Unreadable,
    author: String,
    created_at: &str,
    device_since: Option<&str>,
) -> String {
    match why {
        Unreadable::Refused(reason) => format!("Not shown: {reason}."),
        _ if sent_before(created_at, device_since) => "Sent before this browser was set up: its key comes from your \
                                                         other signed-in device or from your key backup."
            .to_owned(),
        Unreadable::Missing | Unreadable::Earlier => {
            format!("Waiting for {author}'s device to share the key: it will arrive when that device comes online.")
        }
    }
}

#[component]
pub(super) fn MessageRow(
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
                        .unwrap_or_else(|_| "(cannot be read)".into())
                ),
                None => "↪ an earlier message".to_owned(),
            }
        }
    });
    let (body, deleted) = (line.body.clone(), line.deleted);
    let created_at = line.created_at.clone();
    let device_since = chat.device.with_untracked(|d| d.clone().and_then(Result::ok).and_then(|d| d.created_at));
    let body_view = move || match (body.clone(), deleted) {
        (_, true) => view! {
            <p class="italic text-slate-500" data-testid="message-body">
                "Message deleted"
            </p>
        }
        .into_any(),
        (Ok(text), false) => view! {
            <p class="whitespace-pre-wrap break-words" data-testid="message-body">
                {text}
            </p>
        }
        .into_any(),
        (Err(why), false) => {
            let refused = !why.awaits_key();
            let (created_at, device_since) = (created_at.clone(), device_since.clone());
            let text =
                move || unreadable_text(&why, names.with(|n| name_of(n, sender)), &created_at, device_since.as_deref());
            view! {
                <p
                    class=if refused {
                        "break-words italic text-red-700 dark:text-red-300"
                    } else {
                        "break-words italic text-slate-500 dark:text-slate-400"
                    }
                    data-testid="message-body"
                    data-unreadable=if refused { "refused" } else { "waiting" }
                >
                    {text}
                </p>
            }
            .into_any()
        }
    };
    // A message on its way has no id at the server yet: nothing to reply to, edit or delete.
    let can_act = !line.deleted && line.body.is_ok() && line.lock != Lock::Sending;
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
            class=if grouped {
                "group rounded px-2 py-0.5 hover:bg-slate-100 dark:hover:bg-slate-900"
            } else {
                "group mt-2 rounded px-2 py-0.5 hover:bg-slate-100 dark:hover:bg-slate-900"
            }
            data-testid="message"
            data-id=id.to_string()
            data-seq=line.seq.to_string()
            data-lock=format!("{:?}", line.lock).to_lowercase()
        >
            {(!grouped)
                .then(|| {
                    view! {
                        <header class="flex items-baseline gap-2">
                            <span class="font-semibold" data-testid="author">
                                {move || names.with(|n| name_of(n, sender))}
                            </span>
                            <time class="text-xs text-slate-500" datetime=line.created_at.clone()>
                                {time.clone()}
                            </time>
                        </header>
                    }
                })}
            {quoted
                .map(|q| {
                    view! {
                        <p
                            class="truncate border-l-2 border-slate-300 pl-2 text-xs text-slate-500 dark:border-slate-700"
                            data-testid="reply-quote"
                        >
                            {q}
                        </p>
                    }
                })}
            <div class="flex items-start gap-2">
                <span class="mt-0.5 shrink-0 text-xs" title=lock_title aria-label=lock_title data-testid="lock">
                    {icon}
                </span>
                <div class="min-w-0 flex-1">
                    {move || {
                        if editing.get() == Some(id) {
                            view! {
                                <form
                                    class="space-y-1"
                                    on:submit=move |ev| {
                                        ev.prevent_default();
                                        save();
                                    }
                                >
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
                                        <button type="submit" class=SMALL data-testid="save-edit">
                                            "Save"
                                        </button>
                                        <button type="button" class=SMALL on:click=move |_| editing.set(None)>
                                            "Cancel"
                                        </button>
                                        <span class="text-slate-500">"Enter saves · Esc cancels"</span>
                                    </div>
                                    {move || {
                                        edit_error
                                            .get()
                                            .map(|e| {
                                                view! {
                                                    <p role="alert" class="text-xs text-red-700">
                                                        {e}
                                                    </p>
                                                }
                                            })
                                    }}
                                </form>
                            }
                                .into_any()
                        } else {
                            view! {
                                <div>
                                    {body_view.clone()()}
                                    {line
                                        .edited
                                        .then(|| {
                                            view! {
                                                <span class="text-xs text-slate-500" data-testid="edited">
                                                    " (edited)"
                                                </span>
                                            }
                                        })}
                                </div>
                            }
                                .into_any()
                        }
                    }}
                </div>
                {grouped
                    .then(|| {
                        view! {
                            <time
                                class="hidden shrink-0 text-xs text-slate-400 group-hover:inline"
                                datetime=line.created_at.clone()
                            >
                                {time.clone()}
                            </time>
                        }
                    })}
            </div>
            {can_act
                .then(|| {
                    view! {
                        <div class="flex gap-1 pl-6" data-testid="message-actions">
                            <button
                                type="button"
                                class=SMALL
                                data-testid="reply"
                                on:click=move |_| replying.set(Some(id))
                            >
                                "Reply"
                            </button>
                            {mine
                                .then(|| {
                                    view! {
                                        <button
                                            type="button"
                                            class=SMALL
                                            data-testid="edit"
                                            on:click=move |_| editing.set(Some(id))
                                        >
                                            "Edit"
                                        </button>
                                        {move || {
                                            if confirming.get() == Some(id) {
                                                view! {
                                                    <span class="text-xs">"Delete for everyone?"</span>
                                                    <button
                                                        type="button"
                                                        class=SMALL
                                                        data-testid="confirm-delete"
                                                        on:click=move |_| {
                                                            confirming.set(None);
                                                            leptos::task::spawn_local(async move {
                                                                if let Err(e) = act::delete(channel, id).await {
                                                                    edit_error.set(Some(e.to_string()));
                                                                }
                                                            });
                                                        }
                                                    >
                                                        "Delete"
                                                    </button>
                                                    <button
                                                        type="button"
                                                        class=SMALL
                                                        on:click=move |_| confirming.set(None)
                                                    >
                                                        "Keep"
                                                    </button>
                                                }
                                                    .into_any()
                                            } else {
                                                view! {
                                                    <button
                                                        type="button"
                                                        class=SMALL
                                                        data-testid="delete"
                                                        on:click=move |_| confirming.set(Some(id))
                                                    >
                                                        "Delete"
                                                    </button>
                                                }
                                                    .into_any()
                                            }
                                        }}
                                    }
                                })}
                        </div>
                    }
                })}
        </article>
    }
    .into_any()
}
