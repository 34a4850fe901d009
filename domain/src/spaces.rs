//! Spaces: communities, groups, channels, DMs and group DMs, membership and moderation.
//! Every function takes the acting user and asks `policy` before touching anything.

use super::{
    accounts::random_code,
    error::{ServerResult, is_unique_violation},
    policy::{self, Standing, share_a_community},
    realtime::{Signal, Subscriptions},
    state::Core,
    throttle::{self, Limit},
};
use chrono::{DateTime, Duration, Utc};
use entity::{
    channel, channel_member, community, community_ban, community_invite, community_member, dm_pair, group,
    group_member, user,
};
use protocol::{
    error::AppError,
    model::{
        CommunityCreationMode,
        spaces::{
            ChannelKind, ChannelSummary, CommunityInvite, CommunityRole, CommunitySummary, GroupSummary,
            HistoryVisibility, Member, MySpaces, UserRef,
        },
    },
};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Condition, Expr, ExprTrait, OnConflict},
};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

pub const MAX_GROUP_DM: usize = 10;
/// Invite codes one user may try per hour (joining, or guessing).
pub const JOINS_PER_HOUR: i32 = 20;
pub const MIN_GROUP_DM: usize = 3;

fn name_field(field: &str, value: &str, max: usize) -> Result<String, AppError> {
    protocol::validation::shown_name(value, max).map_err(|m| AppError::invalid(field, m))?;
    Ok(value.trim().to_owned())
}

fn user_ref(u: &user::Model) -> UserRef {
    UserRef { id: u.id, username: u.username.clone(), display_name: u.display_name.clone() }
}

async fn insert_channel(
    db: &impl ConnectionTrait,
    kind: ChannelKind,
    group_id: Option<Uuid>,
    name: &str,
    creator: Uuid,
) -> ServerResult<channel::Model> {
    Ok(channel::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(kind.to_db()),
        group_id: Set(group_id),
        name: Set(name.to_owned()),
        last_seq: Set(0),
        created_by: Set(creator),
        created_at: Set(Utc::now()),
        history: Set(HistoryVisibility::default().to_db()),
        disappear_after_s: Set(None),
    }
    .insert(db)
    .await?)
}

