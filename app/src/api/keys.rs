//! The key directory and the to-device queue (JSON bodies: they carry lists of keys and payloads).

use crate::{
    error::AppError,
    model::keys::{ClaimedKey, CrossSigning, DeviceKeys, KeyCounts, OutgoingToDevice, SignedKey, ToDeviceMessage},
};
use leptos::{prelude::*, server_fn::codec::Json};
use uuid::Uuid;

#[cfg(feature = "ssr")]
use {crate::web::actor, domain::keys_directory as keys};

#[server(prefix = "/api/v1", endpoint = "devices/register", input = Json)]
pub async fn register_device(keys: DeviceKeys) -> Result<DeviceKeys, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::register_device(&core, me.id, keys).await?)
}

#[server(prefix = "/api/v1", endpoint = "devices/list", input = Json)]
pub async fn list_devices(user_id: Uuid) -> Result<Vec<DeviceKeys>, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::list_devices(&core, me.id, user_id).await?)
}

/// Every device of every member of a channel: whom to share the channel's room keys with.
#[server(prefix = "/api/v1", endpoint = "devices/of_channel", input = Json)]
pub async fn channel_devices(channel_id: Uuid) -> Result<Vec<DeviceKeys>, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::channel_devices(&core, me.id, channel_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "devices/remove", input = Json)]
pub async fn remove_device(device_id: String) -> Result<(), AppError> {
    let (core, me) = actor().await?;
    Ok(keys::remove_device(&core, me.id, &device_id).await?)
}

/// Sets the caller's cross-signing master key (public part); a new key drops the old signatures.
#[server(prefix = "/api/v1", endpoint = "cross_signing/set_master", input = Json)]
pub async fn set_master_key(master_key: String) -> Result<CrossSigning, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::set_master_key(&core, me.id, &master_key).await?)
}

/// Stores the caller's master-key signature over one of the caller's devices.
#[server(prefix = "/api/v1", endpoint = "cross_signing/sign_device", input = Json)]
pub async fn sign_device(device_id: String, signature: String) -> Result<CrossSigning, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::sign_device(&core, me.id, &device_id, &signature).await?)
}

/// Someone's master key and the devices it signed (people who share a space with them only).
#[server(prefix = "/api/v1", endpoint = "cross_signing/get", input = Json)]
pub async fn get_cross_signing(user_id: Uuid) -> Result<CrossSigning, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::cross_signing(&core, me.id, user_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "keys/upload", input = Json)]
pub async fn upload_keys(
    device_id: String,
    one_time_keys: Vec<SignedKey>,
    fallback_key: Option<SignedKey>,
) -> Result<KeyCounts, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::upload_keys(&core, me.id, &device_id, one_time_keys, fallback_key).await?)
}

#[server(prefix = "/api/v1", endpoint = "keys/counts", input = Json)]
pub async fn get_key_counts(device_id: String) -> Result<KeyCounts, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::counts(&core, me.id, &device_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "keys/claim", input = Json)]
pub async fn claim_key(user_id: Uuid, device_id: String) -> Result<ClaimedKey, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::claim(&core, me.id, user_id, &device_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "to_device/send", input = Json)]
pub async fn send_to_device(device_id: String, messages: Vec<OutgoingToDevice>) -> Result<usize, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::send_to_device(&core, me.id, &device_id, messages).await?)
}

#[server(prefix = "/api/v1", endpoint = "to_device/fetch", input = Json)]
pub async fn fetch_to_device(device_id: String) -> Result<Vec<ToDeviceMessage>, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::fetch_to_device(&core, me.id, &device_id).await?)
}

#[server(prefix = "/api/v1", endpoint = "to_device/ack", input = Json)]
pub async fn ack_to_device(device_id: String, up_to: Uuid) -> Result<u64, AppError> {
    let (core, me) = actor().await?;
    Ok(keys::ack_to_device(&core, me.id, &device_id, up_to).await?)
}
