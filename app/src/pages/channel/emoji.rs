//! Emoji: the picker (search, recently used, the groups), for the composer and for reactions, and
//! the catalog behind it and behind `:shortcode:` completion. The catalog comes from the server
//! the first time either is used and is kept for the tab: its ~1,900 names and shortcodes would
//! otherwise weigh on every page's WASM.

use crate::api::emoji::load_emoji;
use crate::chat::{Chat, act};
use crate::model::emoji::{EmojiCatalog, EmojiInfo};
use crate::split::{lazy, split};
use leptos::prelude::*;
use std::sync::Arc;

/// The most results a search shows.
const SHOWN: usize = 64;

thread_local! {
    /// The catalog once loaded in this tab.
    static LOADED: std::cell::RefCell<Option<Arc<EmojiCatalog>>> = const { std::cell::RefCell::new(None) };
}

/// The catalog as the page knows it: `None` until asked for and loaded.
#[derive(Clone, Copy)]
pub(super) struct Emoji {
    pub catalog: RwSignal<Option<Result<Arc<EmojiCatalog>, String>>>,
    asked: StoredValue<bool>,
}

impl Emoji {
    pub fn new() -> Self {
        Self { catalog: RwSignal::new(LOADED.with(|l| l.borrow().clone()).map(Ok)), asked: StoredValue::new(false) }
    }

    /// Loads the catalog if it is not here yet (once; again after a failure when asked again).
    pub fn want(self) {
        if self.catalog.with_untracked(|c| matches!(c, Some(Ok(_)))) || self.asked.get_value() {
            return;
        }
        self.asked.set_value(true);
        leptos::task::spawn_local(async move {
            let got = load_emoji().await.map(Arc::new).map_err(|e| format!("Emoji could not be loaded: {e}"));
            if let Ok(c) = &got {
                LOADED.with(|l| *l.borrow_mut() = Some(c.clone()));
            }
            self.asked.set_value(false);
            self.catalog.set(Some(got));
        });
    }
}

/// The `:shortcode` being typed at the end of the draft (two characters at least), if any.
pub(super) fn shortcode_query(draft: &str) -> Option<&str> {
    let word = draft.rsplit(char::is_whitespace).next()?;
    let q = word.strip_prefix(':')?;
    (q.len() >= 2
        && q.len() <= 32
        && q.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '+' | '-')))
    .then_some(q)
}

/// The shortcode of `e` to show for a query: the first that starts with it, else its first.
pub(super) fn code_for<'a>(e: &'a EmojiInfo, query: &str) -> &'a str {
    e.shortcodes.iter().find(|s| s.starts_with(query)).or(e.shortcodes.first()).map_or(e.name.as_str(), String::as_str)
}

/// The picker: a search box (Enter takes the first result, Escape closes), then either the
/// results or the recently used emoji and one group at a time. `class` places it. Its code is
/// fetched the first time it opens.
#[component]
pub(super) fn EmojiPicker(
    on_pick: Callback<String>,
    on_close: Callback<()>,
    class: &'static str,
    #[prop(into)] label: String,
) -> impl IntoView {
    lazy(&PICKER, class, move |picker| {
        picker(PickerProps::builder().on_pick(on_pick).on_close(on_close).class(class).label(label.clone()).build())
    })
}

split!(
    /// The picker's code, in a chunk of its own.
    PICKER in emoji_picker: fn(PickerProps) -> AnyView = |props| Picker(props).into_any();
);

