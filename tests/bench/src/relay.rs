//! A ceiling for split mode: the split shape with no work in it. A bare axum server answers
//! each `GET /relay` after two unary gRPC calls, one after the other, to two other processes
//! that answer `grpc.health.v1.Health/Check` and nothing else. Each of the three runs one
//! runtime thread, as the split fleet's gateway, RBAC and (nearly) auth do. A split bearer
//! request makes these trips (gateway → auth, gateway → RBAC) plus auth's session read in
//! Redis, and does its work on top: whatever this ceiling reaches on these cores, Warden's
//! split mode cannot pass.
//!
//! `GET /login` makes the same two calls but asks the first backend for a login
//! ([`floor::LOGIN_CHECK`]); one started with `--hash` then does a split login's least work
//! before it answers (`floor.rs`), one without answers at once.
use crate::{floor, procs};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Arguments of the `ceiling-backend` subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct BackendArgs {
    #[arg(long)]
    pub addr: SocketAddr,
    /// Hash once (Warden's hasher) before answering a login check: the split login floor
    /// (`floor.rs`).
    #[arg(long)]
    pub hash: bool,
    /// With `--hash`: read this PostgreSQL database and `--redis` before the hash, write
    /// Redis after it (`floor::LoginStores`).
    #[arg(long, requires_all = ["hash", "redis"])]
    pub postgres: Option<String>,
    #[arg(long, requires = "postgres")]
    pub redis: Option<String>,
}

/// What the relay's first backend does before it answers.
#[derive(Clone, Debug)]
pub enum FirstBackend {
    /// Nothing: the relay ceiling.
    Nothing,
    /// A split login's least work (`floor.rs`): the stores at these URLs, and one hash.
    Login { database_url: String, redis_url: String },
}

/// Arguments of the `ceiling-relay` subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct RelayArgs {
    #[arg(long)]
    pub addr: SocketAddr,
    /// The backends each request calls, in this order.
    #[arg(long, value_delimiter = ',', required = true)]
    pub to: Vec<SocketAddr>,
}

/// One runtime thread, as `WARDEN_WORKER_THREADS=1` gives a split Warden process: tokio's
/// single-threaded scheduler, as `warden` builds it for one thread (see its `main`).
fn one_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// A gRPC server that answers health checks only (after a hash each, with `--hash`).
pub fn serve_backend(args: BackendArgs) -> anyhow::Result<()> {
    if args.hash {
        one_thread()?.block_on(async move {
            let stores = match (&args.postgres, &args.redis) {
                (Some(db), Some(redis)) => Some(crate::floor::LoginStores::connect(db, redis).await?),
                _ => None,
            };
            crate::floor::serve_hashing_health(args.addr, stores).await
        })
    } else {
        one_thread()?.block_on(crate::ceiling::serve_health(args.addr))
    }
}

/// The bare relay: every request waits for each backend's answer in turn.
pub fn serve_relay(args: RelayArgs) -> anyhow::Result<()> {
    one_thread()?.block_on(async move {
        // As Warden reaches its peers: a lazily connecting channel each, no Nagle delay.
        let backends = args
            .to
            .iter()
            .map(|a| {
                Ok(HealthClient::new(Endpoint::from_shared(format!("http://{a}"))?.tcp_nodelay(true).connect_lazy()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let backends = Arc::new(backends);
        let (to_relay, to_login) = (backends.clone(), backends);
        let app = Router::new()
            .route("/relay", get(move || relay(to_relay.clone(), "")))
            .route("/login", get(move || relay(to_login.clone(), floor::LOGIN_CHECK)));
        let listener = tokio::net::TcpListener::bind(args.addr).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// Calls each backend in turn, the first with `first_check` as the checked service.
async fn relay(
    backends: Arc<Vec<HealthClient<Channel>>>,
    first_check: &'static str,
) -> Result<&'static str, StatusCode> {
    for (i, backend) in backends.iter().enumerate() {
        let service = if i == 0 { first_check } else { "" };
        let request = HealthCheckRequest { service: service.to_owned() };
        backend.clone().check(request).await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    }
    Ok("ok")
}

/// The relay and its two backends, started from this binary.
pub struct RelayFleet {
    procs: Vec<procs::Proc>,
    pub addr: SocketAddr,
}

impl RelayFleet {
    /// Starts the three and waits until each listens; on failure, dropping them kills them.
    pub async fn start(first_backend: &FirstBackend) -> anyhow::Result<RelayFleet> {
        let exe = std::env::current_exe()?;
        let dir = std::env::temp_dir();
        let (first, second, addr) = (procs::free_addr()?, procs::free_addr()?, procs::free_addr()?);
        let (to, listens) = (format!("{first},{second}"), [first, second, addr].map(|a| a.to_string()));
        let mut first_args = vec!["ceiling-backend", "--addr", &listens[0]];
        if let FirstBackend::Login { database_url, redis_url } = first_backend {
            first_args.extend(["--hash", "--postgres", database_url, "--redis", redis_url]);
        }
        let launches = [
            ("bare-backend-1", first, first_args),
            ("bare-backend-2", second, vec!["ceiling-backend", "--addr", &listens[1]]),
            ("bare-relay", addr, vec!["ceiling-relay", "--addr", &listens[2], "--to", &to]),
        ];
        let mut procs = Vec::new();
        for (name, listen, args) in launches {
            let mut proc = procs::Proc::spawn(name, &exe, &args, &Default::default(), &dir)?;
            procs::wait_listening(&mut proc, listen, Duration::from_secs(10)).await?;
            procs.push(proc);
        }
        Ok(RelayFleet { procs, addr })
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.pid).collect()
    }

    pub async fn stop(self) {
        for p in self.procs {
            p.stop().await;
        }
    }
}
