//! Session store on Redis. Every key has a TTL; the multi-step updates are Lua scripts so
//! concurrent requests see them as one step.
//!
//! All sessions of a user live in one hash, `warden:sessions:<user>`, two fields a session:
//! `<id>h` holds the current and the previous refresh-token hash (raw SHA-256, 32 + 32 bytes)
//! and `<id>t` the times (`created expires refresh_expires last_refreshed rotated`, decimal),
//! where `<id>` is the session id's 16 raw bytes. Both stay under Redis' listpack limits
//! (64-byte values), so a user with up to 64 sessions costs one small key: about 300 bytes for
//! a user's only session and 120 for each further one (BENCHMARKS.md), against ~630 when every
//! session and every user's index were keys of their own. Ending all of a user's sessions is
//! one script. The key lives as long as its longest-lived session; ended sessions are pruned
//! by logins (amortised: when the hash has doubled since the last prune), and a refresh that
//! finds its session ended deletes it.
use super::login_read::{self, Counter};
use super::{FailureState, LockoutPolicy, LoginUser, Rotation, SessionRecord, SessionStore};
use fred::prelude::*;
use fred::types::scripts::Script;
use std::collections::HashMap;
use uuid::Uuid;
use warden_common::db::Db;
use warden_common::secret::sha256_hex;
use warden_common::{Error, Result};

/// KEYS[1] the user's hash; ARGV: id, hashes, times, end, now. Adds the session, prunes ended
/// ones once the hash has doubled since the last prune (field `p` remembers its size then),
/// and keeps the key alive until the longest-lived session ends.
const CREATE: &str = r#"
local id, now, ends = ARGV[1], tonumber(ARGV[5]), tonumber(ARGV[4])
redis.call('HSET', KEYS[1], id .. 'h', ARGV[2], id .. 't', ARGV[3])
local size = redis.call('HLEN', KEYS[1])
local mark = tonumber(redis.call('HGET', KEYS[1], 'p') or '0')
if size >= 2 * mark + 32 then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    if #f == 17 and string.sub(f, 17) == 't' then
      local _, e, re = string.match(v, '^(%d+) (%d+) (%d+)')
      local fend = math.min(tonumber(e), tonumber(re))
      if fend <= now then
        redis.call('HDEL', KEYS[1], f, string.sub(f, 1, 16) .. 'h')
      elseif fend > ends then
        ends = fend
      end
    end
  end
  redis.call('HSET', KEYS[1], 'p', redis.call('HLEN', KEYS[1]))
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or now * 1000 + ttl < ends * 1000 then
  redis.call('EXPIREAT', KEYS[1], ends)
end
return size
"#;

/// KEYS[1] the user's hash; ARGV: id, presented hash, new hash, refresh_expires_at, now.
/// Compare-and-swap of the current refresh hash; answers the outcome and the record as it is
/// after the script, so a rotation is one round trip.
const ROTATE: &str = r#"
local id, now = ARGV[1], tonumber(ARGV[5])
local v = redis.call('HMGET', KEYS[1], id .. 'h', id .. 't')
if not v[1] or not v[2] then return {'missing'} end
local c, e, re = string.match(v[2], '^(%d+) (%d+) (%d+)')
if now >= tonumber(e) or now >= tonumber(re) then
  redis.call('HDEL', KEYS[1], id .. 'h', id .. 't')
  return {'expired'}
end
if string.sub(v[1], 1, 32) ~= ARGV[2] then return {'notcurrent', v[1], v[2]} end
local hashes = ARGV[3] .. ARGV[2]
local times = c .. ' ' .. e .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ARGV[5]
redis.call('HSET', KEYS[1], id .. 'h', hashes, id .. 't', times)
local ends = math.min(tonumber(e), tonumber(ARGV[4]))
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or now * 1000 + ttl < ends * 1000 then
  redis.call('EXPIREAT', KEYS[1], ends)
end
return {'rotated', hashes, times}
"#;

