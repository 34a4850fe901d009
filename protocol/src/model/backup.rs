//! Wire types of the server-side key backup. The server stores what the client sealed: each Megolm
//! session key encrypted under a backup key the server never sees, filed under an opaque id the
//! client derives (so the server cannot tell which channel or session a key opens), and per backup
//! version the backup key itself, wrapped under the person's recovery key (`auth_data`).

use super::messages::Ciphertext;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Keys per upload, and per download page, at most.
pub const MAX_BACKUP_BATCH: usize = 500;
/// One sealed session key, at most (an exported Megolm session is about 230 bytes).
pub const MAX_BACKUP_KEY_BYTES: usize = 8 * 1024;
/// The wrapped backup key and its parameters, at most.
pub const MAX_AUTH_DATA_BYTES: usize = 4 * 1024;
/// Keys one backup version holds, at most.
pub const MAX_BACKUP_KEYS: u64 = 200_000;

/// A backup version: the algorithm the client used, the wrapped backup key, how many keys it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupVersion {
    pub id: Uuid,
    /// The client's name for its scheme (e.g. `chatalot.v1.xchacha20poly1305`); the server only
    /// stores it.
    pub algorithm: String,
    /// The backup key wrapped under the recovery key, with what is needed to unwrap it (opaque).
    pub auth_data: Ciphertext,
    pub keys: u64,
}

/// One backed-up session key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupKey {
    /// The client's opaque id for the session (e.g. a keyed hash of it): 1–64 characters.
    pub key_id: String,
    pub sealed: Ciphertext,
}

/// One page of a backup, in `key_id` order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPage {
    pub keys: Vec<BackupKey>,
    /// Pass as `after` for the next page; `None` at the end.
    pub next: Option<String>,
}
