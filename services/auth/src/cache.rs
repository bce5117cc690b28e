//! A small time-bounded cache for the request hot path. Writers in this process remove
//! the entries they change, so this process never serves its own stale data; the time
//! bound caps how long a change made by another replica can go unseen (one second).
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const HOT_PATH_TTL: Duration = Duration::from_secs(1);
const CAPACITY: usize = 100_000;

pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        TtlCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().expect("cache lock");
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= CAPACITY {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// Inserts unless a fresh entry exists. Readers fill the cache with this, so a value
    /// read before a concurrent write cannot overwrite what that write recorded.
    pub(crate) fn insert_if_absent(&self, key: K, value: V) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.get(&key).is_some_and(|(at, _)| at.elapsed() < self.ttl) {
            return;
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// Inserts unless a fresh entry exists that `keep` says must stay (a tombstone, say):
    /// a writer records its own change this way without undoing a later one.
    pub(crate) fn insert_unless(&self, key: K, value: V, keep: impl FnOnce(&V) -> bool) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.get(&key).is_some_and(|(at, v)| at.elapsed() < self.ttl && keep(v)) {
            return;
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub(crate) fn remove(&self, key: &K) {
        self.entries.lock().expect("cache lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_removed() {
        let cache = TtlCache::new(Duration::from_millis(50));
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!(cache.get(&1), Some("a"));
        cache.remove(&1);
        assert_eq!(cache.get(&1), None);
        cache.insert_if_absent(2, "stale");
        assert_eq!(cache.get(&2), Some("b"), "a reader does not overwrite a fresh entry");
        cache.insert_unless(2, "newer", |v| *v == "tombstone");
        assert_eq!(cache.get(&2), Some("newer"));
        cache.insert(4, "tombstone");
        cache.insert_unless(4, "live", |v| *v == "tombstone");
        assert_eq!(cache.get(&4), Some("tombstone"), "what `keep` protects stays");
        cache.insert(3, "c");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&3), None, "expired");
    }
}
