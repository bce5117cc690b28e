//! Session store on the SQL database, for the embedded default (no Redis). Rows carry
//! their end time; reads ignore ended rows and a background sweep deletes them.
use super::{FailureState, LockoutPolicy, LoginUser, Rotation, SessionRecord, SessionStore};
use crate::cache::{HOT_PATH_TTL, TtlCache};
use crate::entity::{login_failure, mfa_challenge, mfa_totp, session, user};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult,
    IdenStatic, Iterable, QueryFilter, Set,
};
use std::time::Duration;
use uuid::Uuid;
use warden_common::Result;
use warden_common::db::unique;
use warden_common::secret::sha256_hex;

/// In the embedded process this store is the only writer of its sessions, so a cache of
/// them in front of the database stays exact: every write below updates it, and an ended
/// session leaves a tombstone (`None`) that a racing reader cannot overwrite.
pub struct SqlStore {
    db: DatabaseConnection,
    sessions: TtlCache<Uuid, Option<SessionRecord>>,
}

impl SqlStore {
    pub fn new(db: DatabaseConnection) -> Self {
        SqlStore { db, sessions: TtlCache::new(HOT_PATH_TTL) }
    }

    /// Deletes ended sessions and forgotten failure counters every minute.
    pub fn spawn_sweeper(&self, clock: warden_common::clock::SharedClock) {
        let db = self.db.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let now = clock.unix();
                let ended = Condition::any()
                    .add(session::Column::ExpiresAt.lte(now))
                    .add(session::Column::RefreshExpiresAt.lte(now));
                if let Err(e) = session::Entity::delete_many().filter(ended).exec(&db).await {
                    tracing::warn!(error = %e, "session sweep failed");
                }
                let stale = mfa_challenge::Column::ExpiresAt.lte(now);
                if let Err(e) = mfa_challenge::Entity::delete_many().filter(stale).exec(&db).await {
                    tracing::warn!(error = %e, "mfa challenge sweep failed");
                }
                let forgotten = login_failure::Column::ExpiresAt.lte(now);
                if let Err(e) = login_failure::Entity::delete_many().filter(forgotten).exec(&db).await {
                    tracing::warn!(error = %e, "failure counter sweep failed");
                }
            }
        });
    }
}

/// A counter that outlived its memory counts for nothing (the sweep deletes it later).
fn state_of_counter(counter: Option<login_failure::Model>, now: i64) -> FailureState {
    match counter {
        Some(r) if r.expires_at > now => {
            FailureState { failures: r.failures, locked_until: if r.locked_until > now { r.locked_until } else { 0 } }
        }
        _ => FailureState { failures: 0, locked_until: 0 },
    }
}

/// Column prefixes of the login lookup.
const USER: &str = "u_";
const TOTP: &str = "t_";
const COUNTER: &str = "f_";

/// A login's failure counter and account in one statement, each on a unique key: a one-row
/// probe, left-joined with the account (and its second factor) and with the counter, so
/// that a missing account still yields its counter. Two statements cost SQLite's worker
/// thread two round trips each, with the pool's check on release (BENCHMARKS.md, session 16);
/// and the locked path runs this same statement whether or not the account exists.
fn login_lookup(key: &str) -> SelectStatement {
    let mut select = Query::select();
    select.from_subquery(Query::select().expr(Expr::cust("1")).to_owned(), Alias::new("probe"));
    for column in user::Column::iter() {
        let value = column.select_as(Expr::col((user::Entity, column)));
        select.expr_as(value, Alias::new(format!("{USER}{}", column.as_str())));
    }
    let confirmed = Expr::col((mfa_totp::Entity, mfa_totp::Column::Confirmed));
    select.expr_as(confirmed, Alias::new(format!("{TOTP}{}", mfa_totp::Column::Confirmed.as_str())));
    for column in login_failure::Column::iter() {
        let value = column.select_as(Expr::col((login_failure::Entity, column)));
        select.expr_as(value, Alias::new(format!("{COUNTER}{}", column.as_str())));
    }
    select
        .left_join(user::Entity, Expr::col((user::Entity, user::Column::UsernameKey)).eq(key))
        .left_join(
            mfa_totp::Entity,
            Expr::col((mfa_totp::Entity, mfa_totp::Column::UserId)).equals((user::Entity, user::Column::Id)),
        )
        .left_join(
            login_failure::Entity,
            Expr::col((login_failure::Entity, login_failure::Column::Key)).eq(sha256_hex(key)),
        )
        .to_owned()
}

