//! The server's Ed25519 key pair: signs access tokens (EdDSA JWTs) and device cookies.
//! Generated into the data directory on first start; never logged, never sent.

use ed25519_dalek::{
    SigningKey, VerifyingKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{DecodingKey, EncodingKey};
use std::{fmt, fs, io, path::Path};

/// File name of the PKCS#8 PEM private key inside the data directory.
pub const KEY_FILE: &str = "token_signing_key.pem";

pub struct Keys {
    signing: SigningKey,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    /// Access tokens whose signature was already checked (`tokens::verify_access`).
    pub(crate) verified: crate::tokens::Verified,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys").field("public", &hex::encode(self.verifying().as_bytes())).finish_non_exhaustive()
    }
}

impl Keys {
    /// Loads the key from `dir`, creating it (mode 0600) if it does not exist.
    pub fn load_or_create(dir: &Path) -> io::Result<Self> {
        let path = dir.join(KEY_FILE);
        let pem = match fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(io::Error::other)?.to_string();
                write_private(&path, &pem)?;
                tracing::info!(path = %path.display(), "generated a new token signing key");
                pem
            }
            Err(e) => return Err(e),
        };
        let signing = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
        Self::from_signing_key(signing)
    }

    /// Keys from an existing signing key (tests use a fresh random one).
    pub fn from_signing_key(signing: SigningKey) -> io::Result<Self> {
        let private_pem = signing.to_pkcs8_pem(LineEnding::LF).map_err(io::Error::other)?;
        let public_pem = signing.verifying_key().to_public_key_pem(LineEnding::LF).map_err(io::Error::other)?;
        let encoding = EncodingKey::from_ed_pem(private_pem.as_bytes()).map_err(io::Error::other)?;
        let decoding = DecodingKey::from_ed_pem(public_pem.as_bytes()).map_err(io::Error::other)?;
        Ok(Self { signing, encoding, decoding, verified: Default::default() })
    }

    /// A throwaway key pair (tests).
    pub fn generate() -> io::Result<Self> {
        Self::from_signing_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn verifying(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub(crate) fn signing(&self) -> &SigningKey {
        &self.signing
    }
}

fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded() {
        let dir = std::env::temp_dir().join(format!("chatalot-keys-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let a = Keys::load_or_create(&dir).unwrap();
        let b = Keys::load_or_create(&dir).unwrap();
        assert_eq!(a.verifying(), b.verifying());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
        fs::remove_dir_all(dir).unwrap();
    }
}
