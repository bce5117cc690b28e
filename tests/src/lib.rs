//! The in-process test harness: starts Warden on ephemeral ports, either all in one process
//! or as separate services talking gRPC, on SQLite or on PostgreSQL + Redis, with a fresh
//! database per test, and hands out typed clients.
pub mod proxy;

use std::sync::Arc;
use tonic::transport::Channel;
use warden::{ServiceRole, Warden};
use warden_common::Config;
use warden_common::clock::{OffsetClock, SharedClock};
use warden_common::testing;
use warden_proto::auth::v1::auth_service_client::AuthServiceClient;

pub const ADMIN_PASSWORD: &str = "bootstrap-admin-password-1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    PostgresRedis,
}

/// A running Warden for one test.
pub struct TestWarden {
    /// The bootstrap admin's username (password [`ADMIN_PASSWORD`]).
    pub admin: String,
    pub base_url: String,
    pub grpc_url: String,
    pub http: reqwest::Client,
    pub clock: Arc<OffsetClock>,
    pub config: Config,
    processes: Vec<Warden>,
}

/// Settings every test starts from: ephemeral ports, a bootstrap admin, fast hashing pool.
pub fn base_config(database_url: String, redis_url: Option<String>) -> Config {
    Config {
        database_url,
        redis_url,
        http_addr: "127.0.0.1:0".into(),
        grpc_addr: "127.0.0.1:0".into(),
        // Unique per test: lockout counters in the shared Redis are keyed by username.
        bootstrap_admin_username: Some(unique("admin")),
        bootstrap_admin_password: Some(ADMIN_PASSWORD.into()),
        // Tests share one Redis and one client address; throttling has its own tests.
        client_rate_limit: 0,
        ..Config::default()
    }
}

/// The database (and Redis) URLs for a backend, or `None` when the test must skip.
pub async fn backend_urls(backend: Backend, test: &str) -> Option<(String, Option<String>)> {
    match backend {
        Backend::Sqlite => Some((testing::sqlite_url(), None)),
        Backend::PostgresRedis => {
            let redis = testing::redis_url(test)?;
            let db = testing::postgres_url(test).await?;
            Some((db, Some(redis)))
        }
    }
}

impl TestWarden {
    /// All services in one process.
    pub async fn start(backend: Backend, test: &str) -> Option<TestWarden> {
        Self::start_with(backend, test, |_| {}).await
    }

    pub async fn start_with(backend: Backend, test: &str, adjust: impl FnOnce(&mut Config)) -> Option<TestWarden> {
        let (db, redis) = backend_urls(backend, test).await?;
        let mut config = base_config(db, redis);
        adjust(&mut config);
        Some(Self::start_config(config).await)
    }

    pub async fn start_config(config: Config) -> TestWarden {
        let clock = Arc::new(OffsetClock::default());
        let shared: SharedClock = clock.clone();
        let warden = Warden::start(config.clone(), ServiceRole::All, shared).await.expect("start warden");
        Self::from_processes(config, clock, vec![warden])
    }

    /// Every service as its own server talking gRPC (split mode), gateway in front.
    pub async fn start_split(db: String, redis: Option<String>) -> TestWarden {
        Self::start_split_inner(db, redis, None).await.0
    }

    /// Split mode with its peers reaching one backend service (token, rbac or key) only
    /// through a [`proxy::FaultProxy`], which the test can then stall or cut.
    pub async fn start_split_behind_proxy(
        db: String,
        redis: Option<String>,
        role: ServiceRole,
    ) -> (TestWarden, proxy::FaultProxy) {
        let (w, proxy) = Self::start_split_inner(db, redis, Some(role)).await;
        (w, proxy.expect("a proxy for that service"))
    }

    async fn start_split_inner(
        db: String,
        redis: Option<String>,
        behind_proxy: Option<ServiceRole>,
    ) -> (TestWarden, Option<proxy::FaultProxy>) {
        let config = base_config(db, redis);
        let clock = Arc::new(OffsetClock::default());
        let shared: SharedClock = clock.clone();
        let mut processes = Vec::new();
        let mut endpoints = std::collections::HashMap::new();
        let mut fault_proxy = None;
        for role in [ServiceRole::Token, ServiceRole::Rbac, ServiceRole::Key] {
            let w = Warden::start(config.clone(), role, shared.clone()).await.expect("start service");
            let mut addr = w.grpc_addr.expect("grpc");
            if behind_proxy == Some(role) {
                let p = proxy::FaultProxy::start(addr).await;
                addr = p.addr;
                fault_proxy = Some(p);
            }
            endpoints.insert(role, format!("http://{addr}"));
            processes.push(w);
        }
        let peers = Config {
            token_endpoints: endpoints.get(&ServiceRole::Token).cloned(),
            rbac_endpoints: endpoints.get(&ServiceRole::Rbac).cloned(),
            key_endpoints: endpoints.get(&ServiceRole::Key).cloned(),
            ..config.clone()
        };
        let auth = Warden::start(peers.clone(), ServiceRole::Auth, shared.clone()).await.expect("start auth");
        let auth_endpoint = format!("http://{}", auth.grpc_addr.expect("grpc"));
        processes.push(auth);
        let gateway_config = Config { auth_endpoints: Some(auth_endpoint), ..peers };
        let gateway = Warden::start(gateway_config, ServiceRole::Gateway, shared).await.expect("start gateway");
        processes.push(gateway);
        (Self::from_processes(config, clock, processes), fault_proxy)
    }

