//! Session store on Redis. Every key has a TTL; the multi-step updates are Lua scripts so
//! concurrent requests see them as one step.
use super::{FailureState, LockoutPolicy, Rotation, SessionRecord, SessionStore};
use fred::prelude::*;
use fred::types::scripts::Script;
use std::collections::HashMap;
use uuid::Uuid;
use warden_common::secret::sha256_hex;
use warden_common::{Error, Result};

const ROTATE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'rh', 'e', 're', 'uid')
if not v[1] then return {'missing'} end
local now = tonumber(ARGV[4])
if now >= tonumber(v[2]) or now >= tonumber(v[3]) then
  redis.call('DEL', KEYS[1])
  return {'expired'}
end
if v[1] ~= ARGV[1] then return {'notcurrent'} end
redis.call('HSET', KEYS[1], 'rh', ARGV[2], 're', ARGV[3], 'lr', ARGV[4], 'ph', ARGV[1], 'rt', ARGV[4])
redis.call('EXPIREAT', KEYS[1], math.min(tonumber(ARGV[3]), tonumber(v[2])))
return {'rotated'}
"#;

const FAIL: &str = r#"
local now, threshold, base, max, memory = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local f = redis.call('HINCRBY', KEYS[1], 'f', 1)
local lu = tonumber(redis.call('HGET', KEYS[1], 'lu') or '0')
local lock = 0
if f >= threshold then
  lock = math.min(base * 2 ^ math.min(f - threshold, 20), max)
  if now + lock > lu then lu = now + lock end
  redis.call('HSET', KEYS[1], 'lu', lu)
end
redis.call('EXPIRE', KEYS[1], memory + lock)
return {f, lu}
"#;

pub struct RedisStore {
    client: Client,
    rotate: Script,
    fail: Script,
}

impl RedisStore {
    pub fn new(client: Client) -> Self {
        RedisStore { client, rotate: Script::from_lua(ROTATE), fail: Script::from_lua(FAIL) }
    }
}

fn session_key(id: Uuid) -> String {
    format!("warden:sess:{}", id.simple())
}

fn user_key(id: Uuid) -> String {
    format!("warden:usess:{}", id.simple())
}

/// Failure counters are keyed by a hash, so usernames never appear in Redis.
fn failure_key(key: &str) -> String {
    format!("warden:fail:{}", sha256_hex(key))
}

fn parse_session(id: Uuid, fields: HashMap<String, String>) -> Option<SessionRecord> {
    let int = |k: &str| fields.get(k)?.parse::<i64>().ok();
    Some(SessionRecord {
        id,
        user_id: Uuid::parse_str(fields.get("uid")?).ok()?,
        refresh_hash: fields.get("rh")?.clone(),
        created_at: int("c")?,
        expires_at: int("e")?,
        refresh_expires_at: int("re")?,
        last_refreshed_at: int("lr")?,
        previous_hash: fields.get("ph").cloned(),
        rotated_at: int("rt").unwrap_or(0),
    })
}

