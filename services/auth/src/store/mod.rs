//! The session store: sessions (with the hash of their current refresh token) and login
//! failure counters. Redis in production, the SQL database in the embedded default; both
//! give the same behaviour, expiry included, and both are atomic where it matters
//! (refresh-token rotation, failure counting).
use uuid::Uuid;
use warden_common::Result;
use warden_common::db::Db;

mod login_read;
mod redis;
mod sql;

pub use self::redis::RedisStore;
pub use self::sql::SqlStore;

/// One login session. Times are unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    /// SHA-256 of the current refresh token; the token itself is never stored.
    pub refresh_hash: String,
    pub created_at: i64,
    /// Absolute end (`WARDEN_SESSION_MAX_AGE` after login).
    pub expires_at: i64,
    /// Idle end (`WARDEN_REFRESH_TOKEN_TTL` after the last refresh).
    pub refresh_expires_at: i64,
    pub last_refreshed_at: i64,
    /// Hash of the refresh token the last rotation replaced, for the replay window.
    pub previous_hash: Option<String>,
    /// When the last rotation happened (0 if never).
    pub rotated_at: i64,
}

impl SessionRecord {
    pub fn is_live(&self, now: i64) -> bool {
        now < self.expires_at && now < self.refresh_expires_at
    }
    /// When the store may forget the record.
    pub fn ends_at(&self) -> i64 {
        self.expires_at.min(self.refresh_expires_at)
    }
}

/// What happened to a presented refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current; the session now holds the new hash.
    Rotated(SessionRecord),
    /// The session is live but the token is not its current one: either the token just
    /// rotated (a lost answer, or a concurrent refresh: inside the replay window the caller
    /// returns the same successor) or an old token came back (the caller revokes).
    NotCurrent(SessionRecord),
    /// The session ended (idle or absolute age).
    Expired,
    /// No such session: revoked, logged out or never existed.
    Missing,
}

/// The state of one login failure counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureState {
    pub failures: i64,
    /// Unix seconds until which logins are refused; 0 if not locked.
    pub locked_until: i64,
}

/// An account as a password login reads it: the user and whether a confirmed second factor
/// follows the password.
#[derive(Clone, Debug)]
pub struct LoginUser {
    pub(crate) user: crate::entity::user::Model,
    pub(crate) mfa_enabled: bool,
}

#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn create_session(&self, session: &SessionRecord) -> Result<()>;
    /// A live session of `user_id`; `None` if it ended, never existed or is another user's.
    async fn get_session(&self, user_id: Uuid, id: Uuid, now: i64) -> Result<Option<SessionRecord>>;
    /// Atomically replaces the refresh hash if `presented_hash` is current.
    async fn rotate(
        &self,
        user_id: Uuid,
        id: Uuid,
        presented_hash: &str,
        new_hash: &str,
        refresh_expires_at: i64,
        now: i64,
    ) -> Result<Rotation>;
    /// Ends one session of `user_id`; false if there was none to end.
    async fn delete_session(&self, user_id: Uuid, id: Uuid) -> Result<bool>;
    /// Ends every session of a user except `keep`; returns the ids of the live ones ended.
    async fn delete_user_sessions(&self, user_id: Uuid, keep: Option<Uuid>, now: i64) -> Result<Vec<Uuid>>;
    async fn list_sessions(&self, user_id: Uuid, now: i64) -> Result<Vec<SessionRecord>>;

    async fn failure_state(&self, key: &str, now: i64) -> Result<FailureState>;
    /// A login's first read: the failure state of `key` (a lowercased username) and the account
    /// of that name, which lives in `accounts` (`login_read.rs`). Both are read whether or not
    /// the name is locked, so a locked name costs the same reads as any other.
    async fn login_state(&self, key: &str, now: i64, accounts: &Db) -> Result<(FailureState, Option<LoginUser>)>;
    /// Atomically counts one failure and applies the lock `policy` decides on.
    async fn record_failure(&self, key: &str, now: i64, policy: &LockoutPolicy) -> Result<FailureState>;
    async fn clear_failures(&self, key: &str) -> Result<()>;

    /// A pending second login step, keyed by the hash of its single-use token.
    async fn put_mfa_challenge(&self, token_hash: &str, user_id: Uuid, expires_at: i64) -> Result<()>;
    async fn get_mfa_challenge(&self, token_hash: &str, now: i64) -> Result<Option<Uuid>>;
    /// Consumes a challenge; true only for the one caller that removed it.
    async fn take_mfa_challenge(&self, token_hash: &str) -> Result<bool>;

    async fn ping(&self) -> bool;
}

/// Progressive lockout: `threshold` consecutive failures lock for `base` seconds, each
/// further failure doubles it up to `max`. Counters are forgotten after a quiet period, so
/// no lock is permanent.
#[derive(Clone, Copy, Debug)]
pub struct LockoutPolicy {
    pub threshold: i64,
    pub base_seconds: i64,
    pub max_seconds: i64,
}

impl LockoutPolicy {
    /// Lock duration after `failures` consecutive failures (0 = not locked).
    pub fn lock_seconds(&self, failures: i64) -> i64 {
        if failures < self.threshold {
            return 0;
        }
        let doublings = (failures - self.threshold).min(20) as u32;
        self.base_seconds.saturating_mul(1 << doublings).min(self.max_seconds)
    }

    /// How long a counter survives without new failures.
    pub fn memory_seconds(&self) -> i64 {
        self.max_seconds * 2
    }
}

#[cfg(test)]
mod tests {
    use super::LockoutPolicy;

    #[test]
    fn lock_doubles_and_is_capped() {
        let p = LockoutPolicy { threshold: 5, base_seconds: 60, max_seconds: 900 };
        assert_eq!(p.lock_seconds(4), 0);
        assert_eq!(p.lock_seconds(5), 60);
        assert_eq!(p.lock_seconds(6), 120);
        assert_eq!(p.lock_seconds(8), 480);
        assert_eq!(p.lock_seconds(9), 900);
        assert_eq!(p.lock_seconds(1000), 900);
    }
}
