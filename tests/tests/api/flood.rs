//! A login flood cannot starve the rest of the API: password hashing has its own bounded
//! queue (services/auth/src/password.rs), and logins past it answer a fast 503 with
//! Retry-After, never a 500, while token-authenticated requests keep being served.
use serde_json::{Value, json};
use warden_tests::{Backend, TestWarden};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flood_is_refused_fast_and_spares_other_routes() {
    for backend in [Backend::Sqlite, Backend::PostgresRedis] {
        login_flood(backend).await;
    }
}

/// Logins in flight at once: well past one hashing worker plus its queue.
const BURST: usize = 250;

async fn login_flood(backend: Backend) {
    // One hashing worker, so the burst overflows its queue on any machine.
    let Some(w) = TestWarden::start_with(backend, "login_flood", |c| c.hash_concurrency = 1).await else { return };
    let access = w.admin_token().await;
    let mut refused = 0;
    for _attempt in 0..3 {
        let mut logins = tokio::task::JoinSet::new();
        for i in 0..BURST {
            let http = w.http.clone();
            let url = w.url("/api/v1/auth/login");
            // Unknown, distinct usernames: each is a dummy verify and none gets locked.
            let body = json!({ "username": format!("flood-{i}-{}", uuid_suffix()), "password": "flood-password-1" });
            logins.spawn(async move { http.post(url).json(&body).send().await });
        }
        // Requests that need no hashing are served during the flood.
        let mut me_ok = 0;
        for _ in 0..5 {
            let r = w.get_with("/api/v1/auth/me", &access).await;
            assert_eq!(r.status(), 200, "/me during a login flood");
            me_ok += 1;
        }
        assert_eq!(me_ok, 5);
        while let Some(result) = logins.join_next().await {
            let r = result.unwrap().expect("every login is answered");
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").cloned();
            let body: Value = r.json().await.expect("a problem document");
            match status {
                401 => assert_eq!(body["code"], "invalid_credentials"),
                503 => {
                    assert_eq!(body["code"], "unavailable", "{body}");
                    assert!(retry_after.is_some(), "503 without Retry-After");
                    refused += 1;
                }
                other => panic!("login flood answered {other}: {body}"),
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "a burst of {BURST} logins never overflowed the hashing queue");
    // Drained: logins work again.
    let r = w.login(&w.admin, warden_tests::ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 200);
    w.shutdown().await;
}

fn uuid_suffix() -> String {
    warden_tests::unique("x")
}
