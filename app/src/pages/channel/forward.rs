//! Forwarding a message to another conversation: a dialog listing the conversations I am in
//! (filtered as I type); the text is encrypted again there, like a new message, and marked as
//! forwarded inside the ciphertext. The server sees a new message, never where it came from.

use crate::chat::act;
use crate::components::{sidebar::direct_label, style::SMALL};
use crate::pages::signed_in::ShellData;
use crate::split::{lazy, split};
use leptos::prelude::*;
use uuid::Uuid;

/// The message being forwarded: its text and its author's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Forwarding {
    pub body: String,
    pub author: String,
}

/// The dialog's state, shared with the message rows (whose "Forward" opens it).
#[derive(Clone, Copy)]
pub(super) struct ForwardState {
    pub open: RwSignal<Option<Forwarding>>,
    /// What the last forward did, said for a moment.
    pub note: RwSignal<Option<String>>,
}

impl ForwardState {
    pub fn new() -> Self {
        Self { open: RwSignal::new(None), note: RwSignal::new(None) }
    }
}

/// Every conversation I am in but `here`: (id, how the list names it).
fn targets(data: ShellData, here: Uuid) -> Vec<(Uuid, String)> {
    let me = data.me.get_value().id;
    data.spaces_now.with(|s| {
        let Some(s) = s else { return vec![] };
        let communities = s.communities.iter().flat_map(|c| {
            c.groups
                .iter()
                .flat_map(move |g| g.channels.iter().map(move |ch| (ch.id, format!("{} › # {}", c.name, ch.name))))
        });
        let direct = s.direct.iter().map(|ch| (ch.id, direct_label(ch, me)));
        communities.chain(direct).filter(|(id, _)| *id != here).collect()
    })
}

/// The dialog while a message is being forwarded (its code is fetched the first time it opens),
/// and what the last forward did.
#[component]
pub(super) fn ForwardDialog(here: Uuid, state: ForwardState) -> impl IntoView {
    let dialog = move || {
        state.open.with(Option::is_some).then(|| {
            lazy(&CHOOSER, "fixed inset-x-4 top-16 mx-auto max-w-md", move |chooser| {
                chooser(ChooserProps::builder().here(here).state(state).build())
            })
        })
    };
    view! {
        {dialog}
        {move || {
            state
                .note
                .get()
                .map(|note| {
                    view! {
                        <p
                            role="status"
                            class="px-4 py-1 text-sm text-emerald-800 dark:text-emerald-300"
                            data-testid="forward-note"
                        >
                            {note}
                        </p>
                    }
                })
        }}
    }
}

split!(
    /// The forward dialog's code, in a chunk of its own.
    CHOOSER in forward_dialog: fn(ChooserProps) -> AnyView = |props| Chooser(props).into_any();
);

#[component]
fn Chooser(here: Uuid, state: ForwardState) -> impl IntoView {
    let data = expect_context::<ShellData>();
    let filter = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let sending = RwSignal::new(false);
    let send = move |target: Uuid, name: String| {
        let Some(message) = state.open.get_untracked() else { return };
        sending.set(true);
        leptos::task::spawn_local(async move {
            match act::forward(target, message.body, message.author).await {
                Ok(()) => {
                    state.open.set(None);
                    filter.set(String::new());
                    error.set(None);
                    state.note.set(Some(format!("Forwarded to {name}.")));
                    set_timeout(move || state.note.set(None), std::time::Duration::from_secs(4));
                }
                Err(e) => error.set(Some(format!("Not forwarded: {e}"))),
            }
            sending.set(false);
        });
    };
    let input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if state.open.with(Option::is_some)
            && let Some(i) = input.get()
        {
            let _ = i.focus();
        }
    });
    let dialog = move || {
        state.open.with(Option::is_some).then(|| {
            let list = move || {
                let wanted = filter.get().to_lowercase();
                let found: Vec<(Uuid, String)> =
                    targets(data, here).into_iter().filter(|(_, name)| name.to_lowercase().contains(&wanted)).collect();
                if found.is_empty() {
                    return view! { <p class="py-2 text-sm text-slate-600 dark:text-slate-400">"No conversation matches."</p> }
                        .into_any();
                }
                view! {
                    <ul class="max-h-72 overflow-y-auto">
                        {found
                            .into_iter()
                            .map(|(id, name)| {
                                let label = name.clone();
                                view! {
                                    <li>
                                        <button
                                            type="button"
                                            class="w-full truncate rounded px-2 py-1 text-left text-sm hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 disabled:opacity-60 dark:hover:bg-slate-800"
                                            data-testid="forward-target"
                                            disabled=move || sending.get()
                                            on:click=move |_| send(id, name.clone())
                                        >
                                            {label}
                                        </button>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                }
                .into_any()
            };
            view! {
                <div
                    class="fixed inset-0 z-30 flex items-start justify-center bg-slate-900/50 p-4 pt-16"
                    on:click=move |_| state.open.set(None)
                >
                    <div
                        role="dialog"
                        aria-modal="true"
                        aria-labelledby="forward-title"
                        class="w-full max-w-md rounded-lg bg-white p-4 shadow-lg dark:bg-slate-900"
                        data-testid="forward-dialog"
                        on:click=|ev| ev.stop_propagation()
                        on:keydown=move |ev| {
                            if ev.key() == "Escape" {
                                state.open.set(None);
                            }
                        }
                    >
                        <div class="flex items-center justify-between">
                            <h2 id="forward-title" class="font-semibold">
                                "Forward to…"
                            </h2>
                            <button type="button" class=SMALL on:click=move |_| state.open.set(None)>
                                "Cancel"
                            </button>
                        </div>
                        <input
                            type="search"
                            node_ref=input
                            class="mt-2 w-full rounded-md border border-slate-300 bg-white px-2 py-1 text-sm focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500 dark:border-slate-700 dark:bg-slate-950"
                            placeholder="Find a conversation"
                            aria-label="Find a conversation"
                            data-testid="forward-filter"
                            prop:value=move || filter.get()
                            on:input=move |ev| filter.set(event_target_value(&ev))
                        />
                        <div class="mt-2">{list}</div>
                        {move || {
                            error
                                .get()
                                .map(|e| {
                                    view! {
                                        <p role="alert" class="mt-2 text-sm text-red-700 dark:text-red-300">
                                            {e}
                                        </p>
                                    }
                                })
                        }}
                    </div>
                </div>
            }
        })
    };
    dialog.into_any()
}
