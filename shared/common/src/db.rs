//! Database connections and migrations, the same for SQLite and PostgreSQL.
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use std::time::Duration;

/// Opens the database. SQLite gets WAL and a busy timeout so concurrent writers wait
/// instead of failing.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.connect_timeout(Duration::from_secs(5)).acquire_timeout(Duration::from_secs(5)).sqlx_logging(false);
    if url.starts_with("sqlite:") {
        // One writer at a time in SQLite; a small pool avoids lock convoys.
        options.max_connections(8).min_connections(1);
    } else {
        options.max_connections(32).min_connections(1);
    }
    let db = Database::connect(options).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        for pragma in [
            "PRAGMA journal_mode=WAL",
            "PRAGMA busy_timeout=5000",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
        ] {
            db.execute_unprepared(pragma).await?;
        }
    }
    Ok(db)
}

/// Checks that the database answers (readiness).
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_raw(Statement::from_string(db.get_database_backend(), "SELECT 1")).await.is_ok()
}

/// Runs migrations. On PostgreSQL an advisory lock serialises replicas starting together;
/// it is session-scoped, so lock, migrations and unlock run on one dedicated connection.
pub async fn migrate<M: MigratorTrait>(url: &str, db: &DatabaseConnection) -> anyhow::Result<()> {
    const LOCK_ID: i64 = 0x5741_5244_454e; // "WARDEN"
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(M::up(db, None).await?);
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(1).min_connections(1).connect_timeout(Duration::from_secs(5)).sqlx_logging(false);
    let single = Database::connect(options).await?;
    let lock = |sql: &'static str| Statement::from_sql_and_values(DbBackend::Postgres, sql, [LOCK_ID.into()]);
    single.execute_raw(lock("SELECT pg_advisory_lock($1)")).await?;
    let result = M::up(&single, None).await;
    single.execute_raw(lock("SELECT pg_advisory_unlock($1)")).await?;
    single.close().await?;
    Ok(result?)
}
