//! The crypto core (issue 4, natively) against the real relay: devices and keys published through
//! the key directory, room keys shared over Olm through the to-device queue, Megolm messages and
//! edits through the gateway. Then the whole database and data directory are searched for the
//! plaintext: the server holds none of it.

use crate::common::{self, Prepare, on_both_backends};

use app::{
    crypto::{
        CryptoResult,
        channel::ChannelPlaintext,
        device::Device,
        machine::{Machine, Relay},
    },
    model::{
        CommunityCreationMode, RegistrationMode,
        gateway::{ClientFrame, ServerFrame},
        keys::{ClaimedKey, DeviceKeys, KeyCounts, OutgoingToDevice},
        messages::MessageKind,
    },
};
use common::{
    Client,
    live::{TestServer, Ws, client_with, cookies_for},
    new_user,
};
use domain::spaces;
use sea_orm::ConnectionTrait;
use serde_json::json;
use uuid::Uuid;

/// The relay as the browser reaches it: server functions over HTTP.
struct HttpRelay(tokio::sync::Mutex<Client>);

impl HttpRelay {
    async fn call<T: serde::de::DeserializeOwned>(&self, endpoint: &str, body: serde_json::Value) -> CryptoResult<T> {
        let reply = self.0.lock().await.call_json(endpoint, &body.to_string()).await;
        if reply.status != 200 {
            return Err(app::crypto::CryptoError::Relay(format!("{endpoint}: {} {}", reply.status, reply.body)));
        }
        serde_json::from_str(&reply.body).map_err(|e| app::crypto::CryptoError::Malformed(e.to_string()))
    }
}

impl Relay for HttpRelay {
    async fn channel_devices(&self, channel_id: Uuid) -> CryptoResult<Vec<DeviceKeys>> {
        self.call("devices/of_channel", json!({ "channel_id": channel_id })).await
    }

    async fn user_devices(&self, user_id: Uuid) -> CryptoResult<Vec<DeviceKeys>> {
        self.call("devices/list", json!({ "user_id": user_id })).await
    }

    async fn claim(&self, user_id: Uuid, device_id: &str) -> CryptoResult<ClaimedKey> {
        self.call("keys/claim", json!({ "user_id": user_id, "device_id": device_id })).await
    }

    async fn send_to_device(&self, batch: Vec<OutgoingToDevice>) -> CryptoResult<()> {
        self.call::<usize>("to_device/send", json!({ "device_id": "WEB", "messages": batch })).await.map(|_| ())
    }
}

/// A user with a browser-like crypto state, talking to the server over HTTP and a socket.
struct Person {
    machine: Machine,
    relay: HttpRelay,
    ws: Ws,
}

impl Person {
    async fn join(server: &TestServer, user: Uuid) -> Self {
        let cookie = cookies_for(&server.state, user).await;
        let http = client_with(&server.state, &cookie);
        let mut device = Device::new(user, "WEB");
        let relay = HttpRelay(tokio::sync::Mutex::new(http));
        let _: DeviceKeys = relay.call("devices/register", json!({ "keys": device.device_keys() })).await.unwrap();
        let upload = json!({
            "device_id": "WEB",
            "one_time_keys": device.one_time_keys_to_publish(0),
            "fallback_key": device.fallback_key_to_publish(),
        });
        let counts: KeyCounts = relay.call("keys/upload", upload).await.unwrap();
        assert!(counts.one_time > 0 && counts.fallback);
        device.mark_published();
        let (ws, _) = Ws::connect(server.addr, &cookie, Some("WEB"), vec![]).await;
        Self { machine: Machine::new(device), relay, ws }
    }

    /// Encrypts and sends a message or an edit, as the browser will.
    async fn say(&mut self, txn: &str, plaintext: &ChannelPlaintext) {
        let ciphertext = self.machine.encrypt(&self.relay, plaintext, 1).await.unwrap();
        let channel_id = plaintext.channel_id;
        let frame = match plaintext.edit_of {
            // A reaction (or a vote, which is one): it names its message outside too.
            None => ClientFrame::Send {
                channel_id,
                device: "WEB".into(),
                client_txn: txn.into(),
                kind: if plaintext.react_to.is_some() { MessageKind::Reaction } else { MessageKind::Text },
                reply_to: plaintext.react_to,
                thread_id: plaintext.thread,
                ciphertext,
            },
            Some(message_id) => ClientFrame::Edit { message_id, ciphertext },
        };
        self.ws.send(&frame).await;
    }

