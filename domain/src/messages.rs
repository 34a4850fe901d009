//! Messages as opaque envelopes: send (idempotent per client transaction id, from one of the
//! sender's registered devices), edit (author only, earlier versions kept), delete (author, or
//! moderator and above), read cursors, history and catch-up. The commands publish what they stored.
//! Every event in a channel takes the channel's next sequence number, inside the transaction
//! that writes it, so sequence numbers are gap-free and never reused.

use super::{
    error::{ServerResult, is_unique_violation},
    policy,
    realtime::Signal,
    state::Core,
    throttle::{self, Limit},
};
use chrono::Utc;
use entity::{channel, channel_event, message, message_edit, pin, read_cursor, thread_read};
use protocol::{
    error::AppError,
    model::messages::{
        ChannelEvent, Ciphertext, DEFAULT_PAGE, EarlierVersion, EditHistory, Envelope, EventKind, HistoryPage,
        MAX_CIPHERTEXT, MAX_PAGE, MAX_REACTIONS_PER_PERSON, MAX_VERSIONS, MessageKind, ThreadSummary, Unread,
    },
};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use std::collections::HashMap;
use uuid::Uuid;

pub fn envelope(m: &message::Model) -> Envelope {
    Envelope {
        id: m.id,
        channel_id: m.channel_id,
        seq: m.seq,
        sender_id: m.sender_id,
        sender_device: m.sender_device.clone(),
        client_txn: m.client_txn.clone(),
        kind: MessageKind::from_db(m.kind),
        reply_to: m.reply_to,
        thread_id: m.thread_id,
        ciphertext: Ciphertext(m.ciphertext.clone()),
        created_at: m.created_at.to_rfc3339(),
        edited_at: m.edited_at.map(|t| t.to_rfc3339()),
        expires_at: m.expires_at.map(|t| t.to_rfc3339()),
    }
}

/// Takes the channel's next sequence number. Call inside the transaction that writes the event:
/// the row lock (PostgreSQL) or write lock (SQLite) serialises concurrent writers.
async fn next_seq(txn: &impl ConnectionTrait, channel_id: Uuid) -> ServerResult<i64> {
    channel::Entity::update_many()
        .col_expr(channel::Column::LastSeq, Expr::col(channel::Column::LastSeq).add(1))
        .filter(channel::Column::Id.eq(channel_id))
        .exec(txn)
        .await?;
    let ch = channel::Entity::find_by_id(channel_id).one(txn).await?.ok_or(AppError::NotFound)?;
    Ok(ch.last_seq)
}

async fn record_event(
    txn: &impl ConnectionTrait,
    channel_id: Uuid,
    seq: i64,
    kind: EventKind,
    message_id: Uuid,
) -> ServerResult<()> {
    let kind = match kind {
        EventKind::Created => 0,
        EventKind::Edited => 1,
        EventKind::Deleted => 2,
    };
    channel_event::ActiveModel {
        channel_id: Set(channel_id),
        seq: Set(seq),
        kind: Set(kind),
        message_id: Set(message_id),
        created_at: Set(Utc::now()),
    }
    .insert(txn)
    .await?;
    Ok(())
}

pub(crate) fn check_ciphertext(c: &Ciphertext) -> Result<(), AppError> {
    if c.0.is_empty() {
        return Err(AppError::invalid("ciphertext", "must not be empty"));
    }
    if c.0.len() > MAX_CIPHERTEXT {
        return Err(AppError::invalid("ciphertext", format!("must be at most {MAX_CIPHERTEXT} bytes")));
    }
    Ok(())
}

pub struct Send {
    pub channel_id: Uuid,
    pub device: String,
    pub client_txn: String,
    pub kind: MessageKind,
    pub reply_to: Option<Uuid>,
    /// In a thread: its root (see [`store`] for the rules).
    pub thread_id: Option<Uuid>,
    pub ciphertext: Ciphertext,
}

/// What `send` stored, or found stored by an earlier try of the same send.
#[derive(Debug)]
pub struct Stored {
    pub message: Envelope,
    /// False for a retry: the original is returned and nothing new happened.
    pub fresh: bool,
}

impl Stored {
    /// The channel event of a fresh message.
    pub fn event(&self) -> ChannelEvent {
        ChannelEvent {
            channel_id: self.message.channel_id,
            seq: self.message.seq,
            kind: EventKind::Created,
            message: self.message.clone(),
        }
    }
}

