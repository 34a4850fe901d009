//! Page frames.

use leptos::prelude::*;

/// A centred card for the signed-out pages (login, register, recovery).
#[component]
pub fn AuthCard(title: &'static str, #[prop(optional)] subtitle: &'static str, children: Children) -> impl IntoView {
    view! {
        <main class="flex min-h-screen items-center justify-center px-4 py-10">
            <div class="w-full max-w-sm space-y-6">
                <div class="text-center">
                    <p class="text-2xl font-bold tracking-tight text-indigo-600 dark:text-indigo-400">"Chatalot"</p>
                    <h1 class="mt-2 text-xl font-semibold">{title}</h1>
                    {(!subtitle.is_empty())
                        .then(|| view! { <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">{subtitle}</p> })}
                </div>
                <div class="rounded-2xl border border-slate-200 bg-white p-6 shadow-sm dark:border-slate-800 dark:bg-slate-900">
                    {children()}
                </div>
            </div>
        </main>
    }
}
