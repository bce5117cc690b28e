//! Flow 4 (RBAC) through REST: deny by default over the whole route table, policy denies,
//! role_not_found, no self-escalation, forward-auth answers.
use serde_json::{Value, json};
use warden_tests::{TestWarden, on_every_backend, unique};

on_every_backend!(every_protected_route_refuses_a_caller_without_roles, deny_entries_and_escalation);

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn every_protected_route_refuses_a_caller_without_roles(w: TestWarden) {
    let admin = w.admin_token().await;
    let name = unique("nobody");
    w.create_user(&admin, &name, "nobody-password-1", &[]).await;
    let token = w.login_ok(&name, "nobody-password-1").await["access_token"].as_str().unwrap().to_owned();
    let id = uuid::Uuid::new_v4().to_string();
    for route in warden_gateway::table() {
        let path = route.path.replace("{id}", &id).replace("{name}", "somerole").replace("{role}", "somerole");
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let request = || w.http.request(method.clone(), w.url(&path)).json(&json!({}));
        let anonymous = request().send().await.unwrap().status().as_u16();
        let with_token = request().bearer_auth(&token).send().await.unwrap().status().as_u16();
        match route.access {
            warden_gateway::Access::Public => {}
            warden_gateway::Access::Permission(p) => {
                assert_eq!(anonymous, 401, "{} {} anonymous", route.method, route.path);
                assert_eq!(with_token, 403, "{} {} needs {p}", route.method, route.path);
            }
            warden_gateway::Access::Authenticated { .. } => {
                assert_eq!(anonymous, 401, "{} {} anonymous", route.method, route.path);
                assert!(
                    with_token != 401 && with_token != 403,
                    "{} {} self-service: {with_token}",
                    route.method,
                    route.path
                );
            }
        }
    }
    // Forward-auth: 401 without a credential, 403 without the permission, 200 with it.
    let verify = |t: Option<&str>, p: &str| {
        let mut r = w.http.get(w.url(&format!("/api/v1/auth/verify?permission={p}")));
        if let Some(t) = t {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(verify(None, "users:read").await.unwrap().status(), 401);
    let denied = verify(Some(&token), "users:read").await.unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(denied.headers()["www-authenticate"], "Bearer realm=\"warden\", error=\"insufficient_scope\"");
    let ok = verify(Some(&admin), "users:read").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("x-warden-subject"));
    w.shutdown().await;
}

async fn deny_entries_and_escalation(w: TestWarden) {
    let admin = w.admin_token().await;
    let suffix = &unique("x")[2..8];
    let (ops, auditor) = (format!("ops{suffix}"), format!("auditor{suffix}"));
    let post_role = |body: Value, token: String| {
        let (http, url) = (w.http.clone(), w.url("/api/v1/admin/roles"));
        async move { http.post(url).bearer_auth(token).json(&body).send().await.unwrap() }
    };
    let r =
        post_role(json!({ "name": ops, "permissions": ["users:*", "roles:write", "roles:read"] }), admin.clone()).await;
    assert_eq!(r.status(), 201);
    let r =
        post_role(json!({ "name": auditor, "permissions": ["!users:delete"], "inherits": [ops] }), admin.clone()).await;
    assert_eq!(r.status(), 201);
    let r =
        post_role(json!({ "name": format!("bad{suffix}"), "permissions": [], "inherits": ["nope"] }), admin.clone())
            .await;
    assert_eq!(code(r).await, (404, "role_not_found".into()));

    let name = unique("dave");
    let user = w.create_user(&admin, &name, "dave-password-123", &[&auditor]).await;
    let token = w.login_ok(&name, "dave-password-123").await["access_token"].as_str().unwrap().to_owned();
    let authorize = |p: &str| {
        let (http, url, token, p) = (w.http.clone(), w.url("/api/v1/auth/authorize"), token.clone(), p.to_owned());
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({ "permission": p }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let deny = authorize("users:delete").await;
    assert_eq!(deny["allowed"], false);
    assert_eq!(deny["code"], "policy_violation");
    assert!(deny["reason"].as_str().unwrap().contains("!users:delete"), "{deny}");
    assert_eq!(authorize("users:read").await["allowed"], true);
    assert_eq!(authorize("billing:read").await["allowed"], false);

    // Dave holds roles:write but not `*`: he cannot grant admin, even to himself.
    let id = user["id"].as_str().unwrap();
    let grant =
        w.http.put(w.url(&format!("/api/v1/admin/users/{id}/roles/admin"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(code(grant).await, (403, "access_denied".into()));
    let wider =
        post_role(json!({ "name": format!("wide{suffix}"), "permissions": ["billing:*"] }), token.clone()).await;
    assert_eq!(code(wider).await, (403, "access_denied".into()));
    let inherit = post_role(
        json!({ "name": format!("sneaky{suffix}"), "permissions": [], "inherits": ["admin"] }),
        token.clone(),
    )
    .await;
    assert_eq!(code(inherit).await, (403, "access_denied".into()));
    let unknown = w
        .http
        .put(w.url(&format!("/api/v1/admin/users/{id}/roles/ghost{suffix}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(code(unknown).await, (404, "role_not_found".into()));
    // Mass assignment: roles in a self-service body are not a way in.
    let me: Value = w.get_with("/api/v1/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["roles"], json!([auditor]));
    w.shutdown().await;
}
