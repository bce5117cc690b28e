//! TokenService: issues and verifies access and refresh tokens with the current keys.
use crate::api::{IssuedToken, Jwk, TokenApi, TokenKind, TokenSeed, VerifiedToken};
use crate::cache::{self, VerifiedCache};
use crate::jwt::{self, Claims, LEEWAY_SECONDS};
use crate::keyring::{KeyRing, KeyStore};
use sea_orm::DatabaseConnection;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;
use warden_common::clock::SharedClock;
use warden_common::sealing::Sealer;
use warden_common::{Config, Error, ErrorCode, Result};

/// How often every replica re-reads the key table (rotation by another replica).
const RELOAD_INTERVAL: Duration = Duration::from_secs(30);
/// An unknown `kid` triggers a reload at most this often, so junk kids cannot hammer the DB.
const UNKNOWN_KID_RELOAD_GAP: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    /// Seals private keys at rest when set (required in prod mode).
    pub signing_key_secret: Option<String>,
    /// Seconds after which the current key is rotated automatically; 0 turns it off.
    pub rotation_interval: i64,
}

impl From<&Config> for TokenSettings {
    fn from(c: &Config) -> Self {
        TokenSettings {
            issuer: c.issuer.clone(),
            audience: c.audience.clone(),
            access_ttl: c.access_token_ttl,
            refresh_ttl: c.refresh_token_ttl,
            signing_key_secret: c.signing_key_secret.clone(),
            rotation_interval: c.signing_key_rotation,
        }
    }
}

pub struct TokenService {
    settings: TokenSettings,
    store: KeyStore,
    ring: RwLock<Arc<KeyRing>>,
    last_reload: Mutex<Instant>,
    clock: SharedClock,
    verified: VerifiedCache,
}

impl TokenService {
    /// Loads (or creates) the signing keys and starts the periodic reload.
    pub async fn new(db: DatabaseConnection, clock: SharedClock, settings: TokenSettings) -> anyhow::Result<Arc<Self>> {
        let store =
            KeyStore::new(db, clock.clone(), Sealer::new(settings.signing_key_secret.as_deref(), "signing-keys"));
        let ring = store.load().await.map_err(|e| {
            anyhow::anyhow!("loading signing keys: {}", e.source_chain().unwrap_or_else(|| e.to_string()))
        })?;
        let service = Arc::new(TokenService {
            settings,
            store,
            ring: RwLock::new(Arc::new(ring)),
            last_reload: Mutex::new(Instant::now()),
            clock,
            verified: VerifiedCache::default(),
        });
        tokio::spawn(reload_periodically(Arc::downgrade(&service)));
        Ok(service)
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().expect("key ring lock").clone()
    }

    async fn reload(&self) -> Result<()> {
        let ring = self.store.load().await?;
        *self.ring.write().expect("key ring lock") = Arc::new(ring);
        *self.last_reload.lock().expect("reload lock") = Instant::now();
        Ok(())
    }

