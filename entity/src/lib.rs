//! SeaORM entities: the Rust view of the tables that `migration` creates.
//!
//! Server-only. Nothing here crosses the wire: server functions return types from `app::model`.

pub mod auth_throttle;
pub mod channel;
pub mod channel_event;
pub mod channel_member;
pub mod community;
pub mod community_ban;
pub mod community_invite;
pub mod community_member;
pub mod device;
pub mod device_signature;
pub mod dm_pair;
pub mod fallback_key;
pub mod group;
pub mod group_member;
pub mod key_backup_key;
pub mod key_backup_version;
pub mod master_key;
pub mod message;
pub mod message_edit;
pub mod one_time_key;
pub mod pin;
pub mod read_cursor;
pub mod refresh_token;
pub mod registration_invite;
pub mod scheduled_message;
pub mod thread_read;
pub mod to_device;
pub mod user;
