//! A channel: a community text channel (in a group), a DM or a group DM.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "channels")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// 0 community text channel, 1 DM, 2 group DM.
    pub kind: i16,
    pub group_id: Option<Uuid>,
    pub name: String,
    /// The sequence number of the channel's latest event.
    pub last_seq: i64,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    /// 0: members read from when they joined; 1: the whole history.
    pub history: i16,
    /// Messages sent while this is set disappear this many seconds later.
    pub disappear_after_s: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
