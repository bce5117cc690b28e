//! A replica that crashes while it holds a call: the connection closes after the call left
//! and no answer comes. [`PeerChannel`] sends such a call to the next replica only when the
//! RPC is safe to run twice ([`repeatable`]); any other call fails, since the crashed
//! replica may already have done it.
use axum::body::Bytes;
use axum::http;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::body::Body;
use tower::ServiceExt;
use warden_common::grpc::{channel, repeatable};

#[derive(Clone, Copy)]
enum Replica {
    /// Takes the call, then closes the connection without answering.
    CrashesHoldingTheCall,
    /// Sends the answer's headers, then closes the connection before its body and status.
    CrashesMidAnswer,
    /// Answers every call with an empty OK.
    Healthy,
}

/// A bare HTTP/2 server playing one replica; `calls` counts the calls that reached it.
async fn replica(kind: Replica, calls: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let calls = calls.clone();
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else { return };
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    calls.fetch_add(1, Ordering::SeqCst);
                    match kind {
                        Replica::CrashesHoldingTheCall => return,
                        Replica::CrashesMidAnswer => {
                            let head = http::Response::builder()
                                .status(200)
                                .header("content-type", "application/grpc")
                                .body(())
                                .unwrap();
                            let _ = respond.send_response(head, false);
                            // Drive the connection long enough to send the headers, then die.
                            let _ = tokio::time::timeout(Duration::from_millis(100), connection.accept()).await;
                            return;
                        }
                        Replica::Healthy => {}
                    }
                    let ok = http::Response::builder()
                        .status(200)
                        .header("content-type", "application/grpc")
                        .header("grpc-status", "0")
                        .body(())
                        .unwrap();
                    let _ = respond.send_response(ok, true);
                }
            });
        }
    });
    format!("http://{addr}")
}

fn call(path: &str) -> http::Request<Body> {
    // An empty protobuf message in one uncompressed gRPC frame.
    let frame = Bytes::from_static(&[0, 0, 0, 0, 0]);
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::new(Full::new(frame)))
        .unwrap()
}

struct Pair {
    crashing: Arc<AtomicUsize>,
    healthy: Arc<AtomicUsize>,
    channel: warden_common::grpc::PeerChannel,
}

/// Two replicas, the crashing one first in turn.
async fn pair(crash: Replica) -> Pair {
    let (crashing, healthy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let endpoints = vec![replica(crash, crashing.clone()).await, replica(Replica::Healthy, healthy.clone()).await];
    Pair { crashing, healthy, channel: channel("TEST", &endpoints, None).unwrap() }
}

/// Sends a repeatable call to a pair whose first replica fails as `crash` says, and checks
/// that it reached that replica once and was answered, OK, by the healthy one.
async fn answered_by_the_next(crash: Replica, path: &str) -> http::Response<Body> {
    let Pair { crashing, healthy, channel } = pair(crash).await;
    assert!(repeatable(path));

    let answer = channel.oneshot(call(path)).await.expect("answered by the healthy replica");
    assert_eq!(answer.headers()["grpc-status"], "0");
    assert_eq!(crashing.load(Ordering::SeqCst), 1, "the call first reached the replica that crashed");
    assert_eq!(healthy.load(Ordering::SeqCst), 1);
    answer
}

#[tokio::test]
async fn a_repeatable_call_held_by_a_crashed_replica_is_answered_by_the_next() {
    answered_by_the_next(Replica::CrashesHoldingTheCall, "/warden.rbac.v1.RbacService/CheckPermissions").await;
}

#[tokio::test]
async fn a_repeatable_call_whose_answer_broke_off_is_answered_by_the_next() {
    let answer = answered_by_the_next(Replica::CrashesMidAnswer, "/warden.auth.v1.AuthService/Refresh").await;
    answer.into_body().collect().await.expect("the answer is whole");
}

#[tokio::test]
async fn a_call_that_must_not_run_twice_fails_instead_of_being_repeated() {
    let Pair { crashing, healthy, channel } = pair(Replica::CrashesHoldingTheCall).await;
    let path = "/warden.auth.v1.AuthService/CreateUser";
    assert!(!repeatable(path));

    channel.oneshot(call(path)).await.expect_err("the crashed replica's answer never came");
    assert_eq!(crashing.load(Ordering::SeqCst), 1);
    assert_eq!(healthy.load(Ordering::SeqCst), 0, "not repeated on the other replica");
}

#[tokio::test]
async fn a_call_that_must_not_run_twice_keeps_its_broken_answer() {
    let Pair { crashing, healthy, channel } = pair(Replica::CrashesMidAnswer).await;
    let path = "/warden.auth.v1.AuthService/CreateUser";

    let answer = channel.oneshot(call(path)).await.expect("the headers came");
    answer.into_body().collect().await.expect_err("the body never came");
    assert_eq!(crashing.load(Ordering::SeqCst), 1);
    assert_eq!(healthy.load(Ordering::SeqCst), 0, "not repeated on the other replica");
}

#[test]
fn only_calls_safe_to_run_twice_are_repeatable() {
    for path in [
        "/warden.auth.v1.AuthService/Login",
        "/warden.auth.v1.AuthService/Refresh",
        "/warden.auth.v1.AuthService/Authorize",
        "/warden.key.v1.KeyService/ValidateApiKey",
        "/warden.key.v1.KeyService/RevokeApiKey",
        "/warden.token.v1.TokenService/VerifyToken",
        "/warden.rbac.v1.RbacService/AssignRole",
        "/grpc.health.v1.Health/Check",
    ] {
        assert!(repeatable(path), "{path}");
    }
    for path in [
        "/warden.auth.v1.AuthService/CreateUser",
        "/warden.auth.v1.AuthService/CompleteMfaLogin",
        "/warden.auth.v1.AuthService/ChangePassword",
        "/warden.auth.v1.AuthService/RevokeSession",
        "/warden.key.v1.KeyService/GenerateApiKey",
        "/warden.token.v1.TokenService/RotateSigningKey",
        "/warden.rbac.v1.RbacService/CreateRole",
        "/warden.rbac.v1.RbacService/DeleteRole",
        "/unknown.Service/Get",
        "not a path",
    ] {
        assert!(!repeatable(path), "{path}");
    }
}
