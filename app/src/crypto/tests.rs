//! The crypto core against an untrusted "server" that is just these tests: key publication and
//! verification, Olm envelopes with identity binding, Megolm channels with rotation and replay
//! refusal, and sealed persistence.

use super::{
    CryptoError,
    channel::{ChannelPlaintext, Channels, ROTATE_AFTER_MESSAGES, ROTATE_AFTER_MS},
    device::{Device, ONE_TIME_KEY_TARGET, VerifiedDevice, verify_claimed_key, verify_device},
    olm::ToDeviceContent,
    store::{self, CryptoStore, MemoryStore, StoreKey},
    trust::{Seen, Trust, Verification},
};
use crate::crypto::machine::{KeyWarning, Machine, Relay};
use crate::model::keys::ClaimedKey;
use crate::model::keys::{DeviceKeys, OutgoingToDevice};
use std::cell::RefCell;
use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};
use uuid::Uuid;
// The same tests run natively and, as WASM, in headless Chromium.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Runs a future that never waits (the memory store's).
fn now<T>(f: impl Future<Output = T>) -> T {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

struct Person {
    device: Device,
    channels: Channels,
}

impl Person {
    fn new(name: &str) -> Self {
        Self { device: Device::new(Uuid::new_v4(), name.to_uppercase()), channels: Channels::default() }
    }

    /// As another client sees this device after checking its published keys.
    fn seen(&self) -> VerifiedDevice {
        verify_device(&self.device.device_keys(), self.device.user()).unwrap()
    }

    /// A one-time key as the server would hand it out in a claim, checked by the claimer.
    fn claim(&mut self) -> vodozemac::Curve25519PublicKey {
        let key = self.device.one_time_keys_to_publish(0).remove(0);
        self.device.mark_published();
        let claimed =
            ClaimedKey { user_id: self.device.user(), device_id: self.device.device_id().into(), key, fallback: false };
        verify_claimed_key(&self.seen(), &claimed).unwrap()
    }
}

/// `from` shares its channel keys with `to` over Olm, as the send path does.
fn share(from: &mut Person, to: &mut Person, keys: Vec<(VerifiedDevice, ToDeviceContent)>) {
    let to_seen = to.seen();
    for (device, content) in keys.into_iter().filter(|(d, _)| *d == to_seen) {
        let claimed = (!from.device.has_session_with(&device)).then(|| to.claim());
        let sealed = from.device.encrypt_to_device(&device, claimed, content).unwrap();
        let opened = to.device.decrypt_to_device(&from.seen(), &sealed).unwrap();
        match opened {
            ToDeviceContent::History { .. } => to.channels.add_history(&from.seen(), &opened).unwrap(),
            _ => to.channels.add_room_key(&from.seen(), &opened).unwrap(),
        };
    }
}

fn text(channel_id: Uuid, body: &str) -> ChannelPlaintext {
    ChannelPlaintext::message(channel_id, body.into(), None, 1)
}

#[test]
fn published_keys_verify_and_forgeries_do_not() {
    let mut alice = Person::new("alice");
    let keys = alice.device.device_keys();
    let seen = verify_device(&keys, alice.device.user()).unwrap();
    assert_eq!(
        (seen.ed25519.as_str(), seen.curve25519.as_str()),
        (alice.device.ed25519().as_str(), alice.device.curve25519().as_str())
    );

    // A server that lies: another Curve25519 key, another user, another device's signing key.
    let mallory = Device::new(Uuid::new_v4(), "M");
    let swapped = crate::model::keys::DeviceKeys { curve25519: mallory.curve25519(), ..keys.clone() };
    assert!(matches!(verify_device(&swapped, alice.device.user()), Err(CryptoError::BadDeviceSignature(_))));
    assert!(verify_device(&keys, Uuid::new_v4()).is_err());
    let impostor = crate::model::keys::DeviceKeys { ed25519: mallory.ed25519(), ..keys };
    assert!(verify_device(&impostor, alice.device.user()).is_err());

    // One-time keys: topped up to the target, each signed; a forged or misattributed one is refused.
    let otks = alice.device.one_time_keys_to_publish(0);
    assert_eq!(otks.len(), ONE_TIME_KEY_TARGET);
    alice.device.mark_published();
    assert!(alice.device.one_time_keys_to_publish(ONE_TIME_KEY_TARGET as u64).is_empty());
    assert_eq!(alice.device.one_time_keys_to_publish(20).len(), 5);
    let alice_user = alice.device.user();
    let claimed = |key| ClaimedKey { user_id: alice_user, device_id: "ALICE".into(), key, fallback: false };
    assert!(verify_claimed_key(&alice.seen(), &claimed(otks[0].clone())).is_ok());
    let mut forged = otks[1].clone();
    forged.public_key = mallory.curve25519();
    assert!(matches!(verify_claimed_key(&alice.seen(), &claimed(forged)), Err(CryptoError::BadKeySignature(_))));
    let elsewhere = ClaimedKey { device_id: "OTHER".into(), ..claimed(otks[2].clone()) };
    assert!(verify_claimed_key(&alice.seen(), &elsewhere).is_err());
    let fallback = alice.device.fallback_key_to_publish().unwrap();
    assert!(verify_claimed_key(&alice.seen(), &ClaimedKey { fallback: true, ..claimed(fallback) }).is_ok());
}

#[test]
fn olm_envelopes_bind_sender_and_recipient() {
    let (mut alice, mut bob, mut carol) = (Person::new("alice"), Person::new("bob"), Person::new("carol"));
    let channel = Uuid::new_v4();
    let content = ToDeviceContent::RoomKey { channel_id: channel, session_id: "s".into(), session_key: "k".into() };
    assert_eq!(alice.device.encrypt_to_device(&bob.seen(), None, content.clone()), Err(CryptoError::NoSession));
    let otk = bob.claim();
    let first = alice.device.encrypt_to_device(&bob.seen(), Some(otk), content.clone()).unwrap();
    let second = alice.device.encrypt_to_device(&bob.seen(), None, ToDeviceContent::Dummy).unwrap();

    // The server hands the envelope to the wrong device, or says it came from someone else.
    assert!(carol.device.decrypt_to_device(&alice.seen(), &first).is_err());
    assert_eq!(bob.device.decrypt_to_device(&carol.seen(), &first), Err(CryptoError::WrongSender("Curve25519 key")));
    assert!(matches!(
        bob.device.decrypt_to_device(&alice.seen(), &first[..first.len() / 2]),
        Err(CryptoError::Malformed(_))
    ));

    assert_eq!(bob.device.decrypt_to_device(&alice.seen(), &first).unwrap(), content);
    assert_eq!(bob.device.decrypt_to_device(&alice.seen(), &second).unwrap(), ToDeviceContent::Dummy);
    assert!(bob.device.decrypt_to_device(&alice.seen(), &first).is_err(), "an Olm message opens once");
    let reply = bob.device.encrypt_to_device(&alice.seen(), None, ToDeviceContent::Dummy).unwrap();
    assert_eq!(alice.device.decrypt_to_device(&bob.seen(), &reply).unwrap(), ToDeviceContent::Dummy);

    // A device that lies about its identity inside the envelope: carol's session, but she claims
    // (in the plaintext) to be alice. Bob checks the plaintext against the device he expects.
    let otk = bob.claim();
    let mut carol_as_alice = Device::new(alice.device.user(), "ALICE");
    std::mem::swap(&mut carol_as_alice.account, &mut carol.device.account);
    let lie = carol_as_alice.encrypt_to_device(&bob.seen(), Some(otk), ToDeviceContent::Dummy).unwrap();
    let carol_keys = VerifiedDevice {
        user: carol.device.user(),
        device_id: "CAROL".into(),
        ed25519: carol_as_alice.ed25519(),
        curve25519: carol_as_alice.curve25519(),
    };
    assert_eq!(bob.device.decrypt_to_device(&carol_keys, &lie), Err(CryptoError::WrongSender("user or device")));
}

#[test]
fn channel_messages_decrypt_for_members_only_and_refuse_replays() {
    let (mut alice, mut bob) = (Person::new("alice"), Person::new("bob"));
    let channel = Uuid::new_v4();
    let keys = alice.channels.prepare(&alice.device, channel, &[alice.seen(), bob.seen()], 0);
    assert_eq!(keys.len(), 1, "only bob needs the key; alice has her own copy");
    share(&mut alice, &mut bob, keys);

    let hello = alice.channels.encrypt(&alice.device, &text(channel, "hello bob")).unwrap();
    let (m1, m2) = (Uuid::new_v4(), Uuid::new_v4());
    let got = bob.channels.decrypt(channel, m1, &hello).unwrap();
    assert_eq!((got.plaintext.body.as_str(), got.sender.user, got.index), ("hello bob", alice.device.user(), 0));
    assert_eq!(
        alice.channels.decrypt(channel, m1, &hello).unwrap().plaintext.body,
        "hello bob",
        "the author reads her own"
    );
    // Decrypting the same message again (a reload) is fine; the same ciphertext as another message is a replay.
    assert!(bob.channels.decrypt(channel, m1, &hello).is_ok());
    assert_eq!(bob.channels.decrypt(channel, m2, &hello), Err(CryptoError::Replay));
    // Moved to another channel: no key there.
    assert!(matches!(bob.channels.decrypt(Uuid::new_v4(), m2, &hello), Err(CryptoError::UnknownSession(_))));
    // Tampered or truncated.
    let mut tampered = String::from_utf8(hello.clone()).unwrap();
    let at = tampered.find("\"body\":\"").unwrap() + 12;
    tampered.replace_range(at..at + 1, if &tampered[at..at + 1] == "A" { "B" } else { "A" });
    assert!(bob.channels.decrypt(channel, m2, tampered.as_bytes()).is_err());
    assert!(matches!(bob.channels.decrypt(channel, m2, &hello[..10]), Err(CryptoError::Malformed(_))));

    // Edits are messages too, pointing at what they replace.
    let edit = ChannelPlaintext { edit_of: Some(m1), ..text(channel, "hello, bob!") };
    let sealed = alice.channels.encrypt(&alice.device, &edit).unwrap();
    assert_eq!(bob.channels.decrypt(channel, m1, &sealed).unwrap().plaintext.edit_of, Some(m1));
}

#[test]
fn envelopes_must_agree_with_the_ciphertext_about_author_and_edits() {
    use crate::crypto::machine::check_envelope;
    use crate::model::messages::{Ciphertext, Envelope, MessageKind};
    let (mut alice, mut bob, carol) = (Person::new("alice"), Person::new("bob"), Person::new("carol"));
    let channel = Uuid::new_v4();
    let keys = alice.channels.prepare(&alice.device, channel, &[bob.seen()], 0);
    share(&mut alice, &mut bob, keys);
    let id = Uuid::new_v4();
    let envelope = |sealed: Vec<u8>, sender: &Person| Envelope {
        id,
        channel_id: channel,
        seq: 1,
        sender_id: sender.device.user(),
        sender_device: sender.device.device_id().into(),
        client_txn: "t".into(),
        kind: MessageKind::Text,
        reply_to: None,
        thread_id: None,
        ciphertext: Ciphertext(sealed),
        created_at: String::new(),
        edited_at: None,
        expires_at: None,
    };
    let sealed = alice.channels.encrypt(&alice.device, &text(channel, "mine")).unwrap();
    let honest = envelope(sealed.clone(), &alice);
    check_envelope(&bob.channels.decrypt(channel, id, &sealed).unwrap(), &honest).unwrap();
    // The server relabels alice's message as carol's, or as another device of alice's.
    let relabelled = envelope(sealed.clone(), &carol);
    let got = bob.channels.decrypt(channel, id, &sealed).unwrap();
    assert!(matches!(check_envelope(&got, &relabelled), Err(CryptoError::WrongSender(_))));
    let other_device = Envelope { sender_device: "ELSEWHERE".into(), ..honest.clone() };
    assert!(matches!(check_envelope(&got, &other_device), Err(CryptoError::WrongSender(_))));
    // An edit of message `id` moved onto another message is refused; on its own message it passes.
    let edit = alice.channels.encrypt(&alice.device, &ChannelPlaintext { edit_of: Some(id), ..text(channel, "x") });
    let edit = edit.unwrap();
    let moved = Envelope { id: Uuid::new_v4(), ..envelope(edit.clone(), &alice) };
    let got = bob.channels.decrypt(channel, moved.id, &edit).unwrap();
    assert!(matches!(check_envelope(&got, &moved), Err(CryptoError::Malformed(_))));
    // A reaction to message `id`: accepted as such; moved to another message, relabelled as a
    // message, or a message relabelled as a reaction: refused.
    let reaction = ChannelPlaintext { react_to: Some(id), ..text(channel, "👍") };
    let sealed = alice.channels.encrypt(&alice.device, &reaction).unwrap();
    let reaction_id = Uuid::new_v4();
    let as_sent = Envelope {
        id: reaction_id,
        kind: MessageKind::Reaction,
        reply_to: Some(id),
        ..envelope(sealed.clone(), &alice)
    };
    let got = bob.channels.decrypt(channel, reaction_id, &sealed).unwrap();
    check_envelope(&got, &as_sent).unwrap();
    for lie in [
        Envelope { reply_to: Some(Uuid::new_v4()), ..as_sent.clone() },
        Envelope { kind: MessageKind::Text, ..as_sent.clone() },
        Envelope { kind: MessageKind::Text, reply_to: None, ..as_sent.clone() },
        Envelope { reply_to: None, ..as_sent.clone() },
    ] {
        assert!(
            matches!(check_envelope(&got, &lie), Err(CryptoError::Malformed(_))),
            "{:?} {:?}",
            lie.kind,
            lie.reply_to
        );
    }
    let message = alice.channels.encrypt(&alice.device, &text(channel, "👍")).unwrap();
    let got = bob.channels.decrypt(channel, id, &message).unwrap();
    let passed_off =
        Envelope { kind: MessageKind::Reaction, reply_to: Some(Uuid::new_v4()), ..envelope(message, &alice) };
    assert!(matches!(check_envelope(&got, &passed_off), Err(CryptoError::Malformed(_))));

    // A reply names its message inside too: moved to another message or stripped of it, refused;
    // a message made into a reply, refused; one written before replies were bound, not checked.
    let target = Uuid::new_v4();
    let plaintext = ChannelPlaintext::message(channel, "yes".into(), Some(target), 1);
    let reply = alice.channels.encrypt(&alice.device, &plaintext).unwrap();
    let reply_id = Uuid::new_v4();
    let honest = Envelope { id: reply_id, reply_to: Some(target), ..envelope(reply.clone(), &alice) };
    let got = bob.channels.decrypt(channel, reply_id, &reply).unwrap();
    check_envelope(&got, &honest).unwrap();
    for lie in [Some(Uuid::new_v4()), None] {
        let moved = Envelope { reply_to: lie, ..honest.clone() };
        assert!(matches!(check_envelope(&got, &moved), Err(CryptoError::Malformed(_))), "{lie:?}");
    }
    let plain = alice.channels.encrypt(&alice.device, &text(channel, "no reply")).unwrap();
    let plain_id = Uuid::new_v4();
    let got = bob.channels.decrypt(channel, plain_id, &plain).unwrap();
    let made_a_reply = Envelope { id: plain_id, reply_to: Some(target), ..envelope(plain, &alice) };
    assert!(matches!(check_envelope(&got, &made_a_reply), Err(CryptoError::Malformed(_))));
    let legacy = ChannelPlaintext { binds_reply: false, ..text(channel, "written before") };
    let legacy = alice.channels.encrypt(&alice.device, &legacy).unwrap();
    let legacy_id = Uuid::new_v4();
    let got = bob.channels.decrypt(channel, legacy_id, &legacy).unwrap();
    check_envelope(&got, &Envelope { id: legacy_id, reply_to: Some(target), ..envelope(legacy, &alice) }).unwrap();

    // A thread reply names its thread inside: moved to another thread or out of it, refused; a
    // message moved into a thread, refused.
    let root = Uuid::new_v4();
    let in_thread = ChannelPlaintext { thread: Some(root), ..text(channel, "in the thread") };
    let sealed = alice.channels.encrypt(&alice.device, &in_thread).unwrap();
    let reply_id = Uuid::new_v4();
    let honest = Envelope { id: reply_id, thread_id: Some(root), ..envelope(sealed.clone(), &alice) };
    let got = bob.channels.decrypt(channel, reply_id, &sealed).unwrap();
    check_envelope(&got, &honest).unwrap();
    for lie in [Some(Uuid::new_v4()), None] {
        let moved = Envelope { thread_id: lie, ..honest.clone() };
        assert!(matches!(check_envelope(&got, &moved), Err(CryptoError::Malformed(_))), "{lie:?}");
    }
    let outside = alice.channels.encrypt(&alice.device, &text(channel, "outside")).unwrap();
    let outside_id = Uuid::new_v4();
    let got = bob.channels.decrypt(channel, outside_id, &outside).unwrap();
    let moved_in = Envelope { id: outside_id, thread_id: Some(root), ..envelope(outside, &alice) };
    assert!(matches!(check_envelope(&got, &moved_in), Err(CryptoError::Malformed(_))));
}

#[test]
fn a_ciphertext_claiming_another_channel_is_refused() {
    let (mut alice, mut bob) = (Person::new("alice"), Person::new("bob"));
    let (real, other) = (Uuid::new_v4(), Uuid::new_v4());
    let keys = alice.channels.prepare(&alice.device, real, &[bob.seen()], 0);
    // A malicious sender announces the session as belonging to `other`.
    let relabelled: Vec<_> = keys
        .into_iter()
        .map(|(d, c)| match c {
            ToDeviceContent::RoomKey { session_id, session_key, .. } => {
                (d, ToDeviceContent::RoomKey { channel_id: other, session_id, session_key })
            }
            c => (d, c),
        })
        .collect();
    share(&mut alice, &mut bob, relabelled);
    let sealed = alice.channels.encrypt(&alice.device, &text(real, "for the real channel")).unwrap();
    assert_eq!(bob.channels.decrypt(other, Uuid::new_v4(), &sealed), Err(CryptoError::WrongChannel));
}

#[test]
fn sessions_rotate_on_removal_age_and_count_and_newcomers_read_from_joining() {
    let (mut alice, mut bob, mut carol, mut dave) =
        (Person::new("alice"), Person::new("bob"), Person::new("carol"), Person::new("dave"));
    let channel = Uuid::new_v4();
    let keys = alice.channels.prepare(&alice.device, channel, &[bob.seen(), carol.seen()], 0);
    share(&mut alice, &mut bob, keys.clone());
    share(&mut alice, &mut carol, keys);
    let before = alice.channels.encrypt(&alice.device, &text(channel, "before")).unwrap();
    assert!(carol.channels.decrypt(channel, Uuid::new_v4(), &before).is_ok());

    // Carol is removed: the next prepare rotates, and only bob gets the new key.
    let keys = alice.channels.prepare(&alice.device, channel, &[bob.seen()], 1);
    assert_eq!(keys.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(), vec![bob.seen()]);
    share(&mut alice, &mut bob, keys);
    let after = alice.channels.encrypt(&alice.device, &text(channel, "after carol left")).unwrap();
    assert!(matches!(carol.channels.decrypt(channel, Uuid::new_v4(), &after), Err(CryptoError::UnknownSession(_))));
    assert_eq!(bob.channels.decrypt(channel, Uuid::new_v4(), &after).unwrap().plaintext.body, "after carol left");

    // Dave joins: he gets the session at its current index, so earlier messages stay closed to him.
    let keys = alice.channels.prepare(&alice.device, channel, &[bob.seen(), dave.seen()], 2);
    assert_eq!(keys.len(), 1, "no rotation for a newcomer, just his key");
    share(&mut alice, &mut dave, keys);
    assert!(dave.channels.decrypt(channel, Uuid::new_v4(), &after).is_err(), "sent before dave joined");
    let welcome = alice.channels.encrypt(&alice.device, &text(channel, "welcome dave")).unwrap();
    assert!(dave.channels.decrypt(channel, Uuid::new_v4(), &welcome).is_ok());

    // Bob's device changes keys (a new Curve25519 key under the same id): rotation.
    let session_of = |p: &Person| p.channels.outbound[&channel].session.session_id();
    let current = session_of(&alice);
    let mut bob_again = Person::new("bob");
    bob_again.device = Device::new(bob.device.user(), "BOB");
    alice.channels.prepare(&alice.device, channel, &[bob_again.seen(), dave.seen()], 3);
    assert_ne!(session_of(&alice), current, "a changed device key rotates");

    // Count and age.
    let current = session_of(&alice);
    for i in 0..ROTATE_AFTER_MESSAGES {
        alice.channels.prepare(&alice.device, channel, &[bob_again.seen(), dave.seen()], 4);
        alice.channels.encrypt(&alice.device, &text(channel, &format!("m{i}"))).unwrap();
    }
    alice.channels.prepare(&alice.device, channel, &[bob_again.seen(), dave.seen()], 5);
    assert_ne!(session_of(&alice), current, "rotated after 100 messages");
    let current = session_of(&alice);
    alice.channels.prepare(&alice.device, channel, &[bob_again.seen(), dave.seen()], 5 + ROTATE_AFTER_MS);
    assert_ne!(session_of(&alice), current, "rotated after 7 days");
}

#[test]
fn channels_that_share_history_give_newcomers_the_authors_earlier_sessions() {
    use crate::crypto::channel::HISTORY_PER_MESSAGE;
    let (mut alice, mut bob) = (Person::new("alice"), Person::new("bob"));
    let channel = Uuid::new_v4();
    // 150 messages: two sessions (rotated after 100).
    let mut sent = vec![];
    for n in 0..150 {
        let keys = alice.channels.prepare(&alice.device, channel, &[bob.seen()], n);
        share(&mut alice, &mut bob, keys);
        sent.push(alice.channels.encrypt(&alice.device, &text(channel, &format!("m{n}"))).unwrap());
    }
    // Carol joins a "since joining" channel: the current session from its current index only.
    let mut carol = Person::new("carol");
    let keys = alice.channels.prepare(&alice.device, channel, &[bob.seen(), carol.seen()], 200);
    share(&mut alice, &mut carol, keys);
    assert!(matches!(carol.channels.decrypt(channel, Uuid::new_v4(), &sent[0]), Err(CryptoError::UnknownSession(_))));
    assert_eq!(carol.channels.decrypt(channel, Uuid::new_v4(), &sent[120]), Err(CryptoError::BeforeKey));

    // The moderators switch to "full history": Alice's next send gives Carol (and Bob, who lacks
    // nothing but is not yet counted) her sessions from their first message, once.
    let shares = alice.channels.share_history(&alice.device, channel, &[alice.seen(), bob.seen(), carol.seen()]);
    assert_eq!(shares.len(), 2, "one share per device (two sessions fit in one), none to herself");
    share(&mut alice, &mut carol, shares);
    for (n, sealed) in sent.iter().enumerate() {
        let got = carol.channels.decrypt(channel, Uuid::new_v4(), sealed).unwrap();
        assert_eq!((got.plaintext.body, got.sender.user), (format!("m{n}"), alice.device.user()));
    }
    assert!(alice.channels.share_history(&alice.device, channel, &[bob.seen(), carol.seen()]).is_empty(), "given once");
    // Sending failed: asked again next time.
    alice.channels.ungive_history(channel, &carol.seen());
    assert_eq!(alice.channels.share_history(&alice.device, channel, &[bob.seen(), carol.seen()]).len(), 1);

    // Bob cannot pass Alice's sessions off: what he shares is filed under his own key, so Alice's
    // messages still need Alice's key.
    let mut dave = Person::new("dave");
    let stolen = bob
        .channels
        .inbound
        .iter()
        .map(|((_, _, id), i)| (id.clone(), i.session.export_at_first_known_index().to_base64()))
        .collect::<Vec<_>>();
    let forged = ToDeviceContent::History { channel_id: channel, sessions: stolen };
    let dave_seen = dave.seen();
    share(&mut bob, &mut dave, vec![(dave_seen, forged)]);
    assert!(matches!(dave.channels.decrypt(channel, Uuid::new_v4(), &sent[0]), Err(CryptoError::UnknownSession(_))));

    // Malformed shares are refused whole.
    let too_many = ToDeviceContent::History {
        channel_id: channel,
        sessions: vec![("x".into(), "y".into()); HISTORY_PER_MESSAGE + 1],
    };
    assert!(matches!(dave.channels.add_history(&alice.seen(), &too_many), Err(CryptoError::Malformed(_))));
    let (id, key) = alice
        .channels
        .inbound
        .iter()
        .map(|((_, _, id), i)| (id.clone(), i.session.export_at_first_known_index().to_base64()))
        .next()
        .unwrap();
    let renamed = ToDeviceContent::History { channel_id: channel, sessions: vec![(format!("{id}x"), key)] };
    assert!(matches!(dave.channels.add_history(&alice.seen(), &renamed), Err(CryptoError::Malformed(_))));
}

#[test]
fn state_survives_a_reload_sealed_under_its_key() {
    let (mut alice, mut bob) = (Person::new("alice"), Person::new("bob"));
    let channel = Uuid::new_v4();
    let keys = alice.channels.prepare(&alice.device, channel, &[bob.seen()], 0);
    share(&mut alice, &mut bob, keys);
    let canary = "canary-5d1c0ffee";
    let first = alice.channels.encrypt(&alice.device, &text(channel, canary)).unwrap();
    let first_id = Uuid::new_v4();
    bob.channels.decrypt(channel, first_id, &first).unwrap();

    let key = StoreKey([7; 32]);
    let (alice_store, bob_store) = (MemoryStore::default(), MemoryStore::default());
    let as_machine = |p: Person| {
        let mut m = Machine::new(p.device);
        m.channels = p.channels;
        m
    };
    let (alice_state, mut bob_state) = (as_machine(alice), as_machine(bob));
    bob_state.trust.observe(&alice_state.device.as_verified());
    now(store::save(&alice_store, &alice_state, &key, &mut Default::default())).unwrap();
    now(store::save(&bob_store, &bob_state, &key, &mut Default::default())).unwrap();
    for dump in [alice_store.dump(), bob_store.dump()] {
        assert!(!dump.contains(canary), "plaintext in the store");
    }
    assert!(matches!(now(store::load(&bob_store, &StoreKey([8; 32]))), Err(CryptoError::Store(_))), "wrong key");

    let (restored, _) = now(store::load(&alice_store, &key)).unwrap().unwrap();
    let mut alice = Person { device: restored.device, channels: restored.channels };
    let (restored, _) = now(store::load(&bob_store, &key)).unwrap().unwrap();
    assert_eq!(restored.trust, bob_state.trust, "remembered devices survive");
    let mut bob = Person { device: restored.device, channels: restored.channels };
    assert_eq!(
        bob.channels.decrypt(channel, Uuid::new_v4(), &first),
        Err(CryptoError::Replay),
        "replay memory survives"
    );
    assert!(bob.channels.decrypt(channel, first_id, &first).is_ok(), "the same message opens again");
    // Megolm continues where it was; Olm sessions too.
    alice.channels.prepare(&alice.device, channel, &[bob.seen()], 1);
    let next = alice.channels.encrypt(&alice.device, &text(channel, "after reload")).unwrap();
    let got = bob.channels.decrypt(channel, Uuid::new_v4(), &next).unwrap();
    assert_eq!((got.plaintext.body.as_str(), got.index), ("after reload", 1));
    let dummy = alice.device.encrypt_to_device(&bob.seen(), None, ToDeviceContent::Dummy).unwrap();
    assert_eq!(bob.device.decrypt_to_device(&alice.seen(), &dummy).unwrap(), ToDeviceContent::Dummy);
}

#[test]
fn a_save_writes_what_changed_and_records_cannot_be_swapped() {
    let (mut alice, mut bob) = (Person::new("alice"), Person::new("bob"));
    let channel = Uuid::new_v4();
    let mut sent = vec![];
    for n in 0..1000 {
        let keys = alice.channels.prepare(&alice.device, channel, &[bob.seen()], n);
        share(&mut alice, &mut bob, keys);
        sent.push(alice.channels.encrypt(&alice.device, &text(channel, "hello")).unwrap());
    }
    for (n, sealed) in sent.iter().enumerate().take(999) {
        bob.channels.decrypt(channel, Uuid::from_u128(n as u128 + 1), sealed).unwrap();
    }
    let mut machine = Machine::new(bob.device);
    machine.channels = bob.channels;
    machine.trust.observe(&alice.seen());
    let (key, store) = (StoreKey([7; 32]), MemoryStore::default());
    let mut written = store::Written::default();
    let first = now(store::save(&store, &machine, &key, &mut written)).unwrap();
    assert_eq!(first.records, 1 + 1 + 10 + 10 + 1, "account, Olm, 10 sessions, their replay memory, Alice");
    // Nothing changed: nothing written.
    assert_eq!(now(store::save(&store, &machine, &key, &mut written)).unwrap(), store::Saved::default());
    // One more message: its session's records only, a small part of the whole.
    machine.channels.decrypt(channel, Uuid::from_u128(1000), &sent[999]).unwrap();
    let one = now(store::save(&store, &machine, &key, &mut written)).unwrap();
    assert!(one.records <= 2 && one.deleted == 0, "{one:?}");
    assert!(one.bytes * 10 < first.bytes, "{one:?} of {first:?}");
    assert_eq!(written.generation, 3 - 1, "two saves that wrote");
    // A rotated-away outbound session is deleted; what loads is what was saved.
    let (again, read) = now(store::load(&store, &key)).unwrap().unwrap();
    assert_eq!(read.generation, written.generation);
    assert_eq!(again.channels.inbound.len(), 10);
    assert_eq!(again.trust, machine.trust);

    // The store cannot be rearranged: a session's record moved under another name does not open.
    let dump = store.0.borrow().clone();
    let mut names = dump.keys().filter(|n| n.starts_with("v2/in/"));
    let (a, b) = (names.next().unwrap().clone(), names.next().unwrap().clone());
    store.0.borrow_mut().insert(a, dump[&b].clone());
    assert!(matches!(now(store::load(&store, &key)), Err(CryptoError::Store(_))));
}

#[test]
fn a_state_in_the_first_layout_moves_to_the_second() {
    let (mut alice, mut bob) = (Person::new("alice"), Person::new("bob"));
    let channel = Uuid::new_v4();
    let keys = alice.channels.prepare(&alice.device, channel, &[bob.seen()], 0);
    share(&mut alice, &mut bob, keys);
    let sealed = alice.channels.encrypt(&alice.device, &text(channel, "kept")).unwrap();
    let key = StoreKey([7; 32]);
    let old = MemoryStore::default();
    now(old.save("device", store::seal_device(&bob.device, &key).unwrap())).unwrap();
    now(old.save("channels", store::seal_channels(&bob.channels, &key).unwrap())).unwrap();
    now(old.save("trust", "{\"known\":{}}".into())).unwrap();
    let (mut moved, written) = now(store::load(&old, &key)).unwrap().unwrap();
    assert_eq!(written.generation, 1);
    assert!(now(old.load("channels")).unwrap().is_none(), "the first layout's records are gone");
    assert_eq!(moved.device.device_id(), "BOB");
    assert_eq!(moved.channels.decrypt(channel, Uuid::new_v4(), &sealed).unwrap().plaintext.body, "kept");
    let (_, again) = now(store::load(&old, &key)).unwrap().unwrap();
    assert_eq!(again.generation, 1, "moved once");
}

#[test]
fn trust_on_first_use_warns_when_a_key_changes() {
    let bob = Person::new("bob");
    let mut trust = Trust::default();
    assert_eq!(trust.observe(&bob.seen()), Seen::New);
    assert_eq!(trust.observe(&bob.seen()), Seen::Same);
    let replaced = Device::new(bob.device.user(), "BOB");
    let changed = verify_device(&replaced.device_keys(), bob.device.user()).unwrap();
    assert_eq!(trust.observe(&changed), Seen::Changed { previous: bob.device.ed25519() });
    assert_eq!(trust.observe(&changed), Seen::Changed { previous: bob.device.ed25519() }, "until accepted");
    trust.accept(&changed);
    assert_eq!(trust.observe(&changed), Seen::Same);
    assert!(!trust.is_verified(&changed));
}

#[test]
fn sas_verification_marks_devices_verified_and_catches_substituted_keys() {
    let (mut alice, mut bob) = (Person::new("alice"), Person::new("bob"));
    let (mut alice_trust, mut bob_trust) = (Trust::default(), Trust::default());
    // Frames travel over Olm like every to-device payload.
    let otk = bob.claim();
    let (mut a, start) = Verification::start(&alice.device, &bob.seen());
    let sealed = alice.device.encrypt_to_device(&bob.seen(), Some(otk), start).unwrap();
    let start = bob.device.decrypt_to_device(&alice.seen(), &sealed).unwrap();
    let (mut b, bob_key) = Verification::accept(&bob.device, &alice.seen(), &start).unwrap();
    let (alice_key, alice_code) = a.receive_key(&bob_key).unwrap();
    let (none, bob_code) = b.receive_key(&alice_key.unwrap()).unwrap();
    assert!(none.is_none());
    assert_eq!(alice_code, bob_code, "both screens show the same emoji and numbers");
    assert!(alice_code.emoji.iter().all(|i| *i < 64));

    let (alice_mac, bob_mac) = (a.confirm().unwrap(), b.confirm().unwrap());
    assert!(b.receive_mac(&alice_mac, &mut bob_trust).unwrap());
    assert!(a.receive_mac(&bob_mac, &mut alice_trust).unwrap());
    assert!(alice_trust.is_verified(&bob.seen()) && bob_trust.is_verified(&alice.seen()));
    // Their MAC again, for another transaction, is refused.
    let (mut other, _) = Verification::start(&alice.device, &bob.seen());
    assert!(other.receive_mac(&bob_mac, &mut alice_trust).is_err());

    // A server that listed a different key for bob: the MAC of bob's real key does not match it.
    let fake = VerifiedDevice { ed25519: Device::new(bob.device.user(), "BOB").ed25519(), ..bob.seen() };
    let (mut a, start) = Verification::start(&alice.device, &fake);
    let (mut b, bob_key) = Verification::accept(&bob.device, &alice.seen(), &start).unwrap();
    let (alice_key, _) = a.receive_key(&bob_key).unwrap();
    b.receive_key(&alice_key.unwrap()).unwrap();
    a.confirm().unwrap();
    let bob_mac = b.confirm().unwrap();
    assert!(matches!(a.receive_mac(&bob_mac, &mut alice_trust), Err(CryptoError::WrongSender(_))));
    assert!(!alice_trust.is_verified(&fake));

    // A man in the middle who swaps the initiator's key after seeing the responder's breaks the commitment.
    let (_, start) = Verification::start(&alice.device, &bob.seen());
    let (mut b, _) = Verification::accept(&bob.device, &alice.seen(), &start).unwrap();
    let (mut mallory, _) = Verification::start(&alice.device, &bob.seen());
    let (_, mallory_bob_key) = Verification::accept(&bob.device, &alice.seen(), &start).unwrap();
    let (mallory_key, _) = mallory
        .receive_key(&match mallory_bob_key {
            ToDeviceContent::SasKey { key, .. } => ToDeviceContent::SasKey { txn: mallory.txn().to_owned(), key },
            other => other,
        })
        .unwrap();
    let swapped = match mallory_key.unwrap() {
        ToDeviceContent::SasKey { key, .. } => ToDeviceContent::SasKey { txn: b.txn().to_owned(), key },
        other => other,
    };
    assert!(b.receive_key(&swapped).is_err(), "a key that was not committed to is refused");
}

/// A relay that says whatever the test wants (a lying server).
struct FakeRelay {
    listed: Vec<DeviceKeys>,
    claims: RefCell<Vec<ClaimedKey>>,
    sent: RefCell<Vec<OutgoingToDevice>>,
}

impl Relay for FakeRelay {
    async fn channel_devices(&self, _: Uuid) -> super::CryptoResult<Vec<DeviceKeys>> {
        Ok(self.listed.clone())
    }

    async fn user_devices(&self, user: Uuid) -> super::CryptoResult<Vec<DeviceKeys>> {
        Ok(self.listed.iter().filter(|k| k.user_id == user).cloned().collect())
    }

    async fn claim(&self, user: Uuid, device_id: &str) -> super::CryptoResult<ClaimedKey> {
        let mut claims = self.claims.borrow_mut();
        let at =
            claims.iter().position(|c| c.user_id == user && c.device_id == device_id).ok_or(CryptoError::NoSession)?;
        Ok(claims.remove(at))
    }

    async fn send_to_device(&self, batch: Vec<OutgoingToDevice>) -> super::CryptoResult<()> {
        self.sent.borrow_mut().extend(batch);
        Ok(())
    }
}

#[test]
fn the_send_flow_skips_forged_devices_and_checks_senders() {
    let mut alice = Machine::new(Device::new(Uuid::new_v4(), "ALICE"));
    let mut bob = Person::new("bob");
    let mallory = Device::new(Uuid::new_v4(), "M");
    // The server lists bob, and a "device of bob" whose keys mallory made up.
    let forged =
        DeviceKeys { device_id: "EXTRA".into(), ..DeviceKeys { user_id: bob.device.user(), ..mallory.device_keys() } };
    let otk = bob.device.one_time_keys_to_publish(0).remove(0);
    bob.device.mark_published();
    let relay = FakeRelay {
        listed: vec![alice.device.device_keys(), bob.device.device_keys(), forged],
        claims: RefCell::new(vec![ClaimedKey {
            user_id: bob.device.user(),
            device_id: "BOB".into(),
            key: otk,
            fallback: false,
        }]),
        sent: RefCell::default(),
    };
    let channel = Uuid::new_v4();
    let sealed = now(alice.encrypt(&relay, &text(channel, "only for bob"), 0)).unwrap();
    let sent = relay.sent.borrow().clone();
    assert_eq!(
        sent.iter().map(|m| m.recipient_device.as_str()).collect::<Vec<_>>(),
        vec!["BOB"],
        "the forged device got nothing"
    );
    assert!(matches!(alice.warnings.as_slice(), [KeyWarning::Forged { device_id, .. }] if device_id == "EXTRA"));

    // Bob opens the room key (the sender is checked against the directory) and the message.
    let mut bob_machine = Machine::new(bob.device);
    let message = crate::model::keys::ToDeviceMessage {
        id: Uuid::now_v7(),
        sender_user: alice.device.user(),
        sender_device: "ALICE".into(),
        payload: sent[0].payload.clone(),
    };
    assert_eq!(now(bob_machine.receive_to_device(&relay, &message)).unwrap(), None);
    let got = bob_machine.decrypt(channel, Uuid::new_v4(), &sealed).unwrap();
    assert_eq!(got.plaintext.body, "only for bob");
    // The same payload claimed to come from another of alice's devices is refused.
    let lying = crate::model::keys::ToDeviceMessage { sender_device: "NOPE".into(), ..message };
    assert!(now(bob_machine.receive_to_device(&relay, &lying)).is_err());
}

#[test]
fn a_device_whose_one_time_key_is_forged_is_skipped_and_the_rest_still_get_the_message() {
    let mut alice = Machine::new(Device::new(Uuid::new_v4(), "ALICE"));
    let mut bob = Person::new("bob");
    let bob2 = Device::new(bob.device.user(), "BOB2");
    let mut claim = |device_id: &str| {
        let key = bob.device.one_time_keys_to_publish(0).remove(0);
        bob.device.mark_published();
        ClaimedKey { user_id: bob.device.user(), device_id: device_id.into(), key, fallback: false }
    };
    // BOB2's "one-time key" is one of BOB's: signed, but not by BOB2.
    let (for_bob, for_bob2) = (claim("BOB"), claim("BOB2"));
    let relay = FakeRelay {
        listed: vec![alice.device.device_keys(), bob.device.device_keys(), bob2.device_keys()],
        claims: RefCell::new(vec![for_bob, for_bob2]),
        sent: RefCell::default(),
    };
    let channel = Uuid::new_v4();
    now(alice.encrypt(&relay, &text(channel, "first"), 0)).unwrap();
    let recipients: Vec<String> = relay.sent.borrow().iter().map(|m| m.recipient_device.clone()).collect();
    assert_eq!(recipients, ["BOB"], "the message went out; BOB2 got nothing");
    assert!(matches!(
        alice.warnings.as_slice(),
        [KeyWarning::Forged { device_id, reason, .. }] if device_id == "BOB2" && reason.contains("not signed")
    ));
    // BOB2 does not count as having the session: the next send asks for its key again.
    alice.warnings.clear();
    relay.sent.borrow_mut().clear();
    assert!(now(alice.encrypt(&relay, &text(channel, "second"), 0)).is_err(), "no key left to claim for BOB2");
}

#[test]
fn a_wedged_olm_session_is_replaced() {
    let mut alice = Machine::new(Device::new(Uuid::new_v4(), "ALICE"));
    let mut bob = Machine::new(Device::new(Uuid::new_v4(), "BOB"));
    let otk = |m: &mut Machine| {
        let key = m.device.one_time_keys_to_publish(0).remove(0);
        m.device.mark_published();
        ClaimedKey { user_id: m.device.user(), device_id: m.device.device_id().into(), key, fallback: false }
    };
    let relay = FakeRelay {
        listed: vec![alice.device.device_keys(), bob.device.device_keys()],
        claims: RefCell::new(vec![otk(&mut bob), otk(&mut alice)]),
        sent: RefCell::default(),
    };
    let deliver = |from: &Machine, to: &mut Machine, payload: Vec<u8>| {
        let message = crate::model::keys::ToDeviceMessage {
            id: Uuid::now_v7(),
            sender_user: from.device.user(),
            sender_device: from.device.device_id().into(),
            payload: crate::model::messages::Ciphertext(payload),
        };
        now(to.receive_to_device(&relay, &message))
    };
    // A session in both directions.
    let channel = Uuid::new_v4();
    now(alice.encrypt(&relay, &text(channel, "hi"), 0)).unwrap();
    let first = relay.sent.borrow_mut().remove(0).payload.0;
    deliver(&alice, &mut bob, first).unwrap();
    let reply = bob.device.encrypt_to_device(&alice.device.as_verified(), None, ToDeviceContent::Dummy).unwrap();
    deliver(&bob, &mut alice, reply).unwrap();

    // Bob loses his Olm state; alice's next envelope cannot be opened.
    bob.device.sessions.clear();
    let stuck = alice.device.encrypt_to_device(&bob.device.as_verified(), None, ToDeviceContent::Dummy).unwrap();
    assert!(matches!(deliver(&alice, &mut bob, stuck), Err(CryptoError::Decrypt(_))));
    // Bob opened a new session and sent a dummy over it; once alice has it, she uses it.
    let dummy = relay.sent.borrow_mut().remove(0).payload.0;
    deliver(&bob, &mut alice, dummy).unwrap();
    let after = alice.device.encrypt_to_device(&bob.device.as_verified(), None, ToDeviceContent::Dummy).unwrap();
    assert_eq!(deliver(&alice, &mut bob, after).unwrap(), None, "messages get through again");
}

#[test]
fn replay_memory_in_the_first_format_still_loads() {
    let message = Uuid::new_v4();
    let old = format!(r#"{{"outbound":[],"inbound":[],"seen":[["S1",3,"{message}"]]}}"#);
    let channels = store::open_channels(&old, &StoreKey([7; 32])).unwrap();
    assert_eq!(channels.seen.get(&("S1".to_owned(), 3)), Some(&message));
    // Written back in the packed form, and read again.
    let sealed = store::seal_channels(&channels, &StoreKey([7; 32])).unwrap();
    assert!(!sealed.contains(&message.to_string()), "no longer one entry per message");
    let again = store::open_channels(&sealed, &StoreKey([7; 32])).unwrap();
    assert_eq!(again.seen, channels.seen);
}

#[test]
fn a_device_whose_key_changed_gets_nothing_until_the_new_key_is_accepted() {
    let mut alice = Machine::new(Device::new(Uuid::new_v4(), "ALICE"));
    let mut bob = Person::new("bob");
    let channel = Uuid::new_v4();
    let relay = |listed: Vec<DeviceKeys>, claims: Vec<ClaimedKey>| FakeRelay {
        listed,
        claims: RefCell::new(claims),
        sent: RefCell::default(),
    };
    let key = bob.device.one_time_keys_to_publish(0).remove(0);
    bob.device.mark_published();
    let bobs = ClaimedKey { user_id: bob.device.user(), device_id: "BOB".into(), key, fallback: false };
    let first = relay(vec![alice.device.device_keys(), bob.device.device_keys()], vec![bobs]);
    now(alice.encrypt(&first, &text(channel, "hello"), 0)).unwrap();
    assert_eq!(first.sent.borrow().len(), 1, "bob's device got the room key");

    // The server now lists other keys, validly self-signed, under bob's device id.
    let mut impostor = Device::new(bob.device.user(), "BOB");
    let key = impostor.one_time_keys_to_publish(0).remove(0);
    impostor.mark_published();
    let lying = relay(
        vec![alice.device.device_keys(), impostor.device_keys()],
        vec![ClaimedKey { user_id: impostor.user(), device_id: "BOB".into(), key, fallback: false }],
    );
    now(alice.encrypt(&lying, &text(channel, "not for the impostor"), 0)).unwrap();
    assert!(lying.sent.borrow().is_empty(), "no room key went to the new key");
    assert!(matches!(alice.warnings.as_slice(), [KeyWarning::Changed { device_id, .. }] if device_id == "BOB"));

    // Accepted (the person knows bob set that device up again): it gets the next one.
    alice.warnings.clear();
    alice.trust.accept_key(impostor.user(), "BOB", &impostor.ed25519());
    now(alice.encrypt(&lying, &text(channel, "welcome back"), 0)).unwrap();
    assert_eq!(lying.sent.borrow().len(), 1);
    assert!(alice.warnings.is_empty());
}

#[test]
fn key_backup_restores_history_on_a_new_device_and_refuses_what_is_not_its_own() {
    use crate::crypto::backup::{self, BackupKey, RecoveryKey, RecoveryKeyError, Restored};
    let (mut alice, mut bob) = (Person::new("alice"), Person::new("bob"));
    let channel = Uuid::new_v4();
    let mut sent = vec![];
    for n in 0..120 {
        let keys = alice.channels.prepare(&alice.device, channel, &[bob.seen()], n);
        share(&mut alice, &mut bob, keys);
        sent.push(alice.channels.encrypt(&alice.device, &text(channel, &format!("m{n}"))).unwrap());
    }

    // Bob turns backup on: a recovery key to write down, the backup key wrapped under it.
    let recovery = RecoveryKey::generate().unwrap();
    let written = recovery.display();
    assert_eq!(written.split(' ').count(), 14, "{written}");
    let backup_key = BackupKey::generate().unwrap();
    let auth_data = backup_key.wrap(&recovery).unwrap();
    let mut uploaded = std::collections::HashMap::new();
    let sealed = backup::pending(&bob.channels, &backup_key, &uploaded, 500).unwrap();
    assert_eq!(sealed.len(), 2, "both of Alice's sessions");
    for (blob, first) in &sealed {
        uploaded.insert(blob.key_id.clone(), *first);
        assert!(!blob.key_id.contains(&channel.to_string()), "ids say nothing of the channel");
    }
    assert!(backup::pending(&bob.channels, &backup_key, &uploaded, 500).unwrap().is_empty(), "uploaded once");
    let blobs: Vec<_> = sealed.into_iter().map(|(b, _)| b).collect();

    // His new device: the recovery key as typed (lower case, a 0 for an O, dashes) opens it.
    let typed = written.to_lowercase().replace(' ', "-").replace('o', "0");
    let opened = BackupKey::unwrap(&auth_data, &RecoveryKey::parse(&typed).unwrap()).unwrap();
    let mut laptop = Person::new("bob-laptop");
    let mut restored = Restored::default();
    let mut laptop_uploaded = std::collections::HashMap::new();
    let mut master = None;
    backup::restore(&mut laptop.channels, &opened, &blobs, &mut restored, &mut laptop_uploaded, &mut master);
    assert_eq!(restored, Restored { imported: 2, damaged: 0 });
    assert!(master.is_none());
    assert_eq!(laptop_uploaded, uploaded, "what came from the backup is not uploaded again");
    assert!(backup::pending(&laptop.channels, &opened, &laptop_uploaded, 500).unwrap().is_empty());
    for (n, sealed) in sent.iter().enumerate() {
        let got = laptop.channels.decrypt(channel, Uuid::from_u128(n as u128 + 1), sealed).unwrap();
        assert_eq!((got.plaintext.body, got.sender.user), (format!("m{n}"), alice.device.user()));
    }

    // Wrong keys: a clear reason, nothing opened.
    let other = RecoveryKey::generate().unwrap();
    assert_eq!(BackupKey::unwrap(&auth_data, &other).unwrap_err(), RecoveryKeyError::Wrong);
    let mut typo = written.clone().into_bytes();
    typo[0] = if typo[0] == b'A' { b'B' } else { b'A' };
    assert_eq!(RecoveryKey::parse(&String::from_utf8(typo).unwrap()).unwrap_err(), RecoveryKeyError::Typo);
    assert_eq!(RecoveryKey::parse("abcd efgh").unwrap_err(), RecoveryKeyError::Length);

    // Damaged, truncated, swapped between ids, or sealed under another backup key: skipped and
    // counted; what the device holds is untouched.
    let mut flipped = blobs[0].clone();
    let at = flipped.sealed.0.len() / 2;
    flipped.sealed.0[at] ^= 1;
    let mut cut = blobs[1].clone();
    cut.sealed.0.truncate(20);
    let swapped = crate::model::backup::BackupKey { key_id: blobs[1].key_id.clone(), sealed: blobs[0].sealed.clone() };
    let foreign = backup::pending(&bob.channels, &BackupKey::generate().unwrap(), &Default::default(), 1).unwrap();
    let mut phone = Person::new("bob-phone");
    let mut report = Restored::default();
    let mut phone_uploaded = std::collections::HashMap::new();
    let bad = [flipped, cut, swapped, foreign[0].0.clone()];
    backup::restore(&mut phone.channels, &opened, &bad, &mut report, &mut phone_uploaded, &mut None);
    assert_eq!(report, Restored { imported: 0, damaged: 4 });
    assert!(phone_uploaded.is_empty() && phone.channels.inbound.is_empty());
    // A replayed copy of a session merges with the one held (nothing is lost).
    backup::restore(&mut laptop.channels, &opened, &blobs, &mut report, &mut laptop_uploaded, &mut None);
    assert_eq!(report.imported, 2);
    assert!(laptop.channels.decrypt(channel, Uuid::from_u128(1), &sent[0]).is_ok());

    // The master key (cross-signing) travels in the backup too, under its own opaque id; only the
    // backup key opens it.
    let secret = crate::crypto::cross_signing::MasterSecret::generate();
    let sealed_master = backup_key.seal_master(&secret).unwrap();
    assert!(!backup_key.master_uploaded(&laptop_uploaded));
    let mut found = None;
    backup::restore(
        &mut laptop.channels,
        &opened,
        std::slice::from_ref(&sealed_master),
        &mut report,
        &mut laptop_uploaded,
        &mut found,
    );
    assert_eq!(found.unwrap().public().unwrap(), secret.public().unwrap());
    assert!(backup_key.master_uploaded(&laptop_uploaded));
    let other = BackupKey::generate().unwrap();
    let (mut found, before) = (None, report.damaged);
    backup::restore(&mut laptop.channels, &other, &[sealed_master], &mut report, &mut laptop_uploaded, &mut found);
    assert!(found.is_none() && report.damaged == before + 1, "another backup key opens nothing");
}

/// Verifies two machines' devices to each other (SAS, the codes compared and matching).
fn sas(a: &mut Machine, b: &mut Machine) {
    let (a_seen, b_seen) = (a.device.as_verified(), b.device.as_verified());
    let (mut flow_a, start) = Verification::start(&a.device, &b_seen);
    let (mut flow_b, b_key) = Verification::accept(&b.device, &a_seen, &start).unwrap();
    let (a_key, _) = flow_a.receive_key(&b_key).unwrap();
    flow_b.receive_key(&a_key.unwrap()).unwrap();
    let (a_mac, b_mac) = (flow_a.confirm().unwrap(), flow_b.confirm().unwrap());
    assert!(flow_b.receive_mac(&a_mac, &mut b.trust).unwrap());
    assert!(flow_a.receive_mac(&b_mac, &mut a.trust).unwrap());
}

/// Hands `to` what the relay queued for it from `from`; returns each outcome.
fn deliver(relay: &FakeRelay, from: &Machine, to: &mut Machine) -> Vec<Result<(), CryptoError>> {
    let (for_me, rest): (Vec<_>, Vec<_>) =
        relay.sent.take().into_iter().partition(|m| m.recipient_device == to.device.device_id());
    *relay.sent.borrow_mut() = rest;
    for_me
        .into_iter()
        .map(|m| {
            let message = crate::model::keys::ToDeviceMessage {
                id: Uuid::now_v7(),
                sender_user: from.device.user(),
                sender_device: from.device.device_id().into(),
                payload: m.payload,
            };
            now(to.receive_to_device(relay, &message)).map(|_| ())
        })
        .collect()
}

fn one_time_key(m: &mut Machine) -> ClaimedKey {
    let key = m.device.one_time_keys_to_publish(0).remove(0);
    m.device.mark_published();
    ClaimedKey { user_id: m.device.user(), device_id: m.device.device_id().into(), key, fallback: false }
}

#[test]
fn own_verified_devices_forward_keys_and_nobody_else_can() {
    let mut alice = Person::new("alice");
    let bob_user = Uuid::new_v4();
    let mut bob1 = Person { device: Device::new(bob_user, "BOB1"), channels: Channels::default() };
    let channel = Uuid::new_v4();
    let keys = alice.channels.prepare(&alice.device, channel, &[bob1.seen()], 0);
    share(&mut alice, &mut bob1, keys);
    let old = alice.channels.encrypt(&alice.device, &text(channel, "before the laptop")).unwrap();
    let mut phone = Machine::new(bob1.device);
    phone.channels = bob1.channels;
    let mut laptop = Machine::new(Device::new(bob_user, "BOB2"));
    let mut spare = Machine::new(Device::new(bob_user, "BOB3"));
    let mut mallory = Machine::new(Device::new(Uuid::new_v4(), "MAL"));
    let mut claims = vec![];
    for _ in 0..3 {
        claims.extend([one_time_key(&mut laptop), one_time_key(&mut phone)]);
    }
    let relay = FakeRelay {
        listed: [&phone, &laptop, &spare, &mallory].iter().map(|m| m.device.device_keys()).collect(),
        claims: RefCell::new(claims),
        sent: RefCell::default(),
    };

    // Not verified yet: the phone forwards nothing, and the laptop's request is refused.
    let laptop_seen = laptop.device.as_verified();
    assert!(matches!(now(phone.forward_all(&relay, &laptop_seen)), Err(CryptoError::WrongSender(_))));
    assert!(laptop.channels.decrypt(channel, Uuid::new_v4(), &old).is_err());

    // Bob compares the codes on both: the phone forwards every session it holds.
    sas(&mut phone, &mut laptop);
    assert_eq!(now(phone.forward_all(&relay, &laptop_seen)).unwrap(), 1);
    assert!(deliver(&relay, &phone, &mut laptop).iter().all(Result::is_ok));
    let got = laptop.channels.decrypt(channel, Uuid::new_v4(), &old).unwrap();
    assert_eq!((got.plaintext.body.as_str(), got.sender.user), ("before the laptop", alice.device.user()));

    // A later session the laptop missed: it asks, the phone answers.
    alice.channels.rotate(channel);
    let phone_seen = phone.device.as_verified();
    let keys = alice.channels.prepare(&alice.device, channel, std::slice::from_ref(&phone_seen), 1);
    let mut as_person = Person { device: Device::new(bob_user, "X"), channels: Channels::default() };
    std::mem::swap(&mut as_person.device, &mut phone.device);
    std::mem::swap(&mut as_person.channels, &mut phone.channels);
    share(&mut alice, &mut as_person, keys);
    std::mem::swap(&mut as_person.device, &mut phone.device);
    std::mem::swap(&mut as_person.channels, &mut phone.channels);
    let later = alice.channels.encrypt(&alice.device, &text(channel, "while the laptop slept")).unwrap();
    assert!(matches!(laptop.channels.decrypt(channel, Uuid::new_v4(), &later), Err(CryptoError::UnknownSession(_))));
    let (author, session) = Channels::session_of(&later).unwrap();
    assert_eq!(now(laptop.request_keys(&relay, vec![(channel, author, session)])).unwrap(), 1, "the phone only");
    assert!(deliver(&relay, &laptop, &mut phone).iter().all(Result::is_ok));
    assert!(deliver(&relay, &phone, &mut laptop).iter().all(Result::is_ok));
    assert_eq!(
        laptop.channels.decrypt(channel, Uuid::new_v4(), &later).unwrap().plaintext.body,
        "while the laptop slept"
    );

    // Forged forwards: from someone else (even verified), or from an own device not verified.
    let forged = phone.channels.forward(None).remove(0);
    sas(&mut mallory, &mut laptop);
    for (from, name) in [(&mut mallory, "another person"), (&mut spare, "an unverified device of bob")] {
        now(from.send_to(&relay, &laptop_seen, forged.clone())).unwrap_or_else(|e| panic!("{name}: {e}"));
        let outcomes = deliver(&relay, from, &mut laptop);
        assert!(matches!(outcomes.as_slice(), [Err(CryptoError::WrongSender(_))]), "{name}: {outcomes:?}");
        // Nor does the phone answer their requests.
        let request = ToDeviceContent::KeyRequest { sessions: vec![] };
        now(from.send_to(&relay, &phone_seen, request)).unwrap();
        let outcomes = deliver(&relay, from, &mut phone);
        assert!(matches!(outcomes.as_slice(), [Err(CryptoError::WrongSender(_))]), "{name}: {outcomes:?}");
    }
    assert!(relay.sent.borrow().is_empty(), "nothing was sent in answer");
}

/// A relay that also keeps cross-signing (master keys and signatures), as the server does,
/// without checking anything (a lying server may store anything).
struct SigningRelay {
    inner: FakeRelay,
    me: RefCell<Uuid>,
    cross: RefCell<std::collections::HashMap<Uuid, crate::model::keys::CrossSigning>>,
}

impl Relay for SigningRelay {
    async fn channel_devices(&self, c: Uuid) -> super::CryptoResult<Vec<DeviceKeys>> {
        self.inner.channel_devices(c).await
    }
    async fn user_devices(&self, u: Uuid) -> super::CryptoResult<Vec<DeviceKeys>> {
        self.inner.user_devices(u).await
    }
    async fn claim(&self, u: Uuid, d: &str) -> super::CryptoResult<ClaimedKey> {
        self.inner.claim(u, d).await
    }
    async fn send_to_device(&self, b: Vec<OutgoingToDevice>) -> super::CryptoResult<()> {
        self.inner.send_to_device(b).await
    }
    async fn cross_signing(&self, user: Uuid) -> super::CryptoResult<crate::model::keys::CrossSigning> {
        Ok(self.cross.borrow().get(&user).cloned().unwrap_or_default())
    }
    async fn set_master(&self, master_key: String) -> super::CryptoResult<()> {
        let me = *self.me.borrow();
        self.cross
            .borrow_mut()
            .insert(me, crate::model::keys::CrossSigning { master_key: Some(master_key), devices: vec![] });
        Ok(())
    }
    async fn sign_device(&self, device_id: String, signature: String) -> super::CryptoResult<()> {
        let me = *self.me.borrow();
        let mut all = self.cross.borrow_mut();
        let entry = all.entry(me).or_default();
        entry.devices.retain(|d| d.device_id != device_id);
        entry.devices.push(crate::model::keys::DeviceSignature { device_id, signature });
        Ok(())
    }
}

#[test]
fn verifying_a_person_once_trusts_every_device_their_master_key_signed() {
    use crate::crypto::cross_signing::MasterSecret;
    let bob_user = Uuid::new_v4();
    let mut alice = Machine::new(Device::new(Uuid::new_v4(), "ALICE"));
    let mut bob1 = Machine::new(Device::new(bob_user, "BOB1"));
    let mut bob3 = Machine::new(Device::new(bob_user, "BOB3"));
    let bob4 = Device::new(bob_user, "BOB4");
    let relay = SigningRelay {
        inner: FakeRelay {
            listed: vec![alice.device.device_keys(), bob1.device.device_keys()],
            claims: RefCell::default(),
            sent: RefCell::default(),
        },
        me: RefCell::new(bob_user),
        cross: RefCell::default(),
    };
    // Bob's first device makes his master key and signs itself; a later one does not make another.
    now(bob1.ensure_master(&relay)).unwrap();
    assert!(bob1.master.is_some());
    now(bob3.ensure_master(&relay)).unwrap();
    assert!(bob3.master.is_none(), "the second device waits to be verified");

    // Alice verifies Bob's first device once (SAS): his master key becomes verified for her.
    sas(&mut alice, &mut bob1);
    now(alice.after_verification(&relay, &bob1.device.as_verified())).unwrap();
    assert!(alice.trust.verified_master(bob_user).is_some());

    // Bob adds a device and verifies it from his first one, which signs it with his master key.
    let relay = SigningRelay {
        inner: FakeRelay {
            listed: vec![
                alice.device.device_keys(),
                bob1.device.device_keys(),
                bob3.device.device_keys(),
                bob4.device_keys(),
            ],
            claims: RefCell::default(),
            sent: RefCell::default(),
        },
        ..relay
    };
    sas(&mut bob1, &mut bob3);
    now(bob1.after_verification(&relay, &bob3.device.as_verified())).unwrap();
    now(bob3.after_verification(&relay, &bob1.device.as_verified())).unwrap();
    assert!(bob3.trust.verified_master(bob_user).is_some(), "the new device trusts its person's master key");

    // Alice never compared anything with the new device, and trusts it; the device the server
    // added (not signed) she does not.
    let listed = now(alice.devices_of(&relay, bob_user)).unwrap();
    let trusted: Vec<&str> =
        listed.iter().filter(|d| alice.trust.is_verified(d)).map(|d| d.device_id.as_str()).collect();
    assert_eq!(trusted, vec!["BOB1", "BOB3"]);

    // The server swaps in its own master key and signs the extra device with it: Alice is told,
    // and trusts nothing through it.
    let fake = MasterSecret::generate();
    let bob4_seen = verify_device(&bob4.device_keys(), bob_user).unwrap();
    relay.cross.borrow_mut().insert(
        bob_user,
        crate::model::keys::CrossSigning {
            master_key: Some(fake.public().unwrap()),
            devices: vec![crate::model::keys::DeviceSignature {
                device_id: "BOB4".into(),
                signature: fake.sign(&bob4_seen).unwrap(),
            }],
        },
    );
    let mut fresh = Machine::new(alice.device);
    fresh.trust = alice.trust.clone();
    let listed = now(fresh.devices_of(&relay, bob_user)).unwrap();
    assert!(fresh.warnings.iter().any(|w| matches!(w, KeyWarning::MasterChanged { user } if *user == bob_user)));
    assert!(!listed.iter().any(|d| d.device_id == "BOB4" && fresh.trust.is_verified(d)));
}
