//! Ed25519 signing keys: generation, the key that signs, the key jsonwebtoken verifies with, and
//! the public JWK.
use crate::api::Jwk;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
#[cfg(test)]
use jsonwebtoken::EncodingKey;
use warden_common::secret::random_bytes;

/// PKCS#8 v1 prefix for an Ed25519 private key (RFC 8410): SEQUENCE, version 0,
/// AlgorithmIdentifier id-Ed25519, OCTET STRING wrapping the 32-byte seed.
#[cfg(test)]
const PKCS8_ED25519_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// A key pair; the seed never leaves the token service and has no `Debug` output.
#[derive(Clone)]
pub(crate) struct KeyPair {
    pub(crate) kid: String,
    seed: [u8; 32],
    pub(crate) public: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl KeyPair {
    pub(crate) fn generate() -> Self {
        let seed = random_bytes::<32>();
        // The kid is random, not derived from the key, so it reveals nothing.
        let kid = URL_SAFE_NO_PAD.encode(random_bytes::<12>());
        Self::from_seed(kid, seed)
    }

    pub(crate) fn from_seed(kid: String, seed: [u8; 32]) -> Self {
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        KeyPair { kid, seed, public }
    }

    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The key that signs, built once per key load: building it derives the public key (a
    /// scalar multiplication), which jsonwebtoken's `encode` repeats for every token.
    pub(crate) fn signing_key(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.seed)
    }

    /// jsonwebtoken's form of the private key; [`crate::jwt::sign`] is checked against it.
    #[cfg(test)]
    pub(crate) fn encoding_key(&self) -> EncodingKey {
        let mut der = Vec::with_capacity(48);
        der.extend_from_slice(&PKCS8_ED25519_PREFIX);
        der.extend_from_slice(&self.seed);
        EncodingKey::from_ed_der(&der)
    }
}

pub(crate) fn decoding_key(public: &[u8; 32]) -> DecodingKey {
    DecodingKey::from_ed_der(public)
}

pub(crate) fn jwk(kid: &str, public: &[u8; 32]) -> Jwk {
    Jwk {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        x: URL_SAFE_NO_PAD.encode(public),
        kid: kid.to_owned(),
        alg: "EdDSA".into(),
        use_: "sig".into(),
    }
}
