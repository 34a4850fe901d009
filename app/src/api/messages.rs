//! Messages: send, edit, delete, history, catch-up. Ciphertext travels as base64 and is never read.

use crate::{
    error::AppError,
    model::messages::{ChannelEvent, Envelope, HistoryPage, Unread},
};
use leptos::prelude::*;
use uuid::Uuid;

#[cfg(feature = "ssr")]
use {
    super::ctx::actor,
    crate::{
        model::messages::{Ciphertext, MessageKind},
        server::{messages, realtime::Signal},
    },
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
) -> Result<Envelope, AppError> {
    let (state, me) = actor().await?;
    let kind = match kind.as_str() {
        "" => MessageKind::Text,
        other => MessageKind::parse(other).ok_or_else(|| AppError::invalid("kind", "must be text or file"))?,
    };
    let input =
        messages::Send { channel_id, device, client_txn, kind, reply_to, ciphertext: ciphertext(&ciphertext_b64)? };
    let stored = messages::send(&state.db, me.id, input).await?;
    if stored.fresh {
        state.realtime.publish(Signal::Event { event: stored.event() }).await;
    }
    Ok(stored.message)
}

#[server(prefix = "/api/v1", endpoint = "messages/edit")]
pub async fn edit_message(message_id: Uuid, ciphertext_b64: String) -> Result<ChannelEvent, AppError> {
    let (state, me) = actor().await?;
    let event = messages::edit(&state.db, me.id, message_id, ciphertext(&ciphertext_b64)?).await?;
    state.realtime.publish(Signal::Event { event: event.clone() }).await;
    Ok(event)
}

#[server(prefix = "/api/v1", endpoint = "messages/delete")]
pub async fn delete_message(message_id: Uuid) -> Result<ChannelEvent, AppError> {
    let (state, me) = actor().await?;
    let event = messages::delete(&state.db, me.id, message_id).await?;
    state.realtime.publish(Signal::Event { event: event.clone() }).await;
    Ok(event)
}

#[server(prefix = "/api/v1", endpoint = "messages/history")]
pub async fn message_history(
    channel_id: Uuid,
    #[server(default)] before_seq: Option<i64>,
    #[server(default)] limit: Option<u32>,
) -> Result<HistoryPage, AppError> {
    let (state, me) = actor().await?;
    Ok(messages::history(&state.db, me.id, channel_id, before_seq, limit).await?)
}

#[server(prefix = "/api/v1", endpoint = "messages/events")]
pub async fn channel_events(
    channel_id: Uuid,
    after_seq: i64,
    #[server(default)] limit: Option<u32>,
) -> Result<Vec<ChannelEvent>, AppError> {
    let (state, me) = actor().await?;
    Ok(messages::events_since(&state.db, me.id, channel_id, after_seq, limit).await?)
}

#[server(prefix = "/api/v1", endpoint = "messages/mark_read")]
pub async fn mark_read(channel_id: Uuid, seq: i64) -> Result<i64, AppError> {
    let (state, me) = actor().await?;
    let seq = messages::mark_read(&state.db, me.id, channel_id, seq).await?;
    state.realtime.publish(Signal::Read { user_id: me.id, channel_id, seq }).await;
    Ok(seq)
}

#[server(prefix = "/api/v1", endpoint = "messages/unread")]
pub async fn unread_counts() -> Result<Vec<Unread>, AppError> {
    let (state, me) = actor().await?;
    Ok(messages::unread_counts(&state.db, me.id).await?)
}
