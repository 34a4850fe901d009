use crate::{
    api::auth::take_recovery_code,
    components::{form::BUTTON, layout::AuthCard},
};
use leptos::prelude::*;
use leptos_meta::Title;

/// Shows a freshly issued recovery code, once.
#[component]
pub fn WelcomePage() -> impl IntoView {
    let code = Resource::new(|| (), |_| take_recovery_code());
    view! {
        <Title text="Your recovery code" />
        <AuthCard
            title="Save your recovery code"
            subtitle="It is the only way to reset your password. It is shown once."
        >
            <Suspense fallback=|| {
                view! { <p>"Loading…"</p> }
            }>
                {move || Suspend::new(async move {
                    match code.await {
                        Ok(Some(code)) => {
                            view! {
                                <p
                                    data-testid="recovery-code"
                                    class="select-all rounded-lg bg-slate-100 px-3 py-4 text-center font-mono text-lg tracking-widest dark:bg-slate-800"
                                >
                                    {code}
                                </p>
                                <p class="mt-3 text-sm text-slate-600 dark:text-slate-400">
                                    "Write it down or keep it in a password manager. Anyone with it and your username can take over your account."
                                </p>
                            }
                                .into_any()
                        }
                        _ => view! { <p class="text-sm">"There is no new recovery code to show."</p> }.into_any(),
                    }
                })}
            </Suspense>
            <a href="/" class=format!("{BUTTON} mt-6") data-testid="continue">
                "I saved it — continue"
            </a>
        </AuthCard>
    }
}
