//! Starting Warden as real processes: all-in-one on a temporary SQLite file, or split mode
//! (token, rbac, key, auth and gateway, each its own process) on a fresh PostgreSQL database
//! and a Redis database index of its own.
use crate::procs::{self, Proc, free_port, wait_listening};
use anyhow::Context;
use sea_orm::{ConnectionTrait, Database};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Mode {
    Embedded,
    Split,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Embedded => "embedded (all-in-one, SQLite)",
            Mode::Split => "split (5 processes, PostgreSQL + Redis)",
        })
    }
}

/// Where to find the binary and the stores.
#[derive(Clone, Debug)]
pub struct Setup {
    pub warden: PathBuf,
    pub postgres_url: Option<String>,
    /// Redis URL with the bench's own database index.
    pub redis_url: Option<String>,
    /// Start a private `redis-server` (from PATH) for split mode instead of using `redis_url`.
    pub private_redis: bool,
    pub rust_log: String,
    /// Set on every Warden process after the bench's own settings.
    pub extra_env: Vec<(String, String)>,
}

pub const ADMIN: &str = "bench-admin";

pub struct Fleet {
    pub mode: Mode,
    pub procs: Vec<Proc>,
    pub http: SocketAddr,
    pub grpc_auth: String,
    pub grpc_rbac: String,
    pub password: String,
    pub redis_url: Option<String>,
    dir: PathBuf,
    pg: Option<(String, String)>,
    /// The private redis-server, when the bench started one.
    redis_server: Option<Proc>,
}

const READY: Duration = Duration::from_secs(60);

fn base_env(setup: &Setup, http_port: u16, password: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("WARDEN_BOOTSTRAP_ADMIN_USERNAME", ADMIN.into());
    set("WARDEN_BOOTSTRAP_ADMIN_PASSWORD", password.into());
    // One client address sends everything: per-client throttling would measure the throttle.
    set("WARDEN_CLIENT_RATE_LIMIT", "0".into());
    set("WARDEN_LOCKOUT_THRESHOLD", "1000000".into());
    set("WARDEN_ISSUER", format!("http://127.0.0.1:{http_port}"));
    // Sessions the bench leaves behind in Redis expire within the hour.
    set("WARDEN_SESSION_MAX_AGE", "3600".into());
    set("WARDEN_REFRESH_TOKEN_TTL", "3600".into());
    set("RUST_LOG", setup.rust_log.clone());
    set("NO_COLOR", "1".into());
    env.extend(setup.extra_env.iter().cloned());
    env
}

