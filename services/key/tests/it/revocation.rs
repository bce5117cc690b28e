//! Revocation: owner checks, and "fails everywhere at once" under concurrent validation.
use crate::on_every_backend;
use crate::support::{Env, assert_code, create, new_key};
use fred::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_key::{KeyApi, SharedKeys};

async fn revoke_checks_the_owner(env: &Env) {
    let keys = env.replica().await;
    let owner = Uuid::new_v4();
    let created = create(&keys, new_key(owner, "mine")).await;
    let secret = created.secret.expose();
    assert_code(keys.revoke_api_key(created.key.id, Some(Uuid::new_v4())).await, ErrorCode::NotFound);
    keys.validate_api_key(secret).await.expect("someone else cannot revoke it");
    assert_code(keys.revoke_api_key(Uuid::new_v4(), None).await, ErrorCode::NotFound);
    assert_code(keys.revoke_api_key(Uuid::new_v4(), Some(owner)).await, ErrorCode::NotFound);
    keys.revoke_api_key(created.key.id, Some(owner)).await.expect("owner revokes");
    let revoked_at = keys.list_api_keys(owner).await.expect("list")[0].revoked_at.expect("revoked_at");
    env.clock.advance(10);
    keys.revoke_api_key(created.key.id, None).await.expect("revoking twice is fine");
    assert_eq!(keys.list_api_keys(owner).await.expect("list")[0].revoked_at, Some(revoked_at), "first time kept");
    assert_code(keys.validate_api_key(secret).await, ErrorCode::KeyRevoked);
}
on_every_backend!(revoke_checks_the_owner);

/// Several tasks validate one key through every replica while it is revoked. Any validation
/// that starts after `revoke_api_key` returned must fail with `key_revoked`.
async fn no_validation_succeeds_after_revoke_returns(env: &Env) {
    let replica_count = if env.redis_url.is_some() { 3 } else { 1 };
    let mut replicas: Vec<SharedKeys> = Vec::new();
    for _ in 0..replica_count {
        replicas.push(Arc::new(env.replica().await));
    }
    let owner = Uuid::new_v4();
    let created = create(replicas[0].as_ref(), new_key(owner, "hot")).await;
    let secret = Arc::new(created.secret.expose().to_owned());
    for replica in &replicas {
        // Every replica now holds the row in its cache.
        replica.validate_api_key(&secret).await.expect("valid");
    }

    let revoked = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let before = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (replica, secret, revoked, stop, before) =
            (replicas[i % replica_count].clone(), secret.clone(), revoked.clone(), stop.clone(), before.clone());
        tasks.push(tokio::spawn(async move {
            let mut after = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let started_after_revoke = revoked.load(Ordering::SeqCst);
                let result = replica.validate_api_key(&secret).await;
                if started_after_revoke {
                    assert_code(result, ErrorCode::KeyRevoked);
                    after += 1;
                } else if result.is_ok() {
                    before.fetch_add(1, Ordering::SeqCst);
                }
                // A cached answer completes without awaiting anything; let the other tasks run.
                tokio::task::yield_now().await;
            }
            after
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    replicas[replica_count - 1].revoke_api_key(created.key.id, Some(owner)).await.expect("revoke");
    revoked.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let after = task.await.expect("no validation succeeded after revoke");
        assert!(after > 0, "every task validated after the revocation");
    }
    assert!(before.load(Ordering::SeqCst) > 0, "validations succeeded before the revocation");
}
on_every_backend!(no_validation_succeeds_after_revoke_returns);

/// The revocation message drops other replicas' cached rows: with the Redis marker removed,
/// only the message can make replica B look at the database again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_message_drops_other_replicas_caches() {
    let Some(env) = Env::postgres_redis("revocation_message_drops_other_replicas_caches").await else {
        return;
    };
    let (a, b) = (env.replica().await, env.replica().await);
    let owner = Uuid::new_v4();
    let created = create(&a, new_key(owner, "k")).await;
    let secret = created.secret.expose();
    b.validate_api_key(secret).await.expect("valid on b, now cached there");
    a.revoke_api_key(created.key.id, None).await.expect("revoke on a");

    let redis = env.redis().await.expect("redis");
    let marker = format!("warden:revoked:key:{{{}}}", created.key.id);
    let ttl: i64 = redis.ttl(&marker).await.expect("ttl");
    assert!((1..=600).contains(&ttl), "the revocation marker expires (ttl {ttl})");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _: i64 = redis.del(&marker).await.expect("del");
    assert_code(b.validate_api_key(secret).await, ErrorCode::KeyRevoked);
}

/// Redis unreachable: authentication fails closed with 503, never unlimited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed() {
    let Some(env) = Env::postgres_redis("redis_down_fails_closed").await else {
        return;
    };
    let redis = env.redis().await.expect("redis");
    let keys =
        warden_key::KeyService::new(env.db.clone(), Some(redis.clone()), env.clock(), None).await.expect("service");
    let created = create(&keys, new_key(Uuid::new_v4(), "k")).await;
    keys.validate_api_key(created.secret.expose()).await.expect("valid");
    assert!(keys.ready().await);
    redis.quit().await.expect("quit");
    let e = assert_code(keys.validate_api_key(created.secret.expose()).await, ErrorCode::Unavailable);
    assert!(e.retry_after.is_some());
    assert!(!keys.ready().await);
}

/// A replica that has not heard the revocation message yet still refuses the key: the
/// validation script checks the revocation marker (set here by hand, as another replica would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_marker_is_checked_on_every_validation() {
    let Some(env) = Env::postgres_redis("revocation_marker_is_checked_on_every_validation").await else {
        return;
    };
    let keys = env.replica().await;
    let created = create(&keys, new_key(Uuid::new_v4(), "k")).await;
    let secret = created.secret.expose();
    keys.validate_api_key(secret).await.expect("valid, and cached");
    let redis = env.redis().await.expect("redis");
    let marker = format!("warden:revoked:key:{{{}}}", created.key.id);
    let _: () = redis.set(&marker, "1", Some(Expiration::EX(60)), None, false).await.expect("set");
    assert_code(keys.validate_api_key(secret).await, ErrorCode::KeyRevoked);
}
