//! One module per page.

pub mod channel;
pub mod home;
pub mod key_backup;
#[cfg(feature = "ssr")]
pub mod landing;
pub mod login;
pub mod not_found;
pub mod recover;
pub mod register;
pub mod signed_in;
pub mod welcome;

use crate::{api::auth::current_user, error::AppError, model::Me};
use leptos::prelude::*;

/// The signed-in user, loaded once per page (on the server during SSR, then reused by hydration).
pub(crate) fn user_resource() -> Resource<Result<Option<Me>, AppError>> {
    Resource::new(|| (), |_| current_user())
}

/// For pages only signed-out people need: sends signed-in users to the app.
#[component]
pub(crate) fn RedirectIfSignedIn() -> impl IntoView {
    let user = user_resource();
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                matches!(user.await, Ok(Some(_))).then(|| view! { <leptos_router::components::Redirect path="/" /> })
            })}
        </Suspense>
    }
}
