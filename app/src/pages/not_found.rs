use crate::components::{form::LINK, layout::AuthCard};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found" />
        <AuthCard title="Page not found">
            <p class="text-center text-sm">
                <a class=LINK href="/">
                    "Go to Chatalot"
                </a>
            </p>
        </AuthCard>
    }
}
