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

/// Replicas that keep users' views and check them against the change epoch in Redis
/// (split mode): every change through one holds on the other's next decision, each
/// decision made twice so the second comes from the kept view, and losing the epoch in
/// Redis changes no answer.
#[tokio::test]
async fn replicas_keeping_views_decide_on_the_latest_change() {
    let test = "replicas_keeping_views_decide_on_the_latest_change";
    let Some(url) = Backend::Postgres.url(test).await else { return };
    let Some(redis_url) = testing::redis_url(test) else { return };
    let replica = || async {
        let redis = warden_common::redis::connect(&redis_url).await.expect("redis");
        Arc::new(RbacService::new(connect(&url).await).with_epoch(redis)) as SharedRbac
    };
    let (a, b) = (replica().await, replica().await);
    let twice = |api: SharedRbac, user: Uuid, permission: &'static str| async move {
        let first = check(&api, user, permission, None).await;
        let second = check(&api, user, permission, None).await;
        assert_eq!(first, second, "a kept view decides as the database does");
        second
    };
    create(&a, "viewer", &["docs:read"], &[]).await;
    create(&a, "editor", &["docs:write"], &["viewer"]).await;
    let user = Uuid::new_v4();
    assert_denied(&twice(b.clone(), user, "docs:read").await, ErrorCode::InsufficientPermissions);

    a.assign_role(user, "editor").await.expect("assign");
    assert!(twice(b.clone(), user, "docs:read").await.allowed, "an assignment holds at once");
    a.delete_role("viewer").await.expect("delete viewer");
    assert_denied(&twice(b.clone(), user, "docs:read").await, ErrorCode::InsufficientPermissions);
    assert!(twice(b.clone(), user, "docs:write").await.allowed);

    // Redis loses the epoch: nothing kept may be trusted, and nothing changes.
    let raw = warden_common::redis::connect(&redis_url).await.expect("redis");
    let _: i64 = fred::interfaces::KeysInterface::del(&raw, "warden:rbac:epoch").await.expect("del");
    assert!(twice(b.clone(), user, "docs:write").await.allowed);
    a.unassign_role(user, "editor").await.expect("unassign");
    assert_denied(&twice(b.clone(), user, "docs:write").await, ErrorCode::InsufficientPermissions);
    assert!(b.get_user_roles(user).await.expect("roles").roles.is_empty());

    // A change through B holds on A, whose view of the user was kept before it.
    assert_denied(&twice(a.clone(), user, "docs:write").await, ErrorCode::InsufficientPermissions);
    b.assign_role(user, "editor").await.expect("assign through b");
    assert!(twice(a.clone(), user, "docs:write").await.allowed);
}
