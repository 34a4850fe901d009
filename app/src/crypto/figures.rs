//! Figures for the note, not assertions about speed: run by `cargo xtask bench` (release WASM in
//! headless Chromium); the test run skips them (its filter is `::tests::`).

use crate::crypto::{
    channel::{ChannelPlaintext, Channels},
    device::{Device, verify_device},
};
use wasm_bindgen_test::{console_log, wasm_bindgen_test as test};

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

#[test]
fn megolm_timings_in_the_browser() {
    let channel = uuid::Uuid::new_v4();
    let (alice, bob) = (Device::new(uuid::Uuid::new_v4(), "A"), Device::new(uuid::Uuid::new_v4(), "B"));
    let bob_seen = verify_device(&bob.device_keys(), bob.user()).unwrap();
    let alice_seen = verify_device(&alice.device_keys(), alice.user()).unwrap();
    let (mut sending, mut receiving) = (Channels::default(), Channels::default());
    for (device, key) in sending.prepare(&alice, channel, &[bob_seen], 0) {
        assert_eq!(device.user, bob.user());
        receiving.add_room_key(&alice_seen, &key).unwrap();
    }
    let text = |n: usize| ChannelPlaintext::message(channel, "x".repeat(n), None, 0);

    // 1 KB messages, one at a time.
    const ROUNDS: usize = 200;
    let (mut enc, mut dec) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        let started = now_ms();
        let sealed = sending.encrypt(&alice, &text(1024)).unwrap();
        enc += now_ms() - started;
        let started = now_ms();
        receiving.decrypt(channel, uuid::Uuid::new_v4(), &sealed).unwrap();
        dec += now_ms() - started;
        sending.outbound.get_mut(&channel).unwrap().sent = 0; // measure the cipher, not rotation
    }
    console_log!(
        "Megolm 1 KB: encrypt {:.3} ms, decrypt {:.3} ms (mean of {ROUNDS})",
        enc / ROUNDS as f64,
        dec / ROUNDS as f64
    );

    // A 500-message backlog of short messages, decrypted in one go (as on opening a channel).
    let backlog: Vec<Vec<u8>> = (0..500)
        .map(|_| {
            sending.outbound.get_mut(&channel).unwrap().sent = 0;
            sending.encrypt(&alice, &text(200)).unwrap()
        })
        .collect();
    let started = now_ms();
    for sealed in &backlog {
        receiving.decrypt(channel, uuid::Uuid::new_v4(), sealed).unwrap();
    }
    console_log!("500-message backlog (200-byte messages): decrypted in {:.1} ms", now_ms() - started);
}