/// Stores a message, publishes it and returns it. A retry with the same client transaction id
/// returns the original and publishes nothing.
pub async fn send(core: &Core, actor: Uuid, input: Send) -> ServerResult<Stored> {
    send_as(core, actor, input, Uuid::now_v7()).await
}

/// [`send`], the message taking the id `id` (a scheduled message keeps its id when it is sent).
pub(crate) async fn send_as(core: &Core, actor: Uuid, input: Send, id: Uuid) -> ServerResult<Stored> {
    let stored = store(&core.db, actor, input, core.config.messages_per_minute, id).await?;
    if stored.fresh {
        core.realtime.publish(Signal::Event { event: stored.event() }).await;
    }
    Ok(stored)
}

/// Stores a send unless it is a retry of a stored one; `per_minute` bounds the sender's sends.
async fn store(
    db: &sea_orm::DatabaseConnection,
    actor: Uuid,
    input: Send,
    per_minute: u32,
    id: Uuid,
) -> ServerResult<Stored> {
    let visible = policy::visible_channel(db, input.channel_id, actor).await?;
    // Sent while the channel's timer runs: it disappears that long after.
    let lifetime = visible.channel.disappear_after_s.map(|s| chrono::Duration::seconds(i64::from(s)));
    if input.client_txn.is_empty() || input.client_txn.len() > 64 {
        return Err(AppError::invalid("client_txn", "must be 1–64 characters").into());
    }
    if input.device.is_empty() || input.device.len() > 64 {
        return Err(AppError::invalid("device", "must be 1–64 characters").into());
    }
    policy::may_send_from(db, actor, &input.device).await?;
    check_ciphertext(&input.ciphertext)?;
    if let Some(original) = find_by_txn(db, actor, &input.client_txn).await? {
        return same_send(original, &input);
    }
    // A reply quotes, and a reaction answers, a message of this channel (not a reaction); a
    // reaction, a message that is still there.
    let reaction = input.kind == MessageKind::Reaction;
    if reaction && input.reply_to.is_none() {
        return Err(AppError::invalid("reply_to", "must name the message a reaction answers").into());
    }
    // Both in the same thread, or both outside any: a reaction is in the thread of the message it
    // answers, and a reply quotes a message of its own thread.
    if let Some(reply_to) = input.reply_to {
        let target = message::Entity::find_by_id(reply_to).one(db).await?;
        let fits = target.is_some_and(|t| {
            t.channel_id == input.channel_id
                && MessageKind::from_db(t.kind) != MessageKind::Reaction
                && !(reaction && t.deleted_at.is_some())
                && t.thread_id == input.thread_id
        });
        if !fits {
            return Err(AppError::invalid("reply_to", "is not a message of this channel or thread").into());
        }
    }
    // A thread starts on a message of this channel that is not itself in a thread, nor a
    // reaction, nor deleted (checked again, under the write lock, when the root counts the reply).
    if let Some(root) = input.thread_id {
        let root = message::Entity::find_by_id(root).one(db).await?;
        let fits = root.is_some_and(|r| {
            r.channel_id == input.channel_id
                && r.thread_id.is_none()
                && MessageKind::from_db(r.kind) != MessageKind::Reaction
                && r.deleted_at.is_none()
        });
        if !fits {
            return Err(AppError::invalid("thread_id", "is not a message of this channel a thread can start on").into());
        }
    }
    let txn = crate::db::begin_write(db).await?;
    // Counted inside the transaction, whichever path the send came by (a socket or a server
    // function); a retry of a stored send returned above and does not count.
    let now = Utc::now();
    let limit = Limit::new(format!("send:{actor}"), per_minute as i32, chrono::Duration::minutes(1));
    throttle::take(&txn, &[limit], now).await?;
    let seq = next_seq(&txn, input.channel_id).await?;
    // Counted after taking the sequence number: concurrent reactions in the channel wait here
    // for each other (the channel's row lock, or SQLite's write lock).
    if let (true, Some(target)) = (reaction, input.reply_to) {
        let mine = message::Entity::find()
            .filter(message::Column::ReplyTo.eq(target))
            .filter(message::Column::Kind.eq(MessageKind::Reaction.to_db()))
            .filter(message::Column::SenderId.eq(actor))
            .filter(message::Column::DeletedAt.is_null())
            .count(&txn)
            .await?;
        if mine >= MAX_REACTIONS_PER_PERSON {
            return Err(AppError::invalid(
                "reply_to",
                format!("already has {MAX_REACTIONS_PER_PERSON} of your reactions; remove one first"),
            )
            .into());
        }
    }
    let inserted = message::ActiveModel {
        id: Set(id),
        channel_id: Set(input.channel_id),
        seq: Set(seq),
        sender_id: Set(actor),
        sender_device: Set(input.device.clone()),
        client_txn: Set(input.client_txn.clone()),
        kind: Set(input.kind.to_db()),
        reply_to: Set(input.reply_to),
        thread_id: Set(input.thread_id),
        thread_replies: Set(0),
        thread_last_seq: Set(None),
        thread_last_at: Set(None),
        ciphertext: Set(input.ciphertext.0.clone()),
        created_at: Set(now),
        edited_at: Set(None),
        deleted_at: Set(None),
        expires_at: Set(lifetime.map(|l| now + l)),
    }
    .insert(&txn)
    .await;
    let m = match inserted {
        Ok(m) => m,
        // A concurrent retry of the same send won: return what it stored.
        Err(e) if is_unique_violation(&e) => {
            drop(txn);
            let original = find_by_txn(db, actor, &input.client_txn).await?.ok_or(AppError::NotFound)?;
            return same_send(original, &input);
        }
        Err(e) => return Err(e.into()),
    };
    if let (Some(root), false) = (m.thread_id, reaction) {
        count_reply(&txn, actor, root, &m).await?;
    }
    record_event(&txn, m.channel_id, seq, EventKind::Created, m.id).await?;
    txn.commit().await?;
    Ok(Stored { message: envelope(&m), fresh: true })
}

