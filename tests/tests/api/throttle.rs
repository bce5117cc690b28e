//! Per-client throttling of login and refresh: 429 with Retry-After past the budget; the
//! client is the socket address unless the peer is a trusted proxy, so X-Forwarded-For from
//! anyone else changes nothing.
use serde_json::json;
use warden_tests::{Backend, TestWarden, unique};

async fn throttled(backend: Backend) {
    let Some(w) = TestWarden::start_with(backend, "client_throttle", |c| {
        c.client_rate_limit = 3;
        c.trusted_proxies = Some("127.0.0.1/32".into());
    })
    .await
    else {
        return;
    };
    // Tests share Redis: start from a clock no earlier run has used.
    w.clock.advance(86_400 * (1 + i64::from(uuid::Uuid::new_v4().as_bytes()[0])) * 30);
    let client = format!("198.51.100.{}", uuid::Uuid::new_v4().as_bytes()[0]);
    let attempt = |xff: Option<String>| {
        let mut r = w
            .http
            .post(w.url("/api/v1/auth/login"))
            .json(&json!({ "username": unique("ghost"), "password": "wrong-password" }));
        if let Some(xff) = xff {
            r = r.header("x-forwarded-for", xff);
        }
        r.send()
    };
    for _ in 0..3 {
        assert_eq!(attempt(Some(client.clone())).await.unwrap().status(), 401);
    }
    let limited = attempt(Some(client.clone())).await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Refresh counts against the same budget.
    let r = w
        .http
        .post(w.url("/api/v1/auth/refresh"))
        .header("x-forwarded-for", &client)
        .json(&json!({ "refresh_token": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Another client behind the same trusted proxy has its own budget.
    assert_eq!(attempt(Some("198.51.100.250, 203.0.113.77".into())).await.unwrap().status(), 401);
    // Refill with time.
    w.clock.advance(21);
    assert_eq!(attempt(Some(client)).await.unwrap().status(), 401);
    w.shutdown().await;

    // Without a trusted proxy the header is ignored: rotating it does not escape the limit.
    let Some(w) = TestWarden::start_with(backend, "client_throttle_untrusted", |c| c.client_rate_limit = 3).await
    else {
        return;
    };
    w.clock.advance(86_400 * (300 + i64::from(uuid::Uuid::new_v4().as_bytes()[1])) * 30);
    let mut statuses = Vec::new();
    for i in 0..5 {
        let r = w
            .http
            .post(w.url("/api/v1/auth/login"))
            .header("x-forwarded-for", format!("192.0.2.{i}"))
            .json(&json!({ "username": unique("ghost"), "password": "wrong-password" }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_throttle_sqlite() {
    throttled(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_throttle_postgres_redis() {
    throttled(Backend::PostgresRedis).await;
}
