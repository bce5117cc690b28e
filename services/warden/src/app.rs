//! Builds and runs a Warden process: every service in one process (the embedded default),
//! or one service alone that reaches its peers over gRPC (split mode, Kubernetes).
//! Listeners are bound before serving, so callers (tests, the CLI) learn the real ports.
use crate::migrator::Migrator;
use crate::role::ServiceRole;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use warden_auth::store::{RedisStore, SessionStore, SqlStore};
use warden_auth::{AuthService, AuthSettings, Peers, SharedAuth};
use warden_common::clock::SharedClock;
use warden_common::config::Mode;
use warden_common::config::split_list;
use warden_common::db::Db;
use warden_common::secret::Secret;
use warden_common::tls::Tls;
use warden_common::{Config, grpc};
use warden_gateway::{AppState, ClientThrottle, Services};
use warden_key::{KeyService, SharedKeys};
use warden_rbac::{RbacService, SharedRbac};
use warden_token::{SharedTokens, TokenService, TokenSettings};

/// Largest gRPC message a service accepts; Warden's messages are small.
const MAX_GRPC_MESSAGE: usize = 256 * 1024;
/// The gRPC health name for liveness probes: serving whenever the process is up.
pub const LIVENESS_SERVICE: &str = "warden.liveness";
/// How long in-flight requests get to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest an accepted gRPC connection lives before it is asked to go (see `serve_grpc`).
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(600);
/// How long its calls in flight then have to finish.
const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(30);

/// A running process. Dropping it does not stop it; call [`Warden::shutdown`].
pub struct Warden {
    pub http_addr: Option<SocketAddr>,
    pub grpc_addr: Option<SocketAddr>,
    /// The plaintext health-only gRPC listener (`WARDEN_HEALTH_ADDR`), when configured.
    pub health_addr: Option<SocketAddr>,
    /// The Prometheus listener (`WARDEN_METRICS_ADDR`), when configured.
    pub metrics_addr: Option<SocketAddr>,
    /// The mutual-TLS material in use (`WARDEN_TLS_*`), reloaded when its files change.
    pub tls: Option<Tls>,
    /// The services this process runs locally, for in-process callers (tests, CLI).
    pub local: LocalServices,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Clone, Default)]
pub struct LocalServices {
    pub auth: Option<Arc<AuthService>>,
    pub tokens: Option<Arc<TokenService>>,
    pub keys: Option<Arc<KeyService>>,
    pub rbac: Option<Arc<RbacService>>,
}

/// Opens the database and applies migrations if configured to.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    // Validated to 1..=1000.
    let pool = u32::try_from(config.database_max_connections).unwrap_or(warden_common::db::DEFAULT_MAX_CONNECTIONS);
    let db = warden_common::db::connect_with(&config.database_url, pool)
        .await
        .with_context(|| "WARDEN_DATABASE_URL: cannot connect to the database")?;
    if config.auto_migrate {
        warden_common::db::migrate::<Migrator>(&config.database_url, &db)
            .await
            .context("running database migrations")?;
    }
    Ok(db)
}

async fn open_redis(config: &Config) -> anyhow::Result<Option<fred::clients::Client>> {
    match &config.redis_url {
        Some(url) => Ok(Some(
            warden_common::redis::connect(url).await.with_context(|| "WARDEN_REDIS_URL: cannot connect to redis")?,
        )),
        None => Ok(None),
    }
}

fn channel(setting: &str, value: &Option<String>, tls: Option<&Tls>) -> anyhow::Result<grpc::PeerChannel> {
    grpc::channel(setting, &split_list(value.as_deref()), tls)
}

