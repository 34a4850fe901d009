//! The composer: Enter sends, Shift+Enter adds a line, drafts kept per conversation, typing.

use super::{
    commands,
    emoji::{Emoji, EmojiPicker, code_for, shortcode_query},
    timeline::name_of,
};
use crate::chat::{Chat, act};
use crate::components::style::{PRIMARY, SMALL};
use crate::model::messages::MAX_TEXT_BYTES;
use leptos::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

#[component]
pub(super) fn Composer(
    channel: Uuid,
    names: Signal<HashMap<Uuid, String>>,
    replying: RwSignal<Option<Uuid>>,
    /// Bumped on every send: the timeline goes to the newest message.
    follow: RwSignal<u32>,
    /// Writes in the thread started on this message of the channel.
    #[prop(optional)]
    thread: Option<Uuid>,
) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let timeline = chat.timeline(channel);
    // Drafts and replies are of the channel, or of the thread.
    let key = thread.unwrap_or(channel);
    let draft = RwSignal::new(chat.drafts.with_value(|d| d.get(&key).cloned()).unwrap_or_default());
    Effect::new(move |_| {
        let text = draft.get();
        chat.drafts.update_value(|d| {
            if text.is_empty() {
                d.remove(&key);
            } else {
                d.insert(key, text);
            }
        });
    });
    let ids = if thread.is_some() {
        ("thread-composer", "thread-command-list", "thread-command-", "thread-composer-length")
    } else {
        ("composer", "command-list", "command-", "composer-length")
    };
    let error = RwSignal::new(None::<String>);
    let ready = move || matches!(chat.device.get(), Some(Ok(_)));
    let removed = Signal::derive(move || timeline.with(|t| t.removed));
    let too_long = move || draft.with(|d| d.len() > MAX_TEXT_BYTES);
    // The slash commands the draft may be the start of, or the people the "@name" being typed may
    // be; and the one chosen with the arrow keys.
    let mention_names = use_context::<super::rich::MentionNames>();
    let me = chat.me.get_value();
    let emoji = expect_context::<Emoji>();
    // A `:shortcode` being typed loads the emoji catalog (once).
    Effect::new(move |_| {
        if draft.with(|d| shortcode_query(d).is_some()) {
            emoji.want();
        }
    });
    let suggestions = Memo::new(move |_| {
        let commands: Vec<Suggestion> =
            draft.with(|d| commands::matching(d)).into_iter().map(Suggestion::Command).collect();
        if !commands.is_empty() {
            return commands;
        }
        if let Some(query) = draft.with(|d| shortcode_query(d).map(str::to_owned)) {
            return emoji.catalog.with(|c| match c {
                Some(Ok(c)) => c
                    .search(&query, 8)
                    .into_iter()
                    .map(|e| Suggestion::Emoji { emoji: e.emoji.clone(), code: code_for(e, &query).to_owned() })
                    .collect(),
                _ => vec![],
            });
        }
        let Some(query) = draft.with(|d| mention_query(d).map(str::to_lowercase)) else { return vec![] };
        let Some(names) = mention_names else { return vec![] };
        let mut people: Vec<Suggestion> = names.people.with(|p| {
            p.iter()
                .filter(|(name, (id, shown, _))| {
                    *id != me && (name.starts_with(&query) || shown.to_lowercase().starts_with(&query))
                })
                .map(|(name, (_, shown, _))| Suggestion::Mention { name: name.clone(), shown: shown.clone() })
                .collect()
        });
        people.sort_by(|a, b| a.label().cmp(b.label()));
        people.truncate(8);
        if names.may_call_everyone(me) {
            people.extend(
                crate::markdown::EVERYONE
                    .iter()
                    .filter(|e| e.starts_with(&query))
                    .map(|e| Suggestion::Mention { name: (*e).to_owned(), shown: "everyone here".to_owned() }),
            );
        }
        people
    });
    let active = RwSignal::new(0usize);
    let complete = move |chosen: &Suggestion| {
        if let Suggestion::Emoji { emoji, .. } = chosen {
            act::remember_emoji(emoji);
        }
        draft.update(|d| *d = chosen.complete(d));
        active.set(0);
    };
    // The emoji picker: what is picked goes where the caret is, and the box gets the focus back.
    let picking = RwSignal::new(false);
    let textarea = NodeRef::<leptos::html::Textarea>::new();
    let insert = Callback::new(move |e: String| {
        picking.set(false);
        let caret = textarea.get_untracked().and_then(|t| t.selection_start().ok().flatten());
        let mut at = 0;
        draft.update(|d| {
            at = caret.map_or(d.len(), |c| byte_index(d, c as usize));
            d.insert_str(at, &e);
        });
        if let Some(t) = textarea.get_untracked() {
            let _ = t.focus();
            let after = draft.with_untracked(|d| utf16_len(&d[..at + e.len()])) as u32;
            // Once the new value is in the box.
            request_animation_frame(move || {
                let _ = t.set_selection_range(after, after);
            });
        }
    });
    let close_picker = Callback::new(move |()| {
        picking.set(false);
        if let Some(t) = textarea.get_untracked() {
            let _ = t.focus();
        }
    });
    // Nothing typed is lost: what failed to go comes back into the box (before anything typed
    // since), with why.
    let give_back = move |typed: String, why: String| {
        draft.update(|d| *d = if d.is_empty() { typed } else { format!("{typed}\n{d}") });
        error.set(Some(why));
    };
    // `/poll` alone (or with a question only) opens the poll dialog.
    let poll_open = RwSignal::new(false);
    let poll_question = RwSignal::new(String::new());
    let submit = move || {
        let typed = draft.get_untracked();
        if typed.trim().is_empty() {
            return;
        }
        if let Some(asked) = commands::schedule(&typed) {
            if thread.is_some() {
                error.set(Some("Scheduled messages go to the channel: schedule this one there.".to_owned()));
                return;
            }
            let (delay_s, message) = match asked {
                Ok(asked) => asked,
                Err(how) => {
                    error.set(Some(how));
                    return;
                }
            };
            let message = message.to_owned();
            if message.len() > MAX_TEXT_BYTES {
                error.set(Some(too_long_message(message.len())));
                return;
            }
            draft.set(String::new());
            let reply_to = replying.get_untracked();
            leptos::task::spawn_local(async move {
                let at = crate::dates::now_ms().saturating_add(delay_s.saturating_mul(1_000));
                match act::schedule(channel, message, reply_to, at).await {
                    Ok(()) => {
                        error.set(None);
                        replying.set(None);
                    }
                    Err(e) => {
                        give_back(typed, format!("Not scheduled: {e}"));
                    }
                }
            });
            return;
        }
        if let Some(args) = commands::poll_args(&typed) {
            if !args.contains('|') {
                poll_question.set(args.to_owned());
                poll_open.set(true);
                draft.set(String::new());
                return;
            }
            match crate::poll::parse_command(args) {
                Ok((question, poll)) => {
                    draft.set(String::new());
                    follow.update(|n| *n += 1);
                    leptos::task::spawn_local(async move {
                        match act::send_poll(channel, question, poll, thread).await {
                            Ok(()) => error.set(None),
                            Err(e) => {
                                give_back(typed, format!("Not sent: {e}"));
                            }
                        }
                    });
                }
                Err(why) => error.set(Some(why)),
            }
            return;
        }
        // A command turns into its text here; one missing what it needs says what to type.
        let body = match commands::apply(typed.trim_end()) {
            Ok(body) => body,
            Err(why) => {
                error.set(Some(why));
                return;
            }
        };
        if body.len() > MAX_TEXT_BYTES {
            // Refused here, before anything is encrypted or sent; the text stays in the box.
            error.set(Some(too_long_message(body.len())));
            return;
        }
        draft.set(String::new());
        follow.update(|n| *n += 1);
        let reply_to = replying.get_untracked();
        leptos::task::spawn_local(async move {
            match act::send(channel, body.clone(), reply_to, thread).await {
                Ok(()) => {
                    error.set(None);
                    replying.set(None);
                }
                Err(e) => {
                    give_back(typed, format!("Not sent: {e}"));
                }
            }
        });
    };
    let reply_banner = move || {
        replying.get().map(|target| {
            let who = chat.timeline(key).with(|t| t.find(target).map(|l| l.sender));
            let who = who.map(|u| names.with(|n| name_of(n, u))).unwrap_or_default();
            view! {
                <div
                    class="flex items-center justify-between px-4 text-xs text-slate-600 dark:text-slate-300"
                    data-testid="replying"
                >
                    <span>{format!("Replying to {who}")}</span>
                    <button type="button" class=SMALL on:click=move |_| replying.set(None)>
                        "Cancel reply"
                    </button>
                </div>
            }
        })
    };
    let command_list = move || {
        let list = suggestions.get();
        let kind = match list.first() {
            Some(Suggestion::Mention { .. }) => "People",
            Some(Suggestion::Emoji { .. }) => "Emoji",
            _ => "Commands",
        };
        (!list.is_empty()).then(|| {
            view! {
                <ul
                    id=ids.1
                    role="listbox"
                    aria-label=kind
                    class="mx-2 mb-1 rounded-md border border-slate-200 bg-white py-1 text-sm shadow-sm dark:border-slate-700 dark:bg-slate-900"
                    data-testid="commands"
                >
                    {list
                        .into_iter()
                        .enumerate()
                        .map(|(i, s)| {
                            let (label, hint, about, testid) = match &s {
                                Suggestion::Command(c) => {
                                    (format!("/{}", c.name), c.args.to_owned(), format!(" · {}", c.about), "command")
                                }
                                Suggestion::Mention { name, shown } => {
                                    (format!("@{name}"), shown.clone(), String::new(), "mention-option")
                                }
                                Suggestion::Emoji { emoji, code } => {
                                    (emoji.clone(), format!(":{code}:"), String::new(), "emoji-suggestion")
                                }
                            };
                            view! {
                                <li
                                    id=format!("{}{i}", ids.2)
                                    role="option"
                                    aria-selected=move || (active.get() == i).to_string()
                                    class=move || {
                                        if active.get() == i {
                                            "cursor-pointer bg-indigo-50 px-3 py-1 dark:bg-indigo-950"
                                        } else {
                                            "cursor-pointer px-3 py-1"
                                        }
                                    }
                                    data-testid=testid
                                    // Before the box loses the focus.
                                    on:mousedown=move |ev| {
                                        ev.prevent_default();
                                        complete(&s);
                                    }
                                >
                                    <span class="font-semibold">{label}</span>
                                    " "
                                    <span class="text-slate-600 dark:text-slate-400">{hint}</span>
                                    {about}
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            }
        })
    };
    view! {
        {move || {
            poll_open
                .get()
                .then(|| {
                    view! {
                        <super::poll::PollDialog channel thread open=poll_open question=poll_question.get_untracked() />
                    }
                })
        }}
        {reply_banner}
        {command_list}
        <form
            class="relative flex items-end gap-2 border-t border-slate-200 bg-white p-2 dark:border-slate-800 dark:bg-slate-900"
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
        >
            <textarea
                node_ref=textarea
                rows="2"
                class="block min-h-[2.5rem] w-full resize-y rounded-lg border border-slate-300 bg-white px-3 py-2 text-base focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500 disabled:opacity-60 dark:border-slate-700 dark:bg-slate-950"
                id=ids.0
                data-testid=ids.0
                aria-label=if thread.is_some() { "Reply in the thread" } else { "Message" }
                placeholder=move || {
                    if removed.get() {
                        "You can no longer write here."
                    } else if ready() && thread.is_some() {
                        "Reply in the thread (Enter sends, Shift+Enter for a new line)"
                    } else if ready() {
                        "Message (Enter sends, Shift+Enter for a new line, / for commands, @ for people, : for emoji)"
                    } else {
                        "Encryption is starting…"
                    }
                }
                disabled=move || !ready() || removed.get()
                aria-invalid=move || too_long().then_some("true")
                aria-describedby=ids.3
                prop:value=move || draft.get()
                on:input=move |ev| {
                    draft.set(event_target_value(&ev));
                    act::typing(channel);
                }
                aria-controls=ids.1
                aria-activedescendant=move || {
                    (!suggestions.with(Vec::is_empty)).then(|| format!("{}{}", ids.2, active.get()))
                }
                on:keydown=move |ev| {
                    let listed = suggestions.with_untracked(Vec::len);
                    let key = ev.key();
                    if listed > 0 && (key == "ArrowDown" || key == "ArrowUp") {
                        ev.prevent_default();
                        let step = if key == "ArrowDown" { 1 } else { listed - 1 };
                        active.update(|a| *a = (*a + step) % listed);
                    } else if listed > 0 && (key == "Tab" || (key == "Enter" && !ev.shift_key())) {
                        ev.prevent_default();
                        let chosen = suggestions
                            .with_untracked(|s| s.get(active.get_untracked().min(listed - 1)).cloned());
                        if let Some(c) = chosen {
                            complete(&c);
                        }
                    } else if key == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        submit();
                    }
                }
            ></textarea>
            <button
                type="button"
                class="shrink-0 rounded-lg px-2 py-2 text-xl hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 disabled:opacity-60 dark:hover:bg-slate-800"
                aria-label="Emoji"
                aria-haspopup="dialog"
                aria-expanded=move || picking.get().to_string()
                data-testid="emoji-button"
                disabled=move || !ready() || removed.get()
                on:click=move |_| picking.update(|p| *p = !*p)
            >
                "🙂"
            </button>
            <button type="submit" class=PRIMARY data-testid="send" disabled=move || !ready() || removed.get()>
                "Send"
            </button>
            {move || {
                picking
                    .get()
                    .then(|| {
                        view! {
                            <EmojiPicker
                                on_pick=insert
                                on_close=close_picker
                                class="absolute bottom-full right-2 mb-1"
                                label="Insert an emoji"
                            />
                        }
                    })
            }}
        </form>
        <p
            id=ids.3
            class="px-4 pb-1 text-sm text-red-700 dark:text-red-300"
            data-testid="length-warning"
            hidden=move || !too_long()
        >
            {move || too_long().then(|| too_long_message(draft.with(String::len)))}
        </p>
        {move || {
            error
                .get()
                .map(|e| {
                    view! {
                        <p
                            role="alert"
                            class="px-4 pb-2 text-sm text-red-700 dark:text-red-300"
                            data-testid="send-error"
                        >
                            {e}
                        </p>
                    }
                })
        }}
    }
    .into_any()
}

/// Something the list under the composer offers to complete.
#[derive(Clone, Debug, PartialEq)]
enum Suggestion {
    Command(commands::Command),
    /// `@name`: a member (with their display name), or everyone.
    Mention {
        name: String,
        shown: String,
    },
    /// `:code`: an emoji, by one of its shortcodes.
    Emoji {
        emoji: String,
        code: String,
    },
}

impl Suggestion {
    fn label(&self) -> &str {
        match self {
            Suggestion::Command(c) => c.name,
            Suggestion::Mention { name, .. } => name,
            Suggestion::Emoji { code, .. } => code,
        }
    }

    /// The draft once this is chosen: a command replaces it; a mention replaces the word typed.
    fn complete(&self, draft: &str) -> String {
        match self {
            Suggestion::Command(c) => format!("/{} ", c.name),
            Suggestion::Mention { name, .. } => {
                let word = draft.rsplit(char::is_whitespace).next().unwrap_or_default();
                format!("{}@{name} ", &draft[..draft.len() - word.len()])
            }
            Suggestion::Emoji { emoji, .. } => {
                let word = draft.rsplit(char::is_whitespace).next().unwrap_or_default();
                format!("{}{emoji}", &draft[..draft.len() - word.len()])
            }
        }
    }
}

/// The name typed after an "@" at the end of the draft, if its last word is one being typed.
fn mention_query(draft: &str) -> Option<&str> {
    let word = draft.rsplit(char::is_whitespace).next()?;
    word.strip_prefix('@')
        .filter(|q| q.len() <= 32 && q.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
}

/// The byte index in `s` of the UTF-16 offset `units` (what a text box's caret counts), on a
/// character boundary; the end if beyond.
fn byte_index(s: &str, units: usize) -> usize {
    let mut seen = 0;
    for (i, c) in s.char_indices() {
        if seen >= units {
            return i;
        }
        seen += c.len_utf16();
    }
    s.len()
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// What the composer says of a text over `MAX_TEXT_BYTES`: how long it is and the most it may be.
fn too_long_message(bytes: usize) -> String {
    let kb = |b: usize| format!("{:.1} KB", b as f64 / 1000.0);
    format!("Too long to send: {} of text, at most {}. Shorten it or split it in parts.", kb(bytes), kb(MAX_TEXT_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_complete_the_word_being_typed() {
        assert_eq!(mention_query("hi @bo"), Some("bo"));
        assert_eq!(mention_query("@"), Some(""));
        assert_eq!(mention_query("mail a@b"), None);
        assert_eq!(mention_query("hi @bob "), None, "a space ends it");
        assert_eq!(mention_query("@no!"), None);
        let bob = Suggestion::Mention { name: "bob".into(), shown: "Bob Stone".into() };
        assert_eq!(bob.complete("hi @Bo"), "hi @bob ");
        assert_eq!(bob.complete("line\n@b"), "line\n@bob ");
    }

    #[test]
    fn an_emoji_replaces_its_shortcode_and_goes_where_the_caret_is() {
        let tada = Suggestion::Emoji { emoji: "🎉".into(), code: "tada".into() };
        assert_eq!(tada.complete("well done :ta"), "well done 🎉");
        // The caret counts UTF-16 units: "é" is one, "🎉" two.
        assert_eq!(byte_index("é🎉x", 0), 0);
        assert_eq!(byte_index("é🎉x", 1), 2);
        assert_eq!(byte_index("é🎉x", 3), 6);
        assert_eq!(byte_index("é🎉x", 99), 7);
        assert_eq!(utf16_len("é🎉x"), 4);
    }

    #[test]
    fn an_overlong_message_says_its_length_and_the_limit() {
        assert_eq!(
            super::too_long_message(80_000),
            "Too long to send: 80.0 KB of text, at most 40.0 KB. Shorten it or split it in parts."
        );
    }
}
