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

/// `n` more members of the community `owner` created first.
async fn co_members(core: &Core, owner: &user::Model, n: usize) -> Vec<uuid::Uuid> {
    let club = spaces::my_spaces(core, owner.id).await.unwrap().communities[0].id;
    let invite = spaces::create_invite(core, owner.id, club, None, None).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..n {
        let u = new_user(&core.db, &format!("m{}", &uuid::Uuid::new_v4().simple().to_string()[..12])).await;
        spaces::join(core, u.id, &invite.code).await.unwrap();
        ids.push(u.id);
    }
    ids
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

    async fn concurrent_claims_never_share_a_key_and_cannot_drain_a_device(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let (alice, bob, _) = people(&state).await;
        let claimers: Vec<_> = std::iter::once(alice.id).chain(co_members(&state, &alice, 3).await).collect();
        let laptop = TestDevice::new(bob.id, "LAPTOP");
        keys::register_device(&state, bob.id, laptop.keys()).await.unwrap();
        let otks: Vec<SignedKey> = (0..40).map(|i| laptop.key(&format!("k{i}"))).collect();
        keys::upload_keys(&state, bob.id, "LAPTOP", otks, Some(laptop.key("fb"))).await.unwrap();
        // Four co-members each race 20 claims of bob's laptop at once.
        let mut tasks = Vec::new();
        for &claimer in &claimers {
            for _ in 0..20 {
                let core = state.clone();
                tasks.push(tokio::spawn(async move { keys::claim(&core, claimer, bob.id, "LAPTOP").await.map_err(err) }));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut limited = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(c) => {
                    assert!(!c.fallback, "fell back while one-time keys remained");
                    assert!(ids.insert(c.key.key_id), "a one-time key was handed out twice");
                }
                Err(AppError::RateLimited { .. }) => limited += 1,
                Err(e) => panic!("a claim failed with {e:?}"),
            }
        }
        assert_eq!((ids.len(), limited), (4 * 5, 4 * 15), "each co-member takes at most 5 keys of one device per hour");
        // The device still has keys for someone who needs one; the fallback stays for running out.
        let newcomer = co_members(&state, &alice, 1).await[0];
        assert!(!keys::claim(&state, newcomer, bob.id, "LAPTOP").await.unwrap().fallback);
        assert_eq!(keys::counts(&state, bob.id, "LAPTOP").await.unwrap().one_time, 40 - 21);
    }

    async fn a_flooding_member_cannot_starve_a_device(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let (alice, bob, _) = people(&state).await;
        let floods = co_members(&state, &alice, 12).await;
        for (user, id) in std::iter::once((alice.id, "A1")).chain(floods.iter().map(|u| (*u, "M1"))) {
            keys::register_device(&state, user, TestDevice::new(user, id).keys()).await.unwrap();
        }
        keys::register_device(&state, bob.id, TestDevice::new(bob.id, "B1").keys()).await.unwrap();
        let bob_id = bob.id;
        let to_b1 = move |n: usize| OutgoingToDevice {
            recipient_user: bob_id,
            recipient_device: "B1".into(),
            payload: Ciphertext(vec![n as u8; 32]),
        };
        let flood = |sender: uuid::Uuid, batches: usize| {
            let core = state.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for _ in 0..batches {
                    let batch: Vec<_> = (0..100).map(to_b1).collect();
                    outcomes.push(keys::send_to_device(&core, sender, "M1", batch).await.map_err(err));
                }
                outcomes
            })
        };
        let waiting = |from: Option<uuid::Uuid>| {
            use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
            let mut q = entity::to_device::Entity::find().filter(entity::to_device::Column::RecipientDevice.eq("B1"));
            if let Some(sender) = from {
                q = q.filter(entity::to_device::Column::SenderUser.eq(sender));
            }
            q.count(&state.db)
        };

        // One member floods with ten batches of 100: only its share is queued, and another member's
        // room-key share still gets through.
        let outcomes = flood(floods[0], 10).await.unwrap();
        assert!(outcomes.iter().all(|o| matches!(o, Ok(_) | Err(AppError::RateLimited { .. }))), "{outcomes:?}");
        assert_eq!(waiting(Some(floods[0])).await.unwrap(), keys::MAX_TO_DEVICE_FROM_ONE_SENDER);
        assert_eq!(keys::send_to_device(&state, alice.id, "A1", vec![to_b1(1)]).await.unwrap(), 1);

        // Twelve members flood at once: the device's whole queue holds, exactly, under concurrency.
        let tasks: Vec<_> = floods.iter().map(|&m| flood(m, 2)).collect();
        for t in tasks {
            for outcome in t.await.unwrap() {
                assert!(matches!(outcome, Ok(_) | Err(AppError::RateLimited { .. })), "{outcome:?}");
            }
        }
        let total = waiting(None).await.unwrap();
        assert!(total <= app::model::keys::MAX_TO_DEVICE_QUEUE, "{total} messages wait for one device");
        assert!(total > app::model::keys::MAX_TO_DEVICE_QUEUE - 100, "{total}: the queue filled up to its last batch");
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

        // What one sender may have waiting for a device is bounded (one message waits already).
        for _ in 0..3 {
            let batch: Vec<_> = (0..33).map(|i| to_bob(i as u8)).collect();
            assert_eq!(keys::send_to_device(core, alice.id, "A1", batch).await.unwrap(), 33);
        }
        assert!(matches!(err(keys::send_to_device(core, alice.id, "A1", vec![to_bob(9)]).await.unwrap_err()), AppError::RateLimited { .. }));
    }

    async fn cross_signing_master_keys_sign_own_devices(db: TestDb) {
        use app::model::keys::cross_signing_payload;
        use ed25519_dalek::Signer;
        let state = db.state(RegistrationMode::Open).await;
        let core = &state;
        let (alice, bob, eve) = people(core).await;
        let (phone, laptop) = (TestDevice::new(bob.id, "PHONE"), TestDevice::new(bob.id, "LAPTOP"));
        for d in [&phone, &laptop] {
            keys::register_device(core, bob.id, d.keys()).await.unwrap();
        }
        let master = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let master_pub = TestDevice::b64(master.verifying_key().as_bytes());
        let cross_sign = |signer: &ed25519_dalek::SigningKey, d: &TestDevice| {
            let k = d.keys();
            TestDevice::b64(&signer.sign(cross_signing_payload(d.user, &d.id, &k.curve25519, &k.ed25519).as_bytes()).to_bytes())
        };

        // Nothing to sign with before a master key; garbage is not a key.
        assert!(err(keys::sign_device(core, bob.id, "PHONE", &cross_sign(&master, &phone)).await.unwrap_err()).for_field("master_key").is_some());
        assert!(err(keys::set_master_key(core, bob.id, "not base64!").await.unwrap_err()).for_field("master_key").is_some());
        keys::set_master_key(core, bob.id, &master_pub).await.unwrap();

        // Only signatures by the stored master key over bob's own devices are kept.
        let stranger_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        assert!(err(keys::sign_device(core, bob.id, "PHONE", &cross_sign(&stranger_key, &phone)).await.unwrap_err()).for_field("signature").is_some());
        assert!(err(keys::sign_device(core, bob.id, "PHONE", &cross_sign(&master, &laptop)).await.unwrap_err()).for_field("signature").is_some());
        // Alice, with a master key of her own, cannot sign bob's phone: it is not one of her devices.
        let alice_master = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        keys::set_master_key(core, alice.id, &TestDevice::b64(alice_master.verifying_key().as_bytes())).await.unwrap();
        assert_eq!(err(keys::sign_device(core, alice.id, "PHONE", &cross_sign(&alice_master, &phone)).await.unwrap_err()), AppError::NotFound);
        keys::sign_device(core, bob.id, "PHONE", &cross_sign(&master, &phone)).await.unwrap();
        let seen = keys::sign_device(core, bob.id, "LAPTOP", &cross_sign(&master, &laptop)).await.unwrap();
        assert_eq!(seen.master_key.as_deref(), Some(master_pub.as_str()));
        assert_eq!(seen.devices.iter().map(|d| d.device_id.as_str()).collect::<Vec<_>>(), vec!["LAPTOP", "PHONE"]);

        // Related people see it; strangers see nothing.
        assert_eq!(keys::cross_signing(core, alice.id, bob.id).await.unwrap(), seen);
        assert_eq!(err(keys::cross_signing(core, eve.id, bob.id).await.unwrap_err()), AppError::NotFound);

        // The same master key again changes nothing; a new one (an identity reset) drops every
        // signature the old one made. A removed device takes its signature with it.
        assert_eq!(keys::set_master_key(core, bob.id, &master_pub).await.unwrap(), seen);
        keys::remove_device(core, bob.id, "LAPTOP").await.unwrap();
        assert_eq!(keys::cross_signing(core, bob.id, bob.id).await.unwrap().devices.len(), 1);
        let reset = keys::set_master_key(core, bob.id, &TestDevice::b64(stranger_key.verifying_key().as_bytes())).await.unwrap();
        assert!(reset.devices.is_empty(), "signatures of the old master key survived a reset");
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
