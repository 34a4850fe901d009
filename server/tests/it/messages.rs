//! Messages as opaque envelopes on both backends: sequence numbers, idempotent sends, edits with
//! history, deletes, pagination, catch-up, and who may do what.

use crate::common::{self, Prepare, on_both_backends};

use app::{
    error::AppError,
    model::{
        CommunityCreationMode, RegistrationMode,
        messages::{
            Ciphertext, EventKind, MAX_CIPHERTEXT, MAX_PINS, MAX_RECEIPT_READERS, MAX_SCHEDULED_PER_PERSON,
            MAX_VERSIONS, MessageKind,
        },
        spaces::CommunityRole,
    },
};
use common::{Client, err, new_user};
use domain::Core;
use domain::{messages, pins, receipts, scheduled, spaces};
use entity::user;
use sea_orm::EntityTrait;
use uuid::Uuid;

fn send(channel_id: Uuid, txn: &str, bytes: &[u8]) -> messages::Send {
    messages::Send {
        channel_id,
        device: "DEVICE1".into(),
        client_txn: txn.into(),
        kind: MessageKind::Text,
        reply_to: None,
        thread_id: None,
        ciphertext: Ciphertext(bytes.to_vec()),
    }
}

/// owner (community owner), ann (moderator), bob (member), eve (stranger) and the general channel.
async fn setup(core: &Core) -> (Uuid, Uuid, [user::Model; 4]) {
    let db = &core.db;
    let owner = new_user(db, "owner").await;
    let (ann, bob, eve) = (new_user(db, "ann").await, new_user(db, "bob").await, new_user(db, "eve").await);
    let club = spaces::create_community(core, &owner, CommunityCreationMode::Open, "Club", "").await.unwrap();
    let invite = spaces::create_invite(core, owner.id, club, None, None).await.unwrap();
    spaces::join(core, ann.id, &invite.code).await.unwrap();
    spaces::join(core, bob.id, &invite.code).await.unwrap();
    spaces::set_role(core, owner.id, club, ann.id, CommunityRole::Moderator).await.unwrap();
    let general = spaces::my_spaces(core, owner.id).await.unwrap().communities[0].groups[0].channels[0].id;
    for u in [&owner, &ann, &bob, &eve] {
        common::with_device(core, u.id, "DEVICE1").await;
    }
    (club, general, [owner, ann, bob, eve])
}

