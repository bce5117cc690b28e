//! Signing-key rotation: new tokens use the new key at once, older tokens keep verifying,
//! the JWKS publishes both, and verification under load sees no failure while it happens.
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use warden_tests::{ADMIN_PASSWORD, TestWarden, on_every_backend};
use warden_token::TokenApi;

on_every_backend!(rotation_under_load_rejects_nothing);

fn kid(token: &str) -> String {
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
}

async fn rotation_under_load_rejects_nothing(w: TestWarden) {
    let old = w.admin_token().await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let checked = Arc::new(AtomicUsize::new(0));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (http, url, token) = (w.http.clone(), w.url("/api/v1/auth/me"), old.clone());
        let (stop, failures, checked) = (stop.clone(), failures.clone(), checked.clone());
        load.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let status = http.get(&url).bearer_auth(&token).send().await.unwrap().status();
                checked.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let tokens = w.local().tokens.expect("token service");
    let new_kid = tokens.rotate_signing_key().await.unwrap();
    let fresh = w.admin_token().await;
    assert_eq!(kid(&fresh), new_kid, "new tokens use the new key at once");
    assert_ne!(kid(&old), new_kid);
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    assert!(checked.load(Ordering::Relaxed) > 10);
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no valid token was rejected during rotation");

    let jwks: Value = w.http.get(w.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&new_kid.as_str()) && kids.contains(&kid(&old).as_str()), "{kids:?}");
    assert_eq!(w.get_with("/api/v1/auth/me", &fresh).await.status(), 200);

    // Once every token the old key signed has expired, it leaves the JWKS.
    w.clock.advance(1_209_600 + 60);
    let login = w.login(&w.admin, ADMIN_PASSWORD).await;
    assert_eq!(login.status(), 200);
    tokens.rotate_signing_key().await.unwrap();
    let jwks: Value = w.http.get(w.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(!kids.contains(&kid(&old).as_str()), "retired key dropped: {kids:?}");
    w.shutdown().await;
}

/// Sealed at rest: with a secret the stored private key is ciphertext, a restart with the
/// secret works, and a restart without it stops with a line naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_sealed_and_rotate_automatically() {
    use sea_orm::{ConnectionTrait, Statement};
    use warden_tests::{Backend, backend_urls, base_config};
    let (db, _) = backend_urls(Backend::Sqlite, "sealed").await.unwrap();
    let mut config = base_config(db.clone(), None);
    config.signing_key_secret = Some("an-operator-secret-of-sufficient-length".into());
    config.signing_key_rotation = 3600;
    config.access_token_ttl = 7200;
    let w = TestWarden::start_config(config.clone()).await;
    let first = w.admin_token().await;

    let conn = warden_common::db::connect(&db).await.unwrap();
    let rows = conn
        .query_all_raw(Statement::from_string(conn.get_database_backend(), "SELECT private_key FROM signing_keys"))
        .await
        .unwrap();
    for row in rows {
        let stored: String = row.try_get("", "private_key").unwrap();
        assert!(stored.starts_with("enc:v1:"), "sealed: {stored:.12}");
    }

    // Automatic rotation once the key is older than the interval.
    let tokens = w.local().tokens.unwrap();
    tokens.maintain().await;
    assert_eq!(kid(&w.admin_token().await), kid(&first), "not due yet");
    w.clock.advance(3601);
    tokens.maintain().await;
    let rotated = w.admin_token().await;
    assert_ne!(kid(&rotated), kid(&first), "rotated when due");
    assert_eq!(w.get_with("/api/v1/auth/me", &first).await.status(), 200, "old tokens still verify");
    w.shutdown().await;

    let restarted = TestWarden::start_config(config.clone()).await;
    restarted.clock.advance(3601);
    assert_eq!(restarted.get_with("/api/v1/auth/me", &rotated).await.status(), 200);
    restarted.shutdown().await;

    config.signing_key_secret = None;
    let err =
        warden::Warden::start(config, warden::ServiceRole::All, warden_common::clock::system()).await.err().unwrap();
    assert!(format!("{err:#}").contains("WARDEN_SIGNING_KEY_SECRET"), "{err:#}");
}
