//! This browser profile's crypto state: created once, kept sealed in IndexedDB, and changed only
//! under a Web Lock, so that several tabs never overwrite each other's state. Every operation loads
//! the latest state, changes it, and writes it back before anything it produced leaves the tab.

use super::storage::{IdbStore, lock, store_key};
use crate::{
    api::keys::{
        channel_devices, claim_key, get_cross_signing, get_key_counts, list_devices, register_device, send_to_device,
        set_master_key, sign_device, upload_keys,
    },
    chat::DeviceStatus,
    crypto::{
        CryptoError, CryptoResult,
        backup::BackupState,
        device::Device,
        machine::{Machine, Relay},
        store::{self, CryptoStore, StoreKey, Written},
    },
    error::AppError,
    model::keys::{ClaimedKey, CrossSigning, DeviceKeys, OutgoingToDevice},
};
use uuid::Uuid;

const LOCK: &str = "chatalot-crypto";
/// The record that says when this device was set up.
const CREATED: &str = "created";
/// The record of this device's part in the key backup (sealed).
const BACKUP: &str = "backup";

fn relay_error(e: AppError) -> CryptoError {
    CryptoError::Relay(e.to_string())
}

/// The key directory and to-device queue, reached through server functions.
pub struct ServerRelay {
    pub device_id: String,
    /// Channels whose newcomers read the history (the setting as the sidebar's data last said).
    pub full_history: std::cell::RefCell<std::collections::HashSet<Uuid>>,
    /// Device lists fetched while the person typed (see [`ServerRelay::prefetch`]), with when.
    prefetched: std::cell::RefCell<std::collections::HashMap<Uuid, (f64, Vec<DeviceKeys>)>>,
    /// Channels whose device list is being fetched ahead.
    prefetching: std::cell::RefCell<std::collections::HashSet<Uuid>>,
}

/// How old a device list fetched ahead may be when a send uses it: about the time between the last
/// keystroke and Enter. The list is the server's word either way, checked like any other
/// (signatures, trust). A device added in that window gets the room key with the next message, as
/// one added while a send is in flight always has; a member removed in it already holds the current
/// session, and the rotation that shuts them out comes one message later. Only a lying server
/// could hand them that message, and a lying server can keep them in any list.
const PREFETCH_FRESH_MS: f64 = 2000.0;

impl ServerRelay {
    fn new(device_id: String) -> Self {
        Self {
            device_id,
            full_history: Default::default(),
            prefetched: Default::default(),
            prefetching: Default::default(),
        }
    }

    /// Fetches `channel_id`'s device list ahead of a send (called as the person types), so that
    /// the send does not wait for it. At most one fetch per channel at a time, and none while a
    /// fresh enough list is waiting.
    pub async fn prefetch(&self, channel_id: Uuid) {
        let now = super::now_ms();
        let fresh = self.prefetched.borrow().get(&channel_id).is_some_and(|(at, _)| now - at < PREFETCH_FRESH_MS / 2.0);
        if fresh || !self.prefetching.borrow_mut().insert(channel_id) {
            return;
        }
        let listed = channel_devices(channel_id).await;
        self.prefetching.borrow_mut().remove(&channel_id);
        if let Ok(listed) = listed {
            self.prefetched.borrow_mut().insert(channel_id, (super::now_ms(), listed));
        }
    }
}

