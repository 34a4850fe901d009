//! The key directory (devices, signed one-time and fallback keys, claims) and the to-device
//! queue. Signatures are checked here as a first line of defence; clients check them again.

use super::{
    error::{ServerResult, is_unique_violation},
    policy::{self, related},
    realtime::Signal,
    state::Core,
    throttle::{self, Limit},
};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use chrono::{Duration, Utc};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use entity::{device, device_signature, fallback_key, master_key, one_time_key, to_device};
use protocol::{
    error::AppError,
    model::{
        keys::{
            ClaimedKey, CrossSigning, DeviceKeys, DeviceSignature, KeyCounts, MAX_KEYS_PER_UPLOAD, MAX_TO_DEVICE_BATCH,
            MAX_TO_DEVICE_QUEUE, OutgoingToDevice, SignedKey, ToDeviceMessage, cross_signing_payload,
            device_signing_payload, key_signing_payload,
        },
        messages::{Ciphertext, MAX_CIPHERTEXT},
    },
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::OnConflict,
};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Claims one user may make per window, overall and per target user.
const CLAIMS_PER_WINDOW: i32 = 300;
const CLAIMS_PER_TARGET: i32 = 60;
const CLAIM_WINDOW: Duration = Duration::minutes(10);
/// One-time keys one user may take from one device per hour: a client needs one per Olm session
/// it starts with the device, so a few cover lost sessions, and co-members cannot drain a device
/// (its fallback key is for running out between uploads, not for attackers).
const CLAIMS_PER_DEVICE: i32 = 5;
const CLAIM_DEVICE_WINDOW: Duration = Duration::hours(1);
/// Undelivered to-device messages from one other user that one device may have waiting.
pub const MAX_TO_DEVICE_FROM_ONE_SENDER: u64 = 100;

fn decode32(field: &str, value: &str) -> Result<[u8; 32], AppError> {
    let bytes = STANDARD_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| AppError::invalid(field, "is not unpadded base64"))?;
    bytes.try_into().map_err(|_| AppError::invalid(field, "must be 32 bytes"))
}

fn check_signature(ed25519: &str, payload: &str, signature: &str) -> Result<(), AppError> {
    let key = VerifyingKey::from_bytes(&decode32("ed25519", ed25519)?)
        .map_err(|_| AppError::invalid("ed25519", "is not an Ed25519 key"))?;
    let sig = STANDARD_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| AppError::invalid("signature", "is not unpadded base64"))?;
    let sig = Signature::from_slice(&sig).map_err(|_| AppError::invalid("signature", "must be 64 bytes"))?;
    key.verify(payload.as_bytes(), &sig).map_err(|_| AppError::invalid("signature", "does not verify"))
}

fn check_id(field: &str, id: &str) -> Result<(), AppError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(AppError::invalid(field, "must be 1–64 letters, digits, '_' or '-'"));
    }
    Ok(())
}

/// One of `user`'s devices, if registered.
pub async fn find_device(
    db: &impl ConnectionTrait,
    user: Uuid,
    device_id: &str,
) -> ServerResult<Option<device::Model>> {
    Ok(device::Entity::find_by_id((user, device_id.to_owned())).one(db).await?)
}

/// One of `user`'s devices, or `NotFound`.
pub async fn own_device(db: &impl ConnectionTrait, user: Uuid, device_id: &str) -> ServerResult<device::Model> {
    find_device(db, user, device_id).await?.ok_or_else(|| AppError::NotFound.into())
}

fn to_wire(d: &device::Model) -> DeviceKeys {
    DeviceKeys {
        user_id: d.user_id,
        device_id: d.device_id.clone(),
        curve25519: d.curve25519.clone(),
        ed25519: d.ed25519.clone(),
        signature: d.signature.clone(),
    }
}