/// A new reply in the thread of `root`: the root counts it, and its author has read the thread
/// up to it. Fails (and so does the send) if the root was deleted since the send's checks.
async fn count_reply(txn: &impl ConnectionTrait, author: Uuid, root: Uuid, reply: &message::Model) -> ServerResult<()> {
    let counted = message::Entity::update_many()
        .col_expr(message::Column::ThreadReplies, Expr::col(message::Column::ThreadReplies).add(1))
        .col_expr(message::Column::ThreadLastSeq, Expr::value(reply.seq))
        .col_expr(message::Column::ThreadLastAt, Expr::value(reply.created_at))
        .filter(message::Column::Id.eq(root))
        .filter(message::Column::DeletedAt.is_null())
        .exec(txn)
        .await?;
    if counted.rows_affected == 0 {
        return Err(AppError::invalid("thread_id", "was deleted").into());
    }
    move_thread_cursor(txn, author, root, reply.seq).await
}

async fn find_by_txn(db: &impl ConnectionTrait, sender: Uuid, txn_id: &str) -> ServerResult<Option<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::SenderId.eq(sender))
        .filter(message::Column::ClientTxn.eq(txn_id))
        .one(db)
        .await?)
}

/// A retry must be the same send; reusing a transaction id for something else is a client bug.
fn same_send(original: message::Model, input: &Send) -> ServerResult<Stored> {
    if original.channel_id != input.channel_id {
        return Err(AppError::invalid("client_txn", "was already used for another message").into());
    }
    Ok(Stored { message: envelope(&original), fresh: false })
}

