//! Flow 1 (login) through the REST gateway.
use serde_json::Value;
use warden_tests::{ADMIN_PASSWORD, TestWarden, on_every_backend, unique};

on_every_backend!(
    login_returns_tokens_and_me_works,
    wrong_password_and_unknown_user_answer_identically,
    logout_stops_access_token_at_once
);

async fn login_returns_tokens_and_me_works(w: TestWarden) {
    let response = w.login(&w.admin, ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 1_209_600);
    let access = body["access_token"].as_str().unwrap();
    assert_ne!(access, body["refresh_token"].as_str().unwrap());

    let me = w.get_with("/api/v1/auth/me", access).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["username"], w.admin.as_str());
    assert_eq!(me["roles"], serde_json::json!(["admin"]));
    assert_eq!(me["permissions"], serde_json::json!(["*"]));

    // Case-insensitive bearer scheme.
    let lower =
        w.http.get(w.url("/api/v1/auth/me")).header("authorization", format!("bearer {access}")).send().await.unwrap();
    assert_eq!(lower.status(), 200);
    // Credentials in the query string are never honoured.
    let query = w.http.get(w.url(&format!("/api/v1/auth/me?access_token={access}"))).send().await.unwrap();
    assert_eq!(query.status(), 401);
    w.shutdown().await;
}

async fn wrong_password_and_unknown_user_answer_identically(w: TestWarden) {
    let admin = w.admin_token().await;
    let name = unique("alice");
    w.create_user(&admin, &name, "alice-password-123", &[]).await;

    let wrong = w.login(&name, "not-the-password").await;
    let unknown = w.login(&unique("nobody"), "not-the-password").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    for r in [&wrong, &unknown] {
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"warden\"");
    }
    let wrong = wrong.bytes().await.unwrap();
    let unknown = unknown.bytes().await.unwrap();
    assert_eq!(wrong, unknown, "bodies must be byte-identical");
    let body: Value = serde_json::from_slice(&wrong).unwrap();
    assert_eq!(body["code"], "invalid_credentials");
    assert_eq!(body["status"], 401);

    // The right password still works and is case-insensitive on the username.
    w.login_ok(&name.to_uppercase(), "alice-password-123").await;
    w.shutdown().await;
}

async fn logout_stops_access_token_at_once(w: TestWarden) {
    let tokens = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(w.get_with("/api/v1/auth/me", access).await.status(), 200);
    let out = w.post("/api/v1/auth/logout", serde_json::json!({ "refresh_token": tokens["refresh_token"] })).await;
    assert_eq!(out.status(), 204);
    let after = w.get_with("/api/v1/auth/me", access).await;
    assert_eq!(after.status(), 401);
    assert_eq!(after.headers()["www-authenticate"], "Bearer realm=\"warden\", error=\"invalid_token\"");
    let body: Value = after.json().await.unwrap();
    assert_eq!(body["code"], "token_revoked");
    w.shutdown().await;
}
