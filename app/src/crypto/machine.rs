//! The client's crypto flows in one place: what to ask the relay, in which order, and what to
//! check, for sending a channel message and for receiving to-device payloads. The relay is a trait:
//! the browser implements it with server functions, tests with an HTTP client against the real
//! server. Persisting the state (before sending what it produced) stays with the caller.

use super::{
    CryptoError, CryptoResult,
    channel::{ChannelPlaintext, Channels, Decrypted},
    device::{Device, VerifiedDevice, verify_claimed_key, verify_device},
    olm::ToDeviceContent,
    trust::{Seen, Trust},
};
use crate::model::keys::{ClaimedKey, DeviceKeys, OutgoingToDevice, ToDeviceMessage};
use crate::model::messages::{Ciphertext, Envelope};
use std::future::Future;
use uuid::Uuid;

/// What the crypto flows need from the server (the key directory and the to-device queue).
pub trait Relay {
    /// Every device of every member of a channel.
    fn channel_devices(&self, channel_id: Uuid) -> impl Future<Output = CryptoResult<Vec<DeviceKeys>>>;
    fn user_devices(&self, user_id: Uuid) -> impl Future<Output = CryptoResult<Vec<DeviceKeys>>>;
    fn claim(&self, user_id: Uuid, device_id: &str) -> impl Future<Output = CryptoResult<ClaimedKey>>;
    fn send_to_device(&self, batch: Vec<OutgoingToDevice>) -> impl Future<Output = CryptoResult<()>>;
}

/// Something the user should see about another device's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyWarning {
    /// The directory lists keys that the device did not sign: never encrypted to, never believed.
    Forged { user: Uuid, device_id: String, reason: String },
    /// A known device now has another key (trust on first use): shown until accepted or verified.
    Changed { user: Uuid, device_id: String, previous: String, now: String },
}

/// This device's whole crypto state.
#[derive(Debug)]
pub struct Machine {
    pub device: Device,
    pub channels: Channels,
    pub trust: Trust,
    /// Warnings not yet shown.
    pub warnings: Vec<KeyWarning>,
}

impl Machine {
    pub fn new(device: Device) -> Self {
        Self { device, channels: Channels::default(), trust: Trust::default(), warnings: vec![] }
    }

