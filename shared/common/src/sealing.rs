//! Encryption at rest of secrets in the database (signing keys, TOTP seeds):
//! XChaCha20-Poly1305 under a key derived from `WARDEN_SIGNING_KEY_SECRET` and a purpose tag,
//! with the row's id as associated data so a sealed value cannot be moved to another row.
//! Without a secret (embedded dev default) values are stored plain.
use crate::secret::random_bytes;
use crate::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use sha2::{Digest, Sha256};

const PLAIN: &str = "plain:";
const SEALED: &str = "enc:v1:";

#[derive(Clone)]
pub struct Sealer {
    cipher: Option<XChaCha20Poly1305>,
}

impl Sealer {
    /// `purpose` separates keys: the same secret seals signing keys and TOTP seeds under
    /// different derived keys.
    pub fn new(secret: Option<&str>, purpose: &str) -> Self {
        let cipher = secret.map(|s| {
            // The secret is operator-provided and high-entropy; hashing with a purpose tag
            // gives a 256-bit key that is only ever used for that purpose.
            let key = Sha256::new()
                .chain_update(b"warden sealing v1\0")
                .chain_update(purpose.as_bytes())
                .chain_update(b"\0")
                .chain_update(s.as_bytes())
                .finalize();
            XChaCha20Poly1305::new_from_slice(&key).expect("32-byte key")
        });
        Sealer { cipher }
    }

    pub fn seal(&self, kid: &str, seed: &[u8]) -> Result<String> {
        let Some(cipher) = &self.cipher else { return Ok(format!("{PLAIN}{}", STANDARD.encode(seed))) };
        let nonce = random_bytes::<24>();
        let sealed = cipher
            .encrypt((&nonce).into(), Payload { msg: seed, aad: kid.as_bytes() })
            .map_err(|_| Error::internal(anyhow::anyhow!("sealing a signing key failed")))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED}{}", STANDARD.encode(out)))
    }

    pub fn open(&self, kid: &str, stored: &str) -> Result<Vec<u8>> {
        let unreadable = |why: &str| Error::internal(anyhow::anyhow!("sealed value {kid} is not readable: {why}"));
        let bytes = if let Some(b64) = stored.strip_prefix(PLAIN) {
            STANDARD.decode(b64).map_err(|_| unreadable("bad encoding"))?
        } else if let Some(b64) = stored.strip_prefix(SEALED) {
            let cipher = self.cipher.as_ref().ok_or_else(|| unreadable("WARDEN_SIGNING_KEY_SECRET is not set"))?;
            let raw = STANDARD.decode(b64).map_err(|_| unreadable("bad encoding"))?;
            if raw.len() < 24 {
                return Err(unreadable("too short"));
            }
            let (nonce, sealed) = raw.split_at(24);
            let nonce: &[u8; 24] = nonce.try_into().map_err(|_| unreadable("bad nonce"))?;
            cipher
                .decrypt(nonce.into(), Payload { msg: sealed, aad: kid.as_bytes() })
                .map_err(|_| unreadable("wrong WARDEN_SIGNING_KEY_SECRET or tampered row"))?
        } else {
            return Err(unreadable("unknown format"));
        };
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_secret_and_their_kid() {
        let seed = [9u8; 32];
        let sealer = Sealer::new(Some("a-very-long-operator-secret-value-123"), "test");
        let stored = sealer.seal("kid-1", &seed).unwrap();
        assert!(stored.starts_with(SEALED));
        assert!(!stored.contains(&STANDARD.encode(seed)));
        assert_eq!(sealer.open("kid-1", &stored).unwrap(), seed);
        assert!(Sealer::new(Some("a-very-long-operator-secret-value-123"), "other").open("kid-1", &stored).is_err());
        assert!(sealer.open("kid-2", &stored).is_err(), "bound to its kid");
        assert!(Sealer::new(Some("another-secret-of-enough-length-000"), "test").open("kid-1", &stored).is_err());
        assert!(Sealer::new(None, "test").open("kid-1", &stored).is_err());
        // Plain keys (dev default) stay readable after a secret is introduced.
        let plain = Sealer::new(None, "test").seal("kid-3", &seed).unwrap();
        assert_eq!(sealer.open("kid-3", &plain).unwrap(), seed);
    }
}
