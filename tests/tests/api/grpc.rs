//! The same flow over gRPC, as internal services call it: errors carry ErrorInfo with the
//! SPEC code, and health reports SERVING.
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use warden_common::{Error, ErrorCode};
use warden_proto::auth::v1 as pb;
use warden_tests::{ADMIN_PASSWORD, TestWarden, on_every_backend, unique};

on_every_backend!(grpc_login_verify_and_errors);

async fn grpc_login_verify_and_errors(w: TestWarden) {
    let mut auth = w.auth_client().await;
    let login = auth
        .login(pb::LoginRequest { username: w.admin.clone(), password: ADMIN_PASSWORD.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(login.token_type, "Bearer");
    assert_eq!(login.expires_in, 900);

    let user = auth
        .get_verified_user(pb::GetVerifiedUserRequest { access_token: login.access_token.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.username, w.admin);
    assert_eq!(user.roles, vec!["admin".to_owned()]);

    let allowed = auth
        .authorize(pb::AuthorizeRequest {
            credential: Some(pb::authorize_request::Credential::AccessToken(login.access_token.clone())),
            permission: "users:write".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(allowed.allowed);
    assert_eq!(allowed.subject, user.user_id);

    let status = auth
        .login(pb::LoginRequest { username: unique("nobody"), password: "wrong-password".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(Error::from(status).code, ErrorCode::InvalidCredentials);

    let status = auth.get_verified_user(pb::GetVerifiedUserRequest { access_token: "junk".into() }).await.unwrap_err();
    assert_eq!(Error::from(status).code, ErrorCode::TokenInvalid);

    let mut health = HealthClient::new(w.grpc_channel().await);
    for service in ["", "warden.auth.v1.AuthService", "warden.token.v1.TokenService", "warden.rbac.v1.RbacService"] {
        let mut serving = false;
        for _ in 0..50 {
            let answer = health.check(HealthCheckRequest { service: service.into() }).await;
            if answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32) {
                serving = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(serving, "health of {service:?}");
    }
    w.shutdown().await;
}