fn corrupt() -> Error {
    Error::internal(anyhow::anyhow!("unreadable session record in redis"))
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn create_session(&self, s: &SessionRecord) -> Result<()> {
        let key = session_key(s.id);
        let fields: Vec<(&str, String)> = vec![
            ("uid", s.user_id.to_string()),
            ("rh", s.refresh_hash.clone()),
            ("c", s.created_at.to_string()),
            ("e", s.expires_at.to_string()),
            ("re", s.refresh_expires_at.to_string()),
            ("lr", s.last_refreshed_at.to_string()),
        ];
        let tx = self.client.multi();
        let _: () = tx.hset(&key, fields).await?;
        let _: () = tx.expire_at(&key, s.ends_at(), None).await?;
        let _: () = tx.sadd(user_key(s.user_id), s.id.simple().to_string()).await?;
        // The index lives as long as the newest session can.
        let _: () = tx.expire_at(user_key(s.user_id), s.expires_at, None).await?;
        let _: () = tx.exec(true).await?;
        Ok(())
    }

    async fn get_session(&self, id: Uuid, now: i64) -> Result<Option<SessionRecord>> {
        let fields: HashMap<String, String> = self.client.hgetall(session_key(id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let record = parse_session(id, fields).ok_or_else(corrupt)?;
        Ok(record.is_live(now).then_some(record))
    }

    async fn rotate(
        &self,
        id: Uuid,
        presented_hash: &str,
        new_hash: &str,
        refresh_expires_at: i64,
        now: i64,
    ) -> Result<Rotation> {
        let args =
            vec![presented_hash.to_owned(), new_hash.to_owned(), refresh_expires_at.to_string(), now.to_string()];
        let reply: Vec<String> = self.rotate.evalsha_with_reload(&self.client, vec![session_key(id)], args).await?;
        let outcome = reply.first().map(String::as_str);
        if outcome == Some("expired") {
            return Ok(Rotation::Expired);
        }
        let Some(record) = self.get_session(id, now).await? else { return Ok(Rotation::Missing) };
        Ok(match outcome {
            Some("rotated") => Rotation::Rotated(record),
            Some("notcurrent") => Rotation::NotCurrent(record),
            _ => Rotation::Missing,
        })
    }

    async fn delete_session(&self, id: Uuid) -> Result<Option<Uuid>> {
        let uid: Option<String> = self.client.hget(session_key(id), "uid").await?;
        let _: () = self.client.del(session_key(id)).await?;
        let user_id = uid.and_then(|u| Uuid::parse_str(&u).ok());
        if let Some(user_id) = user_id {
            let _: () = self.client.srem(user_key(user_id), id.simple().to_string()).await?;
        }
        Ok(user_id)
    }

    async fn delete_user_sessions(&self, user_id: Uuid, keep: Option<Uuid>) -> Result<Vec<Uuid>> {
        let members: Vec<String> = self.client.smembers(user_key(user_id)).await?;
        let mut ended = Vec::new();
        for member in members {
            let Ok(id) = Uuid::parse_str(&member) else { continue };
            if Some(id) == keep {
                continue;
            }
            let _: () = self.client.del(session_key(id)).await?;
            let _: () = self.client.srem(user_key(user_id), &member).await?;
            ended.push(id);
        }
        Ok(ended)
    }

    async fn list_sessions(&self, user_id: Uuid, now: i64) -> Result<Vec<SessionRecord>> {
        let members: Vec<String> = self.client.smembers(user_key(user_id)).await?;
        let mut sessions = Vec::new();
        for member in members {
            let Ok(id) = Uuid::parse_str(&member) else { continue };
            match self.get_session(id, now).await? {
                Some(s) => sessions.push(s),
                // Expired by TTL: tidy the index.
                None => {
                    let _: () = self.client.srem(user_key(user_id), &member).await?;
                }
            }
        }
        sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(sessions)
    }

    async fn failure_state(&self, key: &str, now: i64) -> Result<FailureState> {
        let (f, lu): (Option<i64>, Option<i64>) = self.client.hmget(failure_key(key), vec!["f", "lu"]).await?;
        let locked_until = lu.unwrap_or(0);
        Ok(FailureState { failures: f.unwrap_or(0), locked_until: if locked_until > now { locked_until } else { 0 } })
    }

    async fn record_failure(&self, key: &str, now: i64, p: &LockoutPolicy) -> Result<FailureState> {
        let args = vec![now, p.threshold, p.base_seconds, p.max_seconds, p.memory_seconds()]
            .into_iter()
            .map(|v| v.to_string());
        let (failures, locked_until): (i64, i64) =
            self.fail.evalsha_with_reload(&self.client, vec![failure_key(key)], args.collect::<Vec<_>>()).await?;
        Ok(FailureState { failures, locked_until: if locked_until > now { locked_until } else { 0 } })
    }

    async fn clear_failures(&self, key: &str) -> Result<()> {
        let _: () = self.client.del(failure_key(key)).await?;
        Ok(())
    }

    async fn put_mfa_challenge(&self, token_hash: &str, user_id: Uuid, expires_at: i64) -> Result<()> {
        let key = format!("warden:mfa:{token_hash}");
        let _: () = self.client.set(&key, user_id.to_string(), Some(Expiration::EXAT(expires_at)), None, false).await?;
        Ok(())
    }

    async fn get_mfa_challenge(&self, token_hash: &str, _now: i64) -> Result<Option<Uuid>> {
        let value: Option<String> = self.client.get(format!("warden:mfa:{token_hash}")).await?;
        Ok(value.and_then(|v| Uuid::parse_str(&v).ok()))
    }

    async fn take_mfa_challenge(&self, token_hash: &str) -> Result<bool> {
        let removed: i64 = self.client.del(format!("warden:mfa:{token_hash}")).await?;
        Ok(removed == 1)
    }

    async fn ping(&self) -> bool {
        warden_common::redis::ping(&self.client).await
    }
}
