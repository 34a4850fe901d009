//! Key backup (`e2ee-notes.md`, "Key backup and recovery", the symmetric option): every Megolm
//! session this device holds is sealed with XChaCha20-Poly1305 under a 256-bit *backup key* and
//! uploaded; the backup key itself is stored on the server wrapped under the person's *recovery
//! key* (256 random bits, shown once). A new device that is given the recovery key unwraps the
//! backup key, downloads the sealed sessions and imports them.
//!
//! What the server sees: per session an opaque id (an HMAC of channel, author and session under a
//! key derived from the backup key) and a sealed blob of near-constant size. Not which channel,
//! author or messages a key opens. Each blob is bound to its id (AEAD associated data), so the
//! server cannot swap blobs between ids; a replayed older blob of the same session only merges
//! (the earlier start wins, see `Channels::import`).
//!
//! Sans-I/O like the rest of `crypto`: randomness comes from the operating system (`getrandom`),
//! nothing else leaves this module.

use super::{CryptoError, CryptoResult, channel::Channels, cross_signing::MasterSecret, device::VerifiedDevice};
use crate::model::backup::BackupKey as SealedKey;
use crate::model::messages::Ciphertext;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce, aead::Aead, aead::Payload};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vodozemac::megolm::ExportedSessionKey;

/// The scheme's name, stored with each backup version.
pub const ALGORITHM: &str = "chatalot.v1.xchacha20poly1305";
/// Associated data of the wrapped backup key.
const WRAP_AAD: &[u8] = b"chatalot.v1.backup-key";
/// Associated data prefix of each sealed session (then its id).
const SEAL_AAD: &[u8] = b"chatalot.v1.session:";
const NONCE: usize = 24;
/// Check bytes after the recovery key (32 + 3 bytes: exactly 56 base32 characters).
const CHECK: usize = 3;

fn random<const N: usize>() -> CryptoResult<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| CryptoError::Store(format!("no randomness: {e}")))?;
    Ok(bytes)
}

pub(super) fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> CryptoResult<Vec<u8>> {
    let nonce = random::<NONCE>()?;
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let sealed = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| CryptoError::Malformed("could not seal".into()))?;
    Ok([nonce.as_slice(), &sealed].concat())
}

pub(super) fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, body) = sealed.split_at_checked(NONCE)?;
    let nonce: [u8; NONCE] = nonce.try_into().ok()?;
    XChaCha20Poly1305::new(&(*key).into()).decrypt(&XNonce::from(nonce), Payload { msg: body, aad }).ok()
}

/// RFC 4648 base32 without padding, for the recovery key a person writes down (letters and the
/// digits 2–7: no 0/O or 1/I to confuse). Written here because a general encoding crate costs
/// ~34 KB of WebAssembly for one 56-character code.
mod base32 {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
        let (mut buffer, mut bits) = (0u32, 0u32);
        for byte in bytes {
            buffer = (buffer << 8) | u32::from(*byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
        }
        out
    }

    /// `None` for a character outside the alphabet or bits left over that are not zero.
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() * 5 / 8);
        let (mut buffer, mut bits) = (0u32, 0u32);
        for c in text.bytes() {
            let value = ALPHABET.iter().position(|a| *a == c)? as u32;
            buffer = (buffer << 5) | value;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
            }
            buffer &= (1 << bits) - 1;
        }
        (buffer == 0).then_some(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn rfc_4648_vectors() {
            for (plain, coded) in [
                ("", ""),
                ("f", "MY"),
                ("fo", "MZXQ"),
                ("foo", "MZXW6"),
                ("foob", "MZXW6YQ"),
                ("fooba", "MZXW6YTB"),
                ("foobar", "MZXW6YTBOI"),
            ] {
                assert_eq!(super::encode(plain.as_bytes()), coded);
                assert_eq!(super::decode(coded).unwrap(), plain.as_bytes());
            }
            assert_eq!(super::decode("MZXW6YTBO1"), None, "not in the alphabet");
            assert_eq!(super::decode("MZ"), None, "bits left over that are not zero");
        }
    }
}

/// The secret the person writes down: it unwraps the backup key on a new device.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryKey([u8; 32]);

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(..)")
    }
}

/// Why a typed recovery key was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryKeyError {
    #[error("this is not a recovery key: it has 14 groups of letters and digits")]
    Length,
    #[error("a character is mistyped: check the recovery key again")]
    Typo,
    #[error("this recovery key does not open your key backup")]
    Wrong,
}

impl RecoveryKey {
    pub fn generate() -> CryptoResult<Self> {
        Ok(Self(random()?))
    }

