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

/// Pages the server sends as plain HTML, without the WASM app: people who only sign in or register
/// should not download the chat and its encryption (about 700 KB). Their forms post without
/// JavaScript (the server answers with a redirect, errors and entered values in the query), and
/// [`PLAIN_PAGE_SCRIPT`] does the little a script adds there. Reached from inside the running app
/// (signing out), the same pages render in the app as usual.
pub const PLAIN_PAGES: &[&str] = &["/login", "/register", "/recover", "/welcome"];

/// The script of a plain page (inline, under the response's CSP nonce): the password fields'
/// Show/Hide toggle, and the submit button's busy label (the button is disabled after the form is
/// sent, and enabled again when the browser shows the page from its back/forward cache).
pub const PLAIN_PAGE_SCRIPT: &str = "document.addEventListener('click',e=>{\
const b=e.target.closest('[data-toggle-for]');if(!b)return;\
const i=b.parentElement.querySelector('input'),show=i.type==='password';\
i.type=show?'text':'password';b.textContent=show?'Hide':'Show';b.setAttribute('aria-pressed',show)});\
document.addEventListener('submit',e=>{const b=e.target.querySelector('button[data-busy]');\
if(b){b.dataset.label=b.textContent;b.textContent=b.dataset.busy;b.setAttribute('aria-busy','true');\
setTimeout(()=>{b.disabled=true})}});\
addEventListener('pageshow',e=>{if(e.persisted)for(const b of document.querySelectorAll('button[data-label]')){\
b.disabled=false;b.textContent=b.dataset.label;b.setAttribute('aria-busy','false')}});";

/// Whether the server sends `path` as a plain page (see [`PLAIN_PAGES`]).
pub fn is_plain_page(path: &str) -> bool {
    PLAIN_PAGES.contains(&path.trim_end_matches('/'))
}

/// The document around the app. Also sets the Content-Security-Policy with this response's nonce.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    use leptos::{hydration::HydrationScripts, nonce::use_nonce};
    use leptos_meta::MetaTags;
    let nonce = use_nonce();
    if let (Some(nonce), Some(res)) = (&nonce, use_context::<leptos_axum::ResponseOptions>())
        && let Ok(value) = axum::http::HeaderValue::from_str(&crate::server_csp(Some(&nonce.to_string())))
    {
        res.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
    // Beside the bundle: under its versioned path when the server has one (content-addressed).
    let css = format!("/{}/{OUTPUT_NAME}.css", options.site_pkg_dir);
    // The front page is plain too for a visitor without a session (it shows what the server is).
    let plain = use_context::<axum::http::request::Parts>().is_some_and(|parts| {
        is_plain_page(parts.uri.path()) || (parts.uri.path() == "/" && crate::web::session(&parts).is_none())
    });
    let scripts = if plain {
        view! { <script nonce=nonce.map(|n| n.to_string()) inner_html=PLAIN_PAGE_SCRIPT></script> }.into_any()
    } else {
        view! { <HydrationScripts options /> }.into_any()
    };
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <link rel="stylesheet" href=css />
                {scripts}
                <MetaTags />
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 dark:bg-slate-950 dark:text-slate-100 antialiased">
                <App />
            </body>
        </html>
    }
}

/// The tab's title: the page, the app, and how many messages are unread (if any).
pub fn title_text(page: &str, unread: u64) -> String {
    let count = match unread {
        0 => String::new(),
        1..=99 => format!("({unread}) "),
        _ => "(99+) ".to_owned(),
    };
    if page.is_empty() { format!("{count}Chatalot") } else { format!("{count}{page} · Chatalot") }
}

/// The application: every page, behind one router. Pages render fully on the server before the
/// response is sent (`SsrMode::Async`), so forms and redirects work without JavaScript.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title formatter=|page: String| title_text(&page, 0) />
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
