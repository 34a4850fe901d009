//! What a signed-out visitor of `/` sees: what this server is, how to join it, and the way in.
//! Sent as a plain page (no WASM app): a visitor who only reads it downloads a few kilobytes.

use crate::{
    api::auth::registration_status,
    components::{form::ErrorBanner, style::LINK},
    model::{RegistrationInfo, RegistrationMode},
};
use leptos::prelude::*;

const PRIMARY_LINK: &str = "inline-flex items-center justify-center rounded-lg bg-indigo-600 px-5 py-2.5 \
    font-semibold text-white hover:bg-indigo-500 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 \
    focus-visible:ring-offset-2 dark:focus-visible:ring-offset-slate-950";
const SECONDARY_LINK: &str = "inline-flex items-center justify-center rounded-lg border border-slate-300 px-5 py-2.5 \
    font-semibold text-slate-800 hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 \
    dark:border-slate-700 dark:text-slate-100 dark:hover:bg-slate-800";

/// How one joins this server, in a sentence.
fn how_to_join(info: &RegistrationInfo) -> &'static str {
    match (info.first_account, info.mode) {
        (true, _) => "This server is new: the first account created becomes its owner.",
        (false, RegistrationMode::Open) => "Anyone may create an account here.",
        (false, RegistrationMode::InviteOnly) => {
            "Accounts here are by invitation: ask someone who uses this server for an invite code, then create your account with it."
        }
        (false, RegistrationMode::Closed) => {
            "New accounts are closed on this server: ask its owner for one. If you have an account, sign in."
        }
    }
}

#[component]
pub fn Landing() -> impl IntoView {
    let info = Resource::new(|| (), |_| registration_status());
    view! {
        <main class="mx-auto flex min-h-screen max-w-2xl flex-col justify-center px-6 py-12" data-testid="landing">
            <p class="text-3xl font-bold tracking-tight text-indigo-600 dark:text-indigo-400">"Chatalot"</p>
            <h1 class="mt-4 text-2xl font-semibold">"Private chat for friends, teams and communities"</h1>
            <p class="mt-3 text-slate-700 dark:text-slate-300">
                "This is a self-hosted Chatalot server. Messages are end-to-end encrypted: they are locked in "
                "your browser and opened only on the devices of the people in the conversation. The server relays "
                "and stores them without being able to read them."
            </p>
            <ul class="mt-4 list-disc space-y-1 pl-5 text-slate-700 dark:text-slate-300">
                <li>"Communities with channels, direct messages and group chats"</li>
                <li>"Your history on every device you sign in on, with a recovery key for the rest"</li>
                <li>"Verify the people you talk to by comparing emoji on both screens"</li>
            </ul>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match info.await {
                        Ok(info) => {
                            let open = info.first_account || info.mode != RegistrationMode::Closed;
                            view! {
                                <p class="mt-6 font-medium" data-testid="how-to-join">
                                    {how_to_join(&info)}
                                </p>
                                <div class="mt-4 flex flex-wrap gap-3">
                                    {open
                                        .then(|| {
                                            view! {
                                                <a class=PRIMARY_LINK href="/register" data-testid="landing-register">
                                                    "Create an account"
                                                </a>
                                            }
                                        })}
                                    <a
                                        class=if open { SECONDARY_LINK } else { PRIMARY_LINK }
                                        href="/login"
                                        data-testid="landing-login"
                                    >
                                        "Sign in"
                                    </a>
                                </div>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <ErrorBanner error=Signal::stored(Some(e)) /> }.into_any(),
                    }
                })}
            </Suspense>
            <p class="mt-8 text-sm text-slate-600 dark:text-slate-400">
                "Lost your password? " <a class=LINK href="/recover">
                    "Use your recovery code"
                </a>
            </p>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_of_joining_is_said() {
        let said = |first_account, mode| how_to_join(&RegistrationInfo { mode, first_account });
        assert!(said(true, RegistrationMode::Closed).contains("first account"));
        assert!(said(false, RegistrationMode::Open).contains("Anyone"));
        assert!(said(false, RegistrationMode::InviteOnly).contains("invite code"));
        assert!(said(false, RegistrationMode::Closed).contains("closed"));
    }
}
