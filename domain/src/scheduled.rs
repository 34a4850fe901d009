//! Scheduled messages: written and encrypted in the sender's browser, kept here until their time,
//! then sent as the sender with every rule of a send checked again (someone removed from the
//! channel, or whose device was removed, sends nothing). The server learns when and where, never
//! what. Delivery is a round every node runs; the send is idempotent per scheduled message, so
//! two nodes delivering the same one store it once.

use super::{
    error::{ServerError, ServerResult},
    messages::{self, Send, check_ciphertext},
    policy,
    state::Core,
};
use chrono::{DateTime, Duration, Utc};
use entity::{message, scheduled_message};
use protocol::{
    error::AppError,
    model::messages::{
        Ciphertext, MAX_SCHEDULE_AHEAD_DAYS, MAX_SCHEDULED_PER_PERSON, MIN_SCHEDULE_AHEAD_S, MessageKind,
        ScheduledMessage,
    },
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

/// What a person asks to send later.
pub struct Schedule {
    pub channel_id: Uuid,
    pub device: String,
    pub reply_to: Option<Uuid>,
    pub ciphertext: Ciphertext,
    pub deliver_at: DateTime<Utc>,
}

fn wire(m: scheduled_message::Model) -> ScheduledMessage {
    ScheduledMessage {
        id: m.id,
        channel_id: m.channel_id,
        sender_device: m.sender_device,
        reply_to: m.reply_to,
        ciphertext: Ciphertext(m.ciphertext),
        deliver_at: m.deliver_at.to_rfc3339(),
        created_at: m.created_at.to_rfc3339(),
    }
}

/// Keeps a message to send at `deliver_at` (10 seconds to a year ahead), in a channel the actor
/// may write in, from one of their devices; at most `MAX_SCHEDULED_PER_PERSON` waiting.
pub async fn schedule(core: &Core, actor: Uuid, input: Schedule) -> ServerResult<ScheduledMessage> {
    let db = &core.db;
    policy::visible_channel(db, input.channel_id, actor).await?;
    if input.device.is_empty() || input.device.len() > 64 {
        return Err(AppError::invalid("device", "must be 1–64 characters").into());
    }
    policy::may_send_from(db, actor, &input.device).await?;
    check_ciphertext(&input.ciphertext)?;
    let now = Utc::now();
    if input.deliver_at < now + Duration::seconds(MIN_SCHEDULE_AHEAD_S) {
        return Err(
            AppError::invalid("deliver_at", format!("must be at least {MIN_SCHEDULE_AHEAD_S} seconds ahead")).into()
        );
    }
    if input.deliver_at > now + Duration::days(MAX_SCHEDULE_AHEAD_DAYS) {
        return Err(AppError::invalid("deliver_at", "must be within a year").into());
    }
    if let Some(reply_to) = input.reply_to {
        let target = message::Entity::find_by_id(reply_to).one(db).await?;
        if !target
            .is_some_and(|t| t.channel_id == input.channel_id && MessageKind::from_db(t.kind) != MessageKind::Reaction)
        {
            return Err(AppError::invalid("reply_to", "is not a message of this channel").into());
        }
    }
    let txn = crate::db::begin_write(db).await?;
    let waiting =
        scheduled_message::Entity::find().filter(scheduled_message::Column::SenderId.eq(actor)).count(&txn).await?;
    if waiting >= MAX_SCHEDULED_PER_PERSON {
        return Err(AppError::invalid(
            "deliver_at",
            format!("you already have {MAX_SCHEDULED_PER_PERSON} messages waiting; cancel one first"),
        )
        .into());
    }
    let stored = scheduled_message::ActiveModel {
        id: Set(Uuid::now_v7()),
        channel_id: Set(input.channel_id),
        sender_id: Set(actor),
        sender_device: Set(input.device),
        reply_to: Set(input.reply_to),
        ciphertext: Set(input.ciphertext.0),
        deliver_at: Set(input.deliver_at),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(wire(stored))
}

/// My messages waiting to be sent, the soonest first (in channels I can still read).
pub async fn mine(core: &Core, actor: Uuid) -> ServerResult<Vec<ScheduledMessage>> {
    Ok(scheduled_message::Entity::find()
        .filter(scheduled_message::Column::SenderId.eq(actor))
        .order_by_asc(scheduled_message::Column::DeliverAt)
        .all(&core.db)
        .await?
        .into_iter()
        .map(wire)
        .collect())
}

/// Cancels one of my waiting messages (another's, or one already sent: not found).
pub async fn cancel(core: &Core, actor: Uuid, id: Uuid) -> ServerResult<()> {
    let done = scheduled_message::Entity::delete_many()
        .filter(scheduled_message::Column::Id.eq(id))
        .filter(scheduled_message::Column::SenderId.eq(actor))
        .exec(&core.db)
        .await?;
    if done.rows_affected == 0 {
        return Err(AppError::NotFound.into());
    }
    Ok(())
}

/// Sends what is due (up to 100 a round): each as its sender, under its own id, then forgets it.
/// A send the rules now refuse (the sender left the channel, their device was removed) is
/// dropped; one refused for the moment (the sender's rate limit) waits for the next round.
/// Returns how many were sent.
pub async fn deliver_due(core: &Core, now: DateTime<Utc>) -> ServerResult<usize> {
    let due = scheduled_message::Entity::find()
        .filter(scheduled_message::Column::DeliverAt.lte(now))
        .order_by_asc(scheduled_message::Column::DeliverAt)
        .limit(100)
        .all(&core.db)
        .await?;
    let mut sent = 0;
    for m in due {
        let input = Send {
            channel_id: m.channel_id,
            device: m.sender_device.clone(),
            client_txn: format!("scheduled:{}", m.id.simple()),
            kind: MessageKind::Text,
            reply_to: m.reply_to,
            thread_id: None,
            ciphertext: Ciphertext(m.ciphertext.clone()),
        };
        match messages::send_as(core, m.sender_id, input, m.id).await {
            Ok(stored) => sent += usize::from(stored.fresh),
            Err(ServerError::App(AppError::RateLimited { .. })) => continue,
            Err(ServerError::App(e)) => {
                tracing::info!(id = %m.id, error = %e, "a scheduled message was refused when due; dropped");
            }
            // The database: try again next round.
            Err(e) => return Err(e),
        }
        scheduled_message::Entity::delete_by_id(m.id).exec(&core.db).await?;
    }
    Ok(sent)
}
