//! The local half of a bearer check: Warden's public keys, fetched from its JWKS and kept
//! fresh, and the strict verification rules Warden itself applies (RFC 8725). Only EdDSA,
//! `typ` `at+jwt`, a `kid` from Warden's JWKS, and no header that points at other keys;
//! `iss`, `aud`, `exp` and `nbf` with the same 10-second leeway as Warden.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warden_common::{Error, ErrorCode};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (Warden's own leeway).
pub const LEEWAY_SECONDS: i64 = 10;
/// Tokens longer than this are refused before any parsing (Warden's own limit).
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;
const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// What the local check learned from a valid access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// `sub`: the user id.
    pub subject: String,
    /// `sid`: the login session the token belongs to.
    pub session_id: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// The signing key's id.
    pub kid: String,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    #[serde(default)]
    sid: Option<String>,
    iat: i64,
    nbf: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
}

#[derive(Default)]
struct KeyState {
    keys: Arc<HashMap<String, DecodingKey>>,
    /// When the last fetch was attempted, and whether it failed.
    last_attempt: Option<Instant>,
    last_failed: bool,
}

/// Warden's public signing keys, shared by every clone of a client.
pub(crate) struct Jwks {
    url: String,
    http: reqwest::Client,
    min_gap: Duration,
    state: RwLock<KeyState>,
    /// One fetch at a time; requests waiting for a kid share the fetch in flight.
    fetching: tokio::sync::Mutex<()>,
}

pub(crate) fn invalid() -> Error {
    Error::new(ErrorCode::TokenInvalid, "the token is not valid")
}

fn expired() -> Error {
    Error::new(ErrorCode::TokenExpired, "the token has expired")
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Jwks {
    pub(crate) fn new(url: String, timeout: Duration, min_gap: Duration) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::internal(anyhow::anyhow!("building the jwks http client: {e}")))?;
        Ok(Jwks { url, http, min_gap, state: RwLock::new(KeyState::default()), fetching: Default::default() })
    }

    /// Fetches the JWKS now (at start, and on the background timer).
    pub(crate) async fn refresh(&self) -> Result<(), Error> {
        let _one = self.fetching.lock().await;
        self.fetch().await
    }

    fn lookup(&self, kid: &str) -> Option<DecodingKey> {
        self.state.read().expect("jwks lock").keys.get(kid).cloned()
    }

    /// The key for `kid`; an unknown kid fetches the JWKS once more, at most once per gap.
    async fn key(&self, kid: &str) -> Result<DecodingKey, Error> {
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        let arrived = Instant::now();
        let _one = self.fetching.lock().await;
        let (last_attempt, last_failed) = {
            let state = self.state.read().expect("jwks lock");
            (state.last_attempt, state.last_failed)
        };
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        match last_attempt {
            // Someone fetched while this request waited: its answer is as fresh as ours would be.
            Some(at) if at >= arrived && !last_failed => return Err(invalid()),
            Some(at) if at >= arrived => return Err(unavailable(anyhow::anyhow!("the last jwks fetch failed"))),
            Some(at) => {
                let since = at.elapsed();
                if since < self.min_gap {
                    tokio::time::sleep(self.min_gap - since).await;
                }
            }
            None => {}
        }
        self.fetch().await?;
        self.lookup(kid).ok_or_else(invalid)
    }

    async fn fetch(&self) -> Result<(), Error> {
        let result = self.download().await;
        let mut state = self.state.write().expect("jwks lock");
        state.last_attempt = Some(Instant::now());
        state.last_failed = result.is_err();
        let keys = result?;
        tracing::debug!(url = %self.url, keys = keys.len(), "jwks fetched");
        state.keys = Arc::new(keys);
        Ok(())
    }

    async fn download(&self) -> Result<HashMap<String, DecodingKey>, Error> {
        let response = self.http.get(&self.url).send().await.map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(unavailable(anyhow::anyhow!("{} answered {}", self.url, response.status())));
        }
        let body = response.bytes().await.map_err(unavailable)?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(unavailable(anyhow::anyhow!("the jwks document is larger than {MAX_JWKS_BYTES} bytes")));
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(unavailable)?;
        Ok(set.keys.into_iter().filter_map(ed25519_key).collect())
    }

    /// Verifies an access token locally: header, key, signature, issuer, audience, times.
    pub(crate) async fn verify(&self, token: &str, issuer: &str, audience: &str) -> Result<TokenClaims, Error> {
        let kid = checked_kid(token)?;
        let key = self.key(&kid).await?;
        verify_with(&key, kid, token, issuer, audience, now_unix())
    }
}

fn unavailable(source: impl Into<anyhow::Error>) -> Error {
    Error::unavailable("warden's jwks", source)
}

/// A JWK Warden would publish: an Ed25519 signing key; anything else is skipped.
fn ed25519_key(jwk: RawJwk) -> Option<(String, DecodingKey)> {
    let usable = jwk.kty == "OKP"
        && jwk.crv.as_deref() == Some("Ed25519")
        && jwk.alg.as_deref().is_none_or(|a| a == "EdDSA")
        && jwk.use_.as_deref().is_none_or(|u| u == "sig");
    let public = URL_SAFE_NO_PAD.decode(jwk.x?).ok().filter(|x| x.len() == 32);
    match (usable, jwk.kid, public) {
        (true, Some(kid), Some(public)) if !kid.is_empty() => Some((kid, DecodingKey::from_ed_der(&public))),
        _ => None,
    }
}

/// Checks the header before any key is chosen, and returns the `kid`.
pub(crate) fn checked_kid(token: &str) -> Result<String, Error> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(invalid());
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP));
    let foreign_key = header.jwk.is_some()
        || header.jku.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some();
    if header.alg != Algorithm::EdDSA || !typ_ok || foreign_key {
        return Err(invalid());
    }
    header.kid.filter(|k| !k.is_empty()).ok_or_else(invalid)
}

/// Signature, issuer and audience, then the time claims against `now` with the leeway.
pub(crate) fn verify_with(
    key: &DecodingKey,
    kid: String,
    token: &str,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<TokenClaims, Error> {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    // Times are checked below, against `now`, exactly as Warden checks them.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = jsonwebtoken::decode::<RawClaims>(token, key, &validation).map_err(|_| invalid())?.claims;
    if now > claims.exp + LEEWAY_SECONDS {
        return Err(expired());
    }
    if claims.nbf > now + LEEWAY_SECONDS || claims.iat > now + LEEWAY_SECONDS {
        return Err(invalid());
    }
    Ok(TokenClaims { subject: claims.sub, session_id: claims.sid, expires_at: claims.exp, kid })
}

/// Fetches the JWKS every `every` until the last client is dropped; a failed fetch keeps
/// the keys already known.
pub(crate) fn spawn_refresher(jwks: Weak<Jwks>, every: Duration) {
    let every = every.max(Duration::from_secs(1));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(jwks) = jwks.upgrade() else { return };
            if let Err(e) = jwks.refresh().await {
                tracing::warn!(error = %e, cause = e.source_chain().unwrap_or_default(), "jwks refresh failed; keeping the known keys");
            }
        }
    });
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
