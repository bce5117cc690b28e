//! Floors under the login target: each mode's shape with one Warden hash per request and no
//! other work. A login needs at least this much: the HTTP request, the hops between processes
//! that the mode has, and the hash, while database, Redis, token signing and the JSON around
//! them come on top. Judged in the same rounds as the logins (`login_rounds.rs`), the floor's
//! ratio is the best any login of that shape can reach on these cores.
//!
//! - Embedded: the bare axum server (`ceiling.rs`) answers `GET /login` after what an embedded
//!   login must do in its process, at its barest ([`LoginStore`]): one SQLite statement, the
//!   hash, another SQLite statement. (Until session 23 this floor had no store: `GET /hash`,
//!   which the flood's floor still asks for.)
//! - Split: the bare relay (`relay.rs`) whose first backend does what a split login must do
//!   in auth, at its barest ([`LoginStores`]): it reads PostgreSQL and Redis side by side,
//!   hashes, and writes Redis before it answers (the relay's `GET /login`). Split mode puts
//!   PostgreSQL and Redis on the same cores as the hash, so their share of a login belongs to
//!   the shape. The same relay's `GET /relay` beside those logins is the split flood's floor.
use fred::prelude::{Expiration, KeysInterface};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus};
use warden_auth::password::PasswordHasher;
use warden_common::clock::{Clock, SystemClock};
use warden_common::db::Db;
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

/// The stores around a split login's hash, each touched as Warden touches it but with the
/// least work: before the hash one PostgreSQL statement (the account) beside one Redis read
/// (the failure counter), after it one Redis write (the session). Both through Warden's own
/// connection settings (`warden_common::db`, `warden_common::redis`).
pub struct LoginStores {
    db: Db,
    redis: fred::clients::Client,
}

/// The floor's one Redis key; it expires a minute after the last write, so it needs no cleanup.
const SESSION_KEY: &str = "warden-bench:floor-session";

impl LoginStores {
    pub async fn connect(database_url: &str, redis_url: &str) -> anyhow::Result<LoginStores> {
        let db = warden_common::db::connect(database_url).await?;
        let redis = warden_common::redis::connect(redis_url).await?;
        Ok(LoginStores { db, redis })
    }

    async fn read(&self) -> anyhow::Result<()> {
        let account = self.db.query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT 1"));
        let counter = self.redis.get::<Option<String>, _>(SESSION_KEY);
        let (account, counter) = tokio::join!(account, counter);
        counter?;
        anyhow::ensure!(account?.is_some(), "PostgreSQL answered no row");
        Ok(())
    }

    async fn write(&self) -> anyhow::Result<()> {
        Ok(self.redis.set::<(), _, _>(SESSION_KEY, "session", Some(Expiration::EX(60)), None, false).await?)
    }
}

/// The store around an embedded login's hash, touched as Warden touches it but with the least
/// work: before the hash one SQLite statement (the account, by its unique key), after it
/// another (a session row inserted). Through Warden's own connection settings
/// (`warden_common::db`: WAL, its pool, no ping before use), so sqlx's worker thread per
/// connection and the pool's check on release belong to the shape, as they do to Warden.
pub struct LoginStore {
    db: Db,
}

/// The one account the floor reads.
const ACCOUNT: &str = "floor";

impl LoginStore {
    /// Opens (and creates) the store's database file at `path`, with its one account.
    pub async fn open(path: &Path) -> anyhow::Result<LoginStore> {
        let db = warden_common::db::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS accounts (key TEXT PRIMARY KEY, phc TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, account TEXT NOT NULL, created_at INTEGER NOT NULL)",
        ] {
            db.execute_unprepared(ddl).await?;
        }
        // The row stands for the account; its `phc` is a placeholder, as the hash verifies
        // against `OneHash`'s own.
        let account = "INSERT OR IGNORE INTO accounts (key, phc) VALUES (?, ?)";
        db.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, account, [ACCOUNT.into(), "-".into()]))
            .await?;
        Ok(LoginStore { db })
    }

    async fn read(&self) -> anyhow::Result<()> {
        let account = "SELECT phc FROM accounts WHERE key = ?";
        let rows = self.db.query_all_raw(Statement::from_sql_and_values(DbBackend::Sqlite, account, [ACCOUNT.into()]));
        anyhow::ensure!(rows.await?.len() == 1, "the floor's account is missing");
        Ok(())
    }

    async fn write(&self) -> anyhow::Result<()> {
        let session = "INSERT INTO sessions (id, account, created_at) VALUES (?, ?, ?)";
        let id = uuid::Uuid::new_v4().to_string();
        let values = [id.into(), ACCOUNT.into(), SystemClock.unix().into()];
        self.db.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, session, values)).await?;
        Ok(())
    }

    /// One embedded login at its barest: read, hash, write.
    pub async fn login(&self, hash: &OneHash) -> anyhow::Result<()> {
        self.read().await?;
        hash.verify().await?;
        self.write().await
    }
}

