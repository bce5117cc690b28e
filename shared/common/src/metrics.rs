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
//! | `warden_tls_reloads_total` | `outcome` (`reloaded`, `rejected`) |
use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpListener;

/// Histogram buckets (seconds) of every latency metric: from a cached token check to a
/// login waiting for a password hash.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the global recorder once (tests start several services in one process) and
/// returns its handle; `None` when another recorder was installed first.
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
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
    let (service, method) = match (code, path.trim_start_matches('/').split_once('/')) {
        (tonic::Code::Unimplemented, _) | (_, None) => ("unknown", "unknown"),
        (_, Some(parts)) => parts,
    };
    let labels = [("service", service.to_owned()), ("method", method.to_owned()), ("code", code_name(code).to_owned())];
    metrics::counter!("warden_grpc_server_requests_total", &labels).increment(1);
    metrics::histogram!("warden_grpc_server_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
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
