//! SeaORM entities: the Rust view of the tables that `migration` creates.
//!
//! Server-only. Nothing here crosses the wire: server functions return types from `app::model`.

pub mod auth_throttle;
pub mod refresh_token;
pub mod registration_invite;
pub mod user;