/// KEYS[1] the user's hash; ARGV[1] the session to keep (empty: none). Ends every other
/// session at once and answers the ids of the live ones it ended.
const END_ALL: &str = r#"
local keep, now = ARGV[1], tonumber(ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
local ended, kept = {}, {}
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  local id = string.sub(f, 1, 16)
  if #f == 17 and id == keep then
    table.insert(kept, f)
    table.insert(kept, v)
  elseif #f == 17 and string.sub(f, 17) == 't' then
    local _, e, re = string.match(v, '^(%d+) (%d+) (%d+)')
    if math.min(tonumber(e), tonumber(re)) > now then table.insert(ended, id) end
  end
end
if #kept == 0 then
  redis.call('DEL', KEYS[1])
else
  local ttl = redis.call('PTTL', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], unpack(kept))
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return ended
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
    create: Script,
    rotate: Script,
    end_all: Script,
    fail: Script,
}

impl RedisStore {
    pub fn new(client: Client) -> Self {
        RedisStore {
            client,
            create: Script::from_lua(CREATE),
            rotate: Script::from_lua(ROTATE),
            end_all: Script::from_lua(END_ALL),
            fail: Script::from_lua(FAIL),
        }
    }
}

fn user_key(user_id: Uuid) -> String {
    format!("warden:sessions:{}", user_id.simple())
}

/// A session's two fields in its user's hash.
fn fields(id: Uuid) -> [Key; 2] {
    let field = |suffix: u8| {
        let mut f = id.as_bytes().to_vec();
        f.push(suffix);
        Key::from(f.into_boxed_slice())
    };
    [field(b'h'), field(b't')]
}

/// Failure counters are keyed by a hash, so usernames never appear in Redis.
fn failure_key(key: &str) -> String {
    format!("warden:fail:{}", sha256_hex(key))
}

fn corrupt() -> Error {
    Error::internal(anyhow::anyhow!("unreadable session record in redis"))
}

/// The stored form of a refresh-token hash: the raw 32 bytes of the hex digest.
fn raw_hash(hex_digest: &str) -> Result<Vec<u8>> {
    hex::decode(hex_digest)
        .ok()
        .filter(|h| h.len() == 32)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("not a SHA-256 hex digest")))
}

fn times(s: &SessionRecord) -> String {
    format!("{} {} {} {} {}", s.created_at, s.expires_at, s.refresh_expires_at, s.last_refreshed_at, s.rotated_at)
}

fn hashes(s: &SessionRecord) -> Result<Vec<u8>> {
    let mut raw = raw_hash(&s.refresh_hash)?;
    if let Some(previous) = &s.previous_hash {
        raw.extend(raw_hash(previous)?);
    }
    Ok(raw)
}

