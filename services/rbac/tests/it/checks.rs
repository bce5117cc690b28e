//! Permission decisions: inheritance, denies, scopes, assignments and malformed input.
use crate::harness::{assert_allowed, assert_denied, check, code, create, on_every_backend, strings};
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_rbac::{SharedRbac, UserRoles};

on_every_backend!(
    inherited_grants_name_the_granting_role,
    inherited_denies_override_grants,
    assignment_is_idempotent,
    concurrent_assignments_are_idempotent,
    users_without_roles_are_denied,
    get_user_roles_lists_direct_roles_and_effective_entries,
    scopes_narrow_to_their_intersection,
    malformed_permissions_are_denied_not_errors,
    role_changes_apply_to_the_next_check,
);

async fn inherited_grants_name_the_granting_role(api: SharedRbac) {
    create(&api, "viewer", &["docs:read"], &[]).await;
    create(&api, "editor", &["docs:write"], &["viewer"]).await;
    create(&api, "chief", &[], &["editor"]).await;
    let user = Uuid::new_v4();
    api.assign_role(user, "chief").await.expect("assign");
    assert_allowed(&check(&api, user, "docs:read", None).await, "granted by role viewer (docs:read)");
    assert_allowed(&check(&api, user, "docs:write", None).await, "granted by role editor (docs:write)");
    let missing = check(&api, user, "docs:*", None).await;
    assert_denied(&missing, ErrorCode::InsufficientPermissions);
    assert_eq!(missing.reason, "no role grants docs:*");
}

async fn inherited_denies_override_grants(api: SharedRbac) {
    create(&api, "auditor", &["!users:delete"], &[]).await;
    create(&api, "manager", &["users:*"], &["auditor"]).await;
    let user = Uuid::new_v4();
    api.assign_role(user, "manager").await.expect("assign");
    // Even admin's `*` does not beat a deny held through another role.
    api.assign_role(user, "admin").await.expect("assign admin");
    for permission in ["users:delete", "users:*", "*"] {
        let d = check(&api, user, permission, None).await;
        assert_denied(&d, ErrorCode::PolicyViolation);
        assert_eq!(d.reason, "denied by role auditor (!users:delete)", "{permission}");
    }
    assert!(check(&api, user, "users:read", None).await.allowed);
}

async fn assignment_is_idempotent(api: SharedRbac) {
    create(&api, "viewer", &["docs:read"], &[]).await;
    let user = Uuid::new_v4();
    for _ in 0..2 {
        api.assign_role(user, "viewer").await.expect("assign");
    }
    assert_eq!(api.get_user_roles(user).await.expect("roles").roles, ["viewer"]);
    for _ in 0..2 {
        api.unassign_role(user, "viewer").await.expect("unassign");
    }
    assert!(api.get_user_roles(user).await.expect("roles").roles.is_empty());
    assert_denied(&check(&api, user, "docs:read", None).await, ErrorCode::InsufficientPermissions);
}

async fn concurrent_assignments_are_idempotent(api: SharedRbac) {
    create(&api, "viewer", &["docs:read"], &[]).await;
    let user = Uuid::new_v4();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.assign_role(user, "viewer").await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("assign");
    }
    assert_eq!(api.get_user_roles(user).await.expect("roles").roles, ["viewer"]);
}

async fn users_without_roles_are_denied(api: SharedRbac) {
    let stranger = Uuid::new_v4();
    let d = check(&api, stranger, "docs:read", None).await;
    assert_denied(&d, ErrorCode::InsufficientPermissions);
    assert_eq!(d.reason, "user has no roles");
    assert_eq!(api.get_user_roles(stranger).await.expect("roles"), UserRoles::default());
    let none = api.check_permissions(stranger, &[], None).await.expect("empty check");
    assert!(none.is_empty());
}

