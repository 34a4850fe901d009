//! Form building blocks: labelled fields that show their own error, the error banner, buttons.

use crate::error::AppError;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

pub use super::style::{BUTTON, INPUT, LINK};

/// The error of the last submission, if any.
pub type LastError = Signal<Option<AppError>>;

/// A labelled input. Shows the server's message for `name` below it and marks itself invalid.
#[component]
pub fn Field(
    /// Form field name; also the key of its server-side validation errors.
    name: &'static str,
    label: &'static str,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] autocomplete: &'static str,
    #[prop(optional)] hint: &'static str,
    #[prop(optional_no_strip)] value: Option<String>,
    #[prop(default = true)] required: bool,
    /// The input's HTML id when one page has two fields of the same name (`field-{name}` otherwise).
    #[prop(optional)]
    id: &'static str,
    #[prop(into)] error: LastError,
) -> impl IntoView {
    let id = if id.is_empty() { format!("field-{name}") } else { id.to_owned() };
    let error_id = format!("{id}-error");
    let message = move || error.get().and_then(|e| e.for_field(name));
    // After a rejected submission without JavaScript, the server sends the values back in the query.
    let value = value.or_else(|| use_query_map().with_untracked(|q| q.get(name)));
    view! {
        <div class="space-y-1">
            <label for=id.clone() class="block text-sm font-medium text-slate-700 dark:text-slate-300">
                {label}
            </label>
            <input
                id=id
                name=name
                type=kind
                class=INPUT
                autocomplete=autocomplete
                required=required
                value=value
                aria-invalid=move || message().is_some().then_some("true")
                aria-describedby=error_id.clone()
            />
            {(!hint.is_empty()).then(|| view! { <p class="text-xs text-slate-600 dark:text-slate-400">{hint}</p> })}
            <p id=error_id role="alert" class="min-h-0 text-sm text-red-600 dark:text-red-400" data-error-for=name>
                {message}
            </p>
        </div>
    }
}

/// A password input with a show/hide toggle (the toggle needs the hydrated app).
#[component]
pub fn PasswordField(
    name: &'static str,
    label: &'static str,
    autocomplete: &'static str,
    #[prop(optional)] hint: &'static str,
    #[prop(into)] error: LastError,
) -> impl IntoView {
    let id = format!("field-{name}");
    let error_id = format!("{id}-error");
    let shown = RwSignal::new(false);
    let message = move || error.get().and_then(|e| e.for_field(name));
    view! {
        <div class="space-y-1">
            <label for=id.clone() class="block text-sm font-medium text-slate-700 dark:text-slate-300">
                {label}
            </label>
            <div class="relative">
                <input
                    id=id
                    name=name
                    type=move || if shown.get() { "text" } else { "password" }
                    class=format!("{INPUT} pr-16")
                    autocomplete=autocomplete
                    required=true
                    aria-invalid=move || message().is_some().then_some("true")
                    aria-describedby=error_id.clone()
                />
                <button
                    type="button"
                    data-toggle-for=name
                    class="absolute inset-y-0 right-0 px-3 text-sm text-slate-600 dark:text-slate-400 hover:text-slate-800 dark:hover:text-slate-200"
                    aria-pressed=move || if shown.get() { "true" } else { "false" }
                    on:click=move |_| shown.update(|s| *s = !*s)
                >
                    {move || if shown.get() { "Hide" } else { "Show" }}
                </button>
            </div>
            {(!hint.is_empty()).then(|| view! { <p class="text-xs text-slate-600 dark:text-slate-400">{hint}</p> })}
            <p id=error_id role="alert" class="text-sm text-red-600 dark:text-red-400" data-error-for=name>
                {message}
            </p>
        </div>
    }
}

/// Shows an error that does not belong to one field (rate limits, server trouble, closed registration).
#[component]
pub fn ErrorBanner(#[prop(into)] error: LastError) -> impl IntoView {
    let text = move || {
        error.get().and_then(|e| match &e {
            AppError::Invalid { field, message } if field == "form" => Some(message.clone()),
            AppError::Invalid { .. } => None,
            other => Some(capitalize(&other.to_string())),
        })
    };
    view! {
        <Show when=move || text().is_some()>
            <div
                role="alert"
                data-testid="form-error"
                class="rounded-lg border border-red-300 bg-red-50 px-3 py-2 text-sm text-red-800 dark:border-red-800 dark:bg-red-950 dark:text-red-200"
            >
                {text}
            </div>
        </Show>
    }
}

/// A message said in the browser (not a server's field error), announced to screen readers.
#[component]
pub fn ErrorText(message: RwSignal<Option<String>>, #[prop(optional)] testid: &'static str) -> impl IntoView {
    move || {
        message.get().map(|e| {
            view! {
                <p role="alert" class="text-sm text-red-700 dark:text-red-300" data-testid=testid>
                    {e}
                </p>
            }
        })
    }
}

/// The submit button; disabled while the submission is in flight (on a plain page, by its script,
/// which reads the busy label from `data-busy`).
#[component]
pub fn SubmitButton(
    label: &'static str,
    busy_label: &'static str,
    #[prop(into)] pending: Signal<bool>,
) -> impl IntoView {
    view! {
        <button
            type="submit"
            class=BUTTON
            disabled=move || pending.get()
            aria-busy=move || pending.get().to_string()
            data-busy=busy_label
        >
            {move || if pending.get() { busy_label } else { label }}
        </button>
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Empties `form` each time `succeeded` turns true (after a successful submission), so the next
/// entry starts blank; a failed one keeps what was typed.
pub fn reset_after(form: NodeRef<leptos::html::Form>, succeeded: impl Fn() -> bool + 'static) {
    Effect::new(move |_| {
        if succeeded()
            && let Some(form) = form.get_untracked()
        {
            form.reset();
        }
    });
}