impl Fleet {
    pub async fn start(mode: Mode, setup: &Setup) -> anyhow::Result<Fleet> {
        let dir = std::env::temp_dir().join(format!("warden-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let password = format!("bench-admin-{}", uuid::Uuid::new_v4().simple());
        match mode {
            Mode::Embedded => Self::embedded(setup, dir, password).await,
            Mode::Split => Self::split(setup, dir, password).await,
        }
    }

    async fn embedded(setup: &Setup, dir: PathBuf, password: String) -> anyhow::Result<Fleet> {
        let (http_port, grpc_port) = (free_port()?, free_port()?);
        let mut env = base_env(setup, http_port, &password);
        env.insert("WARDEN_HTTP_ADDR".into(), format!("127.0.0.1:{http_port}"));
        env.insert("WARDEN_GRPC_ADDR".into(), format!("127.0.0.1:{grpc_port}"));
        env.insert("WARDEN_DATABASE_URL".into(), format!("sqlite://{}/warden.db?mode=rwc", dir.display()));
        let mut proc = Proc::spawn("warden", &setup.warden, &["serve"], &env, &dir)?;
        let http: SocketAddr = ([127, 0, 0, 1], http_port).into();
        wait_listening(&mut proc, http, READY).await?;
        wait_listening(&mut proc, ([127, 0, 0, 1], grpc_port).into(), READY).await?;
        let grpc = format!("http://127.0.0.1:{grpc_port}");
        Ok(Fleet {
            mode: Mode::Embedded,
            procs: vec![proc],
            http,
            grpc_auth: grpc.clone(),
            grpc_rbac: grpc,
            password,
            redis_url: None,
            dir,
            pg: None,
            redis_server: None,
        })
    }

    async fn split(setup: &Setup, dir: PathBuf, password: String) -> anyhow::Result<Fleet> {
        let admin_url = setup.postgres_url.clone().context("split mode needs a PostgreSQL URL")?;
        let (redis_server, redis_url) = if setup.private_redis {
            let port = free_port()?;
            let args = ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
            let mut server = Proc::spawn("redis", Path::new("redis-server"), &args, &BTreeMap::new(), &dir)?;
            wait_listening(&mut server, ([127, 0, 0, 1], port).into(), READY).await?;
            (Some(server), format!("redis://127.0.0.1:{port}/0"))
        } else {
            (None, setup.redis_url.clone().context("split mode needs a Redis URL")?)
        };
        let db_name = format!("warden_bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let admin = Database::connect(admin_url.as_str()).await.context("connect to PostgreSQL")?;
        admin.execute_unprepared(&format!("CREATE DATABASE {db_name}")).await?;
        admin.close().await.ok();
        let (prefix, _) = admin_url.rsplit_once('/').context("PostgreSQL URL has no database path")?;
        let database_url = format!("{prefix}/{db_name}");
        let mut fleet = Fleet {
            mode: Mode::Split,
            procs: Vec::new(),
            http: ([127, 0, 0, 1], 0).into(),
            grpc_auth: String::new(),
            grpc_rbac: String::new(),
            password: password.clone(),
            redis_url: Some(redis_url.clone()),
            dir: dir.clone(),
            pg: Some((admin_url, db_name)),
            redis_server,
        };
        // From here on, a failure still drops the database (the caller stops the fleet).
        match fleet.start_split(setup, &database_url, &redis_url).await {
            Ok(()) => Ok(fleet),
            Err(e) => {
                fleet.stop().await;
                Err(e)
            }
        }
    }

    async fn start_split(&mut self, setup: &Setup, database_url: &str, redis_url: &str) -> anyhow::Result<()> {
        let http_port = free_port()?;
        let ports: Vec<(&str, u16)> = ["token", "rbac", "key", "auth"]
            .into_iter()
            .map(|s| Ok((s, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let mut env = base_env(setup, http_port, &self.password);
        env.insert("WARDEN_DATABASE_URL".into(), database_url.to_owned());
        env.insert("WARDEN_REDIS_URL".into(), redis_url.to_owned());
        for (service, port) in &ports {
            env.insert(format!("WARDEN_{}_ENDPOINTS", service.to_uppercase()), format!("http://127.0.0.1:{port}"));
        }
        let mut migrate = Proc::spawn("migrate", &setup.warden, &["migrate"], &env, &self.dir)?;
        let status = migrate.wait_exit(READY).await?;
        anyhow::ensure!(status.success(), "warden migrate failed:\n{}", migrate.tail());

        for (service, port) in &ports {
            let mut env = env.clone();
            env.insert("WARDEN_GRPC_ADDR".into(), format!("127.0.0.1:{port}"));
            let mut proc = Proc::spawn(service, &setup.warden, &["serve", "--service", service], &env, &self.dir)?;
            wait_listening(&mut proc, ([127, 0, 0, 1], *port).into(), READY).await?;
            self.procs.push(proc);
        }
        env.insert("WARDEN_HTTP_ADDR".into(), format!("127.0.0.1:{http_port}"));
        let mut gateway = Proc::spawn("gateway", &setup.warden, &["serve", "--service", "gateway"], &env, &self.dir)?;
        self.http = ([127, 0, 0, 1], http_port).into();
        wait_listening(&mut gateway, self.http, READY).await?;
        self.procs.push(gateway);
        let port = |name: &str| ports.iter().find(|(s, _)| *s == name).map(|(_, p)| *p).expect("service port");
        self.grpc_auth = format!("http://127.0.0.1:{}", port("auth"));
        self.grpc_rbac = format!("http://127.0.0.1:{}", port("rbac"));
        Ok(())
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.pid).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.procs.iter().map(|p| p.name.clone()).collect()
    }

    /// Current resident memory of each process, MiB.
    pub fn rss_mib(&self) -> Vec<f64> {
        self.procs.iter().map(|p| procs::status_kib(p.pid, "VmRSS").unwrap_or(0) as f64 / 1024.0).collect()
    }

    /// Fails if any process died (with its log).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.procs.iter_mut().try_for_each(Proc::check_alive)
    }

    /// Stops every process, drops the PostgreSQL database and the bench's Redis keys.
    pub async fn stop(self) {
        for proc in self.procs {
            proc.stop().await;
        }
        if let Some((admin_url, name)) = self.pg {
            match Database::connect(admin_url.as_str()).await {
                Ok(admin) => {
                    if let Err(e) =
                        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
                    {
                        eprintln!("warning: could not drop {name}: {e}");
                    }
                    admin.close().await.ok();
                }
                Err(e) => eprintln!("warning: could not drop {name}: {e}"),
            }
        }
        match self.redis_server {
            Some(server) => server.stop().await,
            None => {
                if let Some(url) = &self.redis_url
                    && let Err(e) = crate::redis_mem::delete_warden_keys(url).await
                {
                    eprintln!("warning: could not delete the bench's redis keys: {e:#}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
