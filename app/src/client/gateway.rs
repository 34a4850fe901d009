//! The gateway connection: one WebSocket to `/ws`, reconnected with backoff, resuming every opened
//! channel where it left off. Frames are handled in order, so a room key (to-device) that arrived
//! before a message is stored before that message is decrypted.

use super::{Runtime, now_ms};
use crate::{
    api::{keys::ack_to_device, messages::channel_events},
    chat::Connection,
    crypto::machine::Machine,
    model::{
        gateway::{ClientFrame, PROTOCOL_VERSION, ResumePoint, ServerFrame},
        keys::ToDeviceMessage,
    },
};
use futures::{FutureExt, SinkExt, StreamExt, channel::mpsc};
use gloo_net::websocket::{Message, WebSocketError, futures::WebSocket};
use leptos::prelude::*;
use std::{collections::HashMap, rc::Rc};
use uuid::Uuid;

/// The close codes after which reconnecting cannot help.
const PROTOCOL_REFUSED: u16 = 4003;
const WRONG_DEVICE: u16 = 4004;

pub(super) async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

fn url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}/ws", location.host().ok()?))
}

/// Connects, and reconnects until the runtime is stopped.
pub(super) async fn run(rt: Rc<Runtime>) {
    let mut failures = 0u32;
    // Typing indicators expire on their own.
    leptos::task::spawn_local({
        let rt = rt.clone();
        async move {
            while rt.is_current() {
                sleep(1000).await;
                // Signed out meanwhile: the state this reads is gone with the page.
                if !rt.is_current() {
                    break;
                }
                let now = now_ms();
                if rt.chat.typing.with_untracked(|all| all.values().any(|m| m.values().any(|until| *until <= now))) {
                    rt.chat.typing.update(|all| all.values_mut().for_each(|m| m.retain(|_, until| *until > now)));
                }
            }
        }
    });
    while rt.is_current() {
        rt.chat.connection.set(Connection::Connecting);
        let reason = match connect(&rt, &mut failures).await {
            // Stopped (sign out), or this tab just became the leader: reconnect as such.
            Ok(()) if rt.is_current() => continue,
            Ok(()) => return,
            Err(Fatal(reason)) => {
                rt.chat.connection.set(Connection::Offline(reason));
                return;
            }
            Err(Retry(reason)) => reason,
        };
        if !rt.is_current() {
            return;
        }
        failures += 1;
        // 0.5 s, 1 s, 2 s … up to 30 s, so a restarting server is not stampeded.
        let wait = (500 * 2i32.pow(failures.min(6))).min(30_000);
        rt.chat.connection.set(Connection::Offline(format!("{reason} Reconnecting in {} s…", wait / 1000)));
        sleep(wait).await;
    }
}

enum Stop {
    Retry(String),
    Fatal(String),
}
use Stop::{Fatal, Retry};

