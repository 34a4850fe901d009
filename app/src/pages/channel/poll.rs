//! Polls in the timeline: the card a poll message shows (options with their counts, my choice
//! marked, closed when its time is up) and the dialog that makes one (`/poll`). The counting is
//! this browser's (see `crate::poll`): the server cannot read a question, an option or a vote.

use crate::chat::{Chat, act};
use crate::components::{
    form::ErrorText,
    style::{INPUT, PRIMARY, SMALL},
};
use crate::dates::{full_time, now_ms, rfc3339_of_ms};
use crate::poll::{MAX_OPTIONS, MIN_OPTIONS, Poll};
use crate::split::{lazy, split};
use leptos::prelude::*;
use uuid::Uuid;

/// A poll message: its question, then one button per option (pressed when chosen by me) with
/// how many chose it; a click votes (again: takes it back), in a poll with several answers it
/// toggles that option. Closed polls show the result only.
#[component]
pub(super) fn PollCard(
    channel: Uuid,
    /// The timeline the poll is in: its channel's, or a thread's (keyed by its first message).
    here: Uuid,
    id: Uuid,
    question: String,
    poll: Poll,
    can_vote: bool,
) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let me = chat.me.get_value();
    let timeline = chat.timeline(here);
    let poll = StoredValue::new(poll);
    let tally = Memo::new(move |_| poll.with_value(|p| timeline.with(|t| t.tally(id, p, me))));
    // Closed now, or when its time comes while the poll is on screen.
    let closes = poll.with_value(|p| p.closes_at_ms);
    let closed = RwSignal::new(closes.is_some_and(|end| now_ms() >= end));
    if let Some(end) = closes.filter(|_| !closed.get_untracked()) {
        let wait = end.saturating_sub(now_ms()).min(i32::MAX as u64);
        set_timeout(move || closed.set(true), std::time::Duration::from_millis(wait));
    }
    let error = RwSignal::new(None::<String>);
    let choose = move |i: u8| {
        let mine = tally.with_untracked(|t| t.mine.clone());
        let multiple = poll.with_value(|p| p.multiple);
        let wanted: Vec<u8> = if multiple {
            let mut m = mine.clone();
            if let Some(at) = m.iter().position(|x| *x == i) {
                m.remove(at);
            } else {
                m.push(i);
                m.sort_unstable();
            }
            m
        } else if mine == [i] {
            vec![]
        } else {
            vec![i]
        };
        leptos::task::spawn_local(async move {
            match act::vote(channel, id, wanted).await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(format!("Vote not sent: {e}"))),
            }
        });
    };
    let options = move || {
        let t = tally.get();
        let total = t.voters.max(1);
        let disabled = closed.get() || !can_vote;
        poll.with_value(|p| p.options.clone())
            .into_iter()
            .enumerate()
            .map(|(i, label)| {
                let i = i as u8;
                let count = t.counts.get(usize::from(i)).copied().unwrap_or(0);
                let chosen = t.mine.contains(&i);
                let percent = count * 100 / total;
                view! {
                    <li>
                        <button
                            type="button"
                            class=if chosen {
                                "relative block w-full overflow-hidden rounded-md border border-indigo-500 px-3 py-1.5 text-left text-sm disabled:cursor-default dark:border-indigo-400"
                            } else {
                                "relative block w-full overflow-hidden rounded-md border border-slate-300 px-3 py-1.5 text-left text-sm hover:border-indigo-400 disabled:cursor-default dark:border-slate-600"
                            }
                            aria-pressed=chosen.to_string()
                            disabled=disabled
                            data-testid="poll-option"
                            data-count=count.to_string()
                            on:click=move |_| choose(i)
                        >
                            <span
                                class="absolute inset-y-0 left-0 bg-indigo-100 dark:bg-indigo-950"
                                style=format!("width: {percent}%")
                                aria-hidden="true"
                            ></span>
                            <span class="relative flex justify-between gap-2">
                                <span class="break-words">{if chosen { format!("✓ {label}") } else { label }}</span>
                                <span class="shrink-0 tabular-nums text-slate-600 dark:text-slate-300">
                                    {format!("{count} · {percent}%")}
                                </span>
                            </span>
                        </button>
                    </li>
                }
            })
            .collect_view()
    };
    let footer = move || {
        let t = tally.get();
        let votes = match t.voters {
            1 => "1 vote".to_owned(),
            n => format!("{n} votes"),
        };
        let kind = if poll.with_value(|p| p.multiple) { "several answers" } else { "one answer" };
        let when = match closes {
            Some(_) if closed.get() => " · closed".to_owned(),
            Some(end) => format!(" · closes {}", full_time(&rfc3339_of_ms(end))),
            None => String::new(),
        };
        format!("{votes} · {kind}{when}")
    };
    view! {
        <div
            class="my-1 max-w-md rounded-lg border border-slate-200 p-3 dark:border-slate-700"
            data-testid="poll"
            data-closed=move || closed.get().then_some("")
        >
            <p class="break-words font-semibold" data-testid="message-body" data-kind="poll">
                "📊 "
                {question}
            </p>
            <ul class="mt-2 space-y-1" role="list">
                {options}
            </ul>
            <p class="mt-1 text-xs text-slate-600 dark:text-slate-400" data-testid="poll-summary">
                {footer}
            </p>
            <ErrorText message=error />
        </div>
    }
    .into_any()
}

