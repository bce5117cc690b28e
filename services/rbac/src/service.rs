//! [`RbacService`]: the RBAC API on the database, used in-process in all-in-one mode and
//! behind the gRPC server in split mode.
use crate::api::{Decision, NewRole, RbacApi, Role, UserRoles};
use crate::cache::GraphCache;
use crate::decision::decide;
use crate::graph::RoleGraph;
use crate::store::{self, assignments, roles};
use crate::validate::{self, MAX_CHECKED_PERMISSIONS, is_role_name};
use sea_orm::DatabaseConnection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;
use warden_common::{Error, ErrorCode, Result};

pub struct RbacService {
    db: DatabaseConnection,
    /// Role definitions only; assignments are read on every request.
    graph: GraphCache,
    /// Only when this process is the sole writer (see [`RbacService::sole_writer`]).
    views: Option<Mutex<HashMap<Uuid, UserView>>>,
    /// Bumped by every change, so a view loaded across a change is not kept.
    changes: AtomicU64,
}

type UserView = (Vec<String>, Arc<RoleGraph>);

/// Users whose views are kept before the table is emptied.
const VIEW_CAPACITY: usize = 100_000;

impl RbacService {
    pub fn new(db: DatabaseConnection) -> Self {
        RbacService { db, graph: GraphCache::new(), views: None, changes: AtomicU64::new(0) }
    }

    /// For the embedded process on SQLite, which no other process writes: every change goes
    /// through this service, so each user's view (direct roles and role graph) can be kept
    /// in memory and dropped on any change, exactly, without a query per decision. Never
    /// use this where another replica can change roles.
    pub fn sole_writer(mut self) -> Self {
        self.views = Some(Mutex::new(HashMap::new()));
        self
    }

    fn forget_views(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Some(views) = &self.views {
            views.lock().expect("rbac view lock").clear();
        }
    }

    async fn user_view(&self, user_id: Uuid) -> Result<UserView> {
        let Some(views) = &self.views else { return self.load_view(user_id).await };
        if let Some(view) = views.lock().expect("rbac view lock").get(&user_id) {
            return Ok(view.clone());
        }
        let before = self.changes.load(Ordering::SeqCst);
        let view = self.load_view(user_id).await?;
        let mut views = views.lock().expect("rbac view lock");
        if self.changes.load(Ordering::SeqCst) != before {
            return Ok(view);
        }
        if views.len() >= VIEW_CAPACITY {
            views.clear();
        }
        views.insert(user_id, view.clone());
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
        roles::create(&self.db, &role).await?;
        self.forget_views();
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
        roles::delete(&self.db, name).await?;
        self.forget_views();
        tracing::info!(role = %name, "role deleted");
        Ok(())
    }

    async fn assign_role(&self, user_id: Uuid, role: &str) -> Result<()> {
        existing_name(role)?;
        assignments::assign(&self.db, user_id, role).await?;
        self.forget_views();
        tracing::info!(%user_id, role, "role assigned");
        Ok(())
    }

    async fn unassign_role(&self, user_id: Uuid, role: &str) -> Result<()> {
        existing_name(role)?;
        assignments::unassign(&self.db, user_id, role).await?;
        self.forget_views();
        tracing::info!(%user_id, role, "role unassigned");
        Ok(())
    }

    /// Ready when the database answers and the RBAC tables are migrated.
    async fn ready(&self) -> bool {
        matches!(store::generation(&self.db).await, Ok(Some(_)))
    }
}
