//! SIGTERM on a running `warden serve`: requests already in flight are answered, then the
//! process exits cleanly (what Kubernetes relies on when it stops a pod).
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "drain-test-admin-password-1";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(http: u16, grpc: u16) -> Child {
    let db = std::env::temp_dir().join(format!("warden-drain-{}.db", uuid::Uuid::new_v4().simple()));
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WARDEN_DATABASE_URL", format!("sqlite://{}?mode=rwc", db.display()))
        .env("WARDEN_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("WARDEN_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("WARDEN_BOOTSTRAP_ADMIN_USERNAME", "admin")
        .env("WARDEN_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
        .env("WARDEN_CLIENT_RATE_LIMIT", "0")
        // One hashing thread: the logins below queue, so they are still in flight at SIGTERM.
        .env("WARDEN_HASH_CONCURRENCY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start warden")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_requests_in_flight_then_exits() {
    let (http_port, grpc_port) = (free_port(), free_port());
    let mut child = start(http_port, grpc_port);
    let base = format!("http://127.0.0.1:{http_port}");
    let client = reqwest::Client::new();
    let ready = Instant::now();
    while client.get(format!("{base}/readyz")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(ready.elapsed() < Duration::from_secs(60), "warden did not become ready");
        assert!(child.try_wait().unwrap().is_none(), "warden exited before it was ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    const LOGINS: usize = 10;
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..LOGINS {
        let (client, url) = (client.clone(), format!("{base}/api/v1/auth/login"));
        logins.spawn(async move {
            let body = serde_json::json!({ "username": "admin", "password": PASSWORD });
            let status = client.post(url).json(&body).send().await.map(|r| r.status().as_u16());
            (status, Instant::now())
        });
    }
    // Let every request reach the server and queue for the single hashing thread.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let signalled = Instant::now();
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
    assert!(term.success());

    let (mut answered, mut after_signal) = (0, 0);
    while let Some(result) = logins.join_next().await {
        let (status, at) = result.unwrap();
        assert_eq!(status.expect("a request in flight at SIGTERM still gets its answer"), 200);
        answered += 1;
        after_signal += usize::from(at > signalled);
    }
    assert_eq!(answered, LOGINS);
    // Otherwise nothing was in flight and the test proved nothing.
    assert!(after_signal > 0, "every login finished before SIGTERM");

    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(stopping.elapsed() < Duration::from_secs(20), "warden did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // Nothing listens any more.
    assert!(client.get(format!("{base}/healthz")).send().await.is_err());
}
