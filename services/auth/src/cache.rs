//! A small time-bounded cache for the request hot path. Writers in this process remove
//! the entries they change, so this process never serves its own stale data; the time
//! bound caps how long a change made by another replica can go unseen (one second).
//! Shortly before an entry expires one reader reloads it while the others go on using it
//! (`warden_common::reload`), so the requests in flight never all read the row at once.
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;
use warden_common::reload::{Age, Loaded};

pub(crate) const HOT_PATH_TTL: Duration = Duration::from_secs(1);
const CAPACITY: usize = 100_000;

pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Numbers every insertion, so a reader's reload replaces only the entry it was told to
    /// reload, never one a writer put there meanwhile.
    versions: u64,
}

struct Entry<V> {
    loaded: Loaded,
    version: u64,
    value: V,
}

/// A reader's missed lookup: what it may replace once it has read the value (see
/// [`TtlCache::fill`]).
pub(crate) struct Miss(Option<u64>);

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        TtlCache { ttl, inner: Mutex::new(Inner { entries: HashMap::new(), versions: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().expect("cache lock")
    }

    /// The cached value, or a miss: not cached, expired, or due for its one reload, which
    /// this caller then does and hands to [`Self::fill`].
    pub(crate) fn lookup(&self, key: &K) -> Result<V, Miss> {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(key) else { return Err(Miss(None)) };
        match entry.loaded.age(self.ttl) {
            Age::Fresh => Ok(entry.value.clone()),
            Age::Reload => Err(Miss(Some(entry.version))),
            Age::Expired => Err(Miss(None)),
        }
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        self.lock().put(self.ttl, key, value);
    }

    /// A reader's value, after `miss`: inserted where nothing is cached, where the entry
    /// expired, or over the very entry this reader was told to reload. Anything else was put
    /// there by a writer while the value was being read, and stays: a value read before a
    /// concurrent write cannot overwrite what that write recorded.
    pub(crate) fn fill(&self, key: K, value: V, miss: Miss) {
        let mut inner = self.lock();
        let replaceable = match inner.entries.get(&key) {
            None => true,
            Some(e) => !e.loaded.is_within(self.ttl) || miss.0 == Some(e.version),
        };
        if replaceable {
            inner.put(self.ttl, key, value);
        }
    }

    /// Inserts unless a fresh entry exists that `keep` says must stay (a tombstone, say):
    /// a writer records its own change this way without undoing a later one.
    pub(crate) fn insert_unless(&self, key: K, value: V, keep: impl FnOnce(&V) -> bool) {
        let mut inner = self.lock();
        if inner.entries.get(&key).is_some_and(|e| e.loaded.is_within(self.ttl) && keep(&e.value)) {
            return;
        }
        inner.put(self.ttl, key, value);
    }

    pub(crate) fn remove(&self, key: &K) {
        self.lock().entries.remove(key);
    }
}

impl<K: Eq + Hash, V> Inner<K, V> {
    /// Inserts a new version of `key`, making room first when full.
    fn put(&mut self, ttl: Duration, key: K, value: V) {
        if self.entries.len() >= CAPACITY {
            self.entries.retain(|_, e| e.loaded.is_within(ttl));
            if self.entries.len() >= CAPACITY {
                self.entries.clear();
            }
        }
        self.versions += 1;
        let version = self.versions;
        self.entries.insert(key, Entry { loaded: Loaded::now(), version, value });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const TTL: Duration = Duration::from_secs(60);

    /// Makes `key`'s entry look `by` old.
    fn age(cache: &TtlCache<i32, &'static str>, key: i32, by: Duration) {
        cache.lock().entries.get_mut(&key).unwrap().loaded = Loaded::at(Instant::now() - by);
    }

    fn get(cache: &TtlCache<i32, &'static str>, key: i32) -> Option<&'static str> {
        cache.lookup(&key).ok()
    }

    #[test]
    fn entries_expire_and_can_be_removed() {
        let cache = TtlCache::new(TTL);
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!(get(&cache, 1), Some("a"));
        cache.remove(&1);
        let Err(miss) = cache.lookup(&1) else { panic!("removed") };
        cache.fill(1, "read", miss);
        assert_eq!(get(&cache, 1), Some("read"), "a reader fills a missing entry");
        cache.fill(2, "stale", Miss(None));
        assert_eq!(get(&cache, 2), Some("b"), "a reader does not overwrite a fresh entry");
        cache.insert_unless(2, "newer", |v| *v == "tombstone");
        assert_eq!(get(&cache, 2), Some("newer"));
        cache.insert(4, "tombstone");
        cache.insert_unless(4, "live", |v| *v == "tombstone");
        assert_eq!(get(&cache, 4), Some("tombstone"), "what `keep` protects stays");
        cache.insert(3, "c");
        age(&cache, 3, TTL);
        assert_eq!(get(&cache, 3), None, "expired");
        cache.fill(3, "read", Miss(None));
        assert_eq!(get(&cache, 3), Some("read"), "a reader replaces an expired entry");
    }

    #[test]
    fn one_reader_reloads_an_ageing_entry_and_a_writer_wins_over_it() {
        let cache = TtlCache::new(TTL);
        cache.insert(1, "old");
        age(&cache, 1, TTL - TTL / 8);
        let Err(miss) = cache.lookup(&1) else { panic!("the first lookup reloads") };
        assert_eq!(get(&cache, 1), Some("old"), "the others use the entry meanwhile");
        cache.fill(1, "reloaded", miss);
        assert_eq!(get(&cache, 1), Some("reloaded"));
        assert!(cache.lock().entries[&1].loaded.is_within(TTL / 8), "the reload starts its life over");

        // A writer's change lands while the reload reads: the reload's older value is dropped.
        age(&cache, 1, TTL - TTL / 8);
        let Err(miss) = cache.lookup(&1) else { panic!("the first lookup reloads") };
        cache.insert(1, "tombstone");
        age(&cache, 1, TTL - TTL / 8);
        let Err(second) = cache.lookup(&1) else { panic!("the writer's entry ages too") };
        cache.fill(1, "read before the write", miss);
        assert_eq!(get(&cache, 1), Some("tombstone"), "only the entry a reader was told to reload is replaced");
        cache.fill(1, "read after the write", second);
        assert_eq!(get(&cache, 1), Some("read after the write"));
    }
}
