//! Presence: the status a user chose (stored, so it survives reconnects) and whether they are
//! connected anywhere (never stored: it travels between nodes as `Presence` signals).

use super::{error::ServerResult, realtime::Signal, state::Core};
use entity::user;
use protocol::{AppError, model::gateway::Presence};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};
use uuid::Uuid;

/// Stores the status `user` chose and shows it to everyone sharing one of `communities` with them
/// (invisible shows as offline). `Offline` is not a choice.
pub async fn set(
    core: &Core,
    user: &user::Model,
    status: Presence,
    communities: Vec<Uuid>,
) -> ServerResult<user::Model> {
    let Some(stored) = status.to_db() else {
        return Err(AppError::invalid("status", "choose invisible to appear offline").into());
    };
    let mut active = user.clone().into_active_model();
    active.presence = Set(stored);
    let user = active.update(&core.db).await?;
    connected(core, user.id, status, communities).await;
    Ok(user)
}

/// This node has a socket of `user_id`'s: everyone in `communities` sees them with `status`.
pub async fn connected(core: &Core, user_id: Uuid, status: Presence, communities: Vec<Uuid>) {
    let node = core.realtime.hub.node();
    core.realtime.publish(Signal::Presence { user_id, node, status, connected: true, communities }).await;
}

/// A socket of this node closed: if it was its user's last one here, the other nodes learn it.
pub async fn disconnected(core: &Core, socket: u64) {
    if let Some(offline) = core.realtime.hub.unregister(socket) {
        core.realtime.publish(offline).await;
    }
}

/// Shows "typing" in a channel the user may post in, for a few seconds. Someone invisible shows
/// nothing: typing would give away that they are there.
/// `user` is as the caller last loaded it; the hub knows a choice made since on another device.
pub async fn typing(core: &Core, user: &user::Model, channel_id: Uuid) -> ServerResult<()> {
    super::policy::visible_channel(&core.db, channel_id, user.id).await?;
    let invisible = Presence::from_db(user.presence) == Presence::Invisible
        || core.realtime.hub.chosen_presence(user.id) == Some(Presence::Invisible);
    if !invisible {
        core.realtime.publish(Signal::Typing { channel_id, user_id: user.id }).await;
    }
    Ok(())
}
