//! The domain: everything Chatalot decides and stores, with no UI and no HTTP. See ARCHITECTURE.md.
//!
//! Every state change is one **command** here: it asks [`policy`], commits, then publishes what
//! happened on the real-time bus ([`realtime`]). Server functions (`app::api`) and socket frames
//! (`server::gateway`) are adapters of a few lines around these commands; no SQL lives outside this
//! crate. Queries (history, member lists, spaces) take the same [`Core`] and ask the same policy.

pub mod accounts;
pub mod backup;
pub mod config;
pub mod db;
pub mod emoji;
pub mod error;
pub mod invites;
pub mod keys;
pub mod keys_directory;
pub mod messages;
pub mod password;
pub mod pins;
pub mod policy;
pub mod presence;
pub mod realtime;
pub mod receipts;
pub mod scheduled;
pub mod session;
pub mod spaces;
pub mod state;
pub mod throttle;
pub mod tokens;

pub use error::{ServerError, ServerResult};
pub use state::Core;
