//! Role management: create, get, list, delete, the built-in admin, and their error paths.
use crate::harness::{assert_allowed, assert_denied, check, code, create, new_role, on_every_backend, strings};
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_rbac::{Role, SharedRbac};

on_every_backend!(
    create_get_list_delete_role,
    builtin_admin_holds_everything_and_stays,
    create_role_rejects_bad_input,
    unknown_roles_are_role_not_found,
    deleting_a_role_removes_its_assignments_and_links,
);

async fn create_get_list_delete_role(api: SharedRbac) {
    let created = api
        .create_role(new_role("editor", &["docs:write", "!docs:delete", "docs:write", "docs:read"], &["admin"]))
        .await
        .expect("create");
    let expected = Role {
        name: "editor".into(),
        permissions: strings(&["!docs:delete", "docs:read", "docs:write"]),
        inherits: strings(&["admin"]),
        builtin: false,
    };
    assert_eq!(created, expected);
    assert_eq!(api.get_role("editor").await.expect("get"), expected);

    create(&api, "viewer", &["docs:read"], &[]).await;
    let names: Vec<String> = api.list_roles().await.expect("list").into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["admin", "editor", "viewer"]);

    api.delete_role("editor").await.expect("delete");
    assert_eq!(code(api.get_role("editor").await), ErrorCode::RoleNotFound);
    assert_eq!(code(api.delete_role("editor").await), ErrorCode::RoleNotFound);
    let names: Vec<String> = api.list_roles().await.expect("list").into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["admin", "viewer"]);
    // The name is free again.
    create(&api, "editor", &["docs:read"], &[]).await;
}

async fn builtin_admin_holds_everything_and_stays(api: SharedRbac) {
    let admin = api.get_role("admin").await.expect("admin exists");
    assert_eq!(admin, Role { name: "admin".into(), permissions: strings(&["*"]), inherits: vec![], builtin: true });
    assert_eq!(code(api.delete_role("admin").await), ErrorCode::AccessDenied);
    assert_eq!(code(api.create_role(new_role("admin", &[], &[])).await), ErrorCode::Conflict);

    let user = Uuid::new_v4();
    api.assign_role(user, "admin").await.expect("assign");
    for permission in ["users:delete", "anything.at_all:do-it", "users:*", "*"] {
        assert_allowed(&check(&api, user, permission, None).await, "granted by role admin (*)");
    }
    assert!(api.get_role("admin").await.expect("still there").builtin);
}

async fn create_role_rejects_bad_input(api: SharedRbac) {
    let validation = [
        new_role("Editor", &[], &[]),
        new_role("", &[], &[]),
        new_role("a b", &[], &[]),
        new_role("editor", &["docs"], &[]),
        new_role("editor", &["docs:*:x"], &[]),
        new_role("editor", &["DOCS:read"], &[]),
        new_role("editor", &["docs:re*d"], &[]),
        new_role("editor", &[], &["editor"]),
        new_role("editor", &[], &["Not A Role"]),
    ];
    for role in validation {
        assert_eq!(code(api.create_role(role.clone()).await), ErrorCode::ValidationError, "{role:?}");
    }
    assert_eq!(code(api.create_role(new_role("editor", &["docs:*"], &["ghost"])).await), ErrorCode::RoleNotFound);
    // Nothing of a rejected role was stored.
    assert_eq!(code(api.get_role("editor").await), ErrorCode::RoleNotFound);

    create(&api, "editor", &["docs:*"], &[]).await;
    assert_eq!(code(api.create_role(new_role("editor", &["other:*"], &[])).await), ErrorCode::Conflict);
    assert_eq!(api.get_role("editor").await.expect("unchanged").permissions, ["docs:*"]);
}

async fn unknown_roles_are_role_not_found(api: SharedRbac) {
    let user = Uuid::new_v4();
    for name in ["ghost", "Not Valid", ""] {
        assert_eq!(code(api.get_role(name).await), ErrorCode::RoleNotFound, "{name:?}");
        assert_eq!(code(api.delete_role(name).await), ErrorCode::RoleNotFound, "{name:?}");
        assert_eq!(code(api.assign_role(user, name).await), ErrorCode::RoleNotFound, "{name:?}");
        assert_eq!(code(api.unassign_role(user, name).await), ErrorCode::RoleNotFound, "{name:?}");
    }
    assert!(api.get_user_roles(user).await.expect("roles").roles.is_empty());
}

async fn deleting_a_role_removes_its_assignments_and_links(api: SharedRbac) {
    create(&api, "viewer", &["docs:read"], &[]).await;
    create(&api, "auditor", &["!docs:delete"], &[]).await;
    create(&api, "editor", &["docs:*"], &["viewer", "auditor"]).await;
    let user = Uuid::new_v4();
    api.assign_role(user, "viewer").await.expect("assign viewer");
    api.assign_role(user, "editor").await.expect("assign editor");
    assert_denied(&check(&api, user, "docs:delete", None).await, ErrorCode::PolicyViolation);

    api.delete_role("auditor").await.expect("delete auditor");
    api.delete_role("viewer").await.expect("delete viewer");
    assert!(api.get_role("editor").await.expect("editor stays").inherits.is_empty());
    let roles = api.get_user_roles(user).await.expect("roles");
    assert_eq!(roles.roles, ["editor"]);
    assert_eq!(roles.permissions, ["docs:*"]);
    // The deny went with the auditor role.
    assert_allowed(&check(&api, user, "docs:delete", None).await, "granted by role editor (docs:*)");

    api.delete_role("editor").await.expect("delete editor");
    assert_eq!(api.get_user_roles(user).await.expect("roles"), Default::default());
    assert_denied(&check(&api, user, "docs:read", None).await, ErrorCode::InsufficientPermissions);
}
