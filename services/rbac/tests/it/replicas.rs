//! Several service instances on one database (split mode replicas), and database failures.
use crate::harness::{Backend, assert_denied, check, connect, create};
use sea_orm::ConnectionTrait;
use std::sync::Arc;
use uuid::Uuid;
use warden_common::{ErrorCode, testing};
use warden_rbac::{RbacApi, RbacService, SharedRbac};

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::harness::Backend::Sqlite, stringify!($name)).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::harness::Backend::Postgres, stringify!($name)).await;
            })*
        }
    };
}

on_both_databases!(changes_by_one_replica_reach_another, database_failures_fail_closed);

async fn replica(url: &str) -> SharedRbac {
    Arc::new(RbacService::new(connect(url).await))
}

async fn changes_by_one_replica_reach_another(backend: Backend, test: &str) {
    let Some(url) = backend.url(test).await else { return };
    let (a, b) = (replica(&url).await, replica(&url).await);
    create(&a, "viewer", &["docs:read"], &[]).await;
    create(&a, "editor", &["docs:write"], &["viewer"]).await;
    let user = Uuid::new_v4();
    a.assign_role(user, "editor").await.expect("assign");
    // B caches the graph in which editor inherits viewer.
    assert!(check(&b, user, "docs:read", None).await.allowed);

    // Only role definitions change; the user's assignments stay the same.
    a.delete_role("viewer").await.expect("delete viewer");
    assert_denied(&check(&b, user, "docs:read", None).await, ErrorCode::InsufficientPermissions);
    assert!(b.get_user_roles(user).await.expect("roles").permissions == ["docs:write"]);

    a.delete_role("editor").await.expect("delete editor");
    create(&a, "editor", &["!docs:write", "docs:*"], &[]).await;
    a.assign_role(user, "editor").await.expect("assign again");
    assert_denied(&check(&b, user, "docs:write", None).await, ErrorCode::PolicyViolation);
    assert!(check(&b, user, "docs:read", None).await.allowed);
}

async fn database_failures_fail_closed(backend: Backend, test: &str) {
    let Some(url) = backend.url(test).await else { return };
    let api = replica(&url).await;
    let user = Uuid::new_v4();
    api.assign_role(user, "admin").await.expect("assign");
    assert!(check(&api, user, "users:read", None).await.allowed);
    assert!(api.ready().await);

    let other = connect(&url).await;
    other.execute_unprepared("DROP TABLE user_roles").await.expect("drop user_roles");
    let permissions = vec!["users:read".to_owned()];
    let failed = api.check_permissions(user, &permissions, None).await.expect_err("must not decide");
    assert_eq!(failed.code, ErrorCode::Unavailable);
    assert_eq!(api.get_user_roles(user).await.expect_err("must fail").code, ErrorCode::Unavailable);

    other.execute_unprepared("DROP TABLE role_generation").await.expect("drop role_generation");
    assert!(!api.ready().await);
}

#[tokio::test]
async fn an_unmigrated_database_is_not_ready_and_decides_nothing() {
    let api = RbacService::new(testing::sqlite().await);
    assert!(!api.ready().await);
    let permissions = vec!["users:read".to_owned()];
    let failed = api.check_permissions(Uuid::new_v4(), &permissions, None).await.expect_err("no tables");
    assert_eq!(failed.code, ErrorCode::Unavailable);
}
