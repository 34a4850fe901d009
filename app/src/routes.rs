//! The one route table, and the HTML shell the server renders around it.

use crate::pages::{
    channel::ChannelPage, home::HomePage, login::LoginPage, not_found::NotFound, recover::RecoverPage,
    register::RegisterPage, signed_in::SignedIn, welcome::WelcomePage,
};
use leptos::prelude::*;
use leptos_meta::{Title, provide_meta_context};
use leptos_router::{
    SsrMode,
    components::{ParentRoute, Route, Router, Routes},
    path,
};

/// The file name (without extension) of the built WASM bundle, JS glue and stylesheet.
pub const OUTPUT_NAME: &str = "chatalot";

/// The document around the app. Also sets the Content-Security-Policy with this response's nonce.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    use leptos::{hydration::HydrationScripts, nonce::use_nonce};
    use leptos_meta::MetaTags;
    if let (Some(nonce), Some(res)) = (use_nonce(), use_context::<leptos_axum::ResponseOptions>())
        && let Ok(value) = axum::http::HeaderValue::from_str(&crate::server_csp(Some(&nonce.to_string())))
    {
        res.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
    // Beside the bundle: under its versioned path when the server has one (content-addressed).
    let css = format!("/{}/{OUTPUT_NAME}.css", options.site_pkg_dir);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <link rel="stylesheet" href=css />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 dark:bg-slate-950 dark:text-slate-100 antialiased">
                <App />
            </body>
        </html>
    }
}

/// The application: every page, behind one router. Pages render fully on the server before the
/// response is sent (`SsrMode::Async`), so forms and redirects work without JavaScript.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title formatter=|page: String| {
            if page.is_empty() { "Chatalot".to_owned() } else { format!("{page} · Chatalot") }
        } />
        <Router>
            <Routes fallback=NotFound>
                // The signed-in frame (sidebar, live connection) stays while its pages change.
                <ParentRoute path=path!("") view=SignedIn ssr=SsrMode::Async>
                    <Route path=path!("/") view=HomePage ssr=SsrMode::Async />
                    <Route path=path!("/c/:id") view=ChannelPage ssr=SsrMode::Async />
                </ParentRoute>
                <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                <Route path=path!("/register") view=RegisterPage ssr=SsrMode::Async />
                <Route path=path!("/recover") view=RecoverPage ssr=SsrMode::Async />
                <Route path=path!("/welcome") view=WelcomePage ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}
