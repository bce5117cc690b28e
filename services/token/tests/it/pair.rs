//! `GenerateTokenPair`: one call for both tokens of a login or a refresh, the same tokens as
//! the two single calls (with seeds, byte for byte), and refused when its two halves name
//! different sessions.
use crate::support::TokenServer;
use uuid::Uuid;
use warden_proto::token::v1 as pb;
use warden_token::{TokenApi, TokenKind, TokenSeed};

fn seed(jti: &str) -> Option<TokenSeed> {
    Some(TokenSeed { jti: jti.into(), issued_at: 1_800_000_000 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_is_the_two_tokens_of_one_session() {
    let server = TokenServer::start().await;
    let remote = server.remote();
    let (user, session) = (Uuid::new_v4(), Uuid::new_v4());

    let pair = remote.generate_token_pair(user, session, Some(600), None, None).await.expect("pair");
    let access = remote.verify_token(&pair.access.token, TokenKind::Access).await.expect("access verifies");
    let refresh = remote.verify_token(&pair.refresh.token, TokenKind::Refresh).await.expect("refresh verifies");
    assert_eq!((access.subject, access.session_id), (user, session));
    assert_eq!((refresh.subject, refresh.session_id), (user, session));
    assert_eq!(pair.refresh.expires_in, 600, "the refresh TTL is the one asked for");

    // Seeded: exactly what the two single calls of the service itself sign.
    let (a, r) = (seed("access-seed"), seed("refresh-seed"));
    let remote_pair = remote.generate_token_pair(user, session, Some(600), a.clone(), r.clone()).await.expect("pair");
    let access = server.service.generate_access_token(user, session, a).await.expect("access");
    let refresh = server.service.generate_refresh_token(user, session, Some(600), r).await.expect("refresh");
    assert_eq!(remote_pair.access.token, access.token);
    assert_eq!(remote_pair.refresh.token, refresh.token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_naming_different_sessions_are_refused() {
    let server = TokenServer::start().await;
    let user = Uuid::new_v4().to_string();
    let access = pb::GenerateAccessTokenRequest {
        user_id: user.clone(),
        session_id: Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let refresh =
        pb::GenerateRefreshTokenRequest { user_id: user, session_id: Uuid::new_v4().to_string(), ..Default::default() };
    let status = server
        .client()
        .generate_token_pair(pb::GenerateTokenPairRequest { access: Some(access.clone()), refresh: Some(refresh) })
        .await
        .expect_err("two sessions");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = server
        .client()
        .generate_token_pair(pb::GenerateTokenPairRequest { access: Some(access), refresh: None })
        .await
        .expect_err("half a pair");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}
