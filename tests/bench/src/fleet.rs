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
    /// How each process was started (same order as `procs`), to start it again.
    launches: Vec<Launch>,
    /// The first gateway (the only one unless started with replicas).
    pub http: SocketAddr,
    /// Every gateway replica.
    pub gateways: Vec<SocketAddr>,
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

/// Each split-mode process's runtime threads (`WARDEN_WORKER_THREADS`): one, on tokio's
/// single-threaded scheduler. The five processes share the bench host's two cores; spare
/// request threads would mostly wake and steal from each other. Auth too: its hashing
/// threads are its own, and on one request thread it spent 30-56 % less CPU per bearer
/// request and per refresh (BENCHMARKS.md, session 12). `--warden-env WARDEN_WORKER_THREADS=N`
/// overrides it for all (`base_env` has already put it in).
const SPLIT_WORKER_THREADS: &str = "1";

/// One process of the fleet: what it runs and where it listens.
#[derive(Clone, Debug)]
struct Launch {
    name: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    listen: SocketAddr,
}

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

impl Launch {
    fn spawn(&self, warden: &Path, dir: &Path) -> anyhow::Result<Proc> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Proc::spawn(&self.name, warden, &args, &self.env, dir)
    }
}

impl Fleet {
    pub async fn start(mode: Mode, setup: &Setup) -> anyhow::Result<Fleet> {
        let (dir, password) = Self::workdir()?;
        match mode {
            Mode::Embedded => Self::embedded(setup, dir, password).await,
            Mode::Split => Self::split(setup, dir, password, 1).await,
        }
    }

    /// Split mode with `replicas` processes of every service (gateways included), each
    /// service's clients balanced over all of its replicas.
    pub async fn start_replicated(setup: &Setup, replicas: usize) -> anyhow::Result<Fleet> {
        let (dir, password) = Self::workdir()?;
        Self::split(setup, dir, password, replicas.max(1)).await
    }

