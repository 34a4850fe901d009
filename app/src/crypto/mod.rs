//! The end-to-end encryption core, on vodozemac. Compiled into the browser build (feature `e2ee`,
//! enabled by `hydrate`) and natively for its tests; never into the server.
//!
//! Sans-I/O: nothing here touches the network, storage or a clock. Callers pass in what the server
//! said (device lists, claimed keys, to-device payloads, ciphertexts) and the current time, and get
//! back what to send and what to persist.
//!
//! - [`device`]: this browser's device (a vodozemac `Account`): identity keys, signed one-time and
//!   fallback keys, and verification of other devices' published keys against their own signatures.
//! - [`olm`]: device-to-device envelopes for key material only. Every payload names sender and
//!   recipient (user, device, Ed25519 key), checked on receipt.
//! - [`channel`]: Megolm for every channel message (DMs and group DMs included): one outbound
//!   session per channel, rotated on membership or device changes, after 100 messages or 7 days;
//!   inbound sessions with the channel id checked inside the plaintext and replays refused.
//! - [`machine`]: the send and receive flows over a [`machine::Relay`] (the server's key directory
//!   and to-device queue), checking every listed device and warning about forged or changed keys.
//! - [`trust`]: trust on first use with key-change warnings, and SAS verification (emoji/numbers).
//! - [`cross_signing`]: each person's master key signs their devices; verifying one device of a
//!   person verifies the master key, and with it every device it signed.
//! - [`backup`]: the server-side key backup, sealed under a key only the person's devices and
//!   recovery key open.
//! - [`store`]: the persistence boundary: state sealed under a key that never leaves the browser.
//!
//! The browser's implementation of that boundary (IndexedDB, WebCrypto, Web Locks) does I/O, so it
//! lives outside this module, in `client::storage`.

pub mod backup;
pub mod channel;
pub mod cross_signing;
pub mod device;
pub mod machine;
pub mod olm;
pub mod store;
pub mod trust;

#[cfg(all(test, target_arch = "wasm32", target_os = "unknown"))]
mod figures;
#[cfg(test)]
mod tests;

/// Why a cryptographic operation was refused. Every variant is shown to the user as a reason
/// ("could not decrypt: …"), never as raw ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the device's keys are not signed by the device ({0})")]
    BadDeviceSignature(String),
    #[error("a one-time key is not signed by its device ({0})")]
    BadKeySignature(String),
    #[error("malformed key: {0}")]
    BadKey(String),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("the message does not come from the device it claims ({0})")]
    WrongSender(&'static str),
    #[error("the message was addressed to another device")]
    WrongRecipient,
    #[error("the message belongs to another channel")]
    WrongChannel,
    #[error("the message was already received (replay)")]
    Replay,
    #[error("the key for this message has not arrived (session {0})")]
    UnknownSession(String),
    #[error("no session with this device yet: claim one of its one-time keys first")]
    NoSession,
    /// This device holds the message's session only from a later message on (it was given the key
    /// after this message was sent: joined later, or a newer device).
    #[error("the key this device holds starts after this message")]
    BeforeKey,
    #[error("decryption failed: {0}")]
    Decrypt(String),
    #[error("the server could not be asked: {0}")]
    Relay(String),
    #[error("the local key store could not be opened: {0}")]
    Store(String),
}

pub type CryptoResult<T> = Result<T, CryptoError>;
