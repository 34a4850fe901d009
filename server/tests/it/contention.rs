//! No 5xx from contention: while three members send as fast as they can, every state-changing
//! server function and every socket frame runs 20 times at once, and each call succeeds or fails
//! with a domain error (4xx), on SQLite and on PostgreSQL. The calls come from the role tables of
//! `authz.rs` (so a new server function is covered here too) plus the account, cross-signing and
//! backup functions.

use crate::{
    authz::{self, Answer, ROLES, Role, World},
    common::{self, TestDevice, on_both_backends},
};
use app::model::gateway::{ClientFrame, ErrorCode, ServerFrame};
use common::{Client, live::TestServer};
use domain::Core;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};
use tokio::task::JoinHandle;

const TIMES: usize = 20;

/// Three members sending in the general channel as fast as they can, until stopped.
struct Flood {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<(usize, Vec<String>)>>,
}

impl Flood {
    async fn start(w: &World) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for role in [Role::Owner, Role::Moderator, Role::Member] {
            let mut client = authz::client_for(w, role).await;
            let (stop, channel) = (stop.clone(), w.general_channel.to_string());
            tasks.push(tokio::spawn(async move {
                let (mut sent, mut failures) = (0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let txn = format!("flood-{role:?}-{sent}");
                    let form = [
                        ("channel_id", channel.as_str()),
                        ("device", "D"),
                        ("client_txn", &txn),
                        ("ciphertext_b64", "AQID"),
                    ];
                    let reply = client.call("messages/send", &form).await;
                    if reply.status >= 500 {
                        failures.push(format!("flood send as {role:?}: {} {}", reply.status, reply.body));
                    }
                    sent += 1;
                }
                (sent, failures)
            }));
        }
        Self { stop, tasks }
    }

    async fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut sent, mut failures) = (0, Vec::new());
        for t in self.tasks {
            let (n, f) = t.await.unwrap();
            sent += n;
            failures.extend(f);
        }
        (sent, failures)
    }
}

/// Runs `TIMES` copies of `call` at once and reports every 5xx.
async fn twenty_at_once<F, Fut>(what: &str, call: F) -> Vec<String>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = common::Reply> + Send + 'static,
{
    let tasks: Vec<_> = (0..TIMES).map(|i| tokio::spawn(call(i))).collect();
    let mut failures = Vec::new();
    for t in tasks {
        let reply = t.await.unwrap();
        if reply.status >= 500 {
            failures.push(format!("{what}: {} {}", reply.status, reply.body));
        }
    }
    failures
}

/// Every server function of the role tables, as the first role allowed to call it.
async fn server_functions(w: &World) -> Vec<String> {
    let cases = authz::space_cases()
        .into_iter()
        .chain(authz::message_key_and_admin_cases())
        .chain(authz::instance_and_to_device_cases());
    let mut failures = Vec::new();
    for (endpoint, form, expected) in cases {
        let role = expected.iter().find(|(_, status)| *status == 200).or(expected.get(1)).unwrap().0;
        let mut clients = Vec::new();
        for _ in 0..TIMES {
            clients.push(authz::client_for(w, role).await);
        }
        let fields = form(w);
        let clients = Arc::new(tokio::sync::Mutex::new(clients));
        failures.extend(
            twenty_at_once(&format!("{endpoint} as {role:?}"), |_| {
                let (clients, fields) = (clients.clone(), fields.clone());
                async move {
                    let mut client = clients.lock().await.pop().unwrap();
                    authz::call(&mut client, endpoint, &fields).await
                }
            })
            .await,
        );
    }
    failures
}