/// One connection, until it closes. `Ok` when the runtime was stopped.
async fn connect(rt: &Rc<Runtime>, failures: &mut u32) -> Result<(), Stop> {
    let url = url().ok_or_else(|| Fatal("no page location".into()))?;
    let socket = WebSocket::open(&url).map_err(|e| Retry(format!("Could not connect ({e}).")))?;
    let (mut write, read) = socket.split();
    let mut read = read.fuse();
    let (outbox, mut frames) = mpsc::unbounded::<ClientFrame>();
    // Every opened channel resumes after the last event this tab has.
    let resume: Vec<ResumePoint> = rt.chat.timelines.with_value(|m| {
        m.iter()
            .filter_map(|(id, t)| {
                t.with_untracked(|t| {
                    // A thread's events come with its channel's.
                    (t.loaded && !t.removed && t.thread_of.is_none())
                        .then_some(ResumePoint { channel_id: *id, last_seq: t.last_seq })
                })
            })
            .collect()
    });
    // Only the leading tab speaks for the device (receives its to-device messages).
    let device = rt.is_leader().then(|| rt.vault.device_id().to_owned());
    let hello = ClientFrame::Hello { protocol: PROTOCOL_VERSION, device, resume };
    write
        .send(Message::Text(serde_json::to_string(&hello).unwrap_or_default()))
        .await
        .map_err(|e| Retry(format!("Could not connect ({e}).")))?;
    *rt.outbox.borrow_mut() = Some(outbox);
    let result = loop {
        futures::select! {
            frame = frames.next() => match frame {
                Some(frame) => {
                    if let Ok(text) = serde_json::to_string(&frame)
                        && write.send(Message::Text(text)).await.is_err()
                    {
                        break Err(Retry("The connection dropped.".into()));
                    }
                }
                // The runtime was stopped or replaced.
                None => break Ok(()),
            },
            incoming = read.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    // Frames already waiting are handled together (one unlock of the crypto state
                    // for a burst of messages).
                    let mut batch = vec![text];
                    while let Some(Some(Ok(Message::Text(more)))) = read.next().now_or_never() {
                        batch.push(more);
                    }
                    handle(rt, batch, failures).await;
                }
                Some(Ok(Message::Bytes(_))) => {}
                Some(Err(WebSocketError::ConnectionClose(close))) => break Err(match close.code {
                    PROTOCOL_REFUSED => Fatal("This page is older than the server: reload it.".into()),
                    WRONG_DEVICE => Fatal("The server does not know this browser's device any more: reload the page.".into()),
                    // 4001: the sign-in expired or ended. Reconnecting with the session cookie
                    // refreshes the token; if the session is gone, the upgrade fails until sign-in.
                    _ => Retry("The connection closed.".into()),
                }),
                Some(Err(e)) => break Err(Retry(format!("The connection failed ({e})."))),
                None => break Err(Retry("The connection closed.".into())),
            },
        }
    };
    rt.outbox.borrow_mut().take();
    result
}

async fn handle(rt: &Rc<Runtime>, texts: Vec<String>, failures: &mut u32) {
    // Consecutive events are grouped per channel, keeping their order.
    let mut events: Vec<(Uuid, Vec<crate::model::messages::ChannelEvent>)> = vec![];
    for text in texts {
        let frame = match serde_json::from_str::<ServerFrame>(&text) {
            Ok(f) => f,
            Err(e) => {
                leptos::logging::warn!("ignoring a frame the client does not understand: {e}");
                continue;
            }
        };
        if let ServerFrame::Event { event } = frame {
            super::trace("receive", super::precise_ms());
            match events.last_mut() {
                Some((ch, list)) if *ch == event.channel_id => list.push(event),
                _ => events.push((event.channel_id, vec![event])),
            }
            continue;
        }
        for (channel, list) in events.drain(..) {
            rt.apply_events(channel, list).await;
        }
        handle_one(rt, frame, failures).await;
    }
    for (channel, list) in events {
        rt.apply_events(channel, list).await;
    }
}

