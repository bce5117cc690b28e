//! Creating, validating and listing keys.
use crate::on_every_backend;
use crate::support::{Env, assert_code, create, forge, new_key};
use sea_orm::ConnectionTrait;
use std::time::Duration;
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_common::secret::sha256_hex;
use warden_key::{KeyApi, NewApiKey};

async fn created_key_is_shown_once_and_stored_only_as_a_hash(env: &Env) {
    let keys = env.replica().await;
    let owner = Uuid::new_v4();
    let created = create(&keys, new_key(owner, "ci")).await;
    let secret = created.secret.expose();
    assert!(secret.starts_with(&format!("{}_", created.key.prefix)), "key starts with its public prefix");
    assert!(created.key.prefix.starts_with("wdn_"));
    assert_eq!(secret.len(), 76);
    assert!(!format!("{created:?}").contains(secret), "Debug redacts the secret");

    let secret_part = &secret[created.key.prefix.len() + 1..secret.len() - 6];
    let rows = env.raw_rows().await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].contains(&sha256_hex(secret)), "the hash is stored: {}", rows[0]);
    for row in &rows {
        assert!(!row.contains(secret_part), "secret in a column: {row}");
    }
    if let Some(path) = &env.sqlite_path {
        keys.flush_usage().await.expect("flush");
        for file in [path.clone(), path.with_extension("db-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let found = bytes.windows(secret_part.len()).any(|w| w == secret_part.as_bytes());
            assert!(!found, "secret on disk in {}", file.display());
        }
    }
    let listed = keys.list_api_keys(owner).await.expect("list");
    assert!(!format!("{listed:?}").contains(secret_part));
}
on_every_backend!(created_key_is_shown_once_and_stored_only_as_a_hash);

async fn validation_outcomes(env: &Env) {
    let keys = env.replica().await;
    let owner = Uuid::new_v4();
    let created = create(
        &keys,
        NewApiKey { expires_in: Some(60), scopes: vec!["users:*".into(), "*:read".into()], ..new_key(owner, "ci") },
    )
    .await;
    let secret = created.secret.expose();

    let ok = keys.validate_api_key(secret).await.expect("valid key");
    assert_eq!(ok.key.id, created.key.id);
    assert_eq!(ok.key.owner_id, owner);
    assert_eq!(ok.key.scopes, ["users:*", "*:read"]);
    assert!(ok.key.last_used_at.is_some());
    assert_eq!(ok.rate_limit_remaining, u32::MAX, "unlimited");

    // A mistyped key, a wrong secret behind a right id and checksum, junk: one answer.
    let mut typo = secret.to_owned().into_bytes();
    typo[40] = if typo[40] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    for bad in [typo.as_str(), &forge(secret), "", "wdn_", &secret[..secret.len() - 1], &"x".repeat(100_000)] {
        assert_code(keys.validate_api_key(bad).await, ErrorCode::KeyInvalid);
    }

    // Expiry uses the injected clock, also for a row that is already cached.
    env.clock.advance(59);
    keys.validate_api_key(secret).await.expect("valid until expiry");
    env.clock.advance(1);
    assert_code(keys.validate_api_key(secret).await, ErrorCode::KeyExpired);

    let other = create(&keys, new_key(owner, "other")).await;
    keys.validate_api_key(other.secret.expose()).await.expect("valid");
    keys.revoke_api_key(other.key.id, Some(owner)).await.expect("revoke");
    assert_code(keys.validate_api_key(other.secret.expose()).await, ErrorCode::KeyRevoked);
    // Revoked keys still need their real secret to learn that they are revoked.
    assert_code(keys.validate_api_key(&forge(other.secret.expose())).await, ErrorCode::KeyInvalid);
}
on_every_backend!(validation_outcomes);

async fn unknown_id_is_invalid(env: &Env) {
    let keys = env.replica().await;
    let created = create(&keys, new_key(Uuid::new_v4(), "gone")).await;
    env.db.execute_unprepared("DELETE FROM api_keys").await.expect("delete");
    assert_code(keys.validate_api_key(created.secret.expose()).await, ErrorCode::KeyInvalid);
}
on_every_backend!(unknown_id_is_invalid);

async fn bad_requests_are_validation_errors(env: &Env) {
    let keys = env.replica().await;
    let owner = Uuid::new_v4();
    let cases = [
        NewApiKey { name: String::new(), ..new_key(owner, "") },
        new_key(owner, "   "),
        new_key(owner, &"n".repeat(101)),
        NewApiKey { scopes: vec!["users".into()], ..new_key(owner, "x") },
        NewApiKey { scopes: vec!["Users:read".into()], ..new_key(owner, "x") },
        NewApiKey { scopes: vec!["!users:read".into()], ..new_key(owner, "x") },
        NewApiKey { expires_in: Some(0), ..new_key(owner, "x") },
        NewApiKey { expires_in: Some(-1), ..new_key(owner, "x") },
        NewApiKey { rate_limit_per_minute: Some(1_000_001), ..new_key(owner, "x") },
        new_key(Uuid::nil(), "x"),
    ];
    for case in cases {
        assert_code(keys.generate_api_key(case.clone()).await, ErrorCode::ValidationError);
    }
    assert_eq!(env.count_rows().await, 0);
    let max = create(&keys, NewApiKey { scopes: vec!["*".into()], ..new_key(owner, &"n".repeat(100)) }).await;
    assert_eq!(max.key.name.chars().count(), 100);
    assert_eq!(max.key.rate_limit_per_minute, 0);
}
on_every_backend!(bad_requests_are_validation_errors);

