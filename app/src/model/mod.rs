//! Wire types: what server functions return. No database model crosses the wire.

use serde::{Deserialize, Serialize};

/// The signed-in user, as the UI sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: uuid::Uuid,
    pub username: String,
    pub display_name: String,
    pub is_owner: bool,
    pub is_admin: bool,
}

/// A registration invite, as its creator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub code: String,
    pub max_uses: Option<i32>,
    pub uses: i32,
    /// RFC 3339, or `None` for never.
    pub expires_at: Option<String>,
    pub usable: bool,
}

/// How new accounts may be created on this instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationMode {
    /// Anyone may register.
    Open,
    /// A registration invite code is required (except for the very first account).
    #[default]
    InviteOnly,
    /// Nobody may register (except the very first account).
    Closed,
}

/// What the registration page needs to know before showing its form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationInfo {
    pub mode: RegistrationMode,
    /// No account exists yet: the next one becomes the instance owner.
    pub first_account: bool,
}
