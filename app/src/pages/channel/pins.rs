//! Pinned messages: the list beside the timeline (full screen on a phone), each with its author,
//! text and a "Jump" to it in the timeline, and the pin state the message rows read. Moderators
//! and above pin in a community's channels, anyone in a DM. The list is decrypted here; the
//! server knows only which messages are pinned.

use super::{message::unreadable_text, rich, timeline::name_of};
use crate::chat::{Chat, PinnedLine, act};
use crate::components::style::SMALL;
use crate::dates::full_time;
use crate::markdown;
use leptos::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

/// A channel's pins as its page knows them, shared by the panel and the message rows.
#[derive(Clone, Copy)]
pub(super) struct PinState {
    pub channel: Uuid,
    /// Whether this person may pin and unpin here (their role may change while the page is open).
    pub can_pin: Signal<bool>,
    /// The pinned messages (opened), the latest pinned first; `None` until loaded.
    pub list: RwSignal<Option<Result<Vec<PinnedLine>, String>>>,
    pub open: RwSignal<bool>,
    /// What went wrong with the last pin, unpin or jump.
    pub error: RwSignal<Option<String>>,
    chat: Chat,
}

impl PinState {
    /// The state of `channel`, loaded once encryption is ready and again whenever its pins change.
    pub fn load(channel: Uuid, can_pin: Signal<bool>) -> Self {
        let chat = expect_context::<Chat>();
        let state = Self {
            channel,
            can_pin,
            list: RwSignal::new(None),
            open: RwSignal::new(false),
            error: RwSignal::new(None),
            chat,
        };
        let version = Memo::new(move |_| chat.pins_changed.with(|m| m.get(&channel).copied().unwrap_or(0)));
        Effect::new(move |_| {
            let wanted = version.get();
            if !chat.device.with(|d| matches!(d, Some(Ok(_)))) {
                return;
            }
            leptos::task::spawn_local(async move {
                let got = act::pins(channel).await.map_err(|e| e.to_string());
                // A newer change started a newer load: this answer is stale.
                if version.get_untracked() == wanted {
                    state.list.set(Some(got));
                }
            });
        });
        state
    }

    pub fn is_pinned(self, id: Uuid) -> bool {
        self.list.with(|l| matches!(l, Some(Ok(pins)) if pins.iter().any(|p| p.line.id == id)))
    }

    fn count(self) -> usize {
        self.list.with(|l| l.as_ref().and_then(|r| r.as_ref().ok()).map_or(0, Vec::len))
    }

    /// Pins or unpins a message; the list reloads (the gateway also tells the other readers).
    pub fn set(self, id: Uuid, pinned: bool) {
        leptos::task::spawn_local(async move {
            match act::set_pinned(id, pinned).await {
                Ok(()) => {
                    self.error.set(None);
                    self.chat.pins_changed.update(|m| *m.entry(self.channel).or_default() += 1);
                }
                Err(e) => self.error.set(Some(e.to_string())),
            }
        });
    }
}

/// Shows a message of the timeline (loading older pages if needed) and marks it for a moment.
fn jump(state: PinState, id: Uuid) {
    leptos::task::spawn_local(async move {
        if !act::reveal(state.channel, id).await {
            state.error.set(Some("That message is too far back to show here.".to_owned()));
            return;
        }
        // On a phone the list covers the timeline: out of the way.
        if window().inner_width().ok().and_then(|w| w.as_f64()).is_some_and(|w| w < 768.0) {
            state.open.set(false);
        }
        flash(id);
    });
}

/// Brings a message that is in the timeline into view and marks it for a moment.
pub(super) fn flash(id: Uuid) {
    {
        // After the timeline has laid out the pages just loaded (and, following the newest
        // message, scrolled to the bottom): the scroll moves it off the bottom, so it stays.
        set_timeout(
            move || {
                let css = format!("[data-testid=message][data-id='{id}']");
                let Some(el) = document().query_selector(&css).ok().flatten() else { return };
                el.scroll_into_view();
                let _ = el.set_attribute("data-flash", "");
                set_timeout(move || drop(el.remove_attribute("data-flash")), std::time::Duration::from_millis(2000));
            },
            std::time::Duration::from_millis(150),
        );
    }
}

