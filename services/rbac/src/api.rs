//! The RBAC service interface. It has two implementations: [`crate::RbacService`] on the
//! database (all-in-one mode and the rbac process itself) and [`crate::grpc::RemoteRbac`] over
//! gRPC (split mode); callers hold a [`SharedRbac`] and cannot tell which.
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warden_common::{ErrorCode, Result};

/// A role as stored: its own entries (grants and `!` denies, sorted) and the roles it inherits
/// (sorted). Inherited entries are not folded in here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub permissions: Vec<String>,
    pub inherits: Vec<String>,
    /// Built-in roles (`admin`) come from a migration and cannot be deleted.
    pub builtin: bool,
}

/// A role to create. Duplicate entries are dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRole {
    pub name: String,
    pub permissions: Vec<String>,
    #[serde(default)]
    pub inherits: Vec<String>,
}

/// What a user holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRoles {
    /// Directly assigned role names, sorted.
    pub roles: Vec<String>,
    /// Effective entries through inheritance, grants and denies (with their `!`), sorted and
    /// deduplicated.
    pub permissions: Vec<String>,
}

/// The answer for one requested permission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub permission: String,
    pub allowed: bool,
    /// `None` when allowed; otherwise `InsufficientPermissions` (no grant, malformed or no
    /// roles), `PolicyViolation` (a deny matched) or `AccessDenied` (outside the key's scopes).
    pub code: Option<ErrorCode>,
    /// Which role and entry granted, or why not: "granted by role editor (docs:*)".
    pub reason: String,
}

#[async_trait::async_trait]
pub trait RbacApi: Send + Sync + 'static {
    /// Decides each permission for the user, in request order. `scopes: None` means no
    /// narrowing; `Some(scopes)` are an API key's scopes, and the effective permissions are
    /// scopes ∩ the user's permissions (`Some(&[])` allows nothing). Malformed permissions and
    /// unknown users are denied, not errors; an unreachable store is an error (fail closed).
    async fn check_permissions(
        &self,
        user_id: Uuid,
        permissions: &[String],
        scopes: Option<&[String]>,
    ) -> Result<Vec<Decision>>;
    async fn get_user_roles(&self, user_id: Uuid) -> Result<UserRoles>;
    async fn create_role(&self, role: NewRole) -> Result<Role>;
    async fn get_role(&self, name: &str) -> Result<Role>;
    /// All roles, sorted by name.
    async fn list_roles(&self) -> Result<Vec<Role>>;
    /// Deletes a role together with its assignments and the inheritance links to it.
    async fn delete_role(&self, name: &str) -> Result<()>;
    /// Idempotent; an unknown role is `RoleNotFound`.
    async fn assign_role(&self, user_id: Uuid, role: &str) -> Result<()>;
    /// Idempotent; an unknown role is `RoleNotFound`.
    async fn unassign_role(&self, user_id: Uuid, role: &str) -> Result<()>;
    /// True when the store answers.
    async fn ready(&self) -> bool;
}

pub type SharedRbac = std::sync::Arc<dyn RbacApi>;
