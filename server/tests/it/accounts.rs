//! Account rules on real databases: SQLite always, PostgreSQL when `TEST_DATABASE_URL` is set.

use crate::common::{self, Prepare, on_both_backends};

use app::{error::AppError, model::RegistrationMode};
use chrono::{Duration, Utc};
use common::with_mode;
use domain::{
    accounts::{self, Client, Registration},
    invites, session,
    tokens::{DeviceCookie, ROTATION_GRACE},
};
use entity::user;
use sea_orm::{EntityTrait, PaginatorTrait};

fn reg(name: &str, invite: Option<&str>) -> Registration {
    Registration {
        username: name.into(),
        display_name: format!("{name} display"),
        password: "correct horse battery".into(),
        invite_code: invite.map(Into::into),
    }
}

fn client(ip: &str) -> Client {
    Client { ip: Some(ip.parse().unwrap()), ..Client::default() }
}

fn app_err(e: domain::error::ServerError) -> AppError {
    e.into()
}

on_both_backends! {
    async fn migrations_create_an_empty_schema(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        assert_eq!(user::Entity::find().count(&state.db).await.unwrap(), 0);
        assert!(accounts::is_empty(&state).await.unwrap());
        // Running them again is a no-op.
        let again = db.state(RegistrationMode::Open).await;
        assert!(accounts::is_empty(&again).await.unwrap());
    }

    async fn foreign_keys_are_enforced(db: TestDb) {
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        let state = db.state(RegistrationMode::Open).await;
        let orphan = entity::refresh_token::ActiveModel {
            id: Set(uuid::Uuid::new_v4()),
            user_id: Set(uuid::Uuid::new_v4()),
            family_id: Set(uuid::Uuid::new_v4()),
            token_hash: Set("0".repeat(64)),
            created_at: Set(Utc::now()),
            expires_at: Set(Utc::now()),
            rotated_at: Set(None),
            revoked_at: Set(None),
            user_agent: Set(None),
        };
        assert!(orphan.insert(&state.db).await.is_err(), "a token for a nonexistent user was stored");
    }

    async fn first_account_owns_the_instance_even_when_invite_only(db: TestDb) {
        let state = db.state(RegistrationMode::InviteOnly).await;
        let first = accounts::register(&state, reg("alice", None), &client("192.0.2.1")).await.unwrap();
        assert!(first.user.is_owner() && first.user.is_admin);
        assert_eq!(first.recovery_code.len(), 19);
        // The second needs an invite.
        let e = app_err(accounts::register(&state, reg("bob", None), &client("192.0.2.1")).await.err().unwrap());
        assert!(e.for_field("invite_code").is_some(), "{e:?}");
        let e = app_err(accounts::register(&state, reg("bob", Some("NOPE-NOPE-NOPE")), &client("192.0.2.1")).await.err().unwrap());
        assert!(e.for_field("invite_code").unwrap().contains("not valid"), "{e:?}");
        assert_eq!(user::Entity::find().count(&state.db).await.unwrap(), 1, "a failed registration left a row");
    }

    async fn simultaneous_first_registrations_make_exactly_one_owner(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let mut tasks = Vec::new();
        for i in 0..6 {
            let state = state.clone();
            tasks.push(tokio::spawn(async move { accounts::register(&state, reg(&format!("racer{i}"), None), &client("192.0.2.2")).await.map(|r| r.user) }));
        }
        let mut owners = 0;
        for t in tasks {
            let user = t.await.unwrap().expect("every racer registers in open mode");
            owners += usize::from(user.is_owner());
        }
        assert_eq!(owners, 1);
        let rows = user::Entity::find().all(&state.db).await.unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows.iter().filter(|u| u.is_owner()).count(), 1);
    }

    async fn usernames_are_unique_ignoring_case(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        accounts::register(&state, reg("Carol", None), &client("192.0.2.3")).await.unwrap();
        let e = app_err(accounts::register(&state, reg("cAROL", None), &client("192.0.2.3")).await.err().unwrap());
        assert_eq!(e.for_field("username").as_deref(), Some("is already taken"));
    }

    async fn bad_fields_are_rejected_before_anything_is_written(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let cases = [
            (Registration { username: "x".into(), ..reg("x", None) }, "username"),
            (Registration { username: "bad name".into(), ..reg("x", None) }, "username"),
            (Registration { display_name: "  ".into(), ..reg("dave", None) }, "display_name"),
            (Registration { password: "short".into(), ..reg("dave", None) }, "password"),
            (Registration { password: "p".repeat(129), ..reg("dave", None) }, "password"),
            (Registration { invite_code: Some("X".repeat(500)), ..reg("dave", None) }, "invite_code"),
        ];
        for (input, field) in cases {
            let e = app_err(accounts::register(&state, input, &client("192.0.2.4")).await.err().unwrap());
            assert!(e.for_field(field).is_some(), "expected an error on {field}, got {e:?}");
        }
        assert!(accounts::is_empty(&state).await.unwrap());
    }

    async fn closed_mode_refuses_everyone_but_the_first(db: TestDb) {
        let state = db.state(RegistrationMode::Closed).await;
        accounts::register(&state, reg("owner", None), &client("192.0.2.5")).await.unwrap();
        let e = app_err(accounts::register(&state, reg("eve", None), &client("192.0.2.5")).await.err().unwrap());
        assert!(e.for_field("form").unwrap().contains("closed"), "{e:?}");
    }

    async fn without_a_usable_invite_nobody_learns_which_names_exist(db: TestDb) {
        let state = db.state(RegistrationMode::InviteOnly).await;
        let owner = accounts::register(&state, reg("owner", None), &client("192.0.2.7")).await.unwrap().user;
        // "owner" exists: without an invite, or with a bad one, the answer is about the invite only.
        for invite in [None, Some("NOPE-NOPE-NOPE")] {
            let e = app_err(accounts::register(&state, reg("owner", invite), &client("192.0.2.7")).await.err().unwrap());
            assert!(e.for_field("invite_code").is_some() && e.for_field("username").is_none(), "{invite:?}: {e:?}");
        }
        let closed = with_mode(&state, RegistrationMode::Closed);
        let e = app_err(accounts::register(&closed, reg("owner", None), &client("192.0.2.7")).await.err().unwrap());
        assert!(e.for_field("form").is_some(), "{e:?}");
        // With a usable invite the name is checked, and the refused attempt does not use the invite up.
        let once = invites::create(&state, &owner, Some(1), None).await.unwrap();
        let e = app_err(accounts::register(&state, reg("owner", Some(&once.code)), &client("192.0.2.7")).await.err().unwrap());
        assert_eq!(e.for_field("username").as_deref(), Some("is already taken"));
        accounts::register(&state, reg("guest", Some(&once.code)), &client("192.0.2.7")).await.unwrap();
    }

    async fn registration_invites_cannot_be_guessed_from_a_network(db: TestDb) {
        let state = db.state(RegistrationMode::InviteOnly).await;
        accounts::register(&state, reg("owner", None), &client("192.0.2.7")).await.unwrap();
        // 150 guesses at once from every address of a /24 (a few per address, under its own limit).
        let guesses: Vec<_> = (0..150)
            .map(|i| {
                let core = state.clone();
                let from = client(&format!("203.0.113.{}", i % 250 + 1));
                tokio::spawn(async move {
                    let code = format!("GUES-S{:03}-CODE", i);
                    accounts::register(&core, reg(&format!("guest{i}"), Some(&code)), &from).await.err().map(app_err)
                })
            })
            .collect();
        let (mut checked, mut refused) = (0, 0);
        for g in guesses {
            match g.await.unwrap() {
                Some(AppError::RateLimited { .. }) => refused += 1,
                Some(e) if e.for_field("invite_code").is_some() => checked += 1,
                other => panic!("a guess got {other:?}"),
            }
        }
        assert_eq!((checked, refused), (60, 90), "invite codes tried from one network in an hour");
    }

    async fn invites_have_max_uses_and_expiry(db: TestDb) {
        let state = db.state(RegistrationMode::InviteOnly).await;
        let owner = accounts::register(&state, reg("owner", None), &client("192.0.2.6")).await.unwrap().user;
        let once = invites::create(&state, &owner, Some(1), Some(24)).await.unwrap();
        assert_eq!(once.code.len(), 14);
        accounts::register(&state, reg("first_guest", Some(&once.code.to_lowercase())), &client("192.0.2.6")).await.unwrap();
        let e = app_err(accounts::register(&state, reg("second_guest", Some(&once.code)), &client("192.0.2.6")).await.err().unwrap());
        assert!(e.for_field("invite_code").is_some());

        let unlimited = invites::create(&state, &owner, None, None).await.unwrap();
        for i in 0..3 {
            accounts::register(&state, reg(&format!("guest{i}"), Some(&unlimited.code)), &client("192.0.2.6")).await.unwrap();
        }
        // Expired: consume with a clock a day past expiry.
        let short = invites::create(&state, &owner, None, Some(1)).await.unwrap();
        assert!(!invites::consume(&state.db, &short.code, Utc::now() + Duration::hours(2)).await.unwrap());
        assert!(invites::consume(&state.db, &short.code, Utc::now()).await.unwrap());

        let list = invites::list(&state, &owner).await.unwrap();
        assert_eq!(list.len(), 3);
        let used_once = list.iter().find(|i| i.code == once.code).unwrap();
        assert_eq!((used_once.uses, used_once.usable), (1, false));

        // Only the owner and admins manage invites.
        let guest = user::Entity::find().all(&state.db).await.unwrap().into_iter().find(|u| u.username == "guest0").unwrap();
        assert_eq!(app_err(invites::create(&state, &guest, None, None).await.err().unwrap()), AppError::Forbidden);
        assert_eq!(app_err(invites::list(&state, &guest).await.err().unwrap()), AppError::Forbidden);
    }

    async fn login_checks_the_password_and_unknown_users_cost_the_same(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        accounts::register(&state, reg("frank", None), &client("192.0.2.7")).await.unwrap();
        let ok = accounts::login(&state, "FRANK", "correct horse battery".into(), &client("192.0.2.7")).await.unwrap();
        assert_eq!(ok.user.username, "frank");
        assert!(ok.new_device.is_some(), "a browser without a device cookie gets one");

        let before = state.passwords.verifications();
        let wrong = app_err(accounts::login(&state, "frank", "wrong password".into(), &client("192.0.2.7")).await.err().unwrap());
        let after_wrong = state.passwords.verifications();
        let unknown = app_err(accounts::login(&state, "nobody", "wrong password".into(), &client("192.0.2.7")).await.err().unwrap());
        let after_unknown = state.passwords.verifications();
        // Same message, and exactly one full Argon2id verification each: no enumeration by timing.
        assert_eq!(wrong, unknown);
        assert_eq!(after_wrong - before, 1);
        assert_eq!(after_unknown - after_wrong, 1);
    }

    async fn a_stranger_cannot_lock_the_owner_out_of_their_browser(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        accounts::register(&state, reg("grace", None), &client("192.0.2.8")).await.unwrap();
        // Grace signs in once from her laptop and keeps its device cookie.
        let laptop = accounts::login(&state, "grace", "correct horse battery".into(), &client("192.0.2.8")).await.unwrap();
        let device: DeviceCookie = laptop.new_device.unwrap();

        // A stranger guesses from many addresses of one network until the throttle trips there.
        for i in 0..10 {
            let e = app_err(accounts::login(&state, "grace", format!("guess {i}"), &client(&format!("203.0.113.{i}"))).await.err().unwrap());
            assert!(e.is_field_error(), "{e:?}");
        }
        let e = app_err(accounts::login(&state, "grace", "correct horse battery".into(), &client("203.0.113.99")).await.err().unwrap());
        assert!(matches!(e, AppError::RateLimited { retry_after_s } if retry_after_s > 0 && retry_after_s <= 3600), "{e:?}");

        // Grace's laptop still gets in.
        let from_laptop = Client { ip: Some("192.0.2.8".parse().unwrap()), device: Some(device), ..Client::default() };
        let again = accounts::login(&state, "grace", "correct horse battery".into(), &from_laptop).await.unwrap();
        assert!(again.new_device.is_none(), "the existing device cookie is kept");
    }

    async fn nobody_can_lock_the_owner_out(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let judy = accounts::register(&state, reg("judy", None), &client("192.0.2.20")).await.unwrap();
        // A stranger guesses as fast as it can: 200 passwords at once, from every address of a /24.
        let before = state.passwords.verifications();
        let guesses: Vec<_> = (0..200)
            .map(|i| {
                let core = state.clone();
                let from = client(&format!("203.0.113.{}", i % 250 + 1));
                tokio::spawn(async move { accounts::login(&core, "judy", format!("guess {i}"), &from).await.err().map(app_err) })
            })
            .collect();
        let (mut checked, mut refused) = (0, 0);
        for g in guesses {
            match g.await.unwrap() {
                Some(AppError::RateLimited { .. }) => refused += 1,
                Some(e) if e.is_field_error() => checked += 1,
                other => panic!("a guess got {other:?}"),
            }
        }
        let verified = state.passwords.verifications() - before;
        eprintln!("one network, 200 parallel password guesses: {checked} checked, {refused} refused");
        assert_eq!((checked, verified), (10, 10), "guesses checked from one network in an hour");
        // Recovery codes too: 30 at once, 10 checked.
        let codes: Vec<_> = (0..30)
            .map(|i| {
                let core = state.clone();
                let from = client(&format!("203.0.113.{}", i + 1));
                tokio::spawn(async move { accounts::recover(&core, "judy", &format!("AAAA-BBBB-CCCC-{i:04}"), "new password 1".into(), &from).await.err().map(app_err) })
            })
            .collect();
        let mut checked = 0;
        for c in codes {
            match c.await.unwrap() {
                Some(AppError::RateLimited { .. }) => {}
                Some(e) if e.for_field("recovery_code").is_some() => checked += 1,
                other => panic!("a code got {other:?}"),
            }
        }
        assert_eq!(checked, 10, "recovery codes checked from one network in an hour");

        // Judy, in a new browser on another network, signs in at once with her password, and
        // recovers with her code (a typo first costs her nothing but that try).
        let home = client("198.51.100.77");
        accounts::login(&state, "judy", "correct horse battery".into(), &home).await.unwrap();
        assert!(accounts::login(&state, "judy", "correct horse batterx".into(), &home).await.is_err());
        accounts::login(&state, "judy", "correct horse battery".into(), &home).await.unwrap();
        accounts::recover(&state, "judy", &judy.recovery_code, "brand new password".into(), &home).await.unwrap();
        accounts::login(&state, "judy", "brand new password".into(), &client("198.51.100.78")).await.unwrap();
        // The stranger's network stays refused, even with the right password.
        let e = app_err(accounts::login(&state, "judy", "brand new password".into(), &client("203.0.113.9")).await.err().unwrap());
        assert!(matches!(e, AppError::RateLimited { .. }), "{e:?}");
    }

    async fn one_address_guessing_many_accounts_is_throttled(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        for i in 0..30 {
            let e = app_err(accounts::login(&state, &format!("user{i}"), "whatever1".into(), &client("198.51.100.1")).await.err().unwrap());
            assert!(e.is_field_error(), "attempt {i}: {e:?}");
        }
        let e = app_err(accounts::login(&state, "user99", "whatever1".into(), &client("198.51.100.1")).await.err().unwrap());
        assert!(matches!(e, AppError::RateLimited { .. }), "{e:?}");
        // Another address is unaffected.
        let e = app_err(accounts::login(&state, "user99", "whatever1".into(), &client("198.51.100.2")).await.err().unwrap());
        assert!(e.is_field_error(), "{e:?}");
    }

    async fn refresh_tokens_rotate_and_reuse_revokes_the_family(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let user = accounts::register(&state, reg("heidi", None), &client("192.0.2.9")).await.unwrap().user;
        let raw = session::start(&state, user.id, Some("test".into())).await.unwrap().refresh;
        let now = Utc::now();

        let session::Refresh::Rotated { refresh: second, session: s1, .. } = session::refresh(&state.db, &state.keys, &raw, now).await.unwrap() else { panic!("first use rotates") };
        assert_eq!(s1.user_id, user.id);
        // Reused within the grace period (parallel requests): still valid, no new token.
        assert!(matches!(session::refresh(&state.db, &state.keys, &raw, now + Duration::seconds(5)).await.unwrap(), session::Refresh::Grace(_)));
        // The successor works.
        let session::Refresh::Rotated { refresh: third, .. } = session::refresh(&state.db, &state.keys, &second, now + Duration::seconds(10)).await.unwrap() else { panic!("successor rotates") };
        // Reused long after rotation: theft. The whole family dies, including the newest token.
        let late = now + ROTATION_GRACE + Duration::seconds(60);
        assert!(matches!(session::refresh(&state.db, &state.keys, &raw, late).await.unwrap(), session::Refresh::Invalid));
        assert!(matches!(session::refresh(&state.db, &state.keys, &third, late).await.unwrap(), session::Refresh::Invalid));
        // Garbage and expiry.
        assert!(matches!(session::refresh(&state.db, &state.keys, "garbage", now).await.unwrap(), session::Refresh::Invalid));
        let raw2 = session::start(&state, user.id, None).await.unwrap().refresh;
        assert!(matches!(session::refresh(&state.db, &state.keys, &raw2, now + Duration::days(31)).await.unwrap(), session::Refresh::Invalid));
    }

    async fn recovery_resets_the_password_and_ends_every_session(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let registered = accounts::register(&state, reg("ivan", None), &client("192.0.2.11")).await.unwrap();
        let raw = session::start(&state, registered.user.id, None).await.unwrap().refresh;

        let e = app_err(accounts::recover(&state, "ivan", "AAAA-BBBB-CCCC-DDDD", "new password 1".into(), &client("192.0.2.11")).await.err().unwrap());
        assert!(e.for_field("recovery_code").is_some());
        let e = app_err(accounts::recover(&state, "ivan", &registered.recovery_code, "short".into(), &client("192.0.2.11")).await.err().unwrap());
        assert!(e.for_field("new_password").is_some());

        // Codes are accepted in any case and with or without dashes.
        let typed = registered.recovery_code.to_lowercase().replace('-', "");
        let recovered = accounts::recover(&state, "Ivan", &typed, "new password 1".into(), &client("192.0.2.11")).await.unwrap();
        assert_ne!(recovered.recovery_code, registered.recovery_code);
        assert!(matches!(session::refresh(&state.db, &state.keys, &raw, Utc::now()).await.unwrap(), session::Refresh::Invalid), "old sessions survive recovery");
        assert!(accounts::login(&state, "ivan", "correct horse battery".into(), &client("192.0.2.11")).await.is_err());
        accounts::login(&state, "ivan", "new password 1".into(), &client("192.0.2.11")).await.unwrap();
        // The old code is spent; the new one works.
        assert!(accounts::recover(&state, "ivan", &registered.recovery_code, "another pass".into(), &client("192.0.2.11")).await.is_err());
        accounts::recover(&state, "ivan", &recovered.recovery_code, "another pass".into(), &client("192.0.2.11")).await.unwrap();
    }

    async fn concurrent_failures_are_all_counted(db: TestDb) {
        use domain::throttle::{self, Limit};
        let state = db.state(RegistrationMode::Open).await;
        let limit = [Limit::new("test:key", 40, Duration::minutes(15))];
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let (db, limit) = (state.db.clone(), limit.clone());
            tasks.push(tokio::spawn(async move { throttle::record_failure(&db, &limit, Utc::now()).await.unwrap() }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let row = entity::auth_throttle::Entity::find_by_id("test:key".to_owned()).one(&state.db).await.unwrap().unwrap();
        assert_eq!(row.failures, 40, "parallel attempts lost counts");
        assert!(throttle::check(&state.db, &limit, Utc::now()).await.is_err());
        // A later window starts over.
        throttle::record_failure(&state.db, &limit, Utc::now() + Duration::minutes(16)).await.unwrap();
        let row = entity::auth_throttle::Entity::find_by_id("test:key".to_owned()).one(&state.db).await.unwrap().unwrap();
        assert_eq!(row.failures, 1);
    }

    async fn concurrent_successes_give_back_without_deadlock(db: TestDb) {
        // Many sign-ins from one network at once: each takes an attempt from the shared address and
        // network counters and gives it back. On PostgreSQL a multi-row give-back locked the shared
        // rows in no fixed order, and two of them deadlocked (a 500 for "recover" under load).
        use domain::throttle::{self, Limit};
        let state = db.state(RegistrationMode::Open).await;
        for round in 0..5 {
            let mut tasks = Vec::new();
            for i in 0..30 {
                let db = state.db.clone();
                let limits = [
                    Limit::new(format!("test:own:{i}"), 100, Duration::minutes(15)),
                    Limit::new("test:net", 1000, Duration::minutes(15)),
                    Limit::new("test:ip", 1000, Duration::minutes(15)),
                ];
                tasks.push(tokio::spawn(async move {
                    throttle::take(&db, &limits, Utc::now()).await?;
                    throttle::give_back(&db, &limits).await
                }));
            }
            for t in tasks {
                if let Err(e) = t.await.unwrap() {
                    panic!("round {round}: {}", app_err(e));
                }
            }
        }
        for key in ["test:net", "test:ip"] {
            let row = entity::auth_throttle::Entity::find_by_id(key.to_owned()).one(&state.db).await.unwrap().unwrap();
            assert_eq!(row.failures, 0, "{key}: every attempt was given back");
        }
    }

    async fn modes_can_change_without_losing_accounts(db: TestDb) {
        let state = db.state(RegistrationMode::Closed).await;
        accounts::register(&state, reg("judy", None), &client("192.0.2.12")).await.unwrap();
        let open = with_mode(&state, RegistrationMode::Open);
        accounts::register(&open, reg("ken", None), &client("192.0.2.12")).await.unwrap();
        assert_eq!(user::Entity::find().count(&state.db).await.unwrap(), 2);
    }
}
