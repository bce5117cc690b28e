//! warden-client against an in-process Warden (SQLite, and PostgreSQL + Redis when
//! configured): the typed calls, key rotation seen through the JWKS cache, and the tonic layer
//! guarding a real gRPC service.
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Server};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tower::Layer;
use warden_client::{ClientOptions, Credential, CredentialKind, Error, ErrorCode, GrpcAuthLayer, WardenClient};
use warden_tests::{TestWarden, on_every_backend, unique};
use warden_token::TokenApi;

on_every_backend!(verifies_bearers_and_keys, follows_signing_key_rotation, guards_a_tonic_service);

const PASSWORD: &str = "client-test-password-1";

async fn client(w: &TestWarden) -> WardenClient {
    let options = ClientOptions::new(w.config.issuer.clone(), w.config.audience.clone());
    WardenClient::connect(w.grpc_url.clone(), &w.base_url, options).await.expect("connect to warden")
}

/// A user with a role holding `permissions` (none: no role); returns (user id, login answer).
async fn user_with(w: &TestWarden, admin: &str, permissions: &[&str]) -> (String, Value) {
    let mut roles = Vec::new();
    if !permissions.is_empty() {
        let role = unique("items");
        let r = w
            .http
            .post(w.url("/api/v1/admin/roles"))
            .bearer_auth(admin)
            .json(&json!({ "name": role, "permissions": permissions }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "create role");
        roles.push(role);
    }
    let name = unique("svc-user");
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    let user = w.create_user(admin, &name, PASSWORD, &roles).await;
    (user["id"].as_str().unwrap().to_owned(), w.login_ok(&name, PASSWORD).await)
}

async fn api_key(w: &TestWarden, bearer: &str, scopes: &[&str]) -> String {
    let r = w
        .http
        .post(w.url("/api/v1/auth/api-key"))
        .bearer_auth(bearer)
        .json(&json!({ "name": "client-test", "scopes": scopes }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_owned()
}

async fn verifies_bearers_and_keys(w: TestWarden) {
    let warden = client(&w).await;
    let admin = w.admin_token().await;
    let (reader_id, reader) = user_with(&w, &admin, &["items:read"]).await;
    let token = reader["access_token"].as_str().unwrap();

    let p = warden.verify_bearer(token, "items:read").await.unwrap();
    assert_eq!((p.subject.as_str(), p.credential), (reader_id.as_str(), CredentialKind::Bearer));
    assert!(p.decision.allowed && p.session_id.is_some(), "{p:?}");
    assert!(p.decision.reason.contains("items:read"), "{}", p.decision.reason);

    // A refusal is a decision from verify, an error from authorize.
    let p = warden.verify_bearer(token, "items:write").await.unwrap();
    assert_eq!((p.decision.allowed, p.decision.code), (false, Some(ErrorCode::InsufficientPermissions)));
    let e = warden.authorize(&Credential::Bearer(token.into()), "items:write").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InsufficientPermissions);

    // Refused locally: garbage, and a refresh token presented as an access token.
    for bad in ["junk", reader["refresh_token"].as_str().unwrap()] {
        assert_eq!(warden.verify_bearer(bad, "items:read").await.unwrap_err().code, ErrorCode::TokenInvalid);
    }

    // API keys: scopes narrow the owner's permissions.
    let (writer_id, writer) = user_with(&w, &admin, &["items:read", "items:write"]).await;
    let key = api_key(&w, writer["access_token"].as_str().unwrap(), &["items:read"]).await;
    let p = warden.verify_api_key(&key, "items:read").await.unwrap();
    assert_eq!(
        (p.subject.as_str(), p.credential, p.decision.allowed),
        (writer_id.as_str(), CredentialKind::ApiKey, true)
    );
    let e = warden.authorize(&Credential::ApiKey(key.clone()), "items:write").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::AccessDenied);
    let e = warden.verify_api_key("wdn_not_a_real_key", "items:read").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::KeyInvalid);

    // Logout ends the session: the token still passes the local check, Warden refuses it.
    let r = w.post("/api/v1/auth/logout", json!({ "refresh_token": reader["refresh_token"] })).await;
    assert_eq!(r.status(), 204);
    assert!(warden.check_token_locally(token).await.is_ok());
    assert_eq!(warden.verify_bearer(token, "items:read").await.unwrap_err().code, ErrorCode::TokenRevoked);
    w.shutdown().await;
}

fn kid(token: &str) -> String {
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
}

