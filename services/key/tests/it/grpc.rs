//! The gRPC edge: `KeyGrpc` over a real socket, reached through `RemoteKeys`, keeps every
//! error code, `retry_after` and field.
use crate::support::{Env, assert_code, create, new_key};
use std::sync::Arc;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_key::grpc::{RemoteKeys, server};
use warden_key::{KeyApi, NewApiKey};

async fn serve(api: warden_key::SharedKeys) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(Server::builder().add_service(server(api)).serve_with_incoming(TcpListenerStream::new(listener)));
    Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_keys_behave_like_local_ones() {
    let env = Env::sqlite().await;
    let remote = RemoteKeys::new(serve(Arc::new(env.replica().await)).await);
    assert!(remote.ready().await);

    let owner = Uuid::new_v4();
    let new = NewApiKey {
        scopes: vec!["users:read".into(), "roles:*".into()],
        expires_in: Some(3600),
        rate_limit_per_minute: Some(2),
        ..new_key(owner, "remote")
    };
    let created = create(&remote, new).await;
    assert_eq!(created.key.scopes, ["users:read", "roles:*"]);
    assert_eq!(created.key.rate_limit_per_minute, 2);
    assert_eq!(created.key.expires_at, Some(created.key.created_at + time::Duration::hours(1)));
    let secret = created.secret.expose();

    let ok = remote.validate_api_key(secret).await.expect("valid");
    assert_eq!(ok.rate_limit_remaining, 1);
    assert_eq!(ok.key.id, created.key.id);
    remote.validate_api_key(secret).await.expect("valid");
    let limited = assert_code(remote.validate_api_key(secret).await, ErrorCode::RateLimited);
    assert_eq!(limited.retry_after, Some(30));
    assert_code(remote.validate_api_key("wdn_nonsense").await, ErrorCode::KeyInvalid);
    assert_code(remote.generate_api_key(new_key(owner, "")).await, ErrorCode::ValidationError);

    let listed = remote.list_api_keys(owner).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.key.id);
    assert_eq!(listed[0].created_at, created.key.created_at);
    assert!(listed[0].last_used_at.is_some());

    assert_code(remote.revoke_api_key(created.key.id, Some(Uuid::new_v4())).await, ErrorCode::NotFound);
    remote.revoke_api_key(created.key.id, Some(owner)).await.expect("revoke");
    assert_code(remote.validate_api_key(secret).await, ErrorCode::KeyRevoked);
    assert!(remote.list_api_keys(owner).await.expect("list")[0].revoked_at.is_some());
}

#[tokio::test]
async fn an_unreachable_key_service_is_not_ready_and_fails_closed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let channel = Channel::from_shared(format!("http://{addr}")).expect("uri").connect_lazy();
    let remote = RemoteKeys::new(channel);
    assert!(!remote.ready().await);
    assert_code(remote.validate_api_key("wdn_x").await, ErrorCode::Unavailable);
}

#[tokio::test]
async fn bad_ids_on_the_wire_are_validation_errors() {
    use warden_proto::key::v1::{RevokeApiKeyRequest, key_service_client::KeyServiceClient};
    let env = Env::sqlite().await;
    let mut client = KeyServiceClient::new(serve(Arc::new(env.replica().await)).await);
    let status = client
        .revoke_api_key(RevokeApiKeyRequest { id: "not-a-uuid".into(), owner_id: String::new() })
        .await
        .expect_err("bad id");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = client
        .revoke_api_key(RevokeApiKeyRequest { id: Uuid::new_v4().to_string(), owner_id: String::new() })
        .await
        .expect_err("unknown id");
    assert_eq!(status.code(), tonic::Code::NotFound);
}
