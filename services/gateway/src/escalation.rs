//! No self-escalation: whoever grants a role (creating a user with it, assigning it, or
//! creating a role that holds or inherits permissions) must hold every permission it
//! grants. A `roles:write` holder can therefore hand out only what they have themselves.
use crate::access::Caller;
use crate::problem::ApiResult;
use crate::state::AppState;
use std::collections::BTreeSet;
use warden_common::{Error, ErrorCode};
use warden_rbac::RbacApi;

/// Most roles a grant may pull in through inheritance before we stop looking.
const MAX_ROLES_VISITED: usize = 256;

/// What a role that does not exist means to [`grants_of`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// The caller named it (a grant, a parent): `role_not_found`.
    Refuse,
    /// It was read from an account and deleted since (the requests race): it grants nothing.
    GrantsNothing,
}

/// Every grant (not deny) a set of roles yields, following inheritance.
async fn grants_of(rbac: &dyn RbacApi, roles: &[String], missing: Missing) -> ApiResult<BTreeSet<String>> {
    let mut grants = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut queue: Vec<String> = roles.to_vec();
    while let Some(name) = queue.pop() {
        if !seen.insert(name.clone()) || seen.len() > MAX_ROLES_VISITED {
            continue;
        }
        let role = match rbac.get_role(&name).await {
            Ok(role) => role,
            Err(e) if e.code == ErrorCode::RoleNotFound && missing == Missing::GrantsNothing => continue,
            Err(e) => return Err(e.into()),
        };
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

/// The caller may grant these roles, which they named: an unknown one is `role_not_found`.
pub(crate) async fn ensure_may_grant_roles(state: &AppState, caller: &Caller, roles: &[String]) -> ApiResult<()> {
    let grants = grants_of(state.rbac.as_ref(), roles, Missing::Refuse).await?;
    ensure_holds(state, caller, grants, &format!("role(s) {}", roles.join(", "))).await
}

/// The caller may take over (reset, strip the second factor of) an account holding these
/// roles. They were read from the account, so one deleted since grants nothing rather than
/// failing the request with a role the caller never named.
pub(crate) async fn ensure_may_take_over(state: &AppState, caller: &Caller, roles: &[String]) -> ApiResult<()> {
    let grants = grants_of(state.rbac.as_ref(), roles, Missing::GrantsNothing).await?;
    ensure_holds(state, caller, grants, &format!("an account with role(s) {}", roles.join(", "))).await
}

/// The caller may create a role with these entries and parents.
pub(crate) async fn ensure_may_define_role(
    state: &AppState,
    caller: &Caller,
    name: &str,
    permissions: &[String],
    inherits: &[String],
) -> ApiResult<()> {
    let mut grants = grants_of(state.rbac.as_ref(), inherits, Missing::Refuse).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm_migration::{MigrationTrait, MigratorTrait};
    use warden_common::{db, testing};
    use warden_rbac::{NewRole, RbacService};

    struct Migrator;

    #[async_trait::async_trait]
    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            warden_rbac::migrations()
        }
    }

    /// A role read from an account can be deleted before its grants are looked up (two admin
    /// requests racing; Schemathesis found one): it then grants nothing. A role the caller
    /// names is still refused when unknown.
    #[tokio::test]
    async fn a_vanished_role_grants_nothing_but_a_named_unknown_one_is_refused() {
        let url = testing::sqlite_url();
        let conn = db::connect(&url).await.expect("connect");
        db::migrate::<Migrator>(&url, &conn).await.expect("migrate");
        let rbac = RbacService::new(conn);
        let role =
            NewRole { name: "present".into(), permissions: vec!["a:read".into(), "!a:write".into()], inherits: vec![] };
        rbac.create_role(role).await.expect("create role");
        let roles = ["present".to_owned(), "vanished".to_owned()];

        let grants = grants_of(&rbac, &roles, Missing::GrantsNothing).await.expect("grants");
        assert_eq!(grants.into_iter().collect::<Vec<_>>(), ["a:read"]);

        let refused = grants_of(&rbac, &roles, Missing::Refuse).await.expect_err("unknown role");
        assert_eq!(refused.error.code, ErrorCode::RoleNotFound);
    }
}
