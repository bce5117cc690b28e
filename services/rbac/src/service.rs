//! [`RbacService`]: the RBAC API on the database, used in-process in all-in-one mode and
//! behind the gRPC server in split mode.
use crate::api::{Decision, NewRole, RbacApi, Role, UserRoles};
use crate::cache::GraphCache;
use crate::decision::decide;
use crate::epoch::{Epoch, VIEW_MAX_AGE};
use crate::graph::RoleGraph;
use crate::store::{self, assignments, roles};
use crate::validate::{self, MAX_CHECKED_PERMISSIONS, is_role_name};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use uuid::Uuid;
use warden_common::db::Db;
use warden_common::reload::{Age, Loaded};
use warden_common::{Error, ErrorCode, Result};

pub struct RbacService {
    db: Db,
    /// Role definitions only; assignments are read on every request.
    graph: GraphCache,
    /// Users' views, kept when this process is the sole writer
    /// ([`RbacService::sole_writer`]) or when changes are announced through Redis
    /// ([`RbacService::with_epoch`]); otherwise every decision reads the database.
    views: Option<Mutex<HashMap<Uuid, Kept>>>,
    /// Bumped by every change in this process, so a view loaded across a change is not kept.
    changes: AtomicU64,
    /// The change epoch shared with the other replicas, when there are any.
    epoch: Option<Epoch>,
}

type UserView = (Vec<String>, Arc<RoleGraph>);

/// A kept view: the epoch it was loaded under (0 for the sole writer) and when. Shortly
/// before [`VIEW_MAX_AGE`] one decision reloads it while the others go on using it
/// (`warden_common::reload`): a user's decisions in flight never all read the database at once.
struct Kept {
    epoch: i64,
    loaded: Loaded,
    view: UserView,
}

/// Users whose views are kept before the table is emptied.
const VIEW_CAPACITY: usize = 100_000;

impl RbacService {
    pub fn new(db: Db) -> Self {
        RbacService { db, graph: GraphCache::new(), views: None, changes: AtomicU64::new(0), epoch: None }
    }

    /// For replicas sharing a database: views are kept and checked against the change epoch
    /// in Redis on every decision (see [`crate::epoch`]), so a change made through any
    /// replica holds from the next request on, without a database query per decision.
    pub fn with_epoch(mut self, redis: fred::clients::Client) -> Self {
        self.views = Some(Mutex::new(HashMap::new()));
        self.epoch = Some(Epoch::new(redis));
        self
    }

    /// For the embedded process on SQLite, which no other process writes: every change goes
    /// through this service, so each user's view (direct roles and role graph) can be kept
    /// in memory and dropped on any change, exactly, without a query per decision. Never
    /// use this where another replica can change roles.
    pub fn sole_writer(mut self) -> Self {
        self.views = Some(Mutex::new(HashMap::new()));
        self
    }

    /// After a committed change: drops this process's views and, with replicas, moves the
    /// shared epoch so theirs stop being used too. Fails (503) if it cannot announce it.
    async fn changed(&self) -> Result<()> {
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Some(views) = &self.views {
            views.lock().expect("rbac view lock").clear();
        }
        match &self.epoch {
            Some(epoch) => epoch.advance().await,
            None => Ok(()),
        }
    }

    async fn user_view(&self, user_id: Uuid) -> Result<UserView> {
        let Some(views) = &self.views else { return self.load_view(user_id).await };
        let epoch = match &self.epoch {
            None => 0,
            Some(shared) => match shared.current().await {
                Some(epoch) => epoch,
                // Nobody can say whether a kept view is current: ask the database.
                None => return self.load_view(user_id).await,
            },
        };
        if let Some(kept) = views.lock().expect("rbac view lock").get_mut(&user_id)
            && kept.epoch == epoch
            && kept.loaded.age(VIEW_MAX_AGE) == Age::Fresh
        {
            return Ok(kept.view.clone());
        }
        let before = self.changes.load(Ordering::SeqCst);
        let loaded = Instant::now();
        let view = self.load_view(user_id).await?;
        let mut views = views.lock().expect("rbac view lock");
        if self.changes.load(Ordering::SeqCst) != before {
            return Ok(view);
        }
        if views.len() >= VIEW_CAPACITY {
            views.clear();
        }
        views.insert(user_id, Kept { epoch, loaded: Loaded::at(loaded), view: view.clone() });
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
        self.changed().await?;
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
        self.changed().await?;
        tracing::info!(role = %name, "role deleted");
        Ok(())
    }

    async fn assign_role(&self, user_id: Uuid, role: &str) -> Result<()> {
        existing_name(role)?;
        assignments::assign(&self.db, user_id, role).await?;
        self.changed().await?;
        tracing::info!(%user_id, role, "role assigned");
        Ok(())
    }

    async fn unassign_role(&self, user_id: Uuid, role: &str) -> Result<()> {
        existing_name(role)?;
        assignments::unassign(&self.db, user_id, role).await?;
        self.changed().await?;
        tracing::info!(%user_id, role, "role unassigned");
        Ok(())
    }

    /// Ready when the database answers and the RBAC tables are migrated.
    async fn ready(&self) -> bool {
        matches!(store::generation(&self.db).await, Ok(Some(_)))
    }
}