/// A record from its two fields; `None` if they are not what this store writes.
fn parse(id: Uuid, user_id: Uuid, hashes: &[u8], times: &[u8]) -> Option<SessionRecord> {
    let mut t = std::str::from_utf8(times).ok()?.split(' ').map(|n| n.parse::<i64>().ok());
    let [created_at, expires_at, refresh_expires_at, last_refreshed_at, rotated_at] =
        [t.next()??, t.next()??, t.next()??, t.next()??, t.next()??];
    let (current, previous) = match hashes.len() {
        32 => (hashes, None),
        64 => (&hashes[..32], Some(hex::encode(&hashes[32..]))),
        _ => return None,
    };
    Some(SessionRecord {
        id,
        user_id,
        refresh_hash: hex::encode(current),
        created_at,
        expires_at,
        refresh_expires_at,
        last_refreshed_at,
        previous_hash: previous,
        rotated_at,
    })
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Bytes(b) => Some(b),
        Value::String(s) => Some(s.as_bytes()),
        _ => None,
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn create_session(&self, s: &SessionRecord) -> Result<()> {
        let args: Vec<Value> = vec![
            Value::Bytes(s.id.as_bytes().to_vec().into()),
            Value::Bytes(hashes(s)?.into()),
            Value::from(times(s)),
            Value::from(s.ends_at()),
            Value::from(s.created_at),
        ];
        let _: i64 = self.create.evalsha_with_reload(&self.client, vec![user_key(s.user_id)], args).await?;
        Ok(())
    }

    async fn get_session(&self, user_id: Uuid, id: Uuid, now: i64) -> Result<Option<SessionRecord>> {
        let [h, t] = fields(id);
        let values: Vec<Value> = self.client.hmget(user_key(user_id), &[h, t]).await?;
        let (Some(hashes), Some(times)) = (values.first().and_then(bytes), values.get(1).and_then(bytes)) else {
            return Ok(None);
        };
        let record = parse(id, user_id, hashes, times).ok_or_else(corrupt)?;
        Ok(record.is_live(now).then_some(record))
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
        let args: Vec<Value> = vec![
            Value::Bytes(id.as_bytes().to_vec().into()),
            Value::Bytes(raw_hash(presented_hash)?.into()),
            Value::Bytes(raw_hash(new_hash)?.into()),
            Value::from(refresh_expires_at),
            Value::from(now),
        ];
        let reply: Vec<Value> = self.rotate.evalsha_with_reload(&self.client, vec![user_key(user_id)], args).await?;
        let record = || match (reply.get(1).and_then(bytes), reply.get(2).and_then(bytes)) {
            (Some(h), Some(t)) => parse(id, user_id, h, t).ok_or_else(corrupt),
            _ => Err(corrupt()),
        };
        Ok(match reply.first().and_then(bytes) {
            Some(b"rotated") => Rotation::Rotated(record()?),
            Some(b"notcurrent") => Rotation::NotCurrent(record()?),
            Some(b"expired") => Rotation::Expired,
            _ => Rotation::Missing,
        })
    }

    async fn delete_session(&self, user_id: Uuid, id: Uuid) -> Result<bool> {
        let removed: i64 = self.client.hdel(user_key(user_id), &fields(id)).await?;
        Ok(removed > 0)
    }

    async fn delete_user_sessions(&self, user_id: Uuid, keep: Option<Uuid>, now: i64) -> Result<Vec<Uuid>> {
        let keep = keep.map(|k| k.as_bytes().to_vec()).unwrap_or_default();
        let args: Vec<Value> = vec![Value::Bytes(keep.into()), Value::from(now)];
        let ended: Vec<Value> = self.end_all.evalsha_with_reload(&self.client, vec![user_key(user_id)], args).await?;
        Ok(ended.iter().filter_map(bytes).filter_map(|b| Uuid::from_slice(b).ok()).collect())
    }

    async fn list_sessions(&self, user_id: Uuid, now: i64) -> Result<Vec<SessionRecord>> {
        let all: Vec<Value> = self.client.hgetall::<Value, _>(user_key(user_id)).await?.into_array();
        let by_field: HashMap<&[u8], &[u8]> =
            all.chunks_exact(2).filter_map(|pair| Some((bytes(&pair[0])?, bytes(&pair[1])?))).collect();
        let mut sessions = Vec::new();
        for (field, times) in &by_field {
            let Some((id, b"t")) = field.split_at_checked(16) else { continue };
            let Ok(id) = Uuid::from_slice(id) else { continue };
            let [h, _] = fields(id);
            let Some(hashes) = by_field.get(h.as_bytes()) else { continue };
            // Ended but not yet pruned: not a session any more.
            if let Some(s) = parse(id, user_id, hashes, times).filter(|s| s.is_live(now)) {
                sessions.push(s);
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

    /// The counter in Redis and the account in the database, read side by side.
    async fn login_state(&self, key: &str, now: i64, accounts: &Db) -> Result<(FailureState, Option<LoginUser>)> {
        let (state, read) =
            tokio::try_join!(self.failure_state(key, now), login_read::read(accounts, key, Counter::Elsewhere))?;
        Ok((state, read.user))
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
