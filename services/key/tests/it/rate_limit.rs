//! Per-key rate limits: shared by replicas (Redis) or in process (embedded), on the injected clock.
use crate::on_every_backend;
use crate::support::{Env, assert_code, create, new_key};
use fred::prelude::*;
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_key::{KeyApi, KeyService, NewApiKey};

async fn replicas(env: &Env) -> Vec<KeyService> {
    let mut replicas = vec![env.replica().await];
    if env.redis_url.is_some() {
        replicas.push(env.replica().await);
    }
    replicas
}

async fn limit_boundary_and_refill(env: &Env) {
    let replicas = replicas(env).await;
    let created =
        create(&replicas[0], NewApiKey { rate_limit_per_minute: Some(3), ..new_key(Uuid::new_v4(), "k") }).await;
    assert_eq!(created.key.rate_limit_per_minute, 3);
    let secret = created.secret.expose();
    let on = |i: usize| &replicas[i % replicas.len()];

    for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
        let ok = on(i).validate_api_key(secret).await.expect("within the limit");
        assert_eq!(ok.rate_limit_remaining, remaining);
    }
    let limited = assert_code(on(3).validate_api_key(secret).await, ErrorCode::RateLimited);
    assert_eq!(limited.retry_after, Some(20), "one request per 20 s refills");
    assert_eq!(limited.code.http_status(), 429);
    assert_code(on(0).validate_api_key(secret).await, ErrorCode::RateLimited);

    env.clock.advance(20);
    assert_eq!(on(1).validate_api_key(secret).await.expect("one refilled").rate_limit_remaining, 0);
    assert_code(on(0).validate_api_key(secret).await, ErrorCode::RateLimited);

    env.clock.advance(60);
    for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
        assert_eq!(on(i).validate_api_key(secret).await.expect("refilled").rate_limit_remaining, remaining);
    }
    assert_code(on(1).validate_api_key(secret).await, ErrorCode::RateLimited);

    if let Some(redis) = env.redis().await {
        let ttl: i64 = redis.pttl(format!("warden:rl:key:{{{}}}", created.key.id)).await.expect("pttl");
        assert!((1..=60_000).contains(&ttl), "the rate-limit key expires (pttl {ttl})");
    }
}
on_every_backend!(limit_boundary_and_refill);

async fn keys_are_limited_independently_and_zero_is_unlimited(env: &Env) {
    let keys = env.replica().await;
    let owner = Uuid::new_v4();
    let one = create(&keys, NewApiKey { rate_limit_per_minute: Some(1), ..new_key(owner, "one") }).await;
    let other = create(&keys, NewApiKey { rate_limit_per_minute: Some(1), ..new_key(owner, "other") }).await;
    let unlimited = create(&keys, NewApiKey { rate_limit_per_minute: Some(0), ..new_key(owner, "free") }).await;
    keys.validate_api_key(one.secret.expose()).await.expect("first");
    assert_code(keys.validate_api_key(one.secret.expose()).await, ErrorCode::RateLimited);
    keys.validate_api_key(other.secret.expose()).await.expect("another key has its own budget");
    for _ in 0..200 {
        let ok = keys.validate_api_key(unlimited.secret.expose()).await.expect("unlimited");
        assert_eq!(ok.rate_limit_remaining, u32::MAX);
    }
    if let Some(redis) = env.redis().await {
        let n: i64 = redis.exists(format!("warden:rl:key:{{{}}}", unlimited.key.id)).await.expect("exists");
        assert_eq!(n, 0, "unlimited keys keep no counter");
    }
}
on_every_backend!(keys_are_limited_independently_and_zero_is_unlimited);