/// What one saved step costs as history grows. Before: every operation sealed and wrote the whole
/// Megolm state (the first layout, `seal_channels`). Now: a save writes the records that changed
/// (`store::save`); printed side by side, per received message.
#[test]
fn megolm_state_cost_by_history() {
    use crate::crypto::store::{StoreKey, open_channels, seal_channels};
    let key = StoreKey([7; 32]);
    let channel = uuid::Uuid::new_v4();
    let (alice, bob) = (Device::new(uuid::Uuid::new_v4(), "A"), Device::new(uuid::Uuid::new_v4(), "B"));
    let bob_seen = verify_device(&bob.device_keys(), bob.user()).unwrap();
    let alice_seen = verify_device(&alice.device_keys(), alice.user()).unwrap();
    let (mut sending, mut receiving) = (Channels::default(), Channels::default());
    let text = ChannelPlaintext::message(channel, "x".repeat(100), None, 0);
    let mut received = 0;
    for target in [1_000, 10_000] {
        while received < target {
            // A new session every 100 messages, as the rotation rule makes.
            if received % 100 == 0 {
                sending.rotate(channel);
                for (_, room_key) in sending.prepare(&alice, channel, std::slice::from_ref(&bob_seen), 0) {
                    receiving.add_room_key(&alice_seen, &room_key).unwrap();
                }
            }
            let sealed = sending.encrypt(&alice, &text).unwrap();
            receiving.decrypt(channel, uuid::Uuid::new_v4(), &sealed).unwrap();
            received += 1;
        }
        const ROUNDS: usize = 5;
        let (mut seal, mut open, mut size) = (0.0, 0.0, 0);
        for _ in 0..ROUNDS {
            let started = now_ms();
            let sealed = seal_channels(&receiving, &key).unwrap();
            seal += now_ms() - started;
            size = sealed.len();
            let started = now_ms();
            open_channels(&sealed, &key).unwrap();
            open += now_ms() - started;
        }
        console_log!(
            "Megolm state after {target} messages in {} sessions: {} KiB sealed; seal {:.1} ms, open {:.1} ms",
            target / 100,
            size / 1024,
            seal / ROUNDS as f64,
            open / ROUNDS as f64
        );
        // The per-record layout: a first save of everything, then one message at a time.
        let mut machine = crate::crypto::machine::Machine::new(Device::new(bob.user(), "B"));
        machine.channels = std::mem::take(&mut receiving);
        let store = crate::crypto::store::MemoryStore::default();
        let mut written = crate::crypto::store::Written::default();
        let all = now_or_panic(crate::crypto::store::save(&store, &machine, &key, &mut written));
        let (mut bytes, mut records, mut took) = (0, 0, 0.0);
        for _ in 0..ROUNDS {
            let sealed = sending.encrypt(&alice, &text).unwrap();
            machine.channels.decrypt(channel, uuid::Uuid::new_v4(), &sealed).unwrap();
            received += 1;
            let started = now_ms();
            let saved = now_or_panic(crate::crypto::store::save(&store, &machine, &key, &mut written));
            took += now_ms() - started;
            bytes += saved.bytes;
            records += saved.records;
        }
        console_log!(
            "  per-record layout: {} KiB in {} records at first; then per message {} bytes in {:.1} records, {:.2} ms",
            all.bytes / 1024,
            all.records,
            bytes / ROUNDS,
            records as f64 / ROUNDS as f64,
            took / ROUNDS as f64
        );
        receiving = std::mem::take(&mut machine.channels);
    }
}

/// Runs a future of the memory store (it never waits).
fn now_or_panic<T>(f: impl std::future::Future<Output = crate::crypto::CryptoResult<T>>) -> T {
    use std::task::{Context, Poll, Waker};
    match std::pin::pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v.unwrap(),
        Poll::Pending => panic!("the memory store never waits"),
    }
}

/// Restoring history from the key backup on a new device: 10,000 sessions opened and imported.
#[test]
fn restoring_ten_thousand_keys_from_backup() {
    use crate::crypto::backup::{self, BackupKey, Restored};
    let alice = Device::new(uuid::Uuid::new_v4(), "A");
    let alice_seen = verify_device(&alice.device_keys(), alice.user()).unwrap();
    let bob = Device::new(uuid::Uuid::new_v4(), "B");
    let bob_seen = verify_device(&bob.device_keys(), bob.user()).unwrap();
    let (mut sending, mut holding) = (Channels::default(), Channels::default());
    for n in 0..10_000u64 {
        let channel = uuid::Uuid::from_u64_pair(0, n % 50);
        sending.rotate(channel);
        for (_, room_key) in sending.prepare(&alice, channel, std::slice::from_ref(&bob_seen), n) {
            holding.add_room_key(&alice_seen, &room_key).unwrap();
        }
    }
    let key = BackupKey::generate().unwrap();
    let started = now_ms();
    let sealed: Vec<_> =
        backup::pending(&holding, &key, &Default::default(), usize::MAX).unwrap().into_iter().map(|(k, _)| k).collect();
    let sealing = now_ms() - started;
    let bytes: usize = sealed.iter().map(|k| k.sealed.0.len() + k.key_id.len()).sum();
    let mut fresh = Channels::default();
    let (mut restored, mut uploaded) = (Restored::default(), Default::default());
    let started = now_ms();
    for page in sealed.chunks(crate::model::backup::MAX_BACKUP_BATCH) {
        backup::restore(&mut fresh, &key, page, &mut restored, &mut uploaded, &mut None);
    }
    let restoring = now_ms() - started;
    assert_eq!(restored.imported, 10_000);
    console_log!(
        "Key backup, 10,000 sessions: sealed in {sealing:.0} ms ({} KiB to upload); restored in {restoring:.0} ms",
        bytes / 1024
    );
}
