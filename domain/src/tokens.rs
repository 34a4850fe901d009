//! Access tokens (EdDSA JWT, 15 min), refresh tokens (random, stored hashed) and device cookies.

use super::{error::ServerResult, keys::Keys};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::{Signature, Signer, Verifier};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const ACCESS_TTL: Duration = Duration::minutes(15);
pub const REFRESH_TTL: Duration = Duration::days(30);
/// A rotated refresh token still authenticates (without rotating again) for this long, so that
/// parallel requests racing through a rotation do not look like token theft.
pub const ROTATION_GRACE: Duration = Duration::seconds(30);
pub const DEVICE_TTL: Duration = Duration::days(365);
const AUDIENCE: &str = "chatalot";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user.
    pub sub: Uuid,
    /// The session (refresh-token family) this token belongs to.
    pub sid: Uuid,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

pub fn issue_access(keys: &Keys, user: Uuid, session: Uuid, now: DateTime<Utc>) -> ServerResult<String> {
    let claims = AccessClaims {
        sub: user,
        sid: session,
        aud: AUDIENCE.into(),
        iat: now.timestamp(),
        exp: (now + ACCESS_TTL).timestamp(),
        jti: Uuid::new_v4(),
    };
    Ok(jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &keys.encoding)?)
}

/// Seconds an access token is still taken after its expiry (clocks of several nodes differ).
const LEEWAY_S: u64 = 5;

/// Access tokens whose signature was checked, with their claims: every request carries its token,
/// and an Ed25519 verification costs more than the rest of a small request's authentication.
/// Keyed by the whole token (a changed byte is another key, verified afresh); expiry is checked on
/// every use; bounded.
#[derive(Default)]
pub struct Verified(std::sync::Mutex<std::collections::HashMap<String, AccessClaims>>);

/// Tokens remembered at most (about 400 bytes each); past it, expired ones go, then all.
const MAX_VERIFIED: usize = 4096;

impl Verified {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, AccessClaims>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The claims of a valid, unexpired access token signed by us; `None` for anything else.
pub fn verify_access(keys: &Keys, token: &str) -> Option<AccessClaims> {
    verify_access_at(keys, token, Utc::now().timestamp())
}

fn verify_access_at(keys: &Keys, token: &str, now: i64) -> Option<AccessClaims> {
    if token.len() > 2048 {
        return None;
    }
    let fresh = |c: &AccessClaims| c.exp.saturating_add(LEEWAY_S as i64) >= now;
    {
        let mut verified = keys.verified.lock();
        if let Some(claims) = verified.get(token) {
            if fresh(claims) {
                return Some(claims.clone());
            }
            verified.remove(token);
            return None;
        }
    }
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[AUDIENCE]);
    validation.leeway = LEEWAY_S;
    let claims = jsonwebtoken::decode::<AccessClaims>(token, &keys.decoding, &validation).ok()?.claims;
    if !fresh(&claims) {
        return None;
    }
    let mut verified = keys.verified.lock();
    if verified.len() >= MAX_VERIFIED {
        verified.retain(|_, c| fresh(c));
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
    }
    verified.insert(token.to_owned(), claims.clone());
    Some(claims)
}

/// A new random secret (32 bytes, base64url) and the SHA-256 hex under which it is stored.
pub fn new_secret() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let raw = URL_SAFE_NO_PAD.encode(bytes);
    let hash = sha256_hex(&raw);
    (raw, hash)
}

pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A device cookie says "this browser once signed in to account `user`". Login attempts that carry
/// one are throttled per device instead of per account, so a stranger who hammers an account
/// cannot lock its owner out of the browsers they already use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCookie {
    pub user: Uuid,
    pub device: Uuid,
}

impl DeviceCookie {
    pub fn seal(&self, keys: &Keys) -> String {
        let mut bytes = Vec::with_capacity(96);
        bytes.extend_from_slice(self.user.as_bytes());
        bytes.extend_from_slice(self.device.as_bytes());
        let sig = keys.signing().sign(&bytes);
        bytes.extend_from_slice(&sig.to_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn open(keys: &Keys, value: &str) -> Option<Self> {
        if value.len() > 200 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() != 96 {
            return None;
        }
        let sig = Signature::from_slice(&bytes[32..]).ok()?;
        keys.verifying().verify(&bytes[..32], &sig).ok()?;
        Some(Self { user: Uuid::from_slice(&bytes[..16]).ok()?, device: Uuid::from_slice(&bytes[16..32]).ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_round_trip_and_expire() {
        let keys = Keys::generate().unwrap();
        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let token = issue_access(&keys, user, sid, Utc::now()).unwrap();
        let claims = verify_access(&keys, &token).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, sid));

        let old = issue_access(&keys, user, sid, Utc::now() - Duration::minutes(16)).unwrap();
        assert_eq!(verify_access(&keys, &old), None, "expired token accepted");

        let other = Keys::generate().unwrap();
        assert_eq!(verify_access(&other, &token), None, "token from another key accepted");
        assert_eq!(verify_access(&keys, "not.a.jwt"), None);
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 3, 'x');
        assert_eq!(verify_access(&keys, &tampered), None);
    }

    /// A verified token is remembered, but only while it is valid, and only as it was signed.
    #[test]
    fn remembered_tokens_still_expire_and_cannot_be_altered() {
        let keys = Keys::generate().unwrap();
        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let token = issue_access(&keys, user, sid, Utc::now()).unwrap();
        assert!(verify_access(&keys, &token).is_some());
        assert_eq!(keys.verified.lock().len(), 1, "remembered");
        assert!(verify_access(&keys, &token).is_some(), "still valid");
        let later = (Utc::now() + ACCESS_TTL + Duration::seconds(10)).timestamp();
        assert_eq!(verify_access_at(&keys, &token, later), None, "a remembered token expires all the same");
        assert!(keys.verified.lock().is_empty(), "and is forgotten");
        // Every byte of a remembered token still counts: the claims part and the signature.
        assert!(verify_access(&keys, &token).is_some());
        let (head, signature) = token.rsplit_once('.').unwrap();
        let mut forged = format!("{head}.{signature}");
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(verify_access(&keys, &forged), None);
        let payload_changed = token.replacen(&token[token.find('.').unwrap() + 1..][..4], "AAAA", 1);
        assert_eq!(verify_access(&keys, &payload_changed), None);
        // Bounded: a flood of valid tokens does not grow it past its limit.
        for _ in 0..MAX_VERIFIED + 10 {
            let t = issue_access(&keys, user, sid, Utc::now()).unwrap();
            assert!(verify_access(&keys, &t).is_some());
        }
        assert!(keys.verified.lock().len() <= MAX_VERIFIED);
    }

    #[test]
    fn device_cookies_are_signed() {
        let keys = Keys::generate().unwrap();
        let cookie = DeviceCookie { user: Uuid::new_v4(), device: Uuid::new_v4() };
        let sealed = cookie.seal(&keys);
        assert_eq!(DeviceCookie::open(&keys, &sealed), Some(cookie));
        assert_eq!(DeviceCookie::open(&Keys::generate().unwrap(), &sealed), None);
        let mut forged = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        forged[0] ^= 1;
        assert_eq!(DeviceCookie::open(&keys, &URL_SAFE_NO_PAD.encode(forged)), None);
        assert_eq!(DeviceCookie::open(&keys, "%%%"), None);
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let (a, ha) = new_secret();
        let (b, _) = new_secret();
        assert_ne!(a, b);
        assert_eq!(ha, sha256_hex(&a));
        assert_eq!(ha.len(), 64);
    }
}
