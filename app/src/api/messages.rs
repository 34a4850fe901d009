//! Messages: send, edit, delete, history, catch-up. Ciphertext travels as base64 and is never read.

use crate::{
    error::AppError,
    model::messages::{ChannelEvent, EditHistory, Envelope, HistoryPage, Pin, Receipt, ScheduledMessage, Unread},
};
use leptos::prelude::*;
use uuid::Uuid;

#[cfg(feature = "ssr")]
use {
    crate::{
        model::messages::{Ciphertext, MessageKind},
        web::actor,
    },
    domain::{messages, pins, receipts, scheduled},
};

#[cfg(feature = "ssr")]
fn ciphertext(text: &str) -> Result<Ciphertext, AppError> {
    Ciphertext::from_base64(text).map_err(|m| AppError::invalid("ciphertext", m))
}

#[server(prefix = "/api/v1", endpoint = "messages/send")]
pub async fn send_message(
    channel_id: Uuid,
    device: String,
    client_txn: String,
    #[server(default)] kind: String,
    #[server(default)] reply_to: Option<Uuid>,
    ciphertext_b64: String,
    #[server(default)] thread_id: Option<Uuid>,
) -> Result<Envelope, AppError> {
    let (core, me) = actor().await?;
    let kind = match kind.as_str() {
        "" => MessageKind::Text,
        other => {
            MessageKind::parse(other).ok_or_else(|| AppError::invalid("kind", "must be text, file or reaction"))?
        }
    };
    let ciphertext = ciphertext(&ciphertext_b64)?;
    let input = messages::Send { channel_id, device, client_txn, kind, reply_to, thread_id, ciphertext };
    Ok(messages::send(&core, me.id, input).await?.message)
}

#[server(prefix = "/api/v1", endpoint = "messages/edit")]
pub async fn edit_message(message_id: Uuid, ciphertext_b64: String) -> Result<ChannelEvent, AppError> {
    let (core, me) = actor().await?;
    Ok(messages::edit(&core, me.id, message_id, ciphertext(&ciphertext_b64)?).await?)
}

#[server(prefix = "/api/v1", endpoint = "messages/delete")]
pub async fn delete_message(message_id: Uuid) -> Result<ChannelEvent, AppError> {
    let (core, me) = actor().await?;
    Ok(messages::delete(&core, me.id, message_id).await?)
}

/// A message and its earlier versions (edit history), still encrypted.
#[server(prefix = "/api/v1", endpoint = "messages/versions")]
pub async fn message_versions(message_id: Uuid) -> Result<EditHistory, AppError> {
    let (core, me) = actor().await?;
    Ok(messages::versions(&core, me.id, message_id).await?)
}

/// Pins (`pinned`) or unpins a message: moderators and above in a community, anyone in a DM.
#[server(prefix = "/api/v1", endpoint = "messages/pin")]
pub async fn pin_message(message_id: Uuid, pinned: bool) -> Result<(), AppError> {
    let (core, me) = actor().await?;
    Ok(pins::set_pinned(&core, me.id, message_id, pinned).await?)
}

/// A channel's pinned messages, the latest pinned first, still encrypted.
#[server(prefix = "/api/v1", endpoint = "messages/pins")]
pub async fn channel_pins(channel_id: Uuid) -> Result<Vec<Pin>, AppError> {
    let (core, me) = actor().await?;
    Ok(pins::pins(&core, me.id, channel_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "messages/history")]
pub async fn message_history(
    channel_id: Uuid,
    #[server(default)] before_seq: Option<i64>,
    #[server(default)] limit: Option<u32>,
) -> Result<HistoryPage, AppError> {
    let (core, me) = actor().await?;
    Ok(messages::history(&core, me.id, channel_id, before_seq, limit).await?)
}

/// The replies in the thread started on `root`, newest first, with their reactions.
#[server(prefix = "/api/v1", endpoint = "messages/thread")]
pub async fn thread_messages(
    root: Uuid,
    #[server(default)] before_seq: Option<i64>,
    #[server(default)] limit: Option<u32>,
) -> Result<HistoryPage, AppError> {
    let (core, me) = actor().await?;
    Ok(messages::thread_history(&core, me.id, root, before_seq, limit).await?)
}

/// I have read the thread started on `root` up to the reply created at `seq`.
#[server(prefix = "/api/v1", endpoint = "messages/thread_read")]
pub async fn mark_thread_read(root: Uuid, seq: i64) -> Result<i64, AppError> {
    let (core, me) = actor().await?;
    Ok(messages::mark_thread_read(&core, me.id, root, seq).await?)
}

#[server(prefix = "/api/v1", endpoint = "messages/events")]
pub async fn channel_events(
    channel_id: Uuid,
    after_seq: i64,
    #[server(default)] limit: Option<u32>,
) -> Result<Vec<ChannelEvent>, AppError> {
    let (core, me) = actor().await?;
    Ok(messages::events_since(&core, me.id, channel_id, after_seq, limit).await?)
}

#[server(prefix = "/api/v1", endpoint = "messages/mark_read")]
pub async fn mark_read(channel_id: Uuid, seq: i64) -> Result<i64, AppError> {
    let (core, me) = actor().await?;
    Ok(messages::mark_read(&core, me.id, channel_id, seq).await?)
}

/// How far the channel's other readers have read (read receipts): empty unless I share mine and
/// the channel is small; only from readers who share theirs.
#[server(prefix = "/api/v1", endpoint = "messages/receipts")]
pub async fn channel_receipts(channel_id: Uuid) -> Result<Vec<Receipt>, AppError> {
    let (core, me) = actor().await?;
    Ok(receipts::receipts(&core, me.id, channel_id).await?)
}

/// Keeps a message (encrypted here) to send at `deliver_at` (RFC 3339).
#[server(prefix = "/api/v1", endpoint = "messages/schedule")]
pub async fn schedule_message(
    channel_id: Uuid,
    device: String,
    ciphertext_b64: String,
    deliver_at: String,
    #[server(default)] reply_to: Option<Uuid>,
) -> Result<ScheduledMessage, AppError> {
    let (core, me) = actor().await?;
    let deliver_at = chrono::DateTime::parse_from_rfc3339(&deliver_at)
        .map_err(|_| AppError::invalid("deliver_at", "must be a date and time (RFC 3339)"))?
        .with_timezone(&chrono::Utc);
    let input =
        scheduled::Schedule { channel_id, device, reply_to, ciphertext: ciphertext(&ciphertext_b64)?, deliver_at };
    Ok(scheduled::schedule(&core, me.id, input).await?)
}

/// My messages waiting to be sent, the soonest first.
#[server(prefix = "/api/v1", endpoint = "messages/scheduled")]
pub async fn scheduled_messages() -> Result<Vec<ScheduledMessage>, AppError> {
    let (core, me) = actor().await?;
    Ok(scheduled::mine(&core, me.id).await?)
}

/// Cancels one of my waiting messages.
#[server(prefix = "/api/v1", endpoint = "messages/unschedule")]
pub async fn unschedule_message(id: Uuid) -> Result<(), AppError> {
    let (core, me) = actor().await?;
    Ok(scheduled::cancel(&core, me.id, id).await?)
}

#[server(prefix = "/api/v1", endpoint = "messages/unread")]
pub async fn unread_counts() -> Result<Vec<Unread>, AppError> {
    let (core, me) = actor().await?;
    Ok(messages::unread_counts(&core, me.id).await?)
}
