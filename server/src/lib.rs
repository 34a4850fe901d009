//! The Chatalot server: configuration loading, start-up, and the HTTP router.
//!
//! `router(state)` builds the whole application without a socket, so tests drive it with
//! `tower::ServiceExt::oneshot`; `main.rs` only parses the command line and calls [`run`].

pub mod backup;
pub mod config;
pub mod gateway;
pub mod http;
pub mod listen;
pub mod nats;
pub mod start;

pub use http::router;
pub use start::{StartError, run};
