//! Device-to-device envelopes (Olm), for key material only: room keys and device verification.
//!
//! Olm authenticates Curve25519 keys, not people, so every plaintext names its sender and
//! recipient (user, device, Ed25519 key) and the receiver checks both against the devices it
//! verified. The envelope says which Curve25519 key sent it; a server that swaps envelopes
//! between devices gets them refused.

use super::{
    CryptoError, CryptoResult,
    device::{Device, VerifiedDevice},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vodozemac::{
    Curve25519PublicKey,
    olm::{OlmMessage, SessionConfig},
};

/// What travels inside an Olm envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToDeviceContent {
    /// The key of a sender's Megolm session for a channel, at its current index.
    RoomKey { channel_id: Uuid, session_id: String, session_key: String },
    /// Earlier sessions of the sender for a channel whose history newcomers read: each session id
    /// with the session exported at its first known index (`ExportedSessionKey`, base64).
    History { channel_id: Uuid, sessions: Vec<(String, String)> },
    /// Between two devices of one person: "send me these sessions" (channel, author's Curve25519
    /// key, session id), answered only for the person's own verified devices.
    KeyRequest { sessions: Vec<(Uuid, String, String)> },
    /// Between two devices of one person: sessions from the first message held, with their author,
    /// accepted only from the person's own verified devices.
    Forward { sessions: Vec<ForwardedSession> },
    /// Establishes or repairs a session; carries nothing.
    Dummy,
    /// Device verification (see `trust`): a commitment to the initiator's ephemeral key…
    SasStart { txn: String, commitment: String },
    /// …each side's ephemeral key…
    SasKey { txn: String, key: String },
    /// …and, once the people compared the codes, a MAC of each side's Ed25519 device key.
    SasMac { txn: String, mac: String },
}

/// One session forwarded between a person's own devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedSession {
    pub channel_id: Uuid,
    /// The device that wrote the session's messages, as the forwarding device had checked it.
    pub author: super::device::VerifiedDevice,
    pub session_id: String,
    /// `ExportedSessionKey`, base64.
    pub exported: String,
}

/// The signed-for-identity plaintext of an envelope.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    sender_user: Uuid,
    sender_device: String,
    sender_ed25519: String,
    recipient_user: Uuid,
    recipient_device: String,
    recipient_ed25519: String,
    content: ToDeviceContent,
}

/// The bytes the server queues (opaque to it).
#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u8,
    /// The sender's Curve25519 identity key.
    sender_key: String,
    /// 0: pre-key message (sets up a session), 1: normal message.
    kind: usize,
    body: String,
}

impl Device {
    /// Whether an Olm session with this device exists (otherwise claim one of its keys first).
    pub fn has_session_with(&self, peer: &VerifiedDevice) -> bool {
        self.sessions.get(&peer.curve25519).is_some_and(|s| !s.is_empty())
    }

    /// Seals `content` for `peer`. Without a session, `claimed` (a one-time key checked with
    /// [`super::device::verify_claimed_key`]) sets one up.
    pub fn encrypt_to_device(
        &mut self,
        peer: &VerifiedDevice,
        claimed: Option<Curve25519PublicKey>,
        content: ToDeviceContent,
    ) -> CryptoResult<Vec<u8>> {
        if !self.has_session_with(peer) {
            let one_time = claimed.ok_or(CryptoError::NoSession)?;
            let session = self
                .account
                .create_outbound_session(SessionConfig::version_1(), peer.curve25519_key()?, one_time)
                .map_err(|e| CryptoError::BadKey(e.to_string()))?;
            self.sessions.entry(peer.curve25519.clone()).or_default().insert(0, session);
        }
        let payload = Payload {
            sender_user: self.user,
            sender_device: self.device_id.clone(),
            sender_ed25519: self.ed25519(),
            recipient_user: peer.user,
            recipient_device: peer.device_id.clone(),
            recipient_ed25519: peer.ed25519.clone(),
            content,
        };
        let plaintext = serde_json::to_vec(&payload).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        let session =
            self.sessions.get_mut(&peer.curve25519).and_then(|s| s.first_mut()).ok_or(CryptoError::NoSession)?;
        let message = session.encrypt(plaintext).map_err(|e| CryptoError::Decrypt(e.to_string()))?;
        let (kind, body) = message.to_parts();
        let envelope = Envelope { v: 1, sender_key: self.curve25519(), kind, body: vodozemac::base64_encode(body) };
        serde_json::to_vec(&envelope).map_err(|e| CryptoError::Malformed(e.to_string()))
    }

