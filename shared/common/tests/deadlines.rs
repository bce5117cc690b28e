//! Deadlines on internal calls: a client call carries what is left of the request's budget
//! as `grpc-timeout` (at most CALL_TIMEOUT), gives up at once when nothing is left, and the
//! server side ([`ObserveLayer`]) makes the caller's deadline the deadline of everything the
//! call does, so the next hop inherits it.
use axum::http;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::Service;
use warden_common::deadline;
use warden_common::grpc::{CALL_TIMEOUT, ObserveLayer, PeerChannel, channel};

/// What the server saw of one call: the `grpc-timeout` header, and the time left before the
/// deadline in force while the call ran.
type Observation = (Option<Duration>, Option<Duration>);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Observation>>>);

#[derive(Clone)]
struct Record<S> {
    inner: S,
    seen: Seen,
}

impl<S, B> Service<http::Request<B>> for Record<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let header = request.headers().get("grpc-timeout").and_then(|v| deadline::parse_grpc_timeout(v.to_str().ok()?));
        let seen = self.seen.clone();
        let call = self.inner.call(request);
        Box::pin(async move {
            seen.0.lock().unwrap().push((header, deadline::remaining()));
            call.await
        })
    }
}

async fn server(seen: Seen) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let record = tower::layer::layer_fn(move |inner| Record { inner, seen: seen.clone() });
    let router = Server::builder().layer(ObserveLayer).layer(record).add_service(health);
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(router.serve_with_incoming(incoming));
    format!("http://{addr}")
}

async fn check(client: &mut HealthClient<PeerChannel>) -> Result<(), tonic::Status> {
    client.check(HealthCheckRequest { service: String::new() }).await.map(|_| ())
}

#[tokio::test]
async fn internal_calls_carry_and_adopt_the_request_deadline() {
    let seen = Seen::default();
    let url = server(seen.clone()).await;
    let mut client = HealthClient::new(channel("TEST", &[url], None).unwrap());

    // No request deadline: the call's own limit.
    check(&mut client).await.unwrap();
    // A request with 300 ms left: the call carries at most that, and the server runs the
    // call under that deadline.
    let budget = Duration::from_millis(300);
    deadline::within(Some(Instant::now() + budget), check(&mut client)).await.unwrap();
    // Nothing left: refused before it leaves the process.
    let late = deadline::within(Some(Instant::now()), check(&mut client)).await.unwrap_err();
    assert_eq!(late.code(), tonic::Code::DeadlineExceeded);

    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "the expired call never reached the server");
    let (header, remaining) = seen[0];
    assert_eq!(header, Some(CALL_TIMEOUT));
    assert!(remaining.is_some_and(|r| r <= CALL_TIMEOUT && r > CALL_TIMEOUT - Duration::from_secs(1)));
    let (header, remaining) = seen[1];
    assert!(header.is_some_and(|h| h <= budget && h > budget - Duration::from_millis(200)), "{header:?}");
    assert!(remaining.is_some_and(|r| r <= budget), "{remaining:?}");
}
