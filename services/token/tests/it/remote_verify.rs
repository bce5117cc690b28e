//! `RemoteTokens::verify_token` verifies locally against the token service's JWKS: no
//! VerifyToken call, the same verdict as the service for every kind of bad token, key
//! rotation picked up through the unknown `kid`, and fail-closed when it has no keys.
use crate::support::{ACCESS_TTL, TokenServer, assert_code, unreachable_remote};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_token::grpc::RemoteTokens;
use warden_token::{LEEWAY_SECONDS, MAX_TOKEN_BYTES, TokenApi, TokenKind};

async fn access(api: &dyn TokenApi) -> String {
    api.generate_access_token(Uuid::new_v4(), Uuid::new_v4(), None).await.expect("issue").token
}

/// A running server, its remote client, and an access token the client has verified once
/// (so the client holds the keys).
async fn verified_once() -> (TokenServer, RemoteTokens, String) {
    let server = TokenServer::start().await;
    let remote = server.remote();
    let token = access(&remote).await;
    remote.verify_token(&token, TokenKind::Access).await.expect("a good token verifies");
    assert_eq!(server.calls.jwks_calls(), 1, "keys fetched at first use");
    (server, remote, token)
}

/// The same token with its header replaced by `header` (JSON), signature kept.
fn with_header(token: &str, header: serde_json::Value) -> String {
    let rest = token.split_once('.').expect("a JWT").1;
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

fn kid(token: &str) -> String {
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next().expect("a JWT")).expect("base64 header");
    serde_json::from_slice::<serde_json::Value>(&header).expect("JSON header")["kid"].as_str().expect("kid").to_owned()
}

/// Refused by the remote client with `code`, and by the token service with the same code.
#[track_caller]
fn refused_alike(verdicts: (Option<ErrorCode>, Option<ErrorCode>), code: ErrorCode, what: &str) {
    assert_eq!(verdicts.0, Some(code), "remote verdict on {what}");
    assert_eq!(verdicts.1, Some(code), "service verdict on {what}");
}

