//! The browser's side of the persistence boundary (wasm32 only): an IndexedDB [`CryptoStore`], the
//! store key kept wrapped by a non-extractable WebCrypto key, and Web Locks so that one tab at a
//! time mutates crypto state.

use crate::crypto::{
    CryptoError, CryptoResult,
    store::{CryptoStore, StoreKey},
};
use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AesGcmParams, AesKeyGenParams, CryptoKey, IdbDatabase, IdbOpenDbRequest, IdbRequest, IdbTransaction,
    IdbTransactionMode,
};

const DB_VERSION: u32 = 1;
/// Sealed crypto records (strings).
const RECORDS: &str = "records";
/// The wrapping `CryptoKey` and the wrapped store key.
const KEYS: &str = "keys";
const IV_LEN: usize = 12;

fn describe(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::Reflect::get(e, &"message".into()).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| format!("{e:?}"))
}

fn failed(context: &'static str) -> impl Fn(JsValue) -> CryptoError {
    move |e| CryptoError::Store(format!("{context}: {}", describe(&e)))
}

fn window() -> CryptoResult<web_sys::Window> {
    web_sys::window().ok_or_else(|| CryptoError::Store("no window".into()))
}

/// Settles when the request succeeds or fails.
async fn request(req: &IdbRequest) -> CryptoResult<JsValue> {
    let promise = Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    });
    JsFuture::from(promise).await.map_err(failed("IndexedDB request"))?;
    req.result().map_err(failed("IndexedDB result"))
}

/// Settles when the transaction has committed (or failed).
async fn committed(tx: &IdbTransaction) -> CryptoResult<()> {
    let promise = Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onerror(Some(&reject));
        tx.set_onabort(Some(&reject));
    });
    JsFuture::from(promise).await.map(|_| ()).map_err(failed("IndexedDB transaction"))
}

/// Crypto state in one IndexedDB database per account and device.
#[derive(Debug)]
pub struct IdbStore {
    db: IdbDatabase,
}

impl IdbStore {
    pub async fn open(name: &str) -> CryptoResult<Self> {
        let factory = window()?
            .indexed_db()
            .map_err(failed("IndexedDB"))?
            .ok_or_else(|| CryptoError::Store("IndexedDB is not available (private mode?)".into()))?;
        let open: IdbOpenDbRequest = factory.open_with_u32(name, DB_VERSION).map_err(failed("opening IndexedDB"))?;
        let upgrade = Closure::<dyn FnMut(web_sys::Event)>::new(|event: web_sys::Event| {
            let db = event
                .target()
                .and_then(|t| t.dyn_into::<IdbOpenDbRequest>().ok())
                .and_then(|req| req.result().ok())
                .map(|db| db.unchecked_into::<IdbDatabase>());
            if let Some(db) = db {
                // Version 1: the two stores. Later versions add migrations here.
                let _ = db.create_object_store(RECORDS);
                let _ = db.create_object_store(KEYS);
            }
        });
        open.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let db = request(&open).await;
        open.set_onupgradeneeded(None);
        drop(upgrade);
        Ok(Self { db: db?.unchecked_into() })
    }

    async fn get(&self, store: &str, key: &str) -> CryptoResult<JsValue> {
        let tx =
            self.db.transaction_with_str_and_mode(store, IdbTransactionMode::Readonly).map_err(failed("reading"))?;
        let req = tx.object_store(store).and_then(|s| s.get(&key.into())).map_err(failed("reading"))?;
        request(&req).await
    }

    async fn put(&self, store: &str, key: &str, value: &JsValue) -> CryptoResult<()> {
        let tx =
            self.db.transaction_with_str_and_mode(store, IdbTransactionMode::Readwrite).map_err(failed("writing"))?;
        tx.object_store(store).and_then(|s| s.put_with_key(value, &key.into())).map_err(failed("writing"))?;
        committed(&tx).await
    }
}

impl CryptoStore for IdbStore {
    async fn load(&self, name: &str) -> CryptoResult<Option<String>> {
        Ok(self.get(RECORDS, name).await?.as_string())
    }

    /// Returns once the write has committed: callers send only after this.
    async fn save(&self, name: &str, sealed: String) -> CryptoResult<()> {
        self.put(RECORDS, name, &JsValue::from_str(&sealed)).await
    }