/// The health check `service` that asks the split floor's first backend for a login's work
/// (the relay's `GET /login`). Any other is answered at once, as the relay's `GET /relay`
/// asks: the protected requests of the split flood's floor.
pub const LOGIN_CHECK: &str = "login";

/// A health service that hashes once (with its stores around the hash, if any) before it
/// answers a [`LOGIN_CHECK`], and answers any other check at once: the split floor's "auth".
struct HashingHealth {
    hash: OneHash,
    stores: Option<LoginStores>,
}

impl HashingHealth {
    async fn login(&self) -> anyhow::Result<()> {
        if let Some(stores) = &self.stores {
            stores.read().await?;
        }
        self.hash.verify().await?;
        if let Some(stores) = &self.stores {
            stores.write().await?;
        }
        Ok(())
    }
}

type NoStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HashingHealth {
    async fn check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        if request.get_ref().service == LOGIN_CHECK {
            self.login().await.map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(Response::new(HealthCheckResponse { status: ServingStatus::Serving.into() }))
    }

    type WatchStream = NoStream;

    async fn watch(&self, _: Request<HealthCheckRequest>) -> Result<Response<NoStream>, Status> {
        Err(Status::unimplemented("the floor answers Check only"))
    }
}

/// Serves `grpc.health.v1.Health/Check`, one hash per login check, with `stores` around it.
pub async fn serve_hashing_health(addr: std::net::SocketAddr, stores: Option<LoginStores>) -> anyhow::Result<()> {
    let service = HealthServer::new(HashingHealth { hash: OneHash::new().await?, stores });
    tonic::transport::Server::builder().add_service(service).serve(addr).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded floor's login reads its account and leaves one session row per login, and
    /// its store opens again on the same file (a restarted ceiling server) with one account.
    #[tokio::test]
    async fn the_embedded_floor_reads_hashes_and_writes() {
        let dir = std::env::temp_dir().join(format!("warden-bench-floor-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("floor.db");
        let hash = OneHash::new().await.unwrap();
        LoginStore::open(&path).await.unwrap().login(&hash).await.unwrap();
        let store = LoginStore::open(&path).await.unwrap();
        store.login(&hash).await.unwrap();
        let count = |table: &str| {
            let sql = format!("SELECT COUNT(*) AS n FROM {table}");
            let db = &store.db;
            async move {
                let row = db.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap().unwrap();
                row.try_get::<i64>("", "n").unwrap()
            }
        };
        assert_eq!((count("accounts").await, count("sessions").await), (1, 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The split floor's backend hashes for a login check only: given a hash of another
    /// password, the login check fails and the relay's plain check is answered.
    #[tokio::test]
    async fn the_split_floor_hashes_for_login_checks_only() {
        let hasher = PasswordHasher::new(1);
        let phc = hasher.hash(&Secret::new("not the floor's password")).await.unwrap();
        let health = HashingHealth { hash: OneHash { hasher, phc: phc.into() }, stores: None };
        let check = |service: &str| Request::new(HealthCheckRequest { service: service.to_owned() });
        assert!(health.check(check("")).await.is_ok(), "the plain check hashed");
        let refused = health.check(check(LOGIN_CHECK)).await.unwrap_err();
        assert!(refused.message().contains("did not verify"), "{refused:?}");
    }
}
