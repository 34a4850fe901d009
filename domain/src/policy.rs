//! Authorization, decided in one place. Every command and query of the domain asks here before
//! acting, whichever transport (server function or socket frame) brought it: the lookups
//! (`standing`, `visible_group`, `visible_channel`, `related`) say what a user can see, and the
//! `may_*` functions say what they may do with it.
//!
//! Two rules shape every answer:
//! - Someone who may not see a thing gets `NotFound`, exactly as if it did not exist, so ids of
//!   private groups, channels and DMs reveal nothing, not even their names.
//! - Someone who may see a thing but not change it gets `Forbidden`.

use super::error::ServerResult;
use entity::{channel, channel_member, community_ban, community_member, group, group_member, user};
use protocol::{
    error::AppError,
    model::{
        CommunityCreationMode,
        spaces::{ChannelKind, CommunityRole},
    },
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

/// Where a user stands in a community.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Stranger,
    Banned,
    Member(CommunityRole),
}

impl Standing {
    /// The member's role; strangers and banned users are told the community does not exist.
    pub fn member(self) -> Result<CommunityRole, AppError> {
        match self {
            Self::Member(role) => Ok(role),
            Self::Stranger | Self::Banned => Err(AppError::NotFound),
        }
    }

    /// The member's role if it is at least `min`.
    pub fn at_least(self, min: CommunityRole) -> Result<CommunityRole, AppError> {
        let role = self.member()?;
        if role >= min { Ok(role) } else { Err(AppError::Forbidden) }
    }
}

pub async fn standing(db: &impl ConnectionTrait, community: Uuid, user: Uuid) -> ServerResult<Standing> {
    if let Some(m) = community_member::Entity::find_by_id((community, user)).one(db).await? {
        return Ok(Standing::Member(CommunityRole::from_db(m.role)));
    }
    if community_ban::Entity::find_by_id((community, user)).one(db).await?.is_some() {
        return Ok(Standing::Banned);
    }
    Ok(Standing::Stranger)
}

fn allow(yes: bool) -> Result<(), AppError> {
    if yes { Ok(()) } else { Err(AppError::Forbidden) }
}

/// Whether `user` runs this instance: its owner or one of its admins.
pub fn is_instance_staff(user: &user::Model) -> bool {
    user.is_owner() || user.is_admin
}

/// Instance administration (registration invites, suspensions): the owner and admins.
pub fn may_administer(actor: &user::Model) -> Result<(), AppError> {
    allow(is_instance_staff(actor))
}

/// Whether `actor` may create a community under `mode`.
pub fn may_create_community(actor: &user::Model, mode: CommunityCreationMode) -> Result<(), AppError> {
    match mode {
        CommunityCreationMode::Open => Ok(()),
        CommunityCreationMode::AdminOnly => may_administer(actor),
    }
}

/// Suspending or reinstating `target`: instance staff, never the owner or oneself, and only the
/// owner may suspend an admin.
pub fn may_suspend(actor: &user::Model, target: &user::Model) -> Result<(), AppError> {
    may_administer(actor)?;
    allow(!target.is_owner() && target.id != actor.id && (!target.is_admin || actor.is_owner()))
}

/// Creating groups and channels, and community invite codes: admins and above.
pub fn may_manage_community(role: CommunityRole) -> Result<(), AppError> {
    allow(role >= CommunityRole::Admin)
}

/// Adding people to a private group: moderators and above (who can see the group).
pub fn may_add_to_group(role: CommunityRole) -> Result<(), AppError> {
    allow(role >= CommunityRole::Moderator)
}

/// Choosing whether newcomers read a channel's earlier messages: moderators and above.
pub fn may_set_history(role: CommunityRole) -> Result<(), AppError> {
    allow(role >= CommunityRole::Moderator)
}

/// Kicking and banning at all: moderators and above (whom, `may_moderate` says).
pub fn may_remove_members(role: CommunityRole) -> Result<(), AppError> {
    allow(role >= CommunityRole::Moderator)
}

/// Lifting a ban: moderators and above.
pub fn may_unban(role: CommunityRole) -> Result<(), AppError> {
    allow(role >= CommunityRole::Moderator)
}

