//! Authorization, decided in one place. Every server function and (later) every socket message
//! asks here before acting.
//!
//! Two rules shape every answer:
//! - Someone who may not see a thing gets `NotFound`, exactly as if it did not exist, so ids of
//!   private groups, channels and DMs reveal nothing, not even their names.
//! - Someone who may see a thing but not change it gets `Forbidden`.

use super::error::ServerResult;
use crate::{
    error::AppError,
    model::{
        CommunityCreationMode,
        spaces::{ChannelKind, CommunityRole},
    },
};
use entity::{channel, channel_member, community_ban, community_member, group, group_member, user};
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

/// Whether `actor` may create a community under `mode`.
pub fn may_create_community(actor: &user::Model, mode: CommunityCreationMode) -> Result<(), AppError> {
    match mode {
        CommunityCreationMode::Open => Ok(()),
        CommunityCreationMode::AdminOnly if actor.is_owner() || actor.is_admin => Ok(()),
        CommunityCreationMode::AdminOnly => Err(AppError::Forbidden),
    }
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
/// DM, as a participant.
pub async fn visible_channel(db: &impl ConnectionTrait, channel_id: Uuid, user: Uuid) -> ServerResult<VisibleChannel> {
    let channel = channel::Entity::find_by_id(channel_id).one(db).await?.ok_or(AppError::NotFound)?;
    match (ChannelKind::from_db(channel.kind), channel.group_id) {
        (ChannelKind::Text, Some(group_id)) => {
            let visible = visible_group(db, group_id, user).await?;
            Ok(VisibleChannel { channel, role: Some(visible.role) })
        }
        (ChannelKind::Dm | ChannelKind::GroupDm, _) => {
            let participant = channel_member::Entity::find()
                .filter(channel_member::Column::ChannelId.eq(channel.id))
                .filter(channel_member::Column::UserId.eq(user))
                .one(db)
                .await?;
            participant.ok_or(AppError::NotFound)?;
            Ok(VisibleChannel { channel, role: None })
        }
        (ChannelKind::Text, None) => Err(AppError::NotFound.into()),
    }
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
    fn outsiders_are_told_nothing_exists() {
        assert_eq!(Standing::Stranger.member(), Err(AppError::NotFound));
        assert_eq!(Standing::Banned.at_least(Member), Err(AppError::NotFound));
        assert_eq!(Standing::Member(Member).at_least(Admin), Err(AppError::Forbidden));
        assert_eq!(Standing::Member(Admin).at_least(Moderator), Ok(Admin));
    }
}
