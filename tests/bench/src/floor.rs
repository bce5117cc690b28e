//! Floors under the login target: each mode's shape with one Warden hash per request and no
//! other work. A login needs at least this much: the HTTP request, the hops between processes
//! that the mode has, and the hash, while database, Redis, token signing and the JSON around
//! them come on top. Judged in the same rounds as the logins (`login_rounds.rs`), the floor's
//! ratio is the best any login of that shape can reach on these cores.
//!
//! - Embedded: the bare axum server (`ceiling.rs`) answers `GET /hash` after one hash.
//! - Split: the bare relay (`relay.rs`) whose first backend hashes before it answers.
use std::pin::Pin;
use std::sync::Arc;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus};
use warden_auth::password::PasswordHasher;
use warden_common::secret::Secret;

const PASSWORD: &str = "bench-floor-correct-horse";

/// One password verification per call, by Warden's own hasher (its idle-priority hashing
/// threads, as many as a Warden process on this host starts by default) against a hash that
/// hasher made.
#[derive(Clone)]
pub struct OneHash {
    hasher: PasswordHasher,
    phc: Arc<str>,
}

impl OneHash {
    pub async fn new() -> anyhow::Result<OneHash> {
        let hasher = PasswordHasher::new(warden_common::config::default_hash_workers());
        let phc = hasher.hash(&Secret::new(PASSWORD)).await?;
        Ok(OneHash { hasher, phc: phc.into() })
    }

    /// Verifies the password, as a login with the right password does.
    pub async fn verify(&self) -> anyhow::Result<()> {
        let verified = self.hasher.verify(&Secret::new(PASSWORD), Some(self.phc.to_string())).await?;
        anyhow::ensure!(verified.matches, "the floor's password did not verify");
        Ok(())
    }
}

/// A health service that hashes once before each answer: the split floor's "auth".
struct HashingHealth(OneHash);

type NoStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HashingHealth {
    async fn check(&self, _: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        self.0.verify().await.map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(HealthCheckResponse { status: ServingStatus::Serving.into() }))
    }

    type WatchStream = NoStream;

    async fn watch(&self, _: Request<HealthCheckRequest>) -> Result<Response<NoStream>, Status> {
        Err(Status::unimplemented("the floor answers Check only"))
    }
}

/// Serves `grpc.health.v1.Health/Check`, one hash per call.
pub async fn serve_hashing_health(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let service = HealthServer::new(HashingHealth(OneHash::new().await?));
    tonic::transport::Server::builder().add_service(service).serve(addr).await?;
    Ok(())
}
