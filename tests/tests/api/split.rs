//! Split mode: every service its own server, talking gRPC, on PostgreSQL + Redis.
use warden_tests::{ADMIN_PASSWORD, Backend, TestWarden, backend_urls, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_mode_login_me_and_lockout() {
    let Some((db, redis)) = backend_urls(Backend::PostgresRedis, "split_mode").await else { return };
    let w = TestWarden::start_split(db, redis).await;
    // The bootstrap admin is created by the auth service once RBAC answers.
    let mut tokens = None;
    for _ in 0..50 {
        let r = w.login(&w.admin, ADMIN_PASSWORD).await;
        if r.status() == 200 {
            tokens = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let tokens = tokens.expect("bootstrap admin can log in");
    let access = tokens["access_token"].as_str().unwrap();
    let me: serde_json::Value = w.get_with("/api/v1/auth/me", access).await.json().await.unwrap();
    assert_eq!(me["username"], w.admin.as_str());
    assert_eq!(me["roles"], serde_json::json!(["admin"]));

    let name = unique("split");
    w.create_user(access, &name, "split-user-password", &[]).await;
    for _ in 0..5 {
        assert_eq!(w.login(&name, "wrong-password").await.status(), 401);
    }
    assert_eq!(w.login(&name, "split-user-password").await.status(), 423);
    let ready = w.http.get(w.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    w.shutdown().await;
}