/// Builds the local services a role needs, and remote clients for the others.
async fn build(
    config: &Config,
    role: ServiceRole,
    clock: &SharedClock,
    tls: Option<&Tls>,
) -> anyhow::Result<(LocalServices, Option<(Services, Arc<ClientThrottle>)>)> {
    let needs_db = role != ServiceRole::Gateway;
    let db = if needs_db { Some(open_database(config).await?) } else { None };
    let redis = if role != ServiceRole::Token { open_redis(config).await? } else { None };
    let mut local = LocalServices::default();
    let runs = |r: ServiceRole| role == ServiceRole::All || role == r;

    if runs(ServiceRole::Token) {
        let db = db.clone().expect("database opened");
        local.tokens = Some(TokenService::new(db, clock.clone(), TokenSettings::from(config)).await?);
    }
    if runs(ServiceRole::Rbac) {
        let db = db.clone().expect("database opened");
        let embedded = role == ServiceRole::All && db.get_database_backend() == sea_orm::DbBackend::Sqlite;
        let rbac = RbacService::new(db);
        local.rbac = Some(Arc::new(match &redis {
            _ if embedded => rbac.sole_writer(),
            // Replicas share the database: views are kept, checked against the change epoch.
            Some(client) => rbac.with_epoch(client.clone()),
            None => rbac,
        }));
    }
    if runs(ServiceRole::Key) {
        let db = db.clone().expect("database opened");
        local.keys =
            Some(Arc::new(KeyService::new(db, redis.clone(), clock.clone(), config.api_key_pepper.clone()).await?));
    }

    // Peers: the local service when this process runs it, otherwise a gRPC client.
    let tokens: Option<SharedTokens> = match &local.tokens {
        Some(t) => Some(t.clone()),
        None if matches!(role, ServiceRole::Auth | ServiceRole::Gateway) => {
            Some(Arc::new(warden_token::grpc::RemoteTokens::new(
                channel("WARDEN_TOKEN_ENDPOINTS", &config.token_endpoints, tls)?,
                &config.issuer,
                &config.audience,
                clock.clone(),
            )))
        }
        None => None,
    };
    let keys: Option<SharedKeys> = match &local.keys {
        Some(k) => Some(k.clone()),
        None if matches!(role, ServiceRole::Auth | ServiceRole::Gateway) => Some(Arc::new(
            warden_key::grpc::RemoteKeys::new(channel("WARDEN_KEY_ENDPOINTS", &config.key_endpoints, tls)?),
        )),
        None => None,
    };
    let rbac: Option<SharedRbac> = match &local.rbac {
        Some(r) => Some(r.clone()),
        None if matches!(role, ServiceRole::Auth | ServiceRole::Gateway) => Some(Arc::new(
            warden_rbac::grpc::RemoteRbac::new(channel("WARDEN_RBAC_ENDPOINTS", &config.rbac_endpoints, tls)?),
        )),
        None => None,
    };

    if runs(ServiceRole::Auth) {
        let db = db.clone().expect("database opened");
        let store: Arc<dyn SessionStore> = match &redis {
            Some(client) => Arc::new(RedisStore::new(client.clone())),
            None => {
                let store = SqlStore::new(db.clone());
                store.spawn_sweeper(clock.clone());
                Arc::new(store)
            }
        };
        let peers = Peers {
            tokens: tokens.clone().expect("token peer"),
            keys: keys.clone().expect("key peer"),
            rbac: rbac.clone().expect("rbac peer"),
        };
        let hasher = warden_auth::password::PasswordHasher::new(config.hash_workers());
        local.auth =
            Some(Arc::new(AuthService::new(db, store, peers, hasher, clock.clone(), AuthSettings::from(config))));
    }

    let auth: Option<SharedAuth> = match &local.auth {
        Some(a) => Some(a.clone()),
        None if role == ServiceRole::Gateway => Some(Arc::new(warden_auth::grpc::RemoteAuth::new(channel(
            "WARDEN_AUTH_ENDPOINTS",
            &config.auth_endpoints,
            tls,
        )?))),
        None => None,
    };
    let gateway = match (role, auth, tokens, keys, rbac) {
        (ServiceRole::All | ServiceRole::Gateway, Some(auth), Some(tokens), Some(keys), Some(rbac)) => {
            let trusted =
                warden_common::net::parse_list(config.trusted_proxies.as_deref()).map_err(anyhow::Error::msg)?;
            let throttle = ClientThrottle::new(config.client_rate_limit as u32, trusted, redis.clone(), clock.clone());
            Some((Services { auth, tokens, keys, rbac }, Arc::new(throttle)))
        }
        _ => None,
    };
    Ok((local, gateway))
}

