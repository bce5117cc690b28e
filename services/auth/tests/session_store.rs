//! The session store's contract, the same on the SQL store (embedded default) and on Redis,
//! plus what the Redis layout adds: one hash per user, pruned as it grows, alive exactly as
//! long as its longest-lived session.
use fred::prelude::*;
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use std::sync::Arc;
use uuid::Uuid;
use warden_auth::store::{RedisStore, Rotation, SessionRecord, SessionStore, SqlStore};
use warden_common::secret::sha256_hex;
use warden_common::{db, testing};

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        warden_auth::migrations()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn session(user_id: Uuid, created_at: i64, lifetime: i64) -> SessionRecord {
    SessionRecord {
        id: Uuid::new_v4(),
        user_id,
        refresh_hash: sha256_hex(&Uuid::new_v4().to_string()),
        created_at,
        expires_at: created_at + lifetime,
        refresh_expires_at: created_at + lifetime / 2,
        last_refreshed_at: created_at,
        previous_hash: None,
        rotated_at: 0,
    }
}

async fn sql_store() -> Arc<dyn SessionStore> {
    let url = testing::sqlite_url();
    let conn = db::connect(&url).await.expect("sqlite");
    db::migrate::<Migrator>(&url, &conn).await.expect("migrate");
    Arc::new(SqlStore::new(conn))
}

async fn redis(test: &str) -> Option<Client> {
    let url = testing::redis_url(test)?;
    Some(warden_common::redis::connect(&url).await.expect("redis"))
}

/// What every store must do; runs on each.
async fn contract(store: Arc<dyn SessionStore>) {
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let t = now();
    let s = session(user, t, 3600);
    store.create_session(&s).await.unwrap();
    assert_eq!(store.get_session(user, s.id, t).await.unwrap(), Some(s.clone()));

    // Named under another user, a session does not exist: not read, rotated or ended.
    assert_eq!(store.get_session(other, s.id, t).await.unwrap(), None);
    let next = sha256_hex("next");
    let stolen = store.rotate(other, s.id, &s.refresh_hash, &next, t + 1800, t).await.unwrap();
    assert_eq!(stolen, Rotation::Missing);
    assert!(!store.delete_session(other, s.id).await.unwrap());
    assert_eq!(store.delete_user_sessions(other, None, t).await.unwrap(), Vec::<Uuid>::new());
    assert_eq!(store.get_session(user, s.id, t).await.unwrap(), Some(s.clone()));

    // Rotation: the current hash swaps once; the old one is then not current.
    let Rotation::Rotated(rotated) = store.rotate(user, s.id, &s.refresh_hash, &next, t + 1800, t + 5).await.unwrap()
    else {
        panic!("the current hash rotates")
    };
    assert_eq!(rotated.refresh_hash, next);
    assert_eq!(rotated.previous_hash.as_deref(), Some(s.refresh_hash.as_str()));
    assert_eq!((rotated.refresh_expires_at, rotated.last_refreshed_at, rotated.rotated_at), (t + 1800, t + 5, t + 5));
    assert_eq!((rotated.created_at, rotated.expires_at), (s.created_at, s.expires_at));
    assert_eq!(store.get_session(user, s.id, t + 5).await.unwrap(), Some(rotated.clone()));
    let again = store.rotate(user, s.id, &s.refresh_hash, &sha256_hex("other"), t + 1800, t + 6).await.unwrap();
    assert_eq!(again, Rotation::NotCurrent(rotated.clone()));

    // Past its end a session is gone, and rotating it says it expired.
    assert_eq!(store.get_session(user, s.id, t + 1800).await.unwrap(), None);
    assert_eq!(
        store.rotate(user, s.id, &next, &sha256_hex("late"), t + 3000, t + 1800).await.unwrap(),
        Rotation::Expired
    );

    // Ending all but one: the kept one stays, the ended ones are reported once.
    let sessions: Vec<SessionRecord> = (0..3).map(|i| session(user, t + i, 3600)).collect();
    for s in &sessions {
        store.create_session(s).await.unwrap();
    }
    let listed: Vec<Uuid> = store.list_sessions(user, t + 3).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![sessions[2].id, sessions[1].id, sessions[0].id], "newest first");
    let mut ended = store.delete_user_sessions(user, Some(sessions[1].id), t + 3).await.unwrap();
    ended.sort();
    let mut expected = vec![sessions[0].id, sessions[2].id];
    expected.sort();
    assert_eq!(ended, expected);
    assert_eq!(store.get_session(user, sessions[1].id, t + 3).await.unwrap(), Some(sessions[1].clone()));
    assert_eq!(store.get_session(user, sessions[0].id, t + 3).await.unwrap(), None);
    assert!(store.delete_session(user, sessions[1].id).await.unwrap());
    assert!(!store.delete_session(user, sessions[1].id).await.unwrap());
    assert!(store.list_sessions(user, t + 3).await.unwrap().is_empty());
}

