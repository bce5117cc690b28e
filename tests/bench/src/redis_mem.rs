//! Redis bytes per login session: log in N times, then `MEMORY USAGE` of each new
//! `warden:sess:<id>` hash plus the growth of the user's `warden:usess:<user>` index.
use crate::fixtures::{self, jwt_part};
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

#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionBytes {
    pub sessions: usize,
    /// Average `MEMORY USAGE` of one `warden:sess:*` hash.
    pub session_key: f64,
    /// Growth of the user's session index per session.
    pub index_share: f64,
}

impl SessionBytes {
    pub fn per_session(&self) -> f64 {
        self.session_key + self.index_share
    }
}

fn simple_uuid(s: &str) -> anyhow::Result<String> {
    Ok(uuid::Uuid::parse_str(s)?.simple().to_string())
}

pub async fn session_bytes(redis_url: &str, fx: &fixtures::Fixture, logins: usize) -> anyhow::Result<SessionBytes> {
    let client = connect(redis_url).await?;
    let index = format!("warden:usess:{}", simple_uuid(&fx.user_id)?);
    let before = memory_usage(&client, &index).await?;
    let http = fixtures::client();
    let base = format!("http://{}", fx.http);
    let mut keys = Vec::with_capacity(logins);
    for _ in 0..logins {
        let login = fixtures::login(&http, &base, &fx.username, &fx.password).await?;
        let sid = jwt_part(&login.refresh_token, 1)?["sid"].as_str().context("refresh token has no sid")?.to_owned();
        keys.push(format!("warden:sess:{}", simple_uuid(&sid)?));
    }
    let mut total = 0;
    for key in &keys {
        let bytes = memory_usage(&client, key).await?;
        anyhow::ensure!(bytes > 0, "{key} is not in redis: does the session store still use warden:sess:*?");
        total += bytes;
    }
    let after = memory_usage(&client, &index).await?;
    client.quit().await.ok();
    let n = logins.max(1) as f64;
    Ok(SessionBytes {
        sessions: logins,
        session_key: total as f64 / n,
        index_share: after.saturating_sub(before) as f64 / n,
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