/// The error codes (`None`: accepted) of the remote client and of the service itself.
async fn verdicts(
    server: &TokenServer,
    remote: &RemoteTokens,
    token: &str,
    kind: TokenKind,
) -> (Option<ErrorCode>, Option<ErrorCode>) {
    let remote = remote.verify_token(token, kind).await.err().map(|e| e.code);
    let local = server.service.verify_token(token, kind).await.err().map(|e| e.code);
    (remote, local)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_makes_no_verify_call_and_survives_the_server_going_away() {
    let mut server = TokenServer::start().await;
    let remote = server.remote();
    let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
    let issued = remote.generate_access_token(user, session, None).await.expect("issue");
    let later = access(&remote).await;

    let verified = remote.verify_token(&issued.token, TokenKind::Access).await.expect("verifies");
    assert_eq!((verified.subject, verified.session_id, verified.kind), (user, session, TokenKind::Access));
    assert_eq!(verified.jti, issued.jti);
    assert_eq!(verified.expires_at, issued.expires_at);
    assert_eq!(verified, server.service.verify_token(&issued.token, TokenKind::Access).await.expect("service"));
    remote.verify_token(&issued.token, TokenKind::Access).await.expect("verifies again");
    assert_eq!(server.calls.verify_calls(), 0, "no VerifyToken call reached the token service");
    assert_eq!(server.calls.jwks_calls(), 1, "the keys are fetched once");

    // Without the server, the keys in memory still verify, including a token never seen.
    server.stop().await;
    remote.verify_token(&later, TokenKind::Access).await.expect("verified with the keys in memory");
    assert_eq!(server.calls.verify_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_as_the_service_refuses_them() {
    let (server, remote, token) = verified_once().await;
    let refresh = remote.generate_refresh_token(Uuid::new_v4(), Uuid::new_v4(), None, None).await.expect("issue").token;

    refused_alike(
        verdicts(&server, &remote, &refresh, TokenKind::Access).await,
        ErrorCode::TokenInvalid,
        "a refresh token used as access token",
    );
    // Also once the access token is cached: the cache entry is for its own kind only.
    refused_alike(
        verdicts(&server, &remote, &token, TokenKind::Refresh).await,
        ErrorCode::TokenInvalid,
        "an access token used as refresh token",
    );

    let (head, signature) = token.rsplit_once('.').expect("a JWT");
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("signature");
    bytes[0] ^= 1;
    let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
    refused_alike(
        verdicts(&server, &remote, &tampered, TokenKind::Access).await,
        ErrorCode::TokenInvalid,
        "a tampered signature",
    );

    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("claims")).expect("JSON claims");
    claims["sub"] = Uuid::new_v4().to_string().into();
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    refused_alike(
        verdicts(&server, &remote, &forged, TokenKind::Access).await,
        ErrorCode::TokenInvalid,
        "a changed subject",
    );

    let k = kid(&token);
    for (header, what) in [
        (serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": k}), "another alg"),
        (serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": k}), "alg none"),
        (serde_json::json!({"alg": "EdDSA", "kid": k}), "no typ"),
        (serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": k, "jku": "https://evil.test/jwks"}), "a jku"),
        (serde_json::json!({"alg": "EdDSA", "typ": "at+jwt"}), "no kid"),
    ] {
        refused_alike(
            verdicts(&server, &remote, &with_header(&token, header), TokenKind::Access).await,
            ErrorCode::TokenInvalid,
            what,
        );
    }

    let oversize = format!("{token}{}", "A".repeat(MAX_TOKEN_BYTES));
    refused_alike(
        verdicts(&server, &remote, &oversize, TokenKind::Access).await,
        ErrorCode::TokenInvalid,
        "an oversize token",
    );

    let other_audience = server.remote_for("another-audience");
    assert_code(other_audience.verify_token(&token, TokenKind::Access).await, ErrorCode::TokenInvalid);
    assert_eq!(server.calls.verify_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_kids_are_refused_and_fetch_the_keys_at_most_once_a_second() {
    let (server, remote, token) = verified_once().await;
    for junk in ["junk-1", "junk-2", "junk-3"] {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": junk});
        assert_code(
            remote.verify_token(&with_header(&token, header), TokenKind::Access).await,
            ErrorCode::TokenInvalid,
        );
    }
    assert_eq!(server.calls.jwks_calls(), 2, "one refresh for the first unknown kid, then none within the gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_with_the_same_leeway() {
    let (server, remote, seen) = verified_once().await;
    let unseen = access(&remote).await;

    server.clock.advance(ACCESS_TTL + LEEWAY_SECONDS - 3);
    remote.verify_token(&seen, TokenKind::Access).await.expect("within the leeway");
    server.clock.advance(5);
    for token in [&seen, &unseen] {
        refused_alike(
            verdicts(&server, &remote, token, TokenKind::Access).await,
            ErrorCode::TokenExpired,
            "an expired token",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_on_its_first_token() {
    let (mut server, remote, old) = verified_once().await;

    let new_kid = server.service.rotate_signing_key().await.expect("rotate");
    let fresh = access(&remote).await;
    assert_eq!(kid(&fresh), new_kid);
    let verified = remote.verify_token(&fresh, TokenKind::Access).await.expect("new key fetched and verifies");
    assert_eq!(verified.kid, new_kid);
    remote.verify_token(&old, TokenKind::Access).await.expect("the retired key still verifies");
    assert_eq!(server.calls.jwks_calls(), 2);

    // A key created while the token service is unreachable cannot be checked: fail closed.
    server.service.rotate_signing_key().await.expect("rotate again");
    let newest = server.service.generate_access_token(Uuid::new_v4(), Uuid::new_v4(), None).await.expect("issue");
    server.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_code(remote.verify_token(&newest.token, TokenKind::Access).await, ErrorCode::Unavailable);
    remote.verify_token(&fresh, TokenKind::Access).await.expect("known keys keep verifying");
    assert_eq!(server.calls.verify_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_set_verification_is_unavailable() {
    let server = TokenServer::start().await;
    let token = access(server.service.as_ref()).await;
    let remote = unreachable_remote(server.clock.clone()).await;
    assert_code(remote.verify_token(&token, TokenKind::Access).await, ErrorCode::Unavailable);
    assert_code(remote.verify_token(&token, TokenKind::Access).await, ErrorCode::Unavailable);
}
