//! Signing and strict verification of Warden JWTs (RFC 8725). Verification accepts only
//! EdDSA, the expected `typ`, a `kid` we issued, and no header that points at other keys
//! (`jwk`, `jku`, `x5u`, `x5c`) or demands extensions (`crit`); nothing is ever fetched.
use crate::api::TokenKind;
use crate::keyring::KeyRing;
use crate::keyset::KeySet;
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
    jsonwebtoken::encode(&header, claims, &ring.signer).map_err(Error::internal)
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
