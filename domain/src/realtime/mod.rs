//! Real-time fan-out. Services persist first; then what happened is published on the [`Bus`] as a
//! [`Signal`]. Every node receives every signal (its own included) and its [`Hub`] hands it to the
//! local sockets that may see it. The in-process bus ([`LocalBus`]) serves one node; the NATS bus
//! (in the `server` crate) serves several nodes sharing one database.

mod hub;

pub use hub::{Close, Hub, Outbound, Registration, SharedEvent, Subscriptions};

use protocol::model::{gateway::Presence, keys::ToDeviceMessage, messages::ChannelEvent};
use serde::{Deserialize, Serialize};
use std::{fmt, future::Future, pin::Pin, sync::Arc};
use uuid::Uuid;

/// Something that happened, as it travels between nodes. Recipients are decided by each node's
/// hub from its own sockets' subscriptions; a signal never carries more than its recipients may see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Signal {
    /// A stored message event: to every socket subscribed to its channel.
    Event {
        event: ChannelEvent,
    },
    Typing {
        channel_id: Uuid,
        user_id: Uuid,
    },
    /// A user's chosen status and whether `node` has sockets of theirs; `communities` decides who may see it.
    Presence {
        user_id: Uuid,
        node: Uuid,
        status: Presence,
        connected: bool,
        communities: Vec<Uuid>,
    },
    /// A read cursor moved: to the user's own sockets.
    Read {
        user_id: Uuid,
        channel_id: Uuid,
        seq: i64,
    },
    /// A reader who shares read receipts read up to `seq` in a small channel: to its other readers.
    Receipt {
        user_id: Uuid,
        channel_id: Uuid,
        seq: i64,
    },
    ToDevice {
        user_id: Uuid,
        device_id: String,
        message: ToDeviceMessage,
    },
    /// To everyone sharing one of `channels` with the user.
    DeviceRemoved {
        user_id: Uuid,
        device_id: String,
        channels: Vec<Uuid>,
    },
    /// The user left, was kicked or banned: their sockets drop the community's channels at once.
    LeftCommunity {
        user_id: Uuid,
        community_id: Uuid,
    },
    /// These users may see new channels (joined, new DM, added to a private group): recompute.
    Resubscribe {
        users: Vec<Uuid>,
    },
    /// The community's channels changed (new group or channel): its members' sockets recompute.
    CommunityChanged {
        community_id: Uuid,
    },
    /// A channel's settings changed: the sockets reading it are told.
    ChannelChanged {
        channel_id: Uuid,
    },
    /// A channel's pins changed: the sockets reading it are told.
    PinsChanged {
        channel_id: Uuid,
    },
    /// The community's members changed (joined, left, kicked, banned, new role): its sockets are told.
    MembersChanged {
        community_id: Uuid,
    },
    /// Sessions ended (logout: one session; password change, recovery, suspension: all): close sockets.
    Revoke {
        user_id: Uuid,
        session: Option<Uuid>,
    },
    /// A node started and asks the others who is connected to them.
    PresenceQuery {
        node: Uuid,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("the event bus is unavailable: {0}")]
pub struct BusError(pub String);

pub type BusFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send + 'a>>;

/// Carries signals to every node's hub, in the order one publisher published them. `publish`
/// returns once the signal is on its way to every node (for NATS: flushed to the server), so a
/// signal published after another one returned is delivered after it, whichever node sent it.
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, signal: Signal) -> BusFuture<'_>;
    /// A name for logs and health: "in-process" or "nats".
    fn kind(&self) -> &'static str;
}

/// One node: publishing dispatches straight into the hub.
pub struct LocalBus {
    hub: Hub,
}

impl LocalBus {
    pub fn new(hub: Hub) -> Self {
        Self { hub }
    }
}

impl Bus for LocalBus {
    fn publish(&self, signal: Signal) -> BusFuture<'_> {
        let mut queue = vec![signal];
        while let Some(signal) = queue.pop() {
            queue.extend(self.hub.dispatch(signal));
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn kind(&self) -> &'static str {
        "in-process"
    }
}

/// The hub of this node and the bus between nodes.
#[derive(Clone)]
pub struct Realtime {
    pub hub: Hub,
    pub bus: Arc<dyn Bus>,
}

impl fmt::Debug for Realtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Realtime").field("node", &self.hub.node()).field("bus", &self.bus.kind()).finish()
    }
}

impl Realtime {
    /// A single node with the in-process bus.
    pub fn local() -> Self {
        let hub = Hub::new(Uuid::new_v4());
        Self { bus: Arc::new(LocalBus::new(hub.clone())), hub }
    }

    /// Publishes after the change is stored. A bus failure is logged, not returned: the change is
    /// durable, and sockets that missed it catch up from the database when they resume.
    pub async fn publish(&self, signal: Signal) {
        if let Err(e) = self.bus.publish(signal).await {
            tracing::warn!(error = %e, "publish failed; clients catch up on resume");
        }
    }

