//! A version of someone's key backup: the client's algorithm name and its wrapped backup key.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "key_backup_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub algorithm: String,
    #[sea_orm(column_type = "Blob")]
    pub auth_data: Vec<u8>,
    pub created_at: DateTimeUtc,
}

/// The wrapped key is never printed.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBackupVersion")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("auth_data", &format_args!("<{} bytes>", self.auth_data.len()))
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
