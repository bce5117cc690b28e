//! The admin API: users, roles and assignments, each route guarded by a permission in the
//! route table.
use crate::access::Caller;
use crate::escalation;
use crate::extract::{Json, Path};
use crate::handlers::session::no_store;
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warden_auth::{NewUser, User, UserUpdate};
use warden_common::Error;
use warden_common::secret::Secret;
use warden_common::timestamp::rfc3339;
use warden_rbac::{NewRole, Role};

#[derive(Serialize)]
struct UserBody {
    id: Uuid,
    username: String,
    roles: Vec<String>,
    disabled: bool,
    locked: bool,
    mfa_enabled: bool,
    created_at: String,
}

impl From<User> for UserBody {
    fn from(u: User) -> Self {
        UserBody {
            id: u.id,
            username: u.username,
            roles: u.roles,
            disabled: u.disabled,
            locked: u.locked,
            mfa_enabled: u.mfa_enabled,
            created_at: rfc3339(u.created_at),
        }
    }
}

fn user_id(id: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(id).map_err(|_| Error::not_found("no such user"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserBody {
    username: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

pub(crate) async fn create_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(b): Json<CreateUserBody>,
) -> ApiResult<Response> {
    escalation::ensure_may_grant_roles(&state, &caller, &b.roles).await?;
    let user = state
        .auth
        .create_user(NewUser { username: b.username, password: Secret::new(b.password), roles: b.roles })
        .await?;
    Ok(no_store(StatusCode::CREATED, UserBody::from(user)))
}

pub(crate) async fn get_user(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let user = state.auth.get_user(user_id(&id)?).await?;
    Ok(no_store(StatusCode::OK, UserBody::from(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchUserBody {
    disabled: Option<bool>,
    locked: Option<bool>,
}

pub(crate) async fn patch_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<PatchUserBody>,
) -> ApiResult<Response> {
    let user = state.auth.update_user(user_id(&id)?, UserUpdate { disabled: b.disabled, locked: b.locked }).await?;
    Ok(no_store(StatusCode::OK, UserBody::from(user)))
}

#[derive(Serialize)]
struct RoleBody {
    name: String,
    permissions: Vec<String>,
    inherits: Vec<String>,
    builtin: bool,
}

impl From<Role> for RoleBody {
    fn from(r: Role) -> Self {
        RoleBody { name: r.name, permissions: r.permissions, inherits: r.inherits, builtin: r.builtin }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRoleBody {
    name: String,
    permissions: Vec<String>,
    #[serde(default)]
    inherits: Vec<String>,
}

pub(crate) async fn create_role(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(b): Json<CreateRoleBody>,
) -> ApiResult<Response> {
    escalation::ensure_may_define_role(&state, &caller, &b.name, &b.permissions, &b.inherits).await?;
    let role =
        state.rbac.create_role(NewRole { name: b.name, permissions: b.permissions, inherits: b.inherits }).await?;
    tracing::info!(target: "audit", event = "role_created", role = %role.name);
    Ok(no_store(StatusCode::CREATED, RoleBody::from(role)))
}

pub(crate) async fn list_roles(State(state): State<AppState>) -> ApiResult<Response> {
    let roles: Vec<RoleBody> = state.rbac.list_roles().await?.into_iter().map(RoleBody::from).collect();
    Ok(no_store(StatusCode::OK, serde_json::json!({ "items": roles })))
}

pub(crate) async fn delete_role(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    state.rbac.delete_role(&name).await?;
    tracing::info!(target: "audit", event = "role_deleted", role = %name);
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn assign_role(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, role)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = user_id(&id)?;
    escalation::ensure_may_grant_roles(&state, &caller, std::slice::from_ref(&role)).await?;
    // The user must exist; the role's existence is checked by RbacService.
    state.auth.get_user(id).await?;
    state.rbac.assign_role(id, &role).await?;
    tracing::info!(target: "audit", event = "role_assigned", user_id = %id, role = %role);
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn unassign_role(
    State(state): State<AppState>,
    Path((id, role)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = user_id(&id)?;
    state.rbac.unassign_role(id, &role).await?;
    tracing::info!(target: "audit", event = "role_unassigned", user_id = %id, role = %role);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetPasswordBody {
    new_password: String,
}

/// Admin reset. Taking over an account is a way to its permissions, so the caller must
/// hold everything the target's roles grant.
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(b): Json<ResetPasswordBody>,
) -> ApiResult<StatusCode> {
    let id = user_id(&id)?;
    let target = state.auth.get_user(id).await?;
    escalation::ensure_may_take_over(&state, &caller, &target.roles).await?;
    state.auth.reset_password(id, &Secret::new(b.new_password)).await?;
    tracing::info!(target: "audit", event = "password_reset_by_admin", admin_id = %caller.principal.user_id, user_id = %id);
    Ok(StatusCode::NO_CONTENT)
}
