//! A short-lived, in-process cache of key rows for the validation hot path.
//!
//! Revocation is the only change a key row ever sees, so a cached row can only be stale about
//! that. Every revocation this process learns of (its own, or one published by another replica)
//! drops the entry and bumps an epoch; a lookup that read the database before such a bump does
//! not insert its (possibly stale) row. With Redis, validation also checks a revocation marker
//! on every call, so a replica that has not yet heard the news still refuses the key.
//! Shortly before an entry expires one validation reloads it while the others go on using it
//! (`warden_common::reload`), so the validations in flight never all read the row at once.
use crate::api::ApiKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use uuid::Uuid;
use warden_common::reload::{Age, Loaded};

pub(crate) const TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 100_000;

/// A key row as validation needs it.
#[derive(Debug)]
pub(crate) struct CachedKey {
    pub(crate) key: ApiKey,
    pub(crate) secret_hash: String,
    pub(crate) hash_alg: String,
}

#[derive(Default)]
pub(crate) struct KeyCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Uuid, (Loaded, Arc<CachedKey>)>,
    epoch: u64,
}

impl KeyCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map holds no invariant a panic could break halfway.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached row; `None` when the caller must read it (and then offer it to
    /// [`Self::insert_if_current`]): not cached, expired, or due for its one reload.
    pub(crate) fn get(&self, id: Uuid) -> Option<Arc<CachedKey>> {
        let mut inner = self.lock();
        let (loaded, entry) = inner.entries.get_mut(&id)?;
        match loaded.age(TTL) {
            Age::Fresh => Some(entry.clone()),
            Age::Reload => None,
            Age::Expired => {
                inner.entries.remove(&id);
                None
            }
        }
    }

    /// Read before loading a row; pass to [`Self::insert_if_current`].
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Caches `entry` unless a revocation was seen since `epoch` was read.
    pub(crate) fn insert_if_current(&self, epoch: u64, entry: Arc<CachedKey>) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.retain(|_, (loaded, _)| loaded.is_within(TTL));
            if inner.entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        inner.entries.insert(entry.key.id, (Loaded::now(), entry));
    }

    pub(crate) fn invalidate(&self, id: Uuid) {
        let mut inner = self.lock();
        inner.entries.remove(&id);
        inner.epoch += 1;
    }

    /// Forgets everything, e.g. after missing revocation messages.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn entry(id: Uuid) -> Arc<CachedKey> {
        Arc::new(CachedKey {
            key: ApiKey {
                id,
                owner_id: Uuid::new_v4(),
                name: "n".into(),
                prefix: "p".into(),
                scopes: vec![],
                created_at: OffsetDateTime::now_utc(),
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
                rate_limit_per_minute: 0,
            },
            secret_hash: String::new(),
            hash_alg: String::new(),
        })
    }

    #[test]
    fn a_load_that_raced_a_revocation_is_not_cached() {
        let cache = KeyCache::default();
        let id = Uuid::new_v4();
        let epoch = cache.epoch();
        cache.invalidate(id); // a revocation lands while the row is being read
        cache.insert_if_current(epoch, entry(id));
        assert!(cache.get(id).is_none());

        let epoch = cache.epoch();
        cache.insert_if_current(epoch, entry(id));
        assert!(cache.get(id).is_some());
        cache.invalidate(id);
        assert!(cache.get(id).is_none());

        cache.insert_if_current(cache.epoch(), entry(id));
        cache.clear();
        assert!(cache.get(id).is_none());
    }

    #[test]
    fn one_validation_reloads_an_ageing_row_and_the_others_keep_it() {
        let cache = KeyCache::default();
        let id = Uuid::new_v4();
        let loaded = Loaded::at(std::time::Instant::now() - (TTL - TTL / 8));
        cache.lock().entries.insert(id, (loaded, entry(id)));
        assert!(cache.get(id).is_none(), "the first lookup reloads the row");
        assert!(cache.get(id).is_some(), "meanwhile the others use the cached row");
        cache.insert_if_current(cache.epoch(), entry(id));
        let reloaded = cache.lock().entries[&id].0;
        assert!(!reloaded.is_reloading() && reloaded.is_within(TTL / 8), "the reload starts its life over");

        let expired = Loaded::at(std::time::Instant::now() - TTL);
        cache.lock().entries.insert(id, (expired, entry(id)));
        assert!(cache.get(id).is_none());
        assert!(cache.get(id).is_none(), "an expired row is gone for everyone");
    }
}
