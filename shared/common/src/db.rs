//! Database connections and migrations, the same for SQLite and PostgreSQL.
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, DbErr, EntityTrait, Select, Statement};
use sea_orm_migration::MigratorTrait;
use std::time::Duration;

mod bounded;
pub use bounded::{ANSWER_TIMEOUT, Bounded, Db, RowStream, Rows, Tx};

/// Longest wait for a pooled connection (and for a new one).
pub const POOL_TIMEOUT: Duration = Duration::from_secs(2);

/// A PostgreSQL connection idle this long is pinged before it is handed out: it may have been
/// cut (a server restart, a proxy's idle timeout) and a ping finds out without failing a
/// request. A busier connection is not: a ping is a round trip per query, and a hot connection
/// to a server that stopped answering fails within [`ANSWER_TIMEOUT`] anyway.
const IDLE_PING: Duration = Duration::from_secs(1);

/// PostgreSQL connections per process unless configured (`WARDEN_DATABASE_MAX_CONNECTIONS`).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 32;

/// Opens the database with the default pool size (see [`connect_with`]).
pub async fn connect(url: &str) -> anyhow::Result<Db> {
    connect_with(url, DEFAULT_MAX_CONNECTIONS).await
}

/// Opens the database. SQLite gets WAL and a busy timeout so concurrent writers wait
/// instead of failing, and a pool of at most 8; PostgreSQL a pool of at most
/// `max_connections`, whose calls are bounded by [`ANSWER_TIMEOUT`].
pub async fn connect_with(url: &str, max_connections: u32) -> anyhow::Result<Db> {
    let mut options = ConnectOptions::new(url.to_owned());
    // A database that is down must be a fast 503, not a request held for seconds: sqlx keeps
    // retrying a refused connection until the acquire timeout.
    options.connect_timeout(POOL_TIMEOUT).acquire_timeout(POOL_TIMEOUT).sqlx_logging(false);
    if url.starts_with("sqlite:") {
        // One writer at a time in SQLite; a small pool avoids lock convoys. No ping before
        // each use: sqlx's default costs a round trip to the connection's worker thread per
        // query (two thread wake-ups), and an in-process database has no connection to lose.
        options.max_connections(8).min_connections(1).test_before_acquire(false);
        // Per-connection settings belong in the connect options: a PRAGMA executed once
        // reaches only the pooled connection that happened to run it. `synchronous=NORMAL`
        // is durable in WAL mode except for the last commits on power loss, and saves an
        // fsync per write (every login and refresh writes).
        options.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    } else {
        options.max_connections(max_connections.max(1)).min_connections(1).test_before_acquire_if_idle_for(IDLE_PING);
    }
    Ok(Db::new(Database::connect(options).await?))
}

/// The row a unique key picks (a primary key or a unique column), or none.
///
/// Use this instead of sea-orm's `one()` on hot paths: `one()` appends `LIMIT ?` with the 1
/// as a bound parameter, and SQLite (3.51, bundled) lets a bound LIMIT steer the query plan,
/// so it marks such a statement stale whenever that parameter is bound again, which is at
/// every execution: each `one()` was parsed and planned anew (a third of the SQLite
/// thread's time in a login, BENCHMARKS.md session 10). A unique key needs no LIMIT.
pub async fn unique<E: EntityTrait>(select: Select<E>, db: &impl ConnectionTrait) -> Result<Option<E::Model>, DbErr> {
    Ok(select.all(db).await?.into_iter().next())
}

/// Checks that the database answers (readiness).
pub async fn ping(db: &Db) -> bool {
    db.execute_raw(Statement::from_string(db.get_database_backend(), "SELECT 1")).await.is_ok()
}

/// Runs migrations. On PostgreSQL an advisory lock serialises replicas starting together;
/// it is session-scoped, so lock, migrations and unlock run on one dedicated connection.
pub async fn migrate<M: MigratorTrait>(url: &str, db: &Db) -> anyhow::Result<()> {
    const LOCK_ID: i64 = 0x5741_5244_454e; // "WARDEN"
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(M::up(db.unbounded(), None).await?);
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn pragma(db: &impl ConnectionTrait, name: &str) -> String {
        let row = db
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, format!("PRAGMA {name}")))
            .await
            .unwrap()
            .expect("a row");
        row.try_get_by_index::<i64>(0).map(|v| v.to_string()).or_else(|_| row.try_get_by_index::<String>(0)).unwrap()
    }

    async fn all_settings(db: &impl ConnectionTrait) -> Vec<String> {
        let mut values = Vec::new();
        for name in ["journal_mode", "synchronous", "foreign_keys", "busy_timeout"] {
            values.push(pragma(db, name).await);
        }
        values
    }

    #[tokio::test]
    async fn every_sqlite_connection_gets_the_settings() {
        let db = connect(&crate::testing::sqlite_url()).await.unwrap();
        // Hold one pooled connection in a transaction so the next query runs on another.
        let held = db.begin().await.unwrap();
        for settings in [all_settings(&held).await, all_settings(&db).await] {
            assert_eq!(
                settings,
                ["wal", "1", "1", "5000"],
                "journal_mode, synchronous=NORMAL, foreign_keys, busy_timeout"
            );
        }
        held.rollback().await.unwrap();
    }

    // sea-orm's derives generate `pub` items (Entity, Column, ActiveModel) beside these.
    #[allow(unreachable_pub)]
    mod pet {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "pets")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    #[tokio::test]
    async fn unique_reads_the_row_its_key_picks() {
        let db = connect(&crate::testing::sqlite_url()).await.unwrap();
        db.execute_unprepared("CREATE TABLE pets (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await.unwrap();
        db.execute_unprepared("INSERT INTO pets VALUES (1, 'a'), (2, 'b')").await.unwrap();
        // Twice: the second round runs the statements sqlx cached in the first.
        for _ in 0..2 {
            let found = unique(pet::Entity::find_by_id(2), &db).await.unwrap();
            assert_eq!(found.map(|p| p.name).as_deref(), Some("b"));
            assert_eq!(unique(pet::Entity::find_by_id(3), &db).await.unwrap(), None);
        }
    }
}