/// Registers one of the actor's devices. Re-registering the same keys is a no-op; other keys under
/// an existing device id are refused (a device's identity never changes).
pub async fn register_device(core: &Core, actor: Uuid, keys: DeviceKeys) -> ServerResult<DeviceKeys> {
    let db = &core.db;
    policy::may_register_device(actor, keys.user_id)?;
    check_id("device_id", &keys.device_id)?;
    decode32("curve25519", &keys.curve25519)?;
    check_signature(
        &keys.ed25519,
        &device_signing_payload(actor, &keys.device_id, &keys.curve25519, &keys.ed25519),
        &keys.signature,
    )?;
    if let Some(existing) = device::Entity::find_by_id((actor, keys.device_id.clone())).one(db).await? {
        if existing.curve25519 == keys.curve25519 && existing.ed25519 == keys.ed25519 {
            return Ok(to_wire(&existing));
        }
        return Err(AppError::invalid("device_id", "is already registered with other keys").into());
    }
    let d = device::ActiveModel {
        user_id: Set(actor),
        device_id: Set(keys.device_id),
        curve25519: Set(keys.curve25519),
        ed25519: Set(keys.ed25519),
        signature: Set(keys.signature),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(to_wire(&d))
}

/// A user's devices, for the user themself and for people related to them.
pub async fn list_devices(core: &Core, actor: Uuid, user: Uuid) -> ServerResult<Vec<DeviceKeys>> {
    let db = &core.db;
    if !related(db, actor, user).await? {
        return Err(AppError::NotFound.into());
    }
    let rows = device::Entity::find()
        .filter(device::Column::UserId.eq(user))
        .order_by_asc(device::Column::CreatedAt)
        .all(db)
        .await?;
    Ok(rows.iter().map(to_wire).collect())
}

/// Every device of every member of a channel (the actor must be a member): the recipients of the
/// channel's room keys. Clients check each device's signature before using it.
pub async fn channel_devices(core: &Core, actor: Uuid, channel_id: Uuid) -> ServerResult<Vec<DeviceKeys>> {
    let db = &core.db;
    let members = super::spaces::channel_members(db, actor, channel_id).await?;
    let rows = device::Entity::find()
        .filter(device::Column::UserId.is_in(members))
        .order_by_asc(device::Column::UserId)
        .order_by_asc(device::Column::CreatedAt)
        .all(db)
        .await?;
    Ok(rows.iter().map(to_wire).collect())
}

/// Removes one of the actor's devices with its keys and its undelivered messages; everyone who
/// shares a channel with the actor learns it (their clients rotate the room keys it had).
pub async fn remove_device(core: &Core, actor: Uuid, device_id: &str) -> ServerResult<()> {
    let db = &core.db;
    own_device(db, actor, device_id).await?;
    device::Entity::delete_by_id((actor, device_id.to_owned())).exec(db).await?;
    let channels = super::spaces::subscriptions(db, actor).await?.channels.into_keys().collect();
    core.realtime.publish(Signal::DeviceRemoved { user_id: actor, device_id: device_id.to_owned(), channels }).await;
    Ok(())
}

pub async fn counts(core: &Core, actor: Uuid, device_id: &str) -> ServerResult<KeyCounts> {
    device_counts(&core.db, actor, device_id).await
}

async fn device_counts(db: &impl ConnectionTrait, actor: Uuid, device_id: &str) -> ServerResult<KeyCounts> {
    own_device(db, actor, device_id).await?;
    let one_time = one_time_key::Entity::find()
        .filter(one_time_key::Column::UserId.eq(actor))
        .filter(one_time_key::Column::DeviceId.eq(device_id))
        .count(db)
        .await?;
    let fallback = fallback_key::Entity::find_by_id((actor, device_id.to_owned())).one(db).await?.is_some();
    Ok(KeyCounts { one_time, fallback })
}

/// Uploads signed one-time keys (duplicates of stored key ids are ignored) and replaces the
/// fallback key. Every signature must verify against the device's Ed25519 key.
pub async fn upload_keys(
    core: &Core,
    actor: Uuid,
    device_id: &str,
    one_time: Vec<SignedKey>,
    fallback: Option<SignedKey>,
) -> ServerResult<KeyCounts> {
    let db = &core.db;
    let d = own_device(db, actor, device_id).await?;
    if one_time.len() > MAX_KEYS_PER_UPLOAD {
        return Err(AppError::invalid("one_time_keys", format!("at most {MAX_KEYS_PER_UPLOAD} per upload")).into());
    }
    for key in one_time.iter().chain(fallback.iter()) {
        check_id("key_id", &key.key_id)?;
        decode32("public_key", &key.public_key)?;
        check_signature(
            &d.ed25519,
            &key_signing_payload(actor, device_id, &key.key_id, &key.public_key),
            &key.signature,
        )?;
    }
    let txn = crate::db::begin_write(db).await?;
    for key in one_time {
        one_time_key::Entity::insert(one_time_key::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(actor),
            device_id: Set(device_id.to_owned()),
            key_id: Set(key.key_id),
            public_key: Set(key.public_key),
            signature: Set(key.signature),
        })
        .on_conflict_do_nothing_on([
            one_time_key::Column::UserId,
            one_time_key::Column::DeviceId,
            one_time_key::Column::KeyId,
        ])
        .exec(&txn)
        .await?;
    }
    if let Some(key) = fallback {
        fallback_key::Entity::delete_by_id((actor, device_id.to_owned())).exec(&txn).await?;
        fallback_key::ActiveModel {
            user_id: Set(actor),
            device_id: Set(device_id.to_owned()),
            key_id: Set(key.key_id),
            public_key: Set(key.public_key),
            signature: Set(key.signature),
        }
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    device_counts(db, actor, device_id).await
}

/// Hands out one of the device's one-time keys, exactly once, or its fallback key when none is
/// left. Only related users may claim, and claims are rate limited so nobody can drain a device.
pub async fn claim(core: &Core, actor: Uuid, user: Uuid, device_id: &str) -> ServerResult<ClaimedKey> {
    let db = &core.db;
    if !related(db, actor, user).await? {
        return Err(AppError::NotFound.into());
    }
    device::Entity::find_by_id((user, device_id.to_owned())).one(db).await?.ok_or(AppError::NotFound)?;
    let now = Utc::now();
    let limits = [
        Limit::new(format!("claim:{actor}:{user}:{device_id}"), CLAIMS_PER_DEVICE, CLAIM_DEVICE_WINDOW),
        Limit::new(format!("claim:{actor}:{user}"), CLAIMS_PER_TARGET, CLAIM_WINDOW),
        Limit::new(format!("claim:{actor}"), CLAIMS_PER_WINDOW, CLAIM_WINDOW),
    ];
    throttle::take(db, &limits, now).await?; // every claim counts, atomically
    // Take the oldest key; if a concurrent claim deleted it first, take the next one.
    loop {
        let candidate = one_time_key::Entity::find()
            .filter(one_time_key::Column::UserId.eq(user))
            .filter(one_time_key::Column::DeviceId.eq(device_id))
            .order_by_asc(one_time_key::Column::Id)
            .one(db)
            .await?;
        let Some(key) = candidate else { break };
        let taken = one_time_key::Entity::delete_by_id(key.id).exec(db).await?;
        if taken.rows_affected == 1 {
            return Ok(ClaimedKey {
                user_id: user,
                device_id: device_id.to_owned(),
                key: SignedKey { key_id: key.key_id, public_key: key.public_key, signature: key.signature },
                fallback: false,
            });
        }
    }
    let fallback =
        fallback_key::Entity::find_by_id((user, device_id.to_owned())).one(db).await?.ok_or(AppError::NotFound)?;
    Ok(ClaimedKey {
        user_id: user,
        device_id: device_id.to_owned(),
        key: SignedKey { key_id: fallback.key_id, public_key: fallback.public_key, signature: fallback.signature },
        fallback: true,
    })
}

/// Sets the caller's cross-signing master key (the public part). A different key than the one
/// stored is an identity reset: every signature the old key made is dropped, and other people's
/// clients warn that the key changed.
pub async fn set_master_key(core: &Core, actor: Uuid, public_key: &str) -> ServerResult<CrossSigning> {
    VerifyingKey::from_bytes(&decode32("master_key", public_key)?)
        .map_err(|_| AppError::invalid("master_key", "is not an Ed25519 key"))?;
    let txn = crate::db::begin_write(&core.db).await?;
    let current = master_key::Entity::find_by_id(actor).one(&txn).await?;
    if current.as_ref().is_none_or(|k| k.public_key != public_key) {
        device_signature::Entity::delete_many().filter(device_signature::Column::UserId.eq(actor)).exec(&txn).await?;
        master_key::Entity::delete_by_id(actor).exec(&txn).await?;
        master_key::ActiveModel {
            user_id: Set(actor),
            public_key: Set(public_key.to_owned()),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    cross_signing_of(&core.db, actor).await
}

/// Stores the caller's master key's signature over one of the caller's devices, checked against
/// the stored master key.
pub async fn sign_device(core: &Core, actor: Uuid, device_id: &str, signature: &str) -> ServerResult<CrossSigning> {
    let db = &core.db;
    let master = master_key::Entity::find_by_id(actor)
        .one(db)
        .await?
        .ok_or_else(|| AppError::invalid("master_key", "set up a master key first"))?;
    let d = own_device(db, actor, device_id).await?;
    check_signature(
        &master.public_key,
        &cross_signing_payload(actor, device_id, &d.curve25519, &d.ed25519),
        signature,
    )?;
    let row = device_signature::ActiveModel {
        user_id: Set(actor),
        device_id: Set(device_id.to_owned()),
        signature: Set(signature.to_owned()),
        created_at: Set(Utc::now()),
    };
    device_signature::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([device_signature::Column::UserId, device_signature::Column::DeviceId])
                .update_columns([device_signature::Column::Signature, device_signature::Column::CreatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    cross_signing_of(db, actor).await
}

/// Someone's cross-signing identity: only users who share a community, DM or group DM (or the
/// person themselves) may see it.
pub async fn cross_signing(core: &Core, actor: Uuid, user: Uuid) -> ServerResult<CrossSigning> {
    if !related(&core.db, actor, user).await? {
        return Err(AppError::NotFound.into());
    }
    cross_signing_of(&core.db, user).await
}

async fn cross_signing_of(db: &impl ConnectionTrait, user: Uuid) -> ServerResult<CrossSigning> {
    let master_key = master_key::Entity::find_by_id(user).one(db).await?.map(|k| k.public_key);
    let devices = device_signature::Entity::find()
        .filter(device_signature::Column::UserId.eq(user))
        .order_by_asc(device_signature::Column::DeviceId)
        .all(db)
        .await?
        .into_iter()
        .map(|d| DeviceSignature { device_id: d.device_id, signature: d.signature })
        .collect();
    Ok(CrossSigning { master_key, devices })
}

/// Queues opaque payloads for devices (up to 100 per batch, each at most 64 KiB) and delivers them
/// live to the recipients' open sockets; returns how many were queued. Every recipient must be
/// related to the sender; a device refuses more than 1,000 undelivered messages, or 100 from one
/// other user, so one co-member flooding it cannot crowd out everyone else's room keys.
pub async fn send_to_device(
    core: &Core,
    actor: Uuid,
    actor_device: &str,
    batch: Vec<OutgoingToDevice>,
) -> ServerResult<usize> {
    let queued = queue_to_device(&core.db, actor, actor_device, batch).await?;
    let n = queued.len();
    core.realtime.publish_all(queued).await;
    Ok(n)
}

async fn queue_to_device(
    db: &DatabaseConnection,
    actor: Uuid,
    actor_device: &str,
    batch: Vec<OutgoingToDevice>,
) -> ServerResult<Vec<Signal>> {
    own_device(db, actor, actor_device).await?;
    if batch.len() > MAX_TO_DEVICE_BATCH {
        return Err(AppError::invalid("messages", format!("at most {MAX_TO_DEVICE_BATCH} per batch")).into());
    }
    // How many of this batch go to each device, in one order for every sender (so PostgreSQL row
    // locks are always taken in the same order and two batches cannot deadlock).
    let mut per_device: BTreeMap<(Uuid, &str), u64> = BTreeMap::new();
    for m in &batch {
        if m.payload.0.is_empty() || m.payload.0.len() > MAX_CIPHERTEXT {
            return Err(AppError::invalid("payload", format!("must be 1 to {MAX_CIPHERTEXT} bytes")).into());
        }
        *per_device.entry((m.recipient_user, m.recipient_device.as_str())).or_default() += 1;
    }
    let mut recipients: Vec<Uuid> = per_device.keys().map(|(user, _)| *user).collect();
    recipients.dedup();
    for user in recipients {
        if !related(db, actor, user).await? {
            return Err(AppError::NotFound.into());
        }
    }
    let txn = crate::db::begin_write(db).await?;
    for (&(user, device_id), &incoming) in &per_device {
        // The device row is the queue's lock: on PostgreSQL concurrent batches to one device wait
        // here, so the counts below stay true until this one commits (SQLite has one writer anyway).
        device::Entity::find_by_id((user, device_id.to_owned()))
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound)?;
        let waiting = to_device::Entity::find()
            .filter(to_device::Column::RecipientUser.eq(user))
            .filter(to_device::Column::RecipientDevice.eq(device_id));
        if waiting.clone().count(&txn).await? + incoming > MAX_TO_DEVICE_QUEUE {
            return Err(AppError::RateLimited { retry_after_s: 60 }.into());
        }
        // Someone else's flood must leave room for everyone's room keys; a user's own devices
        // (sharing their keys with a new one) are bounded by the queue alone.
        if user != actor
            && waiting.filter(to_device::Column::SenderUser.eq(actor)).count(&txn).await? + incoming
                > MAX_TO_DEVICE_FROM_ONE_SENDER
        {
            return Err(AppError::RateLimited { retry_after_s: 60 }.into());
        }
    }
    let mut queued = Vec::with_capacity(batch.len());
    for m in batch {
        let id = Uuid::now_v7();
        queued.push(Signal::ToDevice {
            user_id: m.recipient_user,
            device_id: m.recipient_device.clone(),
            message: ToDeviceMessage {
                id,
                sender_user: actor,
                sender_device: actor_device.to_owned(),
                payload: m.payload.clone(),
            },
        });
        to_device::ActiveModel {
            id: Set(id),
            recipient_user: Set(m.recipient_user),
            recipient_device: Set(m.recipient_device),
            sender_user: Set(actor),
            sender_device: Set(actor_device.to_owned()),
            payload: Set(m.payload.0),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                AppError::invalid("messages", "duplicate").into()
            } else {
                super::error::ServerError::from(e)
            }
        })?;
    }
    txn.commit().await?;
    Ok(queued)
}

/// The oldest undelivered messages of one of the actor's devices (at most 100).
pub async fn fetch_to_device(core: &Core, actor: Uuid, device_id: &str) -> ServerResult<Vec<ToDeviceMessage>> {
    let db = &core.db;
    own_device(db, actor, device_id).await?;
    let rows = to_device::Entity::find()
        .filter(to_device::Column::RecipientUser.eq(actor))
        .filter(to_device::Column::RecipientDevice.eq(device_id))
        .order_by_asc(to_device::Column::Id)
        .limit(MAX_TO_DEVICE_BATCH as u64)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ToDeviceMessage {
            id: r.id,
            sender_user: r.sender_user,
            sender_device: r.sender_device,
            payload: Ciphertext(r.payload),
        })
        .collect())
}

/// Acknowledges (deletes) every message up to and including `up_to`.
pub async fn ack_to_device(core: &Core, actor: Uuid, device_id: &str, up_to: Uuid) -> ServerResult<u64> {
    let db = &core.db;
    own_device(db, actor, device_id).await?;
    let gone = to_device::Entity::delete_many()
        .filter(to_device::Column::RecipientUser.eq(actor))
        .filter(to_device::Column::RecipientDevice.eq(device_id))
        .filter(to_device::Column::Id.lte(up_to))
        .exec(db)
        .await?;
    Ok(gone.rows_affected)
}
