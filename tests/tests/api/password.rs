//! Password change and admin reset: policy refusals, other sessions end at once while the
//! caller's stays, a wrong current password counts toward lockout, no takeover by reset.
use serde_json::{Value, json};
use warden_tests::{TestWarden, on_every_backend, unique};

on_every_backend!(change_and_reset_password);

async fn code(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    (
        status,
        body["code"].as_str().unwrap_or_default().to_owned(),
        body["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn change_and_reset_password(w: TestWarden) {
    let admin = w.admin_token().await;
    let name = unique("erin");
    let old = "erin-first-passphrase-1";
    let user = w.create_user(&admin, &name, old, &[]).await;
    let keep = w.login_ok(&name, old).await["access_token"].as_str().unwrap().to_owned();
    let other = w.login_ok(&name, old).await["access_token"].as_str().unwrap().to_owned();
    let change = |current: &str, new: &str| {
        let (http, url, token) = (w.http.clone(), w.url("/api/v1/auth/password"), keep.clone());
        let body = json!({ "current_password": current, "new_password": new });
        async move { http.post(url).bearer_auth(token).json(&body).send().await.unwrap() }
    };

    let weak = code(change(old, "password1234").await).await;
    assert_eq!((weak.0, weak.1.as_str()), (400, "validation_error"));
    assert!(weak.2.contains("too weak"), "{}", weak.2);
    let short = code(change(old, "short").await).await;
    assert!(short.2.contains("at least 12"), "{}", short.2);
    let wrong = code(change("not-my-password", "a brand new passphrase 77").await).await;
    assert_eq!((wrong.0, wrong.1.as_str()), (401, "invalid_credentials"));

    let new = "a brand new passphrase 77";
    assert_eq!(change(old, new).await.status(), 204);
    assert_eq!(w.get_with("/api/v1/auth/me", &keep).await.status(), 200, "the caller's session stays");
    assert_eq!(w.get_with("/api/v1/auth/me", &other).await.status(), 401, "other sessions end at once");
    assert_eq!(w.login(&name, old).await.status(), 401);
    let fresh = w.login_ok(&name, new).await["access_token"].as_str().unwrap().to_owned();

    // Admin reset ends every session.
    let id = user["id"].as_str().unwrap();
    let reset = w
        .http
        .post(w.url(&format!("/api/v1/admin/users/{id}/password")))
        .bearer_auth(&admin)
        .json(&json!({ "new_password": "reset by the admin 2026" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    for token in [&keep, &fresh] {
        assert_eq!(w.get_with("/api/v1/auth/me", token).await.status(), 401);
    }
    w.login_ok(&name, "reset by the admin 2026").await;

    // A users:write holder cannot take over the admin account by resetting its password.
    let suffix = &unique("x")[2..8];
    let role = format!("helpdesk{suffix}");
    let created = w
        .http
        .post(w.url("/api/v1/admin/roles"))
        .bearer_auth(&admin)
        .json(&json!({ "name": role, "permissions": ["users:read", "users:write"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let helper = unique("helpdesk");
    w.create_user(&admin, &helper, "helpdesk-passphrase-9", &[&role]).await;
    let helper_token = w.login_ok(&helper, "helpdesk-passphrase-9").await["access_token"].as_str().unwrap().to_owned();
    let me: Value = w.get_with("/api/v1/auth/me", &admin).await.json().await.unwrap();
    let admin_id = me["id"].as_str().unwrap();
    let takeover = w
        .http
        .post(w.url(&format!("/api/v1/admin/users/{admin_id}/password")))
        .bearer_auth(&helper_token)
        .json(&json!({ "new_password": "i am the admin now 123" }))
        .send()
        .await
        .unwrap();
    assert_eq!(code(takeover).await.1, "access_denied");
    w.shutdown().await;
}
