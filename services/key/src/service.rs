//! The in-process implementation of [`KeyApi`].
use crate::api::{ApiKey, CreatedApiKey, KeyApi, NewApiKey, ValidatedApiKey};
use crate::cache::{CachedKey, KeyCache};
use crate::entity;
use crate::error::KeyError;
use crate::format;
use crate::hash::Hasher;
use crate::input;
use crate::limiter::{LocalLimiter, Verdict};
use crate::redis_state::RedisState;
use crate::usage::{self, Usage};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;
use warden_common::clock::SharedClock;
use warden_common::db::Db;
use warden_common::db::unique;
use warden_common::secret::Secret;
use warden_common::{Error, Result};

pub struct KeyService {
    db: Db,
    clock: SharedClock,
    hasher: Hasher,
    cache: Arc<KeyCache>,
    usage: Arc<Usage>,
    /// `None` in embedded mode: limits and revocations stay in this process.
    redis: Option<RedisState>,
    local_limiter: LocalLimiter,
    /// Dropping it stops the background tasks (after a last usage flush).
    _shutdown: watch::Sender<()>,
}

impl KeyService {
    /// Builds the service and starts its background tasks (usage flushing and, with Redis,
    /// the revocation listener). The database must already be migrated.
    pub async fn new(
        db: Db,
        redis: Option<fred::clients::Client>,
        clock: SharedClock,
        pepper: Option<String>,
    ) -> anyhow::Result<Self> {
        let hasher = Hasher::new(pepper.as_deref())?;
        let (shutdown, shutdown_rx) = watch::channel(());
        let cache = Arc::new(KeyCache::default());
        let usage = Arc::new(Usage::default());
        let redis = redis.map(RedisState::new);
        if let Some(redis) = &redis {
            redis.listen(cache.clone(), shutdown_rx.clone()).await?;
        }
        tokio::spawn(flush_usage_periodically(usage.clone(), db.clone(), shutdown_rx));
        Ok(KeyService {
            db,
            clock,
            hasher,
            cache,
            usage,
            redis,
            local_limiter: LocalLimiter::default(),
            _shutdown: shutdown,
        })
    }

    /// Writes pending `last_used_at` times now (the background task does it every few seconds).
    pub async fn flush_usage(&self) -> Result<()> {
        self.usage.flush(&self.db).await?;
        Ok(())
    }

    /// Now, at the microsecond precision PostgreSQL stores, so what we return is what we read back.
    fn now(&self) -> OffsetDateTime {
        let now = self.clock.now();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
    }

    /// The key's row from the cache or the database (one primary-key read).
    async fn load(&self, id: Uuid) -> Result<Option<Arc<CachedKey>>> {
        if let Some(hit) = self.cache.get(id) {
            return Ok(Some(hit));
        }
        let epoch = self.cache.epoch();
        let Some(row) = unique(entity::Entity::find_by_id(id), &self.db).await? else {
            return Ok(None);
        };
        let entry =
            Arc::new(CachedKey { key: to_api_key(&row)?, secret_hash: row.secret_hash, hash_alg: row.hash_alg });
        self.cache.insert_if_current(epoch, entry.clone());
        Ok(Some(entry))
    }
}

fn deny(id: Uuid, error: KeyError) -> Error {
    tracing::info!(target: "audit", event = "api_key.denied", key_id = %id, reason = %error);
    error.into()
}

impl KeyService {
    /// API-key validation; [`KeyApi::validate_api_key`] counts its outcome.
    async fn validate(&self, key: &str) -> Result<ValidatedApiKey> {
        // Format and checksum first: typos and junk never reach storage.
        let Some(parsed) = format::parse(key) else {
            tracing::debug!(target: "audit", event = "api_key.denied", reason = "malformed");
            return Err(KeyError::Invalid.into());
        };
        let id = parsed.id;
        let Some(entry) = self.load(id).await? else {
            return Err(deny(id, KeyError::Invalid));
        };
        if !self.hasher.verify(key, &entry.secret_hash, &entry.hash_alg)? {
            return Err(deny(id, KeyError::Invalid));
        }
        if entry.key.revoked_at.is_some() {
            return Err(deny(id, KeyError::Revoked));
        }
        let now = self.now();
        if entry.key.expires_at.is_some_and(|at| at <= now) {
            return Err(deny(id, KeyError::Expired));
        }
        let limit = entry.key.rate_limit_per_minute;
        let now_us = i64::try_from(now.unix_timestamp_nanos() / 1_000).map_err(Error::internal)?;
        let verdict = match &self.redis {
            Some(redis) => redis.check(id, limit, now_us).await?,
            None => self.local_limiter.check(id, limit, now_us),
        };
        let remaining = match verdict {
            Verdict::Allowed { remaining } => remaining,
            Verdict::Limited { retry_after } => return Err(deny(id, KeyError::RateLimited { retry_after })),
            Verdict::Revoked => {
                self.cache.invalidate(id);
                return Err(deny(id, KeyError::Revoked));
            }
        };
        self.usage.touch(id, now);
        let mut key = entry.key.clone();
        key.last_used_at = Some(now);
        Ok(ValidatedApiKey { key, rate_limit_remaining: remaining })
    }
}

