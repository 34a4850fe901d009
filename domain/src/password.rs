//! Argon2id password hashing (m = 64 MiB, t = 3, p = 4) off the async runtime, with bounded
//! concurrency so a burst of logins cannot exhaust memory on a small machine.

use super::error::{ServerError, ServerResult};
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version, password_hash::SaltString,
};
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use tokio::sync::{OnceCell, Semaphore};

#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: unknown usernames are verified against it so that they
    /// cost exactly as much time as a wrong password.
    dummy: Arc<OnceCell<String>>,
    /// How many verifications ran (tests use it to prove unknown users cost a full verification).
    verified: Arc<AtomicU64>,
}

impl Default for Passwords {
    fn default() -> Self {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(parallel)),
            dummy: Arc::new(OnceCell::new()),
            verified: Arc::new(AtomicU64::new(0)),
        }
    }
}

fn argon2() -> Result<Argon2<'static>, ServerError> {
    let params = Params::new(64 * 1024, 3, 4, Some(32)).map_err(|e| ServerError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

impl Passwords {
    pub async fn hash(&self, password: String) -> ServerResult<String> {
        let _permit = self.permits.acquire().await.map_err(|e| ServerError::Hash(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            argon2()?
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| ServerError::Hash(e.to_string()))
        })
        .await?
    }

    /// Verifies `password` against `hash`; with no hash (unknown user) it does the same work and
    /// returns `false`.
    pub async fn verify(&self, password: String, hash: Option<String>) -> ServerResult<bool> {
        let (hash, known) = match hash {
            Some(h) => (h, true),
            None => (self.dummy_hash().await?, false),
        };
        let _permit = self.permits.acquire().await.map_err(|e| ServerError::Hash(e.to_string()))?;
        let ok = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| ServerError::Hash(e.to_string()))?;
            Ok::<_, ServerError>(argon2()?.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await??;
        self.verified.fetch_add(1, Ordering::Relaxed);
        Ok(ok && known)
    }

    /// The number of password verifications performed so far.
    pub fn verifications(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    async fn dummy_hash(&self) -> ServerResult<String> {
        self.dummy
            .get_or_try_init(|| async {
                let (random, _) = super::tokens::new_secret();
                self.hash(random).await
            })
            .await
            .cloned()
    }

    /// Computes the dummy hash ahead of the first login (called at start-up, in the background).
    pub async fn warm_up(&self) {
        if let Err(e) = self.dummy_hash().await {
            tracing::warn!(error = %e, "could not precompute the dummy password hash");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_the_configured_cost() {
        let p = Passwords::default();
        let hash = p.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{hash}");
        assert!(p.verify("correct horse".into(), Some(hash.clone())).await.unwrap());
        assert!(!p.verify("wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!p.verify("correct horse".into(), None).await.unwrap());
    }
}
