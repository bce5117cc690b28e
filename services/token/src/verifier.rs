//! Token verification as the token service and every remote verifier do it: size limit,
//! verified-token cache, header checks, key choice (with a reload for an unknown `kid`),
//! signature and claims. Only where the keys come from differs ([`KeySource`]).
use crate::api::{TokenKind, VerifiedToken};
use crate::cache::{self, VerifiedCache};
use crate::jwt::{self, LEEWAY_SECONDS};
use crate::keyset::KeySet;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;
use warden_common::Result;
use warden_common::clock::SharedClock;

/// How often the keys are re-read: the token service re-reads its table (another replica
/// may have rotated), a remote verifier re-fetches the JWKS (retired keys leave it).
pub(crate) const RELOAD_INTERVAL: Duration = Duration::from_secs(30);
/// An unknown `kid` triggers a reload at most this often, so junk kids cannot hammer the
/// key table or the token service.
pub(crate) const UNKNOWN_KID_RELOAD_GAP: Duration = Duration::from_secs(1);

#[async_trait::async_trait]
pub(crate) trait KeySource: Send + Sync {
    /// The keys to verify with now.
    async fn keys(&self) -> Result<Arc<KeySet>>;
    /// Called when `kid` is not in the current keys: fresher keys if a reload is allowed
    /// now (see [`UNKNOWN_KID_RELOAD_GAP`]), otherwise the current ones.
    async fn keys_for_unknown(&self, kid: &str) -> Result<Arc<KeySet>>;
}

pub(crate) struct Verifier {
    issuer: String,
    audience: String,
    clock: SharedClock,
    verified: VerifiedCache,
}

impl Verifier {
    pub(crate) fn new(issuer: String, audience: String, clock: SharedClock) -> Self {
        Verifier { issuer, audience, clock, verified: VerifiedCache::default() }
    }

    pub(crate) async fn verify(&self, source: &dyn KeySource, token: &str, kind: TokenKind) -> Result<VerifiedToken> {
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(jwt::invalid());
        }
        let cache_key = cache::key(token);
        let now = self.clock.unix();
        let keys = source.keys().await?;
        let live = |kid: &str| keys.contains(kid);
        if let Some(hit) = self.verified.get(&cache_key, now, LEEWAY_SECONDS, live).filter(|v| v.kind == kind) {
            return Ok(hit);
        }
        let kid = jwt::checked_kid(token, kind)?;
        // A kid we do not know may come from a key created since the keys were read.
        let keys = if keys.contains(&kid) { keys } else { source.keys_for_unknown(&kid).await? };
        let claims = jwt::verify(&keys, &kid, token, &self.issuer, &self.audience, now)?;
        let verified = VerifiedToken {
            subject: parse_uuid(&claims.sub)?,
            session_id: parse_uuid(&claims.sid)?,
            jti: claims.jti,
            kind,
            issued_at: time(claims.iat)?,
            expires_at: time(claims.exp)?,
            kid,
        };
        self.verified.insert(cache_key, verified.clone(), now);
        Ok(verified)
    }
}

fn parse_uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| jwt::invalid())
}

fn time(unix: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|_| jwt::invalid())
}
