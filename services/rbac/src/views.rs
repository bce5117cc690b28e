//! Each user's view (direct roles and the role graph) kept in memory, so a decision needs no
//! query. It is only correct while every change reaches [`ViewCache::forget`]: in the sole
//! writer process always, on PostgreSQL only while the `invalidation` listener is subscribed.
//!
//! The `changes` counter makes filling race-free: a caller takes a [`ViewCache::stamp`] before
//! reading the database and the view is kept only if no change, disabling or enabling
//! happened since (all three bump the counter under the same lock that keeping takes).
use crate::graph::RoleGraph;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use uuid::Uuid;

pub(crate) type UserView = (Vec<String>, Arc<RoleGraph>);

/// Users whose views are kept before the table is emptied.
const VIEW_CAPACITY: usize = 100_000;

pub(crate) struct ViewCache {
    state: Mutex<State>,
    /// Bumped (under the lock) by every change and every enabling or disabling.
    changes: AtomicU64,
}

struct State {
    /// While false nothing is served or kept: every decision reads the database.
    enabled: bool,
    views: HashMap<Uuid, UserView>,
}

impl ViewCache {
    pub(crate) fn new(enabled: bool) -> Self {
        ViewCache { state: Mutex::new(State { enabled, views: HashMap::new() }), changes: AtomicU64::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every await-free step, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, user_id: Uuid) -> Option<UserView> {
        let state = self.lock();
        if state.enabled { state.views.get(&user_id).cloned() } else { None }
    }

    /// Taken before reading a view from the database; see [`ViewCache::keep`].
    pub(crate) fn stamp(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Keeps a view read after `stamp` was taken, unless anything happened since.
    pub(crate) fn keep(&self, user_id: Uuid, view: &UserView, stamp: u64) {
        let mut state = self.lock();
        if !state.enabled || self.changes.load(Ordering::SeqCst) != stamp {
            return;
        }
        if state.views.len() >= VIEW_CAPACITY {
            state.views.clear();
        }
        state.views.insert(user_id, view.clone());
    }

    /// A change happened: drop every view, and every view being read now.
    pub(crate) fn forget(&self) {
        self.set(None);
    }

    /// Starts serving (the listener just subscribed): views read before are not kept.
    pub(crate) fn enable(&self) {
        self.set(Some(true));
    }

    /// Stops serving at once (the listener is down and changes may be missed).
    pub(crate) fn disable(&self) {
        self.set(Some(false));
    }

    pub(crate) fn enabled(&self) -> bool {
        self.lock().enabled
    }

    fn set(&self, enabled: Option<bool>) {
        let mut state = self.lock();
        self.changes.fetch_add(1, Ordering::SeqCst);
        state.views.clear();
        if let Some(enabled) = enabled {
            state.enabled = enabled;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> UserView {
        (vec!["r".into()], Arc::new(RoleGraph::default()))
    }

    #[test]
    fn a_view_read_across_a_change_or_an_enabling_is_not_kept() {
        let user = Uuid::new_v4();
        for transition in [ViewCache::forget, ViewCache::enable] {
            let cache = ViewCache::new(true);
            let stamp = cache.stamp();
            transition(&cache);
            cache.keep(user, &view(), stamp);
            assert!(cache.get(user).is_none());
            cache.keep(user, &view(), cache.stamp());
            assert!(cache.get(user).is_some());
        }
    }

    #[test]
    fn a_disabled_cache_serves_and_keeps_nothing() {
        let user = Uuid::new_v4();
        let cache = ViewCache::new(true);
        cache.keep(user, &view(), cache.stamp());
        assert!(cache.get(user).is_some());
        cache.disable();
        assert!(cache.get(user).is_none());
        cache.keep(user, &view(), cache.stamp());
        cache.enable();
        assert!(cache.get(user).is_none(), "kept while disabled");
        cache.keep(user, &view(), cache.stamp());
        assert!(cache.get(user).is_some());
    }
}