#[async_trait::async_trait]
impl KeyApi for KeyService {
    async fn generate_api_key(&self, new: NewApiKey) -> Result<CreatedApiKey> {
        let name = input::name(&new.name)?;
        let scopes = input::scopes(&new.scopes)?;
        let expires_in = input::expires_in(new.expires_in)?;
        let rate_limit_per_minute = input::rate_limit(new.rate_limit_per_minute)?;
        if new.owner_id.is_nil() {
            return Err(Error::validation("owner_id is required"));
        }
        let now = self.now();
        let expires_at = expires_in.map(|s| now + time::Duration::seconds(s));
        // v7: time-ordered ids keep the primary-key index append-mostly.
        let id = Uuid::now_v7();
        let secret = format::generate(id);
        let row = entity::ActiveModel {
            id: Set(id),
            owner_id: Set(new.owner_id),
            name: Set(name.clone()),
            scopes: Set(serde_json::to_string(&scopes).map_err(Error::internal)?),
            secret_hash: Set(self.hasher.hash_hex(&secret)),
            hash_alg: Set(self.hasher.algorithm().to_owned()),
            created_at: Set(now),
            expires_at: Set(expires_at),
            last_used_at: Set(None),
            revoked_at: Set(None),
            rate_limit_per_minute: Set(rate_limit_per_minute as i32),
        };
        // One INSERT: it either stores the whole key or nothing (503 on failure).
        entity::Entity::insert(row).exec_without_returning(&self.db).await?;
        let key = ApiKey {
            id,
            owner_id: new.owner_id,
            name,
            prefix: format::prefix(id),
            scopes,
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
            rate_limit_per_minute,
        };
        tracing::info!(
            target: "audit",
            event = "api_key.created",
            key_id = %id,
            owner_id = %key.owner_id,
            prefix = %key.prefix,
            scopes = ?key.scopes,
            expires_at = ?key.expires_at,
            rate_limit_per_minute,
        );
        Ok(CreatedApiKey { key, secret: Secret::new(secret) })
    }

    async fn validate_api_key(&self, key: &str) -> Result<ValidatedApiKey> {
        let outcome = self.validate(key).await;
        let label = outcome.as_ref().map_or_else(|e| e.code.as_str(), |_| "valid");
        metrics::counter!("warden_api_key_validations_total", "outcome" => label).increment(1);
        outcome
    }

    async fn revoke_api_key(&self, id: Uuid, owner: Option<Uuid>) -> Result<()> {
        let row = unique(entity::Entity::find_by_id(id), &self.db).await?;
        // Someone else's key looks exactly like a missing one.
        let Some(row) = row.filter(|row| owner.is_none_or(|owner| owner == row.owner_id)) else {
            return Err(KeyError::NotFound.into());
        };
        if row.revoked_at.is_none() {
            entity::Entity::update_many()
                .col_expr(entity::Column::RevokedAt, Expr::value(self.now()))
                .filter(entity::Column::Id.eq(id))
                .filter(entity::Column::RevokedAt.is_null())
                .exec(&self.db)
                .await?;
        }
        self.cache.invalidate(id);
        // After the database commit, so a replica that reloads the row sees it revoked. If this
        // fails the caller gets 503 and may retry: revoking twice is harmless.
        if let Some(redis) = &self.redis {
            redis.announce_revocation(id).await?;
        }
        tracing::info!(
            target: "audit",
            event = "api_key.revoked",
            key_id = %id,
            owner_id = %row.owner_id,
            by_owner = owner.is_some(),
            already_revoked = row.revoked_at.is_some(),
        );
        Ok(())
    }

    async fn list_api_keys(&self, owner: Uuid) -> Result<Vec<ApiKey>> {
        let rows = entity::Entity::find().filter(entity::Column::OwnerId.eq(owner)).all(&self.db).await?;
        let mut keys = rows
            .iter()
            .map(|row| {
                let mut key = to_api_key(row)?;
                key.last_used_at = key.last_used_at.max(self.usage.pending(key.id));
                Ok(key)
            })
            .collect::<Result<Vec<_>>>()?;
        // Sorted here, not in SQL: SQLite compares timestamps as text.
        keys.sort_by_key(|k| std::cmp::Reverse((k.created_at, k.id)));
        Ok(keys)
    }

    async fn ready(&self) -> bool {
        let db = warden_common::db::ping(&self.db).await;
        let redis = match &self.redis {
            Some(redis) => redis.ping().await,
            None => true,
        };
        db && redis
    }
}

fn to_api_key(row: &entity::Model) -> Result<ApiKey> {
    let scopes: Vec<String> = serde_json::from_str(&row.scopes).map_err(Error::internal)?;
    Ok(ApiKey {
        id: row.id,
        owner_id: row.owner_id,
        name: row.name.clone(),
        prefix: format::prefix(row.id),
        scopes,
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
        rate_limit_per_minute: u32::try_from(row.rate_limit_per_minute).map_err(Error::internal)?,
    })
}

/// Flushes usage every few seconds, and once more when the service is dropped.
async fn flush_usage_periodically(usage: Arc<Usage>, db: Db, mut shutdown: watch::Receiver<()>) {
    let mut ticks = tokio::time::interval(usage::FLUSH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = ticks.tick() => false,
            _ = shutdown.changed() => true,
        };
        if let Err(e) = usage.flush(&db).await {
            tracing::warn!(error = %e, "writing api key last_used_at failed; will retry");
        }
        if last {
            break;
        }
    }
}
