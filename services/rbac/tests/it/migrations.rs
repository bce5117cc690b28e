//! The migrations apply, roll back and apply again on both databases.
use crate::harness::{Backend, Migrator, connect};
use sea_orm_migration::MigratorTrait;
use warden_rbac::{RbacApi, RbacService};

async fn down_and_up_again(backend: Backend, test: &str) {
    let Some(url) = backend.url(test).await else { return };
    let db = connect(&url).await;
    Migrator::down(db.unbounded(), None).await.expect("down");
    assert!(!RbacService::new(db.clone()).ready().await);
    Migrator::up(db.unbounded(), None).await.expect("up again");
    let api = RbacService::new(db);
    assert!(api.ready().await);
    assert!(api.get_role("admin").await.expect("admin is seeded again").builtin);
}

#[tokio::test]
async fn sqlite_down_and_up_again() {
    down_and_up_again(Backend::Sqlite, "sqlite_down_and_up_again").await;
}

#[tokio::test]
async fn postgres_down_and_up_again() {
    down_and_up_again(Backend::Postgres, "postgres_down_and_up_again").await;
}
