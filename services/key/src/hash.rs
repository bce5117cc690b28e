//! What is stored instead of a key: SHA-256 of it, or HMAC-SHA-256 keyed with a server pepper
//! when one is configured (a stolen table is then useless without the pepper too).
use anyhow::Context;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warden_common::Error;

const SHA256: &str = "sha256";
const HMAC_SHA256: &str = "hmac-sha256";

pub(crate) enum Hasher {
    Sha256,
    Hmac(Box<Hmac<Sha256>>),
}

impl Hasher {
    pub(crate) fn new(pepper: Option<&str>) -> anyhow::Result<Self> {
        match pepper {
            None => Ok(Hasher::Sha256),
            Some("") => anyhow::bail!("invalid configuration: WARDEN_API_KEY_PEPPER: must not be empty"),
            Some(p) => {
                let mac = Hmac::<Sha256>::new_from_slice(p.as_bytes()).context("api key pepper")?;
                Ok(Hasher::Hmac(Box::new(mac)))
            }
        }
    }

    /// The algorithm recorded with each new hash, so keys made before a pepper was configured
    /// keep working.
    pub(crate) fn algorithm(&self) -> &'static str {
        match self {
            Hasher::Sha256 => SHA256,
            Hasher::Hmac(_) => HMAC_SHA256,
        }
    }

    pub(crate) fn hash_hex(&self, key: &str) -> String {
        hex::encode(self.digest(self.algorithm(), key).expect("own algorithm is always available"))
    }

    /// Constant-time check of `key` against a stored hash.
    pub(crate) fn verify(&self, key: &str, stored_hex: &str, algorithm: &str) -> Result<bool, Error> {
        let computed = self.digest(algorithm, key)?;
        let mut stored = [0u8; 32];
        if hex::decode_to_slice(stored_hex, &mut stored).is_err() {
            return Err(Error::internal(anyhow::anyhow!("stored api key hash is not 32 hex bytes")));
        }
        Ok(computed.ct_eq(&stored).into())
    }

    fn digest(&self, algorithm: &str, key: &str) -> Result<[u8; 32], Error> {
        match (algorithm, self) {
            (SHA256, _) => Ok(Sha256::digest(key.as_bytes()).into()),
            (HMAC_SHA256, Hasher::Hmac(mac)) => {
                let mut mac = mac.as_ref().clone();
                mac.update(key.as_bytes());
                Ok(mac.finalize().into_bytes().into())
            }
            // Fail closed and loudly: keys made with a pepper cannot be checked without it.
            (HMAC_SHA256, Hasher::Sha256) => Err(Error::internal(anyhow::anyhow!(
                "an api key was hashed with a pepper, but WARDEN_API_KEY_PEPPER is not set"
            ))),
            (other, _) => Err(Error::internal(anyhow::anyhow!("unknown api key hash algorithm {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_and_hmac_differ_and_verify() {
        let plain = Hasher::new(None).unwrap();
        let peppered = Hasher::new(Some("pepper")).unwrap();
        let other = Hasher::new(Some("other")).unwrap();
        let key = "wdn_example";
        let h1 = plain.hash_hex(key);
        let h2 = peppered.hash_hex(key);
        assert_eq!(h1, warden_common::secret::sha256_hex(key));
        assert_ne!(h1, h2);
        assert!(plain.verify(key, &h1, "sha256").unwrap());
        assert!(peppered.verify(key, &h1, "sha256").unwrap(), "old unpeppered keys still verify");
        assert!(peppered.verify(key, &h2, "hmac-sha256").unwrap());
        assert!(!other.verify(key, &h2, "hmac-sha256").unwrap(), "another pepper does not verify");
        assert!(!peppered.verify("wdn_examplf", &h2, "hmac-sha256").unwrap());
        assert!(plain.verify(key, &h2, "hmac-sha256").is_err(), "missing pepper fails closed");
        assert!(plain.verify(key, "zz", "sha256").is_err());
        assert!(Hasher::new(Some("")).is_err());
    }
}
