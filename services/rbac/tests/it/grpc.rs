//! The gRPC edge beyond what the shared scenarios cover: request validation, the combined
//! `allowed` flag, readiness of the remote client and error codes on the wire.
use crate::harness::{Backend, serve};
use std::sync::Arc;
use tonic::Code;
use tonic::transport::Endpoint;
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_proto::rbac::v1 as pb;
use warden_proto::rbac::v1::rbac_service_client::RbacServiceClient;
use warden_rbac::grpc::RemoteRbac;
use warden_rbac::{RbacApi, RbacService};

async fn client() -> RbacServiceClient<tonic::transport::Channel> {
    let url = Backend::Sqlite.url("grpc").await.expect("sqlite is always available");
    let api = Arc::new(RbacService::new(crate::harness::connect(&url).await));
    RbacServiceClient::new(serve(api).await)
}

fn check_request(user_id: &str, permissions: &[&str]) -> pb::CheckPermissionsRequest {
    pb::CheckPermissionsRequest {
        user_id: user_id.into(),
        permissions: permissions.iter().map(|s| s.to_string()).collect(),
        scopes: vec![],
        has_scopes: false,
    }
}

#[tokio::test]
async fn allowed_is_true_only_when_every_permission_is() {
    let mut client = client().await;
    let user = Uuid::new_v4().to_string();
    client.assign_role(pb::AssignRoleRequest { user_id: user.clone(), role: "admin".into() }).await.expect("assign");
    let all = client.check_permissions(check_request(&user, &["a:b", "c:d"])).await.expect("check").into_inner();
    assert!(all.allowed);
    assert!(all.decisions.iter().all(|d| d.allowed && d.code.is_empty()));
    let one_bad = client.check_permissions(check_request(&user, &["a:b", "bad"])).await.expect("check").into_inner();
    assert!(!one_bad.allowed);
    assert_eq!(one_bad.decisions[1].code, "insufficient_permissions");
    let nothing = client.check_permissions(check_request(&user, &[])).await.expect("check").into_inner();
    assert!(!nothing.allowed, "an empty request grants nothing");
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument() {
    let mut client = client().await;
    let bad_user = client.check_permissions(check_request("not-a-uuid", &["a:b"])).await.expect_err("bad id");
    assert_eq!(bad_user.code(), Code::InvalidArgument);
    let mut unflagged = check_request(&Uuid::new_v4().to_string(), &["a:b"]);
    unflagged.scopes = vec!["a:b".into()];
    let status = client.check_permissions(unflagged).await.expect_err("scopes without has_scopes");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client.get_role(pb::GetRoleRequest { name: "ghost".into() }).await.expect_err("unknown");
    assert_eq!((status.code(), warden_common::Error::from(status).code), (Code::NotFound, ErrorCode::RoleNotFound));
}

#[tokio::test]
async fn remote_readiness_follows_the_peer() {
    let url = Backend::Sqlite.url("grpc").await.expect("sqlite");
    let live = RemoteRbac::new(serve(Arc::new(RbacService::new(crate::harness::connect(&url).await))).await);
    assert!(live.ready().await);

    // A port that was bound and released: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let dead = RemoteRbac::new(Endpoint::from_shared(format!("http://127.0.0.1:{port}")).expect("url").connect_lazy());
    assert!(!dead.ready().await);
    let failed = dead.get_user_roles(Uuid::new_v4()).await.expect_err("peer down");
    assert_eq!(failed.code, ErrorCode::Unavailable);
}
