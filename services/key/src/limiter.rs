//! Per-key rate limiting with GCRA (generic cell rate algorithm): a key limited to N per minute
//! may burst N requests, then gets one more every 60/N seconds. The only state is the
//! "theoretical arrival time" (TAT) per key.
//!
//! With Redis the state lives there (one atomic script, shared by every replica, each key with
//! a TTL) and the same script checks the key's revocation marker. Without Redis (embedded mode,
//! one process) it lives in this process. Time always comes from the injected clock.
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// Microseconds per minute.
const MINUTE_US: i64 = 60_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed {
        remaining: u32,
    },
    Limited {
        retry_after: u64,
    },
    /// Only from Redis: another replica revoked the key.
    Revoked,
}

/// The emission interval and burst window, both in microseconds, for `limit` per minute.
fn params(limit: u32) -> (i64, i64) {
    let interval = MINUTE_US / i64::from(limit.max(1));
    (interval, interval * i64::from(limit.max(1)))
}

fn retry_after_secs(wait_us: i64) -> u64 {
    u64::try_from(wait_us.max(1)).unwrap_or(1).div_ceil(1_000_000)
}

/// One GCRA step: the new TAT to store (if allowed) and the verdict.
fn gcra(tat: Option<i64>, now_us: i64, limit: u32) -> (Option<i64>, Verdict) {
    let (interval, window) = params(limit);
    let tat = tat.unwrap_or(now_us).max(now_us);
    let new_tat = tat + interval;
    let wait = new_tat - window - now_us;
    if wait > 0 {
        return (None, Verdict::Limited { retry_after: retry_after_secs(wait) });
    }
    let remaining = ((now_us + window - new_tat) / interval).clamp(0, i64::from(u32::MAX));
    (Some(new_tat), Verdict::Allowed { remaining: remaining as u32 })
}

/// In-process limiter for embedded mode.
#[derive(Default)]
pub(crate) struct LocalLimiter {
    state: Mutex<LocalState>,
}

#[derive(Default)]
struct LocalState {
    tats: HashMap<Uuid, i64>,
    checks: u64,
}

impl LocalLimiter {
    pub(crate) fn check(&self, id: Uuid, limit: u32, now_us: i64) -> Verdict {
        if limit == 0 {
            return Verdict::Allowed { remaining: u32::MAX };
        }
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.checks += 1;
        if state.checks.is_multiple_of(4096) {
            // A TAT in the past means "full bucket", the same as no entry: drop those.
            state.tats.retain(|_, tat| *tat > now_us);
        }
        let (new_tat, verdict) = gcra(state.tats.get(&id).copied(), now_us, limit);
        if let Some(tat) = new_tat {
            state.tats.insert(id, tat);
        }
        verdict
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap().tats.len()
    }
}

/// KEYS[1] revocation marker, KEYS[2] GCRA state; ARGV now (µs), interval (µs, 0 = unlimited),
/// window (µs). Returns {0 allowed | 1 limited | 2 revoked, remaining, wait µs}. Numbers are
/// formatted with %.0f because Redis' Lua turns large numbers into "1.7e+15" otherwise.
pub(crate) const SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {2, 0, 0}
end
local interval = tonumber(ARGV[2])
if interval == 0 then
  return {0, 0, 0}
end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[2])) or now
if tat < now then
  tat = now
end
local new_tat = tat + interval
local wait = new_tat - window - now
if wait > 0 then
  return {1, 0, wait}
end
redis.call('SET', KEYS[2], string.format('%.0f', new_tat), 'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
return {0, math.floor((now + window - new_tat) / interval), 0}
"#;

/// Redis key names carry the id in a hash tag so both keys of the script share a Cluster slot.
pub(crate) fn rate_key(id: Uuid) -> String {
    format!("warden:rl:key:{{{id}}}")
}

pub(crate) fn revoked_key(id: Uuid) -> String {
    format!("warden:revoked:key:{{{id}}}")
}

/// Arguments for [`SCRIPT`].
pub(crate) fn script_args(limit: u32, now_us: i64) -> Vec<String> {
    if limit == 0 {
        return vec![now_us.to_string(), "0".into(), "0".into()];
    }
    let (interval, window) = params(limit);
    vec![now_us.to_string(), interval.to_string(), window.to_string()]
}

/// Reads the script's reply.
pub(crate) fn script_verdict(limit: u32, reply: &[i64]) -> Option<Verdict> {
    match reply {
        [2, ..] => Some(Verdict::Revoked),
        [0, _, _] if limit == 0 => Some(Verdict::Allowed { remaining: u32::MAX }),
        [0, remaining, _] => Some(Verdict::Allowed { remaining: (*remaining).clamp(0, i64::from(u32::MAX)) as u32 }),
        [1, _, wait] => Some(Verdict::Limited { retry_after: retry_after_secs(*wait) }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_limited_then_refill() {
        let limiter = LocalLimiter::default();
        let id = Uuid::new_v4();
        let t0 = 1_800_000_000_000_000;
        for i in 0..3 {
            assert_eq!(limiter.check(id, 3, t0), Verdict::Allowed { remaining: 2 - i });
        }
        assert_eq!(limiter.check(id, 3, t0), Verdict::Limited { retry_after: 20 });
        // One interval later exactly one more request fits.
        assert_eq!(limiter.check(id, 3, t0 + 20_000_000), Verdict::Allowed { remaining: 0 });
        assert!(matches!(limiter.check(id, 3, t0 + 20_000_000), Verdict::Limited { .. }));
        // A full minute later the whole burst is back.
        assert_eq!(limiter.check(id, 3, t0 + 80_000_000), Verdict::Allowed { remaining: 2 });
        // Other keys are independent; unlimited keys are not tracked.
        assert_eq!(limiter.check(Uuid::new_v4(), 1, t0), Verdict::Allowed { remaining: 0 });
        assert_eq!(limiter.check(Uuid::new_v4(), 0, t0), Verdict::Allowed { remaining: u32::MAX });
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn high_limits_and_retry_rounding() {
        let limiter = LocalLimiter::default();
        let id = Uuid::new_v4();
        let t0 = 1_800_000_000_000_000;
        for _ in 0..1_000_000 {
            assert!(matches!(limiter.check(id, 1_000_000, t0), Verdict::Allowed { .. }));
        }
        assert_eq!(limiter.check(id, 1_000_000, t0), Verdict::Limited { retry_after: 1 });
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(1_000_001), 2);
    }

    #[test]
    fn stale_entries_are_pruned() {
        let limiter = LocalLimiter::default();
        let t0 = 1_800_000_000_000_000;
        for _ in 0..4095 {
            limiter.check(Uuid::new_v4(), 10, t0);
        }
        assert_eq!(limiter.len(), 4095);
        limiter.check(Uuid::new_v4(), 10, t0 + 2 * MINUTE_US);
        assert_eq!(limiter.len(), 1);
    }
}