/// Creates a community owned by `actor`, with a public "General" group and a "general" channel.
pub async fn create_community(
    core: &Core,
    actor: &user::Model,
    mode: CommunityCreationMode,
    name: &str,
    description: &str,
) -> ServerResult<Uuid> {
    let db = &core.db;
    policy::may_create_community(actor, mode)?;
    let name = name_field("name", name, 64)?;
    if description.chars().count() > 2048 {
        return Err(AppError::invalid("description", "must be at most 2048 characters").into());
    }
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let community = community::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        description: Set(description.trim().to_owned()),
        created_by: Set(actor.id),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    community_member::ActiveModel {
        community_id: Set(community.id),
        user_id: Set(actor.id),
        role: Set(CommunityRole::Owner.to_db()),
        joined_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let general = group::ActiveModel {
        id: Set(Uuid::now_v7()),
        community_id: Set(community.id),
        name: Set("General".into()),
        private: Set(false),
        created_by: Set(actor.id),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    insert_channel(&txn, ChannelKind::Text, Some(general.id), "general", actor.id).await?;
    txn.commit().await?;
    core.realtime.publish(Signal::Resubscribe { users: vec![actor.id] }).await;
    Ok(community.id)
}

/// The communities a user is in (with their role), the groups and channels of those they can see,
/// and the DMs and group DMs they are in: what `my_spaces` shows and what sockets subscribe to.
struct Visible {
    roles: HashMap<Uuid, CommunityRole>,
    groups: Vec<group::Model>,
    channels: Vec<channel::Model>,
    direct_ids: Vec<Uuid>,
    /// When the user joined each community, was added to each private group, joined each DM.
    joined: HashMap<Uuid, DateTime<Utc>>,
}

async fn visible(db: &impl ConnectionTrait, user: Uuid) -> ServerResult<Visible> {
    let memberships =
        community_member::Entity::find().filter(community_member::Column::UserId.eq(user)).all(db).await?;
    let roles: HashMap<Uuid, CommunityRole> =
        memberships.iter().map(|m| (m.community_id, CommunityRole::from_db(m.role))).collect();
    let mut joined: HashMap<Uuid, DateTime<Utc>> = memberships.iter().map(|m| (m.community_id, m.joined_at)).collect();
    let added = group_member::Entity::find().filter(group_member::Column::UserId.eq(user)).all(db).await?;
    joined.extend(added.iter().map(|g| (g.group_id, g.added_at)));
    let my_private: BTreeSet<Uuid> = added.into_iter().map(|g| g.group_id).collect();
    let groups: Vec<group::Model> = group::Entity::find()
        .filter(group::Column::CommunityId.is_in(roles.keys().copied()))
        .order_by_asc(group::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .filter(|g| !g.private || my_private.contains(&g.id))
        .collect();
    let channels = channel::Entity::find()
        .filter(channel::Column::GroupId.is_in(groups.iter().map(|g| g.id)))
        .order_by_asc(channel::Column::CreatedAt)
        .all(db)
        .await?;
    let direct = channel_member::Entity::find().filter(channel_member::Column::UserId.eq(user)).all(db).await?;
    joined.extend(direct.iter().map(|m| (m.channel_id, m.joined_at)));
    let direct_ids: Vec<Uuid> = direct.into_iter().map(|m| m.channel_id).collect();
    Ok(Visible { roles, groups, channels, direct_ids, joined })
}

/// When `user` could first read a channel of `group`: joining its community, and for a private
/// group being added to it, whichever came last.
fn text_since(joined: &HashMap<Uuid, DateTime<Utc>>, group: &group::Model) -> Option<DateTime<Utc>> {
    let community = joined.get(&group.community_id).copied();
    if group.private { Ord::max(community, joined.get(&group.id).copied()) } else { community }
}

/// The same, for one channel (one or two queries).
async fn access_since(
    db: &impl ConnectionTrait,
    user: Uuid,
    ch: &channel::Model,
) -> ServerResult<Option<DateTime<Utc>>> {
    let Some(group_id) = ch.group_id else {
        let member = channel_member::Entity::find_by_id((ch.id, user)).one(db).await?;
        return Ok(member.map(|m| m.joined_at));
    };
    let Some(group) = group::Entity::find_by_id(group_id).one(db).await? else { return Ok(None) };
    let mut joined = HashMap::new();
    if let Some(m) = community_member::Entity::find_by_id((group.community_id, user)).one(db).await? {
        joined.insert(group.community_id, m.joined_at);
    }
    if group.private
        && let Some(g) = group_member::Entity::find_by_id((group.id, user)).one(db).await?
    {
        joined.insert(group.id, g.added_at);
    }
    Ok(text_since(&joined, &group))
}

/// Everyone who may read a channel (the actor must be one of them): a public group's channel is
/// read by the whole community, a private group's by its members, a DM or group DM by its members.
/// Senders encrypt every message to exactly these users' devices.
pub async fn channel_members(db: &impl ConnectionTrait, actor: Uuid, channel_id: Uuid) -> ServerResult<Vec<Uuid>> {
    let visible = policy::visible_channel(db, channel_id, actor).await?;
    let group = match visible.channel.group_id {
        Some(id) => group::Entity::find_by_id(id).one(db).await?,
        None => None,
    };
    let users = match group {
        Some(g) if !g.private => community_member::Entity::find()
            .filter(community_member::Column::CommunityId.eq(g.community_id))
            .all(db)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect(),
        Some(g) => group_member::Entity::find()
            .filter(group_member::Column::GroupId.eq(g.id))
            .all(db)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect(),
        None => channel_member::Entity::find()
            .filter(channel_member::Column::ChannelId.eq(channel_id))
            .all(db)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect(),
    };
    Ok(users)
}

/// What a user's sockets subscribe to: every channel they may read, with its community.
pub async fn subscriptions(db: &impl ConnectionTrait, user: Uuid) -> ServerResult<Subscriptions> {
    let v = visible(db, user).await?;
    let community_of: HashMap<Uuid, Uuid> = v.groups.iter().map(|g| (g.id, g.community_id)).collect();
    let mut channels: HashMap<Uuid, Option<Uuid>> =
        v.channels.iter().filter_map(|c| Some((c.id, Some(*community_of.get(&c.group_id?)?)))).collect();
    channels.extend(v.direct_ids.iter().map(|id| (*id, None)));
    Ok(Subscriptions { channels, communities: v.roles.keys().copied().collect() })
}

/// Everything `user` belongs to: communities with the groups and channels they can see, DMs and group DMs.
pub async fn my_spaces(core: &Core, user: Uuid) -> ServerResult<MySpaces> {
    let db = &core.db;
    let Visible { roles, groups, channels, direct_ids, joined } = visible(db, user).await?;
    let communities = community::Entity::find()
        .filter(community::Column::Id.is_in(roles.keys().copied()))
        .order_by_asc(community::Column::CreatedAt)
        .all(db)
        .await?;

    let summaries = communities
        .into_iter()
        .map(|c| CommunitySummary {
            id: c.id,
            my_role: roles[&c.id],
            groups: groups
                .iter()
                .filter(|g| g.community_id == c.id)
                .map(|g| GroupSummary {
                    id: g.id,
                    name: g.name.clone(),
                    private: g.private,
                    channels: channels
                        .iter()
                        .filter(|ch| ch.group_id == Some(g.id))
                        .map(|ch| text_summary(ch, text_since(&joined, g)))
                        .collect(),
                })
                .collect(),
            name: c.name,
            description: c.description,
        })
        .collect();

    let mut direct = Vec::new();
    for ch in channel::Entity::find()
        .filter(channel::Column::Id.is_in(direct_ids))
        .filter(channel::Column::Kind.ne(ChannelKind::Notes.to_db()))
        .order_by_asc(channel::Column::CreatedAt)
        .all(db)
        .await?
    {
        direct.push(direct_summary(db, &ch, joined.get(&ch.id).copied()).await?);
    }
    Ok(MySpaces { communities: summaries, direct })
}

async fn direct_summary(
    db: &impl ConnectionTrait,
    ch: &channel::Model,
    since: Option<DateTime<Utc>>,
) -> ServerResult<ChannelSummary> {
    let ids: Vec<Uuid> = channel_member::Entity::find()
        .filter(channel_member::Column::ChannelId.eq(ch.id))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    let members = user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .order_by_asc(user::Column::UsernameKey)
        .all(db)
        .await?;
    Ok(ChannelSummary {
        id: ch.id,
        kind: ChannelKind::from_db(ch.kind),
        name: ch.name.clone(),
        members: members.iter().map(user_ref).collect(),
        history: HistoryVisibility::from_db(ch.history),
        since: since.map(|t| t.to_rfc3339()),
        disappear_after_s: disappear_after(ch),
    })
}

/// A channel's disappearing-message timer, as the wire says it.
fn disappear_after(ch: &channel::Model) -> Option<u32> {
    ch.disappear_after_s.and_then(|s| u32::try_from(s).ok())
}

fn text_summary(ch: &channel::Model, since: Option<DateTime<Utc>>) -> ChannelSummary {
    ChannelSummary {
        id: ch.id,
        kind: ChannelKind::Text,
        name: ch.name.clone(),
        members: vec![],
        history: HistoryVisibility::from_db(ch.history),
        since: since.map(|t| t.to_rfc3339()),
        disappear_after_s: disappear_after(ch),
    }
}

/// Creates a group (community admins and above) with a "general" channel. A private group starts
/// with its creator as its only member.
pub async fn create_group(
    core: &Core,
    actor: Uuid,
    community_id: Uuid,
    name: &str,
    private: bool,
) -> ServerResult<GroupSummary> {
    let db = &core.db;
    policy::may_manage_community(policy::standing(db, community_id, actor).await?.member()?)?;
    let name = name_field("name", name, 64)?;
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let g = group::ActiveModel {
        id: Set(Uuid::now_v7()),
        community_id: Set(community_id),
        name: Set(name),
        private: Set(private),
        created_by: Set(actor),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    if private {
        group_member::ActiveModel { group_id: Set(g.id), user_id: Set(actor), added_at: Set(now) }.insert(&txn).await?;
    }
    let general = insert_channel(&txn, ChannelKind::Text, Some(g.id), "general", actor).await?;
    txn.commit().await?;
    core.realtime.publish(Signal::CommunityChanged { community_id }).await;
    let since = access_since(&core.db, actor, &general).await?;
    Ok(GroupSummary { id: g.id, name: g.name, private: g.private, channels: vec![text_summary(&general, since)] })
}

/// Creates a text channel in a group (community admins and above who can see the group).
pub async fn create_channel(core: &Core, actor: Uuid, group_id: Uuid, name: &str) -> ServerResult<ChannelSummary> {
    let db = &core.db;
    let visible = policy::visible_group(db, group_id, actor).await?;
    policy::may_manage_community(visible.role)?;
    let name = name_field("name", name, 64)?;
    let ch = insert_channel(db, ChannelKind::Text, Some(group_id), &name, actor).await?;
    core.realtime.publish(Signal::CommunityChanged { community_id: visible.group.community_id }).await;
    Ok(text_summary(&ch, access_since(db, actor, &ch).await?))
}

/// Sets whether people who join a community channel read its earlier messages (moderators and
/// above who can see the channel). DMs and group DMs keep history from when one joined.
pub async fn set_history(
    core: &Core,
    actor: Uuid,
    channel_id: Uuid,
    history: HistoryVisibility,
) -> ServerResult<ChannelSummary> {
    let db = &core.db;
    let visible = policy::visible_channel(db, channel_id, actor).await?;
    let (Some(role), Some(_)) = (visible.role, visible.channel.group_id) else {
        return Err(AppError::invalid("history", "only community channels have this setting").into());
    };
    policy::may_set_history(role)?;
    let mut active: channel::ActiveModel = visible.channel.into();
    active.history = Set(history.to_db());
    let ch = active.update(db).await?;
    core.realtime.publish(Signal::ChannelChanged { channel_id }).await;
    Ok(text_summary(&ch, access_since(db, actor, &ch).await?))
}

/// Sets (or, with `None`, stops) a channel's disappearing-message timer: messages sent from now
/// on disappear `seconds` later (1 hour to 30 days). Moderators and above in a community; anyone
/// in a DM or group DM. Messages already sent keep the time they had.
pub async fn set_disappearing(
    core: &Core,
    actor: Uuid,
    channel_id: Uuid,
    seconds: Option<u32>,
) -> ServerResult<ChannelSummary> {
    use protocol::model::spaces::{MAX_DISAPPEAR_S, MIN_DISAPPEAR_S};
    let db = &core.db;
    let visible = policy::visible_channel(db, channel_id, actor).await?;
    policy::may_set_disappearing(visible.role)?;
    if seconds.is_some_and(|s| !(MIN_DISAPPEAR_S..=MAX_DISAPPEAR_S).contains(&s)) {
        return Err(AppError::invalid("seconds", "must be from 1 hour to 30 days").into());
    }
    let mut active: channel::ActiveModel = visible.channel.into();
    active.disappear_after_s = Set(seconds.and_then(|s| i32::try_from(s).ok()));
    active.update(db).await?;
    core.realtime.publish(Signal::ChannelChanged { channel_id }).await;
    channel_summary(core, actor, channel_id).await
}

/// Adds a community member to a private group (moderators and above who are in the group).
pub async fn add_group_member(core: &Core, actor: Uuid, group_id: Uuid, target: Uuid) -> ServerResult<()> {
    let db = &core.db;
    let visible = policy::visible_group(db, group_id, actor).await?;
    policy::may_add_to_group(visible.role)?;
    if !visible.group.private {
        return Err(AppError::invalid("group", "Everyone in the community is already in a public group.").into());
    }
    if !matches!(policy::standing(db, visible.group.community_id, target).await?, Standing::Member(_)) {
        return Err(AppError::invalid("user", "is not a member of this community").into());
    }
    group_member::Entity::insert(group_member::ActiveModel {
        group_id: Set(group_id),
        user_id: Set(target),
        added_at: Set(Utc::now()),
    })
    .on_conflict_do_nothing_on([group_member::Column::GroupId, group_member::Column::UserId])
    .exec(db)
    .await?;
    core.realtime.publish(Signal::Resubscribe { users: vec![target] }).await;
    // The group's channels have a new reader: open member panels reload.
    core.realtime.publish(Signal::MembersChanged { community_id: visible.group.community_id }).await;
    Ok(())
}

/// Creates a community invite code (community admins and above).
pub async fn create_invite(
    core: &Core,
    actor: Uuid,
    community_id: Uuid,
    max_uses: Option<i32>,
    expires_in_hours: Option<i64>,
) -> ServerResult<CommunityInvite> {
    let db = &core.db;
    policy::may_manage_community(policy::standing(db, community_id, actor).await?.member()?)?;
    let now = Utc::now();
    // 12 characters from a 32-letter alphabet, without separators.
    let code = random_code(3).replace('-', "");
    let invite = community_invite::ActiveModel {
        id: Set(Uuid::now_v7()),
        community_id: Set(community_id),
        code: Set(code),
        created_by: Set(actor),
        max_uses: Set(max_uses),
        uses: Set(0),
        expires_at: Set(expires_in_hours.map(|h| now + Duration::hours(h))),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(CommunityInvite {
        code: invite.code,
        community_id,
        max_uses: invite.max_uses,
        uses: invite.uses,
        expires_at: invite.expires_at.map(|e| e.to_rfc3339()),
    })
}

/// Joins the community of an invite code (and so its public groups). Banned users are refused.
pub async fn join(core: &Core, actor: Uuid, code: &str) -> ServerResult<Uuid> {
    let community_id = join_community(&core.db, actor, code).await?;
    core.realtime.publish(Signal::Resubscribe { users: vec![actor] }).await;
    core.realtime.publish(Signal::MembersChanged { community_id }).await;
    Ok(community_id)
}

async fn join_community(db: &DatabaseConnection, actor: Uuid, code: &str) -> ServerResult<Uuid> {
    let code = super::accounts::normalize_code(code);
    let invalid = || AppError::invalid("code", "This invite code is not valid (unknown, used up or expired).");
    if code.len() > 16 {
        return Err(invalid().into());
    }
    let now = Utc::now();
    // Every attempt counts (atomically), so codes cannot be guessed at any useful speed.
    throttle::take(db, &[Limit::new(format!("join:{actor}"), JOINS_PER_HOUR, Duration::hours(1))], now).await?;
    let invite = community_invite::Entity::find()
        .filter(community_invite::Column::Code.eq(&code))
        .one(db)
        .await?
        .ok_or_else(invalid)?;
    if policy::may_join(policy::standing(db, invite.community_id, actor).await?)? == policy::Joining::AlreadyIn {
        return Ok(invite.community_id);
    }
    let txn = crate::db::begin_write(db).await?;
    let used = community_invite::Entity::update_many()
        .col_expr(community_invite::Column::Uses, Expr::col(community_invite::Column::Uses).add(1))
        .filter(community_invite::Column::Id.eq(invite.id))
        .filter(
            Condition::any()
                .add(community_invite::Column::MaxUses.is_null())
                .add(Expr::col(community_invite::Column::Uses).lt(Expr::col(community_invite::Column::MaxUses))),
        )
        .filter(
            Condition::any()
                .add(community_invite::Column::ExpiresAt.is_null())
                .add(community_invite::Column::ExpiresAt.gt(now)),
        )
        .exec(&txn)
        .await?;
    if used.rows_affected != 1 {
        return Err(invalid().into());
    }
    let inserted = community_member::ActiveModel {
        community_id: Set(invite.community_id),
        user_id: Set(actor),
        role: Set(CommunityRole::Member.to_db()),
        joined_at: Set(now),
    }
    .insert(&txn)
    .await;
    match inserted {
        Ok(_) => txn.commit().await?,
        // Joined twice at once: the other request won; nothing to do.
        Err(e) if is_unique_violation(&e) => return Ok(invite.community_id),
        Err(e) => return Err(e.into()),
    }
    Ok(invite.community_id)
}

/// Removes `user` from the community and from its private groups.
async fn remove_member(db: &impl ConnectionTrait, community_id: Uuid, user: Uuid) -> ServerResult<()> {
    let groups: Vec<Uuid> = group::Entity::find()
        .filter(group::Column::CommunityId.eq(community_id))
        .all(db)
        .await?
        .into_iter()
        .map(|g| g.id)
        .collect();
    group_member::Entity::delete_many()
        .filter(group_member::Column::GroupId.is_in(groups))
        .filter(group_member::Column::UserId.eq(user))
        .exec(db)
        .await?;
    community_member::Entity::delete_by_id((community_id, user)).exec(db).await?;
    Ok(())
}

/// Leaves a community. The owner cannot leave (the community would have no owner).
pub async fn leave(core: &Core, actor: Uuid, community_id: Uuid) -> ServerResult<()> {
    let db = &core.db;
    policy::may_leave(policy::standing(db, community_id, actor).await?.member()?)?;
    let txn = crate::db::begin_write(db).await?;
    remove_member(&txn, community_id, actor).await?;
    txn.commit().await?;
    core.realtime.publish(Signal::LeftCommunity { user_id: actor, community_id }).await;
    core.realtime.publish(Signal::MembersChanged { community_id }).await;
    Ok(())
}

/// Removes a member (moderators and above, over lower roles). They may rejoin with an invite.
pub async fn kick(core: &Core, actor: Uuid, community_id: Uuid, target: Uuid) -> ServerResult<()> {
    let db = &core.db;
    let actor_role = policy::standing(db, community_id, actor).await?.member()?;
    policy::may_remove_members(actor_role)?;
    let target_role = match policy::standing(db, community_id, target).await? {
        Standing::Member(role) => role,
        _ => return Err(AppError::invalid("user", "is not a member of this community").into()),
    };
    policy::may_moderate(actor_role, target_role)?;
    let txn = crate::db::begin_write(db).await?;
    remove_member(&txn, community_id, target).await?;
    txn.commit().await?;
    core.realtime.publish(Signal::LeftCommunity { user_id: target, community_id }).await;
    core.realtime.publish(Signal::MembersChanged { community_id }).await;
    Ok(())
}

/// Bans a user (moderators and above, over lower roles): removed, and refused if they try to rejoin.
pub async fn ban(core: &Core, actor: Uuid, community_id: Uuid, target: Uuid, reason: &str) -> ServerResult<()> {
    let db = &core.db;
    let actor_role = policy::standing(db, community_id, actor).await?.member()?;
    policy::may_remove_members(actor_role)?;
    if reason.chars().count() > 500 {
        return Err(AppError::invalid("reason", "must be at most 500 characters").into());
    }
    match policy::standing(db, community_id, target).await? {
        Standing::Member(role) => policy::may_moderate(actor_role, role)?,
        Standing::Banned => return Ok(()),
        Standing::Stranger => {
            if user::Entity::find_by_id(target).one(db).await?.is_none() {
                return Err(AppError::invalid("user", "no such user").into());
            }
        }
    }
    let txn = crate::db::begin_write(db).await?;
    remove_member(&txn, community_id, target).await?;
    // Banned twice at once: the first ban stands, the second changes nothing.
    let ban = community_ban::ActiveModel {
        community_id: Set(community_id),
        user_id: Set(target),
        banned_by: Set(actor),
        reason: Set(reason.trim().to_owned()),
        created_at: Set(Utc::now()),
    };
    community_ban::Entity::insert(ban)
        .on_conflict(
            OnConflict::columns([community_ban::Column::CommunityId, community_ban::Column::UserId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    core.realtime.publish(Signal::LeftCommunity { user_id: target, community_id }).await;
    core.realtime.publish(Signal::MembersChanged { community_id }).await;
    Ok(())
}

/// Lifts a ban (moderators and above).
pub async fn unban(core: &Core, actor: Uuid, community_id: Uuid, target: Uuid) -> ServerResult<()> {
    let db = &core.db;
    policy::may_unban(policy::standing(db, community_id, actor).await?.member()?)?;
    community_ban::Entity::delete_by_id((community_id, target)).exec(db).await?;
    Ok(())
}

/// Changes a member's role (only below the actor's own).
pub async fn set_role(
    core: &Core,
    actor: Uuid,
    community_id: Uuid,
    target: Uuid,
    role: CommunityRole,
) -> ServerResult<()> {
    let db = &core.db;
    let actor_role = policy::standing(db, community_id, actor).await?.member()?;
    let target_role = match policy::standing(db, community_id, target).await? {
        Standing::Member(role) => role,
        _ => return Err(AppError::invalid("user", "is not a member of this community").into()),
    };
    policy::may_set_role(actor_role, target_role, role)?;
    community_member::Entity::update_many()
        .col_expr(community_member::Column::Role, Expr::value(role.to_db()))
        .filter(community_member::Column::CommunityId.eq(community_id))
        .filter(community_member::Column::UserId.eq(target))
        .exec(db)
        .await?;
    core.realtime.publish(Signal::Resubscribe { users: vec![target] }).await;
    core.realtime.publish(Signal::MembersChanged { community_id }).await;
    Ok(())
}

/// The members of a community (members only).
pub async fn members(core: &Core, actor: Uuid, community_id: Uuid) -> ServerResult<Vec<Member>> {
    let db = &core.db;
    policy::standing(db, community_id, actor).await?.member()?;
    let rows =
        community_member::Entity::find().filter(community_member::Column::CommunityId.eq(community_id)).all(db).await?;
    let roles: HashMap<Uuid, CommunityRole> =
        rows.iter().map(|m| (m.user_id, CommunityRole::from_db(m.role))).collect();
    let users = user::Entity::find()
        .filter(user::Column::Id.is_in(roles.keys().copied()))
        .order_by_asc(user::Column::UsernameKey)
        .all(db)
        .await?;
    Ok(users.iter().map(|u| Member { user: user_ref(u), role: roles[&u.id] }).collect())
}

/// Everyone who reads a channel, with their community role (`Member` in DMs and group DMs): the
/// member list beside a conversation. Same visibility as [`channel_members`].
pub async fn channel_member_list(core: &Core, actor: Uuid, channel_id: Uuid) -> ServerResult<Vec<Member>> {
    let db = &core.db;
    let ids = channel_members(db, actor, channel_id).await?;
    let visible = policy::visible_channel(db, channel_id, actor).await?;
    let community = match visible.channel.group_id {
        Some(id) => group::Entity::find_by_id(id).one(db).await?.map(|g| g.community_id),
        None => None,
    };
    let roles: HashMap<Uuid, CommunityRole> = match community {
        Some(c) => community_member::Entity::find()
            .filter(community_member::Column::CommunityId.eq(c))
            .filter(community_member::Column::UserId.is_in(ids.iter().copied()))
            .all(db)
            .await?
            .into_iter()
            .map(|m| (m.user_id, CommunityRole::from_db(m.role)))
            .collect(),
        None => HashMap::new(),
    };
    let users = user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .order_by_asc(user::Column::UsernameKey)
        .all(db)
        .await?;
    Ok(users
        .iter()
        .map(|u| Member { user: user_ref(u), role: roles.get(&u.id).copied().unwrap_or(CommunityRole::Member) })
        .collect())
}

/// The DM channel between `actor` and `other`, created on first use. Only people who share a
/// community can DM; anyone else is "not found", so user ids cannot be probed.
pub async fn open_dm(core: &Core, actor: Uuid, other: Uuid) -> ServerResult<ChannelSummary> {
    let dm = find_or_create_dm(&core.db, actor, other).await?;
    core.realtime.publish(Signal::Resubscribe { users: vec![actor, other] }).await;
    Ok(dm)
}

async fn find_or_create_dm(db: &DatabaseConnection, actor: Uuid, other: Uuid) -> ServerResult<ChannelSummary> {
    if actor == other {
        return Err(AppError::invalid("user", "You cannot DM yourself.").into());
    }
    if !share_a_community(db, actor, other).await? {
        return Err(AppError::NotFound.into());
    }
    let (low, high) = if actor < other { (actor, other) } else { (other, actor) };
    if let Some(pair) = dm_pair::Entity::find_by_id((low, high)).one(db).await? {
        let ch = channel::Entity::find_by_id(pair.channel_id).one(db).await?.ok_or(AppError::NotFound)?;
        return direct_summary(db, &ch, access_since(db, actor, &ch).await?).await;
    }
    let txn = crate::db::begin_write(db).await?;
    let ch = insert_channel(&txn, ChannelKind::Dm, None, "", actor).await?;
    let pair =
        dm_pair::ActiveModel { user_low: Set(low), user_high: Set(high), channel_id: Set(ch.id) }.insert(&txn).await;
    match pair {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            drop(txn);
            return Box::pin(find_or_create_dm(db, actor, other)).await;
        }
        Err(e) => return Err(e.into()),
    }
    // Both join at the same moment: either's "since" is the DM's start.
    let now = ch.created_at;
    for u in [low, high] {
        channel_member::ActiveModel { channel_id: Set(ch.id), user_id: Set(u), joined_at: Set(now) }
            .insert(&txn)
            .await?;
    }
    txn.commit().await?;
    direct_summary(db, &ch, access_since(db, actor, &ch).await?).await
}

/// The actor's own notes channel (made the first time): bookmarks and their notes are messages
/// there, encrypted like any, so only the actor's devices read them and the server cannot tell
/// which message a bookmark names. The pair (actor, actor) of `dm_pairs` keeps it one.
pub async fn notes_channel(core: &Core, actor: Uuid) -> ServerResult<Uuid> {
    let db = &core.db;
    if let Some(pair) = dm_pair::Entity::find_by_id((actor, actor)).one(db).await? {
        return Ok(pair.channel_id);
    }
    let txn = crate::db::begin_write(db).await?;
    let ch = insert_channel(&txn, ChannelKind::Notes, None, "", actor).await?;
    let pair = dm_pair::ActiveModel { user_low: Set(actor), user_high: Set(actor), channel_id: Set(ch.id) };
    match pair.insert(&txn).await {
        Ok(_) => {}
        // Made meanwhile (another device of the same person, at the same moment).
        Err(e) if is_unique_violation(&e) => {
            drop(txn);
            let pair = dm_pair::Entity::find_by_id((actor, actor)).one(db).await?.ok_or(AppError::NotFound)?;
            return Ok(pair.channel_id);
        }
        Err(e) => return Err(e.into()),
    }
    channel_member::ActiveModel { channel_id: Set(ch.id), user_id: Set(actor), joined_at: Set(ch.created_at) }
        .insert(&txn)
        .await?;
    txn.commit().await?;
    // The actor's open sockets follow it from now on (their other devices hear new bookmarks).
    core.realtime.publish(Signal::Resubscribe { users: vec![actor] }).await;
    Ok(ch.id)
}

/// A group DM of 3–10 people (the actor included), each sharing a community with the actor.
pub async fn create_group_dm(core: &Core, actor: Uuid, others: &[Uuid]) -> ServerResult<ChannelSummary> {
    let db = &core.db;
    if others.len() > MAX_GROUP_DM {
        return Err(AppError::invalid("members", "too many members").into());
    }
    let mut everyone: BTreeSet<Uuid> = others.iter().copied().collect();
    everyone.insert(actor);
    if everyone.len() < MIN_GROUP_DM || everyone.len() > MAX_GROUP_DM {
        return Err(AppError::invalid(
            "members",
            format!("A group DM has {MIN_GROUP_DM} to {MAX_GROUP_DM} people, you included."),
        )
        .into());
    }
    for &u in &everyone {
        if u != actor && !share_a_community(db, actor, u).await? {
            return Err(AppError::NotFound.into());
        }
    }
    let txn = crate::db::begin_write(db).await?;
    let ch = insert_channel(&txn, ChannelKind::GroupDm, None, "", actor).await?;
    for &u in &everyone {
        channel_member::ActiveModel { channel_id: Set(ch.id), user_id: Set(u), joined_at: Set(ch.created_at) }
            .insert(&txn)
            .await?;
    }
    txn.commit().await?;
    core.realtime.publish(Signal::Resubscribe { users: everyone.into_iter().collect() }).await;
    direct_summary(db, &ch, access_since(db, actor, &ch).await?).await
}

/// A channel the actor is in.
pub async fn channel_summary(core: &Core, actor: Uuid, channel_id: Uuid) -> ServerResult<ChannelSummary> {
    let db = &core.db;
    let visible = policy::visible_channel(db, channel_id, actor).await?;
    match ChannelKind::from_db(visible.channel.kind) {
        ChannelKind::Text => Ok(text_summary(&visible.channel, access_since(db, actor, &visible.channel).await?)),
        _ => direct_summary(db, &visible.channel, access_since(db, actor, &visible.channel).await?).await,
    }
}
