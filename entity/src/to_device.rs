//! An opaque payload for one device, kept until that device acknowledges it.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "to_device")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub recipient_user: Uuid,
    pub recipient_device: String,
    pub sender_user: Uuid,
    pub sender_device: String,
    #[sea_orm(column_type = "Blob")]
    pub payload: Vec<u8>,
    pub created_at: DateTimeUtc,
}

/// The payload is never printed.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToDevice")
            .field("id", &self.id)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
