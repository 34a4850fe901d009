//! Wire types: what server functions return. No database model crosses the wire.

use serde::{Deserialize, Serialize};

pub mod backup;
pub mod emoji;
pub mod gateway;
pub mod keys;
pub mod messages;
pub mod spaces;

/// The signed-in user, as the UI sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: uuid::Uuid,
    pub username: String,
    pub display_name: String,
    pub is_owner: bool,
    pub is_admin: bool,
    /// Whether this person shares read receipts (and sees others').
    #[serde(default = "yes")]
    pub read_receipts: bool,
}

fn yes() -> bool {
    true
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

/// Who may create communities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CommunityCreationMode {
    /// Instance owner and admins only.
    #[default]
    AdminOnly,
    /// Every account.
    Open,
}

/// What the registration page needs to know before showing its form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationInfo {
    pub mode: RegistrationMode,
    /// No account exists yet: the next one becomes the instance owner.
    pub first_account: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire format is a contract with cached bundles and the desktop app: changing it is a decision.
    #[test]
    fn wire_snapshots() {
        let me = Me {
            id: uuid::Uuid::nil(),
            username: "ann".into(),
            display_name: "Ann".into(),
            is_owner: true,
            is_admin: false,
            read_receipts: true,
        };
        assert_eq!(
            serde_json::to_string(&me).unwrap(),
            r#"{"id":"00000000-0000-0000-0000-000000000000","username":"ann","display_name":"Ann","is_owner":true,"is_admin":false,"read_receipts":true}"#
        );
        let invite =
            Invite { code: "ABCD-EFGH-JKLM".into(), max_uses: Some(2), uses: 1, expires_at: None, usable: true };
        assert_eq!(
            serde_json::to_string(&invite).unwrap(),
            r#"{"code":"ABCD-EFGH-JKLM","max_uses":2,"uses":1,"expires_at":null,"usable":true}"#
        );
        let info = RegistrationInfo { mode: RegistrationMode::InviteOnly, first_account: false };
        assert_eq!(serde_json::to_string(&info).unwrap(), r#"{"mode":"invite_only","first_account":false}"#);
    }
}
