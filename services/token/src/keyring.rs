//! The signing keys in memory and their persistence. Keys are generated on first start and
//! stored, so a restart does not log everybody out; a rotated key keeps verifying (and stays
//! in the JWKS) until every token it signed has expired.
use crate::api::Jwk;
use crate::entity::{self, Entity as SigningKeys};
use crate::keyset::KeySet;
use crate::signing_key::{KeyPair, jwk};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, Set};
use std::sync::Arc;
use time::OffsetDateTime;
use warden_common::clock::SharedClock;
use warden_common::db::Db;
use warden_common::sealing::Sealer;
use warden_common::{Error, Result};

/// Everything needed to sign and verify, swapped as a whole on reload.
pub(crate) struct KeyRing {
    pub(crate) current_kid: String,
    pub(crate) current_created_at: OffsetDateTime,
    pub(crate) signer: ed25519_dalek::SigningKey,
    pub(crate) verifiers: Arc<KeySet>,
    pub(crate) jwks: Vec<Jwk>,
}

pub(crate) struct KeyStore {
    db: Db,
    clock: SharedClock,
    sealer: Sealer,
}

impl KeyStore {
    pub(crate) fn new(db: Db, clock: SharedClock, sealer: Sealer) -> Self {
        KeyStore { db, clock, sealer }
    }

    /// Loads every key that may still verify a live token; creates the first key if there
    /// is no current one.
    pub(crate) async fn load(&self) -> Result<KeyRing> {
        let mut rows = self.live_rows().await?;
        if !rows.iter().any(|r| r.retired_at.is_none()) {
            self.insert(&KeyPair::generate()).await?;
            rows = self.live_rows().await?;
        }
        // Newest current key signs; ties (two replicas bootstrapping together) break by kid.
        let current = rows
            .iter()
            .filter(|r| r.retired_at.is_none())
            .max_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.kid.cmp(&b.kid)))
            .ok_or_else(|| Error::internal(anyhow::anyhow!("no current signing key after bootstrap")))?;
        let seed: [u8; 32] = self
            .sealer
            .open(&current.kid, &current.private_key)?
            .try_into()
            .map_err(|_| Error::internal(anyhow::anyhow!("signing key {} has the wrong length", current.kid)))?;
        let pair = KeyPair::from_seed(current.kid.clone(), seed);
        let mut verifiers = KeySet::default();
        let mut jwks = Vec::new();
        for row in &rows {
            let public = decode_public(&row.public_key)?;
            verifiers.insert(row.kid.clone(), &public);
            jwks.push(jwk(&row.kid, &public));
        }
        Ok(KeyRing {
            current_kid: pair.kid.clone(),
            current_created_at: current.created_at,
            signer: pair.signing_key(),
            verifiers: Arc::new(verifiers),
            jwks,
        })
    }

    /// Retires the current key(s) (kept for `retain_seconds`) and makes a new one current.
    /// With `only_if_current`, nothing happens unless that kid is still current, so replicas
    /// rotating on a timer at the same moment create one new key, not several.
    pub(crate) async fn rotate(&self, retain_seconds: i64, only_if_current: Option<&str>) -> Result<Option<String>> {
        let now = self.clock.now();
        let pair = KeyPair::generate();
        let txn = self.db.begin().await?;
        let mut retire = SigningKeys::update_many()
            .col_expr(entity::Column::RetiredAt, now.into())
            .col_expr(entity::Column::ExpiresAt, (now + time::Duration::seconds(retain_seconds)).into())
            .filter(entity::Column::RetiredAt.is_null());
        if let Some(kid) = only_if_current {
            retire = retire.filter(entity::Column::Kid.eq(kid));
        }
        let retired = retire.exec(&txn).await?;
        if only_if_current.is_some() && retired.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        self.model(&pair, now)?.insert(&txn).await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "signing_key_rotated", kid = %pair.kid);
        Ok(Some(pair.kid))
    }

    async fn live_rows(&self) -> Result<Vec<entity::Model>> {
        let now = self.clock.now();
        Ok(SigningKeys::find()
            .filter(Condition::any().add(entity::Column::ExpiresAt.is_null()).add(entity::Column::ExpiresAt.gt(now)))
            .order_by_asc(entity::Column::CreatedAt)
            .all(&self.db)
            .await?)
    }

    async fn insert(&self, pair: &KeyPair) -> Result<()> {
        self.model(pair, self.clock.now())?.insert(&self.db).await?;
        tracing::info!(target: "audit", event = "signing_key_created", kid = %pair.kid);
        Ok(())
    }

    fn model(&self, pair: &KeyPair, now: OffsetDateTime) -> Result<entity::ActiveModel> {
        Ok(entity::ActiveModel {
            kid: Set(pair.kid.clone()),
            algorithm: Set("EdDSA".into()),
            private_key: Set(self.sealer.seal(&pair.kid, pair.seed())?),
            public_key: Set(URL_SAFE_NO_PAD.encode(pair.public)),
            created_at: Set(now),
            retired_at: Set(None),
            expires_at: Set(None),
        })
    }

    pub(crate) async fn ping(&self) -> bool {
        warden_common::db::ping(&self.db).await
    }
}

fn decode_public(stored: &str) -> Result<[u8; 32]> {
    URL_SAFE_NO_PAD
        .decode(stored)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| Error::internal(anyhow::anyhow!("a stored public key is not readable")))
}
