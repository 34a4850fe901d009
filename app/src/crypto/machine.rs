//! The client's crypto flows in one place: what to ask the relay, in which order, and what to
//! check, for sending a channel message and for receiving to-device payloads. The relay is a trait:
//! the browser implements it with server functions, tests with an HTTP client against the real
//! server. Persisting the state (before sending what it produced) stays with the caller.

use super::cross_signing::{self, MasterSecret};
use super::{
    CryptoError, CryptoResult,
    channel::{ChannelPlaintext, Channels, Decrypted},
    device::{Device, VerifiedDevice, verify_claimed_key, verify_device},
    olm::ToDeviceContent,
    trust::{Seen, Trust},
};
use crate::model::keys::{ClaimedKey, CrossSigning, DeviceKeys, OutgoingToDevice, ToDeviceMessage};
use crate::model::messages::{Ciphertext, Envelope, MessageKind};
use std::future::Future;
use uuid::Uuid;

/// What the crypto flows need from the server (the key directory and the to-device queue).
pub trait Relay {
    /// Every device of every member of a channel.
    fn channel_devices(&self, channel_id: Uuid) -> impl Future<Output = CryptoResult<Vec<DeviceKeys>>>;
    fn user_devices(&self, user_id: Uuid) -> impl Future<Output = CryptoResult<Vec<DeviceKeys>>>;
    fn claim(&self, user_id: Uuid, device_id: &str) -> impl Future<Output = CryptoResult<ClaimedKey>>;
    fn send_to_device(&self, batch: Vec<OutgoingToDevice>) -> impl Future<Output = CryptoResult<()>>;
    /// Someone's master key and the devices it signed (cross-signing).
    fn cross_signing(&self, _user_id: Uuid) -> impl Future<Output = CryptoResult<CrossSigning>> {
        std::future::ready(Ok(CrossSigning::default()))
    }
    /// Publishes this person's master key (public part).
    fn set_master(&self, _master_key: String) -> impl Future<Output = CryptoResult<()>> {
        std::future::ready(Err(CryptoError::Relay("cross-signing is not available here".into())))
    }
    /// Publishes the master key's signature over one of this person's devices.
    fn sign_device(&self, _device_id: String, _signature: String) -> impl Future<Output = CryptoResult<()>> {
        std::future::ready(Err(CryptoError::Relay("cross-signing is not available here".into())))
    }
    /// Whether people who join `channel_id` read its earlier messages (the moderators' setting):
    /// then this device shares its own earlier sessions there with devices that lack them.
    fn shares_history(&self, _channel_id: Uuid) -> bool {
        false
    }
}

/// Something the user should see about another device's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyWarning {
    /// The directory lists keys that the device did not sign: never encrypted to, never believed.
    Forged { user: Uuid, device_id: String, reason: String },
    /// A known device now has another key (trust on first use): shown until accepted or verified.
    Changed { user: Uuid, device_id: String, previous: String, now: String },
    /// The master key of someone this device verified is not the one verified any more: their
    /// devices are trusted through it no longer, until they are verified again.
    MasterChanged { user: Uuid },
}

/// This device's whole crypto state.
#[derive(Debug)]
pub struct Machine {
    pub device: Device,
    pub channels: Channels,
    pub trust: Trust,
    /// This person's master key, on the device that made it (it signs their other devices).
    pub master: Option<MasterSecret>,
    /// Warnings not yet shown.
    pub warnings: Vec<KeyWarning>,
    /// Device keys whose cross-signing was already read (not kept: at most once per page load).
    looked_up: std::collections::HashSet<String>,
}

impl Machine {
    pub fn new(device: Device) -> Self {
        Self {
            device,
            channels: Channels::default(),
            trust: Trust::default(),
            master: None,
            warnings: vec![],
            looked_up: Default::default(),
        }
    }

