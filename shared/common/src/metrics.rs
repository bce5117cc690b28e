//! Prometheus metrics: one recorder per process, rendered by the gateway's `/metrics` or,
//! in a split service, by the optional listener on `WARDEN_METRICS_ADDR` ([`serve`]).
//! Besides per-route and per-RPC counts and latencies, the business counters:
//!
//! | metric | labels |
//! | --- | --- |
//! | `warden_grpc_server_requests_total`, `warden_grpc_server_request_duration_seconds` | `service`, `method`, `code` |
//! | `warden_login_attempts_total` | `outcome` (`success`, `mfa_required`, `invalid_credentials`, `locked`, …) |
//! | `warden_lockouts_total` | |
//! | `warden_refresh_reuse_detected_total` | |
//! | `warden_api_key_validations_total` | `outcome` |
//! | `warden_authorization_decisions_total` | `decision` (`allow`, `deny`) |
//! | `warden_password_hash_queue_depth` (gauge) | |
//! | `warden_password_hash_rescued_total` (hashes the nice-10 rescue threads computed: no idle CPU) | |
//! | `warden_tls_reloads_total` | `outcome` (`reloaded`, `rejected`) |
use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{LazyLock, OnceLock, PoisonError, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// Histogram buckets (seconds) of every latency metric: from a cached token check to a
/// login waiting for a password hash.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Whether Warden's recorder is the process's (without installing it).
fn installed() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

/// Installs the global recorder once (tests start several services in one process) and
/// returns its handle; `None` when another recorder was installed first.
pub fn recorder() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .expect("latency buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            spawn_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample until upkeep folds it into the buckets; with
/// nobody scraping, that is 8 bytes a request forever (RSS grew ~20 MiB per benchmark
/// scenario). A plain thread, since the recorder may be installed outside a runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new().name("warden-metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        }
    });
    if let Err(e) = started {
        tracing::warn!(error = %e, "metrics upkeep thread did not start; histograms grow until scraped");
    }
}

/// The Prometheus text of every metric of this process.
pub fn render() -> String {
    recorder().map(|h| h.render()).unwrap_or_default()
}

/// Counts one served RPC and its latency. `path` is the gRPC path
/// (`/warden.auth.v1.AuthService/Login`); calls to unknown methods are counted under
/// `unknown`, so a caller cannot mint label values.
pub fn record_rpc(path: &str, code: tonic::Code, elapsed: Duration) {
    static RPCS: LazyLock<TimedCache<i32>> = LazyLock::new(TimedCache::default);
    let register = || {
        let (service, method) = match (code, path.trim_start_matches('/').split_once('/')) {
            (tonic::Code::Unimplemented, _) | (_, None) => ("unknown", "unknown"),
            (_, Some(parts)) => parts,
        };
        let labels =
            [("service", service.to_owned()), ("method", method.to_owned()), ("code", code_name(code).to_owned())];
        Timed::register("warden_grpc_server_requests_total", "warden_grpc_server_request_duration_seconds", &labels)
    };
    if code == tonic::Code::Unimplemented {
        // Paths nothing serves are the caller's to invent: never kept.
        register().record(elapsed);
    } else {
        RPCS.record(code as i32, path, elapsed, register);
    }
}