    async fn load_prefix(&self, prefix: &str) -> CryptoResult<Vec<(String, String)>> {
        let tx =
            self.db.transaction_with_str_and_mode(RECORDS, IdbTransactionMode::Readonly).map_err(failed("reading"))?;
        let store = tx.object_store(RECORDS).map_err(failed("reading"))?;
        // Every name from the prefix up to the prefix followed by the highest code unit.
        let range = web_sys::IdbKeyRange::bound(&prefix.into(), &format!("{prefix}\u{ffff}").into())
            .map_err(failed("reading"))?;
        let keys = store.get_all_keys_with_key(&range).map_err(failed("reading"))?;
        let values = store.get_all_with_key(&range).map_err(failed("reading"))?;
        let (keys, values) = (request(&keys).await?, request(&values).await?);
        let (keys, values) = (js_sys::Array::from(&keys), js_sys::Array::from(&values));
        Ok(keys.iter().zip(values.iter()).filter_map(|(k, v)| Some((k.as_string()?, v.as_string()?))).collect())
    }

    /// One transaction: every write and delete commits, or none does. Returns once committed.
    async fn commit(&self, writes: Vec<(String, String)>, deletes: Vec<String>) -> CryptoResult<()> {
        let tx =
            self.db.transaction_with_str_and_mode(RECORDS, IdbTransactionMode::Readwrite).map_err(failed("writing"))?;
        let store = tx.object_store(RECORDS).map_err(failed("writing"))?;
        for name in deletes {
            store.delete(&name.into()).map_err(failed("writing"))?;
        }
        for (name, sealed) in writes {
            store.put_with_key(&JsValue::from_str(&sealed), &name.into()).map_err(failed("writing"))?;
        }
        committed(&tx).await
    }
}

fn random<const N: usize>() -> CryptoResult<[u8; N]> {
    let mut bytes = [0u8; N];
    window()?
        .crypto()
        .map_err(failed("WebCrypto"))?
        .get_random_values_with_u8_array(&mut bytes)
        .map_err(failed("randomness"))?;
    Ok(bytes)
}

/// The key that seals this device's crypto state. Generated once; stored only encrypted (AES-GCM)
/// under a non-extractable WebCrypto key, which IndexedDB keeps as an opaque `CryptoKey`: no script
/// can read its bytes, so a copy of the database alone does not open the state.
///
/// In the desktop app the key is the OS keychain's instead (`desktop::vault_key`), and nothing
/// about it is kept in IndexedDB.
pub async fn store_key(store: &IdbStore) -> CryptoResult<StoreKey> {
    if let Some(key) =
        super::desktop::vault_key().await.map_err(|e| CryptoError::Store(format!("the OS keychain: {e}")))?
    {
        return Ok(StoreKey(key));
    }
    let subtle = window()?.crypto().map_err(failed("WebCrypto"))?.subtle();
    let existing = store.get(KEYS, "wrapping").await?;
    let wrapping: CryptoKey = if existing.is_undefined() {
        let usages = js_sys::Array::of2(&"encrypt".into(), &"decrypt".into());
        let params = AesKeyGenParams::new("AES-GCM", 256);
        let promise = subtle.generate_key_with_object(&params, false, &usages).map_err(failed("generating a key"))?;
        let key = JsFuture::from(promise).await.map_err(failed("generating a key"))?;
        store.put(KEYS, "wrapping", &key).await?;
        key.unchecked_into()
    } else {
        existing.unchecked_into()
    };
    let sealed = store.get(KEYS, "store-key").await?;
    if sealed.is_undefined() {
        let (key, mut iv) = (random::<32>()?, random::<IV_LEN>()?);
        let params = AesGcmParams::new_with_u8_slice("AES-GCM", &mut iv);
        let promise = subtle.encrypt_with_object_and_u8_array(&params, &wrapping, &key).map_err(failed("sealing"))?;
        let ciphertext = Uint8Array::new(&JsFuture::from(promise).await.map_err(failed("sealing"))?).to_vec();
        let record = [iv.as_slice(), &ciphertext].concat();
        store.put(KEYS, "store-key", &Uint8Array::from(record.as_slice()).into()).await?;
        return Ok(StoreKey(key));
    }
    let record = Uint8Array::new(&sealed).to_vec();
    if record.len() <= IV_LEN {
        return Err(CryptoError::Store("the stored key is truncated".into()));
    }
    let (iv, ciphertext) = record.split_at(IV_LEN);
    let mut iv = iv.to_vec();
    let params = AesGcmParams::new_with_u8_slice("AES-GCM", &mut iv);
    let promise =
        subtle.decrypt_with_object_and_u8_array(&params, &wrapping, ciphertext).map_err(failed("unsealing"))?;
    let key = Uint8Array::new(&JsFuture::from(promise).await.map_err(failed("unsealing"))?).to_vec();
    Ok(StoreKey(key.try_into().map_err(|_| CryptoError::Store("the stored key has the wrong length".into()))?))
}

