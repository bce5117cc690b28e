//! Two Warden processes on one PostgreSQL and one Redis, as two replicas behind a load
//! balancer: a logout, a disabled user, a revoked key and a removed role, each done through
//! replica A, are refused by replica B on the very next request. The time from the change
//! to B's refusal is printed (it is one request: nothing is cached across replicas).
use serde_json::{Value, json};
use std::time::Instant;
use warden_tests::{ADMIN_PASSWORD, Backend, TestWarden, backend_urls, base_config, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_one_replica_hold_on_the_other_at_once() {
    let Some((db, redis)) = backend_urls(Backend::PostgresRedis, "replicas").await else { return };
    let config = base_config(db, redis);
    let a = TestWarden::start_config(config.clone()).await;
    let b = TestWarden::start_config(config).await;
    let admin = a.admin_token().await;

    // Logout on A; the access token fails on B.
    let tokens = a.login_ok(&a.admin, ADMIN_PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(b.get_with("/api/v1/auth/me", access).await.status(), 200);
    let started = Instant::now();
    assert_eq!(a.post("/api/v1/auth/logout", json!({ "refresh_token": tokens["refresh_token"] })).await.status(), 204);
    assert_eq!(b.get_with("/api/v1/auth/me", access).await.status(), 401);
    println!("session revocation seen by the other replica after {:?}", started.elapsed());

    // A role removed on A no longer grants on B.
    let role = a.create_role(&admin, "viewer", &["reports:read"]).await;
    let name = unique("gina");
    let user = a.create_user(&admin, &name, "gina-passphrase-2026", &[&role]).await;
    let id = user["id"].as_str().unwrap();
    let token = b.login_ok(&name, "gina-passphrase-2026").await["access_token"].as_str().unwrap().to_owned();
    let path = "/api/v1/auth/verify?permission=reports:read";
    assert_eq!(b.get_with(path, &token).await.status(), 200);
    let started = Instant::now();
    let removed = a
        .http
        .delete(a.url(&format!("/api/v1/admin/users/{id}/roles/{role}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    assert_eq!(b.get_with(path, &token).await.status(), 403);
    println!("role removal seen by the other replica after {:?}", started.elapsed());

    // A key revoked on A fails on B.
    let key: Value = a
        .http
        .post(a.url("/api/v1/auth/api-key"))
        .bearer_auth(&token)
        .json(&json!({ "name": "replicated" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = key["key"].as_str().unwrap();
    let me = || b.http.get(b.url("/api/v1/auth/me")).header("x-api-key", secret).send();
    assert_eq!(me().await.unwrap().status(), 200);
    let started = Instant::now();
    let revoked = a
        .http
        .delete(a.url(&format!("/api/v1/auth/api-keys/{}", key["id"].as_str().unwrap())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(me().await.unwrap().status(), 401);
    println!("key revocation seen by the other replica after {:?}", started.elapsed());

    // Disabling the user on A ends every session, seen on B.
    let disabled = a
        .http
        .patch(a.url(&format!("/api/v1/admin/users/{id}")))
        .bearer_auth(&admin)
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    assert_eq!(b.get_with("/api/v1/auth/me", &token).await.status(), 401);
    let login = b.login(&name, "gina-passphrase-2026").await;
    assert_eq!(login.status(), 403);
    assert_eq!(login.json::<Value>().await.unwrap()["code"], "account_disabled");
    a.shutdown().await;
    b.shutdown().await;
}