fn record(m: session::Model) -> SessionRecord {
    SessionRecord {
        id: m.id,
        user_id: m.user_id,
        refresh_hash: m.refresh_hash,
        created_at: m.created_at,
        expires_at: m.expires_at,
        refresh_expires_at: m.refresh_expires_at,
        last_refreshed_at: m.last_refreshed_at,
        previous_hash: m.previous_hash,
        rotated_at: m.rotated_at,
    }
}

#[async_trait::async_trait]
impl SessionStore for SqlStore {
    async fn create_session(&self, s: &SessionRecord) -> Result<()> {
        // `Entity::insert`, not `ActiveModel::insert`: the latter reads the row back, which on
        // SQLite is a second statement (and a second trip to its worker thread) per login.
        let row = session::ActiveModel {
            id: Set(s.id),
            user_id: Set(s.user_id),
            refresh_hash: Set(s.refresh_hash.clone()),
            created_at: Set(s.created_at),
            expires_at: Set(s.expires_at),
            refresh_expires_at: Set(s.refresh_expires_at),
            last_refreshed_at: Set(s.last_refreshed_at),
            previous_hash: Set(s.previous_hash.clone()),
            rotated_at: Set(s.rotated_at),
        };
        session::Entity::insert(row).exec_without_returning(&self.db).await?;
        Ok(())
    }

    async fn get_session(&self, user_id: Uuid, id: Uuid, now: i64) -> Result<Option<SessionRecord>> {
        let row = match self.sessions.get(&id) {
            Some(cached) => cached,
            None => {
                let row = unique(session::Entity::find_by_id(id), &self.db).await?.map(record);
                self.sessions.insert_if_absent(id, row.clone());
                row
            }
        };
        Ok(row.filter(|s| s.user_id == user_id && s.is_live(now)))
    }

