//! Per-request observability: request counts and latency per route (the recorder is the
//! process-wide one of `warden_common::metrics`), an `http.server` span that continues the
//! caller's W3C `traceparent`, and the request's time budget, which internal gRPC calls
//! carry as their `grpc-timeout`.
use crate::around::Around;
use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use futures_util::FutureExt;
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Instant;
use tower::Service;
use tracing::Instrument;
use warden_common::deadline;
use warden_common::metrics::{Timed, TimedCache};

/// Installs the global recorder once (tests start several gateways in one process).
pub fn recorder() -> Option<PrometheusHandle> {
    warden_common::metrics::recorder()
}

/// Around the whole router: counts and times every request under its route template, runs
/// it in its span and within its time budget.
#[derive(Clone, Copy)]
pub(crate) struct Track;

impl Around for Track {
    fn around<S>(
        &self,
        request: Request,
        inner: S,
    ) -> impl Future<Output = Result<Response, Infallible>> + Send + 'static
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        track(request, inner)
    }
}

/// Not an `async fn`, nor an async block around the served future: either would keep the
/// router's future (and the request) beside the future that awaits it, twice in every
/// request's box. The route's future is built here, in the request's span and under no
/// outer deadline (there is none above the gateway), as it would have been on first poll.
fn track<S>(request: Request, mut inner: S) -> impl Future<Output = Result<Response, Infallible>> + use<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let start = Instant::now();
    // The template is shared (`Arc<str>`): no copy per request.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = method_label(request.method());
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
    let served = span.in_scope(|| inner.call(request)).map(|Ok(response)| response);
    let timed =
        tokio::time::timeout(deadline::REQUEST_BUDGET, deadline::within(budget, served)).instrument(span.clone());
    timed.map(move |timed| {
        // In the span, as the answer's log line (a spent budget is logged as a server fault) belongs to the request.
        let response = span.in_scope(|| budget_answer(timed));
        let status = response.status().as_u16();
        span.record("http.response.status_code", status);
        let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
        static ROUTES: LazyLock<TimedCache<(&'static str, u16)>> = LazyLock::new(TimedCache::default);
        // Route labels are the router's templates (or "unmatched"): a bounded set.
        ROUTES.record((method, status), route, start.elapsed(), || {
            let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
            Timed::register("warden_http_requests_total", "warden_http_request_duration_seconds", &labels)
        });
        Ok(response)
    })
}

/// The method as a metric label: the standard ones by name, any other as `other`, so a client
/// cannot mint label values (and with them new time series) by inventing methods.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The answer of a request bounded by its budget (`tokio::time::timeout`, not an `async fn`
/// around it, which would hold the request's future twice): a spent budget is 503
/// `unavailable` (with `Retry-After`). Internal gRPC calls give up at the budget on their own;
/// the budget also bounds work that has no timeout of its own, such as a database query on a
/// connection whose server stopped answering.
fn budget_answer(timed: Result<Response, tokio::time::error::Elapsed>) -> Response {
    timed.unwrap_or_else(|_| {
        let error = warden_common::Error::unavailable("a dependency", anyhow::anyhow!("request budget spent"));
        axum::response::IntoResponse::into_response(crate::problem::ApiError::from(error))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_request_past_its_budget_is_a_503_with_retry_after() {
        let hung = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(axum::body::Body::empty())
        };
        let response = budget_answer(tokio::time::timeout(Duration::from_millis(20), hung).await);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let done = tokio::time::timeout(Duration::from_secs(5), async { Response::new(axum::body::Body::empty()) });
        let done = budget_answer(done.await);
        assert_eq!(done.status(), 200);
    }
}