    /// 14 groups of 4 characters (base32 of the key and 3 check bytes), for writing down. The check
    /// catches every typo but one in 16 million, so a typo is never taken for another key.
    pub fn display(&self) -> String {
        let check = <sha2_11::Sha256 as sha2_11::Digest>::digest(self.0);
        let text = base32::encode(&[self.0.as_slice(), &check[..CHECK]].concat());
        text.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
    }

    /// Reads a recovery key as typed: case, spaces and dashes do not matter, and the digits 0, 1
    /// and 8 are read as the letters they are mistaken for.
    pub fn parse(typed: &str) -> Result<Self, RecoveryKeyError> {
        let clean: String = typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| match c.to_ascii_uppercase() {
                '0' => 'O',
                '1' => 'I',
                '8' => 'B',
                c => c,
            })
            .collect();
        if clean.len() != 56 {
            return Err(RecoveryKeyError::Length);
        }
        let bytes = base32::decode(&clean).ok_or(RecoveryKeyError::Typo)?;
        let (key, check) = bytes.split_at_checked(32).ok_or(RecoveryKeyError::Length)?;
        let key: [u8; 32] = key.try_into().map_err(|_| RecoveryKeyError::Length)?;
        if check != &<sha2_11::Sha256 as sha2_11::Digest>::digest(key)[..CHECK] {
            return Err(RecoveryKeyError::Typo);
        }
        Ok(Self(key))
    }
}

/// The key every session is sealed under. Kept (sealed) on each device that uploads.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupKey([u8; 32]);

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(..)")
    }
}

/// What the server keeps per backup version besides the keys (`auth_data`, opaque to it).
#[derive(Serialize, Deserialize)]
struct AuthData {
    v: u8,
    /// The backup key sealed under the recovery key (nonce first).
    wrapped: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD_NO_PAD
}

impl BackupKey {
    pub fn generate() -> CryptoResult<Self> {
        Ok(Self(random()?))
    }

    /// The `auth_data` of a new backup version: this key wrapped under `recovery`.
    pub fn wrap(&self, recovery: &RecoveryKey) -> CryptoResult<Ciphertext> {
        use base64::Engine;
        let wrapped = b64().encode(seal(&recovery.0, WRAP_AAD, &self.0)?);
        let json =
            serde_json::to_vec(&AuthData { v: 1, wrapped }).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        Ok(Ciphertext(json))
    }

    /// Unwraps the backup key of a version with the recovery key the person typed.
    pub fn unwrap(auth_data: &Ciphertext, recovery: &RecoveryKey) -> Result<Self, RecoveryKeyError> {
        use base64::Engine;
        let auth: AuthData = serde_json::from_slice(&auth_data.0).map_err(|_| RecoveryKeyError::Wrong)?;
        let sealed = b64().decode(auth.wrapped).map_err(|_| RecoveryKeyError::Wrong)?;
        let key = open(&recovery.0, WRAP_AAD, &sealed).ok_or(RecoveryKeyError::Wrong)?;
        Ok(Self(key.try_into().map_err(|_| RecoveryKeyError::Wrong)?))
    }

    /// The opaque id the person's master key (cross-signing) is filed under.
    fn master_id(&self) -> CryptoResult<String> {
        self.opaque_id(&[b"chatalot.v1.master-key"])
    }

    /// An HMAC of `parts` under a key only the backup key gives: the server cannot link it to what
    /// it names.
    fn opaque_id(&self, parts: &[&[u8]]) -> CryptoResult<String> {
        use base64::Engine;
        let mut mac = <Hmac<sha2_11::Sha256> as KeyInit>::new_from_slice(&self.0)
            .map_err(|e| CryptoError::Malformed(e.to_string()))?;
        for part in parts {
            mac.update(part);
        }
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..24]))
    }

    /// The person's master key (private part), sealed for the backup: a device restored with the
    /// recovery key can then sign itself and later devices.
    pub fn seal_master(&self, master: &MasterSecret) -> CryptoResult<SealedKey> {
        let key_id = self.master_id()?;
        let json = serde_json::to_vec(master).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        let aad = [SEAL_AAD, key_id.as_bytes()].concat();
        Ok(SealedKey { sealed: Ciphertext(seal(&self.0, &aad, &json)?), key_id })
    }

    /// Whether the master key's entry was uploaded already.
    pub fn master_uploaded(&self, uploaded: &std::collections::HashMap<String, u32>) -> bool {
        self.master_id().is_ok_and(|id| uploaded.contains_key(&id))
    }

    /// Records the master key's entry as uploaded.
    pub fn mark_master_uploaded(&self, uploaded: &mut std::collections::HashMap<String, u32>) {
        if let Ok(id) = self.master_id() {
            uploaded.insert(id, 0);
        }
    }

    /// The opaque id a session is filed under: the same for every device with this backup key.
    fn key_id(&self, channel_id: Uuid, author_curve25519: &str, session_id: &str) -> CryptoResult<String> {
        self.opaque_id(&[
            b"chatalot.v1.key-id:",
            channel_id.as_bytes(),
            author_curve25519.as_bytes(),
            b":",
            session_id.as_bytes(),
        ])
    }
}