impl Relay for ServerRelay {
    async fn channel_devices(&self, channel_id: Uuid) -> CryptoResult<Vec<DeviceKeys>> {
        // A list fetched ahead serves one send, if it is fresh enough.
        let ahead = self.prefetched.borrow_mut().remove(&channel_id);
        if let Some((at, listed)) = ahead
            && super::now_ms() - at < PREFETCH_FRESH_MS
        {
            return Ok(listed);
        }
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

    fn shares_history(&self, channel_id: Uuid) -> bool {
        self.full_history.borrow().contains(&channel_id)
    }

    async fn cross_signing(&self, user_id: Uuid) -> CryptoResult<CrossSigning> {
        get_cross_signing(user_id).await.map_err(relay_error)
    }

    async fn set_master(&self, master_key: String) -> CryptoResult<()> {
        set_master_key(master_key).await.map(|_| ()).map_err(relay_error)
    }

    async fn sign_device(&self, device_id: String, signature: String) -> CryptoResult<()> {
        sign_device(device_id, signature).await.map(|_| ()).map_err(relay_error)
    }
}

use crate::chat::REKEYED;

fn new_device_id() -> String {
    Uuid::new_v4().simple().to_string()[..10].to_uppercase()
}

/// Records when this device was set up (not secret: which messages it could not have been given
/// keys for).
async fn mark_created(idb: &IdbStore) -> CryptoResult<()> {
    let now = js_sys::Date::new_0().to_iso_string().as_string().unwrap_or_default();
    idb.save(CREATED, now.replace('Z', "+00:00")).await
}

/// Replaces this browser's device with a new one (new identity keys, new id) after the server
/// re-keyed it: the old id is removed from the account (its co-members' apps are told, and stop
/// sharing keys with it), while the room keys this browser holds, its trust records and its key
/// backup stay, so its history stays readable. The next start registers the new device.
pub async fn start_new_device(user: Uuid) -> CryptoResult<()> {
    let _lock = lock(LOCK, true).await?;
    let idb = IdbStore::open(&format!("chatalot-{user}")).await?;
    let key = store_key(&idb).await?;
    let (mut machine, mut written) = store::load(&idb, &key).await?.ok_or_else(deleted)?;
    let old = machine.device.device_id().to_owned();
    // The old id first: once removed, nobody shares keys with the impostor keys listed for it.
    match crate::api::keys::remove_device(old).await {
        Ok(()) | Err(AppError::NotFound) => {}
        Err(e) => return Err(relay_error(e)),
    }
    machine.device = Device::new(user, new_device_id());
    machine.channels.forget_outbound();
    store::save(&idb, &machine, &key, &mut written).await?;
    mark_created(&idb).await
}

fn deleted() -> CryptoError {
    CryptoError::Store("the encryption state of this browser was deleted".into())
}

pub(crate) use crate::chat::fingerprint;

/// The sealed crypto state of one account in this browser profile.
pub struct Vault {
    idb: IdbStore,
    key: StoreKey,
    pub relay: ServerRelay,
    /// The state as this tab last read or wrote it, and what the store held then: used again as
    /// long as no other tab saved since (the store's generation says), so an operation reads one
    /// small record and writes only what it changed.
    cache: std::cell::RefCell<Option<(Machine, Written)>>,
}

impl Vault {
    /// Loads or creates this browser's device for `user`, registers it and tops up its keys.
    pub async fn open(user: Uuid) -> Result<(Self, DeviceStatus), String> {
        let text = |e: CryptoError| e.to_string();
        let _lock = lock(LOCK, true).await.map_err(text)?;
        let idb = IdbStore::open(&format!("chatalot-{user}")).await.map_err(text)?;
        let key = store_key(&idb).await.map_err(text)?;
        let (mut machine, mut written) = match store::load(&idb, &key).await.map_err(text)? {
            Some(loaded) => loaded,
            None => {
                let machine = Machine::new(Device::new(user, new_device_id()));
                let mut written = Written::default();
                // Saved before it is published: a reload never creates a second identity.
                store::save(&idb, &machine, &key, &mut written).await.map_err(text)?;
                mark_created(&idb).await.map_err(text)?;
                (machine, written)
            }
        };
        let created_at = idb.load(CREATED).await.map_err(text)?;
        register_device(machine.device.device_keys()).await.map_err(|e| match e.for_field("device_id") {
            // This browser's own device, listed by the server with keys it never had.
            Some(_) => REKEYED.to_owned(),
            None => e.to_string(),
        })?;
        let device_id = machine.device.device_id().to_owned();
        let vault = Self { idb, key, relay: ServerRelay::new(device_id.clone()), cache: Default::default() };
        vault.top_up(&mut machine, &mut written).await.map_err(text)?;
        // The person's first device sets up their master key (cross-signing); not fatal.
        if let Err(e) = machine.ensure_master(&vault.relay).await {
            leptos::logging::warn!("could not set up cross-signing: {e}");
        }
        store::save(&vault.idb, &machine, &vault.key, &mut written).await.map_err(text)?;
        let status = DeviceStatus { device_id, fingerprint: fingerprint(&machine.device.ed25519()), created_at };
        *vault.cache.borrow_mut() = Some((machine, written));
        Ok((vault, status))
    }

