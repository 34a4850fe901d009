//! One sealed session key in a backup version, under the client's opaque id for it.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "key_backup_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub version_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_id: String,
    #[sea_orm(column_type = "Blob")]
    pub sealed: Vec<u8>,
    pub updated_at: DateTimeUtc,
}

/// The sealed key is never printed.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBackupKey")
            .field("version_id", &self.version_id)
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