/// One session as sealed in the backup.
#[derive(Serialize, Deserialize)]
struct Record {
    channel_id: Uuid,
    /// The author's device, as the device that backed it up had checked it.
    author: VerifiedDevice,
    session_id: String,
    /// The session from its first known message (`ExportedSessionKey`, base64).
    exported: String,
}

/// Seals every session of `channels` whose id is not in `uploaded` (the ids already backed up,
/// with the first known index they were backed up at). A session held from an earlier message
/// than its backed-up copy is sealed again.
pub fn pending(
    channels: &Channels,
    key: &BackupKey,
    uploaded: &std::collections::HashMap<String, u32>,
    limit: usize,
) -> CryptoResult<Vec<(SealedKey, u32)>> {
    let mut out = vec![];
    for ((channel_id, author_key, session_id), inbound) in &channels.inbound {
        let key_id = key.key_id(*channel_id, author_key, session_id)?;
        let first = inbound.session.first_known_index();
        if uploaded.get(&key_id).is_some_and(|at| *at <= first) {
            continue;
        }
        let record = Record {
            channel_id: *channel_id,
            author: inbound.sender.clone(),
            session_id: session_id.clone(),
            exported: inbound.session.export_at_first_known_index().to_base64(),
        };
        let json = serde_json::to_vec(&record).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        let aad = [SEAL_AAD, key_id.as_bytes()].concat();
        out.push((SealedKey { sealed: Ciphertext(seal(&key.0, &aad, &json)?), key_id }, first));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Sessions imported or merged.
    pub imported: usize,
    /// Blobs that did not open under the backup key or did not match their id: skipped.
    pub damaged: usize,
}

/// This device's part in the backup, kept in its sealed store: which version it uploads to, the
/// backup key, and what it uploaded (key id → first known index of the copy uploaded).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupState {
    pub version: Uuid,
    pub key: BackupKey,
    #[serde(default)]
    pub uploaded: std::collections::HashMap<String, u32>,
}

/// Opens downloaded sessions and files them under their authors (merging with copies held).
/// Damaged, truncated or swapped blobs are counted and skipped; nothing held is lost.
/// `uploaded` learns each imported blob's id and start, so that only sessions held from an earlier
/// message than their backed-up copy are uploaded again. The person's master key, if the backup
/// holds it, goes to `master` (the caller checks it against the published one).
pub fn restore(
    channels: &mut Channels,
    key: &BackupKey,
    page: &[SealedKey],
    into: &mut Restored,
    uploaded: &mut std::collections::HashMap<String, u32>,
    master: &mut Option<MasterSecret>,
) {
    let master_id = key.master_id().ok();
    for blob in page {
        let aad = [SEAL_AAD, blob.key_id.as_bytes()].concat();
        if master_id.as_deref() == Some(blob.key_id.as_str()) {
            match open(&key.0, &aad, &blob.sealed.0).and_then(|json| serde_json::from_slice::<MasterSecret>(&json).ok())
            {
                Some(secret) if secret.public().is_ok() => {
                    *master = Some(secret);
                    uploaded.insert(blob.key_id.clone(), 0);
                }
                _ => into.damaged += 1,
            }
            continue;
        }
        let record = open(&key.0, &aad, &blob.sealed.0).and_then(|json| serde_json::from_slice::<Record>(&json).ok());
        let imported = record.is_some_and(|r| {
            key.key_id(r.channel_id, &r.author.curve25519, &r.session_id).ok().as_deref() == Some(blob.key_id.as_str())
                && ExportedSessionKey::from_base64(&r.exported).ok().is_some_and(|exported| {
                    let first = vodozemac::megolm::InboundGroupSession::import(
                        &exported,
                        vodozemac::megolm::SessionConfig::version_1(),
                    )
                    .first_known_index();
                    let ok = channels.import(r.channel_id, &r.author, &r.session_id, &exported).is_ok();
                    if ok {
                        uploaded.insert(blob.key_id.clone(), first);
                    }
                    ok
                })
        });
        if imported {
            into.imported += 1;
        } else {
            into.damaged += 1;
        }
    }
}
