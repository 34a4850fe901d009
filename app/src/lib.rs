//! Chatalot's user interface and server functions, shared by the server (`ssr`) and the browser
//! (`hydrate`). See ARCHITECTURE.md for the crate map.

#![recursion_limit = "256"]

pub mod api;
pub mod chat;
#[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
pub mod client;
pub mod components;
#[cfg(feature = "e2ee")]
pub mod crypto;
pub mod dates;
pub mod markdown;
pub mod pages;
pub mod poll;
pub mod routes;
pub mod split;
#[cfg(feature = "ssr")]
pub mod web;

/// The wire types, the error type and the input rules live in `protocol`, shared with the domain.
pub use protocol::{error, model, validation};

pub use routes::App;

#[cfg(feature = "ssr")]
pub use routes::shell;

/// The Content-Security-Policy: scripts only from this origin (plus this response's nonce for the
/// hydration bootstrap), WASM compilation allowed, no framing, no plugins.
#[cfg(feature = "ssr")]
pub fn server_csp(nonce: Option<&str>) -> String {
    let script = match nonce {
        Some(n) => format!("script-src 'self' 'wasm-unsafe-eval' 'nonce-{n}'"),
        None => "script-src 'self' 'wasm-unsafe-eval'".to_owned(),
    };
    format!(
        "default-src 'self'; {script}; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
         font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}