    /// Checks listed devices: forged ones are dropped with a warning; one whose key changed since
    /// it was first seen warns and is dropped too until the user accepts the new key or verifies
    /// it (a server that made up keys for a known device must not receive room keys), unless
    /// `with_changed` (to pick it for verification).
    fn check(&mut self, listed: &[DeviceKeys], with_changed: bool) -> Vec<VerifiedDevice> {
        let mut good = Vec::with_capacity(listed.len());
        for keys in listed {
            match verify_device(keys, keys.user_id) {
                Ok(device) => {
                    if let Seen::Changed { previous } = self.trust.observe(&device) {
                        self.warnings.push(KeyWarning::Changed {
                            user: device.user,
                            device_id: device.device_id.clone(),
                            previous,
                            now: device.ed25519.clone(),
                        });
                        if !with_changed {
                            continue;
                        }
                    }
                    good.push(device);
                }
                Err(e) => self.warnings.push(KeyWarning::Forged {
                    user: keys.user_id,
                    device_id: keys.device_id.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        good
    }

    /// Encrypts a message for its channel: the room key goes first, over Olm, to every checked
    /// device of every member that lacks it (claiming one-time keys where there is no Olm session
    /// yet). Returns the ciphertext to send. Persist the state before sending it.
    pub async fn encrypt(
        &mut self,
        relay: &impl Relay,
        plaintext: &ChannelPlaintext,
        now_ms: u64,
    ) -> CryptoResult<Ciphertext> {
        let listed = relay.channel_devices(plaintext.channel_id).await?;
        let recipients = self.check(&listed, false);
        let keys = self.channels.prepare(&self.device, plaintext.channel_id, &recipients, now_ms);
        let mut batch = Vec::with_capacity(keys.len());
        for (device, content) in keys {
            let claimed = if self.device.has_session_with(&device) {
                None
            } else {
                match relay.claim(device.user, &device.device_id).await.and_then(|c| verify_claimed_key(&device, &c)) {
                    Ok(key) => Some(key),
                    // The server handed out a key the device did not sign: that device gets
                    // nothing (and is asked again next time); everyone else still gets the message.
                    Err(e @ (CryptoError::BadKeySignature(_) | CryptoError::BadKey(_))) => {
                        self.channels.unshare(plaintext.channel_id, &device);
                        self.warnings.push(KeyWarning::Forged {
                            user: device.user,
                            device_id: device.device_id.clone(),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                    Err(e) => {
                        // A device without a usable key cannot read this session; it must not be
                        // counted as having it, so the next send tries again with a fresh session.
                        self.channels.rotate(plaintext.channel_id);
                        return Err(e);
                    }
                }
            };
            let payload = Ciphertext(self.device.encrypt_to_device(&device, claimed, content)?);
            batch.push(OutgoingToDevice { recipient_user: device.user, recipient_device: device.device_id, payload });
        }
        if !batch.is_empty()
            && let Err(e) = relay.send_to_device(batch).await
        {
            self.channels.rotate(plaintext.channel_id);
            return Err(e);
        }
        Ok(Ciphertext(self.channels.encrypt(&self.device, plaintext)?))
    }

    /// Opens a to-device message: the sender's keys come from the directory and are checked; room
    /// keys are kept; anything else (verification frames) is returned for the UI.
    pub async fn receive_to_device(
        &mut self,
        relay: &impl Relay,
        message: &ToDeviceMessage,
    ) -> CryptoResult<Option<(VerifiedDevice, ToDeviceContent)>> {
        let listed = relay.user_devices(message.sender_user).await?;
        let keys = listed
            .iter()
            .find(|k| k.device_id == message.sender_device)
            .ok_or(CryptoError::WrongSender("device not listed"))?;
        let sender = self
            .check(std::slice::from_ref(keys), false)
            .pop()
            .ok_or(CryptoError::WrongSender("forged device keys"))?;
        let content = match self.device.decrypt_to_device(&sender, &message.payload.0) {
            Ok(content) => content,
            Err(CryptoError::Decrypt(reason)) => {
                // The Olm session with this device is wedged (state lost or restored from an old
                // copy, or too many skipped messages): open a new one and tell the sender with a
                // dummy, so that what it sends next gets through. This message stays unreadable.
                self.restart_session(relay, &sender).await?;
                return Err(CryptoError::Decrypt(reason));
            }
            Err(e) => return Err(e),
        };
        match content {
            ToDeviceContent::RoomKey { .. } => {
                self.channels.add_room_key(&sender, &content)?;
                Ok(None)
            }
            ToDeviceContent::Dummy => Ok(None),
            other => Ok(Some((sender, other))),
        }
    }

    async fn restart_session(&mut self, relay: &impl Relay, peer: &VerifiedDevice) -> CryptoResult<()> {
        let claimed = relay.claim(peer.user, &peer.device_id).await?;
        self.device.restart_session(peer, verify_claimed_key(peer, &claimed)?)?;
        self.send_to(relay, peer, ToDeviceContent::Dummy).await
    }

    /// Sends one payload to one device over Olm (claiming a one-time key if there is no session).
    pub async fn send_to(
        &mut self,
        relay: &impl Relay,
        peer: &VerifiedDevice,
        content: ToDeviceContent,
    ) -> CryptoResult<()> {
        let claimed = if self.device.has_session_with(peer) {
            None
        } else {
            Some(verify_claimed_key(peer, &relay.claim(peer.user, &peer.device_id).await?)?)
        };
        let payload = Ciphertext(self.device.encrypt_to_device(peer, claimed, content)?);
        relay
            .send_to_device(vec![OutgoingToDevice {
                recipient_user: peer.user,
                recipient_device: peer.device_id.clone(),
                payload,
            }])
            .await
    }

    /// The checked devices of a user, to verify (forged ones dropped with a warning; changed ones
    /// kept, with a warning: verifying is how the new key becomes trusted).
    pub async fn devices_of(&mut self, relay: &impl Relay, user: Uuid) -> CryptoResult<Vec<VerifiedDevice>> {
        let listed = relay.user_devices(user).await?;
        Ok(self.check(&listed, true))
    }

    /// Decrypts a channel message (`message_id` is the server's id for it: replay bookkeeping).
    pub fn decrypt(&mut self, channel_id: Uuid, message_id: Uuid, ciphertext: &Ciphertext) -> CryptoResult<Decrypted> {
        self.channels.decrypt(channel_id, message_id, &ciphertext.0)
    }

    /// Opens a message as the server delivered it, for display: decrypted, and checked against
    /// what the server claims about it (see [`check_envelope`]).
    pub fn open(&mut self, envelope: &Envelope) -> CryptoResult<Opened> {
        let decrypted = self.decrypt(envelope.channel_id, envelope.id, &envelope.ciphertext)?;
        check_envelope(&decrypted, envelope)?;
        let verified = self.trust.is_verified(&decrypted.sender);
        Ok(Opened { body: decrypted.plaintext.body, verified, sender_key: decrypted.sender.ed25519 })
    }
}

/// A message ready to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub body: String,
    /// The author's device was verified by the user (SAS); otherwise it is trusted on first use.
    pub verified: bool,
    /// The Ed25519 key of the device that wrote it.
    pub sender_key: String,
}

/// The server's envelope must agree with what the ciphertext proves: the author is the device whose
/// room key decrypted it (any of the author's devices for an edit), and an edit names this message.
/// A server relabelling a message as someone else's, or moving an edit onto another message, fails.
pub fn check_envelope(decrypted: &Decrypted, envelope: &Envelope) -> CryptoResult<()> {
    if decrypted.sender.user != envelope.sender_id {
        return Err(CryptoError::WrongSender("the author is someone else"));
    }
    match decrypted.plaintext.edit_of {
        None if decrypted.sender.device_id != envelope.sender_device => {
            Err(CryptoError::WrongSender("the author's device is another"))
        }
        Some(of) if of != envelope.id => Err(CryptoError::Malformed("an edit of another message".into())),
        _ => Ok(()),
    }
}