    /// Takes frames until someone else's channel event decrypts (own messages echo back and are
    /// skipped); room keys arriving meanwhile are accepted and acknowledged.
    async fn hear(&mut self) -> (Uuid, ChannelPlaintext) {
        loop {
            match self.ws.recv().await {
                ServerFrame::ToDevice { message } => {
                    assert_eq!(self.machine.receive_to_device(&self.relay, &message).await.unwrap(), None);
                    let _: u64 = self
                        .relay
                        .call("to_device/ack", json!({ "device_id": "WEB", "up_to": message.id }))
                        .await
                        .unwrap();
                }
                ServerFrame::Event { event } => {
                    let got =
                        self.machine.decrypt(event.channel_id, event.message.id, &event.message.ciphertext).unwrap();
                    if got.sender.user != self.machine.device.user() {
                        return (event.message.id, got.plaintext);
                    }
                }
                _ => {}
            }
        }
    }
}

on_both_backends! {
    async fn the_server_relays_what_it_cannot_read(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (alice_user, bob_user) = (new_user(&server.state.db, "alice").await, new_user(&server.state.db, "bob").await);
        let club = spaces::create_community(&server.state, &alice_user, CommunityCreationMode::Open, "Club", "").await.unwrap();
        let invite = spaces::create_invite(&server.state, alice_user.id, club, None, None).await.unwrap();
        spaces::join(&server.state, bob_user.id, &invite.code).await.unwrap();
        let general = spaces::my_spaces(&server.state, alice_user.id).await.unwrap().communities[0].groups[0].channels[0].id;
        let mut alice = Person::join(&server, alice_user.id).await;
        let mut bob = Person::join(&server, bob_user.id).await;

        let canary = format!("canary-{}", Uuid::new_v4().simple());
        let say = |body: &str, edit_of| ChannelPlaintext { edit_of, ..ChannelPlaintext::message(general, body.into(), None, 1) };
        alice.say("a1", &say(&format!("hello {canary}"), None)).await;
        let (first, heard) = bob.hear().await;
        assert_eq!(heard.body, format!("hello {canary}"));
        bob.say("b1", &say(&format!("hi back {canary}"), None)).await;
        assert_eq!(alice.hear().await.1.body, format!("hi back {canary}"));
        alice.say("a2", &say(&format!("hello, edited {canary}"), Some(first))).await;
        let edited = loop {
            let (_, p) = bob.hear().await;
            if p.edit_of == Some(first) {
                break p;
            }
        };
        assert_eq!(edited.body, format!("hello, edited {canary}"));
        // A reaction, a poll (question and options), a vote, a forwarded message and a scheduled
        // one: each carries the canary, each is read by the other side.
        let reaction = ChannelPlaintext { react_to: Some(first), binds_reply: false, ..say(&format!("🎉{canary}"), None) };
        bob.say("b2", &reaction).await;
        assert_eq!(alice.hear().await.1.react_to, Some(first));
        let poll = app::poll::Poll {
            options: vec![format!("yes {canary}"), format!("no {canary}")],
            multiple: false,
            closes_at_ms: None,
        };
        alice.say("a3", &ChannelPlaintext { poll: Some(poll.clone()), ..say(&format!("Lunch? {canary}"), None) }).await;
        let (poll_id, heard) = bob.hear().await;
        assert_eq!(heard.poll, Some(poll));
        let vote = ChannelPlaintext {
            react_to: Some(poll_id),
            binds_reply: false,
            vote: Some(vec![1]),
            ..say(&format!("vote {canary}"), None)
        };
        bob.say("b3", &vote).await;
        assert_eq!(alice.hear().await.1.vote, Some(vec![1]));
        let forwarded = ChannelPlaintext {
            forwarded_from: Some(format!("Carol {canary}")),
            ..say(&format!("passed on {canary}"), None)
        };
        alice.say("a4", &forwarded).await;
        assert_eq!(bob.hear().await.1.forwarded_from, Some(format!("Carol {canary}")));
        let later = alice.machine.encrypt(&alice.relay, &say(&format!("later {canary}"), None), 1).await.unwrap();
        let waiting = domain::scheduled::Schedule {
            channel_id: general,
            device: "WEB".into(),
            reply_to: None,
            ciphertext: later,
            deliver_at: chrono::Utc::now() + chrono::Duration::hours(1),
        };
        domain::scheduled::schedule(&server.state, alice_user.id, waiting).await.unwrap();
        // A reply in a thread: its thread named inside the ciphertext too.
        let in_thread = ChannelPlaintext { thread: Some(first), ..say(&format!("in the thread {canary}"), None) };
        bob.say("b4", &in_thread).await;
        let heard = alice.hear().await.1;
        assert_eq!((heard.thread, heard.body), (Some(first), format!("in the thread {canary}")));
        // A bookmark with a private note, in Alice's own notes channel: what it names, the excerpt
        // it keeps and the note are all inside the ciphertext.
        let notes = domain::spaces::notes_channel(&server.state, alice_user.id).await.unwrap();
        let bookmark = ChannelPlaintext {
            bookmark: Some(app::chat::Bookmarked {
                channel_id: general,
                message_id: first,
                author: format!("Alice {canary}"),
                excerpt: format!("hello {canary}"),
            }),
            ..ChannelPlaintext::message(notes, format!("my note {canary}"), None, 1)
        };
        alice.say("a5", &bookmark).await;
        let started = std::time::Instant::now();
        while domain::messages::history(&server.state, alice_user.id, notes, None, None).await.unwrap().messages.is_empty() {
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "the bookmark was not stored");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }

        // Not a trace of the plaintext anywhere the server keeps things.
        let needle_hex = hex(canary.as_bytes());
        if db.is_postgres() {
            let tables: Vec<String> = server.state.db
                .query_all_raw(sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Postgres, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String>("", "table_name").unwrap())
                .collect();
            assert!(tables.len() > 10, "{tables:?}");
            let count = |table: &str, needle: &str| {
                let sql = format!(r#"SELECT count(*) AS n FROM "{table}" t WHERE t::text LIKE '%{needle}%'"#);
                let db = server.state.db.clone();
                async move {
                    let row = db.query_one_raw(sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Postgres, sql)).await.unwrap().unwrap();
                    row.try_get::<i64>("", "n").unwrap()
                }
            };
            let mut control = 0;
            for table in &tables {
                assert_eq!(count(table, &canary).await + count(table, &needle_hex).await, 0, "plaintext found in {table}");
                control += count(table, "Club").await;
            }
            assert!(control > 0, "the search finds what the server does store (the community's name)");
        }
        let (mut files, mut control) = (0, false);
        let contains = |bytes: &[u8], needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        for entry in std::fs::read_dir(&db.dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                files += 1;
                let bytes = std::fs::read(&path).unwrap();
                assert!(!contains(&bytes, canary.as_bytes()), "plaintext in {}", path.display());
                control |= contains(&bytes, b"Club");
            }
        }
        assert!(files >= 1, "the data directory holds at least the signing key");
        assert!(db.is_postgres() || control, "the file search finds what SQLite does store (the community's name)");
        // The stored ciphertext is really there (the search above could not pass by accident).
        let stored = domain::messages::history(&server.state, bob_user.id, general, None, None).await.unwrap();
        assert_eq!((stored.messages.len(), stored.reactions.len()), (4, 2), "two messages, a poll, a forward; a reaction, a vote");
        assert_eq!(domain::scheduled::mine(&server.state, alice_user.id).await.unwrap().len(), 1);
        let thread = domain::messages::thread_history(&server.state, alice_user.id, first, None, None).await.unwrap();
        assert_eq!(thread.messages.len(), 1, "the thread reply is stored");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
