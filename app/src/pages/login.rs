use super::RedirectIfSignedIn;
use crate::{
    api::auth::Login,
    components::{
        form::{ErrorBanner, Field, LINK, PasswordField, SubmitButton},
        layout::AuthCard,
    },
};
use leptos::{form::ActionForm, prelude::*};
use leptos_meta::Title;

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<Login>::new();
    let error = Signal::derive(move || action.value().get().and_then(Result::err));
    view! {
        <Title text="Sign in" />
        <RedirectIfSignedIn />
        <AuthCard title="Sign in">
            <ActionForm action attr:class="space-y-4" attr:id="login-form">
                <ErrorBanner error />
                <Field name="username" label="Username" autocomplete="username" error />
                <PasswordField name="password" label="Password" autocomplete="current-password" error />
                <SubmitButton label="Sign in" busy_label="Signing in…" pending=action.pending() />
            </ActionForm>
            <div class="mt-6 space-y-2 text-center text-sm">
                <p>
                    "New here? " <a class=LINK href="/register">
                        "Create an account"
                    </a>
                </p>
                <p>
                    "Forgot your password? " <a class=LINK href="/recover">
                        "Use your recovery code"
                    </a>
                </p>
            </div>
        </AuthCard>
    }
}
