//! The inventory service against an in-process Warden, on SQLite and (when
//! `WARDEN_TEST_DATABASE_URL` / `WARDEN_TEST_REDIS_URL` are set) on PostgreSQL + Redis:
//! every answer a caller can get, from 200 to 503.
use reqwest::{Method, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use warden_client::{ClientOptions, WardenClient};
use warden_tests::{TestWarden, on_every_backend, unique};

on_every_backend!(inventory_answers_by_warden);

const PASSWORD: &str = "inventory-user-password-1";

/// The inventory service on an ephemeral port; returns its base URL.
async fn start_inventory(w: &TestWarden) -> String {
    let options = ClientOptions::new(w.config.issuer.clone(), w.config.audience.clone());
    let warden = WardenClient::connect(w.grpc_url.clone(), &w.base_url, options).await.expect("connect to warden");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = warden_example_inventory::router(&warden);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

struct Caller<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
}

impl Caller<'_> {
    async fn send(&self, method: Method, header: Option<(&str, String)>) -> Response {
        let mut request = self.http.request(method.clone(), format!("{}/items", self.base));
        if method == Method::POST {
            request = request.json(&json!({ "name": "widget" }));
        }
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        request.send().await.unwrap()
    }
}

fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

/// Status, problem `code` (empty on success) and `WWW-Authenticate` of an answer.
async fn answer(r: Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let challenge = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    if status >= 400 {
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let body: Value = r.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned(), challenge)
}

async fn inventory_answers_by_warden(w: TestWarden) {
    let admin = w.admin_token().await;
    let role = unique("inventory");
    let r = w
        .http
        .post(w.url("/api/v1/admin/roles"))
        .bearer_auth(&admin)
        .json(&json!({ "name": role, "permissions": ["items:read", "items:write"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "create role");
    let (alice, bob) = (unique("alice"), unique("bob"));
    let alice_id = w.create_user(&admin, &alice, PASSWORD, &[role.as_str()]).await["id"].as_str().unwrap().to_owned();
    w.create_user(&admin, &bob, PASSWORD, &[]).await;
    let alice_login = w.login_ok(&alice, PASSWORD).await;
    let alice_token = alice_login["access_token"].as_str().unwrap().to_owned();
    let bob_token = w.login_ok(&bob, PASSWORD).await["access_token"].as_str().unwrap().to_owned();

    let base = start_inventory(&w).await;
    let http = reqwest::Client::new();
    let items = Caller { http: &http, base: &base };

    // Public health; no credential → 401 with the challenge.
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200);
    assert_eq!(
        answer(items.send(Method::GET, None).await).await,
        (401, "unauthenticated".into(), r#"Bearer realm="warden""#.into())
    );
    let (status, code, challenge) = answer(items.send(Method::GET, bearer("not-a-jwt")).await).await;
    assert_eq!((status, code.as_str()), (401, "token_invalid"));
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");

    // Bob has no role: 403 insufficient_permissions.
    let (status, code, challenge) = answer(items.send(Method::GET, bearer(&bob_token)).await).await;
    assert_eq!((status, code.as_str()), (403, "insufficient_permissions"));
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");

    // Alice may read and write; the handler sees her as the subject.
    let added = items.send(Method::POST, bearer(&alice_token)).await;
    assert_eq!(added.status(), 201);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["added_by"], alice_id.as_str());
    let listed = items.send(Method::GET, bearer(&alice_token)).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.json::<Value>().await.unwrap().as_array().unwrap().len(), 1);

    // An API key scoped items:read reads but does not write, whatever its owner may do.
    let created = w
        .http
        .post(w.url("/api/v1/auth/api-key"))
        .bearer_auth(&alice_token)
        .json(&json!({ "name": "inventory-reader", "scopes": ["items:read"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let key = created.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_owned();
    assert_eq!(items.send(Method::GET, Some(("x-api-key", key.clone()))).await.status(), 200);
    let (status, code, _) = answer(items.send(Method::POST, Some(("x-api-key", key.clone()))).await).await;
    assert_eq!((status, code.as_str()), (403, "access_denied"));

    // After logout the token still verifies locally; Warden's live check refuses it at once.
    let r = w.post("/api/v1/auth/logout", json!({ "refresh_token": alice_login["refresh_token"] })).await;
    assert_eq!(r.status(), 204);
    let (status, code, challenge) = answer(items.send(Method::GET, bearer(&alice_token)).await).await;
    assert_eq!((status, code.as_str()), (401, "token_revoked"));
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");

    // Warden stopped: fail closed with 503 and Retry-After, never a pass.
    let alice_token = w.login_ok(&alice, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(items.send(Method::GET, bearer(&alice_token)).await.status(), 200);
    w.shutdown().await;
    for header in [bearer(&alice_token), Some(("x-api-key", key))] {
        let r = items.send(Method::GET, header).await;
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(answer(r).await, (503, "unavailable".into(), String::new()));
    }
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200);
}