#[tokio::test]
async fn sql_store_keeps_the_contract() {
    contract(sql_store().await).await;
}

#[tokio::test]
async fn redis_store_keeps_the_contract() {
    let Some(client) = redis("redis_store_keeps_the_contract").await else { return };
    contract(Arc::new(RedisStore::new(client))).await;
}

fn user_key(user: Uuid) -> String {
    format!("warden:sessions:{}", user.simple())
}

async fn expire_time(client: &Client, key: &str) -> i64 {
    let ms: i64 = client.pttl(key).await.unwrap();
    assert!(ms > 0, "{key} has a TTL");
    (now() * 1000 + ms + 500) / 1000
}

#[tokio::test]
async fn redis_user_hash_lives_as_long_as_its_longest_session() {
    let Some(client) = redis("redis_user_hash_lives_as_long_as_its_longest_session").await else { return };
    let store = RedisStore::new(client.clone());
    let (user, t) = (Uuid::new_v4(), now());
    let long = session(user, t, 7200); // ends (refresh) at t + 3600
    let short = session(user, t, 600); // ends at t + 300
    store.create_session(&long).await.unwrap();
    store.create_session(&short).await.unwrap();
    let key = user_key(user);
    assert!((expire_time(&client, &key).await - (t + 3600)).abs() <= 1, "a shorter session does not shorten the key");

    // A rotation that moves the session's end past the key's moves the key's too.
    let next = sha256_hex("next");
    assert!(matches!(
        store.rotate(user, long.id, &long.refresh_hash, &next, t + 7000, t).await.unwrap(),
        Rotation::Rotated(_)
    ));
    assert!((expire_time(&client, &key).await - (t + 7000)).abs() <= 1);

    // Ending all but one keeps the key's expiry.
    store.delete_user_sessions(user, Some(long.id), t).await.unwrap();
    assert!((expire_time(&client, &key).await - (t + 7000)).abs() <= 1);
    assert!(store.get_session(user, long.id, t).await.unwrap().is_some());
    store.delete_user_sessions(user, None, t).await.unwrap();
    let exists: i64 = client.exists(&key).await.unwrap();
    assert_eq!(exists, 0, "ending every session removes the key");
}

#[tokio::test]
async fn redis_user_hash_is_pruned_as_it_grows() {
    let Some(client) = redis("redis_user_hash_is_pruned_as_it_grows").await else { return };
    let store = RedisStore::new(client.clone());
    let (user, t) = (Uuid::new_v4(), now());
    let key = user_key(user);
    // Ten sessions that end at t + 50, then logins after that: nothing is pruned until the
    // hash reaches 32 fields (16 sessions); then the ended ones are dropped at once.
    for _ in 0..10 {
        store.create_session(&session(user, t, 100)).await.unwrap();
    }
    let later: Vec<SessionRecord> = (0..6).map(|i| session(user, t + 60 + i, 3600)).collect();
    for s in &later[..5] {
        store.create_session(s).await.unwrap();
    }
    let fields: i64 = client.hlen(&key).await.unwrap();
    assert_eq!(fields, 30, "below the prune size nothing is dropped");
    store.create_session(&later[5]).await.unwrap();
    let fields: i64 = client.hlen(&key).await.unwrap();
    assert_eq!(fields, 13, "the six live sessions' two fields each, and the prune mark");
    let mut newest_first = later.clone();
    newest_first.reverse();
    assert_eq!(store.list_sessions(user, t + 66).await.unwrap(), newest_first);

    // Live sessions are never pruned, and the next prune waits for the hash to double.
    for i in 0..40 {
        store.create_session(&session(user, t + 70 + i, 3600)).await.unwrap();
    }
    assert_eq!(store.list_sessions(user, t + 110).await.unwrap().len(), 46);
}
