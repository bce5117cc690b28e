//! Redis faults, on a private redis-server this test owns: a flush fails closed (users log
//! in again, nothing revoked comes back), Redis down answers 503 fast and /readyz says so,
//! and Warden recovers without a restart when Redis returns.
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warden_tests::{ADMIN_PASSWORD, TestWarden, base_config};

struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    fn start(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (the CI script installs it)");
        let server = RedisServer { port, child };
        for _ in 0..100 {
            if server.cli(&["ping"]).is_some_and(|o| o.contains("PONG")) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {port} did not start");
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_flush_down_and_back() {
    let Some(db) = warden_common::testing::postgres_url("redis_faults").await else { return };
    if warden_common::testing::redis_url("redis_faults").is_none() {
        return;
    }
    let port = free_port();
    let redis = RedisServer::start(port);
    let w = TestWarden::start_config(base_config(db, Some(format!("redis://127.0.0.1:{port}")))).await;

    let tokens = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(w.get_with("/api/v1/auth/me", access).await.status(), 200);
    // Every key Warden wrote has a TTL.
    let keys = redis.cli(&["--scan"]).unwrap();
    assert!(!keys.trim().is_empty());
    for key in keys.lines() {
        let ttl: i64 = redis.cli(&["ttl", key]).unwrap().trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no TTL");
    }

    // Flushed: sessions are gone, so their tokens fail closed; logging in again works.
    redis.cli(&["flushall"]).unwrap();
    assert_eq!(code(w.get_with("/api/v1/auth/me", access).await).await, (401, "token_revoked".into()));
    let refresh = w.post("/api/v1/auth/refresh", serde_json::json!({ "refresh_token": tokens["refresh_token"] })).await;
    assert_eq!(refresh.status(), 401);
    let again = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let access = again["access_token"].as_str().unwrap().to_owned();

    // Down: a fast 503 with Retry-After, never an allow, and readiness says so.
    let port = redis.port;
    drop(redis);
    let started = Instant::now();
    let r = w.get_with("/api/v1/auth/me", &access).await;
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast, took {:?}", started.elapsed());
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(code(r).await.1, "unavailable");
    assert_eq!(w.login(&w.admin, ADMIN_PASSWORD).await.status(), 503);
    assert_eq!(w.http.get(w.url("/readyz")).send().await.unwrap().status(), 503);

    // Back: recovers without a restart.
    let _redis = RedisServer::start(port);
    let mut recovered = false;
    for _ in 0..50 {
        if w.login(&w.admin, ADMIN_PASSWORD).await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "login works again once redis is back");
    assert_eq!(w.http.get(w.url("/readyz")).send().await.unwrap().status(), 200);
    w.shutdown().await;
}
