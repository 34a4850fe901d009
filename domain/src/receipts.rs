//! Read receipts: in a conversation of at most `MAX_RECEIPT_READERS` readers (a DM, a group DM, a
//! small channel), the readers who share receipts see how far the others who share them have read.
//! Built on the read cursors; sharing is on by default and one switch per person turns both
//! directions off. The server learns nothing new: it keeps the cursors anyway. A receipt of `seq`
//! 0 on the wire withdraws one (its reader turned receipts off).

use super::{error::ServerResult, policy, realtime::Signal, state::Core};
use entity::{channel_member, community_member, group, group_member, read_cursor, user};
use protocol::{
    error::AppError,
    model::messages::{MAX_RECEIPT_READERS, Receipt},
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};
use uuid::Uuid;

/// Everyone who reads the channel, if they are at most `MAX_RECEIPT_READERS`; `None` for a bigger
/// one (found without reading more than one row past the limit).
async fn small_readers(db: &impl ConnectionTrait, visible: &policy::VisibleChannel) -> ServerResult<Option<Vec<Uuid>>> {
    let over = MAX_RECEIPT_READERS + 1;
    let group = match visible.channel.group_id {
        Some(id) => group::Entity::find_by_id(id).one(db).await?,
        None => None,
    };
    let readers: Vec<Uuid> = match group {
        Some(g) if !g.private => {
            community_member::Entity::find()
                .select_only()
                .column(community_member::Column::UserId)
                .filter(community_member::Column::CommunityId.eq(g.community_id))
                .limit(over)
                .into_tuple()
                .all(db)
                .await?
        }
        Some(g) => {
            group_member::Entity::find()
                .select_only()
                .column(group_member::Column::UserId)
                .filter(group_member::Column::GroupId.eq(g.id))
                .limit(over)
                .into_tuple()
                .all(db)
                .await?
        }
        None => {
            channel_member::Entity::find()
                .select_only()
                .column(channel_member::Column::UserId)
                .filter(channel_member::Column::ChannelId.eq(visible.channel.id))
                .limit(over)
                .into_tuple()
                .all(db)
                .await?
        }
    };
    Ok((readers.len() as u64 <= MAX_RECEIPT_READERS).then_some(readers))
}

async fn shares(db: &impl ConnectionTrait, user_id: Uuid) -> ServerResult<bool> {
    let on: Option<bool> =
        user::Entity::find_by_id(user_id).select_only().column(user::Column::ReadReceipts).into_tuple().one(db).await?;
    Ok(on.unwrap_or(false))
}

/// How far the other readers of a channel have read, for one of its readers: empty when the actor
/// does not share receipts or the channel is too big; only readers who share theirs, and who have
/// read something.
pub async fn receipts(core: &Core, actor: Uuid, channel_id: Uuid) -> ServerResult<Vec<Receipt>> {
    let db = &core.db;
    let visible = policy::visible_channel(db, channel_id, actor).await?;
    if !shares(db, actor).await? {
        return Ok(vec![]);
    }
    let Some(readers) = small_readers(db, &visible).await? else { return Ok(vec![]) };
    let others: Vec<Uuid> = readers.into_iter().filter(|u| *u != actor).collect();
    if others.is_empty() {
        return Ok(vec![]);
    }
    let sharing: Vec<Uuid> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Id.is_in(others))
        .filter(user::Column::ReadReceipts.eq(true))
        .into_tuple()
        .all(db)
        .await?;
    let mut out: Vec<Receipt> = read_cursor::Entity::find()
        .filter(read_cursor::Column::ChannelId.eq(channel_id))
        .filter(read_cursor::Column::UserId.is_in(sharing))
        .filter(read_cursor::Column::LastReadSeq.gt(0))
        .all(db)
        .await?
        .into_iter()
        .map(|c| Receipt { user_id: c.user_id, seq: c.last_read_seq })
        .collect();
    out.sort_by_key(|r| (r.seq, r.user_id));
    Ok(out)
}

/// After `reader`'s cursor moved to `seq`: tells the channel's other readers, if the reader shares
/// receipts and the channel is small enough.
pub(crate) async fn announce(
    core: &Core,
    reader: Uuid,
    visible: &policy::VisibleChannel,
    seq: i64,
) -> ServerResult<()> {
    let db = &core.db;
    if shares(db, reader).await? && small_readers(db, visible).await?.is_some() {
        core.realtime.publish(Signal::Receipt { user_id: reader, channel_id: visible.channel.id, seq }).await;
    }
    Ok(())
}

/// Turns the actor's read receipts on or off (both directions), and tells the other readers of
/// the actor's small channels at once: how far the actor has read, or (`seq` 0) nothing any more.
pub async fn set_sharing(core: &Core, actor: Uuid, on: bool) -> ServerResult<()> {
    let db = &core.db;
    let done = user::Entity::update_many()
        .col_expr(user::Column::ReadReceipts, Expr::value(on))
        .filter(user::Column::Id.eq(actor))
        .exec(db)
        .await?;
    if done.rows_affected == 0 {
        return Err(AppError::Unauthenticated.into());
    }
    let cursors = super::messages::read_cursors(db, actor).await?;
    // A rare act: a few queries per channel the actor reads.
    for channel_id in super::spaces::subscriptions(db, actor).await?.channels.into_keys() {
        let Ok(visible) = policy::visible_channel(db, channel_id, actor).await else { continue };
        if small_readers(db, &visible).await?.is_some() {
            let seq = if on { cursors.get(&channel_id).copied().unwrap_or(0) } else { 0 };
            core.realtime.publish(Signal::Receipt { user_id: actor, channel_id, seq }).await;
        }
    }
    Ok(())
}
