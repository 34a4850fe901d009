//! The one DM channel of a pair of users (`user_low` < `user_high`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dm_pairs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_low: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_high: Uuid,
    #[sea_orm(unique)]
    pub channel_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