/// How long a new poll stays open: the choices offered, in ms (`None`: no end).
const DURATIONS: [(&str, Option<u64>); 5] = [
    ("No end", None),
    ("1 hour", Some(3_600_000)),
    ("1 day", Some(86_400_000)),
    ("3 days", Some(3 * 86_400_000)),
    ("1 week", Some(7 * 86_400_000)),
];

/// The dialog that makes a poll: a question, 2 to 10 options, one or several answers, an end.
/// Its code is fetched the first time it opens.
#[component]
pub(super) fn PollDialog(
    channel: Uuid,
    /// Posts the poll in the thread started on this message.
    thread: Option<Uuid>,
    open: RwSignal<bool>,
    #[prop(into)] question: String,
) -> impl IntoView {
    lazy(&POLL_FORM, "fixed inset-x-2 top-8 mx-auto max-w-md", move |form| {
        form(PollFormProps::builder().channel(channel).thread(thread).open(open).question(question.clone()).build())
    })
}

split!(
    /// The poll form's code, in a chunk of its own.
    POLL_FORM in poll_form: fn(PollFormProps) -> AnyView = |props| PollForm(props).into_any();
);

#[component]
fn PollForm(channel: Uuid, thread: Option<Uuid>, open: RwSignal<bool>, question: String) -> impl IntoView {
    let question = RwSignal::new(question);
    let options = RwSignal::new(vec![String::new(), String::new()]);
    let multiple = RwSignal::new(false);
    let duration = RwSignal::new(0usize);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let first = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(input) = first.get() {
            let _ = input.focus();
        }
    });
    let create = move || {
        let q = question.get_untracked().trim().to_owned();
        let poll = Poll {
            options: options
                .get_untracked()
                .into_iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            multiple: multiple.get_untracked(),
            closes_at_ms: DURATIONS[duration.get_untracked().min(DURATIONS.len() - 1)].1.map(|d| now_ms() + d),
        };
        if let Err(why) = poll.check(&q) {
            error.set(Some(why));
            return;
        }
        busy.set(true);
        leptos::task::spawn_local(async move {
            match act::send_poll(channel, q, poll, thread).await {
                Ok(()) => open.set(false),
                Err(e) => error.set(Some(format!("Poll not sent: {e}"))),
            }
            busy.set(false);
        });
    };
    view! {
        <div class="fixed inset-0 z-40 bg-slate-900/40" aria-hidden="true" on:click=move |_| open.set(false)></div>
        <form
            role="dialog"
            aria-modal="true"
            aria-labelledby="poll-heading"
            class="fixed inset-x-2 top-8 z-50 mx-auto max-h-[calc(100vh-4rem)] max-w-md overflow-y-auto rounded-xl border border-slate-200 bg-white p-4 shadow-xl dark:border-slate-700 dark:bg-slate-900"
            data-testid="poll-dialog"
            on:keydown=move |ev| {
                if ev.key() == "Escape" {
                    ev.prevent_default();
                    open.set(false);
                }
            }
            on:submit=move |ev| {
                ev.prevent_default();
                create();
            }
        >
            <h2 id="poll-heading" class="text-lg font-semibold">
                "New poll"
            </h2>
            <label class="mt-3 block text-sm font-medium" for="poll-question">
                "Question"
            </label>
            <input
                node_ref=first
                id="poll-question"
                class=INPUT
                data-testid="poll-question"
                maxlength="300"
                prop:value=move || question.get()
                on:input=move |ev| question.set(event_target_value(&ev))
            />
            <fieldset class="mt-3">
                <legend class="text-sm font-medium">"Options"</legend>
                {move || {
                    let n = options.with(Vec::len);
                    (0..n)
                        .map(|i| {
                            view! {
                                <div class="mt-1 flex gap-1">
                                    <input
                                        class=INPUT
                                        aria-label=format!("Option {}", i + 1)
                                        data-testid="poll-option-input"
                                        maxlength="200"
                                        prop:value=move || options.with(|o| o.get(i).cloned().unwrap_or_default())
                                        on:input=move |ev| {
                                            let v = event_target_value(&ev);
                                            options
                                                .update(|o| {
                                                    if let Some(slot) = o.get_mut(i) {
                                                        *slot = v;
                                                    }
                                                });
                                        }
                                    />
                                    {(n > MIN_OPTIONS)
                                        .then(|| {
                                            view! {
                                                <button
                                                    type="button"
                                                    class=SMALL
                                                    aria-label=format!("Remove option {}", i + 1)
                                                    on:click=move |_| {
                                                        options
                                                            .update(|o| {
                                                                if o.len() > MIN_OPTIONS && i < o.len() {
                                                                    o.remove(i);
                                                                }
                                                            })
                                                    }
                                                >
                                                    "✕"
                                                </button>
                                            }
                                        })}
                                </div>
                            }
                        })
                        .collect_view()
                }}
                <button
                    type="button"
                    class=format!("{SMALL} mt-1")
                    data-testid="poll-add-option"
                    disabled=move || { options.with(Vec::len) >= MAX_OPTIONS }
                    on:click=move |_| {
                        options
                            .update(|o| {
                                if o.len() < MAX_OPTIONS {
                                    o.push(String::new());
                                }
                            })
                    }
                >
                    "+ Add an option"
                </button>
            </fieldset>
            <label class="mt-3 flex items-center gap-2 text-sm">
                <input
                    type="checkbox"
                    class="h-4 w-4"
                    data-testid="poll-multiple"
                    prop:checked=move || multiple.get()
                    on:change=move |ev| multiple.set(event_target_checked(&ev))
                />
                "Allow several answers"
            </label>
            <label class="mt-3 block text-sm font-medium" for="poll-duration">
                "Voting ends"
            </label>
            <select
                id="poll-duration"
                class=INPUT
                data-testid="poll-duration"
                on:change=move |ev| duration.set(event_target_value(&ev).parse().unwrap_or(0))
            >
                {DURATIONS
                    .iter()
                    .enumerate()
                    .map(|(i, (label, _))| view! { <option value=i.to_string()>{*label}</option> })
                    .collect_view()}
            </select>
            <ErrorText message=error testid="poll-error" />
            <div class="mt-4 flex justify-end gap-2">
                <button type="button" class=SMALL on:click=move |_| open.set(false)>
                    "Cancel"
                </button>
                <button type="submit" class=PRIMARY data-testid="poll-create" disabled=move || busy.get()>
                    "Create poll"
                </button>
            </div>
        </form>
    }
    .into_any()
}
