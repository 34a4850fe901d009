//! The `/ws` gateway over real sockets on both backends: fan-out after storage, acknowledgements,
//! idempotent retries, revocation of open sockets (kick, ban, leave, logout, password change,
//! suspension, token expiry), resume without gap or duplicate, typing, presence, read cursors,
//! to-device delivery, slow consumers, and bad input.

use crate::common::{self, Prepare, on_both_backends};

use app::model::{
    CommunityCreationMode, RegistrationMode,
    gateway::{ClientFrame, ErrorCode, MAX_FRAME_BYTES, Presence, ResumePoint, ServerFrame},
    messages::{Ciphertext, EventKind},
};
use common::{
    Client, TestDevice,
    live::{Got, TestServer, Ws, client_with, cookies_for, send_frame},
    new_user,
};
use domain::Core;
use domain::{keys_directory as keys, messages, spaces, tokens};
use entity::user;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const QUIET: Duration = Duration::from_millis(400);

/// owner and bob share the club (its general channel); eve is a stranger.
async fn people(core: &Core) -> (Uuid, Uuid, [user::Model; 3]) {
    let db = &core.db;
    let owner = new_user(db, "owner").await;
    let (bob, eve) = (new_user(db, "bob").await, new_user(db, "eve").await);
    let club = spaces::create_community(core, &owner, CommunityCreationMode::Open, "Club", "").await.unwrap();
    let invite = spaces::create_invite(core, owner.id, club, None, None).await.unwrap();
    spaces::join(core, bob.id, &invite.code).await.unwrap();
    let general = spaces::my_spaces(core, owner.id).await.unwrap().communities[0].groups[0].channels[0].id;
    // Messages come from registered devices: each has "DEVICE1" (sockets) and "D" (direct sends).
    for u in [&owner, &bob, &eve] {
        common::with_device(core, u.id, "DEVICE1").await;
        common::with_device(core, u.id, "D").await;
    }
    (club, general, [owner, bob, eve])
}

fn event_of(f: ServerFrame) -> Option<app::model::messages::ChannelEvent> {
    match f {
        ServerFrame::Event { event } => Some(event),
        _ => None,
    }
}

/// A signed-in HTTP client (server functions) over the same state as the server.
async fn client_for(server: &TestServer, user: Uuid) -> Client {
    client_with(&server.state, &cookies_for(&server.state, user).await)
}

