//! The flags that say which Warden binary runs and on which stores, shared by `warden-bench`
//! and `warden-drill`.
use crate::fleet::Setup;
use crate::redis_mem::with_db;
use std::path::PathBuf;

#[derive(Clone, Debug, clap::Args)]
pub struct ProcessArgs {
    /// The warden binary (default: `warden` next to this binary).
    #[arg(long)]
    pub warden_bin: Option<PathBuf>,
    /// PostgreSQL server for split mode; a database of the run's own is created and dropped.
    #[arg(long, env = "WARDEN_TEST_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
    /// Redis server for split mode.
    #[arg(long, env = "WARDEN_TEST_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Redis database index the run uses (its `warden:*` keys there are deleted at the end);
    /// 13 for warden-bench and 14 for warden-drill unless given, so the two never share one.
    #[arg(long)]
    pub redis_db: Option<u8>,
    /// Start a private `redis-server` (from PATH) instead of using --redis-url: nothing else on
    /// the machine can touch (or flush) its data or share its CPU.
    #[arg(long)]
    pub private_redis: bool,
    /// Log filter for the Warden processes (warden-bench: `info`, the audit log being part of
    /// the cost; warden-drill: `warn`).
    #[arg(long)]
    pub rust_log: Option<String>,
}

/// What a binary uses where the flags are not given.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    pub redis_db: u8,
    pub rust_log: &'static str,
}

impl ProcessArgs {
    pub fn redis_db(&self, defaults: Defaults) -> u8 {
        self.redis_db.unwrap_or(defaults.redis_db)
    }

    /// The processes' setup; fails if the binary is missing.
    pub fn setup(&self, defaults: Defaults, extra_env: Vec<(String, String)>) -> anyhow::Result<Setup> {
        let warden = match &self.warden_bin {
            Some(path) => path.clone(),
            None => std::env::current_exe()?.with_file_name("warden"),
        };
        // The processes run in a directory of their own: the path must not be relative.
        let warden = std::path::absolute(&warden)?;
        anyhow::ensure!(
            warden.is_file(),
            "{} not found: build it (`cargo build --release -p warden`) or pass --warden-bin",
            warden.display()
        );
        Ok(Setup {
            warden,
            postgres_url: Some(self.postgres_url.clone()),
            redis_url: Some(with_db(&self.redis_url, self.redis_db(defaults))),
            private_redis: self.private_redis,
            rust_log: self.rust_log.clone().unwrap_or_else(|| defaults.rust_log.to_owned()),
            extra_env,
        })
    }
}
