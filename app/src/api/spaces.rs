//! Communities, groups, channels, DMs and group DMs. Every function needs a signed-in user and
//! asks `server::policy` before acting; outsiders get `NotFound`, never a name.

use crate::{
    error::AppError,
    model::spaces::{ChannelSummary, CommunityInvite, GroupSummary, HistoryVisibility, Member, MySpaces},
};
use leptos::prelude::*;
use uuid::Uuid;

#[cfg(feature = "ssr")]
use {
    crate::{model::spaces::CommunityRole, web::actor},
    domain::{invites::parse_limits, spaces},
};

#[server(prefix = "/api/v1", endpoint = "spaces/mine")]
pub async fn list_my_spaces() -> Result<MySpaces, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::my_spaces(&core, me.id).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/create")]
pub async fn create_community(name: String, #[server(default)] description: String) -> Result<Uuid, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::create_community(&core, &me, core.config.community_creation_mode, &name, &description).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/members")]
pub async fn community_members(community_id: Uuid) -> Result<Vec<Member>, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::members(&core, me.id, community_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/invites/create")]
pub async fn create_community_invite(
    community_id: Uuid,
    #[server(default)] max_uses: String,
    #[server(default)] expires_in_hours: String,
) -> Result<CommunityInvite, AppError> {
    let (core, me) = actor().await?;
    let (max_uses, hours) = parse_limits(&max_uses, &expires_in_hours)?;
    Ok(spaces::create_invite(&core, me.id, community_id, max_uses, hours).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/join")]
pub async fn join_community(code: String) -> Result<Uuid, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::join(&core, me.id, &code).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/leave")]
pub async fn leave_community(community_id: Uuid) -> Result<(), AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::leave(&core, me.id, community_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/kick")]
pub async fn kick_member(community_id: Uuid, user_id: Uuid) -> Result<(), AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::kick(&core, me.id, community_id, user_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/ban")]
pub async fn ban_member(community_id: Uuid, user_id: Uuid, #[server(default)] reason: String) -> Result<(), AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::ban(&core, me.id, community_id, user_id, &reason).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/unban")]
pub async fn unban_member(community_id: Uuid, user_id: Uuid) -> Result<(), AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::unban(&core, me.id, community_id, user_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "communities/set_role")]
pub async fn set_member_role(community_id: Uuid, user_id: Uuid, role: String) -> Result<(), AppError> {
    let (core, me) = actor().await?;
    let role = CommunityRole::parse_assignable(&role)
        .ok_or_else(|| AppError::invalid("role", "must be member, moderator or admin"))?;
    Ok(spaces::set_role(&core, me.id, community_id, user_id, role).await?)
}

#[server(prefix = "/api/v1", endpoint = "groups/create")]
pub async fn create_group(
    community_id: Uuid,
    name: String,
    #[server(default)] private: bool,
) -> Result<GroupSummary, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::create_group(&core, me.id, community_id, &name, private).await?)
}

#[server(prefix = "/api/v1", endpoint = "groups/add_member")]
pub async fn add_group_member(group_id: Uuid, user_id: Uuid) -> Result<(), AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::add_group_member(&core, me.id, group_id, user_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "channels/create")]
pub async fn create_channel(group_id: Uuid, name: String) -> Result<ChannelSummary, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::create_channel(&core, me.id, group_id, &name).await?)
}

/// Whether people who join the channel read its earlier messages (moderators and above).
#[server(prefix = "/api/v1", endpoint = "channels/set_history")]
pub async fn set_channel_history(channel_id: Uuid, history: HistoryVisibility) -> Result<ChannelSummary, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::set_history(&core, me.id, channel_id, history).await?)
}

/// Messages sent here from now on disappear `seconds` later (1 hour to 30 days); none: they stay.
/// Moderators and above in a community; anyone in a DM or group DM.
#[server(prefix = "/api/v1", endpoint = "channels/set_disappearing")]
pub async fn set_disappearing(
    channel_id: Uuid,
    #[server(default)] seconds: Option<u32>,
) -> Result<ChannelSummary, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::set_disappearing(&core, me.id, channel_id, seconds).await?)
}

/// My own notes channel (made the first time): where my bookmarks live, encrypted for my devices.
#[server(prefix = "/api/v1", endpoint = "channels/notes")]
pub async fn notes_channel() -> Result<Uuid, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::notes_channel(&core, me.id).await?)
}

#[server(prefix = "/api/v1", endpoint = "channels/get")]
pub async fn get_channel(channel_id: Uuid) -> Result<ChannelSummary, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::channel_summary(&core, me.id, channel_id).await?)
}

/// Everyone who reads a channel (the member list beside a conversation).
#[server(prefix = "/api/v1", endpoint = "channels/members")]
pub async fn channel_member_list(channel_id: Uuid) -> Result<Vec<Member>, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::channel_member_list(&core, me.id, channel_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "dms/open")]
pub async fn open_dm(user_id: Uuid) -> Result<ChannelSummary, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::open_dm(&core, me.id, user_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "dms/create_group")]
pub async fn create_group_dm(members: Vec<Uuid>) -> Result<ChannelSummary, AppError> {
    let (core, me) = actor().await?;
    Ok(spaces::create_group_dm(&core, me.id, &members).await?)
}
