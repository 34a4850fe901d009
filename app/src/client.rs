//! The browser runtime around the crypto core (hydrated browser build only): this browser
//! profile's device is created once, kept in IndexedDB, registered with the key directory and its
//! one-time keys kept topped up. Only one tab at a time does this (a Web Lock).

use crate::{
    api::keys::{get_key_counts, register_device, upload_keys},
    crypto::{
        browser::{IdbStore, lock, store_key},
        device::Device,
        machine::Machine,
        store,
    },
};
use uuid::Uuid;

/// What the UI shows about this device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    pub device_id: String,
    /// The Ed25519 key, grouped for reading aloud when comparing.
    pub fingerprint: String,
}

fn fingerprint(ed25519: &str) -> String {
    ed25519.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

/// Loads or creates this browser's device for `user`, registers it and tops up its keys.
pub async fn ensure_device(user: Uuid) -> Result<DeviceStatus, String> {
    let _lock = lock("chatalot-crypto", true).await.map_err(|e| e.to_string())?;
    let idb = IdbStore::open(&format!("chatalot-{user}")).await.map_err(|e| e.to_string())?;
    let key = store_key(&idb).await.map_err(|e| e.to_string())?;
    let mut machine = match store::load(&idb, &key).await.map_err(|e| e.to_string())? {
        Some(m) => m,
        None => {
            let id = Uuid::new_v4().simple().to_string()[..10].to_uppercase();
            let machine = Machine::new(Device::new(user, id));
            // Saved before it is published: a reload never creates a second identity.
            store::save(&idb, &machine, &key).await.map_err(|e| e.to_string())?;
            machine
        }
    };
    register_device(machine.device.device_keys()).await.map_err(|e| e.to_string())?;
    let device_id = machine.device.device_id().to_owned();
    let counts = get_key_counts(device_id.clone()).await.map_err(|e| e.to_string())?;
    let one_time = machine.device.one_time_keys_to_publish(counts.one_time);
    let fallback = if counts.fallback { None } else { machine.device.fallback_key_to_publish() };
    if !one_time.is_empty() || fallback.is_some() {
        // Persist the new private keys before the server hands out their public halves.
        store::save(&idb, &machine, &key).await.map_err(|e| e.to_string())?;
        upload_keys(device_id.clone(), one_time, fallback).await.map_err(|e| e.to_string())?;
        machine.device.mark_published();
        store::save(&idb, &machine, &key).await.map_err(|e| e.to_string())?;
    }
    Ok(DeviceStatus { device_id, fingerprint: fingerprint(&machine.device.ed25519()) })
}