/// Leaving a community: anyone but its owner (it would have no owner).
pub fn may_leave(role: CommunityRole) -> Result<(), AppError> {
    if role == CommunityRole::Owner {
        return Err(AppError::invalid("community", "The owner cannot leave their community."));
    }
    Ok(())
}

/// What joining a community by invite means for someone in this standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joining {
    New,
    /// A member already: nothing to do.
    AlreadyIn,
}

/// Joining by invite: anyone but the banned (who are told so: they know the community).
pub fn may_join(standing: Standing) -> Result<Joining, AppError> {
    match standing {
        Standing::Stranger => Ok(Joining::New),
        Standing::Member(_) => Ok(Joining::AlreadyIn),
        Standing::Banned => Err(AppError::invalid("code", "You are banned from this community.")),
    }
}

/// Sending from `device`: it must be one of the sender's registered devices, since recipients
/// trust a message by its sender's device key.
pub async fn may_send_from(db: &impl ConnectionTrait, actor: Uuid, device: &str) -> ServerResult<()> {
    let own = entity::device::Entity::find_by_id((actor, device.to_owned())).one(db).await?;
    own.map(drop).ok_or_else(|| AppError::invalid("device", "is not one of your registered devices").into())
}

/// Editing a message: its author only.
pub fn may_edit_message(actor: Uuid, author: Uuid) -> Result<(), AppError> {
    allow(actor == author)
}

/// Deleting a message: its author, or a community moderator and above (`role` is `None` in DMs).
pub fn may_delete_message(actor: Uuid, author: Uuid, role: Option<CommunityRole>) -> Result<(), AppError> {
    allow(actor == author || role.is_some_and(|r| r >= CommunityRole::Moderator))
}

/// Pinning and unpinning: moderators and above in a community's channels; anyone in a DM or
/// group DM (`role` is `None` there).
pub fn may_pin(role: Option<CommunityRole>) -> Result<(), AppError> {
    allow(role.is_none_or(|r| r >= CommunityRole::Moderator))
}

/// Setting a channel's disappearing-message timer: as pinning (moderators and above in a
/// community; anyone in a DM or group DM).
pub fn may_set_disappearing(role: Option<CommunityRole>) -> Result<(), AppError> {
    may_pin(role)
}

/// Registering a device: only for oneself.
pub fn may_register_device(actor: Uuid, owner: Uuid) -> Result<(), AppError> {
    allow(actor == owner)
}

/// Moderation (kick, ban, role changes) needs moderator or above and a strictly higher role
/// than the target's.
pub fn may_moderate(actor: CommunityRole, target: CommunityRole) -> Result<(), AppError> {
    if actor >= CommunityRole::Moderator && actor > target { Ok(()) } else { Err(AppError::Forbidden) }
}

/// Setting a role: only above both the target's current and new role; the owner role is never set
/// this way.
pub fn may_set_role(actor: CommunityRole, target: CommunityRole, new: CommunityRole) -> Result<(), AppError> {
    may_moderate(actor, target)?;
    if new == CommunityRole::Owner || new >= actor { Err(AppError::Forbidden) } else { Ok(()) }
}

/// A group the user can see: the group and the user's community role.
pub struct VisibleGroup {
    pub group: group::Model,
    pub role: CommunityRole,
}

/// The group, if `user` can see it: community members see public groups; private groups only
/// their members.
pub async fn visible_group(db: &impl ConnectionTrait, group_id: Uuid, user: Uuid) -> ServerResult<VisibleGroup> {
    let group = group::Entity::find_by_id(group_id).one(db).await?.ok_or(AppError::NotFound)?;
    let role = standing(db, group.community_id, user).await?.member()?;
    if group.private && group_member::Entity::find_by_id((group.id, user)).one(db).await?.is_none() {
        return Err(AppError::NotFound.into());
    }
    Ok(VisibleGroup { group, role })
}

/// A channel the user may read and post into.
pub struct VisibleChannel {
    pub channel: channel::Model,
    /// The user's community role, for channels in a community.
    pub role: Option<CommunityRole>,
}