/// Replaces a message's ciphertext (author only); the previous version is kept.
pub async fn edit(core: &Core, actor: Uuid, message_id: Uuid, ciphertext: Ciphertext) -> ServerResult<ChannelEvent> {
    let db = &core.db;
    check_ciphertext(&ciphertext)?;
    let m = message::Entity::find_by_id(message_id).one(db).await?.ok_or(AppError::NotFound)?;
    policy::visible_channel(db, m.channel_id, actor).await?;
    if m.deleted_at.is_some() {
        return Err(AppError::NotFound.into());
    }
    policy::may_edit_message(actor, m.sender_id)?;
    if MessageKind::from_db(m.kind) == MessageKind::Reaction {
        return Err(AppError::invalid("message_id", "is a reaction: remove it and react again").into());
    }
    let kept = message_edit::Entity::find().filter(message_edit::Column::MessageId.eq(m.id)).count(db).await?;
    if kept >= MAX_VERSIONS {
        return Err(
            AppError::invalid("message_id", format!("was edited {MAX_VERSIONS} times: send a new message")).into()
        );
    }
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let seq = next_seq(&txn, m.channel_id).await?;
    message_edit::ActiveModel {
        id: Set(Uuid::now_v7()),
        message_id: Set(m.id),
        ciphertext: Set(m.ciphertext.clone()),
        replaced_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let mut active: message::ActiveModel = m.into();
    active.ciphertext = Set(ciphertext.0);
    active.edited_at = Set(Some(now));
    let m = active.update(&txn).await?;
    record_event(&txn, m.channel_id, seq, EventKind::Edited, m.id).await?;
    txn.commit().await?;
    let event = ChannelEvent { channel_id: m.channel_id, seq, kind: EventKind::Edited, message: envelope(&m) };
    core.realtime.publish(Signal::Event { event: event.clone() }).await;
    Ok(event)
}

/// A message and its earlier versions, oldest first, for whoever may read its channel (not of a
/// deleted message, whose versions are erased).
pub async fn versions(core: &Core, actor: Uuid, message_id: Uuid) -> ServerResult<EditHistory> {
    let db = &core.db;
    let m = message::Entity::find_by_id(message_id).one(db).await?.ok_or(AppError::NotFound)?;
    policy::visible_channel(db, m.channel_id, actor).await?;
    if m.deleted_at.is_some() {
        return Err(AppError::NotFound.into());
    }
    let earlier = message_edit::Entity::find()
        .filter(message_edit::Column::MessageId.eq(m.id))
        .order_by_asc(message_edit::Column::ReplacedAt)
        .order_by_asc(message_edit::Column::Id)
        .limit(MAX_VERSIONS)
        .all(db)
        .await?
        .into_iter()
        .map(|v| EarlierVersion { ciphertext: Ciphertext(v.ciphertext), replaced_at: v.replaced_at.to_rfc3339() })
        .collect();
    Ok(EditHistory { message: envelope(&m), earlier })
}

/// Deletes a message (its author, or a community moderator and above): the ciphertext and every
/// earlier version are erased; a tombstone event remains.
pub async fn delete(core: &Core, actor: Uuid, message_id: Uuid) -> ServerResult<ChannelEvent> {
    let db = &core.db;
    let m = message::Entity::find_by_id(message_id).one(db).await?.ok_or(AppError::NotFound)?;
    let visible = policy::visible_channel(db, m.channel_id, actor).await?;
    if m.deleted_at.is_some() {
        return Err(AppError::NotFound.into());
    }
    policy::may_delete_message(actor, m.sender_id, visible.role)?;
    erase(core, m).await?.ok_or_else(|| AppError::NotFound.into())
}

/// Erases a message (its ciphertext and earlier versions; its reactions; its thread, if it started
/// one) and leaves a tombstone event, published. `None` if it was erased already (by a concurrent
/// delete, or another node's expiry round): nothing then happens twice.
async fn erase(core: &Core, m: message::Model) -> ServerResult<Option<ChannelEvent>> {
    let db = &core.db;
    let txn = crate::db::begin_write(db).await?;
    // The channel's row first, as every writer takes it (a reply counted on its thread's first
    // message takes that row after the channel's): no deadlock with a concurrent send.
    let seq = next_seq(&txn, m.channel_id).await?;
    let now = Utc::now();
    let tombstone = message::Entity::update_many()
        .col_expr(message::Column::Ciphertext, Expr::value(Vec::<u8>::new()))
        .col_expr(message::Column::DeletedAt, Expr::value(now))
        .filter(message::Column::Id.eq(m.id))
        .filter(message::Column::DeletedAt.is_null())
        .exec(&txn)
        .await?;
    if tombstone.rows_affected == 0 {
        return Ok(None);
    }
    // As it is now, under the lock (a reply may have joined its thread since it was read).
    let m = message::Entity::find_by_id(m.id).one(&txn).await?.ok_or(AppError::NotFound)?;
    message_edit::Entity::delete_many().filter(message_edit::Column::MessageId.eq(m.id)).exec(&txn).await?;
    // Its reactions go with it (no client shows a reaction to a deleted message).
    message::Entity::update_many()
        .col_expr(message::Column::Ciphertext, Expr::value(Vec::<u8>::new()))
        .col_expr(message::Column::DeletedAt, Expr::value(now))
        .filter(message::Column::ReplyTo.eq(m.id))
        .filter(message::Column::Kind.eq(MessageKind::Reaction.to_db()))
        .filter(message::Column::DeletedAt.is_null())
        .exec(&txn)
        .await?;
    match (m.thread_id, MessageKind::from_db(m.kind)) {
        // A reply leaves its thread: the root counts one fewer, and its latest reply is the latest
        // one left.
        (Some(root), kind) if kind != MessageKind::Reaction => {
            let latest = message::Entity::find()
                .filter(message::Column::ThreadId.eq(root))
                .filter(message::Column::DeletedAt.is_null())
                .filter(message::Column::Kind.ne(MessageKind::Reaction.to_db()))
                .order_by_desc(message::Column::Seq)
                .one(&txn)
                .await?;
            message::Entity::update_many()
                .col_expr(message::Column::ThreadReplies, Expr::col(message::Column::ThreadReplies).sub(1))
                .col_expr(message::Column::ThreadLastSeq, Expr::value(latest.as_ref().map(|l| l.seq)))
                .col_expr(message::Column::ThreadLastAt, Expr::value(latest.map(|l| l.created_at)))
                .filter(message::Column::Id.eq(root))
                .filter(message::Column::ThreadReplies.gt(0))
                .exec(&txn)
                .await?;
        }
        // A thread goes with its first message: its replies and their reactions are erased too.
        (None, _) if m.thread_replies > 0 || m.thread_last_seq.is_some() => {
            use sea_orm::sea_query::Query;
            let in_thread = Query::select()
                .column(message::Column::Id)
                .from(message::Entity)
                .and_where(message::Column::ThreadId.eq(m.id))
                .to_owned();
            message_edit::Entity::delete_many()
                .filter(message_edit::Column::MessageId.in_subquery(in_thread))
                .exec(&txn)
                .await?;
            message::Entity::update_many()
                .col_expr(message::Column::Ciphertext, Expr::value(Vec::<u8>::new()))
                .col_expr(message::Column::DeletedAt, Expr::value(now))
                .filter(message::Column::ThreadId.eq(m.id))
                .filter(message::Column::DeletedAt.is_null())
                .exec(&txn)
                .await?;
        }
        _ => {}
    }
    // A deleted message is no longer pinned.
    let unpinned = pin::Entity::delete_many().filter(pin::Column::MessageId.eq(m.id)).exec(&txn).await?.rows_affected;
    record_event(&txn, m.channel_id, seq, EventKind::Deleted, m.id).await?;
    txn.commit().await?;
    let event = ChannelEvent { channel_id: m.channel_id, seq, kind: EventKind::Deleted, message: envelope(&m) };
    core.realtime.publish(Signal::Event { event: event.clone() }).await;
    if unpinned > 0 {
        core.realtime.publish(Signal::PinsChanged { channel_id: m.channel_id }).await;
    }
    Ok(Some(event))
}

/// Erases the messages whose time has come (up to 200 a round, the oldest first), each with a
/// tombstone event as if deleted, so that every reader's client forgets it at once. Every node
/// runs the rounds; a message erased by another meanwhile is skipped. Returns how many it erased.
pub async fn expire_due(core: &Core, now: chrono::DateTime<Utc>) -> ServerResult<usize> {
    let due = message::Entity::find()
        .filter(message::Column::ExpiresAt.lte(now))
        .filter(message::Column::DeletedAt.is_null())
        .order_by_asc(message::Column::ExpiresAt)
        .limit(200)
        .all(&core.db)
        .await?;
    let mut erased = 0;
    for m in due {
        erased += usize::from(erase(core, m).await?.is_some());
    }
    Ok(erased)
}

/// Whether a message's time has come (the expiry round erases it within seconds; until then it
/// is not served either). Checked on the rows read, not in the query: a condition on
/// `expires_at` there led PostgreSQL to plan a page of history as a scan of the whole channel
/// (43 ms instead of under 1 at 100,000 messages).
fn expired(m: &message::Model, now: chrono::DateTime<Utc>) -> bool {
    m.expires_at.is_some_and(|at| at <= now)
}

/// Messages newest first, `limit` (default 50, at most 100) per page, older than `before_seq`.
pub async fn history(
    core: &Core,
    actor: Uuid,
    channel_id: Uuid,
    before_seq: Option<i64>,
    limit: Option<u32>,
) -> ServerResult<HistoryPage> {
    let db = &core.db;
    let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let mut query = message::Entity::find()
        .filter(message::Column::ChannelId.eq(channel_id))
        .filter(message::Column::DeletedAt.is_null())
        .filter(message::Column::Kind.ne(MessageKind::Reaction.to_db()))
        .filter(message::Column::ThreadId.is_null());
    if let Some(before) = before_seq {
        query = query.filter(message::Column::Seq.lt(before));
    }
    let page = async { Ok(query.order_by_desc(message::Column::Seq).limit(u64::from(limit) + 1).all(db).await?) };
    // The check and the page are read side by side (two pooled connections): a page costs one
    // query's wait, not two. The page is returned only if the check passes.
    let (_, rows) = tokio::try_join!(policy::visible_channel(db, channel_id, actor), page)?;
    let threads = thread_summaries(db, actor, &rows[..rows.len().min(limit as usize)]).await?;
    Ok(HistoryPage { threads, ..page_of(db, rows, limit).await? })
}

/// A page of `limit` messages from `rows` (newest first, one more than `limit` if there are
/// more), with their reactions.
async fn page_of(db: &impl ConnectionTrait, mut rows: Vec<message::Model>, limit: u32) -> ServerResult<HistoryPage> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_before = if more { rows.last().map(|m| m.seq) } else { None };
    let now = Utc::now();
    rows.retain(|m| !expired(m, now));
    let reactions = reactions_to(db, rows.iter().map(|m| m.id).collect()).await?;
    Ok(HistoryPage { messages: rows.iter().map(envelope).collect(), reactions, threads: vec![], next_before })
}

