//! A per-process cache of the role graph, kept correct across replicas by the
//! `role_generation` counter: each check reads the counter together with the user's
//! assignments (one statement) and reloads the graph when the counter moved. A change made by
//! any replica bumps the counter in the same transaction, so no replica decides on role
//! definitions older than the last committed change it could have seen.
use crate::graph::RoleGraph;
use crate::store;
use sea_orm::DbErr;
use std::sync::{Arc, PoisonError, RwLock};
use warden_common::db::Db;

pub(crate) struct GraphCache {
    current: RwLock<Arc<RoleGraph>>,
    /// One reload at a time; checks that arrive meanwhile wait and reuse its result.
    reload: tokio::sync::Mutex<()>,
}

impl GraphCache {
    pub(crate) fn new() -> Self {
        // i64::MIN is older than any stored generation, so the first check loads.
        let empty = RoleGraph::new(i64::MIN, []);
        GraphCache { current: RwLock::new(Arc::new(empty)), reload: tokio::sync::Mutex::new(()) }
    }

    /// A graph at least as new as `generation`, reloading it if the cached one is older.
    pub(crate) async fn at_least(&self, db: &Db, generation: i64) -> Result<Arc<RoleGraph>, DbErr> {
        if let Some(graph) = self.cached(generation) {
            return Ok(graph);
        }
        let _reloading = self.reload.lock().await;
        if let Some(graph) = self.cached(generation) {
            return Ok(graph);
        }
        let graph = Arc::new(store::roles::load_graph(db).await?);
        tracing::debug!(generation = graph.generation, "role graph reloaded");
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&graph);
        Ok(graph)
    }

    fn cached(&self, generation: i64) -> Option<Arc<RoleGraph>> {
        let graph = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        (graph.generation >= generation).then_some(graph)
    }
}