    async fn rotate(
        &self,
        user_id: Uuid,
        id: Uuid,
        presented_hash: &str,
        new_hash: &str,
        refresh_expires_at: i64,
        now: i64,
    ) -> Result<Rotation> {
        self.sessions.remove(&id);
        // Compare-and-swap in one statement: of many concurrent refreshes, one wins. RETURNING
        // hands back the winner's row, so the common case is one round trip and one write.
        let swapped = session::Entity::update_many()
            .col_expr(session::Column::RefreshHash, Expr::value(new_hash))
            .col_expr(session::Column::RefreshExpiresAt, Expr::value(refresh_expires_at))
            .col_expr(session::Column::LastRefreshedAt, Expr::value(now))
            .col_expr(session::Column::PreviousHash, Expr::value(presented_hash))
            .col_expr(session::Column::RotatedAt, Expr::value(now))
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::RefreshHash.eq(presented_hash))
            .filter(session::Column::ExpiresAt.gt(now))
            .filter(session::Column::RefreshExpiresAt.gt(now))
            .exec_with_returning(&self.db)
            .await?;
        if let Some(row) = swapped.into_iter().next() {
            // The row as committed, so the next refresh of this session needs no read. A
            // reader may have cached the row as it was before; that is replaced. A tombstone
            // (the session ended after this commit) stays.
            let rotated = record(row);
            self.sessions.insert_unless(id, Some(rotated.clone()), Option::is_none);
            return Ok(Rotation::Rotated(rotated));
        }
        self.sessions.remove(&id);
        // Lost the race, or the token is stale or expired: read what the session is now.
        let row = unique(session::Entity::find_by_id(id), &self.db).await?.map(record);
        Ok(match row.filter(|s| s.user_id == user_id) {
            None => Rotation::Missing,
            Some(s) if !s.is_live(now) => {
                session::Entity::delete_by_id(id).exec(&self.db).await?;
                self.sessions.insert(id, None);
                Rotation::Expired
            }
            Some(s) => Rotation::NotCurrent(s),
        })
    }

    async fn delete_session(&self, user_id: Uuid, id: Uuid) -> Result<bool> {
        let deleted = session::Entity::delete_many()
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        // Only a session this call ended gets a tombstone: another user's stays cached.
        if deleted.rows_affected > 0 {
            self.sessions.insert(id, None);
        }
        Ok(deleted.rows_affected > 0)
    }

    async fn delete_user_sessions(&self, user_id: Uuid, keep: Option<Uuid>, now: i64) -> Result<Vec<Uuid>> {
        let mut filter = Condition::all().add(session::Column::UserId.eq(user_id));
        if let Some(keep) = keep {
            filter = filter.add(session::Column::Id.ne(keep));
        }
        // One `DELETE … RETURNING`: exactly the rows deleted, atomically. (A read-then-delete
        // transaction fails on SQLite in WAL mode with SQLITE_BUSY_SNAPSHOT, not retried by the
        // busy timeout, whenever another connection writes in between: a 503 under load.)
        let deleted = session::Entity::delete_many().filter(filter).exec_with_returning(&self.db).await?;
        let mut ended = Vec::new();
        for row in deleted.into_iter().map(record) {
            self.sessions.insert(row.id, None);
            if row.is_live(now) {
                ended.push(row.id);
            }
        }
        Ok(ended)
    }

    async fn list_sessions(&self, user_id: Uuid, now: i64) -> Result<Vec<SessionRecord>> {
        let rows = session::Entity::find().filter(session::Column::UserId.eq(user_id)).all(&self.db).await?;
        let mut sessions: Vec<SessionRecord> = rows.into_iter().map(record).filter(|s| s.is_live(now)).collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(sessions)
    }

    async fn failure_state(&self, key: &str, now: i64) -> Result<FailureState> {
        let row = unique(login_failure::Entity::find_by_id(sha256_hex(key)), &self.db).await?;
        Ok(state_of_counter(row, now))
    }

    async fn failure_state_and_user(&self, key: &str, now: i64) -> Result<Option<(FailureState, Option<LoginUser>)>> {
        let rows = self.db.query_all(&login_lookup(key)).await?;
        // The probe row is always there; the joins leave their columns NULL where nothing matched.
        let row = rows.first().ok_or_else(|| DbErr::RecordNotFound("the login lookup's probe row".into()))?;
        let counter = Option::<login_failure::Model>::from_query_result(row, COUNTER)?;
        let user = Option::<user::Model>::from_query_result(row, USER)?;
        let confirmed: Option<bool> = row.try_get(TOTP, mfa_totp::Column::Confirmed.as_str())?;
        let user = user.map(|user| LoginUser { user, mfa_enabled: confirmed == Some(true) });
        Ok(Some((state_of_counter(counter, now), user)))
    }

    async fn record_failure(&self, key: &str, now: i64, p: &LockoutPolicy) -> Result<FailureState> {
        let key = sha256_hex(key);
        // One upsert counts the failure atomically (a forgotten counter restarts at 1),
        // whatever the number of concurrent attempts.
        let failures = Expr::case(
            Expr::col((login_failure::Entity, login_failure::Column::ExpiresAt)).lte(now),
            Expr::value(1i64),
        )
        .finally(Expr::col((login_failure::Entity, login_failure::Column::Failures)).add(1i64));
        let insert = login_failure::ActiveModel {
            key: Set(key.clone()),
            failures: Set(1),
            locked_until: Set(0),
            expires_at: Set(now + p.memory_seconds()),
        };
        let counted = login_failure::Entity::insert(insert)
            .on_conflict(
                OnConflict::column(login_failure::Column::Key)
                    .value(login_failure::Column::Failures, failures)
                    .value(login_failure::Column::ExpiresAt, Expr::value(now + p.memory_seconds()))
                    .to_owned(),
            )
            .exec_with_returning(&self.db)
            .await?;
        let lock = p.lock_seconds(counted.failures);
        if lock == 0 {
            return Ok(FailureState { failures: counted.failures, locked_until: 0 });
        }
        // Only ever extend a lock, so racing failures cannot shorten one another's.
        let locked_until = now + lock;
        login_failure::Entity::update_many()
            .col_expr(login_failure::Column::LockedUntil, Expr::value(locked_until))
            .col_expr(login_failure::Column::ExpiresAt, Expr::value(locked_until + p.memory_seconds()))
            .filter(login_failure::Column::Key.eq(key))
            .filter(login_failure::Column::LockedUntil.lt(locked_until))
            .exec(&self.db)
            .await?;
        Ok(FailureState { failures: counted.failures, locked_until })
    }

    async fn clear_failures(&self, key: &str) -> Result<()> {
        login_failure::Entity::delete_by_id(sha256_hex(key)).exec(&self.db).await?;
        Ok(())
    }

    async fn put_mfa_challenge(&self, token_hash: &str, user_id: Uuid, expires_at: i64) -> Result<()> {
        mfa_challenge::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            user_id: Set(user_id),
            expires_at: Set(expires_at),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    async fn get_mfa_challenge(&self, token_hash: &str, now: i64) -> Result<Option<Uuid>> {
        let row = unique(mfa_challenge::Entity::find_by_id(token_hash.to_owned()), &self.db).await?;
        Ok(row.filter(|r| r.expires_at > now).map(|r| r.user_id))
    }

    async fn take_mfa_challenge(&self, token_hash: &str) -> Result<bool> {
        let removed = mfa_challenge::Entity::delete_by_id(token_hash.to_owned()).exec(&self.db).await?;
        Ok(removed.rows_affected == 1)
    }

    async fn ping(&self) -> bool {
        warden_common::db::ping(&self.db).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm_migration::{MigrationTrait, MigratorTrait};
    use warden_common::{db, testing};

    struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            crate::migrations()
        }
    }

    async fn user(db: &DatabaseConnection, name: &str, totp: Option<bool>) -> user::Model {
        let at = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
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

    /// The one-statement lookup answers as the counter read and the account read apart do.
    async fn lookup_matches_separate_reads(url: &str) {
        let conn = db::connect(url).await.unwrap();
        db::migrate::<Migrator>(url, &conn).await.unwrap();
        let store = SqlStore::new(conn.clone());
        let policy = LockoutPolicy { threshold: 3, base_seconds: 60, max_seconds: 600 };
        let now = 1_800_000_000;
        let alice = user(&conn, "Alice", None).await;
        let bob = user(&conn, "bob", Some(false)).await;
        let carol = user(&conn, "carol", Some(true)).await;
        let dis = user(&conn, "disabled", None).await;
        for _ in 0..3 {
            store.record_failure("ghost", now, &policy).await.unwrap();
        }
        store.record_failure("alice", now, &policy).await.unwrap();

        let cases = [("nobody", None, 0, 0), ("ghost", None, 3, now + 60), ("alice", Some((&alice, false)), 1, 0)];
        let more = [
            ("bob", Some((&bob, false)), 0, 0),
            ("carol", Some((&carol, true)), 0, 0),
            ("disabled", Some((&dis, false)), 0, 0),
        ];
        for (key, account, failures, locked_until) in cases.into_iter().chain(more) {
            let (state, found) =
                store.failure_state_and_user(key, now).await.unwrap().expect("the SQL store reads both");
            assert_eq!((state.failures, state.locked_until), (failures, locked_until), "{key}");
            let separate = store.failure_state(key, now).await.unwrap();
            assert_eq!((state.failures, state.locked_until), (separate.failures, separate.locked_until), "{key}");
            let found = found.map(|f| (f.user, f.mfa_enabled));
            assert_eq!(found, account.map(|(u, mfa)| (u.clone(), mfa)), "{key}");
        }
        // A counter past its memory counts for nothing, as in `state_of_counter`.
        let (later, _) = store.failure_state_and_user("ghost", now + 100_000).await.unwrap().unwrap();
        assert_eq!((later.failures, later.locked_until), (0, 0));
    }

    #[tokio::test]
    async fn login_lookup_on_sqlite() {
        lookup_matches_separate_reads(&testing::sqlite_url()).await;
    }

    #[tokio::test]
    async fn login_lookup_on_postgres() {
        if let Some(url) = testing::postgres_url("login_lookup_on_postgres").await {
            lookup_matches_separate_reads(&url).await;
        }
    }
}
