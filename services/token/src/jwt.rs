//! Signing and strict verification of Warden JWTs (RFC 8725). Verification accepts only
//! EdDSA, the expected `typ`, a `kid` we issued, and no header that points at other keys
//! (`jwk`, `jku`, `x5u`, `x5c`) or demands extensions (`crit`); nothing is ever fetched.
use crate::api::TokenKind;
use crate::keyring::KeyRing;
use crate::keyset::KeySet;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use warden_common::{Error, ErrorCode, Result};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (documented in README).
pub const LEEWAY_SECONDS: i64 = 10;
/// Tokens longer than this are rejected before any parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) iss: String,
    pub(crate) aud: String,
    pub(crate) sub: String,
    pub(crate) sid: String,
    pub(crate) jti: String,
    pub(crate) iat: i64,
    pub(crate) nbf: i64,
    pub(crate) exp: i64,
}

pub(crate) fn sign(ring: &KeyRing, kind: TokenKind, claims: &Claims) -> Result<String> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(kind.typ().to_owned());
    header.kid = Some(ring.current_kid.clone());
    encode(&header, claims, &ring.signer)
}

/// The compact JWS, as `jsonwebtoken::encode` writes it (the same bytes: a unit test
/// compares them), signed with a key built once. jsonwebtoken takes the key as PKCS#8 and
/// rebuilds the signing key from it for every token, deriving the public key each time;
/// that was a third of a token's signing cost.
fn encode(header: &Header, claims: &Claims, key: &ed25519_dalek::SigningKey) -> Result<String> {
    use ed25519_dalek::Signer;
    let mut token = json_part(header)?;
    token.push('.');
    token.push_str(&json_part(claims)?);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    Ok(token)
}

/// One part of a compact JWS: the value's JSON, base64url without padding.
fn json_part<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_vec(value).map(|json| URL_SAFE_NO_PAD.encode(json)).map_err(Error::internal)
}

pub(crate) fn invalid() -> Error {
    Error::new(ErrorCode::TokenInvalid, "the token is not valid")
}

/// Checks the header before any key is chosen; returns the `kid`.
pub(crate) fn checked_kid(token: &str, kind: TokenKind) -> Result<String> {
    if token.len() > MAX_TOKEN_BYTES || token.is_empty() {
        return Err(invalid());
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(kind.typ()));
    let foreign_key = header.jwk.is_some()
        || header.jku.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some();
    if header.alg != Algorithm::EdDSA || !typ_ok || foreign_key {
        return Err(invalid());
    }
    header.kid.ok_or_else(invalid)
}

/// Verifies signature, issuer and audience, then the time claims against `now`. The one
/// verification path: the token service and remote verifiers differ only in `keys`.
pub(crate) fn verify(keys: &KeySet, kid: &str, token: &str, issuer: &str, audience: &str, now: i64) -> Result<Claims> {
    let key = keys.get(kid).ok_or_else(invalid)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    // Time is checked below against the injected clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => Error::new(ErrorCode::TokenExpired, "the token has expired"),
        _ => invalid(),
    })?;
    let claims = data.claims;
    if now > claims.exp + LEEWAY_SECONDS {
        return Err(Error::new(ErrorCode::TokenExpired, "the token has expired"));
    }
    if claims.nbf > now + LEEWAY_SECONDS || claims.iat > now + LEEWAY_SECONDS {
        return Err(invalid());
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing_key::KeyPair;

    #[test]
    fn signs_the_same_bytes_as_jsonwebtoken() {
        let pair = KeyPair::generate();
        let claims = Claims {
            iss: "https://issuer.example".into(),
            aud: "warden".into(),
            sub: "5f0c3e4e-8a55-4c53-9d8f-0c2a3b1f6a10".into(),
            sid: "a7d9b0c2-44b1-4f0e-9a1e-2c3d4e5f6a7b".into(),
            jti: "jti-\"quoted\"-é".into(),
            iat: 1_700_000_000,
            nbf: 1_700_000_000,
            exp: 1_700_000_900,
        };
        for kind in [TokenKind::Access, TokenKind::Refresh] {
            let mut header = Header::new(Algorithm::EdDSA);
            header.typ = Some(kind.typ().to_owned());
            header.kid = Some(pair.kid.clone());
            let ours = encode(&header, &claims, &pair.signing_key()).unwrap();
            let theirs = jsonwebtoken::encode(&header, &claims, &pair.encoding_key()).unwrap();
            assert_eq!(ours, theirs);
        }
    }
}
