//! My messages waiting to be sent in this conversation (`/schedule`): a line above the composer
//! that opens the list, each with its time, its text (decrypted here) and "Cancel". A message
//! leaves the list when it arrives in the timeline.

use super::message::unreadable_text;
use crate::chat::{Chat, ScheduledLine, act};
use crate::components::{form::ErrorText, style::SMALL};
use crate::dates::full_time;
use crate::markdown;
use leptos::prelude::*;
use uuid::Uuid;

#[component]
pub(super) fn ScheduledBar(channel: Uuid) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let timeline = chat.timeline(channel);
    let waiting = RwSignal::new(Vec::<ScheduledLine>::new());
    let open = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Loaded once encryption is ready here, and again after I schedule or cancel one.
    Effect::new(move |_| {
        chat.scheduled_changed.track();
        if !chat.device.with(|d| matches!(d, Some(Ok(_)))) {
            return;
        }
        leptos::task::spawn_local(async move {
            match act::scheduled(channel).await {
                Ok(list) => waiting.set(list),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    });
    // Sent ones are in the timeline now.
    let shown = Memo::new(move |_| {
        let list = waiting.get();
        timeline.with(|t| list.into_iter().filter(|s| t.find(s.id).is_none()).collect::<Vec<_>>())
    });
    let cancel = move |id: Uuid| {
        leptos::task::spawn_local(async move {
            match act::unschedule(id).await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(format!("Not cancelled: {e}"))),
            }
        });
    };
    move || {
        let list = shown.get();
        (!list.is_empty()).then(|| {
            let n = list.len();
            let label = if n == 1 { "1 message scheduled".to_owned() } else { format!("{n} messages scheduled") };
            view! {
                <div class="px-4 pb-1 text-xs text-slate-600 dark:text-slate-400" data-testid="scheduled">
                    <button
                        type="button"
                        class=SMALL
                        aria-expanded=move || open.get().to_string()
                        data-testid="scheduled-toggle"
                        on:click=move |_| open.update(|o| *o = !*o)
                    >
                        {format!("🕓 {label}")}
                    </button>
                    {move || {
                        open.get()
                            .then(|| {
                                view! {
                                    <ul class="mt-1 space-y-1" data-testid="scheduled-list">
                                        {shown
                                            .get()
                                            .into_iter()
                                            .map(|s| {
                                                let id = s.id;
                                                let text = match &s.body {
                                                    Ok(b) => markdown::plain(b).chars().take(120).collect::<String>(),
                                                    Err(why) => unreadable_text(why, String::new(), "", None),
                                                };
                                                view! {
                                                    <li class="flex items-center gap-2" data-testid="scheduled-item">
                                                        <span class="shrink-0 font-medium">
                                                            {full_time(&s.deliver_at)}
                                                        </span>
                                                        <span class="min-w-0 flex-1 truncate">{text}</span>
                                                        <button
                                                            type="button"
                                                            class=SMALL
                                                            data-testid="scheduled-cancel"
                                                            on:click=move |_| cancel(id)
                                                        >
                                                            "Cancel"
                                                        </button>
                                                    </li>
                                                }
                                            })
                                            .collect_view()}
                                    </ul>
                                }
                            })
                    }}
                    <ErrorText message=error />
                </div>
            }
        })
    }
}
