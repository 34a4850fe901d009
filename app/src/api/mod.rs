//! Server functions, one module per domain. Each is thin: read the request context,
//! call one service, map the error. Paths are stable (`/api/v1/...`) so that a cached WASM bundle
//! or the desktop app keeps working against a newer server.

pub mod auth;
pub mod backup;
pub mod emoji;
pub mod invites;
pub mod keys;
pub mod messages;
pub mod spaces;