#[component]
fn Picker(
    on_pick: Callback<String>,
    on_close: Callback<()>,
    class: &'static str,
    #[prop(into)] label: String,
) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let emoji = expect_context::<Emoji>();
    emoji.want();
    let query = RwSignal::new(String::new());
    let group = RwSignal::new(0usize);
    let search = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(input) = search.get() {
            let _ = input.focus();
        }
    });
    let pick = move |e: String| {
        act::remember_emoji(&e);
        on_pick.run(e);
    };
    let results = Memo::new(move |_| {
        let q = query.get();
        emoji.catalog.with(|c| match c {
            Some(Ok(c)) if !q.trim().is_empty() => {
                c.search(&q, SHOWN).into_iter().map(|e| (e.emoji.clone(), e.name.clone())).collect::<Vec<_>>()
            }
            _ => vec![],
        })
    });
    let grid = move |list: Vec<(String, String)>| {
        view! {
            <div class="grid grid-cols-8 gap-0.5" role="group">
                {list
                    .into_iter()
                    .map(|(e, name)| {
                        let (chosen, shown) = (e.clone(), e.clone());
                        view! {
                            <button
                                type="button"
                                class="flex h-9 w-9 items-center justify-center rounded text-2xl hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 dark:hover:bg-slate-800"
                                aria-label=name.clone()
                                title=name
                                data-testid="emoji-option"
                                data-emoji=e.clone()
                                on:click=move |_| pick(chosen.clone())
                            >
                                {shown}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
        }
    };
    let body = move || {
        let q = query.get();
        match emoji.catalog.get() {
            None => view! { <p class="p-2 text-sm text-slate-600 dark:text-slate-400">"Loading emoji…"</p> }.into_any(),
            Some(Err(e)) => view! {
                <p role="alert" class="p-2 text-sm text-red-700 dark:text-red-300">
                    {e}
                </p>
            }
            .into_any(),
            Some(Ok(_)) if !q.trim().is_empty() => {
                let found = results.get();
                if found.is_empty() {
                    view! { <p class="p-2 text-sm text-slate-600 dark:text-slate-400">"No emoji match."</p> }.into_any()
                } else {
                    grid(found).into_any()
                }
            }
            Some(Ok(c)) => {
                let recent: Vec<(String, String)> = chat.recent_emoji.with(|r| {
                    r.iter()
                        .map(|e| {
                            (e.clone(), c.all().find(|i| i.emoji == *e).map_or_else(|| e.clone(), |i| i.name.clone()))
                        })
                        .collect()
                });
                let tabs: Vec<(usize, String, String)> = c
                    .groups
                    .iter()
                    .enumerate()
                    .map(|(i, g)| (i, g.name.clone(), g.emoji.first().map(|e| e.emoji.clone()).unwrap_or_default()))
                    .collect();
                let shown = group.get().min(c.groups.len().saturating_sub(1));
                let list: Vec<(String, String)> = c
                    .groups
                    .get(shown)
                    .map(|g| g.emoji.iter().map(|e| (e.emoji.clone(), e.name.clone())).collect())
                    .unwrap_or_default();
                let heading = c.groups.get(shown).map(|g| g.name.clone()).unwrap_or_default();
                view! {
                    {(!recent.is_empty())
                        .then(|| {
                            view! {
                                <p class="px-1 pt-1 text-xs font-semibold text-slate-600 dark:text-slate-400">
                                    "Recently used"
                                </p>
                                <div data-testid="emoji-recent">{grid(recent)}</div>
                            }
                        })}
                    <div
                        class="mt-1 flex flex-wrap gap-0.5 border-b border-slate-200 pb-1 dark:border-slate-700"
                        role="tablist"
                        aria-label="Groups"
                    >
                        {tabs
                            .into_iter()
                            .map(|(i, name, first)| {
                                view! {
                                    <button
                                        type="button"
                                        role="tab"
                                        class="rounded px-1 text-lg hover:bg-slate-100 aria-selected:bg-indigo-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 dark:hover:bg-slate-800 dark:aria-selected:bg-indigo-900"
                                        aria-selected=(i == shown).to_string()
                                        aria-label=name.clone()
                                        title=name
                                        data-testid="emoji-group"
                                        on:click=move |_| group.set(i)
                                    >
                                        {first}
                                    </button>
                                }
                            })
                            .collect_view()}
                    </div>
                    <p class="px-1 pt-1 text-xs font-semibold text-slate-600 dark:text-slate-400">{heading}</p>
                    <div data-testid="emoji-group-list">{grid(list)}</div>
                }
                    .into_any()
            }
        }
    };
    view! {
        // A click outside closes it.
        <div
            class="fixed inset-0 z-30"
            aria-hidden="true"
            on:click=move |ev| {
                ev.stop_propagation();
                on_close.run(());
            }
        ></div>
        <div
            role="dialog"
            aria-label=label
            class=format!(
                "{class} z-40 flex max-h-[22rem] w-80 max-w-[calc(100vw-1rem)] flex-col rounded-lg border border-slate-200 bg-white p-2 shadow-lg dark:border-slate-700 dark:bg-slate-900",
            )
            data-testid="emoji-picker"
            // Its clicks are its own (a message row would take them for a tap on the message).
            on:click=|ev| ev.stop_propagation()
            on:keydown=move |ev| {
                if ev.key() == "Escape" {
                    ev.prevent_default();
                    ev.stop_propagation();
                    on_close.run(());
                }
            }
        >
            <input
                node_ref=search
                type="search"
                class="mb-1 block w-full rounded-md border border-slate-300 bg-white px-2 py-1 text-sm focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500 dark:border-slate-700 dark:bg-slate-950"
                placeholder="Search emoji"
                aria-label="Search emoji"
                data-testid="emoji-search"
                prop:value=move || query.get()
                on:input=move |ev| query.set(event_target_value(&ev))
                on:keydown=move |ev| {
                    if ev.key() == "Enter" {
                        ev.prevent_default();
                        if let Some((e, _)) = results.get_untracked().into_iter().next() {
                            pick(e);
                        }
                    }
                }
            />
            <div class="min-h-0 flex-1 overflow-y-auto">{body}</div>
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortcode_is_the_last_word_after_a_colon() {
        assert_eq!(shortcode_query("hi :ta"), Some("ta"));
        assert_eq!(shortcode_query(":+1"), Some("+1"));
        assert_eq!(shortcode_query("hi :t"), None, "two characters at least");
        assert_eq!(shortcode_query("time 10:30"), None, "not a word's start");
        assert_eq!(shortcode_query("hi :tada "), None, "a space ends it");
        assert_eq!(shortcode_query("hi :Tada"), None, "shortcodes are lower case");
        let tada = EmojiInfo { emoji: "🎉".into(), name: "party popper".into(), shortcodes: vec!["tada".into()] };
        assert_eq!(code_for(&tada, "ta"), "tada");
        assert_eq!(code_for(&tada, "party"), "tada");
    }
}