/// A held Web Lock; released when dropped.
#[derive(Debug)]
pub struct TabLock {
    release: Function,
}

impl Drop for TabLock {
    fn drop(&mut self) {
        let _ = self.release.call0(&JsValue::NULL);
    }
}

/// Takes the named lock, shared by every tab of this origin. With `wait`, waits until it is free;
/// without, returns `None` at once if another tab holds it.
pub async fn lock(name: &str, wait: bool) -> CryptoResult<Option<TabLock>> {
    // `navigator.locks` is behind web-sys's unstable-API flag; call it through reflection instead of
    // rebuilding everything with that flag.
    let locks = js_sys::Reflect::get(&window()?.navigator(), &"locks".into()).map_err(failed("Web Locks"))?;
    let request: Function = js_sys::Reflect::get(&locks, &"request".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or_else(|| CryptoError::Store("this browser has no Web Locks".into()))?;
    let mut release = None;
    let held = Promise::new(&mut |resolve, _| release = Some(resolve));
    let mut grant = None;
    let granted = Promise::new(&mut |resolve, _| grant = Some(resolve));
    let (Some(release), Some(grant)) = (release, grant) else {
        return Err(CryptoError::Store("promise executor did not run".into()));
    };
    // Called with the lock (or null when `ifAvailable` found it taken); the lock is held until the
    // returned promise settles, i.e. until the `TabLock` is dropped.
    let callback = Closure::once_into_js(move |lock: JsValue| -> JsValue {
        let got = !lock.is_null() && !lock.is_undefined();
        let _ = grant.call1(&JsValue::NULL, &JsValue::from_bool(got));
        if got { held.into() } else { Promise::resolve(&JsValue::NULL).into() }
    });
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"ifAvailable".into(), &JsValue::from_bool(!wait)).map_err(failed("Web Locks"))?;
    request.call3(&locks, &name.into(), &options, &callback).map_err(failed("Web Locks"))?;
    let got = JsFuture::from(granted).await.map_err(failed("Web Locks"))?;
    Ok(got.as_bool().unwrap_or(false).then_some(TabLock { release }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{device::Device, machine::Machine, store};
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn fresh_name() -> String {
        format!("chatalot-test-{}", uuid::Uuid::new_v4())
    }

    #[test]
    async fn state_survives_reopening_indexeddb() {
        let name = fresh_name();
        let store = IdbStore::open(&name).await.unwrap();
        let key = store_key(&store).await.unwrap();
        let device = Device::new(uuid::Uuid::new_v4(), "WEB");
        let identity = device.ed25519();
        let mut written = store::Written::default();
        store::save(&store, &Machine::new(device), &key, &mut written).await.unwrap();
        drop(store);

        // A reload: a new connection, the same wrapped key, the same device.
        let store = IdbStore::open(&name).await.unwrap();
        let again = store_key(&store).await.unwrap();
        assert_eq!(again.0, key.0, "the store key is stable across reloads");
        let (machine, read) = store::load(&store, &again).await.unwrap().expect("saved state");
        assert_eq!(machine.device.ed25519(), identity);
        assert_eq!(read.generation, written.generation);
        // Only what changes is written again; records by prefix come back in one read.
        let mut next = read.clone();
        assert_eq!(store::save(&store, &machine, &again, &mut next).await.unwrap(), store::Saved::default());
        let records = store.load_prefix("v2/").await.unwrap();
        assert!(records.iter().any(|(name, _)| name == "v2/account"), "{records:?}");
        assert!(records.iter().all(|(name, _)| name.starts_with("v2/")));
        // What IndexedDB holds for the key is not the key.
        let sealed = Uint8Array::new(&store.get(KEYS, "store-key").await.unwrap()).to_vec();
        assert!(!sealed.windows(32).any(|w| w == key.0), "the store key is kept wrapped");
        let wrapping: CryptoKey = store.get(KEYS, "wrapping").await.unwrap().unchecked_into();
        assert!(!wrapping.extractable(), "the wrapping key cannot be exported");
    }

    #[test]
    async fn one_tab_at_a_time_holds_the_crypto_lock() {
        let name = fresh_name();
        let first = lock(&name, false).await.unwrap().expect("a free lock is granted");
        assert!(lock(&name, false).await.unwrap().is_none(), "a second holder is refused");
        drop(first);
        assert!(lock(&name, true).await.unwrap().is_some(), "free again after release");
    }
}
