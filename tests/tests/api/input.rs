//! Bad input: clear problem answers, never a 500.
use serde_json::Value;
use warden_tests::{TestWarden, on_every_backend};

on_every_backend!(malformed_and_oversized_input_is_refused);

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status);
    (status, body["code"].as_str().unwrap().to_owned())
}

async fn malformed_and_oversized_input_is_refused(w: TestWarden) {
    let url = w.url("/api/v1/auth/login");
    let long_password = "p".repeat(1025);
    let r = w.login(&w.admin, &long_password).await;
    assert_eq!(code(r).await, (400, "validation_error".into()));

    let r = w.http.post(&url).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(code(r).await, (400, "validation_error".into()));
    let r =
        w.http.post(&url).header("content-type", "application/json").body("{\"username\":\"x\"}").send().await.unwrap();
    assert_eq!(code(r).await, (400, "validation_error".into()));
    let r = w.http.post(&url).header("content-type", "text/plain").body("username=x").send().await.unwrap();
    assert_eq!(code(r).await, (415, "validation_error".into()));
    let huge = format!("{{\"username\":\"x\",\"password\":\"{}\"}}", "a".repeat(100_000));
    let r = w.http.post(&url).header("content-type", "application/json").body(huge).send().await.unwrap();
    assert_eq!(code(r).await, (413, "validation_error".into()));
    let r = w.http.get(&url).send().await.unwrap();
    assert_eq!(code(r).await.0, 405);
    let r = w.http.get(w.url("/api/v1/nope")).send().await.unwrap();
    assert_eq!(code(r).await.0, 404);
    // Invalid UTF-8 and deep nesting are plain 400s, never a 500.
    let r = w
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (400, "validation_error".into()));
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let r = w.http.post(&url).header("content-type", "application/json").body(deep).send().await.unwrap();
    assert_eq!(code(r).await, (400, "validation_error".into()));
    // A repeated query parameter or a malformed path segment is a problem document too.
    let r = w.http.get(w.url("/api/v1/auth/verify?permission=a&permission=b")).send().await.unwrap();
    assert_eq!(code(r).await.0, 400);
    // A huge gRPC message is refused by size, before any work (tonic answers OUT_OF_RANGE
    // where grpc-core answers RESOURCE_EXHAUSTED; either is a refusal, never a 5xx-like code).
    let mut grpc = w.auth_client().await;
    let huge = warden_proto::auth::v1::LoginRequest { username: "x".into(), password: "p".repeat(1024 * 1024) };
    let status = grpc.login(huge).await.unwrap_err();
    assert!(matches!(status.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted), "{status:?}");
    w.shutdown().await;
}