/// The channel, if `user` is in it: for a community channel, through its group; for a DM or group
/// DM, as a participant. One query answers every case a member meets (the channel, its group, the
/// user's role and their place in a private group or the DM); only a refusal of a community channel
/// asks again, through [`visible_group`], so that it is worded the same (banned, or not found).
pub async fn visible_channel(db: &impl ConnectionTrait, channel_id: Uuid, user: Uuid) -> ServerResult<VisibleChannel> {
    use sea_orm::{
        FromQueryResult, Iterable,
        sea_query::{Alias, Condition, Expr, ExprTrait, Query},
    };
    // A joined row of `user`'s: the join's key, and its user column naming them.
    let of_user = |key: Expr, user_column: Expr| Condition::all().add(key).add(user_column.eq(user));
    let mut query = Query::select();
    query
        .columns(channel::Column::iter().map(|c| (channel::Entity, c)))
        .expr_as(Expr::col((group::Entity, group::Column::Private)), Alias::new("group_private"))
        .expr_as(Expr::col((community_member::Entity, community_member::Column::Role)), Alias::new("member_role"))
        .expr_as(Expr::col((group_member::Entity, group_member::Column::UserId)), Alias::new("in_group"))
        .expr_as(Expr::col((channel_member::Entity, channel_member::Column::UserId)), Alias::new("in_channel"))
        .from(channel::Entity)
        .left_join(
            group::Entity,
            Expr::col((group::Entity, group::Column::Id)).equals((channel::Entity, channel::Column::GroupId)),
        )
        .left_join(
            community_member::Entity,
            of_user(
                Expr::col((community_member::Entity, community_member::Column::CommunityId))
                    .equals((group::Entity, group::Column::CommunityId)),
                Expr::col((community_member::Entity, community_member::Column::UserId)),
            ),
        )
        .left_join(
            group_member::Entity,
            of_user(
                Expr::col((group_member::Entity, group_member::Column::GroupId))
                    .equals((group::Entity, group::Column::Id)),
                Expr::col((group_member::Entity, group_member::Column::UserId)),
            ),
        )
        .left_join(
            channel_member::Entity,
            of_user(
                Expr::col((channel_member::Entity, channel_member::Column::ChannelId))
                    .equals((channel::Entity, channel::Column::Id)),
                Expr::col((channel_member::Entity, channel_member::Column::UserId)),
            ),
        )
        .and_where(Expr::col((channel::Entity, channel::Column::Id)).eq(channel_id));
    let row = db.query_one(&query).await?.ok_or(AppError::NotFound)?;
    let channel = channel::Model::from_query_result(&row, "")?;
    let role: Option<i16> = row.try_get("", "member_role")?;
    let private: Option<bool> = row.try_get("", "group_private")?;
    let in_group: Option<Uuid> = row.try_get("", "in_group")?;
    let in_channel: Option<Uuid> = row.try_get("", "in_channel")?;
    match (ChannelKind::from_db(channel.kind), channel.group_id, role) {
        (ChannelKind::Text, Some(_), Some(role)) if private == Some(false) || in_group.is_some() => {
            Ok(VisibleChannel { channel, role: Some(CommunityRole::from_db(role)) })
        }
        (ChannelKind::Text, Some(_), Some(_)) => Err(AppError::NotFound.into()),
        // Not a member: banned or a stranger, said as the group's own check says it.
        (ChannelKind::Text, Some(group_id), None) => {
            visible_group(db, group_id, user).await?;
            Err(AppError::NotFound.into())
        }
        (ChannelKind::Dm | ChannelKind::GroupDm | ChannelKind::Notes, _, _) if in_channel.is_some() => {
            Ok(VisibleChannel { channel, role: None })
        }
        (ChannelKind::Dm | ChannelKind::GroupDm | ChannelKind::Notes, _, _) | (ChannelKind::Text, None, _) => {
            Err(AppError::NotFound.into())
        }
    }
}

