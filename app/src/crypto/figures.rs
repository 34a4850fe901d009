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
    let text = |n: usize| ChannelPlaintext { channel_id: channel, body: "x".repeat(n), edit_of: None, sent_at_ms: 0 };

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

/// What one saved step costs as history grows: every operation of the browser runtime loads
/// and saves the whole Megolm state, which grows with every session and message received.
#[test]
fn megolm_state_cost_by_history() {
    use crate::crypto::store::{StoreKey, open_channels, seal_channels};
    let key = StoreKey([7; 32]);
    let channel = uuid::Uuid::new_v4();
    let (alice, bob) = (Device::new(uuid::Uuid::new_v4(), "A"), Device::new(uuid::Uuid::new_v4(), "B"));
    let bob_seen = verify_device(&bob.device_keys(), bob.user()).unwrap();
    let alice_seen = verify_device(&alice.device_keys(), alice.user()).unwrap();
    let (mut sending, mut receiving) = (Channels::default(), Channels::default());
    let text = ChannelPlaintext { channel_id: channel, body: "x".repeat(100), edit_of: None, sent_at_ms: 0 };
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
    }
}