on_both_backends! {
    async fn sequence_numbers_idempotency_edits_and_deletes(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let db = &state.db;
        let core = &state;
        let (_, general, [owner, ann, bob, eve]) = setup(core).await;

        let first = messages::send(core, bob.id, send(general, "t1", b"\x01opaque")).await.unwrap();
        assert!(first.fresh);
        let first = first.message;
        let second = messages::send(core, owner.id, send(general, "t1", b"\x02opaque")).await.unwrap().message;
        assert_eq!((first.seq, second.seq), (1, 2));
        // A retried send returns the original, never a duplicate.
        let retry = messages::send(core, bob.id, send(general, "t1", b"\x01opaque")).await.unwrap();
        assert!(!retry.fresh);
        assert_eq!(retry.message, first);
        assert_eq!(messages::history(core, bob.id, general, None, None).await.unwrap().messages.len(), 2);

        // Outsiders: not found. Bad input: clear field errors.
        assert_eq!(err(messages::send(core, eve.id, send(general, "x", b"hi")).await.unwrap_err()), AppError::NotFound);
        assert_eq!(err(messages::history(core, eve.id, general, None, None).await.unwrap_err()), AppError::NotFound);
        let big = vec![7u8; MAX_CIPHERTEXT + 1];
        assert!(err(messages::send(core, bob.id, send(general, "big", &big)).await.unwrap_err()).for_field("ciphertext").is_some());
        assert!(err(messages::send(core, bob.id, send(general, "empty", b"")).await.unwrap_err()).for_field("ciphertext").is_some());
        assert!(err(messages::send(core, bob.id, send(general, &"t".repeat(65), b"x")).await.unwrap_err()).for_field("client_txn").is_some());
        let mut reply = send(general, "r1", b"reply");
        reply.reply_to = Some(Uuid::now_v7());
        assert!(err(messages::send(core, bob.id, reply).await.unwrap_err()).for_field("reply_to").is_some());

        // Edits: the author only; the earlier version is kept.
        assert_eq!(err(messages::edit(core, ann.id, first.id, Ciphertext(b"x".to_vec())).await.unwrap_err()), AppError::Forbidden);
        let edited = messages::edit(core, bob.id, first.id, Ciphertext(b"\x03new".to_vec())).await.unwrap();
        assert!(edited.message.edited_at.is_some());
        assert_eq!((edited.kind, edited.seq), (EventKind::Edited, 3));
        let kept = entity::message_edit::Entity::find().all(db).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].ciphertext, b"\x01opaque");

        // Deletes: the author, or a moderator; not another member.
        assert_eq!(err(messages::delete(core, bob.id, second.id).await.unwrap_err()), AppError::Forbidden);
        let deleted = messages::delete(core, ann.id, second.id).await.unwrap();
        assert_eq!(deleted.kind, EventKind::Deleted);
        assert!(deleted.message.ciphertext.0.is_empty());
        messages::delete(core, bob.id, first.id).await.unwrap();
        assert!(entity::message_edit::Entity::find().all(db).await.unwrap().is_empty(), "old versions survive deletion");
        assert!(messages::history(core, bob.id, general, None, None).await.unwrap().messages.is_empty());

        // The event stream: created, created, edited, deleted, deleted; no gaps.
        let events = messages::events_since(core, bob.id, general, 0, None).await.unwrap();
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::Created, EventKind::Created, EventKind::Edited, EventKind::Deleted, EventKind::Deleted]);
        assert_eq!(messages::events_since(core, bob.id, general, 3, None).await.unwrap().len(), 2);
    }

    async fn reactions_answer_messages_of_their_channel(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let core = &state;
        let (_, general, [owner, ann, bob, eve]) = setup(core).await;
        let target = messages::send(core, bob.id, send(general, "m1", b"message")).await.unwrap().message;
        let react = |txn: &str, to: Option<Uuid>| messages::Send {
            kind: MessageKind::Reaction,
            reply_to: to,
            ..send(general, txn, b"sealed emoji")
        };
        let first = messages::send(core, ann.id, react("r1", Some(target.id))).await.unwrap().message;
        assert_eq!((first.kind, first.reply_to), (MessageKind::Reaction, Some(target.id)));
        // A page holds messages; the reactions to them come beside, not in their place.
        let page = messages::history(core, bob.id, general, None, None).await.unwrap();
        assert_eq!(page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [target.id]);
        assert_eq!(page.reactions.iter().map(|m| m.id).collect::<Vec<_>>(), [first.id]);
        // A reaction is no unread message.
        let unread = messages::unread_counts(core, bob.id).await.unwrap();
        assert_eq!(unread.iter().find(|u| u.channel_id == general).unwrap().count, 0);

        // What it answers must be a message (not a reaction) of this channel; outsiders: not found.
        assert!(err(messages::send(core, ann.id, react("r2", None)).await.unwrap_err()).for_field("reply_to").is_some());
        assert!(err(messages::send(core, ann.id, react("r3", Some(first.id))).await.unwrap_err()).for_field("reply_to").is_some());
        let dm = spaces::open_dm(core, owner.id, bob.id).await.unwrap().id;
        let elsewhere = messages::send(core, owner.id, send(dm, "d1", b"in a dm")).await.unwrap().message;
        assert!(err(messages::send(core, ann.id, react("r4", Some(elsewhere.id))).await.unwrap_err()).for_field("reply_to").is_some());
        let mut reply_to_reaction = send(general, "r5", b"text");
        reply_to_reaction.reply_to = Some(first.id);
        assert!(err(messages::send(core, bob.id, reply_to_reaction).await.unwrap_err()).for_field("reply_to").is_some());
        assert_eq!(err(messages::send(core, eve.id, react("r6", Some(target.id))).await.unwrap_err()), AppError::NotFound);
        // A reaction is not edited (removed, and given again).
        assert!(err(messages::edit(core, ann.id, first.id, Ciphertext(b"x".to_vec())).await.unwrap_err()).for_field("message_id").is_some());

        // At most 20 of one person's reactions on one message: the 21st waits for one to go.
        for i in 2..=20 {
            messages::send(core, ann.id, react(&format!("many{i}"), Some(target.id))).await.unwrap();
        }
        let over = err(messages::send(core, ann.id, react("many21", Some(target.id))).await.unwrap_err());
        assert!(over.for_field("reply_to").is_some_and(|m| m.contains("20")), "{over:?}");
        messages::send(core, bob.id, react("bob1", Some(target.id))).await.unwrap();
        messages::delete(core, ann.id, first.id).await.unwrap();
        messages::send(core, ann.id, react("many21", Some(target.id))).await.unwrap();

        // Deleting the message takes its reactions: none left, no ciphertext kept; no new ones.
        messages::delete(core, bob.id, target.id).await.unwrap();
        let left: Vec<_> = entity::message::Entity::find().all(&state.db).await.unwrap().into_iter()
            .filter(|m| m.reply_to == Some(target.id)).collect();
        assert_eq!(left.len(), 22, "20 of ann (one removed, one more), one of bob");
        assert!(left.iter().all(|m| m.deleted_at.is_some() && m.ciphertext.is_empty()), "reactions erased with their message");
        assert!(messages::history(core, bob.id, general, None, None).await.unwrap().reactions.is_empty());
        assert!(err(messages::send(core, ann.id, react("late", Some(target.id))).await.unwrap_err()).for_field("reply_to").is_some());
    }

    async fn threads_hold_replies_apart_and_count_them_on_their_root(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let core = &state;
        let (_, general, [owner, ann, bob, eve]) = setup(core).await;
        let root = messages::send(core, owner.id, send(general, "root", b"root")).await.unwrap().message;
        let in_thread = |txn: &str, thread: Uuid| messages::Send { thread_id: Some(thread), ..send(general, txn, b"reply") };
        let r1 = messages::send(core, bob.id, in_thread("r1", root.id)).await.unwrap().message;
        assert_eq!(r1.thread_id, Some(root.id));
        let r2 = messages::send(core, ann.id, in_thread("r2", root.id)).await.unwrap().message;
        // A reaction to a reply is in the thread too; a quote in the thread quotes the thread.
        let react = messages::Send { kind: MessageKind::Reaction, reply_to: Some(r1.id), ..in_thread("r3", root.id) };
        let reaction = messages::send(core, owner.id, react).await.unwrap().message;
        let quote = messages::Send { reply_to: Some(r2.id), ..in_thread("r4", root.id) };
        let r3 = messages::send(core, bob.id, quote).await.unwrap().message;

        // The channel's page holds the root, with its summary; not the replies.
        let page = messages::history(core, bob.id, general, None, None).await.unwrap();
        assert_eq!(page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [root.id]);
        let summary = &page.threads[0];
        assert_eq!((summary.root, summary.replies, summary.last_seq), (root.id, 3, r3.seq));
        assert_eq!(summary.read_seq, r3.seq, "bob read up to his own reply");
        let owners = messages::history(core, owner.id, general, None, None).await.unwrap();
        assert_eq!(owners.threads[0].read_seq, 0, "the owner has not opened it");
        // The thread's page: its replies, newest first, and their reactions.
        let thread = messages::thread_history(core, owner.id, root.id, None, None).await.unwrap();
        assert_eq!(thread.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [r3.id, r2.id, r1.id]);
        assert_eq!(thread.reactions.iter().map(|m| m.id).collect::<Vec<_>>(), [reaction.id]);
        let older = messages::thread_history(core, owner.id, root.id, None, Some(2)).await.unwrap();
        let rest = messages::thread_history(core, owner.id, root.id, older.next_before, Some(2)).await.unwrap();
        assert_eq!(rest.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [r1.id]);
        // Replies are the thread's unread, not the channel's.
        let unread = messages::unread_counts(core, owner.id).await.unwrap();
        assert_eq!(unread.iter().find(|u| u.channel_id == general).unwrap().count, 0);
        // Reading a thread: forward only, never past its latest reply.
        assert_eq!(messages::mark_thread_read(core, owner.id, root.id, r1.seq).await.unwrap(), r1.seq);
        assert_eq!(messages::mark_thread_read(core, owner.id, root.id, 0).await.unwrap(), r1.seq);
        assert_eq!(messages::mark_thread_read(core, owner.id, root.id, i64::MAX).await.unwrap(), r3.seq);

        // Refused: a thread on a reply, on a reaction, on another channel's message, on nothing; a
        // reaction outside the thread of its message; a quote across threads; a stranger.
        for (txn, bad) in [("b1", r1.id), ("b2", reaction.id), ("b3", Uuid::now_v7())] {
            let e = err(messages::send(core, bob.id, in_thread(txn, bad)).await.unwrap_err());
            assert!(e.for_field("thread_id").is_some(), "{e:?}");
        }
        let dm = spaces::open_dm(core, owner.id, bob.id).await.unwrap().id;
        let elsewhere = messages::send(core, owner.id, send(dm, "d1", b"in a dm")).await.unwrap().message;
        assert!(err(messages::send(core, bob.id, in_thread("b4", elsewhere.id)).await.unwrap_err()).for_field("thread_id").is_some());
        let outside = messages::Send { kind: MessageKind::Reaction, reply_to: Some(r1.id), ..send(general, "b5", b"e") };
        assert!(err(messages::send(core, bob.id, outside).await.unwrap_err()).for_field("reply_to").is_some());
        let across = messages::Send { reply_to: Some(r1.id), ..send(general, "b6", b"q") };
        assert!(err(messages::send(core, bob.id, across).await.unwrap_err()).for_field("reply_to").is_some());
        assert_eq!(err(messages::send(core, eve.id, in_thread("b7", root.id)).await.unwrap_err()), AppError::NotFound);
        assert_eq!(err(messages::thread_history(core, eve.id, root.id, None, None).await.unwrap_err()), AppError::NotFound);
        assert_eq!(err(messages::mark_thread_read(core, eve.id, root.id, 1).await.unwrap_err()), AppError::NotFound);
        assert!(err(pins::set_pinned(core, owner.id, r1.id, true).await.unwrap_err()).for_field("message_id").is_some());

        // A reply deleted: one fewer. The root deleted: its thread goes with it, nothing kept.
        messages::delete(core, ann.id, r2.id).await.unwrap();
        let page = messages::history(core, bob.id, general, None, None).await.unwrap();
        assert_eq!((page.threads[0].replies, page.threads[0].last_seq), (2, r3.seq));
        // The latest reply deleted: the one before is the latest again.
        messages::delete(core, bob.id, r3.id).await.unwrap();
        let page = messages::history(core, bob.id, general, None, None).await.unwrap();
        assert_eq!((page.threads[0].replies, page.threads[0].last_seq), (1, r1.seq));
        assert_eq!(page.threads[0].last_at, r1.created_at);
        messages::delete(core, owner.id, root.id).await.unwrap();
        let left: Vec<_> = entity::message::Entity::find().all(&state.db).await.unwrap().into_iter()
            .filter(|m| m.thread_id == Some(root.id)).collect();
        assert_eq!(left.len(), 4, "three replies (two deleted before) and a reaction");
        assert!(left.iter().all(|m| m.deleted_at.is_some() && m.ciphertext.is_empty()), "the thread erased with its root");
        assert_eq!(err(messages::thread_history(core, bob.id, root.id, None, None).await.unwrap_err()), AppError::NotFound);
        assert!(err(messages::send(core, bob.id, in_thread("late", root.id)).await.unwrap_err()).for_field("thread_id").is_some());
    }

    async fn disappearing_messages_are_erased_at_their_time(db: TestDb) {
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        let state = db.state(RegistrationMode::Open).await;
        let core = &state;
        let (_, general, [owner, ann, bob, eve]) = setup(core).await;
        let before = messages::send(core, bob.id, send(general, "before", b"stays")).await.unwrap().message;
        assert_eq!(before.expires_at, None);
        // Moderators set the timer (1 hour to 30 days); members and strangers may not.
        assert_eq!(err(spaces::set_disappearing(core, bob.id, general, Some(3_600)).await.unwrap_err()), AppError::Forbidden);
        assert_eq!(err(spaces::set_disappearing(core, eve.id, general, Some(3_600)).await.unwrap_err()), AppError::NotFound);
        for wrong in [0, 3_599, 30 * 86_400 + 1] {
            let e = err(spaces::set_disappearing(core, ann.id, general, Some(wrong)).await.unwrap_err());
            assert!(e.for_field("seconds").is_some(), "{wrong}: {e:?}");
        }
        let summary = spaces::set_disappearing(core, ann.id, general, Some(86_400)).await.unwrap();
        assert_eq!(summary.disappear_after_s, Some(86_400));
        let listed = spaces::my_spaces(core, bob.id).await.unwrap().communities[0].groups[0].channels[0].clone();
        assert_eq!(listed.disappear_after_s, Some(86_400), "every member's sidebar says so");

        // Sent now: expires a day later. Its reaction and a reply in its thread expire too.
        let sent = messages::send(core, bob.id, send(general, "soon", b"goes")).await.unwrap().message;
        let at = chrono::DateTime::parse_from_rfc3339(sent.expires_at.as_deref().unwrap()).unwrap();
        let created = chrono::DateTime::parse_from_rfc3339(&sent.created_at).unwrap();
        assert_eq!((at - created).num_seconds(), 86_400);
        let reaction = messages::Send { kind: MessageKind::Reaction, reply_to: Some(sent.id), ..send(general, "r", b"e") };
        messages::send(core, owner.id, reaction).await.unwrap();
        let reply = messages::Send { thread_id: Some(sent.id), ..send(general, "t", b"in thread") };
        messages::send(core, owner.id, reply).await.unwrap();
        assert_eq!(messages::expire_due(core, chrono::Utc::now()).await.unwrap(), 0, "nothing due yet");

        // Its time comes: not served any more, then erased by the round, with a tombstone event
        // (once, however many rounds run); the message from before the timer stays.
        let row = entity::message::Entity::find_by_id(sent.id).one(&state.db).await.unwrap().unwrap();
        let mut row: entity::message::ActiveModel = row.into();
        row.expires_at = Set(Some(chrono::Utc::now() - chrono::Duration::seconds(1)));
        row.update(&state.db).await.unwrap();
        let page = messages::history(core, bob.id, general, None, None).await.unwrap();
        assert_eq!(page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [before.id], "an expired message is not served");
        let last = messages::events_since(core, bob.id, general, 0, None).await.unwrap().last().unwrap().seq;
        let (first_round, second_round) = tokio::join!(
            messages::expire_due(core, chrono::Utc::now()),
            messages::expire_due(core, chrono::Utc::now()),
        );
        assert_eq!(first_round.unwrap() + second_round.unwrap(), 1, "two rounds at once erase it once");
        let events = messages::events_since(core, bob.id, general, last, None).await.unwrap();
        assert_eq!(events.iter().map(|e| (e.kind, e.message.id)).collect::<Vec<_>>(), [(EventKind::Deleted, sent.id)]);
        let left: Vec<_> = entity::message::Entity::find().all(&state.db).await.unwrap().into_iter()
            .filter(|m| m.id == sent.id || m.reply_to == Some(sent.id) || m.thread_id == Some(sent.id)).collect();
        assert_eq!(left.len(), 3);
        assert!(left.iter().all(|m| m.deleted_at.is_some() && m.ciphertext.is_empty()), "nothing of it is kept");
        let kept = entity::message::Entity::find_by_id(before.id).one(&state.db).await.unwrap().unwrap();
        assert_eq!(kept.ciphertext, b"stays");

        // Off again: new messages stay. In a DM either person sets it.
        spaces::set_disappearing(core, ann.id, general, None).await.unwrap();
        assert_eq!(messages::send(core, bob.id, send(general, "after", b"x")).await.unwrap().message.expires_at, None);
        let dm = spaces::open_dm(core, owner.id, bob.id).await.unwrap().id;
        assert_eq!(spaces::set_disappearing(core, bob.id, dm, Some(3_600)).await.unwrap().disappear_after_s, Some(3_600));
    }

    async fn notes_channels_are_their_owners_alone(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let core = &state;
        let (_, _, [owner, ann, bob, _eve]) = setup(core).await;
        let (first, again) = tokio::join!(spaces::notes_channel(core, bob.id), spaces::notes_channel(core, bob.id));
        let notes = first.unwrap();
        assert_eq!(again.unwrap(), notes, "one per person, also when asked twice at once");
        assert_ne!(spaces::notes_channel(core, ann.id).await.unwrap(), notes);
        // Bob keeps a (sealed) bookmark there; nobody else sees, writes or even finds it.
        let kept = messages::send(core, bob.id, send(notes, "b1", b"sealed bookmark")).await.unwrap().message;
        assert_eq!(messages::history(core, bob.id, notes, None, None).await.unwrap().messages[0].id, kept.id);
        for other in [&owner, &ann] {
            assert_eq!(err(messages::history(core, other.id, notes, None, None).await.unwrap_err()), AppError::NotFound);
            assert_eq!(err(messages::send(core, other.id, send(notes, "x", b"x")).await.unwrap_err()), AppError::NotFound);
            assert_eq!(err(messages::delete(core, other.id, kept.id).await.unwrap_err()), AppError::NotFound);
        }
        // It is not one of his DMs, but his sockets follow it (his other devices hear it).
        assert!(spaces::my_spaces(core, bob.id).await.unwrap().direct.iter().all(|d| d.id != notes));
        assert!(spaces::subscriptions(&state.db, bob.id).await.unwrap().channels.contains_key(&notes));
        messages::delete(core, bob.id, kept.id).await.unwrap();
    }

    async fn pins_are_kept_by_moderators_and_bounded(db: TestDb) {
        let mut state = db.state(RegistrationMode::Open).await;
        state.config = std::sync::Arc::new(domain::config::Config { messages_per_minute: 100_000, ..(*state.config).clone() });
        let core = &state;
        let (_, general, [owner, ann, bob, eve]) = setup(core).await;
        let first = messages::send(core, bob.id, send(general, "p1", b"pin me")).await.unwrap().message;
        // A member may not pin in a community; a moderator may; an outsider sees nothing.
        assert_eq!(err(pins::set_pinned(core, bob.id, first.id, true).await.unwrap_err()), AppError::Forbidden);
        assert_eq!(err(pins::set_pinned(core, eve.id, first.id, true).await.unwrap_err()), AppError::NotFound);
        assert_eq!(err(pins::pins(core, eve.id, general).await.unwrap_err()), AppError::NotFound);
        pins::set_pinned(core, ann.id, first.id, true).await.unwrap();
        pins::set_pinned(core, ann.id, first.id, true).await.unwrap();
        let listed = pins::pins(core, bob.id, general).await.unwrap();
        assert_eq!(listed.iter().map(|p| (p.message.id, p.pinned_by)).collect::<Vec<_>>(), [(first.id, ann.id)], "once");
        assert_eq!(listed[0].message.ciphertext.0, b"pin me", "the envelope, to decrypt");
        // A reaction is not pinned; nor is a message that does not exist.
        let reaction = messages::Send { kind: MessageKind::Reaction, reply_to: Some(first.id), ..send(general, "r", b"e") };
        let reaction = messages::send(core, bob.id, reaction).await.unwrap().message;
        assert!(err(pins::set_pinned(core, ann.id, reaction.id, true).await.unwrap_err()).for_field("message_id").is_some());
        assert_eq!(err(pins::set_pinned(core, ann.id, Uuid::now_v7(), true).await.unwrap_err()), AppError::NotFound);
        // In a DM, both people pin.
        let dm = spaces::open_dm(core, owner.id, bob.id).await.unwrap().id;
        let in_dm = messages::send(core, owner.id, send(dm, "d1", b"in a dm")).await.unwrap().message;
        pins::set_pinned(core, bob.id, in_dm.id, true).await.unwrap();
        assert_eq!(err(pins::set_pinned(core, ann.id, in_dm.id, false).await.unwrap_err()), AppError::NotFound);
        assert_eq!(pins::pins(core, owner.id, dm).await.unwrap().len(), 1);
        // At most MAX_PINS per channel, also when pins race for the last places.
        let mut ids = Vec::new();
        for i in 1..=MAX_PINS {
            ids.push(messages::send(core, bob.id, send(general, &format!("many{i}"), b"x")).await.unwrap().message.id);
        }
        for id in &ids[..MAX_PINS as usize - 3] {
            pins::set_pinned(core, ann.id, *id, true).await.unwrap();
        }
        let last = &ids[MAX_PINS as usize - 3..];
        let outcomes = tokio::join!(
            pins::set_pinned(core, owner.id, last[0], true),
            pins::set_pinned(core, owner.id, last[1], true),
            pins::set_pinned(core, owner.id, last[2], true),
        );
        let outcomes = [outcomes.0, outcomes.1, outcomes.2];
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 2, "two places were left");
        let full = outcomes.into_iter().find_map(Result::err).map(err).unwrap();
        assert!(full.for_field("message_id").is_some_and(|m| m.contains("unpin one")), "{full:?}");
        assert_eq!(pins::pins(core, bob.id, general).await.unwrap().len(), MAX_PINS as usize);
        // Unpinning frees a place; deleting a pinned message unpins it.
        pins::set_pinned(core, ann.id, first.id, false).await.unwrap();
        pins::set_pinned(core, ann.id, first.id, false).await.unwrap();
        assert_eq!(pins::pins(core, bob.id, general).await.unwrap().len(), MAX_PINS as usize - 1);
        messages::delete(core, ann.id, ids[0]).await.unwrap();
        let left = pins::pins(core, bob.id, general).await.unwrap();
        assert_eq!(left.len(), MAX_PINS as usize - 2);
        assert!(!left.iter().any(|p| p.message.id == ids[0]));
        assert_eq!(entity::pin::Entity::find().all(&state.db).await.unwrap().len(), MAX_PINS as usize - 1, "with the DM's");
        assert_eq!(err(pins::set_pinned(core, ann.id, ids[0], true).await.unwrap_err()), AppError::NotFound, "deleted");
    }

    async fn read_receipts_in_small_channels_between_those_who_share(db: TestDb) {
        let mut state = db.state(RegistrationMode::Open).await;
        state.config = std::sync::Arc::new(domain::config::Config { messages_per_minute: 100_000, ..(*state.config).clone() });
        let core = &state;
        let (club, general, [owner, ann, bob, eve]) = setup(core).await;
        let first = messages::send(core, owner.id, send(general, "r1", b"one")).await.unwrap().message;
        let second = messages::send(core, owner.id, send(general, "r2", b"two")).await.unwrap().message;
        assert_eq!(messages::mark_read(core, bob.id, general, second.seq).await.unwrap(), second.seq);
        messages::mark_read(core, ann.id, general, first.seq).await.unwrap();
        // Never backwards, never past the end.
        assert_eq!(messages::mark_read(core, ann.id, general, 0).await.unwrap(), first.seq);
        let seen = |list: Vec<app::model::messages::Receipt>| list.into_iter().map(|r| (r.user_id, r.seq)).collect::<Vec<_>>();
        assert_eq!(seen(receipts::receipts(core, owner.id, general).await.unwrap()), [(ann.id, first.seq), (bob.id, second.seq)]);
        assert_eq!(seen(receipts::receipts(core, bob.id, general).await.unwrap()), [(ann.id, first.seq)], "not my own");
        assert_eq!(err(receipts::receipts(core, eve.id, general).await.unwrap_err()), AppError::NotFound);
        // Bob stops sharing: the others no longer see how far he read, and he sees nobody's.
        receipts::set_sharing(core, bob.id, false).await.unwrap();
        assert_eq!(seen(receipts::receipts(core, owner.id, general).await.unwrap()), [(ann.id, first.seq)]);
        assert_eq!(seen(receipts::receipts(core, bob.id, general).await.unwrap()), []);
        receipts::set_sharing(core, bob.id, true).await.unwrap();
        assert_eq!(seen(receipts::receipts(core, owner.id, general).await.unwrap()).len(), 2);
        // In a DM.
        let dm = spaces::open_dm(core, owner.id, bob.id).await.unwrap().id;
        let said = messages::send(core, owner.id, send(dm, "d1", b"hi")).await.unwrap().message;
        messages::mark_read(core, bob.id, dm, said.seq).await.unwrap();
        assert_eq!(seen(receipts::receipts(core, owner.id, dm).await.unwrap()), [(bob.id, said.seq)]);
        assert_eq!(err(receipts::receipts(core, ann.id, dm).await.unwrap_err()), AppError::NotFound);
        // A channel of more than MAX_RECEIPT_READERS readers keeps none.
        let invite = spaces::create_invite(core, owner.id, club, None, None).await.unwrap();
        for i in 3..=MAX_RECEIPT_READERS {
            let u = new_user(&state.db, &format!("reader{i}")).await;
            spaces::join(core, u.id, &invite.code).await.unwrap();
        }
        assert_eq!(seen(receipts::receipts(core, owner.id, general).await.unwrap()), []);
        assert_eq!(seen(receipts::receipts(core, owner.id, dm).await.unwrap()).len(), 1, "the DM is still small");
    }

    async fn scheduled_messages_are_sent_when_due_as_their_sender(db: TestDb) {
        let mut state = db.state(RegistrationMode::Open).await;
        state.config = std::sync::Arc::new(domain::config::Config { messages_per_minute: 100_000, ..(*state.config).clone() });
        let core = &state;
        let (club, general, [owner, ann, bob, eve]) = setup(core).await;
        let now = chrono::Utc::now;
        let later = |bytes: &[u8], secs: i64| scheduled::Schedule {
            channel_id: general,
            device: "DEVICE1".into(),
            reply_to: None,
            ciphertext: Ciphertext(bytes.to_vec()),
            deliver_at: now() + chrono::Duration::seconds(secs),
        };
        // In the past, too soon, too far, a stranger's, another device's, a reaction as reply: refused.
        for secs in [-60, 2, 400 * 86_400] {
            let e = err(scheduled::schedule(core, bob.id, later(b"x", secs)).await.unwrap_err());
            assert!(e.for_field("deliver_at").is_some(), "{secs}: {e:?}");
        }
        assert_eq!(err(scheduled::schedule(core, eve.id, later(b"x", 60)).await.unwrap_err()), AppError::NotFound);
        let other_device = scheduled::Schedule { device: "NOT-HIS".into(), ..later(b"x", 60) };
        assert!(scheduled::schedule(core, bob.id, other_device).await.is_err());
        let first = scheduled::schedule(core, bob.id, later(b"later", 60)).await.unwrap();
        let second = scheduled::schedule(core, bob.id, later(b"gone", 60)).await.unwrap();
        scheduled::schedule(core, ann.id, later(b"ann's", 60)).await.unwrap();
        let ids = |list: Vec<app::model::messages::ScheduledMessage>| list.into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(scheduled::mine(core, bob.id).await.unwrap()), [first.id, second.id], "mine only");
        // Cancelling: only one's own, once.
        assert_eq!(err(scheduled::cancel(core, ann.id, first.id).await.unwrap_err()), AppError::NotFound);
        scheduled::cancel(core, bob.id, second.id).await.unwrap();
        assert_eq!(err(scheduled::cancel(core, bob.id, second.id).await.unwrap_err()), AppError::NotFound);
        // Nothing is due yet.
        assert_eq!(scheduled::deliver_due(core, now()).await.unwrap(), 0);
        // Ann is removed before her time: hers is dropped, not sent.
        spaces::kick(core, owner.id, club, ann.id).await.unwrap();
        let due = now() + chrono::Duration::seconds(61);
        assert_eq!(scheduled::deliver_due(core, due).await.unwrap(), 1);
        let page = messages::history(core, owner.id, general, None, None).await.unwrap();
        let sent: Vec<_> = page.messages.iter().map(|m| (m.id, m.sender_id, m.ciphertext.0.clone())).collect();
        assert_eq!(sent, [(first.id, bob.id, b"later".to_vec())], "under its own id, as Bob");
        assert!(scheduled::mine(core, bob.id).await.unwrap().is_empty());
        assert!(scheduled::mine(core, ann.id).await.unwrap().is_empty(), "dropped");
        // A second round (another node) sends nothing again.
        assert_eq!(scheduled::deliver_due(core, due).await.unwrap(), 0);
        // At most MAX_SCHEDULED_PER_PERSON waiting.
        for i in 0..MAX_SCHEDULED_PER_PERSON {
            scheduled::schedule(core, bob.id, later(format!("m{i}").as_bytes(), 3_600)).await.unwrap();
        }
        let full = err(scheduled::schedule(core, bob.id, later(b"one more", 3_600)).await.unwrap_err());
        assert!(full.for_field("deliver_at").is_some_and(|m| m.contains("cancel one")), "{full:?}");
    }

    async fn earlier_versions_for_readers_only(db: TestDb) {
        let mut state = db.state(RegistrationMode::Open).await;
        state.config = std::sync::Arc::new(domain::config::Config { messages_per_minute: 100_000, ..(*state.config).clone() });
        let core = &state;
        let (_, general, [_, ann, bob, eve]) = setup(core).await;
        let m = messages::send(core, bob.id, send(general, "v0", b"first")).await.unwrap().message;
        assert!(messages::versions(core, ann.id, m.id).await.unwrap().earlier.is_empty(), "never edited");
        messages::edit(core, bob.id, m.id, Ciphertext(b"second".to_vec())).await.unwrap();
        messages::edit(core, bob.id, m.id, Ciphertext(b"third".to_vec())).await.unwrap();
        let v = messages::versions(core, ann.id, m.id).await.unwrap();
        assert_eq!(v.message.ciphertext.0, b"third");
        let earlier: Vec<&[u8]> = v.earlier.iter().map(|e| e.ciphertext.0.as_slice()).collect();
        assert_eq!(earlier, [b"first".as_slice(), b"second".as_slice()], "oldest first");
        assert_eq!(err(messages::versions(core, eve.id, m.id).await.unwrap_err()), AppError::NotFound);
        assert_eq!(err(messages::versions(core, ann.id, Uuid::now_v7()).await.unwrap_err()), AppError::NotFound);
        // At most 100 earlier versions: then a new message, not another edit.
        for i in 2..MAX_VERSIONS {
            messages::edit(core, bob.id, m.id, Ciphertext(format!("v{i}").into_bytes())).await.unwrap();
        }
        let over = err(messages::edit(core, bob.id, m.id, Ciphertext(b"one too many".to_vec())).await.unwrap_err());
        assert!(over.for_field("message_id").is_some(), "{over:?}");
        assert_eq!(messages::versions(core, bob.id, m.id).await.unwrap().earlier.len() as u64, MAX_VERSIONS);
        // Deleted: the versions are erased, and asking finds nothing.
        messages::delete(core, bob.id, m.id).await.unwrap();
        assert_eq!(err(messages::versions(core, bob.id, m.id).await.unwrap_err()), AppError::NotFound);
    }

    async fn history_pages_newest_first(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let core = &state;
        let (_, general, [_, _, bob, _]) = setup(core).await;
        for i in 0..120 {
            messages::send(core, bob.id, send(general, &format!("m{i}"), format!("c{i}").as_bytes())).await.unwrap();
        }
        let page = messages::history(core, bob.id, general, None, None).await.unwrap();
        assert_eq!(page.messages.len(), 50);
        assert_eq!((page.messages[0].seq, page.messages[49].seq), (120, 71));
        let page2 = messages::history(core, bob.id, general, page.next_before, Some(1000)).await.unwrap();
        assert_eq!(page2.messages.len(), 70, "limit is capped at 100, and 70 remain");
        assert_eq!(page2.next_before, None);
        assert_eq!(page2.messages[0].seq, 70);
    }

    async fn concurrent_sends_get_distinct_consecutive_numbers(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let (_, general, [owner, ann, bob, _]) = setup(&state).await;
        let mut tasks = Vec::new();
        for (i, sender) in [owner.id, ann.id, bob.id].into_iter().cycle().take(30).enumerate() {
            let core = state.clone();
            tasks.push(tokio::spawn(async move { messages::send(&core, sender, send(general, &format!("c{i}"), b"x")).await.unwrap().message.seq }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs.sort();
        assert_eq!(seqs, (1..=30).collect::<Vec<i64>>());
    }

    async fn read_cursors_and_unread_counts(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let core = &state;
        let (_, general, [owner, _, bob, eve]) = setup(core).await;
        for i in 0..5 {
            messages::send(core, owner.id, send(general, &format!("o{i}"), b"x")).await.unwrap();
        }
        messages::send(core, bob.id, send(general, "own", b"x")).await.unwrap();
        let unread = |u| async move { messages::unread_counts(core, u).await.unwrap().into_iter().find(|x| x.channel_id == general).unwrap().count };
        assert_eq!(unread(bob.id).await, 5, "own messages count as unread");
        assert_eq!(messages::mark_read(core, bob.id, general, 3).await.unwrap(), 3);
        assert_eq!(unread(bob.id).await, 2);
        // Cursors never move backwards, nor past the channel's last event.
        assert_eq!(messages::mark_read(core, bob.id, general, 1).await.unwrap(), 3);
        assert_eq!(messages::mark_read(core, bob.id, general, 999).await.unwrap(), 6);
        assert_eq!(unread(bob.id).await, 0);
        // Several channels, each with its own count and cursor (they are counted in one statement).
        let group = entity::channel::Entity::find_by_id(general).one(&core.db).await.unwrap().unwrap().group_id.unwrap();
        let second = spaces::create_channel(core, owner.id, group, "second").await.unwrap().id;
        let dm = spaces::open_dm(core, owner.id, bob.id).await.unwrap().id;
        for (channel, n) in [(second, 4), (dm, 7), (general, 1)] {
            for i in 0..n {
                messages::send(core, owner.id, send(channel, &format!("m{channel}{i}"), b"x")).await.unwrap();
            }
        }
        messages::mark_read(core, bob.id, dm, 2).await.unwrap();
        let all = messages::unread_counts(core, bob.id).await.unwrap();
        let of = |c| all.iter().find(|u| u.channel_id == c).map(|u| (u.count, u.last_read_seq));
        assert_eq!((of(general), of(second), of(dm)), (Some((1, 6)), Some((4, 0)), Some((5, 2))), "{all:?}");
        assert_eq!(all.len(), 3);
        assert_eq!(err(messages::mark_read(core, eve.id, general, 1).await.unwrap_err()), AppError::NotFound);
        assert!(messages::unread_counts(core, eve.id).await.unwrap().is_empty());
    }

    async fn through_the_router_with_base64(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let mut client = Client::new(&state);
        client.call("auth/register", &[("username", "poster"), ("display_name", "P"), ("password", "correct horse battery")]).await;
        let community = client.call("communities/create", &[("name", "Mine")]).await;
        assert_eq!(community.status, 200, "{}", community.body);
        let mine: app::model::spaces::MySpaces = serde_json::from_str(&client.call("spaces/mine", &[]).await.body).unwrap();
        let general = mine.communities[0].groups[0].channels[0].id.to_string();
        let me: app::model::Me = serde_json::from_str(&client.call("auth/me", &[]).await.body).unwrap();
        // Only from one of the sender's registered devices.
        let unregistered = client.call("messages/send", &[("channel_id", &general), ("device", "D1"), ("client_txn", "a"), ("ciphertext_b64", "AAEC+g==")]).await;
        assert_eq!((unregistered.status, unregistered.error().for_field("device").is_some()), (422, true), "{}", unregistered.body);
        common::with_device(&state, me.id, "D1").await;
        let sent = client.call("messages/send", &[("channel_id", &general), ("device", "D1"), ("client_txn", "a"), ("ciphertext_b64", "AAEC+g==")]).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        assert!(sent.body.contains(r#""ciphertext":"AAEC+g==""#), "{}", sent.body);
        let bad = client.call("messages/send", &[("channel_id", &general), ("device", "D1"), ("client_txn", "b"), ("ciphertext_b64", "%%%")]).await;
        assert_eq!(bad.status, 422);
        assert!(bad.error().for_field("ciphertext").is_some());
        let page = client.call("messages/history", &[("channel_id", &general)]).await;
        assert!(page.body.contains("AAEC+g=="), "{}", page.body);

        // The same 64 KiB limit as on the socket, even when form-encoding triples every `+` and `/`.
        use base64::Engine;
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![0xFB; n]);
        let biggest = client.call("messages/send", &[("channel_id", &general), ("device", "D1"), ("client_txn", "big"), ("ciphertext_b64", &b64(MAX_CIPHERTEXT))]).await;
        assert_eq!(biggest.status, 200, "{}", &biggest.body[..biggest.body.len().min(200)]);
        let too_big = client.call("messages/send", &[("channel_id", &general), ("device", "D1"), ("client_txn", "bigger"), ("ciphertext_b64", &b64(MAX_CIPHERTEXT + 1))]).await;
        assert_eq!((too_big.status, too_big.error().for_field("ciphertext").is_some()), (422, true), "{}", &too_big.body[..too_big.body.len().min(200)]);
    }
}

/// A PostgreSQL database without table statistics (restored, bulk-loaded) is analyzed when the
/// server starts on it: without statistics a page of history scans the whole channel.
#[tokio::test]
#[cfg_attr(not(chatalot_pg), ignore = "PostgreSQL: set TEST_DATABASE_URL=postgres://… when building the tests")]
async fn start_up_analyzes_a_postgres_database_without_statistics() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let db = common::TestDb::postgres().await;
    let state = db.state(RegistrationMode::Open).await;
    let core = &state;
    let (_, general, [_, _, bob, _]) = setup(core).await;
    messages::send(core, bob.id, send(general, "m", b"x")).await.unwrap();
    let statistics = |conn: sea_orm::DatabaseConnection| async move {
        let sql = "SELECT count(*) AS n FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'messages'";
        let row = conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    assert_eq!(statistics(state.db.clone()).await, 0, "a database just filled has none");
    // The server starts again on it.
    let again = domain::db::connect_and_migrate(&db.url.clone().into()).await.unwrap();
    assert!(statistics(again.clone()).await > 0, "start-up analyzed it");
    again.close().await.unwrap();
}
