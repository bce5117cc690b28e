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

/// Logging out everywhere while other requests write (logins, refreshes) never answers 503:
/// on SQLite a read-then-delete transaction failed with SQLITE_BUSY_SNAPSHOT whenever another
/// connection committed in between (found by .ci/schemathesis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_during_concurrent_writes_never_fails() {
    let Some(w) = TestWarden::start(Backend::Sqlite, "logout_all_writes").await else { return };
    // Writers: another user's sessions, refreshed over and over (each refresh writes a row).
    let admin = w.admin_token().await;
    w.create_user(&admin, "writer-user", "writer user passphrase 42!", &[]).await;
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let mut refresh = w.login_ok("writer-user", "writer user passphrase 42!").await["refresh_token"].clone();
        let http = w.http.clone();
        let url = w.url("/api/v1/auth/refresh");
        writers.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..60 {
                let r = http.post(&url).json(&json!({ "refresh_token": refresh })).send().await.unwrap();
                statuses.push(r.status().as_u16());
                if r.status() == 200 {
                    refresh = r.json::<Value>().await.unwrap()["refresh_token"].clone();
                }
            }
            statuses
        });
    }
    let mut answers = Vec::new();
    for _ in 0..30 {
        let tokens = w.login_ok(&w.admin, warden_tests::ADMIN_PASSWORD).await;
        let access = tokens["access_token"].as_str().unwrap();
        let r = w.post_with("/api/v1/auth/logout", access, json!({ "all": true })).await;
        answers.push(r.status().as_u16());
    }
    while let Some(statuses) = writers.join_next().await {
        answers.extend(statuses.unwrap());
    }
    // A login may race a logout-all and lose its session at once, but nothing is a 5xx.
    assert!(answers.iter().all(|s| *s < 500), "{answers:?}");
    w.shutdown().await;
}
