//! The time budget of the request being served, carried across internal calls. The gateway
//! gives each REST request a budget; a gRPC server adopts the caller's `grpc-timeout`; every
//! internal call sends what is left as its own `grpc-timeout` (capped by
//! [`crate::grpc::CALL_TIMEOUT`]), so work is never done for a caller that has given up.
use futures_util::future::Either;
use std::future::Future;
use std::time::{Duration, Instant};

/// What the gateway allows one REST request, all internal calls included.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(8);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `f` with `deadline` as the current request's deadline (none: keeps the outer one, read
/// here, where the caller builds the future). Not an `async fn`: that would hold `f` twice in
/// every request's future, as its argument and inside the scope it awaits.
pub fn within<F: Future>(deadline: Option<Instant>, f: F) -> impl Future<Output = F::Output> {
    match deadline {
        Some(d) => Either::Left(DEADLINE.scope(current().map_or(d, |outer| outer.min(d)), f)),
        None => Either::Right(f),
    }
}

/// The current request's deadline, if one is set.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Time left before the current deadline (zero once passed), if one is set.
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// Parses a gRPC `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Formats a duration as a `grpc-timeout` value, in microseconds while that fits in the
/// eight digits allowed, otherwise milliseconds.
pub fn format_grpc_timeout(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 100_000_000 { format!("{}u", micros.max(1)) } else { format!("{}m", d.as_millis().min(99_999_999)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_round_trips() {
        for d in [Duration::from_micros(1), Duration::from_millis(250), Duration::from_secs(5)] {
            assert_eq!(parse_grpc_timeout(&format_grpc_timeout(d)), Some(d));
        }
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("1x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }

    #[tokio::test]
    async fn the_shorter_deadline_wins() {
        assert!(remaining().is_none());
        let soon = Instant::now() + Duration::from_millis(100);
        let later = Instant::now() + Duration::from_secs(100);
        within(Some(soon), async {
            within(Some(later), async { assert_eq!(current(), Some(soon)) }).await;
            within(None, async { assert_eq!(current(), Some(soon)) }).await;
        })
        .await;
    }
}
