use super::RedirectIfSignedIn;
use crate::{
    api::auth::{Register, registration_status},
    components::{
        form::{ErrorBanner, Field, LINK, PasswordField, SubmitButton},
        layout::AuthCard,
    },
    model::{RegistrationInfo, RegistrationMode},
};
use leptos::{form::ActionForm, prelude::*};
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn RegisterPage() -> impl IntoView {
    let action = ServerAction::<Register>::new();
    let error = Signal::derive(move || action.value().get().and_then(Result::err));
    let info = Resource::new(|| (), |_| registration_status());
    let invite_from_link = use_query_map().with_untracked(|q| q.get("invite"));
    view! {
        <Title text="Create an account" />
        <RedirectIfSignedIn />
        <AuthCard title="Create an account">
            <Suspense fallback=|| {
                view! { <p>"Loading…"</p> }
            }>
                {move || {
                    let invite_from_link = invite_from_link.clone();
                    Suspend::new(async move {
                        match info.await {
                            Err(e) => view! { <ErrorBanner error=Signal::stored(Some(e)) /> }.into_any(),
                            Ok(RegistrationInfo { mode: RegistrationMode::Closed, first_account: false }) => {
                                view! {
                                    <p class="text-sm" data-testid="registration-closed">
                                        "Registration is closed on this instance. Ask its owner for an account."
                                    </p>
                                }
                                    .into_any()
                            }
                            Ok(info) => {
                                view! {
                                    <ActionForm action attr:class="space-y-4" attr:id="register-form">
                                        {info
                                            .first_account
                                            .then(|| {
                                                view! {
                                                    <p
                                                        data-testid="first-account"
                                                        class="rounded-lg bg-indigo-50 px-3 py-2 text-sm text-indigo-900 dark:bg-indigo-950 dark:text-indigo-100"
                                                    >
                                                        "This is the first account on this instance: it will be the owner."
                                                    </p>
                                                }
                                            })}
                                        <ErrorBanner error />
                                        <Field
                                            name="username"
                                            label="Username"
                                            autocomplete="username"
                                            hint="3–32 letters, digits, '_', '.' or '-'"
                                            error
                                        />
                                        <Field name="display_name" label="Display name" autocomplete="nickname" error />
                                        <PasswordField
                                            name="password"
                                            label="Password"
                                            autocomplete="new-password"
                                            hint="At least 8 characters"
                                            error
                                        />
                                        {(info.mode == RegistrationMode::InviteOnly && !info.first_account)
                                            .then(|| {
                                                view! {
                                                    <Field
                                                        name="invite_code"
                                                        label="Invite code"
                                                        autocomplete="off"
                                                        value=invite_from_link.clone()
                                                        error
                                                    />
                                                }
                                            })}
                                        <SubmitButton
                                            label="Create account"
                                            busy_label="Creating account…"
                                            pending=action.pending()
                                        />
                                    </ActionForm>
                                }
                                    .into_any()
                            }
                        }
                    })
                }}
            </Suspense>
            <p class="mt-6 text-center text-sm">
                "Already have an account? " <a class=LINK href="/login">
                    "Sign in"
                </a>
            </p>
        </AuthCard>
    }
}