/// The threads started on these messages (those with replies), with how far `actor` read in
/// each: one query, and only when the page has a thread.
async fn thread_summaries(
    db: &impl ConnectionTrait,
    actor: Uuid,
    messages: &[message::Model],
) -> ServerResult<Vec<ThreadSummary>> {
    let roots: Vec<Uuid> = messages.iter().filter(|m| m.thread_replies > 0).map(|m| m.id).collect();
    if roots.is_empty() {
        return Ok(vec![]);
    }
    let read: HashMap<Uuid, i64> = thread_read::Entity::find()
        .filter(thread_read::Column::UserId.eq(actor))
        .filter(thread_read::Column::RootId.is_in(roots))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.root_id, r.last_read_seq))
        .collect();
    Ok(messages
        .iter()
        .filter(|m| m.thread_replies > 0)
        .map(|m| ThreadSummary {
            root: m.id,
            replies: u32::try_from(m.thread_replies).unwrap_or(0),
            last_seq: m.thread_last_seq.unwrap_or(0),
            last_at: m.thread_last_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            read_seq: read.get(&m.id).copied().unwrap_or(0),
        })
        .collect())
}

/// The replies in the thread started on `root`, newest first, `limit` (default 50, at most 100)
/// per page, older than `before_seq`, with their reactions.
pub async fn thread_history(
    core: &Core,
    actor: Uuid,
    root: Uuid,
    before_seq: Option<i64>,
    limit: Option<u32>,
) -> ServerResult<HistoryPage> {
    let db = &core.db;
    let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let r = message::Entity::find_by_id(root).one(db).await?.ok_or(AppError::NotFound)?;
    policy::visible_channel(db, r.channel_id, actor).await?;
    if r.deleted_at.is_some() || r.thread_id.is_some() {
        return Err(AppError::NotFound.into());
    }
    let mut query = message::Entity::find()
        .filter(message::Column::ThreadId.eq(root))
        .filter(message::Column::DeletedAt.is_null())
        .filter(message::Column::Kind.ne(MessageKind::Reaction.to_db()));
    if let Some(before) = before_seq {
        query = query.filter(message::Column::Seq.lt(before));
    }
    let rows = query.order_by_desc(message::Column::Seq).limit(u64::from(limit) + 1).all(db).await?;
    page_of(db, rows, limit).await
}