    pub async fn publish_all(&self, signals: impl IntoIterator<Item = Signal>) {
        for s in signals {
            self.publish(s).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::model::messages::{Ciphertext, Envelope, EventKind, MessageKind};

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// Nodes of different versions exchange these over NATS during a rolling upgrade: the JSON of
    /// every signal is a contract. Changing a line here is a decision (and a protocol version).
    #[test]
    fn signals_between_nodes_keep_their_json() {
        let envelope = Envelope {
            id: id(3),
            channel_id: id(2),
            seq: 7,
            sender_id: id(1),
            sender_device: "D".into(),
            client_txn: "t".into(),
            kind: MessageKind::Text,
            reply_to: None,
            thread_id: None,
            ciphertext: Ciphertext(vec![1, 2, 3]),
            created_at: "2026-01-01T00:00:00+00:00".into(),
            edited_at: None,
            expires_at: None,
        };
        let u1 = "00000000-0000-0000-0000-000000000001";
        let u2 = "00000000-0000-0000-0000-000000000002";
        let u3 = "00000000-0000-0000-0000-000000000003";
        let cases = [
            (
                Signal::Event {
                    event: ChannelEvent { channel_id: id(2), seq: 7, kind: EventKind::Created, message: envelope },
                },
                format!(
                    r#"{{"t":"event","event":{{"channel_id":"{u2}","seq":7,"kind":"created","message":{{"id":"{u3}","channel_id":"{u2}","seq":7,"sender_id":"{u1}","sender_device":"D","client_txn":"t","kind":"text","reply_to":null,"ciphertext":"AQID","created_at":"2026-01-01T00:00:00+00:00","edited_at":null}}}}}}"#
                ),
            ),
            (
                Signal::Typing { channel_id: id(2), user_id: id(1) },
                format!(r#"{{"t":"typing","channel_id":"{u2}","user_id":"{u1}"}}"#),
            ),
            (
                Signal::Presence {
                    user_id: id(1),
                    node: id(3),
                    status: Presence::Dnd,
                    connected: true,
                    communities: vec![id(2)],
                },
                format!(
                    r#"{{"t":"presence","user_id":"{u1}","node":"{u3}","status":"dnd","connected":true,"communities":["{u2}"]}}"#
                ),
            ),
            (
                Signal::Read { user_id: id(1), channel_id: id(2), seq: 4 },
                format!(r#"{{"t":"read","user_id":"{u1}","channel_id":"{u2}","seq":4}}"#),
            ),
            (
                Signal::Receipt { user_id: id(1), channel_id: id(2), seq: 4 },
                format!(r#"{{"t":"receipt","user_id":"{u1}","channel_id":"{u2}","seq":4}}"#),
            ),
            (
                Signal::ToDevice {
                    user_id: id(1),
                    device_id: "P".into(),
                    message: ToDeviceMessage {
                        id: id(3),
                        sender_user: id(2),
                        sender_device: "Q".into(),
                        payload: Ciphertext(vec![9]),
                    },
                },
                format!(
                    r#"{{"t":"to_device","user_id":"{u1}","device_id":"P","message":{{"id":"{u3}","sender_user":"{u2}","sender_device":"Q","payload":"CQ=="}}}}"#
                ),
            ),
            (
                Signal::DeviceRemoved { user_id: id(1), device_id: "P".into(), channels: vec![id(2)] },
                format!(r#"{{"t":"device_removed","user_id":"{u1}","device_id":"P","channels":["{u2}"]}}"#),
            ),
            (
                Signal::LeftCommunity { user_id: id(1), community_id: id(2) },
                format!(r#"{{"t":"left_community","user_id":"{u1}","community_id":"{u2}"}}"#),
            ),
            (Signal::Resubscribe { users: vec![id(1)] }, format!(r#"{{"t":"resubscribe","users":["{u1}"]}}"#)),
            (
                Signal::CommunityChanged { community_id: id(2) },
                format!(r#"{{"t":"community_changed","community_id":"{u2}"}}"#),
            ),
            (Signal::ChannelChanged { channel_id: id(2) }, format!(r#"{{"t":"channel_changed","channel_id":"{u2}"}}"#)),
            (Signal::PinsChanged { channel_id: id(2) }, format!(r#"{{"t":"pins_changed","channel_id":"{u2}"}}"#)),
            (
                Signal::MembersChanged { community_id: id(2) },
                format!(r#"{{"t":"members_changed","community_id":"{u2}"}}"#),
            ),
            (
                Signal::Revoke { user_id: id(1), session: None },
                format!(r#"{{"t":"revoke","user_id":"{u1}","session":null}}"#),
            ),
            (Signal::PresenceQuery { node: id(3) }, format!(r#"{{"t":"presence_query","node":"{u3}"}}"#)),
        ];
        for (signal, json) in cases {
            assert_eq!(serde_json::to_string(&signal).unwrap(), json);
            assert_eq!(serde_json::from_str::<Signal>(&json).unwrap(), signal, "{json} reads back");
        }
    }

    /// Every variant has a line above: serde lists the variants it expects when it refuses one.
    #[test]
    fn every_signal_has_a_snapshot() {
        let refused = serde_json::from_str::<Signal>(r#"{"t":"no_such_signal"}"#).unwrap_err().to_string();
        let variants =
            refused.split("expected one of").nth(1).unwrap_or_default().split('`').skip(1).step_by(2).count();
        assert_eq!(variants, 15, "a new signal needs its JSON pinned above: {refused}");
    }
}