/// A request counter and its latency histogram under one label set.
pub struct Timed {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

impl Timed {
    pub fn register(requests: &'static str, duration: &'static str, labels: &[(&'static str, String)]) -> Timed {
        Timed { requests: metrics::counter!(requests, labels), duration: metrics::histogram!(duration, labels) }
    }

    pub fn record(&self, elapsed: Duration) {
        self.requests.increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }
}

/// Label sets most kept in one [`TimedCache`]; past it, metrics are registered per call.
const CACHED_LABEL_SETS: usize = 1024;

/// Keeps the [`Timed`] handles of each label set, keyed by a small value and a name (an RPC
/// path, a route). Registering a metric hashes and copies its labels and looks it up in the
/// recorder's registry, on every call; at tens of thousands of calls a second that is worth
/// doing once. Callers key it only by values drawn from a bounded set (routes, served RPCs,
/// status codes); the cap guards against a mistake.
pub struct TimedCache<K> {
    entries: RwLock<HashMap<K, HashMap<String, Timed>>>,
}

impl<K> Default for TimedCache<K> {
    fn default() -> Self {
        TimedCache { entries: RwLock::new(HashMap::new()) }
    }
}

impl<K: Copy + Eq + Hash> TimedCache<K> {
    /// Records `elapsed` under the handles kept for (`key`, `name`), made by `register` the
    /// first time. They are kept only once Warden's recorder is installed (a process that
    /// serves no metrics, or has another recorder, registers per call as without the cache).
    pub fn record(&self, key: K, name: &str, elapsed: Duration, register: impl FnOnce() -> Timed) {
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(timed) = entries.get(&key).and_then(|names| names.get(name)) {
                timed.record(elapsed);
                return;
            }
        }
        // Checked first: handles registered before Warden's recorder is installed are no-ops
        // for good, and must not be kept.
        let ours = installed();
        let timed = register();
        timed.record(elapsed);
        if !ours {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.values().map(HashMap::len).sum::<usize>() < CACHED_LABEL_SETS {
            entries.entry(key).or_default().entry(name.to_owned()).or_insert(timed);
        }
    }
}

/// The canonical name of a gRPC status code (`OK`, `UNAUTHENTICATED`, …).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `GET /metrics` on `listener` until `stop` completes (split services, which have
/// no gateway to render their metrics).
pub async fn serve(listener: TcpListener, stop: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    recorder();
    let app = Router::new().route("/metrics", get(|| async { render() }));
    axum::serve(listener, app).with_graceful_shutdown(stop).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(rendered: &str, line_start: &str) -> Option<u64> {
        rendered.lines().find(|l| l.starts_with(line_start))?.rsplit(' ').next()?.parse().ok()
    }

    #[test]
    fn kept_handles_count_like_fresh_ones() {
        recorder().expect("this test binary installs no other recorder");
        let path = "/warden.test.v1.Cached/Call";
        for _ in 0..3 {
            record_rpc(path, tonic::Code::Ok, Duration::from_micros(300));
        }
        record_rpc(path, tonic::Code::NotFound, Duration::from_micros(300));
        let text = render();
        let ok = r#"warden_grpc_server_requests_total{service="warden.test.v1.Cached",method="Call",code="OK"}"#;
        let not_found =
            r#"warden_grpc_server_requests_total{service="warden.test.v1.Cached",method="Call",code="NOT_FOUND"}"#;
        assert_eq!(count(&text, ok), Some(3), "{text}");
        assert_eq!(count(&text, not_found), Some(1), "{text}");
    }

    #[test]
    fn invented_paths_are_counted_as_unknown_and_not_kept() {
        recorder().expect("this test binary installs no other recorder");
        for i in 0..5 {
            record_rpc(&format!("/made.up.v1.Service{i}/Method"), tonic::Code::Unimplemented, Duration::ZERO);
        }
        let text = render();
        assert!(!text.contains("made.up"), "{text}");
        let unknown = r#"warden_grpc_server_requests_total{service="unknown",method="unknown",code="UNIMPLEMENTED"}"#;
        assert!(count(&text, unknown).is_some_and(|n| n >= 5), "{text}");
    }

    #[test]
    fn the_cache_stops_keeping_at_its_cap() {
        recorder().expect("this test binary installs no other recorder");
        let cache = TimedCache::<u8>::default();
        for i in 0..CACHED_LABEL_SETS + 10 {
            let name = format!("/cap/{i}");
            cache.record(0, &name, Duration::ZERO, || {
                Timed::register("warden_test_cap_total", "warden_test_cap_seconds", &[("n", name.clone())])
            });
        }
        let kept: usize = cache.entries.read().unwrap().values().map(HashMap::len).sum();
        assert_eq!(kept, CACHED_LABEL_SETS);
    }
}