/// Moves `actor`'s read cursor in the thread started on `root` forward to `seq` (never backwards,
/// never past its latest reply); returns where it is.
pub async fn mark_thread_read(core: &Core, actor: Uuid, root: Uuid, seq: i64) -> ServerResult<i64> {
    let db = &core.db;
    let r = message::Entity::find_by_id(root).one(db).await?.ok_or(AppError::NotFound)?;
    policy::visible_channel(db, r.channel_id, actor).await?;
    if r.deleted_at.is_some() || r.thread_id.is_some() {
        return Err(AppError::NotFound.into());
    }
    let seq = seq.clamp(0, r.thread_last_seq.unwrap_or(0));
    if seq > 0 {
        move_thread_cursor(db, actor, root, seq).await?;
    }
    let now = thread_read::Entity::find_by_id((actor, root)).one(db).await?;
    Ok(now.map_or(0, |c| c.last_read_seq))
}

async fn move_thread_cursor(db: &impl ConnectionTrait, actor: Uuid, root: Uuid, seq: i64) -> ServerResult<()> {
    let inserted = thread_read::Entity::insert(thread_read::ActiveModel {
        user_id: Set(actor),
        root_id: Set(root),
        last_read_seq: Set(seq),
    })
    .on_conflict_do_nothing_on([thread_read::Column::UserId, thread_read::Column::RootId])
    .exec_without_returning(db)
    .await?;
    if !matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
        thread_read::Entity::update_many()
            .col_expr(thread_read::Column::LastReadSeq, Expr::value(seq))
            .filter(thread_read::Column::UserId.eq(actor))
            .filter(thread_read::Column::RootId.eq(root))
            .filter(thread_read::Column::LastReadSeq.lt(seq))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// The reactions (not deleted) to these messages of a channel, oldest first: at most
/// `MAX_REACTIONS_PER_PAGE`, a bound on a page's size whatever a crowd did.
async fn reactions_to(db: &impl ConnectionTrait, messages: Vec<Uuid>) -> ServerResult<Vec<Envelope>> {
    const MAX_REACTIONS_PER_PAGE: u64 = 5_000;
    if messages.is_empty() {
        return Ok(vec![]);
    }
    // No channel condition: the page's messages are of this channel, and so are their
    // reactions (`send` checks it). With one, SQLite walks the channel's (channel_id, seq) index
    // to avoid the sort, every message of the channel: 22 ms a page at 100,000 messages, instead
    // of a lookup in the (reply_to, kind) index.
    let rows = message::Entity::find()
        .filter(message::Column::Kind.eq(MessageKind::Reaction.to_db()))
        .filter(message::Column::ReplyTo.is_in(messages))
        .filter(message::Column::DeletedAt.is_null())
        .order_by_asc(message::Column::Seq)
        .limit(MAX_REACTIONS_PER_PAGE)
        .all(db)
        .await?;
    let now = Utc::now();
    Ok(rows.iter().filter(|m| !expired(m, now)).map(envelope).collect())
}

/// Every event after `after_seq`, oldest first (at most `limit`): what a reconnecting client missed.
pub async fn events_since(
    core: &Core,
    actor: Uuid,
    channel_id: Uuid,
    after_seq: i64,
    limit: Option<u32>,
) -> ServerResult<Vec<ChannelEvent>> {
    let db = &core.db;
    policy::visible_channel(db, channel_id, actor).await?;
    let limit = limit.unwrap_or(MAX_PAGE).clamp(1, 1000);
    let events = channel_event::Entity::find()
        .filter(channel_event::Column::ChannelId.eq(channel_id))
        .filter(channel_event::Column::Seq.gt(after_seq))
        .order_by_asc(channel_event::Column::Seq)
        .limit(u64::from(limit))
        .all(db)
        .await?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.message_id).collect();
    let messages: HashMap<Uuid, message::Model> = message::Entity::find()
        .filter(message::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    Ok(events
        .into_iter()
        .filter_map(|e| {
            let m = messages.get(&e.message_id)?;
            let kind = match e.kind {
                0 => EventKind::Created,
                1 => EventKind::Edited,
                _ => EventKind::Deleted,
            };
            Some(ChannelEvent { channel_id, seq: e.seq, kind, message: envelope(m) })
        })
        .collect())
}

/// Moves the actor's read cursor in a channel forward to `seq` (never backwards, never past the
/// channel's latest event) and tells the actor's other sockets, and, as a read receipt, the
/// channel's other readers when it moved (see `receipts`).
pub async fn mark_read(core: &Core, actor: Uuid, channel_id: Uuid, seq: i64) -> ServerResult<i64> {
    let visible = policy::visible_channel(&core.db, channel_id, actor).await?;
    let (seq, moved) = move_cursor(&core.db, actor, &visible, seq).await?;
    core.realtime.publish(Signal::Read { user_id: actor, channel_id, seq }).await;
    if moved {
        super::receipts::announce(core, actor, &visible, seq).await?;
    }
    Ok(seq)
}

/// The cursor after the move, and whether it moved.
async fn move_cursor(
    db: &impl ConnectionTrait,
    actor: Uuid,
    visible: &policy::VisibleChannel,
    seq: i64,
) -> ServerResult<(i64, bool)> {
    let channel_id = visible.channel.id;
    let seq = seq.clamp(0, visible.channel.last_seq);
    let current = read_cursor::Entity::find_by_id((actor, channel_id)).one(db).await?;
    match current {
        Some(c) if c.last_read_seq >= seq => Ok((c.last_read_seq, false)),
        Some(_) => {
            let done = read_cursor::Entity::update_many()
                .col_expr(read_cursor::Column::LastReadSeq, Expr::value(seq))
                .col_expr(read_cursor::Column::UpdatedAt, Expr::value(Utc::now()))
                .filter(read_cursor::Column::UserId.eq(actor))
                .filter(read_cursor::Column::ChannelId.eq(channel_id))
                .filter(read_cursor::Column::LastReadSeq.lt(seq))
                .exec(db)
                .await?;
            Ok((seq, done.rows_affected > 0))
        }
        None => {
            let done = read_cursor::Entity::insert(read_cursor::ActiveModel {
                user_id: Set(actor),
                channel_id: Set(channel_id),
                last_read_seq: Set(seq),
                updated_at: Set(Utc::now()),
            })
            .on_conflict_do_nothing_on([read_cursor::Column::UserId, read_cursor::Column::ChannelId])
            .exec_without_returning(db)
            .await?;
            Ok((seq, matches!(done, sea_orm::TryInsertResult::Inserted(n) if n > 0) && seq > 0))
        }
    }
}

/// The user's read cursors, by channel.
pub(crate) async fn read_cursors(db: &impl ConnectionTrait, user: Uuid) -> ServerResult<HashMap<Uuid, i64>> {
    Ok(read_cursor::Entity::find()
        .filter(read_cursor::Column::UserId.eq(user))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.channel_id, c.last_read_seq))
        .collect())
}

