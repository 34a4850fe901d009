//! Server functions × every role, through the real router, on both backends.
//! Outsiders get 404 (nothing exists for them), members without the right get 403.

use crate::common::{self, Prepare, on_both_backends};

use app::model::{
    CommunityCreationMode, RegistrationMode,
    gateway::{ClientFrame, ErrorCode, Presence, ServerFrame},
    messages::{Ciphertext, MessageKind},
    spaces::CommunityRole,
};
use common::{
    Client, TestDb, TestDevice,
    live::{TestServer, Ws},
};
use domain::{Core, spaces};
use entity::user;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Anonymous,
    /// The instance owner, not a member of the community.
    Root,
    Owner,
    Admin,
    Moderator,
    Member,
    Stranger,
    Banned,
}
use Role::*;

pub(crate) const ROLES: [Role; 8] = [Anonymous, Root, Owner, Admin, Moderator, Member, Stranger, Banned];

/// A community with one user in each role, a private group that only the owner and the moderator
/// are in, a DM between the owner and the member, and spare members to act on.
pub(crate) struct World {
    pub(crate) state: Core,
    pub(crate) users: Vec<(Role, user::Model)>,
    pub(crate) community: Uuid,
    pub(crate) general_group: Uuid,
    pub(crate) general_channel: Uuid,
    pub(crate) private_group: Uuid,
    pub(crate) private_channel: Uuid,
    pub(crate) dm: Uuid,
    pub(crate) victim: Uuid,
    pub(crate) banned: Uuid,
    /// A message the member sent in the general channel.
    pub(crate) message: Uuid,
    /// A message the member sent in the DM.
    pub(crate) dm_message: Uuid,
    /// A message the owner sent in the private channel.
    pub(crate) private_message: Uuid,
    /// The member's user id (their device `PHONE` has a fallback key).
    pub(crate) member: Uuid,
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn new_user(state: &Core, tag: &str) -> user::Model {
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    common::new_user(&state.db, &format!("{tag}{n}")).await
}

pub(crate) async fn world(state: &Core, root: &user::Model) -> World {
    let core = state;
    let owner = new_user(state, "owner").await;
    let community = spaces::create_community(core, &owner, CommunityCreationMode::Open, "Club", "").await.unwrap();
    let invite = spaces::create_invite(core, owner.id, community, None, None).await.unwrap();
    let mut users = vec![(Root, root.clone()), (Owner, owner.clone())];
    for (role, tag) in
        [(Admin, "admin"), (Moderator, "mod"), (Member, "member"), (Stranger, "stranger"), (Banned, "banned")]
    {
        let u = new_user(state, tag).await;
        if role != Stranger {
            spaces::join(core, u.id, &invite.code).await.unwrap();
        }
        match role {
            Admin => spaces::set_role(core, owner.id, community, u.id, CommunityRole::Admin).await.unwrap(),
            Moderator => spaces::set_role(core, owner.id, community, u.id, CommunityRole::Moderator).await.unwrap(),
            Banned => spaces::ban(core, owner.id, community, u.id, "spam").await.unwrap(),
            _ => {}
        }
        users.push((role, u));
    }
    let find = |r: Role| users.iter().find(|(x, _)| *x == r).unwrap().1.id;
    let mine = spaces::my_spaces(core, owner.id).await.unwrap();
    let general = &mine.communities[0].groups[0];
    let private = spaces::create_group(core, owner.id, community, "Staff", true).await.unwrap();
    spaces::add_group_member(core, owner.id, private.id, find(Moderator)).await.unwrap();
    let private_channel = spaces::create_channel(core, owner.id, private.id, "plans").await.unwrap();
    let dm = spaces::open_dm(core, owner.id, find(Member)).await.unwrap();
    let victim = new_user(state, "victim").await;
    spaces::join(core, victim.id, &invite.code).await.unwrap();
    let banned = find(Banned);
    let member = find(Member);
    let send = domain::messages::Send {
        channel_id: general.channels[0].id,
        device: "PHONE".into(),
        client_txn: "hello".into(),
        kind: app::model::messages::MessageKind::Text,
        reply_to: None,
        thread_id: None,
        ciphertext: app::model::messages::Ciphertext(vec![1, 2, 3]),
    };
    let phone = TestDevice::new(member, "PHONE");
    domain::keys_directory::register_device(core, member, phone.keys()).await.unwrap();
    domain::keys_directory::upload_keys(core, member, "PHONE", vec![], Some(phone.key("fb"))).await.unwrap();
    let message = domain::messages::send(core, member, send).await.unwrap().message.id;
    let to_dm = domain::messages::Send {
        channel_id: dm.id,
        device: "PHONE".into(),
        client_txn: "hello dm".into(),
        kind: app::model::messages::MessageKind::Text,
        reply_to: None,
        thread_id: None,
        ciphertext: app::model::messages::Ciphertext(vec![1, 2, 3]),
    };
    let dm_message = domain::messages::send(core, member, to_dm).await.unwrap().message.id;
    // Everyone in a role has a device "D" to send from.
    for (_, u) in &users {
        if domain::keys_directory::find_device(&core.db, u.id, "D").await.unwrap().is_none() {
            common::with_device(core, u.id, "D").await;
        }
    }
    let in_private = domain::messages::Send {
        channel_id: private_channel.id,
        device: "D".into(),
        client_txn: "plans".into(),
        kind: app::model::messages::MessageKind::Text,
        reply_to: None,
        thread_id: None,
        ciphertext: app::model::messages::Ciphertext(vec![1, 2, 3]),
    };
    let private_message = domain::messages::send(core, owner.id, in_private).await.unwrap().message.id;
    World {
        message,
        dm_message,
        private_message,
        member,
        state: state.clone(),
        community,
        general_group: general.id,
        general_channel: general.channels[0].id,
        private_group: private.id,
        private_channel: private_channel.id,
        dm: dm.id,
        victim: victim.id,
        banned,
        users,
    }
}

pub(crate) async fn client_for(w: &World, role: Role) -> Client {
    let mut client = Client::new(&w.state);
    if role != Anonymous {
        let user = &w.users.iter().find(|(r, _)| *r == role).unwrap().1;
        for pair in common::live::cookies_for(&w.state, user.id).await.split("; ") {
            let (n, v) = pair.split_once('=').unwrap();
            client.cookies.push((n.to_owned(), v.to_owned()));
        }
    }
    client
}

pub(crate) type Case = (&'static str, fn(&World) -> Vec<(&'static str, String)>, [(Role, u16); 8]);

