//! Database connections and migrations, the same for SQLite and PostgreSQL.
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use std::time::Duration;

/// Opens the database. SQLite gets WAL and a busy timeout so concurrent writers wait
/// instead of failing.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    if url.starts_with("sqlite:") {
        // One writer at a time in SQLite; a small pool avoids lock convoys.
        options.max_connections(8).min_connections(1);
    } else {
        options.max_connections(32).min_connections(1);
    }
    let db = Database::connect(options).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=5000", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"] {
            db.execute_unprepared(pragma).await?;
        }
    }
    Ok(db)
}

/// Checks that the database answers (readiness).
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_raw(Statement::from_string(db.get_database_backend(), "SELECT 1")).await.is_ok()
}

/// All migrations of every service, in order. Each service owns its own tables and
/// contributes its own migrations; the binary combines them.
pub struct Migrations(pub Vec<Box<dyn MigrationTrait>>);

/// Runs migrations. On PostgreSQL an advisory lock serialises replicas starting together.
pub async fn migrate<M: MigratorTrait>(db: &DatabaseConnection) -> anyhow::Result<()> {
    const LOCK_ID: i64 = 0x5741_5244_454e; // "WARDEN"
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    if postgres {
        db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_advisory_lock($1)", [LOCK_ID.into()])).await?;
    }
    let result = M::up(db, None).await;
    if postgres {
        db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_advisory_unlock($1)", [LOCK_ID.into()])).await?;
    }
    Ok(result?)
}
