//! gRPC plumbing shared by every service: channels over one or more endpoints, balanced
//! client-side, wrapped so that each internal call carries the caller's deadline and trace
//! context ([`PeerChannel`]); and the server layer that adopts both and records per-RPC
//! metrics ([`ObserveLayer`]).
use crate::tls::Tls;
use crate::{deadline, metrics, telemetry};
use axum::http::{self, HeaderMap, HeaderValue};
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use std::future::Future;
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

/// Longest an internal call may take; a shorter request deadline wins.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds the transport to a peer service: a lazily connecting channel per endpoint, used
/// in turn (see [`PeerChannel`]). With `tls`, every endpoint is reached over mutual TLS (an
/// `http://` endpoint is upgraded to `https://`: never plaintext).
pub fn channel(setting: &str, endpoints: &[String], tls: Option<&Tls>) -> anyhow::Result<PeerChannel> {
    if endpoints.is_empty() {
        anyhow::bail!("invalid configuration: {setting}: split mode needs at least one endpoint");
    }
    let channels = endpoints
        .iter()
        .map(|e| {
            let bad = || anyhow::anyhow!("invalid configuration: {setting}: bad endpoint {e}");
            let url = match (tls, e.strip_prefix("http://")) {
                (Some(_), Some(rest)) => format!("https://{rest}"),
                _ => e.clone(),
            };
            let endpoint = match tls {
                // TLS by Warden's connector, with the certificate and CA current at each new
                // connection (they are reloaded); tonic adds no TLS of its own.
                Some(tls) => tls.endpoint(&url).map_err(|err| bad().context(err))?,
                None => Endpoint::from_shared(url).map_err(|_| bad())?,
            }
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
            Ok(match tls {
                Some(tls) => endpoint.connect_with_connector_lazy(tls.connector()),
                None => endpoint.connect_lazy(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(PeerChannel::balanced(channels))
}

/// How long an endpoint that refused a connection is tried only after the others.
const DOWN_FOR: Duration = Duration::from_secs(1);

/// The transport of every internal client, over one or more endpoints of a peer service.
///
/// - Each call carries `grpc-timeout` (what is left of the current request's deadline, at
///   most [`CALL_TIMEOUT`]) and the W3C `traceparent` of the current span, and gives up on
///   its own at that deadline.
/// - Calls go to the endpoints in turn. A call that never reached its endpoint (connection
///   refused or timed out, stream refused by a draining server) is sent to the next one,
///   whatever the RPC, since nothing was done; that endpoint is then tried last for a
///   second. A call whose connection broke after it left (the replica crashed), before its
///   answer was whole, is sent to the next endpoint only if it is [`repeatable`]. An answer,
///   even an error status, is never retried. (tonic's own balancer keeps
///   choosing an endpoint whose connection fails, so half the calls fail while one of two
///   replicas is down.)
#[derive(Clone, Debug)]
pub struct PeerChannel {
    peers: Arc<Peers>,
}

#[derive(Debug)]
struct Peers {
    endpoints: Vec<Peer>,
    next: AtomicUsize,
    epoch: Instant,
}

#[derive(Debug)]
struct Peer {
    channel: Channel,
    /// Milliseconds since `epoch` until which this endpoint is tried last.
    down_until: AtomicU64,
}

impl PeerChannel {
    /// One channel (tests, or one address that balances by itself).
    pub fn new(channel: Channel) -> Self {
        Self::balanced(vec![channel])
    }

    fn balanced(channels: Vec<Channel>) -> Self {
        let endpoints = channels.into_iter().map(|channel| Peer { channel, down_until: AtomicU64::new(0) }).collect();
        PeerChannel { peers: Arc::new(Peers { endpoints, next: AtomicUsize::new(0), epoch: Instant::now() }) }
    }
}

impl From<Channel> for PeerChannel {
    fn from(channel: Channel) -> Self {
        PeerChannel::new(channel)
    }
}

impl Peers {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Tries `peer` only after the others for [`DOWN_FOR`].
    fn set_aside(&self, peer: &Peer) {
        peer.down_until.store(self.now_ms() + DOWN_FOR.as_millis() as u64, Ordering::Relaxed);
    }

    /// The endpoints to try, in order: the next in turn first, those that refused
    /// connections lately last.
    fn order(&self) -> Vec<usize> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let (mut up, down): (Vec<usize>, Vec<usize>) =
            (0..n).map(|k| (start + k) % n).partition(|&i| self.endpoints[i].down_until.load(Ordering::Relaxed) <= now);
        up.extend(down);
        up
    }

    async fn send(&self, request: http::Request<Body>) -> Result<http::Response<Body>, BoxError> {
        if self.endpoints.len() == 1 {
            return self.endpoints[0].channel.clone().oneshot(request).await.map_err(Into::into);
        }
        // Unary requests are small: keep the encoded body to send it again if need be.
        let (parts, body) = request.into_parts();
        let bytes = body.collect().await?.to_bytes();
        let repeat = repeatable(parts.uri.path());
        let mut last: Option<BoxError> = None;
        for i in self.order() {
            let mut attempt = http::Request::new(Body::new(Full::new(bytes.clone())));
            *attempt.method_mut() = parts.method.clone();
            *attempt.uri_mut() = parts.uri.clone();
            *attempt.version_mut() = parts.version;
            *attempt.headers_mut() = parts.headers.clone();
            let peer = &self.endpoints[i];
            match peer.channel.clone().oneshot(attempt).await {
                Err(e) if never_sent(&e) => {
                    self.set_aside(peer);
                    last = Some(e.into());
                }
                // The connection broke after the call left (its replica crashed): an answer
                // never came, so the call may or may not have run. Only a call that is safe
                // to run twice goes to the next endpoint.
                Err(e) if repeat => {
                    self.set_aside(peer);
                    last = Some(e.into());
                }
                // The answer's headers came, but the replica may crash before its body and
                // status do: the body then fails after this function has returned, where no
                // retry is possible (a drill saw one such 503 in 14,000 requests). A call
                // that may be repeated is read whole here, and its broken answer is one
                // that never came.
                Ok(answer) if repeat => {
                    let (head, body) = answer.into_parts();
                    match body.collect().await {
                        Ok(whole) => return Ok(http::Response::from_parts(head, Body::new(whole))),
                        Err(e) => {
                            self.set_aside(peer);
                            last = Some(e.into());
                        }
                    }
                }
                answer => return answer.map_err(Into::into),
            }
        }
        Err(last.unwrap_or_else(|| "no endpoint".into()))
    }
}

/// RPCs that may run twice with the effect of running once, so a call whose connection
/// broke before its answer came may be sent again:
/// - reads and checks (the key service's usage counters may count such a call twice);
/// - `Refresh`: presenting the just-rotated token again inside the replay window yields the
///   very same successor pair (see the auth service), so a repeat rotates nothing twice;
/// - `Logout`, `RevokeApiKey`, `AssignRole`, `UnassignRole`: setting a final state again
///   changes nothing and answers the same (not so `RevokeSession`, whose repeat would answer
///   `not_found`);
/// - `GenerateAccessToken`, `GenerateRefreshToken`, `GenerateTokenPair`: signing stores nothing;
/// - `Login`: a repeat after a lost answer opens a second session whose tokens nobody ever
///   received (it expires unused); a wrong password lost that way counts twice toward
///   lockout, which errs on the safe side.
///
/// Everything else (creating users, roles and keys, password and MFA changes, key rotation,
/// single-use MFA tokens) is never repeated: its caller gets `unavailable` and decides.
pub fn repeatable(path: &str) -> bool {
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else { return false };
    match service {
        "warden.auth.v1.AuthService" => matches!(
            method,
            "Login"
                | "Refresh"
                | "Logout"
                | "Authenticate"
                | "GetVerifiedUser"
                | "Authorize"
                | "ListSessions"
                | "GetUser"
        ),
        "warden.token.v1.TokenService" => {
            matches!(
                method,
                "GenerateAccessToken" | "GenerateRefreshToken" | "GenerateTokenPair" | "VerifyToken" | "GetJwks"
            )
        }
        "warden.key.v1.KeyService" => matches!(method, "ValidateApiKey" | "RevokeApiKey" | "ListApiKeys"),
        "warden.rbac.v1.RbacService" => {
            matches!(
                method,
                "CheckPermissions" | "GetUserRoles" | "GetRole" | "ListRoles" | "AssignRole" | "UnassignRole"
            )
        }
        "grpc.health.v1.Health" => true,
        _ => false,
    }
}

/// Whether a transport error happened before the request reached a server: the connection
/// could not be made, it closed before the request left its queue, or a draining server
/// refused the stream.
fn never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotConnected | ErrorKind::AddrNotAvailable)
        {
            return true;
        }
        // The connect timeout (no request timeout is set on the endpoints).
        if e.is::<tonic::TimeoutExpired>() {
            return true;
        }
        // The connection closed while the request still waited in its queue.
        if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_canceled) {
            return true;
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>()
            && (h2.reason() == Some(h2::Reason::REFUSED_STREAM) || (h2.is_go_away() && h2.is_remote()))
        {
            return true;
        }
        source = e.source();
    }
    false
}

impl Service<http::Request<Body>> for PeerChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each call waits for its endpoint's readiness itself.
        Poll::Ready(Ok(()))
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
        let peers = self.peers.clone();
        Box::pin(async move {
            match tokio::time::timeout(budget, peers.send(request)).await {
                Ok(answer) => answer,
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
        let span = if telemetry::request_spans() {
            tracing::info_span!(
                "grpc.server",
                otel.name = %path.trim_start_matches('/'),
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.grpc.status_code = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        telemetry::set_parent(&span, request.headers());
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(deadline::parse_grpc_timeout)
            .map(|d| start + d);
        let call = span.in_scope(|| self.inner.call(request));
        // A combinator, not an async block: the block would keep the call beside the future
        // that awaits it, twice its size in every call's box.
        let observed = deadline::within(deadline, call).instrument(span.clone());
        Box::pin(observed.map(move |result| {
            let code = match &result {
                Ok(response) => grpc_status(response.headers()),
                Err(_) => tonic::Code::Unknown,
            };
            span.record("rpc.grpc.status_code", code as i32);
            metrics::record_rpc(&path, code, start.elapsed());
            result
        }))
    }
}

/// The status of a unary answer: errors are trailers-only (status in the headers); a
/// success has no status header (its OK comes in the trailers).
fn grpc_status(headers: &HeaderMap) -> tonic::Code {
    headers.get("grpc-status").map_or(tonic::Code::Ok, |v| tonic::Code::from_bytes(v.as_bytes()))
}
