//! Key create, revoke and denials are structured audit events naming the key id, never the key.
use crate::support::{Env, assert_code, create, new_key};
use std::io::Write;
use std::sync::{Arc, Mutex};
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_key::KeyApi;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn audit_events_name_the_key_id_and_never_the_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = Env::sqlite().await;
    let keys = env.replica().await;
    let created = create(&keys, new_key(Uuid::new_v4(), "logged")).await;
    let secret = created.secret.expose();
    keys.validate_api_key(secret).await.expect("valid");
    keys.validate_api_key(&secret[..20]).await.expect_err("malformed");
    keys.revoke_api_key(created.key.id, None).await.expect("revoke");
    assert_code(keys.validate_api_key(secret).await, ErrorCode::KeyRevoked);

    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let find = |name: &str| {
        events
            .iter()
            .find(|e| e["target"] == "audit" && e["fields"]["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event in {text}"))
    };
    let id = created.key.id.to_string();
    assert_eq!(find("api_key.created")["fields"]["key_id"], id.as_str());
    assert_eq!(find("api_key.revoked")["fields"]["key_id"], id.as_str());
    assert_eq!(find("api_key.denied")["fields"]["key_id"], id.as_str());
    // Everything after `wdn_<id>_` is secret: no part of it may reach a log.
    assert!(!text.contains(&secret[27..]), "secret in logs: {text}");
    assert!(!text.contains(&secret[27..47]));
}