/// Whether two users share at least one community (one query: b's memberships among a's communities).
pub async fn share_a_community(db: &impl ConnectionTrait, a: Uuid, b: Uuid) -> ServerResult<bool> {
    let of_a = sea_orm::sea_query::Query::select()
        .column(community_member::Column::CommunityId)
        .from(community_member::Entity)
        .and_where(community_member::Column::UserId.eq(a))
        .to_owned();
    let shared = community_member::Entity::find()
        .filter(community_member::Column::UserId.eq(b))
        .filter(community_member::Column::CommunityId.in_subquery(of_a))
        .one(db)
        .await?;
    Ok(shared.is_some())
}

/// Whether `a` may see `b`'s devices, claim their keys and send them to-device messages: the same
/// user, or users who share a community, a DM or a group DM. Everyone else is told `b` does not exist.
pub async fn related(db: &impl ConnectionTrait, a: Uuid, b: Uuid) -> ServerResult<bool> {
    if a == b || share_a_community(db, a, b).await? {
        return Ok(true);
    }
    // One query: b's DM and group-DM memberships among a's.
    let of_a = sea_orm::sea_query::Query::select()
        .column(channel_member::Column::ChannelId)
        .from(channel_member::Entity)
        .and_where(channel_member::Column::UserId.eq(a))
        .to_owned();
    let shared = channel_member::Entity::find()
        .filter(channel_member::Column::UserId.eq(b))
        .filter(channel_member::Column::ChannelId.in_subquery(of_a))
        .one(db)
        .await?;
    Ok(shared.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommunityRole::*;

    #[test]
    fn moderation_needs_a_higher_role() {
        for (actor, target, ok) in [
            (Owner, Admin, true),
            (Admin, Moderator, true),
            (Moderator, Member, true),
            (Moderator, Moderator, false),
            (Admin, Admin, false),
            (Member, Member, false),
            (Admin, Owner, false),
        ] {
            assert_eq!(may_moderate(actor, target).is_ok(), ok, "{actor:?} on {target:?}");
        }
    }

    #[test]
    fn roles_are_granted_only_below_your_own() {
        for (actor, target, new, ok) in [
            (Owner, Member, Admin, true),
            (Admin, Member, Moderator, true),
            (Admin, Member, Admin, false),
            (Admin, Moderator, Member, true),
            (Moderator, Member, Moderator, false),
            (Owner, Member, Owner, false),
        ] {
            assert_eq!(may_set_role(actor, target, new).is_ok(), ok, "{actor:?} sets {target:?} to {new:?}");
        }
    }

    #[test]
    fn message_authors_and_moderators() {
        let (me, you) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(may_edit_message(me, me).is_ok());
        assert_eq!(may_edit_message(me, you), Err(AppError::Forbidden));
        assert!(may_delete_message(me, me, None).is_ok());
        assert_eq!(may_delete_message(me, you, None), Err(AppError::Forbidden));
        assert_eq!(may_delete_message(me, you, Some(Member)), Err(AppError::Forbidden));
        assert!(may_delete_message(me, you, Some(Moderator)).is_ok());
    }

    #[test]
    fn thresholds() {
        for (role, manage, add, unban) in [
            (Owner, true, true, true),
            (Admin, true, true, true),
            (Moderator, false, true, true),
            (Member, false, false, false),
        ] {
            assert_eq!(may_manage_community(role).is_ok(), manage, "{role:?}");
            assert_eq!(may_add_to_group(role).is_ok(), add, "{role:?}");
            assert_eq!(may_unban(role).is_ok(), unban, "{role:?}");
        }
        assert!(may_leave(Owner).unwrap_err().is_field_error());
        assert_eq!(may_join(Standing::Stranger), Ok(Joining::New));
        assert_eq!(may_join(Standing::Member(Member)), Ok(Joining::AlreadyIn));
        assert!(may_join(Standing::Banned).unwrap_err().for_field("code").is_some());
        assert!(may_leave(Admin).is_ok());
    }

    #[test]
    fn outsiders_are_told_nothing_exists() {
        assert_eq!(Standing::Stranger.member(), Err(AppError::NotFound));
        assert_eq!(Standing::Banned.at_least(Member), Err(AppError::NotFound));
        assert_eq!(Standing::Member(Member).at_least(Admin), Err(AppError::Forbidden));
        assert_eq!(Standing::Member(Admin).at_least(Moderator), Ok(Admin));
    }
}
