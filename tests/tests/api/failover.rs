//! Scale-out: two replicas of every service (token, rbac, key, auth) and two gateways, each
//! its own server on PostgreSQL + Redis, under a mixed load (login, refresh, requests with a
//! bearer token and with an API key) through both gateways. Mid-run one replica of every
//! service and one gateway are drained (what SIGTERM does) and not one request fails: the
//! internal clients send calls that cannot reach a replica to the other one. The load stops
//! using the drained gateway first, as a load balancer does when its endpoint is removed.
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use warden::{ServiceRole, Warden};
use warden_common::Config;
use warden_common::clock::{OffsetClock, SharedClock};
use warden_tests::{ADMIN_PASSWORD, Backend, backend_urls, base_config};

/// Starts two replicas of `role`; returns them and their comma-separated gRPC endpoints.
async fn pair(config: &Config, role: ServiceRole, clock: &SharedClock) -> (Warden, Warden, String) {
    let a = Warden::start(config.clone(), role, clock.clone()).await.expect("start replica");
    let b = Warden::start(config.clone(), role, clock.clone()).await.expect("start replica");
    let urls = [&a, &b].map(|w| w.grpc_addr.map(|addr| format!("http://{addr}")).unwrap_or_default()).join(",");
    (a, b, urls)
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    ok_after_drain: AtomicUsize,
    failed: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_one_replica_of_every_service_fails_no_request() {
    let Some((db, redis)) = backend_urls(Backend::PostgresRedis, "failover").await else { return };
    let config = base_config(db, redis);
    let clock: SharedClock = Arc::new(OffsetClock::default());
    let (mut drained, mut kept) = (Vec::new(), Vec::new());
    let mut endpoints = HashMap::new();
    for role in [ServiceRole::Token, ServiceRole::Rbac, ServiceRole::Key] {
        let (a, b, urls) = pair(&config, role, &clock).await;
        endpoints.insert(role, urls);
        drained.push(a);
        kept.push(b);
    }
    let peers = Config {
        token_endpoints: endpoints.remove(&ServiceRole::Token),
        rbac_endpoints: endpoints.remove(&ServiceRole::Rbac),
        key_endpoints: endpoints.remove(&ServiceRole::Key),
        ..config.clone()
    };
    let (a, b, auth) = pair(&peers, ServiceRole::Auth, &clock).await;
    drained.push(a);
    kept.push(b);
    let (gateway_a, gateway_b, _) =
        pair(&Config { auth_endpoints: Some(auth), ..peers }, ServiceRole::Gateway, &clock).await;
    let gateways = [&gateway_a, &gateway_b].map(|g| format!("http://{}", g.http_addr.expect("gateway")));
    drained.push(gateway_a);
    kept.push(gateway_b);

    let http = reqwest::Client::new();
    let login = json!({ "username": config.bootstrap_admin_username, "password": ADMIN_PASSWORD });
    // The bootstrap admin appears once an auth replica reaches RBAC.
    let give_up = Instant::now() + Duration::from_secs(15);
    let admin: Value = loop {
        let r = http.post(format!("{}/api/v1/auth/login", gateways[1])).json(&login).send().await.unwrap();
        if r.status() == 200 {
            break r.json().await.unwrap();
        }
        assert!(Instant::now() < give_up, "the split deployment comes up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let access = admin["access_token"].as_str().unwrap().to_owned();
    let new_key = json!({ "name": "failover", "scopes": ["users:read"] });
    let url = format!("{}/api/v1/auth/api-key", gateways[1]);
    let created = http.post(url).bearer_auth(&access).json(&new_key).send().await.unwrap();
    let api_key = created.json::<Value>().await.unwrap()["key"].as_str().expect("an API key").to_owned();

    let tally = Arc::new(Tally::default());
    let both_gateways = Arc::new(AtomicBool::new(true));
    let drained_flag = Arc::new(AtomicBool::new(false));
    let stop = Instant::now() + Duration::from_secs(6);
    let mut workers = Vec::new();
    for worker in 0..4usize {
        let (http, gateways, login, access, api_key) =
            (http.clone(), gateways.clone(), login.clone(), access.clone(), api_key.clone());
        let (tally, both_gateways, drained_flag) = (tally.clone(), both_gateways.clone(), drained_flag.clone());
        workers.push(tokio::spawn(async move {
            let mut refresh = None::<String>;
            let mut i = worker;
            while Instant::now() < stop {
                i += 1;
                let base = if both_gateways.load(Ordering::SeqCst) { &gateways[i % 2] } else { &gateways[1] };
                let request = match (i % 8, &refresh) {
                    (0, _) | (_, None) => http.post(format!("{base}/api/v1/auth/login")).json(&login),
                    (1 | 5, Some(token)) => {
                        http.post(format!("{base}/api/v1/auth/refresh")).json(&json!({ "refresh_token": token }))
                    }
                    (2 | 6, _) => http.get(format!("{base}/api/v1/auth/me")).header("x-api-key", &api_key),
                    _ => http.get(format!("{base}/api/v1/auth/me")).bearer_auth(&access),
                };
                let failure = match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        let body: Value = r.json().await.unwrap_or_default();
                        if let Some(next) = body["refresh_token"].as_str() {
                            refresh = Some(next.to_owned());
                        }
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        if drained_flag.load(Ordering::SeqCst) {
                            tally.ok_after_drain.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                    Err(e) => e.to_string(),
                };
                eprintln!("request {i} of worker {worker} failed: {failure}");
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    // The load balancer stops sending to the gateway about to go (readiness, preStop).
    both_gateways.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = tally.ok.load(Ordering::Relaxed);
    let drains: Vec<_> = drained.into_iter().map(|w| tokio::spawn(w.shutdown())).collect();
    drained_flag.store(true, Ordering::SeqCst);
    for drain in drains {
        drain.await.unwrap();
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let (ok, after, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.ok_after_drain.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    println!("failover: {ok} requests answered ({before} before the drain, {after} after it), {failed} failed");
    assert_eq!(failed, 0, "no request fails while one replica of every service goes away");
    assert!(before > 0 && after > 0, "load ran on both sides of the drain");
    for w in kept {
        w.shutdown().await;
    }
}
