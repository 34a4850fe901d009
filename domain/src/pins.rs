//! Pinned messages: a list per channel, at most `MAX_PINS`, kept by moderators and above in a
//! community's channels and by anyone in a DM or group DM, read by everyone in the channel. The
//! server knows which message is pinned, by whom and when; what it says stays encrypted.

use super::{error::ServerResult, messages::envelope, policy, realtime::Signal, state::Core};
use chrono::Utc;
use entity::{channel, message, pin};
use protocol::{
    error::AppError,
    model::messages::{MAX_PINS, MessageKind, Pin},
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use std::collections::HashMap;
use uuid::Uuid;

/// Pins (`pinned`) or unpins a message, and tells the channel's readers. Pinning a pinned message,
/// or unpinning one that is not, changes nothing and succeeds.
pub async fn set_pinned(core: &Core, actor: Uuid, message_id: Uuid, pinned: bool) -> ServerResult<()> {
    let db = &core.db;
    let m = message::Entity::find_by_id(message_id).one(db).await?.ok_or(AppError::NotFound)?;
    let visible = policy::visible_channel(db, m.channel_id, actor).await?;
    if m.deleted_at.is_some() {
        return Err(AppError::NotFound.into());
    }
    policy::may_pin(visible.role)?;
    if MessageKind::from_db(m.kind) == MessageKind::Reaction {
        return Err(AppError::invalid("message_id", "is a reaction: pin the message it answers").into());
    }
    if m.thread_id.is_some() {
        return Err(AppError::invalid("message_id", "is a reply in a thread: pin the message that started it").into());
    }
    let channel_id = m.channel_id;
    let changed = if pinned {
        let txn = crate::db::begin_write(db).await?;
        // The channel's row is the lock: two pins at once are counted one after the other.
        channel::Entity::find_by_id(channel_id).lock_exclusive().one(&txn).await?.ok_or(AppError::NotFound)?;
        if pin::Entity::find_by_id((channel_id, message_id)).one(&txn).await?.is_some() {
            false
        } else {
            let count = pin::Entity::find().filter(pin::Column::ChannelId.eq(channel_id)).count(&txn).await?;
            if count >= MAX_PINS {
                return Err(AppError::invalid(
                    "message_id",
                    format!("this conversation has {MAX_PINS} pinned messages: unpin one first"),
                )
                .into());
            }
            pin::ActiveModel {
                channel_id: Set(channel_id),
                message_id: Set(message_id),
                pinned_by: Set(actor),
                pinned_at: Set(Utc::now()),
            }
            .insert(&txn)
            .await?;
            txn.commit().await?;
            true
        }
    } else {
        pin::Entity::delete_by_id((channel_id, message_id)).exec(db).await?.rows_affected > 0
    };
    if changed {
        core.realtime.publish(Signal::PinsChanged { channel_id }).await;
    }
    Ok(())
}

/// A channel's pinned messages, the latest pinned first, still encrypted.
pub async fn pins(core: &Core, actor: Uuid, channel_id: Uuid) -> ServerResult<Vec<Pin>> {
    let db = &core.db;
    policy::visible_channel(db, channel_id, actor).await?;
    let rows = pin::Entity::find()
        .filter(pin::Column::ChannelId.eq(channel_id))
        .order_by_desc(pin::Column::PinnedAt)
        .all(db)
        .await?;
    let mut messages: HashMap<Uuid, message::Model> = message::Entity::find()
        .filter(message::Column::Id.is_in(rows.iter().map(|p| p.message_id)))
        .filter(message::Column::DeletedAt.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    Ok(rows
        .into_iter()
        .filter_map(|p| {
            let m = messages.remove(&p.message_id)?;
            Some(Pin { message: envelope(&m), pinned_by: p.pinned_by, pinned_at: p.pinned_at.to_rfc3339() })
        })
        .collect())
}
