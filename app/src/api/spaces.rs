//! Communities, groups, channels, DMs and group DMs. Every function needs a signed-in user and
//! asks `server::policy` before acting; outsiders get `NotFound`, never a name.

use crate::{
    error::AppError,
    model::spaces::{ChannelSummary, CommunityInvite, GroupSummary, Member, MySpaces},
};
use leptos::prelude::*;
use uuid::Uuid;

#[cfg(feature = "ssr")]
use {
    super::ctx::actor,
    crate::{
        model::spaces::CommunityRole,
        server::{invites::parse_limits, realtime::Signal, spaces},
    },
};

#[server(prefix = "/api/v1", endpoint = "spaces/mine")]
pub async fn list_my_spaces() -> Result<MySpaces, AppError> {
    let (state, me) = actor().await?;
    Ok(spaces::my_spaces(&state.db, me.id).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/create")]
pub async fn create_community(name: String, #[server(default)] description: String) -> Result<Uuid, AppError> {
    let (state, me) = actor().await?;
    let id =
        spaces::create_community(&state.db, &me, state.config.community_creation_mode, &name, &description).await?;
    state.realtime.publish(Signal::Resubscribe { users: vec![me.id] }).await;
    Ok(id)
}

#[server(prefix = "/api/v1", endpoint = "communities/members")]
pub async fn community_members(community_id: Uuid) -> Result<Vec<Member>, AppError> {
    let (state, me) = actor().await?;
    Ok(spaces::members(&state.db, me.id, community_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/invites/create")]
pub async fn create_community_invite(
    community_id: Uuid,
    #[server(default)] max_uses: String,
    #[server(default)] expires_in_hours: String,
) -> Result<CommunityInvite, AppError> {
    let (state, me) = actor().await?;
    let (max_uses, hours) = parse_limits(&max_uses, &expires_in_hours)?;
    Ok(spaces::create_invite(&state.db, me.id, community_id, max_uses, hours).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/join")]
pub async fn join_community(code: String) -> Result<Uuid, AppError> {
    let (state, me) = actor().await?;
    let community_id = spaces::join(&state.db, me.id, &code).await?;
    state.realtime.publish(Signal::Resubscribe { users: vec![me.id] }).await;
    Ok(community_id)
}

#[server(prefix = "/api/v1", endpoint = "communities/leave")]
pub async fn leave_community(community_id: Uuid) -> Result<(), AppError> {
    let (state, me) = actor().await?;
    spaces::leave(&state.db, me.id, community_id).await?;
    state.realtime.publish(Signal::LeftCommunity { user_id: me.id, community_id }).await;
    Ok(())
}

#[server(prefix = "/api/v1", endpoint = "communities/kick")]
pub async fn kick_member(community_id: Uuid, user_id: Uuid) -> Result<(), AppError> {
    let (state, me) = actor().await?;
    spaces::kick(&state.db, me.id, community_id, user_id).await?;
    state.realtime.publish(Signal::LeftCommunity { user_id, community_id }).await;
    Ok(())
}

#[server(prefix = "/api/v1", endpoint = "communities/ban")]
pub async fn ban_member(community_id: Uuid, user_id: Uuid, #[server(default)] reason: String) -> Result<(), AppError> {
    let (state, me) = actor().await?;
    spaces::ban(&state.db, me.id, community_id, user_id, &reason).await?;
    state.realtime.publish(Signal::LeftCommunity { user_id, community_id }).await;
    Ok(())
}

#[server(prefix = "/api/v1", endpoint = "communities/unban")]
pub async fn unban_member(community_id: Uuid, user_id: Uuid) -> Result<(), AppError> {
    let (state, me) = actor().await?;
    Ok(spaces::unban(&state.db, me.id, community_id, user_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/set_role")]
pub async fn set_member_role(community_id: Uuid, user_id: Uuid, role: String) -> Result<(), AppError> {
    let (state, me) = actor().await?;
    let role = CommunityRole::parse_assignable(&role)
        .ok_or_else(|| AppError::invalid("role", "must be member, moderator or admin"))?;
    spaces::set_role(&state.db, me.id, community_id, user_id, role).await?;
    state.realtime.publish(Signal::Resubscribe { users: vec![user_id] }).await;
    Ok(())
}

#[server(prefix = "/api/v1", endpoint = "groups/create")]
pub async fn create_group(
    community_id: Uuid,
    name: String,
    #[server(default)] private: bool,
) -> Result<GroupSummary, AppError> {
    let (state, me) = actor().await?;
    let group = spaces::create_group(&state.db, me.id, community_id, &name, private).await?;
    state.realtime.publish(Signal::CommunityChanged { community_id }).await;
    Ok(group)
}

#[server(prefix = "/api/v1", endpoint = "groups/add_member")]
pub async fn add_group_member(group_id: Uuid, user_id: Uuid) -> Result<(), AppError> {
    let (state, me) = actor().await?;
    spaces::add_group_member(&state.db, me.id, group_id, user_id).await?;
    state.realtime.publish(Signal::Resubscribe { users: vec![user_id] }).await;
    Ok(())
}

#[server(prefix = "/api/v1", endpoint = "channels/create")]
pub async fn create_channel(group_id: Uuid, name: String) -> Result<ChannelSummary, AppError> {
    let (state, me) = actor().await?;
    let (channel, community_id) = spaces::create_channel(&state.db, me.id, group_id, &name).await?;
    state.realtime.publish(Signal::CommunityChanged { community_id }).await;
    Ok(channel)
}

#[server(prefix = "/api/v1", endpoint = "channels/get")]
pub async fn get_channel(channel_id: Uuid) -> Result<ChannelSummary, AppError> {
    let (state, me) = actor().await?;
    Ok(spaces::channel_summary(&state.db, me.id, channel_id).await?)
}

/// Everyone who reads a channel (the member list beside a conversation).
#[server(prefix = "/api/v1", endpoint = "channels/members")]
pub async fn channel_member_list(channel_id: Uuid) -> Result<Vec<Member>, AppError> {
    let (state, me) = actor().await?;
    Ok(spaces::channel_member_list(&state.db, me.id, channel_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "dms/open")]
pub async fn open_dm(user_id: Uuid) -> Result<ChannelSummary, AppError> {
    let (state, me) = actor().await?;
    let dm = spaces::open_dm(&state.db, me.id, user_id).await?;
    state.realtime.publish(Signal::Resubscribe { users: vec![me.id, user_id] }).await;
    Ok(dm)
}

#[server(prefix = "/api/v1", endpoint = "dms/create_group")]
pub async fn create_group_dm(members: Vec<Uuid>) -> Result<ChannelSummary, AppError> {
    let (state, me) = actor().await?;
    if members.len() > spaces::MAX_GROUP_DM {
        return Err(AppError::invalid("members", "too many members"));
    }
    let dm = spaces::create_group_dm(&state.db, me.id, &members).await?;
    let mut users = members.clone();
    users.push(me.id);
    state.realtime.publish(Signal::Resubscribe { users }).await;
    Ok(dm)
}
