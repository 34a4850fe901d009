//! Two server processes on one PostgreSQL database and one NATS: a user on each, and messages,
//! edits, typing, presence and revocations cross between them. Needs `TEST_DATABASE_URL` and
//! `TEST_NATS_URL` (`cargo xtask test` sets the latter when NATS answers on 127.0.0.1:4222).

use crate::common::{self, Prepare};

use app::model::{
    CommunityCreationMode, RegistrationMode,
    gateway::{ClientFrame, Presence, ServerFrame},
    messages::{Ciphertext, EventKind},
};
use common::{
    TestDb,
    live::{Ws, cookies_for, send_frame},
    new_user,
};
use http_body_util::BodyExt;
use std::{path::Path, time::Duration};
use testkit::process::ServerProcess;

const BIN: &str = env!("CARGO_BIN_EXE_chatalot-server");

/// A server process on the shared database and NATS.
struct Node {
    process: ServerProcess,
}

impl Node {
    async fn start(db: &TestDb, nats: &str) -> Self {
        let env = [("DATABASE_URL", db.url.as_str()), ("NATS_URL", nats), ("REGISTRATION_MODE", "open")];
        let process = ServerProcess::start(Path::new(BIN), &db.dir, &env);
        let (_, health) = process.get("/healthz").unwrap();
        assert!(health.contains(r#""bus":"nats""#), "{health}");
        Self { process }
    }

    /// A plain HTTP request to this node; `None` if it does not answer.
    async fn request(&self, method: &str, path: &str, cookie: &str, form: &str) -> Option<(u16, String)> {
        use hyper_util::{client::legacy::Client, rt::TokioExecutor};
        let client = Client::builder(TokioExecutor::new()).build_http();
        let req = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.process.url))
            .header("cookie", cookie)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(form.to_owned()))
            .unwrap();
        let res = client.request(req).await.ok()?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(chatalot_pg, chatalot_nats)),
    ignore = "needs PostgreSQL and NATS: set TEST_DATABASE_URL and TEST_NATS_URL when building the tests"
)]
async fn two_nodes_share_events_over_nats() {
    let db = TestDb::postgres().await;
    let nats = std::env::var("TEST_NATS_URL").expect("TEST_NATS_URL (set when the tests were built)");
    // The test's own state: migrations, the shared signing key in DATA_DIR, and direct setup.
    let state = db.state(RegistrationMode::Open).await;
    let owner = new_user(&state.db, "owner").await;
    let bob = new_user(&state.db, "bob").await;
    let club = domain::spaces::create_community(&state, &owner, CommunityCreationMode::Open, "Club", "").await.unwrap();
    let invite = domain::spaces::create_invite(&state, owner.id, club, None, None).await.unwrap();
    domain::spaces::join(&state, bob.id, &invite.code).await.unwrap();
    let general = domain::spaces::my_spaces(&state, owner.id).await.unwrap().communities[0].groups[0].channels[0].id;

    let a = Node::start(&db, &nats).await;
    let b = Node::start(&db, &nats).await;
    common::with_device(&state, owner.id, "DEVICE1").await;
    let owner_cookie = cookies_for(&state, owner.id).await;
    let bob_cookie = cookies_for(&state, bob.id).await;
    let (mut bob_ws, _) = Ws::connect(b.process.addr, &bob_cookie, None, vec![]).await;
    let (mut owner_ws, channels) = Ws::connect(a.process.addr, &owner_cookie, None, vec![]).await;
    assert_eq!(channels, vec![general]);
    let presence_of = |who| move |f: ServerFrame| f.status_of(who);

    // Presence crosses: each sees the other online (node A learnt of bob over NATS).
    assert_eq!(owner_ws.recv_where(presence_of(bob.id)).await, Presence::Online);
    assert_eq!(bob_ws.recv_where(presence_of(owner.id)).await, Presence::Online);

    // A message sent on A reaches B; its edit too.
    owner_ws.send(&send_frame(general, "x1", b"\x01opaque")).await;
    let sent = owner_ws
        .recv_where(|f| match f {
            ServerFrame::Sent { message, .. } => Some(message),
            _ => None,
        })
        .await;
    let got = bob_ws
        .recv_where(|f| match f {
            ServerFrame::Event { event } => Some(event),
            _ => None,
        })
        .await;
    assert_eq!((got.seq, got.message.id), (1, sent.id));
    owner_ws.send(&ClientFrame::Edit { message_id: sent.id, ciphertext: Ciphertext(b"\x02edit".to_vec()) }).await;
    let edited = bob_ws
        .recv_where(|f| match f {
            ServerFrame::Event { event } => Some(event),
            _ => None,
        })
        .await;
    assert_eq!((edited.seq, edited.kind), (2, EventKind::Edited));

    // Typing and presence changes on B reach A.
    bob_ws.send(&ClientFrame::Typing { channel_id: general }).await;
    let typist = owner_ws
        .recv_where(|f| match f {
            ServerFrame::Typing { user_id, .. } => Some(user_id),
            _ => None,
        })
        .await;
    assert_eq!(typist, bob.id);
    bob_ws.send(&ClientFrame::SetPresence { status: Presence::Invisible }).await;
    assert_eq!(owner_ws.recv_where(presence_of(bob.id)).await, Presence::Offline);
    bob_ws.send(&ClientFrame::SetPresence { status: Presence::Online }).await;
    assert_eq!(owner_ws.recv_where(presence_of(bob.id)).await, Presence::Online);

    // Logging out on A closes bob's socket on B.
    let (status, _) = a.request("POST", "/api/v1/auth/logout", &bob_cookie, "").await.unwrap();
    assert!(status == 200 || status == 302, "{status}");
    assert_eq!(bob_ws.closed().await, (4001, "session ended".into()));
    // ...and B tells A that bob is gone (nothing else connects him).
    assert_eq!(owner_ws.recv_where(presence_of(bob.id)).await, Presence::Offline);
    let bob_cookie = cookies_for(&state, bob.id).await;
    let (mut bob_ws, _) = Ws::connect(b.process.addr, &bob_cookie, None, vec![]).await;
    assert_eq!(owner_ws.recv_where(presence_of(bob.id)).await, Presence::Online);

    // A kick on A stops bob's socket on B at once.
    let form = format!("community_id={club}&user_id={}", bob.id);
    let (status, body) = a.request("POST", "/api/v1/communities/kick", &owner_cookie, &form).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let removed = bob_ws
        .recv_where(|f| match f {
            ServerFrame::ChannelRemoved { channel_id } => Some(channel_id),
            _ => None,
        })
        .await;
    assert_eq!(removed, general);
    owner_ws.send(&send_frame(general, "x2", b"after the kick")).await;
    owner_ws.recv_where(|f| matches!(f, ServerFrame::Sent { .. }).then_some(())).await;
    let leaked: Vec<ServerFrame> = bob_ws
        .during(Duration::from_millis(800))
        .await
        .into_iter()
        .filter(|f| matches!(f, ServerFrame::Event { .. } | ServerFrame::Typing { .. }))
        .collect();
    assert!(leaked.is_empty(), "bob's socket on B received {leaked:?} after the kick on A");

    drop((a, b));
    db.drop().await;
}
