//! TokenService: issues and verifies access and refresh tokens with the current keys.
use crate::api::{IssuedToken, Jwk, TokenApi, TokenKind, TokenSeed, VerifiedToken};
use crate::jwt::{self, Claims, LEEWAY_SECONDS};
use crate::keyring::{KeyRing, KeyStore};
use crate::keyset::KeySet;
use crate::verifier::{KeySource, RELOAD_INTERVAL, UNKNOWN_KID_RELOAD_GAP, Verifier};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Instant;
use time::OffsetDateTime;
use uuid::Uuid;
use warden_common::clock::SharedClock;
use warden_common::db::Db;
use warden_common::sealing::Sealer;
use warden_common::{Config, Error, Result};

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
    verifier: Verifier,
}

impl TokenService {
    /// Loads (or creates) the signing keys and starts the periodic reload.
    pub async fn new(db: Db, clock: SharedClock, settings: TokenSettings) -> anyhow::Result<Arc<Self>> {
        let store =
            KeyStore::new(db, clock.clone(), Sealer::new(settings.signing_key_secret.as_deref(), "signing-keys"));
        let ring = store.load().await.map_err(|e| {
            anyhow::anyhow!("loading signing keys: {}", e.source_chain().unwrap_or_else(|| e.to_string()))
        })?;
        let verifier = Verifier::new(settings.issuer.clone(), settings.audience.clone(), clock.clone());
        let service = Arc::new(TokenService {
            settings,
            store,
            ring: RwLock::new(Arc::new(ring)),
            last_reload: Mutex::new(Instant::now()),
            clock,
            verifier,
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

#[async_trait::async_trait]
impl KeySource for TokenService {
    async fn keys(&self) -> Result<Arc<KeySet>> {
        Ok(self.ring().verifiers.clone())
    }

    async fn keys_for_unknown(&self, _kid: &str) -> Result<Arc<KeySet>> {
        // The kid may belong to a key another replica just created.
        let stale = self.last_reload.lock().expect("reload lock").elapsed() >= UNKNOWN_KID_RELOAD_GAP;
        if stale {
            self.reload().await?;
        }
        Ok(self.ring().verifiers.clone())
    }
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
        self.verifier.verify(self, token, kind).await
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
