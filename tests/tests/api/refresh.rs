//! Flow 3 (refresh): rotation, the replay window, reuse detection, concurrency, idle and
//! absolute expiry (with the injected clock), logout of all sessions and the session list.
use serde_json::{Value, json};
use warden_tests::{ADMIN_PASSWORD, Backend, TestWarden, on_every_backend};

on_every_backend!(
    refresh_rotates_and_reuse_revokes_the_family,
    parallel_refreshes_yield_one_family,
    idle_and_absolute_expiry,
    logout_all_and_session_list,
    forged_tokens_naming_a_session_cannot_end_it
);

async fn refresh(w: &TestWarden, token: &str) -> reqwest::Response {
    w.post("/api/v1/auth/refresh", json!({ "refresh_token": token })).await
}

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn refresh_rotates_and_reuse_revokes_the_family(w: TestWarden) {
    let first = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let t0 = first["refresh_token"].as_str().unwrap();
    let r = refresh(&w, t0).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let second: Value = r.json().await.unwrap();
    let t1 = second["refresh_token"].as_str().unwrap();
    assert_ne!(t0, t1, "the refresh token is rotated");
    assert_eq!(w.get_with("/api/v1/auth/me", second["access_token"].as_str().unwrap()).await.status(), 200);

    // A lost answer: the same old token inside the replay window gets the same successor.
    let again: Value = refresh(&w, t0).await.json().await.unwrap();
    assert_eq!(again["refresh_token"], second["refresh_token"]);
    assert_eq!(again["access_token"], second["access_token"]);

    // Past the window, the old token is reuse: the whole family ends.
    w.clock.advance(11);
    assert_eq!(code(refresh(&w, t0).await).await, (401, "token_revoked".into()));
    assert_eq!(code(refresh(&w, t1).await).await, (401, "token_revoked".into()));
    let me = w.get_with("/api/v1/auth/me", second["access_token"].as_str().unwrap()).await;
    assert_eq!(code(me).await, (401, "token_revoked".into()));
    // Junk is refresh_failed, not a 5xx.
    assert_eq!(code(refresh(&w, "junk").await).await, (401, "refresh_failed".into()));
    w.shutdown().await;
}

async fn parallel_refreshes_yield_one_family(w: TestWarden) {
    let first = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let t0 = first["refresh_token"].as_str().unwrap().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (http, url, t0) = (w.http.clone(), w.url("/api/v1/auth/refresh"), t0.clone());
        tasks.spawn(async move {
            let r = http.post(url).json(&json!({ "refresh_token": t0 })).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        });
    }
    let mut successors = std::collections::HashSet::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        assert!(status < 500, "no 5xx: {status} {body}");
        if status == 200 {
            successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(successors.len(), 1, "every success returns the same successor");
    let successor = successors.into_iter().next().unwrap();
    let next = refresh(&w, &successor).await;
    assert_eq!(next.status(), 200, "the one family is alive");
    let sessions: Value =
        w.get_with("/api/v1/auth/sessions", first["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(sessions["items"].as_array().unwrap().len(), 1);
    w.shutdown().await;
}

async fn idle_and_absolute_expiry(w: TestWarden) {
    // Idle: past the refresh TTL without a refresh.
    let tokens = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    w.clock.advance(1_209_600 + 11);
    let r = refresh(&w, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(code(r).await, (401, "session_expired".into()));
    w.shutdown().await;
}

/// Absolute: refreshing keeps a session idle-fresh, but not past its maximum age.
async fn absolute_session_age(backend: Backend) {
    let Some(w) = TestWarden::start_with(backend, "absolute_session_age", |c| {
        c.session_max_age = 100;
        c.refresh_token_ttl = 60;
    })
    .await
    else {
        return;
    };
    let mut token = w.login_ok(&w.admin, ADMIN_PASSWORD).await["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        w.clock.advance(40);
        let next: Value = refresh(&w, &token).await.json().await.unwrap();
        assert!(next["refresh_expires_in"].as_i64().unwrap() <= 60, "{next}");
        token = next["refresh_token"].as_str().unwrap().to_owned();
    }
    w.clock.advance(25);
    assert_eq!(code(refresh(&w, &token).await).await, (401, "session_expired".into()));
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_session_age_sqlite() {
    absolute_session_age(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_session_age_postgres_redis() {
    absolute_session_age(Backend::PostgresRedis).await;
}

async fn logout_all_and_session_list(w: TestWarden) {
    let a = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let b = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let access_a = a["access_token"].as_str().unwrap();
    let access_b = b["access_token"].as_str().unwrap();
    let list: Value = w.get_with("/api/v1/auth/sessions", access_a).await.json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert!(items.len() >= 2);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);

    // Ending one session by id stops its access token at once.
    let claims: Value = {
        use base64::Engine;
        let part = access_b.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let sid = claims["sid"].as_str().unwrap();
    let ended =
        w.http.delete(w.url(&format!("/api/v1/auth/sessions/{sid}"))).bearer_auth(access_a).send().await.unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(w.get_with("/api/v1/auth/me", access_b).await.status(), 401);
    let unknown =
        w.http.delete(w.url(&format!("/api/v1/auth/sessions/{sid}"))).bearer_auth(access_a).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    let c = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let out = w
        .http
        .post(w.url("/api/v1/auth/logout"))
        .bearer_auth(access_a)
        .json(&json!({ "all": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    for t in [access_a, c["access_token"].as_str().unwrap()] {
        assert_eq!(w.get_with("/api/v1/auth/me", t).await.status(), 401);
    }
    assert_eq!(code(refresh(&w, c["refresh_token"].as_str().unwrap()).await).await, (401, "token_revoked".into()));
    w.shutdown().await;
}

/// Refresh skips the signature check only for a token whose hash is the session's current
/// one; a forged token that merely names the session (its `sid`) must take the verified path
/// and be refused there, without counting as reuse that would end the victim's session.
async fn forged_tokens_naming_a_session_cannot_end_it(w: TestWarden) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pair = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let real = pair["refresh_token"].as_str().unwrap();
    let parts: Vec<&str> = real.split('.').collect();
    let mut sig = b64.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64.encode(&sig));
    let none_header = b64.encode(br#"{"alg":"none","typ":"refresh+jwt"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    for forged in [flipped, unsigned] {
        assert_eq!(code(refresh(&w, &forged).await).await, (401, "refresh_failed".into()), "{forged}");
    }
    // The victim's session is untouched: its real token still rotates, and its access token works.
    let r = refresh(&w, real).await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    assert_eq!(w.get_with("/api/v1/auth/me", next["access_token"].as_str().unwrap()).await.status(), 200);
    w.shutdown().await;
}
