//! Key create, revoke and denials are structured audit events naming the key id, never the key.
//!
//! One global subscriber, installed before any test touches the service, captures every event
//! of this test binary (a per-test scoped subscriber races with other threads registering the
//! same callsites). Tests tell their events apart by key id.
use crate::support::{Env, assert_code, create, new_key};
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_key::KeyApi;

static CAPTURED: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();

struct Writer(&'static Mutex<Vec<u8>>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber once; every test environment calls it first.
pub(crate) fn capture() -> &'static Mutex<Vec<u8>> {
    CAPTURED.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::default());
        let layer = tracing_subscriber::fmt::layer().json().with_writer(move || Writer(buffer));
        let filter = Targets::new().with_target("audit", Level::DEBUG).with_default(Level::INFO);
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter));
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        buffer
    })
}

#[tokio::test]
async fn audit_events_name_the_key_id_and_never_the_secret() {
    let env = Env::sqlite().await;
    let keys = env.replica().await;
    let created = create(&keys, new_key(Uuid::new_v4(), "logged")).await;
    let secret = created.secret.expose();
    keys.validate_api_key(secret).await.expect("valid");
    keys.validate_api_key(&secret[..20]).await.expect_err("malformed");
    keys.revoke_api_key(created.key.id, None).await.expect("revoke");
    assert_code(keys.validate_api_key(secret).await, ErrorCode::KeyRevoked);

    let text = String::from_utf8_lossy(&capture().lock().expect("lock")).into_owned();
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let id = created.key.id.to_string();
    let find = |name: &str| {
        events
            .iter()
            .find(|e| e["target"] == "audit" && e["fields"]["event"] == name && e["fields"]["key_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no {name} event for the key in {text}"))
    };
    assert_eq!(find("api_key.created")["level"], "INFO");
    find("api_key.revoked");
    assert_eq!(find("api_key.denied")["fields"]["reason"], "api key revoked");
    // Everything after `wdn_<id>_` is secret: no part of it may reach a log.
    assert!(!text.contains(&secret[27..]), "secret in logs");
    assert!(!text.contains(&secret[27..47]), "secret in logs");
}