async fn get_user_roles_lists_direct_roles_and_effective_entries(api: SharedRbac) {
    create(&api, "viewer", &["docs:read", "users:read"], &[]).await;
    create(&api, "auditor", &["!users:delete", "users:read"], &[]).await;
    create(&api, "editor", &["docs:*"], &["viewer", "auditor"]).await;
    let user = Uuid::new_v4();
    api.assign_role(user, "viewer").await.expect("assign");
    api.assign_role(user, "editor").await.expect("assign");
    let roles = api.get_user_roles(user).await.expect("roles");
    assert_eq!(roles.roles, ["editor", "viewer"]);
    assert_eq!(roles.permissions, strings(&["!users:delete", "docs:*", "docs:read", "users:read"]));
}

async fn scopes_narrow_to_their_intersection(api: SharedRbac) {
    create(&api, "auditor", &["!docs:delete"], &[]).await;
    create(&api, "editor", &["docs:*"], &["auditor"]).await;
    let user = Uuid::new_v4();
    api.assign_role(user, "editor").await.expect("assign");

    let read_only = Some(&["docs:read"][..]);
    assert_allowed(&check(&api, user, "docs:read", read_only).await, "granted by role editor (docs:*)");
    let outside = check(&api, user, "docs:write", read_only).await;
    assert_denied(&outside, ErrorCode::AccessDenied);
    assert_eq!(outside.reason, "not within the api key's scopes");
    // A scope never adds what the roles lack, and a deny still reports as a deny.
    assert_denied(&check(&api, user, "users:read", Some(&["*"])).await, ErrorCode::InsufficientPermissions);
    assert_denied(&check(&api, user, "docs:delete", Some(&["*"])).await, ErrorCode::PolicyViolation);
    // An empty scope list allows nothing; no scopes at all narrows nothing.
    assert_denied(&check(&api, user, "docs:read", Some(&[])).await, ErrorCode::AccessDenied);
    assert!(check(&api, user, "docs:write", None).await.allowed);
    // Scope denies narrow too.
    assert_denied(&check(&api, user, "docs:write", Some(&["docs:*", "!docs:write"])).await, ErrorCode::AccessDenied);
}

async fn malformed_permissions_are_denied_not_errors(api: SharedRbac) {
    let user = Uuid::new_v4();
    api.assign_role(user, "admin").await.expect("assign");
    let requested = strings(&["", "users", "USERS:read", "users:read:x", "!users:read", "users:read"]);
    let decisions = api.check_permissions(user, &requested, None).await.expect("check");
    let got: Vec<(&str, bool)> = decisions.iter().map(|d| (d.permission.as_str(), d.allowed)).collect();
    let expected: Vec<(&str, bool)> = requested.iter().map(|p| (p.as_str(), p == "users:read")).collect();
    assert_eq!(got, expected);
    for d in &decisions[..5] {
        assert_eq!(d.code, Some(ErrorCode::InsufficientPermissions), "{d:?}");
    }
    let too_many = vec!["docs:read".to_owned(); 1000];
    assert_eq!(code(api.check_permissions(user, &too_many, None).await), ErrorCode::ValidationError);
}

async fn role_changes_apply_to_the_next_check(api: SharedRbac) {
    create(&api, "editor", &["docs:*"], &[]).await;
    let user = Uuid::new_v4();
    api.assign_role(user, "editor").await.expect("assign");
    assert!(check(&api, user, "docs:write", None).await.allowed);

    create(&api, "auditor", &["!docs:write"], &[]).await;
    api.assign_role(user, "auditor").await.expect("assign auditor");
    assert_denied(&check(&api, user, "docs:write", None).await, ErrorCode::PolicyViolation);

    api.delete_role("editor").await.expect("delete");
    create(&api, "editor", &["users:read"], &[]).await;
    api.assign_role(user, "editor").await.expect("assign again");
    assert_denied(&check(&api, user, "docs:read", None).await, ErrorCode::InsufficientPermissions);
    assert_allowed(&check(&api, user, "users:read", None).await, "granted by role editor (users:read)");
}
