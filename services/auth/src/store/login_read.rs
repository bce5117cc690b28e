//! A password login's first read: the account of that name, with whether a confirmed second
//! factor follows the password, and, where the failure counters live in the accounts'
//! database (the SQL store), that name's counter in the same statement. Both stores read a
//! login's account only through here, so the account read has one shape.
use super::LoginUser;
use crate::entity::{login_failure, mfa_totp, user};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, FromQueryResult, IdenStatic, Iterable};
use warden_common::Result;
use warden_common::secret::sha256_hex;

/// Column prefixes of the statement's three parts.
const USER: &str = "u_";
const TOTP: &str = "t_";
const COUNTER: &str = "f_";

/// Whether the statement also reads the failure counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Counter {
    Joined,
    Elsewhere,
}

/// What the statement found; `counter` is always `None` for [`Counter::Elsewhere`].
pub(super) struct LoginRead {
    pub counter: Option<login_failure::Model>,
    pub user: Option<LoginUser>,
}

/// One statement on unique keys: a one-row probe, left-joined with the account (and its
/// second factor) and optionally with the counter, so that a missing account still yields a
/// row and its counter. Two statements cost SQLite's worker thread two round trips each, with
/// the pool's check on release (BENCHMARKS.md, session 16); and a locked name costs the same
/// statement whether or not its account exists.
fn statement(key: &str, counter: Counter) -> SelectStatement {
    let mut select = Query::select();
    select.from_subquery(Query::select().expr(Expr::cust("1")).to_owned(), Alias::new("probe"));
    for column in user::Column::iter() {
        let value = column.select_as(Expr::col((user::Entity, column)));
        select.expr_as(value, Alias::new(format!("{USER}{}", column.as_str())));
    }
    let confirmed = Expr::col((mfa_totp::Entity, mfa_totp::Column::Confirmed));
    select.expr_as(confirmed, Alias::new(format!("{TOTP}{}", mfa_totp::Column::Confirmed.as_str())));
    select.left_join(user::Entity, Expr::col((user::Entity, user::Column::UsernameKey)).eq(key)).left_join(
        mfa_totp::Entity,
        Expr::col((mfa_totp::Entity, mfa_totp::Column::UserId)).equals((user::Entity, user::Column::Id)),
    );
    if counter == Counter::Joined {
        for column in login_failure::Column::iter() {
            let value = column.select_as(Expr::col((login_failure::Entity, column)));
            select.expr_as(value, Alias::new(format!("{COUNTER}{}", column.as_str())));
        }
        select.left_join(
            login_failure::Entity,
            Expr::col((login_failure::Entity, login_failure::Column::Key)).eq(sha256_hex(key)),
        );
    }
    select
}

/// Reads the account named `key` (a lowercased username) and, if asked, its counter.
pub(super) async fn read(db: &impl ConnectionTrait, key: &str, counter: Counter) -> Result<LoginRead> {
    let rows = db.query_all(&statement(key, counter)).await?;
    // The probe row is always there; the joins leave their columns NULL where nothing matched.
    let row = rows.first().ok_or_else(|| DbErr::RecordNotFound("the login read's probe row".into()))?;
    let user = Option::<user::Model>::from_query_result(row, USER)?;
    let confirmed: Option<bool> = row.try_get(TOTP, mfa_totp::Column::Confirmed.as_str())?;
    let user = user.map(|user| LoginUser { user, mfa_enabled: confirmed == Some(true) });
    let counter = match counter {
        Counter::Joined => Option::<login_failure::Model>::from_query_result(row, COUNTER)?,
        Counter::Elsewhere => None,
    };
    Ok(LoginRead { counter, user })
}

#[cfg(test)]
mod tests {
    use super::super::{LockoutPolicy, RedisStore, SessionStore, SqlStore};
    use crate::entity::{mfa_totp, user};
    use sea_orm::{ActiveModelTrait, Set};
    use sea_orm_migration::{MigrationTrait, MigratorTrait};
    use uuid::Uuid;
    use warden_common::db::{self, Db};
    use warden_common::testing;

    struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            crate::migrations()
        }
    }

    const POLICY: LockoutPolicy = LockoutPolicy { threshold: 3, base_seconds: 60, max_seconds: 600 };
    const NOW: i64 = 1_800_000_000;

    async fn user(db: &Db, name: &str, totp: Option<bool>) -> user::Model {
        let at = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        let row = user::ActiveModel {
            id: Set(Uuid::new_v4()),
            username: Set(name.to_owned()),
            username_key: Set(name.to_lowercase()),
            password_hash: Set(format!("$argon2id$v=19$m=19456,t=2,p=1${name}")),
            disabled: Set(name.starts_with("dis")),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(db)
        .await
        .unwrap();
        if let Some(confirmed) = totp {
            let factor = mfa_totp::ActiveModel {
                user_id: Set(row.id),
                secret: Set("sealed".into()),
                confirmed: Set(confirmed),
                last_used_step: Set(0),
                created_at: Set(at),
            };
            factor.insert(db).await.unwrap();
        }
        row
    }

    /// A store's login read answers as its counter read and the account rows say, for a
    /// missing, a locked, a failed, a second-factor and a disabled name. The names carry a
    /// fresh tag: Redis keeps counters between runs.
    async fn login_state_matches_separate_reads(store: &dyn SessionStore, conn: &Db) {
        let tag = Uuid::new_v4().simple().to_string();
        let name = |base: &str| format!("{base}-{tag}");
        let alice = user(conn, &name("Alice"), None).await;
        let bob = user(conn, &name("bob"), Some(false)).await;
        let carol = user(conn, &name("carol"), Some(true)).await;
        let dis = user(conn, &name("disabled"), None).await;
        for _ in 0..3 {
            store.record_failure(&name("ghost"), NOW, &POLICY).await.unwrap();
        }
        store.record_failure(&name("alice"), NOW, &POLICY).await.unwrap();

        let cases = [("nobody", None, 0, 0), ("ghost", None, 3, NOW + 60), ("alice", Some((&alice, false)), 1, 0)];
        let more = [
            ("bob", Some((&bob, false)), 0, 0),
            ("carol", Some((&carol, true)), 0, 0),
            ("disabled", Some((&dis, false)), 0, 0),
        ];
        for (base, account, failures, locked_until) in cases.into_iter().chain(more) {
            let key = name(base);
            let (state, found) = store.login_state(&key, NOW, conn).await.unwrap();
            assert_eq!((state.failures, state.locked_until), (failures, locked_until), "{key}");
            let separate = store.failure_state(&key, NOW).await.unwrap();
            assert_eq!(state, separate, "{key}");
            let found = found.map(|f| (f.user, f.mfa_enabled));
            assert_eq!(found, account.map(|(u, mfa)| (u.clone(), mfa)), "{key}");
        }
    }

    async fn migrated(url: &str) -> Db {
        let conn = db::connect(url).await.unwrap();
        db::migrate::<Migrator>(url, &conn).await.unwrap();
        conn
    }

    /// The SQL store's counters share the accounts' database: both come from one statement.
    /// Its rows carry their end, so a counter past its memory counts for nothing (Redis
    /// forgets one by its TTL instead).
    async fn on_sql_store(url: &str) {
        let conn = migrated(url).await;
        let store = SqlStore::new(conn.clone());
        login_state_matches_separate_reads(&store, &conn).await;
        for _ in 0..3 {
            store.record_failure("forgotten", NOW, &POLICY).await.unwrap();
        }
        let (later, _) = store.login_state("forgotten", NOW + 100_000, &conn).await.unwrap();
        assert_eq!((later.failures, later.locked_until), (0, 0));
    }

    #[tokio::test]
    async fn login_state_on_sqlite() {
        on_sql_store(&testing::sqlite_url()).await;
    }

    #[tokio::test]
    async fn login_state_on_postgres() {
        if let Some(url) = testing::postgres_url("login_state_on_postgres").await {
            on_sql_store(&url).await;
        }
    }

    /// Redis keeps the counters, the database the accounts.
    #[tokio::test]
    async fn login_state_on_redis_and_postgres() {
        let Some(redis) = testing::redis_url("login_state_on_redis_and_postgres") else { return };
        let Some(url) = testing::postgres_url("login_state_on_redis_and_postgres").await else { return };
        let client = warden_common::redis::connect(&redis).await.unwrap();
        login_state_matches_separate_reads(&RedisStore::new(client), &migrated(&url).await).await;
    }
}