on_both_backends! {
    async fn sends_are_limited_per_person_across_both_paths(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (_, general, [owner, bob, _]) = people(&server.state).await;
        let (mut ws, _) = Ws::connect(server.addr, &cookies_for(&server.state, bob.id).await, None, vec![]).await;
        // bob floods: 50 sends over his socket and 100 over HTTP, all at once.
        let limit = server.state.config.messages_per_minute as usize;
        let mut http = Vec::new();
        for i in 0..100 {
            let mut client = client_for(&server, bob.id).await;
            http.push(tokio::spawn(async move {
                let txn = format!("h{i}");
                let form = [("channel_id", general.to_string()), ("device", "D".into()), ("client_txn", txn), ("ciphertext_b64", "AQID".into())];
                let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                client.call("messages/send", &form).await.status
            }));
        }
        for i in 0..50 {
            ws.send(&send_frame(general, &format!("w{i}"), b"\x01flood")).await;
        }
        let (mut ws_sent, mut ws_limited) = (0, 0);
        while ws_sent + ws_limited < 50 {
            match ws.recv().await {
                ServerFrame::Sent { .. } => ws_sent += 1,
                ServerFrame::Error { code: ErrorCode::RateLimited, client_txn: Some(_), .. } => ws_limited += 1,
                ServerFrame::Error { code, message, .. } => panic!("a send failed with {code:?}: {message}"),
                _ => {}
            }
        }
        let (mut http_sent, mut http_limited) = (0, 0);
        for t in http {
            match t.await.unwrap() {
                200 => http_sent += 1,
                429 => http_limited += 1,
                status => panic!("a send over HTTP answered {status}"),
            }
        }
        assert_eq!(ws_sent + http_sent, limit, "sent: {ws_sent} by socket, {http_sent} by HTTP");
        assert_eq!(ws_limited + http_limited, 150 - limit);
        assert!(ws_sent > 0 && http_sent > 0, "both paths were used: {ws_sent} by socket, {http_sent} by HTTP");
        // The limit is bob's: the owner still sends.
        let sent = messages::send(&server.state, owner.id, messages::Send {
            channel_id: general, device: "D".into(), client_txn: "o1".into(), kind: app::model::messages::MessageKind::Text,
            reply_to: None, thread_id: None, ciphertext: Ciphertext(vec![1]),
        }).await;
        assert!(sent.is_ok(), "{:?}", sent.err());
    }

    async fn messages_are_stored_then_fanned_out_and_acknowledged(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (_, general, [owner, bob, eve]) = people(&server.state).await;
        let (mut o, channels) = Ws::connect(server.addr, &cookies_for(&server.state, owner.id).await, None, vec![]).await;
        assert_eq!(channels, vec![general], "subscriptions follow membership");
        let (mut b, _) = Ws::connect(server.addr, &cookies_for(&server.state, bob.id).await, None, vec![]).await;
        let (mut e, eve_channels) = Ws::connect(server.addr, &cookies_for(&server.state, eve.id).await, None, vec![]).await;
        assert!(eve_channels.is_empty());

        b.send(&send_frame(general, "t1", b"\x01opaque")).await;
        let sent = b.recv_where(|f| match f { ServerFrame::Sent { client_txn, message } => Some((client_txn, message)), _ => None }).await;
        assert_eq!(sent.0, "t1");
        // Acknowledged means stored.
        let stored = messages::history(&server.state, bob.id, general, None, None).await.unwrap();
        assert_eq!(stored.messages[0].id, sent.1.id);
        let got = o.recv_where(event_of).await;
        assert_eq!((got.seq, got.kind, got.message.ciphertext.0.as_slice()), (1, EventKind::Created, &b"\x01opaque"[..]));

        // A retry returns the original and fans out nothing new.
        b.send(&send_frame(general, "t1", b"\x01opaque")).await;
        let retry = b.recv_where(|f| match f { ServerFrame::Sent { message, .. } => Some(message), _ => None }).await;
        assert_eq!(retry.id, sent.1.id);
        assert!(o.during(QUIET).await.iter().all(|f| !matches!(f, ServerFrame::Event { .. })), "no duplicate event");

        // Edits and deletes travel as events with their own sequence numbers.
        b.send(&ClientFrame::Edit { message_id: sent.1.id, ciphertext: Ciphertext(b"\x02edited".to_vec()) }).await;
        let edited = o.recv_where(event_of).await;
        assert_eq!((edited.seq, edited.kind), (2, EventKind::Edited));
        o.send(&ClientFrame::Edit { message_id: sent.1.id, ciphertext: Ciphertext(b"x".to_vec()) }).await;
        let refused = o.recv_where(|f| match f { ServerFrame::Error { code, .. } => Some(code), _ => None }).await;
        assert_eq!(refused, ErrorCode::Forbidden, "only the author edits");
        o.send(&ClientFrame::Delete { message_id: sent.1.id }).await; // the owner moderates
        let deleted = b.recv_where(|f| event_of(f).filter(|e| e.kind == EventKind::Deleted)).await;
        assert_eq!(deleted.seq, 3);

        // A channel the user is not in: an error naming the send, nothing stored, nothing learned.
        e.send(&send_frame(general, "sneak", b"x")).await;
        let (code, txn) = e.recv_where(|f| match f { ServerFrame::Error { code, client_txn, .. } => Some((code, client_txn)), _ => None }).await;
        assert_eq!((code, txn.as_deref()), (ErrorCode::NotFound, Some("sneak")));
        e.send(&ClientFrame::Typing { channel_id: general }).await;
        assert!(matches!(e.recv().await, ServerFrame::Error { code: ErrorCode::NotFound, .. }));
        assert!(e.during(QUIET).await.is_empty(), "the stranger saw nothing of the club");

        // Server functions fan out too.
        let mut http = client_for(&server, owner.id).await;
        let reply = http.call("messages/send", &[("channel_id", &general.to_string()), ("device", "D"), ("client_txn", "h1"), ("ciphertext_b64", "AQID")]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(b.recv_where(event_of).await.seq, 4);
    }

    async fn bad_frames_get_errors_and_never_hurt_other_sockets(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (_, general, [owner, bob, _]) = people(&server.state).await;
        let (mut o, _) = Ws::connect(server.addr, &cookies_for(&server.state, owner.id).await, None, vec![]).await;
        let (mut b, _) = Ws::connect(server.addr, &cookies_for(&server.state, bob.id).await, None, vec![]).await;
        let code = |f: ServerFrame| match f { ServerFrame::Error { code, .. } => Some(code), _ => None };

        for junk in ["not json", r#"{"type":"launch_missiles"}"#, r#"{"type":"send","channel_id":"nope"}"#, r#"{"type":"typing"}"#, "{\"type\":\"ping\",\"nonce\":"] {
            b.raw(Message::text(junk)).await;
            assert_eq!(b.recv_where(code).await, ErrorCode::BadFrame, "{junk}");
        }
        b.raw(Message::binary(vec![0u8, 1, 2])).await;
        assert_eq!(b.recv_where(code).await, ErrorCode::BadFrame);
        let big = format!(r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
        b.raw(Message::text(big)).await;
        assert_eq!(b.recv_where(code).await, ErrorCode::TooLarge);
        b.send(&ClientFrame::Hello { protocol: app::model::gateway::PROTOCOL_VERSION, device: None, resume: vec![] }).await;
        assert_eq!(b.recv_where(code).await, ErrorCode::BadFrame, "hello twice");
        b.send(&ClientFrame::SetPresence { status: Presence::Offline }).await;
        assert_eq!(b.recv_where(code).await, ErrorCode::Invalid);
        b.send(&send_frame(general, "x", &vec![1u8; 64 * 1024 + 1])).await;
        assert_eq!(b.recv_where(code).await, ErrorCode::Invalid, "ciphertext over 64 KiB");
        // Still serving after all that.
        b.send(&ClientFrame::Ping { nonce: 7 }).await;
        assert_eq!(b.recv_where(|f| match f { ServerFrame::Pong { nonce } => Some(nonce), _ => None }).await, 7);

        // Flooding is rate limited, with the refused send named so the client can retry it.
        let mut limited = None;
        for i in 0..200 {
            b.send(&ClientFrame::Ping { nonce: i }).await;
        }
        b.send(&send_frame(general, "flood", b"x")).await;
        for _ in 0..202 {
            if let ServerFrame::Error { code: ErrorCode::RateLimited, client_txn, .. } = b.recv().await {
                limited = Some(client_txn);
                break;
            }
        }
        assert!(limited.is_some(), "a flood is rate limited");

        // A message above the socket limit closes that socket with a reason; others are unaffected.
        b.raw(Message::text("x".repeat(3 * MAX_FRAME_BYTES))).await;
        let (close, _) = b.closed().await;
        assert!(close == 1009 || close == 1006, "{close}");
        o.send(&send_frame(general, "after", b"still here")).await;
        let txn = o.recv_where(|f| match f { ServerFrame::Sent { client_txn, .. } => Some(client_txn), _ => None }).await;
        assert_eq!(txn, "after", "the other socket is unaffected");

        // Wrong protocol version, a first frame that is not hello, an unknown device.
        let cookie = cookies_for(&server.state, bob.id).await;
        let mut old = Ws::open(server.addr, &[("cookie", &cookie)]).await.unwrap();
        old.send(&ClientFrame::Hello { protocol: 99, device: None, resume: vec![] }).await;
        assert!(matches!(old.recv().await, ServerFrame::Error { code: ErrorCode::UnsupportedProtocol, .. }));
        assert_eq!(old.closed().await.0, 4003);
        let mut rude = Ws::open(server.addr, &[("cookie", &cookie)]).await.unwrap();
        rude.send(&ClientFrame::Ping { nonce: 1 }).await;
        assert!(matches!(rude.recv().await, ServerFrame::Error { code: ErrorCode::BadFrame, .. }));
        assert_eq!(rude.closed().await.0, 4004);
        let mut spoof = Ws::open(server.addr, &[("cookie", &cookie)]).await.unwrap();
        spoof.send(&ClientFrame::Hello { protocol: app::model::gateway::PROTOCOL_VERSION, device: Some("NOT-MINE".into()), resume: vec![] }).await;
        assert!(matches!(spoof.recv().await, ServerFrame::Error { code: ErrorCode::NotFound, .. }));
        assert_eq!(spoof.closed().await.0, 4004);

        // No session, or another site's page: refused before upgrading.
        assert!(Ws::open(server.addr, &[]).await.is_err());
        assert!(Ws::open(server.addr, &[("cookie", "chatalot_at=forged")]).await.is_err());
        assert!(Ws::open(server.addr, &[("cookie", &cookie), ("origin", "https://evil.example")]).await.is_err());
    }

    async fn a_kicked_users_open_socket_receives_nothing_after_the_kick(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (club, general, [owner, bob, eve]) = people(&server.state).await;
        let (mut o, _) = Ws::connect(server.addr, &cookies_for(&server.state, owner.id).await, None, vec![]).await;
        let (mut b, _) = Ws::connect(server.addr, &cookies_for(&server.state, bob.id).await, None, vec![]).await;
        o.send(&send_frame(general, "before", b"x")).await;
        assert_eq!(b.recv_where(event_of).await.seq, 1);

        let mut http = client_for(&server, owner.id).await;
        let reply = http.call("communities/kick", &[("community_id", &club.to_string()), ("user_id", &bob.id.to_string())]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let removed = b.recv_where(|f| match f { ServerFrame::ChannelRemoved { channel_id } => Some(channel_id), _ => None }).await;
        assert_eq!(removed, general);
        for i in 0..5 {
            o.send(&send_frame(general, &format!("after{i}"), b"secret")).await;
        }
        o.send(&ClientFrame::Typing { channel_id: general }).await;
        let leaked = b.during(Duration::from_millis(800)).await;
        assert!(leaked.is_empty(), "the kicked socket received {leaked:?}");
        // The socket itself lives on (bob may be in other spaces) but cannot touch the channel.
        b.send(&send_frame(general, "back", b"x")).await;
        assert!(matches!(b.recv().await, ServerFrame::Error { code: ErrorCode::NotFound, .. }));

        // Joining again (a new invite) subscribes the open socket; a ban removes it again.
        let invite = spaces::create_invite(&server.state, owner.id, club, None, None).await.unwrap();
        let mut bob_http = client_for(&server, bob.id).await;
        assert_eq!(bob_http.call("communities/join", &[("code", &invite.code)]).await.status, 200);
        let added = b.recv_where(|f| match f { ServerFrame::ChannelAdded { channel_id } => Some(channel_id), _ => None }).await;
        assert_eq!(added, general);
        let reply = http.call("communities/ban", &[("community_id", &club.to_string()), ("user_id", &bob.id.to_string())]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        b.recv_where(|f| matches!(f, ServerFrame::ChannelRemoved { .. }).then_some(())).await;
        o.send(&send_frame(general, "after-ban", b"secret")).await;
        assert!(b.during(QUIET).await.is_empty());

        // Leaving works the same way, for the one who leaves.
        spaces::join(&server.state, eve.id, &invite.code).await.unwrap();
        let (mut e, channels) = Ws::connect(server.addr, &cookies_for(&server.state, eve.id).await, None, vec![]).await;
        assert_eq!(channels, vec![general]);
        let mut eve_http = client_for(&server, eve.id).await;
        assert_eq!(eve_http.call("communities/leave", &[("community_id", &club.to_string())]).await.status, 200);
        e.recv_where(|f| matches!(f, ServerFrame::ChannelRemoved { .. }).then_some(())).await;
        o.send(&send_frame(general, "after-leave", b"secret")).await;
        assert!(e.during(QUIET).await.is_empty());

        // A new channel reaches members' open sockets.
        let group = spaces::my_spaces(&server.state, owner.id).await.unwrap().communities[0].groups[0].id;
        let reply = http.call("channels/create", &[("group_id", &group.to_string()), ("name", "news")]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        o.recv_where(|f| matches!(f, ServerFrame::ChannelAdded { .. }).then_some(())).await;
    }

    // Member panels follow the community: its members' sockets hear of every join, leave, kick,
    // ban, role change and addition to a private group (that something changed, not what); a stranger's socket and the
    // socket of someone removed hear nothing of it.
    async fn members_hear_when_the_member_list_changes(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (club, _, [owner, bob, eve]) = people(&server.state).await;
        let carol = new_user(&server.state.db, "carol").await;
        let (mut o, _) = Ws::connect(server.addr, &cookies_for(&server.state, owner.id).await, None, vec![]).await;
        let (mut b, _) = Ws::connect(server.addr, &cookies_for(&server.state, bob.id).await, None, vec![]).await;
        let (mut e, _) = Ws::connect(server.addr, &cookies_for(&server.state, eve.id).await, None, vec![]).await;
        let changed = |f: ServerFrame| match f {
            ServerFrame::MembersChanged { community_id } => Some(community_id),
            _ => None,
        };
        let mut owner_http = client_for(&server, owner.id).await;
        let club_id = club.to_string();

        // Carol joins: both members hear it; eve, a stranger, does not.
        let invite = spaces::create_invite(&server.state, owner.id, club, None, None).await.unwrap();
        let mut carol_http = client_for(&server, carol.id).await;
        assert_eq!(carol_http.call("communities/join", &[("code", &invite.code)]).await.status, 200);
        assert_eq!(o.recv_where(changed).await, club);
        assert_eq!(b.recv_where(changed).await, club);
        // A new role.
        let reply = owner_http
            .call("communities/set_role", &[("community_id", &club_id), ("user_id", &carol.id.to_string()), ("role", "moderator")])
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(o.recv_where(changed).await, club);
        assert_eq!(b.recv_where(changed).await, club);
        // Carol is added to a private group: its member list changed too.
        let inner = spaces::create_group(&server.state, owner.id, club, "inner", true).await.unwrap();
        spaces::add_group_member(&server.state, owner.id, inner.id, carol.id).await.unwrap();
        assert_eq!(o.recv_where(changed).await, club);
        assert_eq!(b.recv_where(changed).await, club);
        // Bob is kicked: the owner hears it; bob's socket no longer hears of the club.
        let reply = owner_http.call("communities/kick", &[("community_id", &club_id), ("user_id", &bob.id.to_string())]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(o.recv_where(changed).await, club);
        b.recv_where(|f| matches!(f, ServerFrame::ChannelRemoved { .. }).then_some(())).await;
        // Carol leaves, then is banned (a stranger by then).
        assert_eq!(carol_http.call("communities/leave", &[("community_id", &club_id)]).await.status, 200);
        assert_eq!(o.recv_where(changed).await, club);
        let reply = owner_http.call("communities/ban", &[("community_id", &club_id), ("user_id", &carol.id.to_string())]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(o.recv_where(changed).await, club);

        let heard = |frames: Vec<ServerFrame>| frames.into_iter().filter_map(changed).collect::<Vec<_>>();
        assert_eq!(heard(b.during(QUIET).await), Vec::<Uuid>::new(), "the kicked socket heard of the club");
        assert_eq!(heard(e.during(QUIET).await), Vec::<Uuid>::new(), "a stranger's socket heard of the club");
    }

    async fn sessions_that_end_close_their_sockets(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (_, _, [owner, bob, eve]) = people(&server.state).await;

        // Logout closes that session's sockets, not the user's other sessions.
        let laptop = cookies_for(&server.state, bob.id).await;
        let (mut on_laptop, _) = Ws::connect(server.addr, &laptop, None, vec![]).await;
        let (mut on_phone, _) = Ws::connect(server.addr, &cookies_for(&server.state, bob.id).await, None, vec![]).await;
        let mut http = client_with(&server.state, &laptop);
        http.call("auth/logout", &[]).await;
        assert_eq!(on_laptop.closed().await, (4001, "session ended".into()));
        assert!(on_phone.during(QUIET).await.iter().all(|f| !matches!(f, ServerFrame::ChannelRemoved { .. })));
        // The logged-out session's access token (still unexpired) cannot open a socket.
        assert!(Ws::open(server.addr, &[("cookie", &laptop)]).await.is_err());

        // Suspension by the instance admin closes every socket and refuses new ones.
        let mut admin = client_for(&server, owner.id).await;
        sea_orm::EntityTrait::update(entity::user::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(owner.id),
            is_admin: sea_orm::ActiveValue::Set(true),
            ..Default::default()
        })
        .exec(&server.state.db)
        .await
        .unwrap();
        let reply = admin.call("admin/suspend", &[("user_id", &bob.id.to_string()), ("suspended", "true")]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(on_phone.closed().await.0, 4001);
        let fresh = cookies_for(&server.state, bob.id).await;
        assert!(Ws::open(server.addr, &[("cookie", &fresh)]).await.is_err(), "a suspended user cannot connect");
        let mut eve_admin = client_for(&server, eve.id).await;
        let reply = eve_admin.call("admin/suspend", &[("user_id", &owner.id.to_string()), ("suspended", "true")]).await;
        assert_eq!(reply.status, 403, "only admins suspend");

        // A password change ends every session, sockets included.
        let hash = server.state.passwords.hash("correct horse battery".into()).await.unwrap();
        sea_orm::EntityTrait::update(entity::user::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(eve.id),
            password_hash: sea_orm::ActiveValue::Set(hash),
            ..Default::default()
        })
        .exec(&server.state.db)
        .await
        .unwrap();
        let (mut eve_ws, _) = Ws::connect(server.addr, &cookies_for(&server.state, eve.id).await, None, vec![]).await;
        let wrong = eve_admin.call("auth/change_password", &[("current_password", "wrong"), ("new_password", "a new long password")]).await;
        assert_eq!(wrong.status, 422);
        eve_ws.during(QUIET).await; // panics if the socket closes: a wrong current password changes nothing
        let ok = eve_admin.call("auth/change_password", &[("current_password", "correct horse battery"), ("new_password", "a new long password")]).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert_eq!(eve_ws.closed().await.0, 4001);

        // A socket outlives the access token that opened it (Bearer, as desktop clients send it):
        // no reconnect, and no presence storm, every 15 minutes. Its session's end still closes it.
        let family = {
            let cookie = cookies_for(&server.state, owner.id).await;
            let at = cookie.split("; ").find_map(|c| c.strip_prefix("chatalot_at=")).unwrap().to_owned();
            tokens::verify_access(&server.state.keys, &at).unwrap().sid
        };
        // Expired 3.5 s ago: still inside the 5 s leeway for the upgrade, outside it 1.5 s later.
        let soon = chrono::Utc::now() - tokens::ACCESS_TTL - chrono::Duration::milliseconds(3500);
        let token = tokens::issue_access(&server.state.keys, owner.id, family, soon).unwrap();
        let mut lasting = Ws::open(server.addr, &[("authorization", &format!("Bearer {token}"))]).await.unwrap();
        lasting.hello(None, vec![]).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(tokens::verify_access(&server.state.keys, &token).is_none(), "the token has expired");
        lasting.send(&ClientFrame::Ping { nonce: 7 }).await;
        assert_eq!(lasting.recv_where(|f| match f { ServerFrame::Pong { nonce } => Some(nonce), _ => None }).await, 7, "still open and answering");
        let started = std::time::Instant::now();
        domain::session::logout(&server.state, domain::session::Session { user_id: owner.id, session_id: family }).await.unwrap();
        assert_eq!(lasting.closed().await, (4001, "session ended".into()));
        assert!(started.elapsed() < Duration::from_secs(1), "revocation took {:?}", started.elapsed());
    }

    async fn a_reconnecting_client_gets_exactly_what_it_missed(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (_, general, [owner, bob, _]) = people(&server.state).await;
        let bob_cookie = cookies_for(&server.state, bob.id).await;
        let (mut b, _) = Ws::connect(server.addr, &bob_cookie, None, vec![]).await;
        let (mut o, _) = Ws::connect(server.addr, &cookies_for(&server.state, owner.id).await, None, vec![]).await;

        // The owner keeps sending while bob's socket drops and comes back.
        const TOTAL: i64 = 60;
        let sender = tokio::spawn(async move {
            for i in 1..=TOTAL {
                o.send(&send_frame(general, &format!("m{i}"), format!("c{i}").as_bytes())).await;
                o.recv_where(|f| matches!(f, ServerFrame::Sent { .. }).then_some(())).await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            o
        });
        let mut seen: Vec<i64> = vec![];
        while seen.len() < 15 {
            seen.push(b.recv_where(event_of).await.seq);
        }
        drop(b); // mid-stream, without a goodbye
        tokio::time::sleep(Duration::from_millis(200)).await;
        let last = *seen.last().unwrap();
        let (mut b, _) = Ws::connect(server.addr, &bob_cookie, None, vec![ResumePoint { channel_id: general, last_seq: last }]).await;
        while seen.last() != Some(&TOTAL) {
            seen.push(b.recv_where(event_of).await.seq);
        }
        sender.await.unwrap();
        assert!(b.during(QUIET).await.iter().all(|f| !matches!(f, ServerFrame::Event { .. })), "nothing after the last");
        seen.sort_unstable();
        assert_eq!(seen, (1..=TOTAL).collect::<Vec<_>>(), "no gap, no duplicate");

        // Resuming a channel one can no longer read says so instead of replaying it.
        let stranger_channel = spaces::create_community(&server.state, &owner, CommunityCreationMode::Open, "Other", "").await.unwrap();
        let other = spaces::my_spaces(&server.state, owner.id).await.unwrap().communities.into_iter().find(|c| c.id == stranger_channel).unwrap().groups[0].channels[0].id;
        let (mut b2, _) = Ws::connect(server.addr, &bob_cookie, None, vec![ResumePoint { channel_id: other, last_seq: 0 }]).await;
        let gone = b2.recv_where(|f| match f { ServerFrame::ChannelRemoved { channel_id } => Some(channel_id), _ => None }).await;
        assert_eq!(gone, other);
    }

    async fn a_stolen_refresh_token_closes_the_sessions_sockets(db: TestDb) {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (_, _, [_, bob, _]) = people(&server.state).await;
        let cookie = cookies_for(&server.state, bob.id).await;
        let raw = cookie.split("chatalot_rt=").nth(1).unwrap().to_owned();
        let (mut ws, _) = Ws::connect(server.addr, &cookie, None, vec![]).await;
        // The token is used (rotated) by one holder; long after, the other holder presents it again.
        let now = chrono::Utc::now();
        assert!(matches!(domain::session::refresh(&server.state.db, &server.state.keys, &raw, now).await.unwrap(), domain::session::Refresh::Rotated { .. }));
        entity::refresh_token::Entity::update_many()
            .col_expr(entity::refresh_token::Column::RotatedAt, Expr::value(now - chrono::Duration::minutes(5)))
            .filter(entity::refresh_token::Column::TokenHash.eq(tokens::sha256_hex(&raw)))
            .exec(&server.state.db)
            .await
            .unwrap();
        let reused = domain::session::resolve(&server.state, None, Some(&raw)).await.unwrap();
        assert!(reused.session.is_none() && reused.forget);
        // The session is over everywhere: its open socket closes.
        assert_eq!(ws.closed().await.0, 4001, "the socket of a stolen session stayed open");
    }

    async fn one_account_cannot_hold_thousands_of_sockets(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (_, _, [_, bob, _]) = people(&server.state).await;
        let cookie = cookies_for(&server.state, bob.id).await;
        // 40 at once, racing: the cap holds under concurrency.
        let mut tries = Vec::new();
        for _ in 0..40 {
            let (addr, cookie) = (server.addr, cookie.clone());
            tries.push(tokio::spawn(async move {
                let mut ws = Ws::open(addr, &[("cookie", &cookie)]).await.unwrap();
                ws.send(&ClientFrame::Hello { protocol: app::model::gateway::PROTOCOL_VERSION, device: None, resume: vec![] }).await;
                let ready = matches!(ws.next(common::live::PATIENCE).await, Some(Got::Frame(ServerFrame::Ready { .. })));
                (ready, ws)
            }));
        }
        let mut open = Vec::new();
        let mut refused = 0;
        for t in tries {
            let (ready, ws) = t.await.unwrap();
            if ready { open.push(ws) } else { refused += 1 }
        }
        assert_eq!((open.len(), refused), (32, 8), "sockets per account are capped at 32");
        // Closing one makes room for another (once the server has seen it go).
        drop(open.pop());
        let deadline = tokio::time::Instant::now() + common::live::PATIENCE;
        while Ws::try_connect(server.addr, &cookie, None, vec![]).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "no room after a socket closed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn invisible_people_do_not_show_typing(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (_, general, [owner, bob, _]) = people(&server.state).await;
        let dm = spaces::open_dm(&server.state, owner.id, bob.id).await.unwrap().id;
        let (mut b, _) = Ws::connect(server.addr, &cookies_for(&server.state, bob.id).await, None, vec![]).await;
        let (mut o, _) = Ws::connect(server.addr, &cookies_for(&server.state, owner.id).await, None, vec![]).await;
        let typing_of = |frames: Vec<ServerFrame>, channel: Uuid| {
            frames.into_iter().any(|f| matches!(f, ServerFrame::Typing { user_id, channel_id, .. } if user_id == owner.id && channel_id == channel))
        };
        // Visible: bob sees the owner typing.
        o.send(&ClientFrame::Typing { channel_id: general }).await;
        assert!(typing_of(b.during(Duration::from_millis(600)).await, general), "a visible person's typing shows");
        // Invisible: nothing, anywhere (a fresh channel, so the socket's throttle is not what hides it).
        o.send(&ClientFrame::SetPresence { status: Presence::Invisible }).await;
        o.send(&ClientFrame::Typing { channel_id: dm }).await;
        assert!(!typing_of(b.during(Duration::from_millis(800)).await, dm), "an invisible person's typing reached others");
    }

    async fn typing_presence_and_read_cursors(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (_, general, [owner, bob, eve]) = people(&server.state).await;
        let (mut e, _) = Ws::connect(server.addr, &cookies_for(&server.state, eve.id).await, None, vec![]).await;
        let (mut b, _) = Ws::connect(server.addr, &cookies_for(&server.state, bob.id).await, None, vec![]).await;
        let owner_cookie = cookies_for(&server.state, owner.id).await;
        let (mut o, _) = Ws::connect(server.addr, &owner_cookie, None, vec![]).await;
        let presence_of = |who: Uuid| move |f: ServerFrame| f.status_of(who);
        assert_eq!(b.recv_where(presence_of(owner.id)).await, Presence::Online, "community mates see each other");
        // The owner's fresh socket was told bob is online (snapshot).
        assert_eq!(o.recv_where(presence_of(bob.id)).await, Presence::Online);

        // Typing: to the channel's other members, throttled, with an expiry.
        b.send(&ClientFrame::Typing { channel_id: general }).await;
        b.send(&ClientFrame::Typing { channel_id: general }).await;
        let typing: Vec<ServerFrame> = o.during(Duration::from_millis(600)).await.into_iter().filter(|f| matches!(f, ServerFrame::Typing { .. })).collect();
        assert!(matches!(typing.as_slice(), [ServerFrame::Typing { user_id, expires_in_ms, .. }] if *user_id == bob.id && *expires_in_ms > 0), "{typing:?}");

        // Invisible looks offline to others, in every event; the user sees their own choice.
        o.send(&ClientFrame::SetPresence { status: Presence::Dnd }).await;
        assert_eq!(b.recv_where(presence_of(owner.id)).await, Presence::Dnd);
        o.send(&ClientFrame::SetPresence { status: Presence::Invisible }).await;
        assert_eq!(b.recv_where(presence_of(owner.id)).await, Presence::Offline);
        let own = presence_of(owner.id);
        o.recv_where(|f| own(f).filter(|s| *s == Presence::Invisible)).await;
        drop(o);
        assert!(b.during(QUIET).await.iter().all(|f| f.status_of(owner.id).is_none()), "invisible → gone is no change");
        let (mut o, _) = Ws::connect(server.addr, &owner_cookie, None, vec![]).await;
        assert!(b.during(QUIET).await.iter().all(|f| f.status_of(owner.id).is_none()), "an invisible user never flashes online");
        o.send(&ClientFrame::SetPresence { status: Presence::Online }).await;
        assert_eq!(b.recv_where(presence_of(owner.id)).await, Presence::Online);
        drop(o);
        assert_eq!(b.recv_where(presence_of(owner.id)).await, Presence::Offline, "the last socket closing is offline");
        let eve_saw: Vec<ServerFrame> = e.during(QUIET).await;
        assert!(eve_saw.iter().all(|f| f.presences().is_empty() && f.status_of(owner.id).is_none() && f.status_of(bob.id).is_none()), "no shared community, no presence: {eve_saw:?}");

        // Read cursors move on the user's other sockets; unread counts come with ready.
        for i in 0..3 {
            messages::send(&server.state, owner.id, messages::Send { channel_id: general, device: "D".into(), client_txn: format!("r{i}"), kind: app::model::messages::MessageKind::Text, reply_to: None, thread_id: None, ciphertext: Ciphertext(vec![1]) }).await.unwrap();
        }
        let bob_cookie = cookies_for(&server.state, bob.id).await;
        let mut b2 = Ws::open(server.addr, &[("cookie", &bob_cookie)]).await.unwrap();
        b2.send(&ClientFrame::Hello { protocol: app::model::gateway::PROTOCOL_VERSION, device: None, resume: vec![] }).await;
        let unread = match b2.recv().await { ServerFrame::Ready { unread, .. } => unread, other => panic!("{other:?}") };
        assert_eq!(unread.iter().find(|u| u.channel_id == general).map(|u| u.count), Some(3));
        b.send(&ClientFrame::MarkRead { channel_id: general, seq: 2 }).await;
        let read = b2.recv_where(|f| match f { ServerFrame::Read { channel_id, seq } => Some((channel_id, seq)), _ => None }).await;
        assert_eq!(read, (general, 2));
    }

    async fn to_device_messages_arrive_live_or_on_reconnect(db: TestDb) {
        let server = TestServer::start(db.state(RegistrationMode::Open).await).await;
        let (_, _, [owner, bob, _]) = people(&server.state).await;
        let (phone, laptop) = (TestDevice::new(bob.id, "PHONE"), TestDevice::new(owner.id, "LAPTOP"));
        keys::register_device(&server.state, bob.id, phone.keys()).await.unwrap();
        keys::register_device(&server.state, owner.id, laptop.keys()).await.unwrap();
        let bob_cookie = cookies_for(&server.state, bob.id).await;
        let (mut b, _) = Ws::connect(server.addr, &bob_cookie, Some("PHONE"), vec![]).await;
        let (mut other_socket, _) = Ws::connect(server.addr, &bob_cookie, None, vec![]).await;
        let mut owner_http = client_for(&server, owner.id).await;
        let send = |payload: &str| serde_json::json!({
            "device_id": "LAPTOP",
            "messages": [{"recipient_user": bob.id, "recipient_device": "PHONE", "payload": payload}]
        }).to_string();
        let reply = owner_http.call_json("to_device/send", &send("AQID")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let live = b.recv_where(|f| match f { ServerFrame::ToDevice { message } => Some(message), _ => None }).await;
        assert_eq!((live.sender_user, live.payload.0.as_slice()), (owner.id, &[1u8, 2, 3][..]));
        assert!(other_socket.during(QUIET).await.iter().all(|f| !matches!(f, ServerFrame::ToDevice { .. })), "only the addressed device");

        // Not acknowledged: it comes again on reconnect, with what arrived meanwhile.
        drop(b);
        assert_eq!(owner_http.call_json("to_device/send", &send("BAUG")).await.status, 200);
        let (mut b, _) = Ws::connect(server.addr, &bob_cookie, Some("PHONE"), vec![]).await;
        let first = b.recv_where(|f| match f { ServerFrame::ToDevice { message } => Some(message), _ => None }).await;
        let second = b.recv_where(|f| match f { ServerFrame::ToDevice { message } => Some(message), _ => None }).await;
        assert_eq!((first.id, second.payload.0.as_slice()), (live.id, &[4u8, 5, 6][..]));

        // Removing a device tells everyone who shares a channel.
        let reply = owner_http.call_json("devices/remove", &serde_json::json!({"device_id": "LAPTOP"}).to_string()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let removed = b.recv_where(|f| match f { ServerFrame::DeviceRemoved { user_id, device_id } => Some((user_id, device_id)), _ => None }).await;
        assert_eq!(removed, (owner.id, "LAPTOP".to_owned()));
    }

    async fn a_client_that_cannot_keep_up_is_told_to_resync(db: TestDb) {
        // The owner sends more than a person may per minute: this instance allows it.
        let mut state = db.state(RegistrationMode::Open).await;
        state.config = std::sync::Arc::new(domain::config::Config { messages_per_minute: 1000, ..(*state.config).clone() });
        let server = TestServer::start(state).await;
        let (_, general, [owner, bob, _]) = people(&server.state).await;
        let (mut b, _) = Ws::connect(server.addr, &cookies_for(&server.state, bob.id).await, None, vec![]).await;
        // Bob stops reading. Large events fill the socket buffers, then bob's bounded queue.
        const TOTAL: i64 = 420;
        for i in 0..TOTAL {
            messages::send(&server.state, owner.id, messages::Send { channel_id: general, device: "D".into(), client_txn: format!("f{i}"), kind: app::model::messages::MessageKind::Text, reply_to: None, thread_id: None, ciphertext: Ciphertext(vec![7; 48 * 1024]) }).await.unwrap();
        }
        let mut given = vec![];
        let after_seq = loop {
            match b.next(common::live::PATIENCE).await {
                Some(Got::Frame(ServerFrame::Event { event })) => given.push(event.seq),
                Some(Got::Frame(ServerFrame::Resync { channel_id, after_seq })) => {
                    assert_eq!(channel_id, general);
                    break after_seq;
                }
                Some(Got::Frame(_)) => {}
                other => panic!("expected events then a resync, got {other:?} after {} events", given.len()),
            }
        };
        assert!((given.len() as i64) < TOTAL, "the queue is bounded: {} of {TOTAL} were queued", given.len());
        assert_eq!(given, (1..=after_seq).collect::<Vec<_>>(), "events up to the resync point, in order");
        // What the resync point leaves out is in the database, and live delivery goes on.
        let missed = messages::events_since(&server.state, bob.id, general, after_seq, Some(1000)).await.unwrap();
        assert_eq!(missed.len() as i64, TOTAL - after_seq);
        messages::send(&server.state, owner.id, messages::Send { channel_id: general, device: "D".into(), client_txn: "later".into(), kind: app::model::messages::MessageKind::Text, reply_to: None, thread_id: None, ciphertext: Ciphertext(vec![1]) }).await.unwrap();
        assert_eq!(b.recv_where(event_of).await.seq, TOTAL + 1);
    }
}
