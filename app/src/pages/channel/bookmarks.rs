//! Bookmarks on a conversation's messages: which are bookmarked (and my note on each), read from
//! my notes channel once this browser has loaded it, and the form that keeps or changes one. Each
//! bookmark is a message of my own notes channel, encrypted for my devices only: the server can
//! tell neither which message I bookmarked nor what my note says.

use crate::chat::{BOOKMARK_EXCERPT, Bookmarked, Chat, act};
use crate::components::style::SMALL;
use crate::split::{lazy, split};
use leptos::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

/// My bookmarks by the message they name: (the bookmark's own id, my note).
#[derive(Clone, Copy)]
pub(super) struct BookmarkIndex(pub Memo<HashMap<Uuid, (Uuid, String)>>);

impl BookmarkIndex {
    /// Starts loading my bookmarks (once per tab, when encryption is ready).
    pub fn new(chat: Chat) -> Self {
        Effect::new(move |_| {
            if chat.device.with(|d| matches!(d, Some(Ok(_)))) {
                act::load_bookmarks();
            }
        });
        Self(Memo::new(move |_| {
            chat.bookmarks()
                .into_iter()
                .filter_map(|l| {
                    let b = l.bookmark?;
                    Some((b.message_id, (l.id, l.body.unwrap_or_default())))
                })
                .collect()
        }))
    }
}

/// Under a message: my note on it (kept, or being written), with save, remove and cancel. Its
/// code is fetched the first time one opens.
#[component]
pub(super) fn BookmarkForm(
    channel: Uuid,
    message: Uuid,
    author: Signal<String>,
    /// The message's text, whose first words the bookmark keeps.
    text: String,
    open: RwSignal<bool>,
) -> impl IntoView {
    lazy(&NOTE_FORM, "mt-1 block", move |form| {
        let props = NoteFormProps::builder().channel(channel).message(message).author(author);
        form(props.text(text.clone()).open(open).build())
    })
}

split!(
    /// The bookmark form's code, in a chunk of its own.
    NOTE_FORM in bookmark_form: fn(NoteFormProps) -> AnyView = |props| NoteForm(props).into_any();
);

#[component]
fn NoteForm(channel: Uuid, message: Uuid, author: Signal<String>, text: String, open: RwSignal<bool>) -> impl IntoView {
    let index = expect_context::<BookmarkIndex>();
    let existing = index.0.with_untracked(|m| m.get(&message).cloned());
    let note = RwSignal::new(existing.as_ref().map(|(_, n)| n.clone()).unwrap_or_default());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let excerpt = StoredValue::new(text.chars().take(BOOKMARK_EXCERPT).collect::<String>());
    let area = NodeRef::<leptos::html::Textarea>::new();
    Effect::new(move |_| {
        if let Some(a) = area.get() {
            let _ = a.focus();
        }
    });
    let save = move || {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        let target = Bookmarked {
            channel_id: channel,
            message_id: message,
            author: author.get_untracked(),
            excerpt: excerpt.get_value(),
        };
        let written = note.get_untracked();
        leptos::task::spawn_local(async move {
            match act::bookmark(target, written).await {
                Ok(()) => open.set(false),
                Err(e) => error.set(Some(format!("Not saved: {e}"))),
            }
            busy.set(false);
        });
    };
    let remove = existing.map(|(id, _)| {
        move || {
            leptos::task::spawn_local(async move {
                match act::unbookmark(id).await {
                    Ok(()) => open.set(false),
                    Err(e) => error.set(Some(format!("Not removed: {e}"))),
                }
            });
        }
    });
    view! {
        <form
            class="mt-1 space-y-1 rounded border border-slate-200 p-2 dark:border-slate-700"
            data-testid="bookmark-form"
            on:submit=move |ev| {
                ev.prevent_default();
                save();
            }
        >
            <label class="block text-xs text-slate-600 dark:text-slate-400" for=format!("note-{message}")>
                "Bookmark with a private note (only you can read it, on your devices)"
            </label>
            <textarea
                node_ref=area
                id=format!("note-{message}")
                rows="2"
                maxlength="2000"
                class="block w-full rounded border border-slate-300 bg-white p-2 text-sm dark:border-slate-700 dark:bg-slate-900"
                data-testid="bookmark-note"
                prop:value=move || note.get()
                on:input=move |ev| note.set(event_target_value(&ev))
                on:keydown=move |ev| {
                    if ev.key() == "Escape" {
                        ev.prevent_default();
                        open.set(false);
                    } else if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        save();
                    }
                }
            ></textarea>
            <div class="flex flex-wrap gap-2 text-xs">
                <button type="submit" class=SMALL data-testid="save-bookmark" disabled=move || busy.get()>
                    "Save bookmark"
                </button>
                {remove
                    .map(|remove| {
                        view! {
                            <button type="button" class=SMALL data-testid="remove-bookmark" on:click=move |_| remove()>
                                "Remove bookmark"
                            </button>
                        }
                    })}
                <button type="button" class=SMALL on:click=move |_| open.set(false)>
                    "Cancel"
                </button>
            </div>
            <crate::components::form::ErrorText message=error />
        </form>
    }
    .into_any()
}
