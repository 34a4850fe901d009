//! A message's Markdown as DOM nodes. Built from the parsed tree with `view!`, so every character
//! a sender typed reaches the page as a text node: no HTML string is ever parsed, and no sanitizer
//! is needed. Links open in a new tab without a referrer or an opener; nothing is fetched for them.

use crate::chat::{Call, call_in};
use crate::markdown::{
    Block, EVERYONE, Inline,
    highlight::{Class, highlight},
};
use crate::model::spaces::CommunityRole;
use leptos::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

/// Who the `@mentions` of one conversation name: its members by username, and me.
#[derive(Clone, Copy)]
pub(super) struct MentionNames {
    /// Username (lowercased) → (id, display name, role).
    pub people: Signal<HashMap<String, (Uuid, String, CommunityRole)>>,
    /// My username, lowercased.
    pub me: StoredValue<String>,
    /// A DM or group DM, where anyone may call everyone.
    pub direct: Signal<bool>,
}

impl MentionNames {
    /// Whether `sender` may call everyone's attention (`@here`, `@everyone`): anyone in a DM or
    /// group DM, moderators and above in a community. Checked by every reader's client: the
    /// server cannot read the message to check it.
    pub fn may_call_everyone(self, sender: Uuid) -> bool {
        self.direct.get()
            || self.people.with(|p| p.values().any(|(id, _, role)| *id == sender && *role >= CommunityRole::Moderator))
    }

    /// Whether `text` from `sender` mentions me: by name, or everyone from someone who may.
    pub fn mentions_me(self, sender: Uuid, text: &str) -> bool {
        match self.me.with_value(|me| call_in(text, me)) {
            Call::Me => true,
            Call::Everyone => self.may_call_everyone(sender),
            Call::No => false,
        }
    }
}

fn mention_chip(label: String, me: bool) -> AnyView {
    view! {
        <span
            class=if me {
                "rounded bg-amber-200 px-0.5 font-medium text-amber-950 dark:bg-amber-700 dark:text-amber-50"
            } else {
                "rounded bg-indigo-100 px-0.5 font-medium text-indigo-900 dark:bg-indigo-900 dark:text-indigo-100"
            }
            data-testid="mention"
            data-me=me.then_some("")
        >
            {label}
        </span>
    }
    .into_any()
}

/// The blocks of a message.
pub(super) fn blocks(blocks: Vec<Block>) -> AnyView {
    blocks.into_iter().map(block).collect_view().into_any()
}

fn block(b: Block) -> AnyView {
    match b {
        Block::Paragraph(items) => view! { <p>{inlines(items)}</p> }.into_any(),
        Block::Heading(level, items) => {
            let class = match level {
                1 => "text-lg font-bold",
                2 => "text-base font-bold",
                _ => "font-semibold",
            };
            view! {
                <p class=class data-md="heading">
                    {inlines(items)}
                </p>
            }.into_any()
        }
        Block::Code { lang, text } => {
            let pieces = highlight(lang.as_deref().unwrap_or(""), &text)
                .into_iter()
                .map(|(kind, piece)| match kind {
                    Class::Plain => piece.to_owned().into_any(),
                    kind => view! { <span class=kind.css()>{piece.to_owned()}</span> }.into_any(),
                })
                .collect_view();
            view! {
                <pre
                    class="my-1 max-h-96 overflow-auto whitespace-pre rounded border border-slate-200 bg-slate-100 p-2 text-[13px] leading-snug text-slate-800 dark:border-slate-700 dark:bg-slate-900 dark:text-slate-100"
                    data-lang=lang
                >
                    <code>{pieces}</code>
                </pre>
            }
            .into_any()
        }
        Block::Quote(inner) => view! { <blockquote class="my-0.5 border-l-4 border-slate-300 pl-2 dark:border-slate-600">{blocks(inner)}</blockquote> }
        .into_any(),
        Block::List { start: None, items } => view! { <ul class="list-disc pl-5">{items.into_iter().map(|i| view! { <li>{inlines(i)}</li> }).collect_view()}</ul> }
        .into_any(),
        Block::List { start: Some(start), items } => view! {
            <ol class="list-decimal pl-6" start=start>
                {items.into_iter().map(|i| view! { <li>{inlines(i)}</li> }).collect_view()}
            </ol>
        }
        .into_any(),
    }
}

fn inlines(items: Vec<Inline>) -> AnyView {
    items.into_iter().map(inline).collect_view().into_any()
}

fn inline(i: Inline) -> AnyView {
    match i {
        Inline::Text(t) => t.into_any(),
        // The message is shown with its white space kept: a newline is a line break, and stays
        // one in the text a reader copies.
        Inline::Break => "\n".into_any(),
        Inline::Code(c) => view! {
            <code class="rounded bg-slate-100 px-1 text-[0.9em] text-slate-800 dark:bg-slate-900 dark:text-slate-100">
                {c}
            </code>
        }
        .into_any(),
        Inline::Strong(c) => view! { <strong>{inlines(c)}</strong> }.into_any(),
        Inline::Emphasis(c) => view! { <em>{inlines(c)}</em> }.into_any(),
        Inline::Underline(c) => view! { <u>{inlines(c)}</u> }.into_any(),
        Inline::Strike(c) => view! { <s>{inlines(c)}</s> }.into_any(),
        Inline::Spoiler(c) => {
            // Not in the page (nor read aloud) until asked for.
            let shown = RwSignal::new(false);
            (move || {
                if shown.get() {
                    view! {
                        <span class="rounded bg-slate-200 px-0.5 dark:bg-slate-700" data-testid="spoiler-shown">
                            {inlines(c.clone())}
                        </span>
                    }
                    .into_any()
                } else {
                    view! {
                        <button
                            type="button"
                            class="rounded bg-slate-700 px-2 text-sm text-white hover:bg-slate-600 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400"
                            data-testid="spoiler"
                            title="Show the hidden text"
                            on:click=move |ev| {
                                ev.stop_propagation();
                                shown.set(true);
                            }
                        >
                            "Spoiler"
                        </button>
                    }
                    .into_any()
                }
            })
            .into_any()
        }
        Inline::Mention(name) => match use_context::<MentionNames>() {
            None => format!("@{name}").into_any(),
            Some(names) => {
                let me = names.me.with_value(|m| *m == name);
                let everyone = EVERYONE.contains(&name.as_str());
                // A member's display name once the member list is in; someone not in the
                // conversation stays plain text.
                (move || match names.people.with(|p| p.get(&name).map(|(_, shown, _)| format!("@{shown}"))) {
                    Some(label) => mention_chip(label, me),
                    None if everyone => mention_chip(format!("@{name}"), false),
                    None => format!("@{name}").into_any(),
                })
                .into_any()
            }
        },
        Inline::Link { href, label } => view! {
            <a
                href=href.clone()
                title=href
                target="_blank"
                rel="noopener noreferrer nofollow"
                class="break-all text-indigo-700 underline hover:text-indigo-900 dark:text-indigo-300 dark:hover:text-indigo-200"
                data-testid="message-link"
                on:click=|ev| ev.stop_propagation()
            >
                {label}
            </a>
        }
        .into_any(),
    }
}
