//! gRPC plumbing shared by every service: channels over one or more endpoints, balanced
//! client-side, wrapped so that each internal call carries the caller's deadline and trace
//! context ([`PeerChannel`]); and the server layer that adopts both and records per-RPC
//! metrics ([`ObserveLayer`]).
use crate::tls::Tls;
use crate::{deadline, metrics, telemetry};
use axum::http::{self, HeaderMap, HeaderValue};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::{Layer, Service};
use tracing::Instrument;

/// Longest an internal call may take; a shorter request deadline wins.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds a lazily connecting channel over every endpoint of a peer service; tonic
/// balances requests across them and routes around the ones that are down. With `tls`,
/// every endpoint is reached over mutual TLS (an `http://` endpoint is upgraded to
/// `https://`: never plaintext).
pub fn channel(setting: &str, endpoints: &[String], tls: Option<&Tls>) -> anyhow::Result<Channel> {
    if endpoints.is_empty() {
        anyhow::bail!("invalid configuration: {setting}: split mode needs at least one endpoint");
    }
    let endpoints = endpoints
        .iter()
        .map(|e| {
            let bad = || anyhow::anyhow!("invalid configuration: {setting}: bad endpoint {e}");
            let url = match (tls, e.strip_prefix("http://")) {
                (Some(_), Some(rest)) => format!("https://{rest}"),
                _ => e.clone(),
            };
            let endpoint = Endpoint::from_shared(url)
                .map_err(|_| bad())?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30));
            match tls {
                Some(tls) => endpoint.tls_config(tls.client()).map_err(|err| bad().context(err)),
                None => Ok(endpoint),
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(if endpoints.len() == 1 {
        endpoints.into_iter().next().expect("one endpoint").connect_lazy()
    } else {
        Channel::balance_list(endpoints.into_iter())
    })
}

/// The transport of every internal client: a [`Channel`] whose calls carry `grpc-timeout`
/// (what is left of the current request's deadline, at most [`CALL_TIMEOUT`]) and the W3C
/// `traceparent` of the current span, and give up on their own at that deadline.
#[derive(Clone, Debug)]
pub struct PeerChannel {
    inner: Channel,
}

impl PeerChannel {
    pub fn new(channel: Channel) -> Self {
        PeerChannel { inner: channel }
    }
}

impl Service<http::Request<Body>> for PeerChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let budget = deadline::remaining().map_or(CALL_TIMEOUT, |left| left.min(CALL_TIMEOUT));
        if budget.is_zero() {
            return Box::pin(std::future::ready(Err(expired())));
        }
        if let Ok(value) = HeaderValue::from_str(&deadline::format_grpc_timeout(budget)) {
            request.headers_mut().insert("grpc-timeout", value);
        }
        telemetry::inject_current(request.headers_mut());
        let call = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(budget, call).await {
                Ok(answer) => answer.map_err(Into::into),
                Err(_) => Err(expired()),
            }
        })
    }
}

fn expired() -> BoxError {
    Box::new(tonic::Status::deadline_exceeded("the request's deadline passed before the peer answered"))
}

/// Server layer for every gRPC service: a `grpc.server` span per call (child of the caller's
/// `traceparent`), the caller's `grpc-timeout` as the deadline of everything the call does,
/// and per-RPC request counts and latencies (see [`metrics::record_rpc`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Observed<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for Observed<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let start = Instant::now();
        let path = request.uri().path().to_owned();
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.grpc.status_code = tracing::field::Empty,
        );
        telemetry::set_parent(&span, request.headers());
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(deadline::parse_grpc_timeout)
            .map(|d| start + d);
        let call = span.in_scope(|| self.inner.call(request));
        Box::pin(async move {
            let result = deadline::within(deadline, call).instrument(span.clone()).await;
            let code = match &result {
                Ok(response) => grpc_status(response.headers()),
                Err(_) => tonic::Code::Unknown,
            };
            span.record("rpc.grpc.status_code", code as i32);
            metrics::record_rpc(&path, code, start.elapsed());
            result
        })
    }
}

/// The status of a unary answer: errors are trailers-only (status in the headers); a
/// success has no status header (its OK comes in the trailers).
fn grpc_status(headers: &HeaderMap) -> tonic::Code {
    headers.get("grpc-status").map_or(tonic::Code::Ok, |v| tonic::Code::from_bytes(v.as_bytes()))
}
