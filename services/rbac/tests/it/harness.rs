//! Fresh, migrated databases and services for each test, on every backend.
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use std::net::SocketAddr;
use std::sync::Arc;
use tonic::transport::{Channel, Endpoint, Server};
use warden_common::db::Db;
use warden_common::{Error, ErrorCode, db, testing};
use warden_rbac::grpc::{RemoteRbac, server};
use warden_rbac::{Decision, NewRole, RbacService, SharedRbac};

pub(crate) struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        warden_rbac::migrations()
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    /// `RemoteRbac` talking to `RbacGrpc` over loopback, on SQLite.
    Grpc,
}

impl Backend {
    /// The URL of a fresh, migrated database, or `None` when the backend is not available.
    pub(crate) async fn url(self, test: &str) -> Option<String> {
        let url = match self {
            Backend::Sqlite | Backend::Grpc => testing::sqlite_url(),
            Backend::Postgres => testing::postgres_url(test).await?,
        };
        db::migrate::<Migrator>(&url, &connect(&url).await).await.expect("migrate");
        Some(url)
    }

    /// The API on a fresh database.
    pub(crate) async fn api(self, test: &str) -> Option<SharedRbac> {
        let url = self.url(test).await?;
        let local: SharedRbac = Arc::new(RbacService::new(connect(&url).await));
        Some(match self {
            Backend::Sqlite | Backend::Postgres => local,
            Backend::Grpc => Arc::new(RemoteRbac::new(serve(local).await)),
        })
    }
}

pub(crate) async fn connect(url: &str) -> Db {
    db::connect(url).await.expect("connect")
}

/// Serves the API on an ephemeral loopback port and returns a channel to it.
pub(crate) async fn serve(api: SharedRbac) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("local addr");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(Server::builder().add_service(server(api)).serve_with_incoming(incoming));
    Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect().await.expect("connect")
}

/// Declares one test per backend for each scenario `async fn name(api: SharedRbac)`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                if let Some(api) = $crate::harness::Backend::Sqlite.api(stringify!($name)).await {
                    super::$name(api).await;
                }
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                if let Some(api) = $crate::harness::Backend::Postgres.api(stringify!($name)).await {
                    super::$name(api).await;
                }
            })*
        }
        mod grpc {
            $(#[tokio::test]
            async fn $name() {
                if let Some(api) = $crate::harness::Backend::Grpc.api(stringify!($name)).await {
                    super::$name(api).await;
                }
            })*
        }
    };
}
pub(crate) use on_every_backend;

pub(crate) fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn new_role(name: &str, permissions: &[&str], inherits: &[&str]) -> NewRole {
    NewRole { name: name.into(), permissions: strings(permissions), inherits: strings(inherits) }
}

pub(crate) async fn create(api: &SharedRbac, name: &str, permissions: &[&str], inherits: &[&str]) {
    api.create_role(new_role(name, permissions, inherits)).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// The decision for one permission.
pub(crate) async fn check(api: &SharedRbac, user: uuid::Uuid, permission: &str, scopes: Option<&[&str]>) -> Decision {
    let scopes = scopes.map(strings);
    let mut decisions =
        api.check_permissions(user, &strings(&[permission]), scopes.as_deref()).await.expect("check permissions");
    assert_eq!(decisions.len(), 1);
    decisions.remove(0)
}

/// Asserts a refusal with this code.
pub(crate) fn assert_denied(decision: &Decision, code: ErrorCode) {
    assert!(!decision.allowed, "{decision:?}");
    assert_eq!(decision.code, Some(code), "{decision:?}");
}

pub(crate) fn assert_allowed(decision: &Decision, reason: &str) {
    assert!(decision.allowed, "{decision:?}");
    assert_eq!((decision.code, decision.reason.as_str()), (None, reason));
}

pub(crate) fn code<T: std::fmt::Debug>(result: Result<T, Error>) -> ErrorCode {
    result.expect_err("an error").code
}
