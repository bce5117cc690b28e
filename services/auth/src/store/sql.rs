//! Session store on the SQL database, for the embedded default (no Redis). Rows carry
//! their end time; reads ignore ended rows and a background sweep deletes them.
use super::login_read::{self, Counter};
use super::{FailureState, LockoutPolicy, LoginUser, Rotation, SessionRecord, SessionStore};
use crate::cache::{HOT_PATH_TTL, TtlCache};
use crate::entity::{login_failure, mfa_challenge, session};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, Set};
use std::time::Duration;
use uuid::Uuid;
use warden_common::Result;
use warden_common::db::{Db, unique};
use warden_common::secret::sha256_hex;

/// In the embedded process this store is the only writer of its sessions, so a cache of
/// them in front of the database stays exact: every write below updates it, and an ended
/// session leaves a tombstone (`None`) that a racing reader cannot overwrite.
pub struct SqlStore {
    db: Db,
    sessions: TtlCache<Uuid, Option<SessionRecord>>,
}

impl SqlStore {
    pub fn new(db: Db) -> Self {
        SqlStore { db, sessions: TtlCache::new(HOT_PATH_TTL) }
    }

    /// Deletes ended sessions and forgotten failure counters every minute. Unbounded: no
    /// request waits for a sweep, and a large one may take PostgreSQL longer than a request's
    /// wait for an answer.
    pub fn spawn_sweeper(&self, clock: warden_common::clock::SharedClock) {
        let db = self.db.unbounded().clone();
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
        let row = match self.sessions.lookup(&id) {
            Ok(cached) => cached,
            Err(miss) => {
                let row = unique(session::Entity::find_by_id(id), &self.db).await?.map(record);
                self.sessions.fill(id, row.clone(), miss);
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

    /// The counters live beside the accounts, in this store's database: one statement reads both.
    async fn login_state(&self, key: &str, now: i64, _accounts: &Db) -> Result<(FailureState, Option<LoginUser>)> {
        let read = login_read::read(&self.db, key, Counter::Joined).await?;
        Ok((state_of_counter(read.counter, now), read.user))
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
