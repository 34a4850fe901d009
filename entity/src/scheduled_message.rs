//! A message encrypted by its sender's browser, kept until its time to be sent.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scheduled_messages")]
pub struct Model {
    /// Becomes the message's id when it is sent (the sender's browser may have opened it under
    /// this id, and its replay check expects the same id again).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub channel_id: Uuid,
    pub sender_id: Uuid,
    pub sender_device: String,
    pub reply_to: Option<Uuid>,
    pub ciphertext: Vec<u8>,
    pub deliver_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