/// Every socket frame of the frame table, 20 times each on a socket of its own, all sockets at
/// once; an `internal` error is the socket's 5xx.
async fn frames(server: &TestServer, w: &World) -> Vec<String> {
    let mut tasks = Vec::new();
    for (name, frame, expected) in authz::frame_cases() {
        let role = ROLES[1..].iter().zip(expected).find(|(_, a)| *a == Answer::Ok).map_or(Role::Owner, |(r, _)| *r);
        let user = w.users.iter().find(|(r, _)| *r == role).unwrap().1.id;
        let (addr, state, frame) = (server.addr, server.state.clone(), frame(w));
        tasks.push(tokio::spawn(async move {
            let cookie = common::live::cookies_for(&state, user).await;
            let (mut ws, _) = common::live::Ws::connect(addr, &cookie, None, vec![]).await;
            for _ in 0..TIMES {
                ws.send(&frame).await;
            }
            ws.send(&ClientFrame::Ping { nonce: 4242 }).await;
            let mut internal = 0;
            loop {
                match ws.recv().await {
                    ServerFrame::Error { code: ErrorCode::Internal, .. } => internal += 1,
                    ServerFrame::Pong { nonce: 4242 } => break,
                    _ => {}
                }
            }
            (name, role, internal)
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        let (name, role, internal) = t.await.unwrap();
        if internal > 0 {
            failures.push(format!("frame {name} as {role:?}: {internal} internal errors"));
        }
    }
    failures
}

/// The account functions (public and self-only): 20 accounts register, sign in, rotate their
/// refresh tokens, register devices and keys, use their to-device queues, change passwords,
/// recover and sign out, each step 20 at once.
async fn accounts(state: &Core) -> Vec<String> {
    let mut failures = Vec::new();
    let name = |i: usize| format!("acct{i}");
    // Register, then read the recovery code the registration flashed into a cookie.
    let registrations: Vec<_> = (0..TIMES)
        .map(|i| {
            let mut client = Client::new(state);
            tokio::spawn(async move {
                let form =
                    [("username", name(i)), ("display_name", name(i)), ("password", "correct horse battery".into())];
                let registered =
                    client.call("auth/register", &form.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
                let code = client.call("auth/take_recovery_code", &[]).await;
                (registered, code)
            })
        })
        .collect();
    let mut codes = Vec::new();
    for r in registrations {
        let (registered, code) = r.await.unwrap();
        for (what, reply) in [("auth/register", &registered), ("auth/take_recovery_code", &code)] {
            if reply.status >= 500 {
                failures.push(format!("{what}: {} {}", reply.status, reply.body));
            }
        }
        codes.push(serde_json::from_str::<Option<String>>(&code.body).ok().flatten());
    }
    let ids: Vec<uuid::Uuid> = {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        entity::user::Entity::find()
            .filter(entity::user::Column::Username.starts_with("acct"))
            .order_by_asc(entity::user::Column::Username)
            .all(&state.db)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .collect()
    };
    assert_eq!(ids.len(), TIMES, "every registration under contention went through");
    failures.extend(
        twenty_at_once("auth/login", |i| {
            let mut client = Client::new(state);
            async move { client.call("auth/login", &[("username", &name(i)), ("password", "correct horse battery")]).await }
        })
        .await,
    );
    // A page load with an expired access token rotates the refresh token in the middleware.
    let mut refresh_only = Vec::new();
    for &id in &ids {
        let issued = domain::session::start(state, id, None).await.unwrap();
        let mut client = Client::new(state);
        client.cookies.push((protocol::cookies::REFRESH.into(), issued.refresh.clone()));
        refresh_only.push(client);
    }
    let refresh_only = Arc::new(tokio::sync::Mutex::new(refresh_only));
    failures.extend(
        twenty_at_once("refresh-token rotation", |_| {
            let clients = refresh_only.clone();
            async move {
                let mut client = clients.lock().await.pop().unwrap();
                let reply = client.call("auth/me", &[]).await;
                assert!(reply.status != 401 || reply.status >= 500, "a rotation was refused: {}", reply.body);
                reply
            }
        })
        .await,
    );
    let signed_in = |i: usize| {
        let (state, id) = (state.clone(), ids[i]);
        async move { common::live::client_with(&state, &common::live::cookies_for(&state, id).await) }
    };
    failures.extend(
        twenty_at_once("devices/register", |i| {
            let (client, device) = (signed_in(i), TestDevice::new(ids[i], "CONTENDED"));
            async move {
                let body = serde_json::json!({ "keys": device.keys() }).to_string();
                client.await.call_json("devices/register", &body).await
            }
        })
        .await,
    );
    failures.extend(
        twenty_at_once("keys/upload", |i| {
            let (client, device) = (signed_in(i), TestDevice::new(ids[i], "CONTENDED"));
            async move {
                let keys: Vec<_> = (0..20).map(|k| device.key(&format!("k{k}"))).collect();
                let body = serde_json::json!({ "device_id": "CONTENDED", "one_time_keys": keys, "fallback_key": device.key("fb") });
                client.await.call_json("keys/upload", &body.to_string()).await
            }
        })
        .await,
    );
    failures.extend(
        twenty_at_once("to_device/send", |i| {
            let (client, to) = (signed_in(i), ids[(i + 1) % TIMES]);
            async move {
                let messages =
                    serde_json::json!([{ "recipient_user": to, "recipient_device": "CONTENDED", "payload": "AQID" }]);
                // Accounts share nothing: refused with 404, under contention too.
                client
                    .await
                    .call_json(
                        "to_device/send",
                        &serde_json::json!({ "device_id": "CONTENDED", "messages": messages }).to_string(),
                    )
                    .await
            }
        })
        .await,
    );
    for endpoint in ["to_device/fetch", "keys/counts"] {
        failures.extend(
            twenty_at_once(endpoint, |i| {
                let client = signed_in(i);
                async move { client.await.call_json(endpoint, r#"{"device_id":"CONTENDED"}"#).await }
            })
            .await,
        );
    }
    failures.extend(
        twenty_at_once("to_device/ack", |i| {
            let client = signed_in(i);
            let up_to = uuid::Uuid::now_v7();
            async move {
                client
                    .await
                    .call_json(
                        "to_device/ack",
                        &serde_json::json!({ "device_id": "CONTENDED", "up_to": up_to }).to_string(),
                    )
                    .await
            }
        })
        .await,
    );
    // Cross-signing: each account sets a master key and signs its device with it.
    let master = |i: usize| ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]);
    failures.extend(
        twenty_at_once("cross_signing/set_master", |i| {
            let (client, key) = (signed_in(i), TestDevice::b64(master(i).verifying_key().as_bytes()));
            async move {
                client
                    .await
                    .call_json("cross_signing/set_master", &serde_json::json!({ "master_key": key }).to_string())
                    .await
            }
        })
        .await,
    );
    let mut signatures = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        use ed25519_dalek::Signer;
        let d = domain::keys_directory::own_device(&state.db, id, "CONTENDED").await.unwrap();
        let payload = app::model::keys::cross_signing_payload(id, "CONTENDED", &d.curve25519, &d.ed25519);
        signatures.push(TestDevice::b64(&master(i).sign(payload.as_bytes()).to_bytes()));
    }
    failures.extend(
        twenty_at_once("cross_signing/sign_device", |i| {
            let (client, signature) = (signed_in(i), signatures[i].clone());
            async move {
                let body = serde_json::json!({ "device_id": "CONTENDED", "signature": signature }).to_string();
                let reply = client.await.call_json("cross_signing/sign_device", &body).await;
                assert_eq!(reply.status, 200, "a valid cross-signature was refused: {}", reply.body);
                reply
            }
        })
        .await,
    );
    failures.extend(
        twenty_at_once("devices/remove", |i| {
            let client = signed_in(i);
            async move { client.await.call_json("devices/remove", r#"{"device_id":"CONTENDED"}"#).await }
        })
        .await,
    );
    // Key backups: each account creates a version, fills it and deletes it, each step 20 at once.
    let versions = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    failures.extend(
        twenty_at_once("backup/create", |i| {
            let (client, versions) = (signed_in(i), versions.clone());
            async move {
                let reply = client.await.call_json("backup/create", r#"{"algorithm":"x","auth_data":"AQID"}"#).await;
                if let Ok(v) = serde_json::from_str::<app::model::backup::BackupVersion>(&reply.body) {
                    versions.lock().unwrap().insert(i, v.id);
                }
                reply
            }
        })
        .await,
    );
    let version_of = |i: usize| versions.lock().unwrap().get(&i).copied().unwrap_or_default();
    failures.extend(
        twenty_at_once("backup/upload", |i| {
            let (client, version) = (signed_in(i), version_of(i));
            async move {
                let keys: Vec<_> =
                    (0..50).map(|k| serde_json::json!({ "key_id": format!("k{k}"), "sealed": "AQID" })).collect();
                client
                    .await
                    .call_json("backup/upload", &serde_json::json!({ "version": version, "keys": keys }).to_string())
                    .await
            }
        })
        .await,
    );
    for endpoint in ["backup/download", "backup/delete"] {
        failures.extend(
            twenty_at_once(endpoint, |i| {
                let (client, version) = (signed_in(i), version_of(i));
                async move { client.await.call_json(endpoint, &serde_json::json!({ "version": version }).to_string()).await }
            })
            .await,
        );
    }
    failures.extend(
        twenty_at_once("auth/change_password", |i| {
            let client = signed_in(i);
            async move {
                let form = [("current_password", "correct horse battery"), ("new_password", "another good password")];
                client.await.call("auth/change_password", &form).await
            }
        })
        .await,
    );
    failures.extend(
        twenty_at_once("auth/recover", |i| {
            let (mut client, code) = (Client::new(state), codes[i].clone().unwrap_or_default());
            async move {
                let form =
                    [("username", name(i)), ("recovery_code", code), ("new_password", "recovered password 1".into())];
                client.call("auth/recover", &form.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await
            }
        })
        .await,
    );
    failures.extend(
        twenty_at_once("auth/logout", |i| {
            let client = signed_in(i);
            async move { client.await.call("auth/logout", &[]).await }
        })
        .await,
    );
    failures
}

on_both_backends! {
    async fn no_5xx_from_contention_while_members_flood(db: TestDb) {
        // A 5xx logs its cause under its reference id: shown with the failure.
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("error").try_init();
        let (mut state, root) = authz::instance(&db).await;
        // This instance lets a person send as fast as they can: the senders contend, not wait.
        state.config = Arc::new(domain::config::Config { messages_per_minute: 100_000, ..(*state.config).clone() });
        let server = TestServer::start(state.clone()).await;
        let w = authz::world(&state, &root).await;
        let started = Instant::now();
        let flood = Flood::start(&w).await;
        let mut failures = server_functions(&w).await;
        failures.extend(frames(&server, &w).await);
        failures.extend(accounts(&state).await);
        let (sent, flood_failures) = flood.stop().await;
        failures.extend(flood_failures);
        eprintln!("{} backend: {sent} flood sends in {:.1} s beside every state change 20 times at once", if db.is_postgres() { "PostgreSQL" } else { "SQLite" }, started.elapsed().as_secs_f64());
        assert!(sent > 100, "the flood barely ran: {sent} sends");
        assert!(failures.is_empty(), "{} 5xx under contention:\n{}", failures.len(), failures.join("\n"));
    }
}