    /// Checks listed devices: forged ones are dropped with a warning; one whose key changed since
    /// it was first seen warns and is dropped too until the user accepts the new key or verifies
    /// it (a server that made up keys for a known device must not receive room keys), unless
    /// `with_changed` (to pick it for verification), or unless the person's master key, verified
    /// here, signed the new key (cross-signing vouches for it).
    async fn check(&mut self, relay: &impl Relay, listed: &[DeviceKeys], with_changed: bool) -> Vec<VerifiedDevice> {
        let mut checked = Vec::with_capacity(listed.len());
        for keys in listed {
            match verify_device(keys, keys.user_id) {
                Ok(device) => checked.push(device),
                Err(e) => self.warnings.push(KeyWarning::Forged {
                    user: keys.user_id,
                    device_id: keys.device_id.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        // People whose master key is verified here, with a device not yet known as signed by it:
        // their signatures are read once (a failure to ask only means no shortcut).
        let to_learn: std::collections::BTreeSet<Uuid> = checked
            .iter()
            .filter(|d| {
                self.trust.verified_master(d.user).is_some()
                    && !self.trust.is_verified(d)
                    && !self.looked_up.contains(&d.ed25519)
            })
            .map(|d| d.user)
            .collect();
        self.looked_up.extend(checked.iter().filter(|d| to_learn.contains(&d.user)).map(|d| d.ed25519.clone()));
        for user in to_learn {
            let _ = self.learn(relay, user, &checked).await;
        }
        let mut good = Vec::with_capacity(checked.len());
        for device in checked {
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
        good
    }

    /// Reads `user`'s master key and signatures, and records which of `devices` it signed. A
    /// changed key signed by a master key verified here is accepted; a SAS-verified device that
    /// carries the master key's signature makes the master key verified; a master key other than
    /// the verified one is reported and trusted for nothing.
    async fn learn(&mut self, relay: &impl Relay, user: Uuid, devices: &[VerifiedDevice]) -> CryptoResult<()> {
        let info = relay.cross_signing(user).await?;
        let Some(master) = info.master_key.clone() else { return Ok(()) };
        if self.trust.observe_master(user, &master).is_some() {
            self.warnings.push(KeyWarning::MasterChanged { user });
            return Ok(());
        }
        let theirs: Vec<VerifiedDevice> = devices.iter().filter(|d| d.user == user).cloned().collect();
        let signed: Vec<VerifiedDevice> = cross_signing::signed(&info, &theirs).into_iter().cloned().collect();
        let verified_master = self.trust.verified_master(user) == Some(master.as_str());
        for device in &signed {
            if verified_master && matches!(self.trust.observe(device), Seen::Changed { .. }) {
                self.trust.accept(device);
            }
            self.trust.mark_signed(device, &master);
        }
        if signed.iter().any(|d| self.trust.is_sas_verified(d)) {
            self.trust.verify_master(user, &master);
        }
        Ok(())
    }

    /// Sets up this person's master key if nobody has (their first device): it signs this device
    /// and is trusted here. A later device is signed once verified from this one.
    pub async fn ensure_master(&mut self, relay: &impl Relay) -> CryptoResult<()> {
        let me = self.device.as_verified();
        if self.master.is_none() && relay.cross_signing(me.user).await?.master_key.is_none() {
            let secret = MasterSecret::generate();
            let public = secret.public()?;
            relay.set_master(public.clone()).await?;
            relay.sign_device(me.device_id.clone(), secret.sign(&me)?).await?;
            self.trust.verify_master(me.user, &public);
            self.trust.mark_signed(&me, &public);
            self.master = Some(secret);
        }
        Ok(())
    }

    /// Takes this person's master key restored from the key backup, if it is the one published
    /// for them: this device signs itself with it (and can sign later devices).
    pub async fn adopt_master(&mut self, relay: &impl Relay, secret: MasterSecret) -> CryptoResult<bool> {
        if self.master.is_some() {
            return Ok(false);
        }
        let me = self.device.as_verified();
        let public = secret.public()?;
        if relay.cross_signing(me.user).await?.master_key.as_deref() != Some(public.as_str()) {
            // An identity replaced since it was backed up: not this person's key any more.
            return Ok(false);
        }
        relay.sign_device(me.device_id.clone(), secret.sign(&me)?).await?;
        self.trust.verify_master(me.user, &public);
        self.trust.mark_signed(&me, &public);
        self.master = Some(secret);
        Ok(true)
    }

    /// After a SAS verification of `peer` completed here: one's own new device is signed with the
    /// master key (if this device holds it), and `peer`'s person's master key is learned, and
    /// verified when `peer` carries its signature.
    pub async fn after_verification(&mut self, relay: &impl Relay, peer: &VerifiedDevice) -> CryptoResult<()> {
        if peer.user == self.device.user()
            && let Some(secret) = &self.master
        {
            relay.sign_device(peer.device_id.clone(), secret.sign(peer)?).await?;
        }
        let listed = relay.user_devices(peer.user).await?;
        let devices: Vec<VerifiedDevice> = listed.iter().filter_map(|k| verify_device(k, peer.user).ok()).collect();
        self.learn(relay, peer.user, &devices).await
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
        let recipients = self.check(relay, &listed, false).await;
        let mut keys = self.channels.prepare(&self.device, plaintext.channel_id, &recipients, now_ms);
        let mut history_to: Vec<VerifiedDevice> = vec![];
        if relay.shares_history(plaintext.channel_id) {
            let shares = self.channels.share_history(&self.device, plaintext.channel_id, &recipients);
            history_to = shares.iter().map(|(d, _)| d.clone()).collect();
            keys.extend(shares);
        }
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
                        self.channels.ungive_history(plaintext.channel_id, &device);
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
                        history_to.iter().for_each(|d| self.channels.ungive_history(plaintext.channel_id, d));
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
            history_to.iter().for_each(|d| self.channels.ungive_history(plaintext.channel_id, d));
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
            .check(relay, std::slice::from_ref(keys), false)
            .await
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
            ToDeviceContent::History { .. } => {
                self.channels.add_history(&sender, &content)?;
                Ok(None)
            }
            // Key material between one person's devices: only from (and to) those this device
            // verified; anyone else's request or forward is refused.
            ToDeviceContent::KeyRequest { ref sessions } => {
                self.own_verified(&sender)?;
                for forward in self.channels.forward(Some(sessions)) {
                    self.send_to(relay, &sender, forward).await?;
                }
                Ok(None)
            }
            ToDeviceContent::Forward { .. } => {
                self.own_verified(&sender)?;
                self.channels.add_forwarded(&content)?;
                Ok(None)
            }
            ToDeviceContent::Dummy => Ok(None),
            other => Ok(Some((sender, other))),
        }
    }

    fn own_verified(&self, device: &VerifiedDevice) -> CryptoResult<()> {
        if device.user != self.device.user() {
            return Err(CryptoError::WrongSender("keys are shared only between one person's own devices"));
        }
        if !self.trust.is_verified(device) {
            return Err(CryptoError::WrongSender("that device of yours is not verified on this one"));
        }
        Ok(())
    }

    /// After this person verified another of their devices: it gets every session this one holds.
    pub async fn forward_all(&mut self, relay: &impl Relay, peer: &VerifiedDevice) -> CryptoResult<usize> {
        self.own_verified(peer)?;
        let forwards = self.channels.forward(None);
        let n = forwards.len();
        for forward in forwards {
            self.send_to(relay, peer, forward).await?;
        }
        Ok(n)
    }

    /// Asks this person's other verified devices for the sessions `wanted`. Returns how many
    /// devices were asked.
    pub async fn request_keys(
        &mut self,
        relay: &impl Relay,
        wanted: Vec<(Uuid, String, String)>,
    ) -> CryptoResult<usize> {
        if wanted.is_empty() {
            return Ok(0);
        }
        let me = self.device.as_verified();
        let listed = relay.user_devices(me.user).await?;
        let mine: Vec<VerifiedDevice> = self
            .check(relay, &listed, false)
            .await
            .into_iter()
            .filter(|d| *d != me && self.trust.is_verified(d))
            .collect();
        for device in &mine {
            for chunk in wanted.chunks(super::channel::FORWARD_PER_MESSAGE) {
                self.send_to(relay, device, ToDeviceContent::KeyRequest { sessions: chunk.to_vec() }).await?;
            }
        }
        Ok(mine.len())
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
        Ok(self.check(relay, &listed, true).await)
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
        Ok(Opened {
            body: decrypted.plaintext.body,
            verified,
            sender_key: decrypted.sender.ed25519,
            forwarded_from: decrypted.plaintext.forwarded_from,
            poll: decrypted.plaintext.poll,
            vote: decrypted.plaintext.vote,
            bookmark: decrypted.plaintext.bookmark,
        })
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
    /// Forwarded: the original author's name, as the forwarder gave it.
    pub forwarded_from: Option<String>,
    pub poll: Option<crate::poll::Poll>,
    pub vote: Option<Vec<u8>>,
    pub bookmark: Option<crate::chat::Bookmarked>,
}

/// The server's envelope must agree with what the ciphertext proves: the author is the device whose
/// room key decrypted it (any of the author's devices for an edit), and an edit names this message.
/// A server relabelling a message as someone else's, or moving an edit onto another message, fails.
pub fn check_envelope(decrypted: &Decrypted, envelope: &Envelope) -> CryptoResult<()> {
    if decrypted.sender.user != envelope.sender_id {
        return Err(CryptoError::WrongSender("the author is someone else"));
    }
    // A reaction names its message inside the ciphertext too; anything else names none.
    let reacts_to = if envelope.kind == MessageKind::Reaction {
        Some(envelope.reply_to.ok_or(CryptoError::Malformed("a reaction to no message".into()))?)
    } else {
        None
    };
    if decrypted.plaintext.react_to != reacts_to {
        return Err(CryptoError::Malformed("a reaction moved, or a message passed off as a reaction".into()));
    }
    // A reply names the message it answers inside the ciphertext too (a reaction's target is
    // checked above).
    if decrypted.plaintext.binds_reply
        && envelope.kind != MessageKind::Reaction
        && decrypted.plaintext.reply_to != envelope.reply_to
    {
        return Err(CryptoError::Malformed("a reply moved to another message".into()));
    }
    // Every message names its thread inside the ciphertext (none before threads existed, when no
    // envelope named one either).
    if decrypted.plaintext.thread != envelope.thread_id {
        return Err(CryptoError::Malformed("a message moved into or out of a thread".into()));
    }
    match decrypted.plaintext.edit_of {
        None if decrypted.sender.device_id != envelope.sender_device => {
            Err(CryptoError::WrongSender("the author's device is another"))
        }
        Some(of) if of != envelope.id => Err(CryptoError::Malformed("an edit of another message".into())),
        _ => Ok(()),
    }
}
