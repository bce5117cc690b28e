//! Test environments: a migrated database, optionally Redis, and a clock the test moves.
use fred::prelude::*;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use std::path::PathBuf;
use std::sync::Arc;
use warden_common::clock::{OffsetClock, SharedClock};
use warden_common::db::Db;
use warden_common::{Error, ErrorCode};
use warden_key::{CreatedApiKey, KeyApi, KeyService, NewApiKey};

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        warden_key::migrations::migrations()
    }
}

pub(crate) struct Env {
    pub(crate) db: Db,
    pub(crate) redis_url: Option<String>,
    pub(crate) clock: Arc<OffsetClock>,
    /// The SQLite file (and its WAL), to check what reaches the disk.
    pub(crate) sqlite_path: Option<PathBuf>,
}

impl Env {
    pub(crate) async fn sqlite() -> Env {
        crate::logs::capture();
        let url = warden_common::testing::sqlite_url();
        let path = url.trim_start_matches("sqlite://").split('?').next().map(PathBuf::from);
        let db = warden_common::db::connect(&url).await.expect("open sqlite");
        warden_common::db::migrate::<Migrator>(&url, &db).await.expect("migrate");
        Env { db, redis_url: None, clock: Arc::default(), sqlite_path: path }
    }

    /// PostgreSQL + Redis, or `None` when either is not configured (the skip is printed).
    pub(crate) async fn postgres_redis(test: &str) -> Option<Env> {
        crate::logs::capture();
        let redis_url = warden_common::testing::redis_url(test)?;
        let url = warden_common::testing::postgres_url(test).await?;
        let db = warden_common::db::connect(&url).await.expect("connect postgres");
        warden_common::db::migrate::<Migrator>(&url, &db).await.expect("migrate");
        Some(Env { db, redis_url: Some(redis_url), clock: Arc::default(), sqlite_path: None })
    }

    pub(crate) fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    pub(crate) async fn redis(&self) -> Option<Client> {
        match &self.redis_url {
            Some(url) => Some(warden_common::redis::connect(url).await.expect("connect redis")),
            None => None,
        }
    }

    /// One replica: its own cache, limiter and Redis connections, shared database and clock.
    pub(crate) async fn replica(&self) -> KeyService {
        self.replica_with_pepper(None).await
    }

    pub(crate) async fn replica_with_pepper(&self, pepper: Option<&str>) -> KeyService {
        KeyService::new(self.db.clone(), self.redis().await, self.clock(), pepper.map(str::to_owned))
            .await
            .expect("key service")
    }

    /// Every value of every `api_keys` row, as text (bytes lossily), for secret scans.
    pub(crate) async fn raw_rows(&self) -> Vec<String> {
        let backend = self.db.get_database_backend();
        if backend == DbBackend::Postgres {
            let rows = self
                .db
                .query_all_raw(Statement::from_string(backend, "SELECT CAST(api_keys AS text) FROM api_keys"))
                .await
                .expect("select");
            return rows.iter().map(|r| r.try_get_by_index::<String>(0).expect("row text")).collect();
        }
        let rows =
            self.db.query_all_raw(Statement::from_string(backend, "SELECT * FROM api_keys")).await.expect("select");
        rows.iter()
            .map(|row| {
                let mut text = String::new();
                for i in 0..row.column_names().len() {
                    if let Ok(Some(s)) = row.try_get_by_index::<Option<String>>(i) {
                        text.push_str(&s);
                    } else if let Ok(Some(b)) = row.try_get_by_index::<Option<Vec<u8>>>(i) {
                        text.push_str(&String::from_utf8_lossy(&b));
                    }
                    text.push('|');
                }
                text
            })
            .collect()
    }

    pub(crate) async fn count_rows(&self) -> i64 {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(Statement::from_string(backend, "SELECT COUNT(*) FROM api_keys"))
            .await
            .expect("count")
            .expect("one row");
        row.try_get_by_index::<i64>(0).expect("count")
    }
}

/// Runs a test body on SQLite, and on PostgreSQL + Redis when available.
#[macro_export]
macro_rules! on_every_backend {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name(&$crate::support::Env::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres_redis() {
                if let Some(env) = $crate::support::Env::postgres_redis(stringify!($name)).await {
                    super::$name(&env).await;
                }
            }
        }
    };
}

pub(crate) fn new_key(owner: uuid::Uuid, name: &str) -> NewApiKey {
    NewApiKey {
        owner_id: owner,
        name: name.to_owned(),
        scopes: vec!["users:read".into()],
        expires_in: None,
        rate_limit_per_minute: None,
    }
}

pub(crate) async fn create(api: &dyn KeyApi, new: NewApiKey) -> CreatedApiKey {
    api.generate_api_key(new).await.expect("generate")
}

#[track_caller]
pub(crate) fn assert_code<T: std::fmt::Debug>(result: Result<T, Error>, code: ErrorCode) -> Error {
    match result {
        Err(e) if e.code == code => e,
        other => panic!("expected {code}, got {other:?}"),
    }
}

/// Replaces the secret part of a key and recomputes the checksum: a well-formed key with the
/// right id and a wrong secret, which only the hash comparison can reject.
pub(crate) fn forge(key: &str) -> String {
    let body = &key[..key.len() - 6];
    let (head, secret) = body.rsplit_once('_').expect("key has a separator");
    let flipped: String = secret.chars().rev().collect();
    let body = format!("{head}_{flipped}");
    format!("{body}{}", base62_6(crc32(body.as_bytes())))
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn base62_6(mut v: u32) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = A[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}
