//! A thread beside its channel (the whole screen on a phone): the message that started it, its
//! replies (decrypted here, older ones loaded by scrolling up) and a composer that writes in it.
//! Replies are encrypted like any message of the channel, and name their thread inside the
//! ciphertext; the channel's timeline shows only how many there are and when the latest came.

use super::composer::Composer;
use super::message::{MessageRow, RowState};
use super::timeline::TimelineView;
use crate::chat::{Chat, act};
use crate::components::style::SMALL;
use crate::split::{lazy, split};
use leptos::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

/// The open thread of `channel`, if any.
#[component]
pub(super) fn ThreadPanel(channel: Uuid, names: Signal<HashMap<Uuid, String>>) -> impl IntoView {
    let chat = expect_context::<Chat>();
    // Another conversation opened: its threads are its own.
    on_cleanup(act::close_thread);
    move || {
        chat.thread.get().map(|root| {
            lazy(&THREAD_VIEW, "fixed inset-x-2 top-16 md:static md:w-[26rem]", move |thread| {
                thread(ThreadViewProps::builder().channel(channel).root(root).names(names).build())
            })
            .into_any()
        })
    }
}

split!(
    /// The thread panel's own code (the rows, timeline and composer are the channel's), in a
    /// chunk of its own.
    THREAD_VIEW in thread_view: fn(ThreadViewProps) -> AnyView = |props| ThreadView(props).into_any();
);

#[component]
fn ThreadView(channel: Uuid, root: Uuid, names: Signal<HashMap<Uuid, String>>) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let replying = RwSignal::new(None::<Uuid>);
    let follow = RwSignal::new(0u32);
    let first = Memo::new({
        let timeline = chat.timeline(channel);
        move |_| timeline.with(|t| t.find(root).cloned())
    });
    let gone = move || first.with(|l| l.as_ref().is_some_and(|l| l.deleted));
    let state = RowState::new(names, replying, chat.compact.into(), false, None);
    // The thread's composer takes the focus when it opens; closing gives it back to the channel's.
    let panel = NodeRef::<leptos::html::Aside>::new();
    Effect::new(move |_| {
        if panel.get().is_some() {
            request_animation_frame(|| {
                if let Some(el) = document().get_element_by_id("thread-composer")
                    && let Ok(el) = leptos::wasm_bindgen::JsCast::dyn_into::<leptos::web_sys::HtmlElement>(el)
                {
                    let _ = el.focus();
                }
            });
        }
    });
    let close = move || {
        act::close_thread();
        if let Some(el) = document().get_element_by_id("composer")
            && let Ok(el) = leptos::wasm_bindgen::JsCast::dyn_into::<leptos::web_sys::HtmlElement>(el)
        {
            let _ = el.focus();
        }
    };
    view! {
        <aside
            node_ref=panel
            id="thread-panel"
            aria-label="Thread"
            data-testid="thread-panel"
            class="fixed inset-0 z-30 flex flex-col bg-white dark:bg-slate-950 md:static md:z-auto md:w-[26rem] md:shrink-0 md:border-l md:border-slate-200 md:dark:border-slate-800"
            on:keydown=move |ev| {
                if ev.key() == "Escape" && !ev.default_prevented() {
                    close();
                }
            }
        >
            <header class="flex items-center justify-between gap-2 border-b border-slate-200 px-3 py-2 dark:border-slate-800">
                <h2 class="font-semibold">"Thread"</h2>
                <button
                    type="button"
                    class=SMALL
                    data-testid="close-thread"
                    aria-label="Close the thread"
                    on:click=move |_| close()
                >
                    "✕"
                </button>
            </header>
            <div
                class="max-h-[40%] shrink-0 overflow-y-auto border-b border-slate-200 py-2 dark:border-slate-800"
                data-testid="thread-root"
            >
                {move || match first.get() {
                    Some(line) if !line.deleted => view! { <MessageRow channel line grouped=false state /> }.into_any(),
                    Some(_) => {
                        view! {
                            <p class="px-3 text-sm italic text-slate-600 dark:text-slate-400">
                                "The message that started this thread was deleted, and its replies with it."
                            </p>
                        }
                            .into_any()
                    }
                    None => {
                        view! {
                            <p class="px-3 text-sm text-slate-600 dark:text-slate-400">
                                "Replies to an earlier message"
                            </p>
                        }
                            .into_any()
                    }
                }}
            </div>
            <TimelineView channel names replying since=None follow thread=root />
            {move || (!gone()).then(|| view! { <Composer channel names replying follow thread=root /> })}
        </aside>
    }
    .into_any()
}