/// Creates the bootstrap admin when configured; in split mode the RBAC service may not be
/// up yet, so it retries in the background.
fn bootstrap_admin(config: &Config, auth: Arc<AuthService>) -> Option<JoinHandle<()>> {
    let (Some(username), Some(password)) =
        (config.bootstrap_admin_username.clone(), config.bootstrap_admin_password.clone())
    else {
        return None;
    };
    Some(tokio::spawn(async move {
        let password = Secret::new(password);
        loop {
            match auth.bootstrap_admin(&username, &password).await {
                Ok(true) => {
                    return tracing::info!(target: "audit", event = "bootstrap_admin_created", username = %username);
                }
                Ok(false) => return,
                Err(e) if e.code == warden_common::ErrorCode::Unavailable => {
                    tracing::warn!(error = %e, "bootstrap admin: a dependency is not ready; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => return tracing::error!(error = %e, "bootstrap admin could not be created"),
            }
        }
    }))
}

impl Warden {
    pub async fn start(config: Config, role: ServiceRole, clock: SharedClock) -> anyhow::Result<Warden> {
        config.validate()?;
        let tls = Tls::load(&config)?;
        if config.mode == Mode::Prod && role != ServiceRole::All && tls.is_none() {
            anyhow::bail!(
                "invalid configuration: WARDEN_TLS_CERT: in prod mode the services of a split deployment talk \
                 mutual TLS only; set WARDEN_TLS_CERT, WARDEN_TLS_KEY and WARDEN_TLS_CA"
            );
        }
        // Installed before anything runs: a metric recorded before the recorder exists is lost
        // for good (the metrics listener's task installs it too, but on a busy host only after
        // the first RPCs were served).
        if config.metrics_socket_addr()?.is_some() {
            warden_common::metrics::recorder();
        }
        let (local, gateway) = build(&config, role, &clock, tls.as_ref()).await?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(tls) = tls.clone() {
            let (every, mut stopped) = (config.tls_reload_interval, stopped.clone());
            tasks.push(tokio::spawn(async move {
                tls.watch(every, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
            }));
        }

        if let Some(task) = local.auth.clone().and_then(|auth| bootstrap_admin(&config, auth)) {
            // All-in-one: finish before serving, so the first login already works.
            if role == ServiceRole::All {
                task.await.ok();
            } else {
                tasks.push(task);
            }
        }

        let mut health_addr = None;
        let grpc_addr = if role == ServiceRole::Gateway {
            None
        } else {
            let listener = TcpListener::bind(config.grpc_socket_addr()?)
                .await
                .with_context(|| format!("WARDEN_GRPC_ADDR: cannot listen on {}", config.grpc_addr))?;
            let addr = listener.local_addr()?;
            let health_listener = match config.health_socket_addr()? {
                Some(health) => Some(
                    TcpListener::bind(health)
                        .await
                        .with_context(|| format!("WARDEN_HEALTH_ADDR: cannot listen on {health}"))?,
                ),
                None => None,
            };
            health_addr = health_listener.as_ref().map(TcpListener::local_addr).transpose()?;
            let grpc = GrpcOptions { tls: tls.as_ref(), reflection: config.mode != Mode::Prod, health_listener };
            tasks.extend(serve_grpc(listener, &local, stopped.clone(), grpc).await?);
            Some(addr)
        };

        let http_addr = match gateway {
            Some((services, throttle)) => {
                let listener = TcpListener::bind(config.http_socket_addr()?)
                    .await
                    .with_context(|| format!("WARDEN_HTTP_ADDR: cannot listen on {}", config.http_addr))?;
                let addr = listener.local_addr()?;
                let state =
                    AppState::new(services, config.issuer.clone(), warden_gateway::metrics_recorder(), throttle);
                let app = warden_gateway::router(state);
                let mut stopped = stopped.clone();
                tasks.push(tokio::spawn(async move {
                    let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                        .with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        });
                    if let Err(e) = serve.await {
                        tracing::error!(error = %e, "http server failed");
                    }
                }));
                Some(addr)
            }
            None => None,
        };
        let metrics_addr = match config.metrics_socket_addr()? {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("WARDEN_METRICS_ADDR: cannot listen on {addr}"))?;
                let bound = listener.local_addr()?;
                let mut stopped = stopped.clone();
                let stop = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = warden_common::metrics::serve(listener, stop).await {
                        tracing::error!(error = %e, "metrics server failed");
                    }
                }));
                Some(bound)
            }
            None => None,
        };
        tracing::info!(service = %role, http = ?http_addr, grpc = ?grpc_addr, metrics = ?metrics_addr, "warden is serving");
        Ok(Warden { http_addr, grpc_addr, health_addr, metrics_addr, tls, local, stop, tasks })
    }

    /// Stops accepting, lets in-flight requests finish (bounded), and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let drain = async {
            for task in self.tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            tracing::warn!("shutdown: some requests did not finish in time");
        }
    }
}

/// How the gRPC listener is served.
struct GrpcOptions<'a> {
    /// Mutual TLS: plaintext and callers without a CA-signed certificate are refused.
    tls: Option<&'a Tls>,
    /// gRPC reflection (off in prod).
    reflection: bool,
    /// A plaintext listener with grpc.health.v1 only, for probes that cannot speak mTLS
    /// (the kubelet's native gRPC probes).
    health_listener: Option<TcpListener>,
}

