//! A person's account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// As typed at registration (case preserved for display).
    pub username: String,
    /// `username` lower-cased; unique, so names differing only in case cannot coexist.
    #[sea_orm(unique)]
    pub username_key: String,
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// SHA-256 (hex) of the normalised recovery code.
    pub recovery_code_hash: String,
    /// `Some(1)` for the instance owner; unique, so there is at most one.
    #[sea_orm(unique)]
    pub owner_slot: Option<i16>,
    pub is_admin: bool,
    pub created_at: DateTimeUtc,
    pub password_changed_at: DateTimeUtc,
    /// Set while an instance admin has suspended the account.
    pub suspended_at: Option<DateTimeUtc>,
    /// The presence the user chose (0 online, 1 idle, 2 dnd, 3 invisible).
    pub presence: i16,
    /// Whether the user shares read receipts (and sees others'): in DMs, group DMs and small channels.
    pub read_receipts: bool,
}

impl Model {
    /// Whether this account owns the instance.
    pub fn is_owner(&self) -> bool {
        self.owner_slot.is_some()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::refresh_token::Entity")]
    RefreshToken,
}

impl Related<super::refresh_token::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RefreshToken.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
