use super::RedirectIfSignedIn;
use crate::{
    api::auth::Recover,
    components::{
        form::{ErrorBanner, Field, LINK, PasswordField, SubmitButton},
        layout::AuthCard,
    },
};
use leptos::{form::ActionForm, prelude::*};
use leptos_meta::Title;

#[component]
pub fn RecoverPage() -> impl IntoView {
    let action = ServerAction::<Recover>::new();
    let error = Signal::derive(move || action.value().get().and_then(Result::err));
    view! {
        <Title text="Reset your password" />
        <RedirectIfSignedIn />
        <AuthCard
            title="Reset your password"
            subtitle="With the recovery code you saved when you registered. This signs out every other session."
        >
            <ActionForm action attr:class="space-y-4" attr:id="recover-form">
                <ErrorBanner error />
                <Field name="username" label="Username" autocomplete="username" error />
                <Field
                    name="recovery_code"
                    label="Recovery code"
                    autocomplete="off"
                    hint="Like ABCD-EFGH-JKLM-NPQR"
                    error
                />
                <PasswordField
                    name="new_password"
                    label="New password"
                    autocomplete="new-password"
                    hint="At least 8 characters"
                    error
                />
                <SubmitButton label="Reset password" busy_label="Resetting…" pending=action.pending() />
            </ActionForm>
            <p class="mt-6 text-center text-sm">
                <a class=LINK href="/login">
                    "Back to sign in"
                </a>
            </p>
        </AuthCard>
    }
}
