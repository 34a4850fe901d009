//! Server-only code (`ssr`): configuration, state, services taking the database, authentication.

pub mod accounts;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod invites;
pub mod keys;
pub mod keys_directory;
pub mod messages;
pub mod password;
pub mod policy;
pub mod realtime;
pub mod session;
pub mod spaces;
pub mod state;
pub mod throttle;
pub mod tokens;