    fn from_processes(config: Config, clock: Arc<OffsetClock>, processes: Vec<Warden>) -> TestWarden {
        let http_addr = processes.iter().find_map(|p| p.http_addr).expect("a gateway");
        let grpc_addr = processes.iter().find_map(|p| p.local.auth.as_ref().and(p.grpc_addr)).expect("an auth service");
        TestWarden {
            admin: config.bootstrap_admin_username.clone().unwrap_or_default(),
            base_url: format!("http://{http_addr}"),
            grpc_url: format!("http://{grpc_addr}"),
            http: reqwest::Client::new(),
            clock,
            config,
            processes,
        }
    }

    /// The in-process services of the process that runs them (all-in-one, or each split service).
    pub fn local(&self) -> warden::LocalServices {
        let mut all = warden::LocalServices::default();
        for p in &self.processes {
            all.auth = all.auth.or(p.local.auth.clone());
            all.tokens = all.tokens.or(p.local.tokens.clone());
            all.keys = all.keys.or(p.local.keys.clone());
            all.rbac = all.rbac.or(p.local.rbac.clone());
        }
        all
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn auth_client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::connect(self.grpc_url.clone()).await.expect("connect to auth grpc")
    }

    pub async fn grpc_channel(&self) -> Channel {
        Channel::from_shared(self.grpc_url.clone()).expect("url").connect().await.expect("connect grpc")
    }

    /// POST JSON to a path.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(&body).send().await.expect("request")
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post("/api/v1/auth/login", serde_json::json!({ "username": username, "password": password })).await
    }

    /// Logs in and returns the JSON answer, asserting success.
    pub async fn login_ok(&self, username: &str, password: &str) -> serde_json::Value {
        let response = self.login(username, password).await;
        assert_eq!(response.status(), 200, "login of {username} failed");
        response.json().await.expect("json")
    }

    pub async fn admin_token(&self) -> String {
        self.login_ok(&self.admin, ADMIN_PASSWORD).await["access_token"].as_str().expect("token").to_owned()
    }

    /// POST JSON to a path with a bearer token.
    pub async fn post_with(&self, path: &str, token: &str, body: serde_json::Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(token).json(&body).send().await.expect("request")
    }

    pub async fn get_with(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// Creates a user through the admin API.
    pub async fn create_user(
        &self,
        admin_token: &str,
        username: &str,
        password: &str,
        roles: &[&str],
    ) -> serde_json::Value {
        let response = self
            .http
            .post(self.url("/api/v1/admin/users"))
            .bearer_auth(admin_token)
            .json(&serde_json::json!({ "username": username, "password": password, "roles": roles }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "create user {username}");
        response.json().await.expect("json")
    }

    /// Creates a role with a unique name (prefix + random suffix) and returns the name.
    pub async fn create_role(&self, admin_token: &str, prefix: &str, permissions: &[&str]) -> String {
        let name = format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let response = self
            .http
            .post(self.url("/api/v1/admin/roles"))
            .bearer_auth(admin_token)
            .json(&serde_json::json!({ "name": name, "permissions": permissions }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "create role {name}");
        name
    }

    /// Split mode: stops the process that runs only `role` (a backend going down).
    pub async fn stop_service(&mut self, role: ServiceRole) {
        let only = |p: &Warden| {
            let l = &p.local;
            let runs = [l.auth.is_some(), l.tokens.is_some(), l.keys.is_some(), l.rbac.is_some()];
            let want = match role {
                ServiceRole::Auth => [true, false, false, false],
                ServiceRole::Token => [false, true, false, false],
                ServiceRole::Key => [false, false, true, false],
                ServiceRole::Rbac => [false, false, false, true],
                _ => panic!("stop_service is for one backend service"),
            };
            runs == want
        };
        let index = self.processes.iter().position(only).expect("a process running only that service");
        self.processes.remove(index).shutdown().await;
    }

    pub async fn shutdown(self) {
        for p in self.processes.into_iter().rev() {
            p.shutdown().await;
        }
    }
}

/// A unique username for a test, so tests sharing Redis never collide.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Runs each listed `async fn(TestWarden)` on SQLite and on PostgreSQL + Redis.
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => { $(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(w) = $crate::TestWarden::start($crate::Backend::Sqlite, stringify!($test)).await {
                    super::$test(w).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_redis() {
                if let Some(w) = $crate::TestWarden::start($crate::Backend::PostgresRedis, stringify!($test)).await {
                    super::$test(w).await;
                }
            }
        }
    )* };
}