async fn follows_signing_key_rotation(w: TestWarden) {
    let warden = client(&w).await;
    let old = w.admin_token().await;
    assert!(warden.verify_bearer(&old, "items:read").await.unwrap().decision.allowed);
    let new_kid = w.local().tokens.expect("token service").rotate_signing_key().await.unwrap();
    let fresh = w.admin_token().await;
    assert_eq!(kid(&fresh), new_kid);
    // The cached JWKS does not know the new kid yet: the client fetches it on first sight.
    assert_eq!(warden.check_token_locally(&fresh).await.unwrap().kid, new_kid);
    assert!(warden.verify_bearer(&fresh, "items:read").await.unwrap().decision.allowed);
    assert!(warden.verify_bearer(&old, "items:read").await.unwrap().decision.allowed);
    w.shutdown().await;
}

/// Serves gRPC health behind the layer, on the one service or on the whole server; returns a
/// client channel to it.
async fn guarded_health(layer: GrpcAuthLayer, whole_server: bool) -> Channel {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        // Keep the reporter alive with the server.
        let _reporter = reporter;
        let served = if whole_server {
            Server::builder().layer(layer).add_service(health).serve_with_incoming(incoming).await
        } else {
            Server::builder().add_service(layer.layer(health)).serve_with_incoming(incoming).await
        };
        served.unwrap();
    });
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

/// The health check through the layer; a refusal as Warden's code.
async fn check(channel: &Channel, metadata: Option<(&'static str, String)>) -> Result<i32, ErrorCode> {
    let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
    if let Some((name, value)) = metadata {
        request.metadata_mut().insert(name, value.parse().unwrap());
    }
    let answer = HealthClient::new(channel.clone()).check(request).await.map_err(|s| Error::from(s).code)?;
    Ok(answer.into_inner().status)
}

async fn guards_a_tonic_service(w: TestWarden) {
    let warden = client(&w).await;
    let admin = w.admin_token().await;
    let (_, nobody) = user_with(&w, &admin, &[]).await;
    let nobody = nobody["access_token"].as_str().unwrap().to_owned();
    let (_, reader) = user_with(&w, &admin, &["items:read"]).await;
    let reader = reader["access_token"].as_str().unwrap().to_owned();
    let key = api_key(&w, &reader, &["items:read"]).await;

    let layer = GrpcAuthLayer::new(&warden, "items:read").method("/grpc.health.v1.Health/Watch", "items:write");
    let channel = guarded_health(layer.clone(), false).await;
    let serving = Ok(ServingStatus::Serving as i32);

    assert_eq!(check(&channel, None).await.unwrap_err(), ErrorCode::Unauthenticated);
    let code = check(&channel, Some(("authorization", format!("Bearer {nobody}")))).await.unwrap_err();
    assert_eq!(code, ErrorCode::InsufficientPermissions);
    assert_eq!(
        check(&channel, Some(("authorization", "Bearer junk".into()))).await.unwrap_err(),
        ErrorCode::TokenInvalid
    );
    assert_eq!(check(&channel, Some(("authorization", format!("Bearer {reader}")))).await, serving);
    assert_eq!(check(&channel, Some(("x-api-key", key.clone()))).await, serving);
    assert_eq!(check(&channel, Some(("authorization", format!("ApiKey {key}")))).await, serving);

    // Watch needs items:write, which the reader lacks.
    let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
    request.metadata_mut().insert("authorization", format!("Bearer {reader}").parse().unwrap());
    let status = HealthClient::new(channel.clone()).watch(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(Error::from(status).code, ErrorCode::InsufficientPermissions);

    // The same layer on a whole server, with Check declared public.
    let everything = guarded_health(layer.public("/grpc.health.v1.Health/Check"), true).await;
    assert_eq!(check(&everything, None).await, serving);
    let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
    request.metadata_mut().insert("x-api-key", key.parse().unwrap());
    let status = HealthClient::new(everything).watch(request).await.unwrap_err();
    assert_eq!(Error::from(status).code, ErrorCode::InsufficientPermissions, "the key's owner lacks items:write");

    // Warden gone: fail closed with UNAVAILABLE, for tokens and keys alike.
    w.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let code = check(&channel, Some(("authorization", format!("Bearer {reader}")))).await.unwrap_err();
    assert_eq!(code, ErrorCode::Unavailable);
    assert_eq!(check(&channel, Some(("x-api-key", key))).await.unwrap_err(), ErrorCode::Unavailable);
}
