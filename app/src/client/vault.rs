//! This browser profile's crypto state: created once, kept sealed in IndexedDB, and changed only
//! under a Web Lock, so that several tabs never overwrite each other's state. Every operation loads
//! the latest state, changes it, and writes it back before anything it produced leaves the tab.

use super::storage::{IdbStore, lock, store_key};
use crate::{
    api::keys::{
        channel_devices, claim_key, get_key_counts, list_devices, register_device, send_to_device, upload_keys,
    },
    chat::DeviceStatus,
    crypto::{
        CryptoError, CryptoResult,
        device::Device,
        machine::{Machine, Relay},
        store::{self, StoreKey},
    },
    error::AppError,
    model::keys::{ClaimedKey, DeviceKeys, OutgoingToDevice},
};
use uuid::Uuid;

const LOCK: &str = "chatalot-crypto";

fn relay_error(e: AppError) -> CryptoError {
    CryptoError::Relay(e.to_string())
}

/// The key directory and to-device queue, reached through server functions.
pub struct ServerRelay {
    pub device_id: String,
}

impl Relay for ServerRelay {
    async fn channel_devices(&self, channel_id: Uuid) -> CryptoResult<Vec<DeviceKeys>> {
        channel_devices(channel_id).await.map_err(relay_error)
    }

    async fn user_devices(&self, user_id: Uuid) -> CryptoResult<Vec<DeviceKeys>> {
        list_devices(user_id).await.map_err(relay_error)
    }

    async fn claim(&self, user_id: Uuid, device_id: &str) -> CryptoResult<ClaimedKey> {
        claim_key(user_id, device_id.to_owned()).await.map_err(relay_error)
    }

    async fn send_to_device(&self, batch: Vec<OutgoingToDevice>) -> CryptoResult<()> {
        send_to_device(self.device_id.clone(), batch).await.map(|_| ()).map_err(relay_error)
    }
}

pub(crate) fn fingerprint(ed25519: &str) -> String {
    ed25519.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

/// The sealed crypto state of one account in this browser profile.
pub struct Vault {
    idb: IdbStore,
    key: StoreKey,
    pub relay: ServerRelay,
}

impl Vault {
    /// Loads or creates this browser's device for `user`, registers it and tops up its keys.
    pub async fn open(user: Uuid) -> Result<(Self, DeviceStatus), String> {
        let text = |e: CryptoError| e.to_string();
        let _lock = lock(LOCK, true).await.map_err(text)?;
        let idb = IdbStore::open(&format!("chatalot-{user}")).await.map_err(text)?;
        let key = store_key(&idb).await.map_err(text)?;
        let mut machine = match store::load(&idb, &key).await.map_err(text)? {
            Some(m) => m,
            None => {
                let id = Uuid::new_v4().simple().to_string()[..10].to_uppercase();
                let machine = Machine::new(Device::new(user, id));
                // Saved before it is published: a reload never creates a second identity.
                store::save(&idb, &machine, &key).await.map_err(text)?;
                machine
            }
        };
        register_device(machine.device.device_keys()).await.map_err(|e| match e.for_field("device_id") {
            // This browser's own device, listed by the server with keys it never had.
            Some(_) => "the server lists other keys for this very device. It may have been tampered with; \
                        nothing is sent from this browser"
                .to_owned(),
            None => e.to_string(),
        })?;
        let device_id = machine.device.device_id().to_owned();
        let vault = Self { idb, key, relay: ServerRelay { device_id: device_id.clone() } };
        vault.top_up(&mut machine).await.map_err(text)?;
        Ok((vault, DeviceStatus { device_id, fingerprint: fingerprint(&machine.device.ed25519()) }))
    }

    pub fn device_id(&self) -> &str {
        &self.relay.device_id
    }

    /// Publishes one-time keys and a fallback key when the server runs low (others claim them to
    /// start Olm sessions with this device).
    async fn top_up(&self, machine: &mut Machine) -> CryptoResult<()> {
        let device_id = self.relay.device_id.clone();
        let counts = get_key_counts(device_id.clone()).await.map_err(relay_error)?;
        let one_time = machine.device.one_time_keys_to_publish(counts.one_time);
        let fallback = if counts.fallback { None } else { machine.device.fallback_key_to_publish() };
        if !one_time.is_empty() || fallback.is_some() {
            // Persist the new private keys before the server hands out their public halves.
            store::save(&self.idb, machine, &self.key).await?;
            upload_keys(device_id, one_time, fallback).await.map_err(relay_error)?;
            machine.device.mark_published();
            store::save(&self.idb, machine, &self.key).await?;
        }
        Ok(())
    }

    /// Runs `f` on the latest state while holding the lock, then saves the state.
    pub async fn with<T>(&self, f: impl AsyncFnOnce(&mut Machine, &ServerRelay) -> T) -> CryptoResult<T> {
        let _lock = lock(LOCK, true).await?;
        let mut machine = store::load(&self.idb, &self.key)
            .await?
            .ok_or_else(|| CryptoError::Store("the encryption state of this browser was deleted".into()))?;
        let out = f(&mut machine, &self.relay).await;
        store::save(&self.idb, &machine, &self.key).await?;
        Ok(out)
    }

    /// After receiving to-device messages (one-time keys may have been used up).
    pub async fn replenish(&self) -> CryptoResult<()> {
        let _lock = lock(LOCK, true).await?;
        let Some(mut machine) = store::load(&self.idb, &self.key).await? else { return Ok(()) };
        self.top_up(&mut machine).await
    }
}