thread_local! {
    /// A `ready` came before in this tab: the next one is a reconnect.
    static READY_BEFORE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

async fn handle_one(rt: &Rc<Runtime>, frame: ServerFrame, failures: &mut u32) {
    let chat = rt.chat;
    match frame {
        ServerFrame::Ready { unread, user_id, .. } => {
            *failures = 0;
            let reconnected = READY_BEFORE.with(|r| r.replace(true));
            chat.connection.set(Connection::Online);
            // Pins changed while away were not announced here: the open conversation reads its
            // pins again (its receipts reload by themselves on reconnecting).
            if reconnected && let Some(channel) = chat.viewing.get_untracked() {
                chat.pins_changed.update(|m| *m.entry(channel).or_default() += 1);
            }
            // Who is online comes next, in full: whoever it does not list is offline.
            chat.presence.update(|p| p.retain(|u, _| *u == user_id));
            chat.unread.set(Some(unread.iter().map(|u| (u.channel_id, *u)).collect::<HashMap<_, _>>()));
            {
                let rt = rt.clone();
                leptos::task::spawn_local(async move { rt.recount_mentions(unread).await });
            }
            // Something may have changed while disconnected.
            chat.spaces_changed.update(|n| *n += 1);
            if let Some(channel) = chat.viewing.get_untracked()
                && let Some(t) = chat.opened(channel)
            {
                rt.mark_read(channel, t.with_untracked(|t| t.last_seq));
            }
        }
        ServerFrame::Event { event } => rt.apply_events(event.channel_id, vec![event]).await,
        ServerFrame::Sent { .. } | ServerFrame::Pong { .. } => {}
        ServerFrame::Typing { channel_id, user_id, expires_in_ms } => chat.typing.update(|all| {
            all.entry(channel_id).or_default().insert(user_id, now_ms() + f64::from(expires_in_ms));
        }),
        ServerFrame::Presence { user_id, status } => chat.presence.update(|p| {
            p.insert(user_id, status);
        }),
        // Others' statuses; one's own is what `presence` frames say (others see invisible as offline).
        ServerFrame::Presences { .. } => {
            let me = chat.me.get_value();
            chat.presence.update(|p| p.extend(frame.presences().into_iter().filter(|(u, _)| *u != me)));
        }
        ServerFrame::Read { channel_id, seq } => {
            // Read elsewhere (another tab or device): its mentions were seen too.
            chat.mentions.update(|m| {
                m.remove(&channel_id);
            });
            chat.unread.update(|u| {
                if let Some(entry) = u.as_mut().and_then(|u| u.get_mut(&channel_id))
                    && seq >= entry.last_read_seq
                {
                    entry.count = 0;
                    entry.last_read_seq = seq;
                }
            });
        }
        // Kept only for channels whose receipts were loaded (opened here), and only moving forward;
        // `seq` 0 withdraws one (its reader turned receipts off).
        ServerFrame::Receipt { channel_id, user_id, seq } => chat.receipts.update(|all| {
            if let Some(readers) = all.get_mut(&channel_id) {
                if seq <= 0 {
                    readers.remove(&user_id);
                } else {
                    let at = readers.entry(user_id).or_default();
                    *at = (*at).max(seq);
                }
            }
        }),
        ServerFrame::ToDevice { message } => receive_to_device(rt, message).await,
        // The next message to the channels it shared rotates its session (the recipient set shrank).
        ServerFrame::DeviceRemoved { .. } => {}
        ServerFrame::MembersChanged { .. } => chat.members_changed.update(|n| *n += 1),
        ServerFrame::PinsChanged { channel_id } => chat.pins_changed.update(|m| *m.entry(channel_id).or_default() += 1),
        ServerFrame::ChannelAdded { .. } | ServerFrame::ChannelChanged { .. } => {
            chat.spaces_changed.update(|n| *n += 1)
        }
        ServerFrame::ChannelRemoved { channel_id } => {
            if let Some(t) = chat.opened(channel_id) {
                t.update(|t| t.removed = true);
            }
            chat.spaces_changed.update(|n| *n += 1);
        }
        ServerFrame::Resync { channel_id, after_seq } => {
            let mut after = after_seq;
            // Pages of events until caught up.
            while let Ok(events) = channel_events(channel_id, after, None).await {
                let Some(last) = events.last().map(|e| e.seq) else { break };
                rt.apply_events(channel_id, events).await;
                after = last;
            }
        }
        ServerFrame::Error { code, message, .. } => {
            leptos::logging::warn!("gateway refused a frame: {code:?} {message}");
        }
    }
}

/// A to-device message: room keys are stored (then waiting messages are tried again); the queue
/// entry is acknowledged only after the state that consumed it was saved.
async fn receive_to_device(rt: &Rc<Runtime>, message: ToDeviceMessage) {
    let id = message.id;
    let outcome = rt
        .vault
        .with(async |m: &mut Machine, relay| {
            let out = m.receive_to_device(relay, &message).await;
            rt.take_warnings(m);
            out
        })
        .await;
    match outcome {
        Ok(Ok(None)) => {
            rt.retry_undecrypted().await;
            leptos::task::spawn_local({
                let rt = rt.clone();
                async move { super::backup::upload(&rt).await }
            });
        }
        Ok(Ok(Some((sender, content)))) => super::verification::receive(rt, sender, content).await,
        Ok(Err(e)) => leptos::logging::warn!("a to-device message was refused: {e}"),
        // Not saved: not acknowledged, so it comes again on the next connection.
        Err(e) => {
            leptos::logging::warn!("could not store a to-device message: {e}");
            return;
        }
    }
    let _ = ack_to_device(rt.vault.device_id().to_owned(), id).await;
    if let Err(e) = rt.vault.replenish().await {
        leptos::logging::warn!("could not publish new one-time keys: {e}");
    }
}
