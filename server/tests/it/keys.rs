//! The key directory and the to-device queue on both backends: signatures, exactly-once claims,
//! fallback keys, who may claim, rate limits, bounded queues, acknowledgements.

use crate::common::{self, Prepare, on_both_backends};

use app::{
    error::AppError,
    model::{
        CommunityCreationMode, RegistrationMode,
        keys::{DeviceKeys, OutgoingToDevice, SignedKey},
        messages::Ciphertext,
    },
};
use common::{Client, TestDevice, err, new_user};
use domain::Core;
use domain::{keys_directory as keys, spaces};
use entity::user;

/// alice and bob share a community; eve shares nothing with them.
async fn people(core: &Core) -> (user::Model, user::Model, user::Model) {
    let db = &core.db;
    let (alice, bob, eve) = (new_user(db, "alice").await, new_user(db, "bob").await, new_user(db, "eve").await);
    let club = spaces::create_community(core, &alice, CommunityCreationMode::Open, "Club", "").await.unwrap();
    let invite = spaces::create_invite(core, alice.id, club, None, None).await.unwrap();
    spaces::join(core, bob.id, &invite.code).await.unwrap();
    (alice, bob, eve)
}

on_both_backends! {
    async fn devices_are_signed_and_keys_are_claimed_once(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let core = &state;
        let (alice, bob, eve) = people(core).await;
        let phone = TestDevice::new(bob.id, "PHONE");
        keys::register_device(core, bob.id, phone.keys()).await.unwrap();
        keys::register_device(core, bob.id, phone.keys()).await.unwrap(); // idempotent

        // Forged or mismatched registrations are refused.
        let mut forged = phone.keys();
        forged.device_id = "OTHER".into();
        assert!(err(keys::register_device(core, bob.id, forged).await.unwrap_err()).for_field("signature").is_some());
        assert_eq!(err(keys::register_device(core, alice.id, phone.keys()).await.unwrap_err()), AppError::Forbidden);
        let impostor = TestDevice::new(bob.id, "PHONE");
        assert!(err(keys::register_device(core, bob.id, impostor.keys()).await.unwrap_err()).for_field("device_id").is_some());

        // Uploads: every key must be signed by the device.
        let mut bad = phone.key("k-bad");
        bad.public_key = TestDevice::b64(&[1u8; 32]);
        let batch = vec![phone.key("k1"), bad];
        assert!(err(keys::upload_keys(core, bob.id, "PHONE", batch, None).await.unwrap_err()).for_field("signature").is_some());
        assert_eq!(keys::counts(core, bob.id, "PHONE").await.unwrap().one_time, 0, "a rejected upload stored keys");
        let otks: Vec<SignedKey> = (1..=3).map(|i| phone.key(&format!("k{i}"))).collect();
        let counts = keys::upload_keys(core, bob.id, "PHONE", otks.clone(), Some(phone.key("fb"))).await.unwrap();
        assert_eq!((counts.one_time, counts.fallback), (3, true));
        keys::upload_keys(core, bob.id, "PHONE", otks, None).await.unwrap(); // re-upload: no duplicates
        assert_eq!(keys::counts(core, bob.id, "PHONE").await.unwrap().one_time, 3);

        // Only related users see devices and claim keys.
        assert_eq!(err(keys::list_devices(core, eve.id, bob.id).await.unwrap_err()), AppError::NotFound);
        assert_eq!(err(keys::claim(core, eve.id, bob.id, "PHONE").await.unwrap_err()), AppError::NotFound);
        assert_eq!(keys::list_devices(core, alice.id, bob.id).await.unwrap().len(), 1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let claimed = keys::claim(core, alice.id, bob.id, "PHONE").await.unwrap();
            assert!(!claimed.fallback);
            assert!(seen.insert(claimed.key.key_id), "a one-time key was handed out twice");
        }
        let fallback = keys::claim(core, alice.id, bob.id, "PHONE").await.unwrap();
        assert!(fallback.fallback);
        assert_eq!(fallback.key.key_id, "fb");
        assert_eq!(keys::counts(core, bob.id, "PHONE").await.unwrap().one_time, 0);

        // Removing the device removes its keys.
        keys::remove_device(core, bob.id, "PHONE").await.unwrap();
        assert_eq!(err(keys::claim(core, alice.id, bob.id, "PHONE").await.unwrap_err()), AppError::NotFound);
    }

    async fn concurrent_claims_never_share_a_key_and_draining_is_limited(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let (alice, bob, _) = people(&state).await;
        let laptop = TestDevice::new(bob.id, "LAPTOP");
        keys::register_device(&state, bob.id, laptop.keys()).await.unwrap();
        let otks: Vec<SignedKey> = (0..40).map(|i| laptop.key(&format!("k{i}"))).collect();
        keys::upload_keys(&state, bob.id, "LAPTOP", otks, Some(laptop.key("fb"))).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let core = state.clone();
            tasks.push(tokio::spawn(async move { keys::claim(&core, alice.id, bob.id, "LAPTOP").await.unwrap() }));
        }
        let mut ids = std::collections::BTreeSet::new();
        for t in tasks {
            let c = t.await.unwrap();
            assert!(!c.fallback, "fell back while one-time keys remained");
            assert!(ids.insert(c.key.key_id));
        }
        assert_eq!(ids.len(), 40);
        // Claim loops hit the per-target limit.
        let mut limited = false;
        for _ in 0..40 {
            if let Err(e) = keys::claim(&state, alice.id, bob.id, "LAPTOP").await {
                assert!(matches!(err(e), AppError::RateLimited { .. }));
                limited = true;
                break;
            }
        }
        assert!(limited, "claims were never rate limited");
    }

    async fn to_device_messages_wait_until_acknowledged(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let core = &state;
        let (alice, bob, eve) = people(core).await;
        let (a, b, e) = (TestDevice::new(alice.id, "A1"), TestDevice::new(bob.id, "B1"), TestDevice::new(eve.id, "E1"));
        for (user, dev) in [(alice.id, &a), (bob.id, &b), (eve.id, &e)] {
            keys::register_device(core, user, dev.keys()).await.unwrap();
        }
        let to_bob = |n: u8| OutgoingToDevice { recipient_user: bob.id, recipient_device: "B1".into(), payload: Ciphertext(vec![n; 8]) };
        assert_eq!(keys::send_to_device(core, alice.id, "A1", vec![to_bob(1), to_bob(2)]).await.unwrap(), 2);
        assert_eq!(err(keys::send_to_device(core, eve.id, "E1", vec![to_bob(3)]).await.unwrap_err()), AppError::NotFound);
        assert_eq!(err(keys::send_to_device(core, alice.id, "NOT-MINE", vec![to_bob(3)]).await.unwrap_err()), AppError::NotFound);
        let empty = OutgoingToDevice { payload: Ciphertext(vec![]), ..to_bob(0) };
        assert!(err(keys::send_to_device(core, alice.id, "A1", vec![empty]).await.unwrap_err()).for_field("payload").is_some());
        let too_many: Vec<_> = (0..101).map(|i| to_bob(i as u8)).collect();
        assert!(err(keys::send_to_device(core, alice.id, "A1", too_many).await.unwrap_err()).for_field("messages").is_some());

        // Only the recipient device reads its queue; acknowledged messages are gone.
        assert_eq!(err(keys::fetch_to_device(core, alice.id, "B1").await.unwrap_err()), AppError::NotFound);
        let waiting = keys::fetch_to_device(core, bob.id, "B1").await.unwrap();
        assert_eq!(waiting.iter().map(|m| m.payload.0[0]).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(waiting[0].sender_device, "A1");
        assert_eq!(keys::ack_to_device(core, bob.id, "B1", waiting[0].id).await.unwrap(), 1);
        assert_eq!(keys::fetch_to_device(core, bob.id, "B1").await.unwrap().len(), 1);

        // The queue is bounded.
        for _ in 0..10 {
            let batch: Vec<_> = (0..100).map(|i| to_bob(i as u8)).collect();
            if keys::send_to_device(core, alice.id, "A1", batch).await.is_err() {
                break;
            }
        }
        assert!(matches!(err(keys::send_to_device(core, alice.id, "A1", vec![to_bob(9)]).await.unwrap_err()), AppError::RateLimited { .. }));
    }

    async fn device_registration_through_the_router(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let mut client = Client::new(&state);
        client.call("auth/register", &[("username", "dev"), ("display_name", "D"), ("password", "correct horse battery")]).await;
        let me: app::model::Me = serde_json::from_str(&client.call("auth/me", &[]).await.body).unwrap();
        let device = TestDevice::new(me.id, "WEB1");
        let reply = client.call_json("devices/register", &serde_json::json!({ "keys": device.keys() }).to_string()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let listed: Vec<DeviceKeys> =
            serde_json::from_str(&client.call_json("devices/list", &serde_json::json!({ "user_id": me.id }).to_string()).await.body).unwrap();
        assert_eq!(listed, vec![device.keys()]);
    }
}