/// Unread counts for every channel the actor is in.
pub async fn unread_counts(core: &Core, actor: Uuid) -> ServerResult<Vec<Unread>> {
    let mut channels: Vec<Uuid> = super::spaces::subscriptions(&core.db, actor).await?.channels.into_keys().collect();
    channels.sort_unstable();
    unread_counts_in(&core.db, actor, &channels).await
}

/// Unread counts for `channels` (which the caller found `actor` may read): their read cursors,
/// then every count in one statement (one counting query per channel, joined by `UNION ALL`, each an
/// index range from the cursor), in the order given. Two queries however many channels.
pub async fn unread_counts_in(db: &impl ConnectionTrait, actor: Uuid, channels: &[Uuid]) -> ServerResult<Vec<Unread>> {
    use sea_orm::sea_query::{Alias, Query, SelectStatement, UnionType};
    if channels.is_empty() {
        return Ok(vec![]);
    }
    let cursors = read_cursors(db, actor).await?;
    let read = |channel: &Uuid| cursors.get(channel).copied().unwrap_or(0);
    let count = |i: usize, channel: &Uuid| -> SelectStatement {
        Query::select()
            .expr_as(Expr::val(i as i64), Alias::new("ord"))
            .expr_as(Expr::col(message::Column::Id).count(), Alias::new("unread"))
            .from(message::Entity)
            .and_where(message::Column::ChannelId.eq(*channel))
            .and_where(message::Column::Seq.gt(read(channel)))
            .and_where(message::Column::DeletedAt.is_null())
            .and_where(message::Column::SenderId.ne(actor))
            .and_where(message::Column::Kind.ne(MessageKind::Reaction.to_db()))
            .and_where(message::Column::ThreadId.is_null())
            .to_owned()
    };
    let mut query = count(0, &channels[0]);
    for (i, channel) in channels.iter().enumerate().skip(1) {
        query.union(UnionType::All, count(i, channel));
    }
    let mut counts = vec![0u64; channels.len()];
    for row in db.query_all(&query).await? {
        let (ord, unread): (i64, i64) = (row.try_get("", "ord")?, row.try_get("", "unread")?);
        if let Some(slot) = usize::try_from(ord).ok().and_then(|i| counts.get_mut(i)) {
            *slot = u64::try_from(unread).unwrap_or(0);
        }
    }
    Ok(channels
        .iter()
        .zip(counts)
        .map(|(&channel_id, count)| Unread { channel_id, count, last_read_seq: read(&channel_id) })
        .collect())
}
