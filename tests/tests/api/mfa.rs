//! The TOTP second factor end to end, over REST and gRPC: enrolment, activation with
//! recovery codes, the two-step login, replay refused, recovery codes single use, wrong
//! codes counting toward lockout, admin view and removal.
use serde_json::{Value, json};
use warden_auth::totp;
use warden_common::clock::Clock;
use warden_common::{Error, ErrorCode};
use warden_proto::auth::v1 as pb;
use warden_tests::{TestWarden, on_every_backend, unique};

on_every_backend!(totp_second_factor);

async fn code(r: reqwest::Response) -> (u16, Value) {
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

fn current_code(w: &TestWarden, secret: &[u8]) -> String {
    totp::code_at(secret, totp::step(w.clock.unix()))
}

async fn totp_second_factor(w: TestWarden) {
    let admin = w.admin_token().await;
    let name = unique("frank");
    let password = "frank-passphrase-2026";
    let user = w.create_user(&admin, &name, password, &[]).await;
    let token = w.login_ok(&name, password).await["access_token"].as_str().unwrap().to_owned();
    let post = |path: &str, body: Value| {
        let (http, url, token) = (w.http.clone(), w.url(path), token.clone());
        async move { http.post(url).bearer_auth(token).json(&body).send().await.unwrap() }
    };

    // Enrol, then activate with a first code.
    let (status, enrolment) = code(post("/api/v1/auth/mfa/totp", json!({})).await).await;
    assert_eq!(status, 200);
    let secret = totp::base32_decode(enrolment["secret"].as_str().unwrap()).unwrap();
    assert!(enrolment["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Warden:"));
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));
    let (status, body) = code(post("/api/v1/auth/mfa/totp/confirm", json!({ "code": "000000" })).await).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("mfa_invalid")));
    let first = current_code(&w, &secret);
    let (status, body) = code(post("/api/v1/auth/mfa/totp/confirm", json!({ "code": first })).await).await;
    assert_eq!(status, 200);
    let recovery: Vec<String> =
        body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(recovery.len(), 10);
    assert_eq!(post("/api/v1/auth/mfa/totp", json!({})).await.status(), 409, "already active");

    // Password alone no longer logs in: mfa_required with a token, and no tokens.
    let login = |w: &TestWarden| {
        let (http, url, name) = (w.http.clone(), w.url("/api/v1/auth/login"), name.clone());
        async move {
            let r = http.post(url).json(&json!({ "username": name, "password": password })).send().await.unwrap();
            code(r).await
        }
    };
    let (status, body) = login(&w).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("mfa_required")));
    assert!(body.get("access_token").is_none());
    let mfa_token = body["mfa_token"].as_str().unwrap().to_owned();
    let second =
        |mfa_token: &str, c: &str| w.post("/api/v1/auth/login/mfa", json!({ "mfa_token": mfa_token, "code": c }));

    // The code used for activation cannot be replayed; the next step's code works once.
    let (status, body) = code(second(&mfa_token, &first).await).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("mfa_invalid")), "replay refused");
    w.clock.advance(30);
    let next = current_code(&w, &secret);
    let (status, body) = code(second(&mfa_token, &next).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    let (status, _) = code(second(&mfa_token, &next).await).await;
    assert_eq!(status, 401, "the mfa_token is single use");
    let fresh_token = login(&w).await.1["mfa_token"].as_str().unwrap().to_owned();
    assert_eq!(code(second(&fresh_token, &next).await).await.0, 401, "the same code is not accepted twice");

    // Recovery codes: each works once.
    let (status, _) = code(second(&fresh_token, &recovery[0].to_uppercase()).await).await;
    assert_eq!(status, 200);
    let another = login(&w).await.1["mfa_token"].as_str().unwrap().to_owned();
    assert_eq!(code(second(&another, &recovery[0]).await).await.0, 401);

    // Over gRPC: Login carries mfa_required with the token in ErrorInfo; CompleteMfaLogin.
    let mut grpc = w.auth_client().await;
    let status = grpc.login(pb::LoginRequest { username: name.clone(), password: password.into() }).await.unwrap_err();
    let error = Error::from(status);
    assert_eq!(error.code, ErrorCode::MfaRequired);
    let grpc_token = error.extra("mfa_token").unwrap().to_owned();
    let done = grpc
        .complete_mfa_login(pb::CompleteMfaLoginRequest { mfa_token: grpc_token, code: recovery[1].clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(!done.access_token.is_empty());

    // Wrong codes count toward the lockout.
    let bad = login(&w).await.1["mfa_token"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        assert_eq!(code(second(&bad, "111111").await).await.0, 401);
    }
    assert_eq!(code(second(&bad, &recovery[2]).await).await.0, 423);

    // The admin sees the factor and removes it; the password alone works again.
    let id = user["id"].as_str().unwrap();
    let seen: Value = w.get_with(&format!("/api/v1/admin/users/{id}"), &admin).await.json().await.unwrap();
    assert_eq!(seen["mfa_enabled"], true);
    let removed =
        w.http.delete(w.url(&format!("/api/v1/admin/users/{id}/mfa"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(removed.status(), 204);
    let unlock = w
        .http
        .patch(w.url(&format!("/api/v1/admin/users/{id}")))
        .bearer_auth(&admin)
        .json(&json!({ "locked": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(unlock.status(), 200);
    assert_eq!(login(&w).await.0, 200);
    w.shutdown().await;
}
