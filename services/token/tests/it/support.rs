//! A token service on a fresh SQLite database, served over gRPC on 127.0.0.1:0, that counts
//! the calls reaching it, and `RemoteTokens` clients for it sharing the test's clock.
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use uuid::Uuid;
use warden_common::clock::OffsetClock;
use warden_common::{Error, ErrorCode, Result};
use warden_token::grpc::{RemoteTokens, server};
use warden_token::{IssuedToken, Jwk, TokenApi, TokenKind, TokenSeed, TokenService, TokenSettings, VerifiedToken};

pub(crate) const ISSUER: &str = "https://warden.test";
pub(crate) const AUDIENCE: &str = "warden-test";
pub(crate) const ACCESS_TTL: i64 = 900;

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        warden_token::migrations()
    }
}

/// What the gRPC server exposes: the real service, with the VerifyToken and GetJwks calls
/// that reach it counted, so a test can tell local verification from a round trip.
pub(crate) struct Counted {
    inner: Arc<TokenService>,
    verify_calls: AtomicUsize,
    jwks_calls: AtomicUsize,
}

impl Counted {
    pub(crate) fn verify_calls(&self) -> usize {
        self.verify_calls.load(Ordering::SeqCst)
    }

    pub(crate) fn jwks_calls(&self) -> usize {
        self.jwks_calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl TokenApi for Counted {
    async fn generate_access_token(&self, user: Uuid, session: Uuid, seed: Option<TokenSeed>) -> Result<IssuedToken> {
        self.inner.generate_access_token(user, session, seed).await
    }

    async fn generate_refresh_token(
        &self,
        user: Uuid,
        session: Uuid,
        ttl: Option<i64>,
        seed: Option<TokenSeed>,
    ) -> Result<IssuedToken> {
        self.inner.generate_refresh_token(user, session, ttl, seed).await
    }

    async fn verify_token(&self, token: &str, kind: TokenKind) -> Result<VerifiedToken> {
        self.verify_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.verify_token(token, kind).await
    }

    async fn jwks(&self) -> Result<Vec<Jwk>> {
        self.jwks_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.jwks().await
    }

    async fn rotate_signing_key(&self) -> Result<String> {
        self.inner.rotate_signing_key().await
    }

    async fn ready(&self) -> bool {
        self.inner.ready().await
    }
}

pub(crate) struct TokenServer {
    /// The service itself, for issuing, rotating and comparing verdicts without gRPC.
    pub(crate) service: Arc<TokenService>,
    pub(crate) calls: Arc<Counted>,
    pub(crate) clock: Arc<OffsetClock>,
    addr: SocketAddr,
    stop: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl TokenServer {
    pub(crate) async fn start() -> TokenServer {
        let url = warden_common::testing::sqlite_url();
        let db = warden_common::db::connect(&url).await.expect("open sqlite");
        warden_common::db::migrate::<Migrator>(&url, &db).await.expect("migrate");
        let clock = Arc::new(OffsetClock::default());
        let settings = TokenSettings {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            access_ttl: ACCESS_TTL,
            refresh_ttl: 3600,
            signing_key_secret: None,
            rotation_interval: 0,
        };
        let service = TokenService::new(db, clock.clone(), settings).await.expect("token service");
        let calls = Arc::new(Counted {
            inner: service.clone(),
            verify_calls: AtomicUsize::new(0),
            jwks_calls: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = Server::builder().add_service(server(calls.clone())).serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                stopped.await.ok();
            },
        );
        let handle = tokio::spawn(async move { serving.await.expect("token server") });
        TokenServer { service, calls, clock, addr, stop: Some((stop, handle)) }
    }

    /// A split-mode client of this server, as the auth service and gateway build it.
    pub(crate) fn remote(&self) -> RemoteTokens {
        self.remote_for(AUDIENCE)
    }

    /// A raw gRPC client of this server.
    pub(crate) fn client(&self) -> warden_proto::token::v1::token_service_client::TokenServiceClient<Channel> {
        warden_proto::token::v1::token_service_client::TokenServiceClient::new(lazy_channel(self.addr))
    }

    pub(crate) fn remote_for(&self, audience: &str) -> RemoteTokens {
        RemoteTokens::new(lazy_channel(self.addr), ISSUER, audience, self.clock.clone())
    }

    /// Stops serving and closes its connections: from then on every call fails.
    pub(crate) async fn stop(&mut self) {
        let (stop, handle) = self.stop.take().expect("still running");
        stop.send(()).expect("server listening for shutdown");
        tokio::time::timeout(std::time::Duration::from_secs(10), handle)
            .await
            .expect("server stops")
            .expect("server task");
    }
}

/// A client of an address nobody listens on (any longer).
pub(crate) async fn unreachable_remote(clock: Arc<OffsetClock>) -> RemoteTokens {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    RemoteTokens::new(lazy_channel(addr), ISSUER, AUDIENCE, clock)
}

fn lazy_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).expect("uri").connect_lazy()
}

#[track_caller]
pub(crate) fn assert_code<T: std::fmt::Debug>(result: Result<T, Error>, code: ErrorCode) {
    match result {
        Err(e) if e.code == code => {}
        other => panic!("expected {code}, got {other:?}"),
    }
}