    fn issue(
        &self,
        kind: TokenKind,
        user_id: Uuid,
        session_id: Uuid,
        ttl: i64,
        seed: Option<TokenSeed>,
    ) -> Result<IssuedToken> {
        let seed = seed
            .unwrap_or_else(|| TokenSeed { jti: Uuid::new_v4().simple().to_string(), issued_at: self.clock.unix() });
        let now = seed.issued_at;
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            jti: seed.jti,
            iat: now,
            nbf: now,
            exp: now + ttl,
        };
        let token = jwt::sign(&self.ring(), kind, &claims)?;
        let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp).map_err(Error::internal)?;
        // Relative to the real now, so a reissued token reports the time it has left.
        let expires_in = (claims.exp - self.clock.unix()).max(0);
        Ok(IssuedToken { token, jti: claims.jti, expires_at, expires_in })
    }

    /// Full verification: header checks, key choice, signature, claims.
    async fn verify_uncached(&self, token: &str, kind: TokenKind) -> Result<VerifiedToken> {
        let kid = jwt::checked_kid(token, kind)?;
        let mut ring = self.ring();
        if !ring.verifiers.contains_key(&kid) {
            // A kid we do not know may come from a key another replica just created.
            let stale = self.last_reload.lock().expect("reload lock").elapsed() >= UNKNOWN_KID_RELOAD_GAP;
            if stale {
                self.reload().await?;
                ring = self.ring();
            }
        }
        let s = &self.settings;
        let claims = jwt::verify(&ring, &kid, token, &s.issuer, &s.audience, self.clock.unix())?;
        let time = |t: i64| {
            OffsetDateTime::from_unix_timestamp(t)
                .map_err(|_| Error::new(ErrorCode::TokenInvalid, "the token is not valid"))
        };
        Ok(VerifiedToken {
            subject: parse_uuid(&claims.sub)?,
            session_id: parse_uuid(&claims.sid)?,
            jti: claims.jti,
            kind,
            issued_at: time(claims.iat)?,
            expires_at: time(claims.exp)?,
            kid,
        })
    }

    /// Periodic upkeep: picks up keys other replicas created, and rotates when due.
    pub async fn maintain(&self) {
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "signing key reload failed; keeping the keys in memory");
            return;
        }
        if let Err(e) = self.rotate_if_due().await {
            tracing::warn!(error = %e, "automatic signing key rotation failed; will retry");
        }
    }

    /// Rotates when the current key is older than the configured interval. Replicas race
    /// harmlessly: only the one that still sees the old key current creates a new one.
    async fn rotate_if_due(&self) -> Result<()> {
        let interval = self.settings.rotation_interval;
        let ring = self.ring();
        if interval <= 0 || self.clock.now() < ring.current_created_at + time::Duration::seconds(interval) {
            return Ok(());
        }
        if self.store.rotate(self.retention_seconds(), Some(&ring.current_kid)).await?.is_some() {
            tracing::info!("signing key rotated automatically");
        }
        self.reload().await
    }

    /// How long a retired key must keep verifying: the longest token lifetime plus leeway.
    fn retention_seconds(&self) -> i64 {
        self.settings.access_ttl.max(self.settings.refresh_ttl) + LEEWAY_SECONDS
    }
}

async fn reload_periodically(service: Weak<TokenService>) {
    loop {
        tokio::time::sleep(RELOAD_INTERVAL).await;
        let Some(service) = service.upgrade() else { return };
        service.maintain().await;
    }
}

fn parse_uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| Error::new(ErrorCode::TokenInvalid, "the token is not valid"))
}

#[async_trait::async_trait]
impl TokenApi for TokenService {
    async fn generate_access_token(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        seed: Option<TokenSeed>,
    ) -> Result<IssuedToken> {
        self.issue(TokenKind::Access, user_id, session_id, self.settings.access_ttl, seed)
    }

    async fn generate_refresh_token(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        ttl: Option<i64>,
        seed: Option<TokenSeed>,
    ) -> Result<IssuedToken> {
        let ttl = ttl.filter(|t| *t > 0).unwrap_or(self.settings.refresh_ttl);
        self.issue(TokenKind::Refresh, user_id, session_id, ttl, seed)
    }

    async fn verify_token(&self, token: &str, kind: TokenKind) -> Result<VerifiedToken> {
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(Error::new(ErrorCode::TokenInvalid, "the token is not valid"));
        }
        let cache_key = cache::key(token);
        let now = self.clock.unix();
        let current = self.ring();
        let live = |kid: &str| current.verifiers.contains_key(kid);
        if let Some(hit) = self.verified.get(&cache_key, now, LEEWAY_SECONDS, live).filter(|v| v.kind == kind) {
            return Ok(hit);
        }
        let verified = self.verify_uncached(token, kind).await?;
        self.verified.insert(cache_key, verified.clone(), now);
        Ok(verified)
    }

    async fn jwks(&self) -> Result<Vec<Jwk>> {
        Ok(self.ring().jwks.clone())
    }

    async fn rotate_signing_key(&self) -> Result<String> {
        let kid = self.store.rotate(self.retention_seconds(), None).await?.expect("unconditional rotation");
        self.reload().await?;
        Ok(kid)
    }

    async fn ready(&self) -> bool {
        self.store.ping().await
    }
}