/// Serves this process's gRPC services with health (SERVING only while dependencies
/// answer) and, outside prod, reflection.
async fn serve_grpc(
    listener: TcpListener,
    local: &LocalServices,
    mut stopped: watch::Receiver<bool>,
    options: GrpcOptions<'_>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection = if options.reflection {
        Some(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(warden_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()?,
        )
    } else {
        None
    };
    let auth = local.auth.clone().map(|a| warden_auth::grpc::server(a).max_decoding_message_size(MAX_GRPC_MESSAGE));
    let tokens =
        local.tokens.clone().map(|t| warden_token::grpc::server(t).max_decoding_message_size(MAX_GRPC_MESSAGE));
    let keys = local.keys.clone().map(|k| warden_key::grpc::server(k).max_decoding_message_size(MAX_GRPC_MESSAGE));
    let rbac = local.rbac.clone().map(|r| warden_rbac::grpc::server(r).max_decoding_message_size(MAX_GRPC_MESSAGE));

    // Liveness must not depend on the database or Redis: an outage should take replicas out
    // of rotation (readiness), not restart them all. This name is SERVING while the process
    // runs.
    reporter.set_service_status(LIVENESS_SERVICE, tonic_health::ServingStatus::Serving).await;
    let watched = local.clone();
    let health_stop = stopped.clone();
    tokio::spawn(async move {
        loop {
            if *health_stop.borrow() {
                // Draining: tell load balancers to stop sending work.
                reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
                return;
            }
            report_health(&reporter, &watched).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });

    let mut tasks = Vec::new();
    if let Some(listener) = options.health_listener {
        let health = health.clone();
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let server = tonic::transport::Server::builder().add_service(health);
            if let Err(e) = server.serve_with_incoming_shutdown(incoming, shutdown).await {
                tracing::error!(error = %e, "grpc health server failed");
            }
        }));
    }
    let router = tonic::transport::Server::builder()
        // Callers reconnect now and then (GOAWAY; calls in flight finish, new ones go to a
        // fresh connection): load spreads over replicas added behind one address since, and
        // no connection outlives a retired certificate or CA for long.
        .max_connection_age(MAX_CONNECTION_AGE)
        .max_connection_age_grace(MAX_CONNECTION_AGE_GRACE)
        .layer(grpc::ObserveLayer)
        .layer(crate::grpc_limits::layer())
        .add_service(health)
        .add_optional_service(reflection)
        .add_optional_service(auth)
        .add_optional_service(tokens)
        .add_optional_service(keys)
        .add_optional_service(rbac);
    let tls = options.tls.cloned();
    tasks.push(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        // Small request/response pairs: without TCP_NODELAY, Nagle + delayed ACK holds each
        // reply ~40 ms on a busy connection (split-mode refresh went 346 -> 2,025/s with it).
        // The TLS listener sets it too, and shakes hands with the certificates current when
        // each connection comes (they are reloaded).
        let served = match tls {
            Some(tls) => router.serve_with_incoming_shutdown(tls.incoming(listener), shutdown).await,
            None => {
                let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                router.serve_with_incoming_shutdown(incoming, shutdown).await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "grpc server failed");
        }
    }));
    Ok(tasks)
}

async fn report_health(reporter: &tonic_health::server::HealthReporter, local: &LocalServices) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let status = |ok: bool| if ok { Serving } else { NotServing };
    let mut all = true;
    if let Some(a) = &local.auth {
        let ok = warden_auth::AuthApi::ready(a.as_ref()).await;
        all &= ok;
        reporter.set_service_status("warden.auth.v1.AuthService", status(ok)).await;
    }
    if let Some(t) = &local.tokens {
        let ok = warden_token::TokenApi::ready(t.as_ref()).await;
        all &= ok;
        reporter.set_service_status("warden.token.v1.TokenService", status(ok)).await;
    }
    if let Some(k) = &local.keys {
        let ok = warden_key::KeyApi::ready(k.as_ref()).await;
        all &= ok;
        reporter.set_service_status("warden.key.v1.KeyService", status(ok)).await;
    }
    if let Some(r) = &local.rbac {
        let ok = warden_rbac::RbacApi::ready(r.as_ref()).await;
        all &= ok;
        reporter.set_service_status("warden.rbac.v1.RbacService", status(ok)).await;
    }
    reporter.set_service_status("", status(all)).await;
}
