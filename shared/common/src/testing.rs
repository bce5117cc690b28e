//! Test support: real databases for tests. SQLite is always available; PostgreSQL and
//! Redis come from `WARDEN_TEST_DATABASE_URL` / `WARDEN_TEST_REDIS_URL`. When those are
//! absent a test prints that it skipped, unless `WARDEN_TEST_REQUIRE_SERVICES=1`, where a
//! missing service fails the test instead.
use crate::db::Db;
use sea_orm::ConnectionTrait;

fn required() -> bool {
    std::env::var("WARDEN_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn from_env(var: &str, test: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None if required() => panic!("{test}: {var} is not set and WARDEN_TEST_REQUIRE_SERVICES=1"),
        None => {
            eprintln!("skipped: {test} needs {var}");
            None
        }
    }
}

/// A URL for a fresh, empty SQLite database in a temporary file.
pub fn sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!("warden-test-{}.db", uuid::Uuid::new_v4().simple()));
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Creates a fresh PostgreSQL database for one test and returns its URL, or `None` (skip).
pub async fn postgres_url(test: &str) -> Option<String> {
    let base = from_env("WARDEN_TEST_DATABASE_URL", test)?;
    let name = format!("warden_t_{}", uuid::Uuid::new_v4().simple());
    let admin = crate::db::connect(&base).await.expect("connect to WARDEN_TEST_DATABASE_URL");
    // Unbounded: on a busy machine creating a database can take longer than a request's wait.
    admin.unbounded().execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
    admin.close().await.ok();
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    Some(format!("{prefix}/{name}"))
}

/// The test Redis URL, or `None` (skip).
pub fn redis_url(test: &str) -> Option<String> {
    from_env("WARDEN_TEST_REDIS_URL", test)
}

/// A migrated-or-not connection to a fresh SQLite database.
pub async fn sqlite() -> Db {
    crate::db::connect(&sqlite_url()).await.expect("open sqlite")
}