/// The header's button that opens the list, with the number of pins.
#[component]
pub(super) fn PinsButton(state: PinState) -> impl IntoView {
    view! {
        <button
            type="button"
            class=SMALL
            data-testid="pins-button"
            aria-controls="pin-panel"
            aria-expanded=move || state.open.get().to_string()
            on:click=move |_| state.open.update(|o| *o = !*o)
        >
            {move || match state.count() {
                0 => "Pins".to_owned(),
                n => format!("Pins ({n})"),
            }}
        </button>
    }
}

#[component]
pub(super) fn PinPanel(state: PinState, names: Signal<HashMap<Uuid, String>>) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let timeline = chat.timeline(state.channel);
    let row = move |pin: PinnedLine| {
        let id = pin.line.id;
        // The timeline's copy is newer when the message was edited since the list loaded.
        let line = timeline.with_untracked(|t| t.find(id).cloned()).unwrap_or(pin.line);
        let author = names.with(|n| name_of(n, line.sender));
        let pinned_by = names.with(|n| name_of(n, pin.pinned_by));
        let text = match line.body {
            Ok(text) => {
                view! { <div class="whitespace-pre-wrap break-words">{rich::blocks(markdown::parse(&text))}</div> }
                    .into_any()
            }
            Err(why) => view! {
                <p class="italic text-slate-600 dark:text-slate-400">
                    {unreadable_text(&why, author.clone(), &line.created_at, None)}
                </p>
            }
            .into_any(),
        };
        view! {
            <li class="border-b border-slate-200 py-2 dark:border-slate-800" data-testid="pin" data-id=id.to_string()>
                <p class="flex items-baseline justify-between gap-2 text-xs text-slate-600 dark:text-slate-400">
                    <span class="truncate font-semibold text-slate-900 dark:text-slate-100">{author}</span>
                    <time datetime=line.created_at.clone()>{full_time(&line.created_at)}</time>
                </p>
                {text}
                <p class="mt-1 flex items-center justify-between gap-2 text-xs text-slate-600 dark:text-slate-400">
                    <span class="truncate">{format!("Pinned by {pinned_by}")}</span>
                    <span class="flex shrink-0 gap-1">
                        <button type="button" class=SMALL data-testid="jump-to-pin" on:click=move |_| jump(state, id)>
                            "Jump"
                        </button>
                        {move || {
                            state
                                .can_pin
                                .get()
                                .then(|| {
                                    view! {
                                        <button
                                            type="button"
                                            class=SMALL
                                            data-testid="unpin"
                                            on:click=move |_| state.set(id, false)
                                        >
                                            "Unpin"
                                        </button>
                                    }
                                })
                        }}
                    </span>
                </p>
            </li>
        }
    };
    view! {
        <aside
            id="pin-panel"
            aria-label="Pinned messages"
            class=move || {
                format!(
                    "{} w-full shrink-0 flex-col overflow-y-auto border-l border-slate-200 bg-white p-3 text-sm md:static md:w-80 dark:border-slate-800 dark:bg-slate-900 absolute inset-0 z-10",
                    if state.open.get() { "flex" } else { "hidden" },
                )
            }
            data-testid="pin-panel"
        >
            <div class="flex items-center justify-between">
                <h2 class="font-semibold">"Pinned messages"</h2>
                <button type="button" class=SMALL data-testid="close-pins" on:click=move |_| state.open.set(false)>
                    "Close"
                </button>
            </div>
            {move || {
                state
                    .error
                    .get()
                    .map(|e| {
                        view! {
                            <p role="alert" class="mt-2 text-red-700 dark:text-red-300" data-testid="pin-error">
                                {e}
                            </p>
                        }
                    })
            }}
            {move || match state.list.get() {
                None => view! { <p class="mt-2 text-slate-600 dark:text-slate-400">"Loading…"</p> }.into_any(),
                Some(Err(e)) => {
                    view! {
                        <p role="alert" class="mt-2 text-red-700 dark:text-red-300">
                            {format!("Pins cannot be shown: {e}")}
                        </p>
                    }
                        .into_any()
                }
                Some(Ok(list)) if list.is_empty() => {
                    view! {
                        <p class="mt-2 text-slate-600 dark:text-slate-400" data-testid="no-pins">
                            {if state.can_pin.get() {
                                "Nothing is pinned yet. Pin a message from its actions to keep it here for everyone."
                            } else {
                                "Nothing is pinned yet. Moderators pin messages worth keeping at hand."
                            }}
                        </p>
                    }
                        .into_any()
                }
                Some(Ok(list)) => view! { <ul class="mt-1">{list.into_iter().map(&row).collect_view()}</ul> }.into_any(),
            }}
        </aside>
    }
    .into_any()
}
