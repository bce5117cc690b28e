//! Flow 2 (API keys) through REST: shown once, used by header, scopes ∩ the owner's current
//! permissions, revocation, expiry, per-key rate limits, and keys creating keys.
use serde_json::{Value, json};
use warden_tests::{TestWarden, on_every_backend, unique};

on_every_backend!(
    key_lifecycle_and_scopes,
    key_follows_owner_permissions,
    key_rate_limit_and_expiry,
    keys_create_keys_only_with_keys_write
);

async fn create_key(w: &TestWarden, bearer: &str, body: Value) -> reqwest::Response {
    w.http.post(w.url("/api/v1/auth/api-key")).bearer_auth(bearer).json(&body).send().await.unwrap()
}

async fn with_key(w: &TestWarden, method: reqwest::Method, path: &str, key: &str) -> reqwest::Response {
    w.http.request(method, w.url(path)).header("x-api-key", key).send().await.unwrap()
}

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn key_lifecycle_and_scopes(w: TestWarden) {
    let admin = w.admin_token().await;
    let created = create_key(&w, &admin, json!({ "name": "reporting", "scopes": ["users:read"] })).await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("wdn_"));
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["scopes"], json!(["users:read"]));
    for field in ["id", "name", "expires_at", "rate_limit_per_minute", "created_at"] {
        assert!(created.get(field).is_some(), "{field}");
    }

    let list: Value = w.get_with("/api/v1/auth/api-keys", &admin).await.json().await.unwrap();
    let listed = list["items"].as_array().unwrap().iter().find(|k| k["id"] == created["id"]).expect("listed");
    assert!(listed.get("key").is_none(), "the secret is shown only once");
    assert!(!list.to_string().contains(key));

    // Both header forms work; the scope narrows the admin's `*`.
    let me = with_key(&w, reqwest::Method::GET, "/api/v1/auth/me", key).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["permissions"], json!(["users:read"]), "scopes ∩ the owner's `*`");
    let me2 =
        w.http.get(w.url("/api/v1/auth/me")).header("authorization", format!("ApiKey {key}")).send().await.unwrap();
    assert_eq!(me2.status(), 200);
    let user_id = me["id"].as_str().unwrap().to_owned();
    let read = with_key(&w, reqwest::Method::GET, &format!("/api/v1/admin/users/{user_id}"), key).await;
    assert_eq!(read.status(), 200);
    let write = w
        .http
        .post(w.url("/api/v1/admin/roles"))
        .header("x-api-key", key)
        .json(&json!({ "name": "x", "permissions": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(code(write).await, (403, "access_denied".into()));
    let verdict: Value = w
        .http
        .post(w.url("/api/v1/auth/authorize"))
        .header("x-api-key", key)
        .json(&json!({ "permission": "users:write" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verdict["allowed"], false);
    assert_eq!(verdict["subject"], user_id.as_str());

    // Revoked: fails at once; a mistyped key is key_invalid.
    let id = created["id"].as_str().unwrap();
    let revoked =
        w.http.delete(w.url(&format!("/api/v1/auth/api-keys/{id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        code(with_key(&w, reqwest::Method::GET, "/api/v1/auth/me", key).await).await,
        (401, "key_revoked".into())
    );
    let mut typo = key.to_owned();
    typo.replace_range(10..11, if &key[10..11] == "A" { "B" } else { "A" });
    assert_eq!(
        code(with_key(&w, reqwest::Method::GET, "/api/v1/auth/me", &typo).await).await,
        (401, "key_invalid".into())
    );
    w.shutdown().await;
}

async fn key_follows_owner_permissions(w: TestWarden) {
    let admin = w.admin_token().await;
    let role = w.create_role(&admin, "reader", &["users:read"]).await;
    let name = unique("carol");
    let user = w.create_user(&admin, &name, "carol-password-12", &[&role]).await;
    let id = user["id"].as_str().unwrap();
    let token = w.login_ok(&name, "carol-password-12").await["access_token"].as_str().unwrap().to_owned();
    let key: Value = create_key(&w, &token, json!({ "name": "all-mine" })).await.json().await.unwrap();
    let key = key["key"].as_str().unwrap();
    let path = format!("/api/v1/admin/users/{id}");
    assert_eq!(with_key(&w, reqwest::Method::GET, &path, key).await.status(), 200);

    // The owner loses the role: the key loses it on the next request.
    let removed = w
        .http
        .delete(w.url(&format!("/api/v1/admin/users/{id}/roles/{role}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    assert_eq!(
        code(with_key(&w, reqwest::Method::GET, &path, key).await).await,
        (403, "insufficient_permissions".into())
    );

    // Admin view of another user's keys, and revocation with keys:admin.
    let listed: Value = w.get_with(&format!("/api/v1/admin/users/{id}/api-keys"), &admin).await.json().await.unwrap();
    let key_id = listed["items"][0]["id"].as_str().unwrap();
    let other =
        w.http.delete(w.url(&format!("/api/v1/auth/api-keys/{key_id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(other.status(), 404, "the self-service route only sees the caller's own keys");
    let revoked =
        w.http.delete(w.url(&format!("/api/v1/admin/api-keys/{key_id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        code(with_key(&w, reqwest::Method::GET, "/api/v1/auth/me", key).await).await,
        (401, "key_revoked".into())
    );
    w.shutdown().await;
}

async fn key_rate_limit_and_expiry(w: TestWarden) {
    let admin = w.admin_token().await;
    let limited: Value =
        create_key(&w, &admin, json!({ "name": "limited", "rate_limit_per_minute": 3 })).await.json().await.unwrap();
    let key = limited["key"].as_str().unwrap();
    for _ in 0..3 {
        let ok = with_key(&w, reqwest::Method::GET, "/api/v1/auth/me", key).await;
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["ratelimit-policy"], "3;w=60");
    }
    let refused = with_key(&w, reqwest::Method::GET, "/api/v1/auth/me", key).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(code(refused).await.1, "rate_limited");
    w.clock.advance(21);
    assert_eq!(with_key(&w, reqwest::Method::GET, "/api/v1/auth/me", key).await.status(), 200, "refilled");

    let expiring: Value =
        create_key(&w, &admin, json!({ "name": "short", "expires_in": 60 })).await.json().await.unwrap();
    let key = expiring["key"].as_str().unwrap();
    assert_eq!(with_key(&w, reqwest::Method::GET, "/api/v1/auth/me", key).await.status(), 200);
    w.clock.advance(61);
    assert_eq!(
        code(with_key(&w, reqwest::Method::GET, "/api/v1/auth/me", key).await).await,
        (401, "key_expired".into())
    );
    let bad = create_key(&w, &admin, json!({ "name": "bad", "scopes": ["not a permission"] })).await;
    assert_eq!(code(bad).await, (400, "validation_error".into()));
    w.shutdown().await;
}

async fn keys_create_keys_only_with_keys_write(w: TestWarden) {
    let admin = w.admin_token().await;
    let plain: Value =
        create_key(&w, &admin, json!({ "name": "reader", "scopes": ["users:read"] })).await.json().await.unwrap();
    let by_key = |key: String, body: Value| {
        let (http, url) = (w.http.clone(), w.url("/api/v1/auth/api-key"));
        async move { http.post(url).header("x-api-key", key).json(&body).send().await.unwrap() }
    };
    let refused = by_key(plain["key"].as_str().unwrap().into(), json!({ "name": "child" })).await;
    assert_eq!(code(refused).await.0, 403);

    let minter: Value = create_key(&w, &admin, json!({ "name": "minter", "scopes": ["keys:write", "users:read"] }))
        .await
        .json()
        .await
        .unwrap();
    let minter = minter["key"].as_str().unwrap().to_owned();
    let child = by_key(minter.clone(), json!({ "name": "child", "scopes": ["users:read"] })).await;
    assert_eq!(child.status(), 201);
    // Never broader than the key that mints it.
    let broader = by_key(minter.clone(), json!({ "name": "wide", "scopes": ["roles:write"] })).await;
    assert_eq!(code(broader).await, (403, "access_denied".into()));
    let inherited: Value = by_key(minter, json!({ "name": "same" })).await.json().await.unwrap();
    assert_eq!(inherited["scopes"], json!(["keys:write", "users:read"]));
    w.shutdown().await;
}
