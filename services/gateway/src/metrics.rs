//! Per-request observability: request counts and latency per route (the recorder is the
//! process-wide one of `warden_common::metrics`), an `http.server` span that continues the
//! caller's W3C `traceparent`, and the request's time budget, which internal gRPC calls
//! carry as their `grpc-timeout`.
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;
use std::time::Instant;
use tracing::Instrument;
use warden_common::deadline;

/// Installs the global recorder once (tests start several gateways in one process).
pub fn recorder() -> Option<PrometheusHandle> {
    warden_common::metrics::recorder()
}

pub(crate) async fn track(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_owned();
    let span = if warden_common::telemetry::request_spans() {
        tracing::info_span!(
            "http.server",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
        )
    } else {
        tracing::Span::none()
    };
    warden_common::telemetry::set_parent(&span, request.headers());
    let budget = Some(start + deadline::REQUEST_BUDGET);
    let response = deadline::within(budget, next.run(request)).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    let labels = [("method", method), ("route", route), ("status", status.to_string())];
    metrics::counter!("warden_http_requests_total", &labels).increment(1);
    metrics::histogram!("warden_http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    response
}