/// Expected statuses, in the order of `ROLES`.
fn expect(statuses: [u16; 8]) -> [(Role, u16); 8] {
    std::array::from_fn(|i| (ROLES[i], statuses[i]))
}

pub(crate) fn space_cases() -> Vec<Case> {
    vec![
        ("spaces/mine", |_| vec![], expect([401, 200, 200, 200, 200, 200, 200, 200])),
        (
            "communities/members",
            |w| vec![("community_id", w.community.to_string())],
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
        (
            "communities/invites/create",
            |w| vec![("community_id", w.community.to_string())],
            expect([401, 404, 200, 200, 403, 403, 404, 404]),
        ),
        (
            "communities/leave",
            |w| vec![("community_id", w.community.to_string())],
            expect([401, 404, 422, 200, 200, 200, 404, 404]),
        ),
        (
            "communities/kick",
            |w| vec![("community_id", w.community.to_string()), ("user_id", w.victim.to_string())],
            expect([401, 404, 200, 200, 200, 403, 404, 404]),
        ),
        (
            "communities/ban",
            |w| vec![("community_id", w.community.to_string()), ("user_id", w.victim.to_string())],
            expect([401, 404, 200, 200, 200, 403, 404, 404]),
        ),
        (
            "communities/unban",
            |w| vec![("community_id", w.community.to_string()), ("user_id", w.banned.to_string())],
            expect([401, 404, 200, 200, 200, 403, 404, 404]),
        ),
        (
            "communities/set_role",
            |w| {
                vec![
                    ("community_id", w.community.to_string()),
                    ("user_id", w.victim.to_string()),
                    ("role", "moderator".into()),
                ]
            },
            expect([401, 404, 200, 200, 403, 403, 404, 404]),
        ),
        (
            "groups/create",
            |w| vec![("community_id", w.community.to_string()), ("name", "New".into())],
            expect([401, 404, 200, 200, 403, 403, 404, 404]),
        ),
        (
            "groups/add_member",
            |w| vec![("group_id", w.private_group.to_string()), ("user_id", w.victim.to_string())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            "channels/create",
            |w| vec![("group_id", w.general_group.to_string()), ("name", "new".into())],
            expect([401, 404, 200, 200, 403, 403, 404, 404]),
        ),
        (
            "channels/create",
            |w| vec![("group_id", w.private_group.to_string()), ("name", "new".into())],
            expect([401, 404, 200, 404, 403, 404, 404, 404]),
        ),
        (
            "channels/set_history",
            |w| vec![("channel_id", w.general_channel.to_string()), ("history", "full".into())],
            expect([401, 404, 200, 200, 200, 403, 404, 404]),
        ),
        (
            "channels/set_history",
            |w| vec![("channel_id", w.private_channel.to_string()), ("history", "full".into())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            // DMs keep history from when one joined: no such setting, for anyone.
            "channels/set_history",
            |w| vec![("channel_id", w.dm.to_string()), ("history", "full".into())],
            expect([401, 404, 422, 404, 404, 422, 404, 404]),
        ),
        (
            "channels/set_disappearing",
            |w| vec![("channel_id", w.general_channel.to_string()), ("seconds", "86400".into())],
            expect([401, 404, 200, 200, 200, 403, 404, 404]),
        ),
        (
            "channels/set_disappearing",
            |w| vec![("channel_id", w.private_channel.to_string()), ("seconds", "3600".into())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            // In a DM, either person; a timer out of range is refused for whoever may set one.
            "channels/set_disappearing",
            |w| vec![("channel_id", w.dm.to_string()), ("seconds", "60".into())],
            expect([401, 404, 422, 404, 404, 422, 404, 404]),
        ),
        (
            "channels/set_disappearing",
            |w| vec![("channel_id", w.dm.to_string())],
            expect([401, 404, 200, 404, 404, 200, 404, 404]),
        ),
        (
            "channels/get",
            |w| vec![("channel_id", w.general_channel.to_string())],
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
        (
            "channels/get",
            |w| vec![("channel_id", w.private_channel.to_string())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        ("channels/get", |w| vec![("channel_id", w.dm.to_string())], expect([401, 404, 200, 404, 404, 200, 404, 404])),
        (
            "channels/get",
            |_| vec![("channel_id", Uuid::now_v7().to_string())],
            expect([401, 404, 404, 404, 404, 404, 404, 404]),
        ),
        (
            "channels/members",
            |w| vec![("channel_id", w.private_channel.to_string())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            "channels/members",
            |w| vec![("channel_id", w.dm.to_string())],
            expect([401, 404, 200, 404, 404, 200, 404, 404]),
        ),
        ("dms/open", |w| vec![("user_id", w.victim.to_string())], expect([401, 404, 200, 200, 200, 200, 404, 404])),
        (
            "dms/create_group",
            // The victim and the admin: with the caller that makes three, except for the admin (two: too few).
            |w| vec![("members[0]", w.victim.to_string()), ("members[1]", w.users[2].1.id.to_string())],
            expect([401, 404, 200, 422, 200, 200, 404, 404]),
        ),
        (
            "communities/join",
            |_| vec![("code", "NOPENOPENOPE".into())],
            expect([401, 422, 422, 422, 422, 422, 422, 422]),
        ),
        ("communities/create", |_| vec![("name", "Mine".into())], expect([401, 200, 200, 200, 200, 200, 200, 200])),
    ]
}

pub(crate) fn message_key_and_admin_cases() -> Vec<Case> {
    vec![
        (
            "messages/send",
            |w| {
                vec![
                    ("channel_id", w.general_channel.to_string()),
                    ("device", "D".into()),
                    ("client_txn", "t".into()),
                    ("ciphertext_b64", "AQID".into()),
                ]
            },
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
        (
            "messages/send",
            |w| {
                vec![
                    ("channel_id", w.private_channel.to_string()),
                    ("device", "D".into()),
                    ("client_txn", "t".into()),
                    ("ciphertext_b64", "AQID".into()),
                ]
            },
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            "messages/send",
            |w| {
                vec![
                    ("channel_id", w.dm.to_string()),
                    ("device", "D".into()),
                    ("client_txn", "t".into()),
                    ("ciphertext_b64", "AQID".into()),
                ]
            },
            expect([401, 404, 200, 404, 404, 200, 404, 404]),
        ),
        (
            // A device id that is not one of the caller's (the member's phone): refused for everyone
            // who may see the channel, whoever owns the device.
            "messages/send",
            |w| {
                vec![
                    ("channel_id", w.general_channel.to_string()),
                    ("device", "PHONE".into()),
                    ("client_txn", "t".into()),
                    ("ciphertext_b64", "AQID".into()),
                ]
            },
            expect([401, 404, 422, 422, 422, 200, 404, 404]),
        ),
        (
            // A thread in the private channel: for those who read it.
            "messages/send",
            |w| {
                vec![
                    ("channel_id", w.private_channel.to_string()),
                    ("device", "D".into()),
                    ("client_txn", "t".into()),
                    ("ciphertext_b64", "AQID".into()),
                    ("thread_id", w.private_message.to_string()),
                ]
            },
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            // A thread reply in one channel to a message of another: refused, nothing stored.
            "messages/send",
            |w| {
                vec![
                    ("channel_id", w.general_channel.to_string()),
                    ("device", "D".into()),
                    ("client_txn", "t".into()),
                    ("ciphertext_b64", "AQID".into()),
                    ("thread_id", w.private_message.to_string()),
                ]
            },
            expect([401, 404, 422, 422, 422, 422, 404, 404]),
        ),
        (
            "messages/thread",
            |w| vec![("root", w.private_message.to_string())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            "messages/thread",
            |w| vec![("root", w.dm_message.to_string())],
            expect([401, 404, 200, 404, 404, 200, 404, 404]),
        ),
        (
            "messages/thread_read",
            |w| vec![("root", w.private_message.to_string()), ("seq", "1".into())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            "messages/edit",
            |w| vec![("message_id", w.message.to_string()), ("ciphertext_b64", "BAUG".into())],
            expect([401, 404, 403, 403, 403, 200, 404, 404]),
        ),
        (
            "messages/delete",
            |w| vec![("message_id", w.message.to_string())],
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
        (
            "messages/history",
            |w| vec![("channel_id", w.general_channel.to_string())],
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
        (
            "messages/versions",
            |w| vec![("message_id", w.message.to_string())],
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
        (
            "messages/pin",
            |w| vec![("message_id", w.message.to_string()), ("pinned", "true".into())],
            expect([401, 404, 200, 200, 200, 403, 404, 404]),
        ),
        (
            // In a DM, both people may pin.
            "messages/pin",
            |w| vec![("message_id", w.dm_message.to_string()), ("pinned", "true".into())],
            expect([401, 404, 200, 404, 404, 200, 404, 404]),
        ),
        (
            "messages/pins",
            |w| vec![("channel_id", w.general_channel.to_string())],
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
        (
            "messages/pins",
            |w| vec![("channel_id", w.private_channel.to_string())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        ("messages/pins", |w| vec![("channel_id", w.dm.to_string())], expect([401, 404, 200, 404, 404, 200, 404, 404])),
        (
            "messages/events",
            |w| vec![("channel_id", w.private_channel.to_string()), ("after_seq", "0".into())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            "messages/mark_read",
            |w| vec![("channel_id", w.general_channel.to_string()), ("seq", "1".into())],
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
        ("messages/unread", |_| vec![], expect([401, 200, 200, 200, 200, 200, 200, 200])),
        ("emoji/catalog", |_| vec![], expect([401, 200, 200, 200, 200, 200, 200, 200])),
        (
            "messages/schedule",
            |w| {
                vec![
                    ("channel_id", w.private_channel.to_string()),
                    ("device", "D".into()),
                    ("ciphertext_b64", "AQID".into()),
                    ("deliver_at", (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()),
                ]
            },
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            "messages/schedule",
            |w| {
                vec![
                    ("channel_id", w.dm.to_string()),
                    ("device", "D".into()),
                    ("ciphertext_b64", "AQID".into()),
                    ("deliver_at", (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()),
                ]
            },
            expect([401, 404, 200, 404, 404, 200, 404, 404]),
        ),
        // One's own list; cancelling what is not one's own (here: nothing) is not found.
        ("messages/scheduled", |_| vec![], expect([401, 200, 200, 200, 200, 200, 200, 200])),
        (
            "messages/unschedule",
            |_| vec![("id", Uuid::now_v7().to_string())],
            expect([401, 404, 404, 404, 404, 404, 404, 404]),
        ),
        (
            "messages/receipts",
            |w| vec![("channel_id", w.private_channel.to_string())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            "messages/receipts",
            |w| vec![("channel_id", w.dm.to_string())],
            expect([401, 404, 200, 404, 404, 200, 404, 404]),
        ),
        // One's own setting: anyone signed in.
        ("auth/read_receipts", |_| vec![("on", "false".into())], expect([401, 200, 200, 200, 200, 200, 200, 200])),
        // The key directory (JSON bodies): only people who share a community or DM with the member.
        ("devices/list", |w| vec![("user_id", w.member.to_string())], expect([401, 404, 200, 200, 200, 200, 404, 404])),
        (
            "cross_signing/get",
            |w| vec![("user_id", w.member.to_string())],
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
        (
            "devices/of_channel",
            |w| vec![("channel_id", w.private_channel.to_string())],
            expect([401, 404, 200, 404, 200, 404, 404, 404]),
        ),
        (
            "devices/of_channel",
            |w| vec![("channel_id", w.dm.to_string())],
            expect([401, 404, 200, 404, 404, 200, 404, 404]),
        ),
        (
            "keys/claim",
            |w| vec![("user_id", w.member.to_string()), ("device_id", "PHONE".into())],
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
        // Instance administration: the instance owner (and admins) only.
        (
            "admin/suspend",
            |w| vec![("user_id", w.victim.to_string()), ("suspended", "true".into())],
            expect([401, 200, 403, 403, 403, 403, 403, 403]),
        ),
    ]
}

/// Instance administration and the to-device queue (JSON bodies).
pub(crate) fn instance_and_to_device_cases() -> Vec<Case> {
    vec![
        ("invites/create", |_| vec![], expect([401, 200, 403, 403, 403, 403, 403, 403])),
        ("invites/list", |_| vec![], expect([401, 200, 403, 403, 403, 403, 403, 403])),
        (
            "to_device/send",
            |w| {
                let message = serde_json::json!([{
                    "recipient_user": w.member,
                    "recipient_device": "PHONE",
                    "payload": "AQID",
                }]);
                vec![("device_id", "D".into()), ("messages", message.to_string())]
            },
            expect([401, 404, 200, 200, 200, 200, 404, 404]),
        ),
    ]
}

/// Server functions that act only on the caller's own account, devices and queue (no other
/// user's id is an argument: the session says whose), with why each needs no row above.
const SELF_ONLY: &[(&str, &str)] = &[
    ("auth/me", "says who the session is"),
    ("auth/logout", "ends the caller's own session"),
    ("auth/change_password", "the caller's password, after asking the current one"),
    ("channels/notes", "the caller's own notes channel; nobody else is ever in it (messages.rs)"),
    ("devices/register", "registers under the caller's user id; another user id is refused (keys.rs)"),
    ("devices/remove", "device ids are looked up among the caller's devices only"),
    ("keys/upload", "for one of the caller's devices, signatures checked"),
    ("keys/counts", "of one of the caller's devices"),
    ("to_device/fetch", "the caller's device's own queue"),
    ("to_device/ack", "the caller's device's own queue"),
    ("cross_signing/set_master", "sets the caller's own master key"),
    ("cross_signing/sign_device", "signs one of the caller's devices with the caller's master key (keys.rs)"),
    ("backup/current", "the caller's own newest backup version"),
    ("backup/create", "a version under the caller's user id"),
    ("backup/delete", "version ids are looked up among the caller's versions only (backup.rs)"),
    ("backup/upload", "version ids are looked up among the caller's versions only (backup.rs)"),
    ("backup/download", "version ids are looked up among the caller's versions only (backup.rs)"),
];

/// Server functions anyone may call, signed in or not, with why.
const PUBLIC: &[(&str, &str)] = &[
    ("auth/registration_status", "the registration form needs it before sign-in"),
    ("auth/register", "creating an account; throttled, invite codes per REGISTRATION_MODE (accounts.rs)"),
    ("auth/login", "signing in; throttled per address and account (accounts.rs)"),
    ("auth/recover", "the recovery code is the credential; throttled (accounts.rs)"),
    ("auth/take_recovery_code", "reads this browser's own flash cookie"),
];

/// The instance (configured to let anyone create communities) with its owner, `root`.
pub(crate) async fn instance(db: &TestDb) -> (Core, user::Model) {
    let base = db.state(RegistrationMode::Open).await;
    let mut config = (*base.config).clone();
    config.community_creation_mode = CommunityCreationMode::Open;
    let state = Core { config: Arc::new(config), ..base };
    let root = domain::accounts::register(
        &state,
        domain::accounts::Registration {
            username: "root".into(),
            display_name: "Root".into(),
            password: "root password".into(),
            invite_code: None,
        },
        &Default::default(),
    )
    .await
    .unwrap()
    .user;
    (state, root)
}

/// Calls a server function with a case's fields: form-encoded, or as JSON for the key directory.
pub(crate) async fn call(client: &mut Client, endpoint: &str, fields: &[(&'static str, String)]) -> common::Reply {
    let json = ["devices/", "keys/", "to_device/", "cross_signing/"].iter().any(|p| endpoint.starts_with(p));
    if json {
        // Lists and objects are sent as JSON; everything else as a string.
        let value = |v: &String| match v.starts_with(['[', '{']) {
            true => serde_json::from_str(v).unwrap(),
            false => serde_json::Value::from(v.clone()),
        };
        let body: serde_json::Map<String, serde_json::Value> =
            fields.iter().map(|(k, v)| ((*k).to_owned(), value(v))).collect();
        client.call_json(endpoint, &serde_json::Value::Object(body).to_string()).await
    } else {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        client.call(endpoint, &pairs).await
    }
}

/// Runs each case for each role against a fresh world and reports every mismatch at once.
async fn check(db: TestDb, cases: Vec<Case>) {
    let (state, root) = instance(&db).await;
    let mut failures = Vec::new();
    for (endpoint, form, expected) in cases {
        for (role, status) in expected {
            // A fresh world per attempt: destructive calls (kick, leave, ban) must not affect the next row.
            let w = world(&state, &root).await;
            let mut client = client_for(&w, role).await;
            let reply = call(&mut client, endpoint, &form(&w)).await;
            if reply.status != status {
                failures
                    .push(format!("{endpoint} as {role:?}: expected {status}, got {} {}", reply.status, reply.body));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// What a socket frame got: accepted, or the error code the server answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Ok,
    Refused(ErrorCode),
}
use Answer::{Ok as Accepted, Refused};
const NOT_FOUND: Answer = Refused(ErrorCode::NotFound);
const FORBIDDEN: Answer = Refused(ErrorCode::Forbidden);
const INVALID: Answer = Refused(ErrorCode::Invalid);

/// A client frame, by the name its `type` has on the wire, and the answer per role (in the order of
/// `ROLES`, without `Anonymous`: a socket without a session is refused at the upgrade, 401).
pub(crate) type FrameCase = (&'static str, fn(&World) -> ClientFrame, [Answer; 7]);

fn send_to(channel_id: Uuid, device: &str) -> ClientFrame {
    ClientFrame::Send {
        channel_id,
        device: device.into(),
        client_txn: "frame".into(),
        kind: MessageKind::Text,
        reply_to: None,
        thread_id: None,
        ciphertext: Ciphertext(vec![1, 2, 3]),
    }
}

pub(crate) fn frame_cases() -> Vec<FrameCase> {
    //      Root       Owner      Admin      Moderator  Member     Stranger   Banned
    vec![
        (
            "send",
            |w| send_to(w.general_channel, "D"),
            [NOT_FOUND, Accepted, Accepted, Accepted, Accepted, NOT_FOUND, NOT_FOUND],
        ),
        (
            "send",
            |w| send_to(w.private_channel, "D"),
            [NOT_FOUND, Accepted, NOT_FOUND, Accepted, NOT_FOUND, NOT_FOUND, NOT_FOUND],
        ),
        ("send", |w| send_to(w.dm, "D"), [NOT_FOUND, Accepted, NOT_FOUND, NOT_FOUND, Accepted, NOT_FOUND, NOT_FOUND]),
        // The member's phone is not the caller's device (except the member's own).
        (
            "send",
            |w| send_to(w.general_channel, "PHONE"),
            [NOT_FOUND, INVALID, INVALID, INVALID, Accepted, NOT_FOUND, NOT_FOUND],
        ),
        (
            "edit",
            |w| ClientFrame::Edit { message_id: w.message, ciphertext: Ciphertext(vec![4]) },
            [NOT_FOUND, FORBIDDEN, FORBIDDEN, FORBIDDEN, Accepted, NOT_FOUND, NOT_FOUND],
        ),
        (
            "delete",
            |w| ClientFrame::Delete { message_id: w.message },
            [NOT_FOUND, Accepted, Accepted, Accepted, Accepted, NOT_FOUND, NOT_FOUND],
        ),
        (
            "typing",
            |w| ClientFrame::Typing { channel_id: w.private_channel },
            [NOT_FOUND, Accepted, NOT_FOUND, Accepted, NOT_FOUND, NOT_FOUND, NOT_FOUND],
        ),
        (
            "typing",
            |w| ClientFrame::Typing { channel_id: w.dm },
            [NOT_FOUND, Accepted, NOT_FOUND, NOT_FOUND, Accepted, NOT_FOUND, NOT_FOUND],
        ),
        (
            "mark_read",
            |w| ClientFrame::MarkRead { channel_id: w.private_channel, seq: 1 },
            [NOT_FOUND, Accepted, NOT_FOUND, Accepted, NOT_FOUND, NOT_FOUND, NOT_FOUND],
        ),
        // The caller's own status: everyone with a socket.
        ("set_presence", |_| ClientFrame::SetPresence { status: Presence::Dnd }, [Accepted; 7]),
        ("ping", |_| ClientFrame::Ping { nonce: 1 }, [Accepted; 7]),
    ]
}

/// Client frames that need no row above, with why.
const FRAMES_WITHOUT_ROW: &[(&str, &str)] = &[("hello", "the handshake; the session was checked at the upgrade")];

/// Sends `frame` on a fresh socket of `user`, then a ping; what came before the pong is the answer.
async fn answer(server: &TestServer, user: Uuid, frame: &ClientFrame) -> Answer {
    let cookie = common::live::cookies_for(&server.state, user).await;
    // No device in hello: a send names its device itself, and the domain checks it is the caller's.
    let (mut ws, _) = Ws::connect(server.addr, &cookie, None, vec![]).await;
    ws.send(frame).await;
    ws.send(&ClientFrame::Ping { nonce: 424_242 }).await;
    ws.recv_where(|f| match f {
        ServerFrame::Error { code, .. } => Some(Refused(code)),
        ServerFrame::Pong { nonce: 424_242 } => Some(Accepted),
        _ => None,
    })
    .await
}

/// Runs every frame case for every role against a fresh world, through a real socket.
async fn check_frames(db: TestDb) {
    let (state, root) = instance(&db).await;
    let server = TestServer::start(state.clone()).await;
    let mut failures = Vec::new();
    for (name, frame, expected) in frame_cases() {
        for (role, want) in ROLES[1..].iter().zip(expected) {
            let w = world(&state, &root).await;
            let user = w.users.iter().find(|(r, _)| r == role).unwrap().1.id;
            let got = answer(&server, user, &frame(&w)).await;
            if got != want {
                failures.push(format!("{name} as {role:?}: expected {want:?}, got {got:?}"));
            }
        }
    }
    // Without a session there is no socket at all.
    let refused = Ws::open(server.addr, &[]).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("401"), "an anonymous socket: {refused}");
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// The names serde expects for a tagged enum (it lists them when it refuses an unknown one).
fn variants<T: serde::de::DeserializeOwned + std::fmt::Debug>(tag: &str) -> Vec<String> {
    let refused = serde_json::from_str::<T>(&format!(r#"{{"{tag}":"no_such_variant"}}"#)).unwrap_err().to_string();
    let expected = refused.split("expected one of").nth(1).unwrap_or_default();
    expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// A server function or frame added without a row in a role table (or a reason on an exempt
/// list) fails here, so authorization cannot be forgotten.
#[test]
fn every_server_function_and_frame_has_a_row() {
    let _ = server::router; // links the app, whose server functions register themselves
    let mut rows: std::collections::BTreeSet<String> = space_cases()
        .into_iter()
        .chain(message_key_and_admin_cases())
        .chain(instance_and_to_device_cases())
        .map(|(endpoint, ..)| format!("/api/v1/{endpoint}"))
        .collect();
    rows.extend(SELF_ONLY.iter().chain(PUBLIC).map(|(endpoint, _)| format!("/api/v1/{endpoint}")));
    let registered: Vec<String> = leptos::server_fn::axum::server_fn_paths().map(|(path, _)| path.to_owned()).collect();
    assert!(registered.len() >= 45, "server functions are registered: {registered:?}");
    let missing: Vec<&String> = registered.iter().filter(|p| !rows.contains(*p)).collect();
    assert!(missing.is_empty(), "server functions without a row in the role table: {missing:?}");
    let stale: Vec<&String> = rows.iter().filter(|r| !registered.contains(r)).collect();
    assert!(stale.is_empty(), "rows for server functions that do not exist: {stale:?}");

    let frames = variants::<ClientFrame>("type");
    assert!(frames.len() >= 8, "{frames:?}");
    let covered: Vec<&str> =
        frame_cases().iter().map(|(name, ..)| *name).chain(FRAMES_WITHOUT_ROW.iter().map(|(n, _)| *n)).collect();
    let missing: Vec<&String> = frames.iter().filter(|f| !covered.contains(&f.as_str())).collect();
    assert!(missing.is_empty(), "client frames without a row in the frame table: {missing:?}");
}

on_both_backends! {
    async fn every_frame_for_every_role(db: TestDb) {
        check_frames(db).await;
    }

    async fn instance_administration_and_to_device_for_every_role(db: TestDb) {
        check(db, instance_and_to_device_cases()).await;
    }

    async fn every_space_function_for_every_role(db: TestDb) {
        check(db, space_cases()).await;
    }

    async fn every_message_key_and_admin_function_for_every_role(db: TestDb) {
        check(db, message_key_and_admin_cases()).await;
    }

    async fn outsiders_learn_no_names(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let root = new_user(&state, "root").await;
        let w = world(&state, &root).await;
        for role in [Stranger, Banned, Root] {
            let mut client = client_for(&w, role).await;
            let mine = client.call("spaces/mine", &[]).await;
            assert!(!mine.body.contains("Club") && !mine.body.contains("Staff") && !mine.body.contains("plans"), "{role:?}: {}", mine.body);
            for channel in [w.general_channel, w.private_channel, w.dm] {
                let reply = client.call("channels/get", &[("channel_id", &channel.to_string())]).await;
                assert_eq!(reply.status, 404);
                assert!(!reply.body.contains("plans") && !reply.body.contains("general"), "{}", reply.body);
            }
        }
        // A plain member sees the public group but not the private one.
        let mut member = client_for(&w, Member).await;
        let mine = member.call("spaces/mine", &[]).await.body;
        assert!(mine.contains("Club") && mine.contains("general") && !mine.contains("Staff") && !mine.contains("plans"), "{mine}");
        let mut moderator = client_for(&w, Moderator).await;
        assert!(moderator.call("spaces/mine", &[]).await.body.contains("plans"));
    }

    async fn admin_only_community_creation(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let root = domain::accounts::register(
            &state,
            domain::accounts::Registration { username: "root".into(), display_name: "Root".into(), password: "root password".into(), invite_code: None },
            &Default::default(),
        )
        .await
        .unwrap()
        .user;
        let someone = new_user(&state, "someone").await;
        assert_eq!(state.config.community_creation_mode, CommunityCreationMode::AdminOnly);
        let e: app::error::AppError = spaces::create_community(&state, &someone, state.config.community_creation_mode, "Mine", "").await.unwrap_err().into();
        assert_eq!(e, app::error::AppError::Forbidden);
        spaces::create_community(&state, &root, state.config.community_creation_mode, "Root's", "").await.unwrap();
    }
}
