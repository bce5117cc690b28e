//! No self-escalation: whoever grants a role (creating a user with it, assigning it, or
//! creating a role that holds or inherits permissions) must hold every permission it
//! grants. A `roles:write` holder can therefore hand out only what they have themselves.
use crate::access::Caller;
use crate::problem::ApiResult;
use crate::state::AppState;
use std::collections::BTreeSet;
use warden_common::{Error, ErrorCode};

/// Most roles a grant may pull in through inheritance before we stop looking.
const MAX_ROLES_VISITED: usize = 256;

/// Every grant (not deny) a set of roles yields, following inheritance.
async fn grants_of(state: &AppState, roles: &[String]) -> ApiResult<BTreeSet<String>> {
    let mut grants = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut queue: Vec<String> = roles.to_vec();
    while let Some(name) = queue.pop() {
        if !seen.insert(name.clone()) || seen.len() > MAX_ROLES_VISITED {
            continue;
        }
        let role = state.rbac.get_role(&name).await?;
        grants.extend(role.permissions.into_iter().filter(|p| !p.starts_with('!')));
        queue.extend(role.inherits);
    }
    Ok(grants)
}

/// Refuses with `access_denied` unless the caller holds every grant.
async fn ensure_holds(state: &AppState, caller: &Caller, grants: BTreeSet<String>, what: &str) -> ApiResult<()> {
    if grants.is_empty() {
        return Ok(());
    }
    let p = &caller.principal;
    let wanted: Vec<String> = grants.into_iter().collect();
    let decisions = state.rbac.check_permissions(p.user_id, &wanted, p.scopes()).await?;
    if let Some(missing) = decisions.iter().find(|d| !d.allowed) {
        tracing::warn!(target: "audit", event = "escalation_refused", user_id = %p.user_id, what, permission = %missing.permission);
        return Err(Error::new(
            ErrorCode::AccessDenied,
            format!("cannot grant {what}: you do not hold {}", missing.permission),
        )
        .into());
    }
    Ok(())
}

/// The caller may grant these roles.
pub(crate) async fn ensure_may_grant_roles(state: &AppState, caller: &Caller, roles: &[String]) -> ApiResult<()> {
    let grants = grants_of(state, roles).await?;
    ensure_holds(state, caller, grants, &format!("role(s) {}", roles.join(", "))).await
}

/// The caller may create a role with these entries and parents.
pub(crate) async fn ensure_may_define_role(
    state: &AppState,
    caller: &Caller,
    name: &str,
    permissions: &[String],
    inherits: &[String],
) -> ApiResult<()> {
    let mut grants = grants_of(state, inherits).await?;
    grants.extend(permissions.iter().filter(|p| !p.starts_with('!')).cloned());
    ensure_holds(state, caller, grants, &format!("role {name}")).await
}

/// The scopes an API key may be given by a caller: within the caller's own permissions
/// (and, for a key creating a key, within its scopes). Empty scopes from a scoped key
/// inherit that key's scopes, so a key can never mint a broader one.
pub(crate) async fn scopes_for_new_key(
    state: &AppState,
    caller: &Caller,
    requested: Vec<String>,
) -> ApiResult<Vec<String>> {
    let requested = match (requested.is_empty(), caller.principal.scopes()) {
        (true, Some(own)) => own.to_vec(),
        _ => requested,
    };
    let grants: BTreeSet<String> = requested.iter().filter(|p| !p.starts_with('!')).cloned().collect();
    if caller.principal.api_key.is_some() {
        ensure_holds(state, caller, grants, "these api key scopes").await?;
    }
    Ok(requested)
}
