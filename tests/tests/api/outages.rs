//! Dependency outages through a fault-injection proxy (tests/src/proxy.rs) in front of the
//! machine's PostgreSQL and Redis, so the shared servers are never stopped: a stalled Redis and
//! a PostgreSQL that goes down answer a bounded 503 with Retry-After (fail closed, no hang),
//! readiness and gRPC health say so, and Warden recovers by itself when the dependency returns.
//! Also split mode with one backend service down.
use serde_json::Value;
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use warden::ServiceRole;
use warden_tests::proxy::{Fault, FaultProxy, upstream_of};
use warden_tests::{ADMIN_PASSWORD, Backend, TestWarden, backend_urls, base_config};

/// Far below a hang, far above any honest answer on a loaded machine. A refused PostgreSQL
/// answers after the pool's acquire timeout (`db::POOL_TIMEOUT`, 2 s; connecting is retried
/// until then), a stalled one after the client's wait for an answer (`db::ANSWER_TIMEOUT`,
/// 2 s, on a hot connection that is not pinged first), so the bound for PostgreSQL is that
/// plus slack.
const FAST: Duration = Duration::from_secs(3);
const POOL_BOUND: Duration = Duration::from_secs(5);

/// Status, `code`, and whether Retry-After was present.
async fn answer(r: reqwest::Response) -> (u16, String, bool) {
    let status = r.status().as_u16();
    let retry_after = r.headers().contains_key("retry-after");
    let body: Value = r.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned(), retry_after)
}

/// Runs a request and returns its answer and how long it took.
async fn timed<F: std::future::Future<Output = reqwest::Response>>(request: F) -> ((u16, String, bool), Duration) {
    let started = Instant::now();
    let r = request.await;
    let elapsed = started.elapsed();
    (answer(r).await, elapsed)
}

fn unavailable(a: &(u16, String, bool)) -> bool {
    a.0 == 503 && a.1 == "unavailable" && a.2
}

/// Polls until `check` holds (at most `tries` × 200 ms).
async fn eventually<F, Fut>(what: &str, tries: usize, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..tries {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what} did not happen in time");
}

async fn grpc_health(w: &TestWarden) -> Option<ServingStatus> {
    let mut client = HealthClient::new(w.grpc_channel().await);
    let answer = client.check(HealthCheckRequest { service: String::new() }).await.ok()?;
    ServingStatus::try_from(answer.into_inner().status).ok()
}

