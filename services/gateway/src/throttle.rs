//! Per-client throttling of login, MFA and refresh attempts (`WARDEN_CLIENT_RATE_LIMIT`
//! per minute, burst included), with GCRA: shared through Redis when configured (every
//! gateway replica counts together), in this process otherwise.
use axum::http::HeaderMap;
use fred::prelude::*;
use fred::types::scripts::Script;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use warden_common::clock::SharedClock;
use warden_common::net::{Cidr, client_address};
use warden_common::{Error, ErrorCode, Result};

const MINUTE_MS: i64 = 60_000;
/// Entries in the in-process table before stale ones are pruned.
const LOCAL_PRUNE_AT: usize = 100_000;

const GCRA: &str = r#"
local now, interval, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local new = tat + interval
local wait = new - window - now
if wait > 0 then return wait end
redis.call('SET', KEYS[1], new, 'PX', math.max(1, new - now))
return 0
"#;

enum Backend {
    Local(Mutex<HashMap<IpAddr, i64>>),
    Redis { client: Client, script: Script },
}

pub struct ClientThrottle {
    per_minute: u32,
    trusted: Vec<Cidr>,
    backend: Backend,
    clock: SharedClock,
}

impl ClientThrottle {
    /// `per_minute` 0 turns throttling off.
    pub fn new(per_minute: u32, trusted: Vec<Cidr>, redis: Option<Client>, clock: SharedClock) -> Self {
        let backend = match redis {
            Some(client) => Backend::Redis { client, script: Script::from_lua(GCRA) },
            None => Backend::Local(Mutex::new(HashMap::new())),
        };
        ClientThrottle { per_minute, trusted, backend, clock }
    }

    pub(crate) fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        client_address(peer.ip(), forwarded, &self.trusted)
    }

    /// Counts one attempt by `client`; refuses with 429 and `Retry-After` over the limit.
    pub(crate) async fn check(&self, client: IpAddr) -> Result<()> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let interval = MINUTE_MS / i64::from(self.per_minute);
        let window = interval * i64::from(self.per_minute);
        let now = self.clock.now().unix_timestamp_nanos() as i64 / 1_000_000;
        let wait_ms = match &self.backend {
            Backend::Local(table) => {
                let mut table = table.lock().expect("throttle lock");
                if table.len() >= LOCAL_PRUNE_AT {
                    table.retain(|_, tat| *tat > now);
                }
                let tat = table.get(&client).copied().unwrap_or(now).max(now);
                let wait = tat + interval - window - now;
                if wait <= 0 {
                    table.insert(client, tat + interval);
                }
                wait
            }
            Backend::Redis { client: redis, script } => {
                let key = format!("warden:rl:client:{client}");
                let args = vec![now.to_string(), interval.to_string(), window.to_string()];
                script.evalsha_with_reload::<i64, _, _>(redis, vec![key], args).await?
            }
        };
        if wait_ms > 0 {
            tracing::info!(target: "audit", event = "client_throttled", client = %client);
            let seconds = (wait_ms as u64).div_ceil(1000);
            return Err(Error::new(ErrorCode::RateLimited, "too many attempts from this client; slow down")
                .with_retry_after(seconds)
                .with_extra("ratelimit_policy", format!("{};w=60", self.per_minute)));
        }
        Ok(())
    }
}