async fn list_is_newest_first_without_secrets(env: &Env) {
    let keys = env.replica().await;
    let owner = Uuid::new_v4();
    let mut created = Vec::new();
    for name in ["first", "second", "third"] {
        created.push(create(&keys, new_key(owner, name)).await);
        env.clock.advance(1);
    }
    let stranger = create(&keys, new_key(Uuid::new_v4(), "stranger")).await;
    keys.revoke_api_key(created[1].key.id, None).await.expect("revoke");
    keys.validate_api_key(created[2].secret.expose()).await.expect("valid");

    let listed = keys.list_api_keys(owner).await.expect("list");
    let names: Vec<&str> = listed.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["third", "second", "first"]);
    assert!(listed[1].revoked_at.is_some(), "revoked keys are listed with revoked_at");
    assert!(listed[0].revoked_at.is_none() && listed[2].revoked_at.is_none());
    assert!(listed[0].last_used_at.is_some(), "a use shows before it is written");
    assert!(listed[2].last_used_at.is_none());
    assert_eq!(listed[0].created_at, created[2].key.created_at, "timestamps survive the round trip");
    assert_eq!(listed[2], created[0].key);
    let text = format!("{listed:?}");
    for c in &created {
        assert!(!text.contains(&c.secret.expose()[30..70]), "no secret in the list");
    }
    assert!(!listed.iter().any(|k| k.id == stranger.key.id));
    assert!(keys.list_api_keys(Uuid::new_v4()).await.expect("list").is_empty());
}
on_every_backend!(list_is_newest_first_without_secrets);

async fn last_used_is_written_in_the_background(env: &Env) {
    let keys = env.replica().await;
    let owner = Uuid::new_v4();
    let created = create(&keys, new_key(owner, "used")).await;
    let used = keys.validate_api_key(created.secret.expose()).await.expect("valid").key.last_used_at;
    // Another replica only sees what reached the database; the writer runs every few seconds.
    let other = env.replica().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let listed = other.list_api_keys(owner).await.expect("list");
        if listed[0].last_used_at.is_some() {
            assert_eq!(listed[0].last_used_at, used);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "last_used_at never written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
on_every_backend!(last_used_is_written_in_the_background);

async fn pepper_changes_the_stored_hash(env: &Env) {
    let peppered = env.replica_with_pepper(Some("server-pepper")).await;
    let created = create(&peppered, new_key(Uuid::new_v4(), "peppered")).await;
    let secret = created.secret.expose();
    let row = env.raw_rows().await.remove(0);
    assert!(!row.contains(&sha256_hex(secret)), "plain SHA-256 is not stored when a pepper is set");
    assert!(row.contains("hmac-sha256"));
    peppered.validate_api_key(secret).await.expect("valid with the pepper");
    let wrong = env.replica_with_pepper(Some("another-pepper")).await;
    assert_code(wrong.validate_api_key(secret).await, ErrorCode::KeyInvalid);
    let none = env.replica().await;
    assert_code(none.validate_api_key(secret).await, ErrorCode::Internal);
}
on_every_backend!(pepper_changes_the_stored_hash);

#[tokio::test]
async fn checksum_failures_never_touch_storage() {
    let env = Env::sqlite().await;
    let keys = env.replica().await;
    let created = create(&keys, new_key(Uuid::new_v4(), "k")).await;
    let secret = created.secret.expose().to_owned();
    env.db.clone().close().await.expect("close");
    let mut typo = secret.clone().into_bytes();
    typo[50] = if typo[50] == b'Z' { b'Y' } else { b'Z' };
    assert_code(keys.validate_api_key(&String::from_utf8(typo).expect("ascii")).await, ErrorCode::KeyInvalid);
    // The database really is gone: a well-formed key needs it and fails closed.
    let e = assert_code(keys.validate_api_key(&forge(&secret)).await, ErrorCode::Unavailable);
    assert_eq!(e.code.http_status(), 503);
    assert!(!keys.ready().await);
}

#[tokio::test]
async fn a_failed_insert_leaves_nothing_and_answers_503() {
    let env = Env::sqlite().await;
    env.db
        .execute_unprepared(
            "CREATE TRIGGER fail_after_insert AFTER INSERT ON api_keys BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .await
        .expect("trigger");
    let keys = env.replica().await;
    let e = assert_code(keys.generate_api_key(new_key(Uuid::new_v4(), "k")).await, ErrorCode::Unavailable);
    assert_eq!(e.code.http_status(), 503);
    assert!(!e.detail.contains("disk full"), "no SQL detail for the client: {}", e.detail);
    assert_eq!(env.count_rows().await, 0, "no orphan row");
    env.db.execute_unprepared("DROP TRIGGER fail_after_insert").await.expect("drop trigger");
    create(&keys, new_key(Uuid::new_v4(), "k")).await;
    assert_eq!(env.count_rows().await, 1);
}