    /// Starts a new Olm session with `peer` (from a freshly claimed one-time key) and makes it the
    /// one used for sending: the repair for a session the other side can no longer decrypt.
    pub fn restart_session(&mut self, peer: &VerifiedDevice, one_time: Curve25519PublicKey) -> CryptoResult<()> {
        let session = self
            .account
            .create_outbound_session(SessionConfig::version_1(), peer.curve25519_key()?, one_time)
            .map_err(|e| CryptoError::BadKey(e.to_string()))?;
        self.sessions.entry(peer.curve25519.clone()).or_default().insert(0, session);
        Ok(())
    }

    /// Opens an envelope from `sender` (a device verified from the key directory, looked up by the
    /// sender user and device the server reported) and checks who it names.
    pub fn decrypt_to_device(&mut self, sender: &VerifiedDevice, bytes: &[u8]) -> CryptoResult<ToDeviceContent> {
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        if envelope.v != 1 {
            return Err(CryptoError::Malformed(format!("envelope version {}", envelope.v)));
        }
        if envelope.sender_key != sender.curve25519 {
            return Err(CryptoError::WrongSender("Curve25519 key"));
        }
        let body = vodozemac::base64_decode(&envelope.body).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        let message =
            OlmMessage::from_parts(envelope.kind, &body).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        let plaintext = self.olm_decrypt(sender, &message)?;
        let payload: Payload = serde_json::from_slice(&plaintext).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        if payload.sender_user != sender.user || payload.sender_device != sender.device_id {
            return Err(CryptoError::WrongSender("user or device"));
        }
        if payload.sender_ed25519 != sender.ed25519 {
            return Err(CryptoError::WrongSender("Ed25519 key"));
        }
        if payload.recipient_user != self.user
            || payload.recipient_device != self.device_id
            || payload.recipient_ed25519 != self.ed25519()
        {
            return Err(CryptoError::WrongRecipient);
        }
        Ok(payload.content)
    }

    fn olm_decrypt(&mut self, sender: &VerifiedDevice, message: &OlmMessage) -> CryptoResult<Vec<u8>> {
        let sessions = self.sessions.entry(sender.curve25519.clone()).or_default();
        // An existing session first: the one a pre-key message names, or any for a normal message.
        let mut last_error = None;
        for i in 0..sessions.len() {
            if let OlmMessage::PreKey(pre) = message
                && pre.session_id() != sessions[i].session_id()
            {
                continue;
            }
            match sessions[i].decrypt(message) {
                Ok(plaintext) => {
                    let used = sessions.remove(i);
                    sessions.insert(0, used);
                    return Ok(plaintext);
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        match message {
            OlmMessage::PreKey(pre) => {
                let created = self
                    .account
                    .create_inbound_session(SessionConfig::version_1(), sender.curve25519_key()?, pre)
                    .map_err(|e| CryptoError::Decrypt(e.to_string()))?;
                self.sessions.entry(sender.curve25519.clone()).or_default().insert(0, created.session);
                Ok(created.plaintext)
            }
            OlmMessage::Normal(_) => {
                Err(CryptoError::Decrypt(last_error.unwrap_or_else(|| "no session with the sender".into())))
            }
        }
    }
}
