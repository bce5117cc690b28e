//! Redis bytes per login session: `MEMORY USAGE` of a fresh user's `warden:sessions:<user>`
//! hash after its first login, and the growth of the bench admin's hash over N logins.
use crate::fixtures;
use anyhow::Context;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand};

/// The bench's Redis URL: `base` with its database index replaced by `db`, so the bench
/// only ever touches (and at the end deletes) keys in a database of its own.
pub fn with_db(base: &str, db: u8) -> String {
    let (scheme, rest) = base.split_once("://").unwrap_or(("redis", base));
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}/{db}")
}

pub(crate) async fn connect(url: &str) -> anyhow::Result<Client> {
    let client = Builder::from_config(Config::from_url(url)?).build()?;
    client.init().await.context("connect to redis")?;
    Ok(client)
}

fn command(name: &'static str) -> CustomCommand {
    CustomCommand::new(name, ClusterHash::FirstKey, false)
}

async fn memory_usage(client: &Client, key: &str) -> anyhow::Result<u64> {
    let bytes: Option<i64> = client.custom(command("MEMORY"), vec!["USAGE", key, "SAMPLES", "0"]).await?;
    Ok(bytes.unwrap_or(0).max(0) as u64)
}

/// `used_memory` from `INFO memory`: everything the Redis server holds for its data.
pub(crate) async fn used_memory(client: &Client) -> anyhow::Result<u64> {
    let info: String = client.info(Some(fred::types::InfoKind::Memory)).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// Per key, what `MEMORY USAGE` leaves out: the key's entry in the expiry table (a 24-byte
/// dictEntry in jemalloc's 32-byte class) and its share of the two tables' bucket arrays
/// (8 bytes a bucket, at most two buckets per key before a rehash halves it).
pub const KEYSPACE_OVERHEAD: u64 = 32 + 2 * 16;

#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionBytes {
    /// Logins counted for `further`.
    pub sessions: usize,
    /// A user's only session: `MEMORY USAGE` of its `warden:sessions:<user>` hash, plus
    /// [`KEYSPACE_OVERHEAD`]. The worst case, and what a population of one-session users costs.
    pub first: f64,
    /// Each further session of a user: growth of that user's hash per login.
    pub further: f64,
}

impl SessionBytes {
    pub fn per_session(&self) -> f64 {
        self.first.max(self.further)
    }
}

fn user_key(id: &str) -> anyhow::Result<String> {
    Ok(format!("warden:sessions:{}", uuid::Uuid::parse_str(id)?.simple()))
}

/// A fresh user with one session, then `logins` sessions of the bench admin.
pub async fn session_bytes(redis_url: &str, fx: &fixtures::Fixture, logins: usize) -> anyhow::Result<SessionBytes> {
    let client = connect(redis_url).await?;
    let http = fixtures::client();
    let base = format!("http://{}", fx.http);

    let (username, password) = (format!("bench-mem-{}", uuid::Uuid::new_v4().simple()), "Bench-memory-9-Password!");
    let created: serde_json::Value = http
        .post(format!("{base}/api/v1/admin/users"))
        .bearer_auth(&fx.access_token)
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let fresh = user_key(created["id"].as_str().context("created user has no id")?)?;
    fixtures::login(&http, &base, &username, password).await?;
    let first = memory_usage(&client, &fresh).await?;
    anyhow::ensure!(first > 0, "{fresh} is not in redis: does the session store still use warden:sessions:<user>?");

    let admin = user_key(&fx.user_id)?;
    let before = memory_usage(&client, &admin).await?;
    for _ in 0..logins {
        fixtures::login(&http, &base, &fx.username, &fx.password).await?;
    }
    let after = memory_usage(&client, &admin).await?;
    client.quit().await.ok();
    Ok(SessionBytes {
        sessions: logins,
        first: (first + KEYSPACE_OVERHEAD) as f64,
        further: after.saturating_sub(before) as f64 / logins.max(1) as f64,
    })
}

/// Deletes every `warden:*` key in the bench's own Redis database.
pub async fn delete_warden_keys(redis_url: &str) -> anyhow::Result<()> {
    let client = connect(redis_url).await?;
    let mut cursor = "0".to_owned();
    loop {
        let reply: Value =
            client.custom(command("SCAN"), vec![cursor.as_str(), "MATCH", "warden:*", "COUNT", "1000"]).await?;
        let mut parts = reply.into_array().into_iter();
        cursor = parts.next().and_then(|c| c.as_string()).context("SCAN answered no cursor")?;
        let keys: Vec<String> =
            parts.next().map(Value::into_array).unwrap_or_default().iter().filter_map(Value::as_string).collect();
        if !keys.is_empty() {
            let _: i64 = client.custom(command("DEL"), keys).await?;
        }
        if cursor == "0" {
            break;
        }
    }
    client.quit().await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_db;

    #[test]
    fn the_bench_always_uses_its_own_database_index() {
        assert_eq!(with_db("redis://127.0.0.1:6379", 13), "redis://127.0.0.1:6379/13");
        assert_eq!(with_db("redis://127.0.0.1:6379/0", 13), "redis://127.0.0.1:6379/13");
        assert_eq!(with_db("redis://:pw@host:1/2?x=1", 9), "redis://:pw@host:1/9");
    }
}