    fn workdir() -> anyhow::Result<(PathBuf, String)> {
        let dir = std::env::temp_dir().join(format!("warden-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        Ok((dir, format!("bench-admin-{}", uuid::Uuid::new_v4().simple())))
    }

    async fn embedded(setup: &Setup, dir: PathBuf, password: String) -> anyhow::Result<Fleet> {
        let (http_port, grpc_port) = (free_port()?, free_port()?);
        let mut env = base_env(setup, http_port, &password);
        env.insert("WARDEN_HTTP_ADDR".into(), format!("127.0.0.1:{http_port}"));
        env.insert("WARDEN_GRPC_ADDR".into(), format!("127.0.0.1:{grpc_port}"));
        env.insert("WARDEN_DATABASE_URL".into(), format!("sqlite://{}/warden.db?mode=rwc", dir.display()));
        let http: SocketAddr = ([127, 0, 0, 1], http_port).into();
        let launch = Launch { name: "warden".into(), args: vec!["serve".into()], env, listen: http };
        let mut proc = launch.spawn(&setup.warden, &dir)?;
        wait_listening(&mut proc, http, READY).await?;
        wait_listening(&mut proc, ([127, 0, 0, 1], grpc_port).into(), READY).await?;
        let grpc = format!("http://127.0.0.1:{grpc_port}");
        Ok(Fleet {
            mode: Mode::Embedded,
            procs: vec![proc],
            launches: vec![launch],
            http,
            gateways: vec![http],
            grpc_auth: grpc.clone(),
            grpc_rbac: grpc,
            password,
            redis_url: None,
            dir,
            pg: None,
            redis_server: None,
        })
    }

    async fn split(setup: &Setup, dir: PathBuf, password: String, replicas: usize) -> anyhow::Result<Fleet> {
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
        let mut fleet = Fleet {
            mode: Mode::Split,
            procs: Vec::new(),
            launches: Vec::new(),
            http: ([127, 0, 0, 1], 0).into(),
            gateways: Vec::new(),
            grpc_auth: String::new(),
            grpc_rbac: String::new(),
            password: password.clone(),
            redis_url: Some(redis_url.clone()),
            dir: dir.clone(),
            pg: Some((admin_url, db_name)),
            redis_server,
        };
        let database_url = fleet.database_url().context("PostgreSQL URL has no database path")?;
        // From here on, a failure still drops the database (the caller stops the fleet).
        match fleet.start_split(setup, &database_url, &redis_url, replicas).await {
            Ok(()) => Ok(fleet),
            Err(e) => {
                fleet.stop().await;
                Err(e)
            }
        }
    }

    async fn start_split(
        &mut self,
        setup: &Setup,
        database_url: &str,
        redis_url: &str,
        replicas: usize,
    ) -> anyhow::Result<()> {
        let http_ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect::<anyhow::Result<_>>()?;
        let mut ports: Vec<(&str, Vec<u16>)> = Vec::new();
        for service in ["token", "rbac", "key", "auth"] {
            ports.push((service, (0..replicas).map(|_| free_port()).collect::<anyhow::Result<_>>()?));
        }
        let mut env = base_env(setup, http_ports[0], &self.password);
        env.insert("WARDEN_DATABASE_URL".into(), database_url.to_owned());
        env.insert("WARDEN_REDIS_URL".into(), redis_url.to_owned());
        for (service, ports) in &ports {
            let endpoints: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
            env.insert(format!("WARDEN_{}_ENDPOINTS", service.to_uppercase()), endpoints.join(","));
        }
        let mut migrate = Proc::spawn("migrate", &setup.warden, &["migrate"], &env, &self.dir)?;
        let status = migrate.wait_exit(READY).await?;
        anyhow::ensure!(status.success(), "warden migrate failed:\n{}", migrate.tail());

        env.entry("WARDEN_WORKER_THREADS".into()).or_insert_with(|| SPLIT_WORKER_THREADS.into());
        let mut launches = Vec::new();
        for (service, ports) in &ports {
            for (i, port) in ports.iter().enumerate() {
                let mut env = env.clone();
                env.insert("WARDEN_GRPC_ADDR".into(), format!("127.0.0.1:{port}"));
                let name = if replicas == 1 { service.to_string() } else { format!("{service}-{i}") };
                let args = vec!["serve".into(), "--service".into(), service.to_string()];
                launches.push(Launch { name, args, env, listen: ([127, 0, 0, 1], *port).into() });
            }
        }
        for (i, port) in http_ports.iter().enumerate() {
            let mut env = env.clone();
            env.insert("WARDEN_HTTP_ADDR".into(), format!("127.0.0.1:{port}"));
            let name = if replicas == 1 { "gateway".to_owned() } else { format!("gateway-{i}") };
            let args = vec!["serve".into(), "--service".into(), "gateway".into()];
            launches.push(Launch { name, args, env, listen: ([127, 0, 0, 1], *port).into() });
        }
        for launch in launches {
            let mut proc = launch.spawn(&setup.warden, &self.dir)?;
            wait_listening(&mut proc, launch.listen, READY).await?;
            self.procs.push(proc);
            self.launches.push(launch);
        }
        self.gateways = http_ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
        self.http = self.gateways[0];
        let first = |name: &str| ports.iter().find(|(s, _)| *s == name).map(|(_, p)| p[0]).expect("service port");
        self.grpc_auth = format!("http://127.0.0.1:{}", first("auth"));
        self.grpc_rbac = format!("http://127.0.0.1:{}", first("rbac"));
        Ok(())
    }

    /// Index of the process named `name` (`auth-0`, `gateway-1`, ...).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.procs.iter().position(|p| p.name == name)
    }

    /// Kills process `index` (SIGKILL, a crash) and waits for it to exit.
    pub async fn kill_one(&mut self, index: usize, within: Duration) -> anyhow::Result<()> {
        let proc = &mut self.procs[index];
        proc.kill();
        proc.wait_exit(within).await?;
        Ok(())
    }

    /// Starts process `index` again, as it was first started, and waits until it listens.
    pub async fn restart(&mut self, index: usize, warden: &Path) -> anyhow::Result<()> {
        let launch = &self.launches[index];
        let mut proc = launch.spawn(warden, &self.dir)?;
        wait_listening(&mut proc, launch.listen, READY).await?;
        self.procs[index] = proc;
        Ok(())
    }

    /// Logs the bootstrap admin in and makes the scenarios' fixtures (see [`crate::fixtures::prepare`]).
    pub async fn fixture(&self) -> anyhow::Result<crate::fixtures::Fixture> {
        crate::fixtures::prepare(self.http, self.grpc_auth.clone(), self.grpc_rbac.clone(), ADMIN, &self.password).await
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

    /// The fleet's PostgreSQL database (split mode): the admin URL's server, the fleet's name.
    pub fn database_url(&self) -> Option<String> {
        let (admin_url, name) = self.pg.as_ref()?;
        Some(format!("{}/{name}", admin_url.rsplit_once('/')?.0))
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
