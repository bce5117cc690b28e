//! The public keys verification chooses from, by `kid`. The token service builds the set from
//! its key table; a remote verifier builds it from the JWKS the token service publishes.
//! Either way only Ed25519 keys enter it, so no other algorithm can ever be verified.
use crate::api::Jwk;
use crate::signing_key::decoding_key;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use std::collections::HashMap;

#[derive(Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, DecodingKey>,
}

impl KeySet {
    pub(crate) fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    pub(crate) fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The usable keys of a JWKS: OKP / Ed25519 / EdDSA signing keys whose `x` is a valid
    /// curve point. Anything else is left out (and logged), so a token naming it is refused.
    pub(crate) fn from_jwks(jwks: &[Jwk]) -> KeySet {
        let mut set = KeySet::default();
        for jwk in jwks {
            match ed25519_public(jwk) {
                Some(public) => set.insert(jwk.kid.clone(), &public),
                None => {
                    tracing::warn!(kid = %jwk.kid, kty = %jwk.kty, "JWKS entry is not an Ed25519 signing key; ignored")
                }
            }
        }
        set
    }

    pub(crate) fn insert(&mut self, kid: String, public: &[u8; 32]) {
        self.keys.insert(kid, decoding_key(public));
    }
}

fn ed25519_public(jwk: &Jwk) -> Option<[u8; 32]> {
    let usable = jwk.kty == "OKP"
        && jwk.crv == "Ed25519"
        && jwk.alg == "EdDSA"
        && (jwk.use_.is_empty() || jwk.use_ == "sig")
        && !jwk.kid.is_empty();
    if !usable {
        return None;
    }
    let public: [u8; 32] = URL_SAFE_NO_PAD.decode(&jwk.x).ok()?.try_into().ok()?;
    // A string of 32 bytes that is not a point would only fail later, on every token.
    ed25519_dalek::VerifyingKey::from_bytes(&public).ok()?;
    Some(public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing_key::{KeyPair, jwk};

    #[test]
    fn only_ed25519_signing_keys_are_taken_from_a_jwks() {
        let pair = KeyPair::generate();
        let good = jwk(&pair.kid, &pair.public);
        let mut wrong_curve = jwk("x25519", &pair.public);
        wrong_curve.crv = "X25519".into();
        let mut encryption = jwk("enc", &pair.public);
        encryption.use_ = "enc".into();
        let mut short = jwk("short", &pair.public);
        short.x = URL_SAFE_NO_PAD.encode([7u8; 31]);
        let set = KeySet::from_jwks(&[good, wrong_curve, encryption, short]);
        assert!(set.contains(&pair.kid));
        assert_eq!(set.len(), 1);
    }
}