    pub fn device_id(&self) -> &str {
        &self.relay.device_id
    }

    /// Publishes one-time keys and a fallback key when the server runs low (others claim them to
    /// start Olm sessions with this device).
    async fn top_up(&self, machine: &mut Machine, written: &mut Written) -> CryptoResult<()> {
        let device_id = self.relay.device_id.clone();
        let counts = get_key_counts(device_id.clone()).await.map_err(relay_error)?;
        let one_time = machine.device.one_time_keys_to_publish(counts.one_time);
        let fallback = if counts.fallback { None } else { machine.device.fallback_key_to_publish() };
        if !one_time.is_empty() || fallback.is_some() {
            // Persist the new private keys before the server hands out their public halves.
            store::save(&self.idb, machine, &self.key, written).await?;
            upload_keys(device_id, one_time, fallback).await.map_err(relay_error)?;
            machine.device.mark_published();
            store::save(&self.idb, machine, &self.key, written).await?;
        }
        Ok(())
    }

    /// The latest state (call under the lock): this tab's copy if no other tab saved since.
    async fn latest(&self) -> CryptoResult<(Machine, Written)> {
        let generation = store::generation(&self.idb).await?;
        let cached = self.cache.borrow_mut().take();
        match cached {
            Some((machine, written)) if written.generation == generation => Ok((machine, written)),
            _ => store::load(&self.idb, &self.key).await?.ok_or_else(deleted),
        }
    }

    /// Saves what changed and keeps the state for the next operation (a failed save forgets it:
    /// the next operation reads the store again).
    async fn keep(&self, machine: Machine, mut written: Written) -> CryptoResult<()> {
        store::save(&self.idb, &machine, &self.key, &mut written).await?;
        *self.cache.borrow_mut() = Some((machine, written));
        Ok(())
    }

    /// Runs `f` on the latest state while holding the lock, then saves what it changed.
    pub async fn with<T>(&self, f: impl AsyncFnOnce(&mut Machine, &ServerRelay) -> T) -> CryptoResult<T> {
        let _lock = lock(LOCK, true).await?;
        let (mut machine, written) = self.latest().await?;
        let out = f(&mut machine, &self.relay).await;
        self.keep(machine, written).await?;
        Ok(out)
    }

    /// Like [`Vault::with`], with this device's key backup state too (saved sealed, like the rest).
    pub async fn with_backup<T>(
        &self,
        f: impl AsyncFnOnce(&mut Machine, &mut Option<BackupState>) -> T,
    ) -> CryptoResult<T> {
        let _lock = lock(LOCK, true).await?;
        let (mut machine, written) = self.latest().await?;
        let mut backup = match self.idb.load(BACKUP).await? {
            Some(sealed) => store::open_value(BACKUP, &sealed, &self.key)?,
            None => None,
        };
        let before = serde_json::to_string(&backup).ok();
        let out = f(&mut machine, &mut backup).await;
        self.keep(machine, written).await?;
        if serde_json::to_string(&backup).ok() != before {
            self.idb.save(BACKUP, store::seal_value(BACKUP, &backup, &self.key)?).await?;
        }
        Ok(out)
    }

    /// After receiving to-device messages (one-time keys may have been used up).
    pub async fn replenish(&self) -> CryptoResult<()> {
        let _lock = lock(LOCK, true).await?;
        let (mut machine, mut written) = self.latest().await?;
        let topped = self.top_up(&mut machine, &mut written).await;
        *self.cache.borrow_mut() = Some((machine, written));
        topped
    }
}
