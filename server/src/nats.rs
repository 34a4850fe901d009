//! The bus between nodes: every signal is published on one NATS subject, and every node (the
//! publisher included) dispatches what it receives into its own hub. One subject and one
//! subscription per node keep each publisher's order; `publish` flushes, so a signal published
//! after another one returned reaches every node after it.
//!
//! Core NATS keeps nothing: if this node loses its NATS connection, signals published meanwhile are
//! gone. So when the connection comes back, every local socket is closed with "reconnect": clients
//! resume from the database, which has everything.

use async_nats::{ConnectOptions, Event};
use domain::realtime::{Bus, BusError, BusFuture, Close, Hub, Realtime, Signal};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

/// The subject every node publishes to and subscribes to.
pub const SUBJECT: &str = "chatalot.v1.signals";

/// Close code for sockets that may have missed signals while the bus was away.
const BUS_RECONNECTED: Close = Close { code: 1012, reason: "event bus reconnected: resume" };

pub struct NatsBus {
    client: async_nats::Client,
}

impl Bus for NatsBus {
    fn publish(&self, signal: Signal) -> BusFuture<'_> {
        Box::pin(async move {
            let payload = serde_json::to_vec(&signal).map_err(|e| BusError(e.to_string()))?;
            self.client.publish(SUBJECT, payload.into()).await.map_err(|e| BusError(e.to_string()))?;
            self.client.flush().await.map_err(|e| BusError(e.to_string()))
        })
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}

/// Connects to NATS, subscribes this node's hub, and asks the other nodes who is online.
pub async fn connect(url: &SecretString, hub: Hub) -> Result<Realtime, String> {
    let lost = Arc::new(AtomicBool::new(false));
    let options = ConnectOptions::new().name("chatalot").event_callback({
        let (hub, lost) = (hub.clone(), lost.clone());
        move |event| {
            let (hub, lost) = (hub.clone(), lost.clone());
            async move {
                match event {
                    Event::Disconnected => {
                        lost.store(true, Ordering::SeqCst);
                        tracing::warn!("lost the NATS connection; reconnecting");
                    }
                    Event::Connected if lost.swap(false, Ordering::SeqCst) => {
                        tracing::warn!(sockets = hub.connections(), "NATS is back: closing sockets so clients resume");
                        hub.close_all(BUS_RECONNECTED);
                    }
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            }
        }
    });
    // The URL may carry credentials: errors are reported without it.
    let client = options.connect(url.expose_secret()).await.map_err(|e| format!("cannot connect to NATS: {e}"))?;
    let mut subscription =
        client.subscribe(SUBJECT).await.map_err(|e| format!("cannot subscribe to {SUBJECT} on NATS: {e}"))?;
    let bus = Arc::new(NatsBus { client });
    tokio::spawn({
        let (hub, bus) = (hub.clone(), bus.clone());
        async move {
            while let Some(message) = subscription.next().await {
                match serde_json::from_slice::<Signal>(&message.payload) {
                    Ok(signal) => {
                        for follow_up in hub.dispatch(signal) {
                            if let Err(e) = bus.publish(follow_up).await {
                                tracing::warn!(error = %e, "publishing a follow-up signal failed");
                            }
                        }
                    }
                    // A node of another version, or garbage on our subject: skip it, keep going.
                    Err(e) => tracing::warn!(error = %e, bytes = message.payload.len(), "unreadable signal skipped"),
                }
            }
            tracing::error!("the NATS subscription ended; this node no longer receives other nodes' events");
        }
    });
    let realtime = Realtime { hub: hub.clone(), bus };
    realtime.publish(Signal::PresenceQuery { node: hub.node() }).await;
    Ok(realtime)
}
