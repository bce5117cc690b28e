//! [`RbacService`]: the RBAC API on the database, used in-process in all-in-one mode and
//! behind the gRPC server in split mode.
use crate::api::{Decision, NewRole, RbacApi, Role, UserRoles};
use crate::cache::GraphCache;
use crate::decision::decide;
use crate::echo::Change;
use crate::graph::RoleGraph;
use crate::invalidation::Listener;
use crate::store::{self, assignments, roles};
use crate::validate::{self, MAX_CHECKED_PERMISSIONS, is_role_name};
use crate::views::{UserView, ViewCache};
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use uuid::Uuid;
use warden_common::{Error, ErrorCode, Result};

pub struct RbacService {
    db: DatabaseConnection,
    /// Role definitions only; assignments are read on every request unless `views` has them.
    graph: GraphCache,
    /// Per-user views: see [`RbacService::sole_writer`] and [`RbacService::with_listener`].
    views: Option<Arc<ViewCache>>,
    /// Keeps `views` correct across replicas; stops when the service is dropped.
    listener: Option<Listener>,
}

impl RbacService {
    pub fn new(db: DatabaseConnection) -> Self {
        RbacService { db, graph: GraphCache::new(), views: None, listener: None }
    }

    /// For the embedded process on SQLite, which no other process writes: every change goes
    /// through this service, so each user's view (direct roles and role graph) can be kept
    /// in memory and dropped on any change, exactly, without a query per decision. Never
    /// use this where another replica can change roles; see [`RbacService::with_listener`].
    pub fn sole_writer(mut self) -> Self {
        self.views = Some(Arc::new(ViewCache::new(true)));
        self
    }

    /// For PostgreSQL, where other replicas change roles too: keeps per-user views while a
    /// listener on `database_url` receives every replica's change notifications, and reads
    /// the database for every decision while it is not connected (see `invalidation`).
    /// Spawns the listener, so call it inside a Tokio runtime.
    pub fn with_listener(mut self, database_url: &str) -> Self {
        let views = Arc::new(ViewCache::new(false));
        self.listener = Some(Listener::spawn(database_url.to_owned(), Arc::clone(&views)));
        self.views = Some(views);
        self
    }

    /// Whether decisions may be served from memory now (for tests and diagnostics).
    pub fn view_cache_enabled(&self) -> bool {
        self.views.as_ref().is_some_and(|views| views.enabled())
    }

    /// A change about to be written; see `echo` for why writes wait for their notification.
    fn change(&self) -> Change {
        match &self.listener {
            // While the listener is down no echo comes: nothing to wait for.
            Some(listener) if self.view_cache_enabled() => listener.expect_change(),
            _ => Change::unawaited(),
        }
    }

    /// After a committed change: drops this process's views at once, and returns once the
    /// other replicas have (all but certainly) heard of it.
    async fn changed(&self, change: Change) {
        if let Some(views) = &self.views {
            views.forget();
        }
        change.echoed().await;
    }

    async fn user_view(&self, user_id: Uuid) -> Result<UserView> {
        let Some(views) = &self.views else { return self.load_view(user_id).await };
        if let Some(view) = views.get(user_id) {
            return Ok(view);
        }
        let stamp = views.stamp();
        let view = self.load_view(user_id).await?;
        views.keep(user_id, &view, stamp);
        Ok(view)
    }

    /// The user's direct roles and a role graph current for them.
    async fn load_view(&self, user_id: Uuid) -> Result<UserView> {
        let (direct, generation) = assignments::direct_roles(&self.db, user_id).await?;
        let graph = match generation {
            Some(generation) => self.graph.at_least(&self.db, generation).await?,
            None if direct.is_empty() => Arc::new(RoleGraph::default()),
            // Assignments without the counter: migrations are broken. Never guess.
            None => return Err(Error::unavailable("role store", anyhow::anyhow!("role_generation row is missing"))),
        };
        Ok((direct, graph))
    }
}

/// A name that is not a valid role name cannot exist; say so without echoing arbitrary input.
fn existing_name(name: &str) -> Result<()> {
    if is_role_name(name) { Ok(()) } else { Err(Error::new(ErrorCode::RoleNotFound, "role not found")) }
}

#[async_trait::async_trait]
impl RbacApi for RbacService {
    async fn check_permissions(
        &self,
        user_id: Uuid,
        permissions: &[String],
        scopes: Option<&[String]>,
    ) -> Result<Vec<Decision>> {
        if permissions.len() > MAX_CHECKED_PERMISSIONS {
            return Err(Error::validation(format!("at most {MAX_CHECKED_PERMISSIONS} permissions per check")));
        }
        let (direct, graph) = self.user_view(user_id).await?;
        let decisions = decide(&graph, &direct, permissions, scopes);
        for d in &decisions {
            let decision = if d.allowed { "allow" } else { "deny" };
            metrics::counter!("warden_authorization_decisions_total", "decision" => decision).increment(1);
        }
        for d in decisions.iter().filter(|d| !d.allowed) {
            // The caller (auth service, gateway) logs the user-facing denial event.
            let code = d.code.map(|c| c.as_str()).unwrap_or_default();
            tracing::debug!(%user_id, permission = %d.permission, code, reason = %d.reason, "permission denied");
        }
        Ok(decisions)
    }

    async fn get_user_roles(&self, user_id: Uuid) -> Result<UserRoles> {
        let (direct, graph) = self.user_view(user_id).await?;
        let permissions = graph.effective(&direct);
        Ok(UserRoles { roles: direct, permissions })
    }

    async fn create_role(&self, role: NewRole) -> Result<Role> {
        let role = validate::new_role(role)?;
        let change = self.change();
        roles::create(&self.db, &role, change.payload()).await?;
        self.changed(change).await;
        tracing::info!(role = %role.name, permissions = ?role.permissions, inherits = ?role.inherits, "role created");
        Ok(Role { name: role.name, permissions: role.permissions, inherits: role.inherits, builtin: false })
    }

    async fn get_role(&self, name: &str) -> Result<Role> {
        existing_name(name)?;
        roles::load(&self.db, Some(name)).await?.pop().ok_or_else(|| roles::not_found(name))
    }

    async fn list_roles(&self) -> Result<Vec<Role>> {
        Ok(roles::load(&self.db, None).await?)
    }

    async fn delete_role(&self, name: &str) -> Result<()> {
        existing_name(name)?;
        let change = self.change();
        roles::delete(&self.db, name, change.payload()).await?;
        self.changed(change).await;
        tracing::info!(role = %name, "role deleted");
        Ok(())
    }

    async fn assign_role(&self, user_id: Uuid, role: &str) -> Result<()> {
        existing_name(role)?;
        let change = self.change();
        assignments::assign(&self.db, user_id, role, change.payload()).await?;
        self.changed(change).await;
        tracing::info!(%user_id, role, "role assigned");
        Ok(())
    }

    async fn unassign_role(&self, user_id: Uuid, role: &str) -> Result<()> {
        existing_name(role)?;
        let change = self.change();
        assignments::unassign(&self.db, user_id, role, change.payload()).await?;
        self.changed(change).await;
        tracing::info!(%user_id, role, "role unassigned");
        Ok(())
    }

    /// Ready when the database answers and the RBAC tables are migrated.
    async fn ready(&self) -> bool {
        matches!(store::generation(&self.db).await, Ok(Some(_)))
    }
}