async fn readyz(w: &TestWarden) -> u16 {
    w.http.get(w.url("/readyz")).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stall_is_a_fast_503_and_recovers() {
    let Some((db, Some(redis))) = backend_urls(Backend::PostgresRedis, "redis_stall").await else { return };
    let proxy = FaultProxy::start(upstream_of(&redis)).await;
    let w = TestWarden::start_config(base_config(db, Some(proxy.rewrite_url(&redis)))).await;
    let access = w.admin_token().await;
    assert_eq!(w.get_with("/api/v1/auth/me", &access).await.status(), 200);

    // Redis hangs: the connection stays open but nothing comes back.
    proxy.set(Fault::Stall);
    let (me, took) = timed(w.get_with("/api/v1/auth/me", &access)).await;
    assert!(unavailable(&me), "/me with a stalled redis: {me:?}");
    assert!(took < FAST, "/me took {took:?}");
    let (login, took) = timed(w.login(&w.admin, ADMIN_PASSWORD)).await;
    assert!(unavailable(&login), "login with a stalled redis: {login:?}");
    assert!(took < FAST, "login took {took:?}");
    let started = Instant::now();
    assert_eq!(readyz(&w).await, 503);
    assert!(started.elapsed() < FAST, "/readyz took {:?}", started.elapsed());
    eventually("gRPC health NOT_SERVING", 50, || async { grpc_health(&w).await == Some(ServingStatus::NotServing) })
        .await;

    // Redis answers again: everything recovers without a restart.
    proxy.set(Fault::None);
    eventually("/me after the stall", 50, || async { w.get_with("/api/v1/auth/me", &access).await.status() == 200 })
        .await;
    eventually("login after the stall", 50, || async { w.login(&w.admin, ADMIN_PASSWORD).await.status() == 200 }).await;
    assert_eq!(readyz(&w).await, 200);
    eventually("gRPC health SERVING", 50, || async { grpc_health(&w).await == Some(ServingStatus::Serving) }).await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_and_back_with_redis() {
    postgres_down_and_back(true, &[Fault::Stall, Fault::Refuse, Fault::Drop]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_and_back_sql_store() {
    postgres_down_and_back(false, &[Fault::Refuse]).await;
}

async fn postgres_down_and_back(with_redis: bool, faults: &[Fault]) {
    let Some((db, redis)) = backend_urls(Backend::PostgresRedis, "postgres_down").await else { return };
    let proxy = FaultProxy::start(upstream_of(&db)).await;
    let redis = if with_redis { redis } else { None };
    let w = TestWarden::start_config(base_config(proxy.rewrite_url(&db), redis)).await;
    let access = w.admin_token().await;
    assert_eq!(w.get_with("/api/v1/auth/me", &access).await.status(), 200);

    for &fault in faults {
        proxy.set(fault);
        // Short-lived caches (users for a second) may still answer the first request; after
        // that every request that needs the database is a 503, and none waits long.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (login, took) = timed(w.login(&w.admin, ADMIN_PASSWORD)).await;
        assert!(unavailable(&login), "{fault:?}: login with postgres down: {login:?}");
        eprintln!("{fault:?}: login answered {login:?} in {took:?}");
        assert!(took < POOL_BOUND, "{fault:?}: login took {took:?}");
        let (me, took) = timed(w.get_with("/api/v1/auth/me", &access)).await;
        eprintln!("{fault:?}: /me answered {me:?} in {took:?}");
        assert!(took < POOL_BOUND, "{fault:?}: /me took {took:?}");
        assert!(unavailable(&me), "{fault:?}: /me with postgres down: {me:?}");
        let started = Instant::now();
        assert_eq!(readyz(&w).await, 503, "{fault:?}");
        assert!(started.elapsed() < POOL_BOUND, "{fault:?}: /readyz took {:?}", started.elapsed());
        eventually("gRPC health NOT_SERVING", 75, || async {
            grpc_health(&w).await == Some(ServingStatus::NotServing)
        })
        .await;

        proxy.set(Fault::None);
        eventually("login after the outage", 75, || async { w.login(&w.admin, ADMIN_PASSWORD).await.status() == 200 })
            .await;
        eventually("/me after the outage", 75, || async {
            w.get_with("/api/v1/auth/me", &access).await.status() == 200
        })
        .await;
        assert_eq!(readyz(&w).await, 200);
        eventually("gRPC health SERVING", 75, || async { grpc_health(&w).await == Some(ServingStatus::Serving) }).await;
    }
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_mode_backend_down_is_a_fast_503() {
    let Some((db, redis)) = backend_urls(Backend::PostgresRedis, "split_down").await else { return };
    let mut w = TestWarden::start_split(db, redis).await;
    eventually("bootstrap admin login", 50, || async { w.login(&w.admin, ADMIN_PASSWORD).await.status() == 200 }).await;
    let access = w.admin_token().await;
    assert_eq!(w.get_with("/api/v1/auth/me", &access).await.status(), 200);

    // RBAC down: anything needing permissions fails closed, quickly.
    w.stop_service(ServiceRole::Rbac).await;
    protected_requests_unavailable(&w, &access, FAST, "rbac down").await;
    assert_eq!(readyz(&w).await, 503);

    // Auth down as well: login and every protected route.
    w.stop_service(ServiceRole::Auth).await;
    let (login, took) = timed(w.login(&w.admin, ADMIN_PASSWORD)).await;
    assert!(unavailable(&login), "login with auth down: {login:?}");
    assert!(took < FAST, "login took {took:?}");
    let (me, took) = timed(w.get_with("/api/v1/auth/me", &access)).await;
    assert!(unavailable(&me), "/me with auth down: {me:?}");
    assert!(took < FAST, "/me took {took:?}");
    assert_eq!(readyz(&w).await, 503);
    w.shutdown().await;
}

/// A backend service that hangs (accepts, never answers) costs a request at most the internal
/// call deadline (`grpc::CALL_TIMEOUT`, 5 s), then a 503: never a hang, never a 500, and the
/// same request works again once the service answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_mode_backend_stalled_is_a_bounded_503() {
    let Some((db, redis)) = backend_urls(Backend::PostgresRedis, "split_stall").await else { return };
    let (w, rbac) = TestWarden::start_split_behind_proxy(db, redis, ServiceRole::Rbac).await;
    eventually("bootstrap admin login", 50, || async { w.login(&w.admin, ADMIN_PASSWORD).await.status() == 200 }).await;
    let access = w.admin_token().await;
    assert_eq!(w.get_with("/api/v1/auth/me", &access).await.status(), 200);

    rbac.set(Fault::Stall);
    let bound = warden_common::grpc::CALL_TIMEOUT + Duration::from_secs(3);
    protected_requests_unavailable(&w, &access, bound, "rbac stalled").await;

    rbac.set(Fault::None);
    eventually("/me after the stall", 50, || async { w.get_with("/api/v1/auth/me", &access).await.status() == 200 })
        .await;
    w.shutdown().await;
}

/// `/me` and `/authorize` both answer 503 `unavailable` with Retry-After within `bound`.
async fn protected_requests_unavailable(w: &TestWarden, access: &str, bound: Duration, state: &str) {
    let (me, took) = timed(w.get_with("/api/v1/auth/me", access)).await;
    eprintln!("/me with {state} answered {me:?} in {took:?}");
    assert!(unavailable(&me), "/me with {state}: {me:?}");
    assert!(took < bound, "/me with {state} took {took:?}");
    let permission = serde_json::json!({ "permission": "users:read" });
    let (check, took) = timed(w.post_with("/api/v1/auth/authorize", access, permission)).await;
    assert!(unavailable(&check), "authorize with {state}: {check:?}");
    assert!(took < bound, "authorize with {state} took {took:?}");
}
