//! Lockout: progressive, atomic under concurrency, the same for unknown usernames, cleared
//! by success or by an admin, and never permanent.
use serde_json::Value;
use warden_tests::{TestWarden, on_every_backend, unique};

on_every_backend!(lockout_after_threshold_and_unlock, concurrent_failures_are_all_counted);

async fn lockout_after_threshold_and_unlock(w: TestWarden) {
    let admin = w.admin_token().await;
    let name = unique("bob");
    let user = w.create_user(&admin, &name, "bob-password-1234", &[]).await;
    for _ in 0..5 {
        assert_eq!(w.login(&name, "wrong-password").await.status(), 401);
    }
    // Locked: even the right password is refused, with Retry-After.
    let locked = w.login(&name, "bob-password-1234").await;
    assert_eq!(locked.status(), 423);
    let retry: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    let body: Value = locked.json().await.unwrap();
    assert_eq!(body["code"], "account_locked");

    // Unknown usernames lock the same way.
    let ghost = unique("ghost");
    for _ in 0..5 {
        assert_eq!(w.login(&ghost, "whatever-password").await.status(), 401);
    }
    assert_eq!(w.login(&ghost, "whatever-password").await.status(), 423);

    // The admin sees the lock and clears it.
    let id = user["id"].as_str().unwrap();
    let seen: Value = w.get_with(&format!("/api/v1/admin/users/{id}"), &admin).await.json().await.unwrap();
    assert_eq!(seen["locked"], true);
    let unlock = w
        .http
        .patch(w.url(&format!("/api/v1/admin/users/{id}")))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "locked": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(unlock.status(), 200);
    w.login_ok(&name, "bob-password-1234").await;

    // Never permanent: the ghost's lock ends with time.
    w.clock.advance(61);
    assert_eq!(w.login(&ghost, "whatever-password").await.status(), 401);
    w.shutdown().await;
}

async fn concurrent_failures_are_all_counted(w: TestWarden) {
    // Threshold 5, 60 s doubling: 9 failures at once must lock for 60 * 2^4 = 960 s
    // (capped at 900). A lost update would give a shorter lock.
    let name = unique("burst");
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..9 {
        let http = w.http.clone();
        let url = w.url("/api/v1/auth/login");
        let name = name.clone();
        burst.spawn(async move {
            http.post(url)
                .json(&serde_json::json!({ "username": name, "password": "wrong-password" }))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = burst.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
    let locked = w.login(&name, "wrong-password").await;
    assert_eq!(locked.status(), 423);
    let retry: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 850, "9 concurrent failures must all count; retry-after was {retry}");
    w.shutdown().await;
}
