//! The crypto core's decoders of what the server relays: a channel message (Megolm envelope) and
//! a to-device message (Olm envelope). Inputs are taken as whole envelopes, as edits of real ones
//! (bytes written into the decoded message body: into vodozemac's parsing and its MAC and
//! signature checks), or as the plaintext of a real Megolm session (into the checks on what
//! decrypts). Errors are expected; a panic, or a tampered message that decrypts to anything but
//! the original, is a finding. (vodozemac reads a Megolm message's fields, so an edit that only
//! re-encodes them, e.g. an unknown protobuf field, still decrypts, to the same plaintext at the
//! same index; the replay check refuses it under any other message id.)
//!
//! Built without `--cfg fuzzing`: under it vodozemac skips its MAC and signature checks, and a
//! tampered message would decrypt.
#![no_main]
// Harness set-up that fails is a crash the fuzzer reports, with its message.
#![allow(clippy::expect_used)]

use app::crypto::{
    channel::{ChannelPlaintext, Channels, Decrypted},
    device::{Device, VerifiedDevice, verify_claimed_key, verify_device},
    olm::ToDeviceContent,
};
use app::model::keys::ClaimedKey;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use uuid::Uuid;
use vodozemac::megolm::{GroupSession, SessionConfig};

/// Bob's side of a conversation alice started: an Olm session and a Megolm room key, and one real
/// message of each kind to start mutations from.
struct World {
    bob: Device,
    channels: Channels,
    alice: VerifiedDevice,
    channel: Uuid,
    megolm: Vec<u8>,
    /// What `megolm` decrypts to.
    original: Decrypted,
    olm: Vec<u8>,
    /// A Megolm session of alice's whose key bob holds for the channel, to encrypt any plaintext.
    raw: GroupSession,
    alice_curve25519: String,
}

fn world() -> World {
    let mut alice = Device::new(Uuid::new_v4(), "ALICE");
    let mut bob = Device::new(Uuid::new_v4(), "BOB");
    let (mut alice_channels, mut channels) = (Channels::default(), Channels::default());
    let channel = Uuid::new_v4();
    let bob_seen = verify_device(&bob.device_keys(), bob.user()).expect("bob's keys");
    let alice_seen = verify_device(&alice.device_keys(), alice.user()).expect("alice's keys");
    let key = bob.one_time_keys_to_publish(0).remove(0);
    bob.mark_published();
    let claimed = ClaimedKey { user_id: bob.user(), device_id: "BOB".into(), key, fallback: false };
    let one_time = verify_claimed_key(&bob_seen, &claimed).expect("a one-time key");
    let (_, room_key) = alice_channels.prepare(&alice, channel, std::slice::from_ref(&bob_seen), 0).remove(0);
    let sealed = alice.encrypt_to_device(&bob_seen, Some(one_time), room_key).expect("sealed");
    let opened = bob.decrypt_to_device(&alice_seen, &sealed).expect("opened");
    channels.add_room_key(&alice_seen, &opened).expect("room key");
    let olm = alice.encrypt_to_device(&bob_seen, None, ToDeviceContent::Dummy).expect("olm");
    let text = ChannelPlaintext::message(channel, "hello".into(), None, 1);
    let megolm = alice_channels.encrypt(&alice, &text).expect("megolm");
    let original = channels.decrypt(channel, Uuid::nil(), &megolm).expect("the real message");
    let raw = GroupSession::new(SessionConfig::version_1());
    let key = ToDeviceContent::RoomKey {
        channel_id: channel,
        session_id: raw.session_id(),
        session_key: raw.session_key().to_base64(),
    };
    channels.add_room_key(&alice_seen, &key).expect("raw room key");
    World {
        bob,
        channels,
        alice: alice_seen,
        channel,
        megolm,
        original,
        olm,
        raw,
        alice_curve25519: alice.curve25519(),
    }
}

thread_local! {
    static WORLD: RefCell<World> = RefCell::new(world());
}

/// `envelope` (JSON) with `edit` written into its decoded `body`: the first byte of `edit` says
/// where, the rest is XORed in (so an empty edit leaves the real message).
fn edited(envelope: &[u8], edit: &[u8]) -> Option<Vec<u8>> {
    let mut json: serde_json::Value = serde_json::from_slice(envelope).ok()?;
    let mut body = vodozemac::base64_decode(json.get("body")?.as_str()?).ok()?;
    if let [at, bytes @ ..] = edit {
        let start = usize::from(*at) % body.len().max(1);
        for (i, b) in bytes.iter().enumerate() {
            match body.get_mut(start + i) {
                Some(slot) => *slot ^= b,
                None => body.push(*b),
            }
        }
    }
    json["body"] = serde_json::Value::from(vodozemac::base64_encode(&body));
    serde_json::to_vec(&json).ok()
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    WORLD.with_borrow_mut(|w| match mode % 5 {
        0 => drop(w.channels.decrypt(w.channel, Uuid::nil(), rest)),
        1 => {
            if let Some(bytes) = edited(&w.megolm, rest)
                && let Ok(opened) = w.channels.decrypt(w.channel, Uuid::nil(), &bytes)
            {
                assert_eq!(opened, w.original, "a tampered channel message decrypted to something else");
            }
        }
        2 => drop(w.bob.decrypt_to_device(&w.alice, rest)),
        3 => {
            let body = w.raw.encrypt(rest).to_base64();
            let envelope = serde_json::json!({
                "v": 1, "sender_key": w.alice_curve25519, "session_id": w.raw.session_id(), "body": body,
            });
            let message_id = Uuid::new_v4();
            if let Ok(opened) = w.channels.decrypt(w.channel, message_id, envelope.to_string().as_bytes()) {
                assert_eq!(opened.plaintext.channel_id, w.channel, "a message for another channel was accepted");
            }
        }
        _ => {
            if let Some(bytes) = edited(&w.olm, rest) {
                drop(w.bob.decrypt_to_device(&w.alice, &bytes));
            }
        }
    });
});
