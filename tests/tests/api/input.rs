//! Bad input: clear problem answers, never a 500.
use serde_json::Value;
use warden_tests::{ADMIN_PASSWORD, TestWarden, on_every_backend};

on_every_backend!(
    malformed_and_oversized_input_is_refused,
    schema_violations_are_refused_as_such,
    login_usernames_are_bounded_as_the_contract_says
);

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
    // Deep nesting: refused by the parser's depth limit (no stack overflow), or by size first
    // when the document is past the body limit (100k levels are 200 KB).
    for (depth, status) in [(5000, 400), (30_000, 400), (100_000, 413)] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let r = w.http.post(&url).header("content-type", "application/json").body(deep).send().await.unwrap();
        assert_eq!(code(r).await, (status, "validation_error".into()), "nesting depth {depth}");
    }
    // Deep nesting inside a body that is otherwise well-formed.
    let nested = format!("{{\"username\":{}1{},\"password\":\"x\"}}", "[".repeat(10_000), "]".repeat(10_000));
    let r = w.http.post(&url).header("content-type", "application/json").body(nested).send().await.unwrap();
    assert_eq!(code(r).await, (400, "validation_error".into()));
    // A method HTTP does not know, and a known one the route lacks: 405 either way.
    let weird = reqwest::Method::from_bytes(b"FROBNICATE").unwrap();
    let r = w.http.request(weird, &url).send().await.unwrap();
    assert_eq!(code(r).await, (405, "method_not_allowed".into()));
    let r = w.http.put(&url).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(code(r).await, (405, "method_not_allowed".into()));
    // A JSON body under another media type, or none at all: 415.
    let r = w.http.post(&url).body("{\"username\":\"x\",\"password\":\"y\"}").send().await.unwrap();
    assert_eq!(code(r).await, (415, "validation_error".into()));
    let r = w
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=x&password=y")
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (415, "validation_error".into()));
    // Oversized without a Content-Length (chunked) is refused by size as well.
    let addr = w.base_url.trim_start_matches("http://").to_owned();
    let raw = tokio::task::spawn_blocking(move || chunked_post(&addr, "/api/v1/auth/login", 100, 1024)).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("content-type: application/problem+json"), "{raw}");
    assert!(raw.contains("\"code\":\"validation_error\""), "{raw}");
    // A repeated query parameter or a malformed path segment is a problem document too.
    let r = w.http.get(w.url("/api/v1/auth/verify?permission=a&permission=b")).send().await.unwrap();
    assert_eq!(code(r).await.0, 400);
    // A gRPC message past the server's limit is refused by size before any work, with
    // RESOURCE_EXHAUSTED (SPEC §4) and the validation_error reason.
    let mut grpc = w.auth_client().await;
    let huge = warden_proto::auth::v1::LoginRequest { username: "x".into(), password: "p".repeat(1024 * 1024) };
    let status = grpc.login(huge).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(warden_common::Error::from(status).code, warden_common::ErrorCode::ValidationError);
    // The connection stays usable: a normal call right after is answered.
    let ok = warden_proto::auth::v1::LoginRequest { username: w.admin.clone(), password: ADMIN_PASSWORD.into() };
    grpc.login(ok).await.expect("a normal login after the refusal");
    w.shutdown().await;
}

/// POSTs `count` chunks of `size` spaces with chunked transfer encoding (no Content-Length)
/// over a plain socket and returns the raw answer.
fn chunked_post(addr: &str, path: &str, count: usize, size: usize) -> String {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).unwrap();
    let chunk = format!("{size:x}\r\n{}\r\n", " ".repeat(size));
    for _ in 0..count {
        // The server may answer and close before the whole body is sent.
        if socket.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Found by schemathesis: input the OpenAPI document rules out is a 400 whatever else holds.
async fn schema_violations_are_refused_as_such(w: TestWarden) {
    let tokens = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap();
    // `refresh_token` is a string when present: an explicit null is not an absent token.
    let r = w.post_with("/api/v1/auth/logout", access, serde_json::json!({ "refresh_token": null, "all": true })).await;
    assert_eq!(code(r).await, (400, "validation_error".into()));
    assert_eq!(w.get_with("/api/v1/auth/me", access).await.status(), 200, "nothing was logged out");

    // A new password that breaks the contract or the policy (over-long, empty, too short) is
    // a 400 even on a locked account; the lockout answers 423 only to a request that could
    // otherwise succeed.
    let change = |current: &str, new: String| {
        w.post_with(
            "/api/v1/auth/password",
            access,
            serde_json::json!({ "current_password": current, "new_password": new }),
        )
    };
    let mut locked = false;
    for _ in 0..20 {
        let r = change("not-the-password", "Another-Strong-Passphrase-2026".into()).await;
        if r.status() == 423 {
            locked = true;
            break;
        }
        assert_eq!(code(r).await, (401, "invalid_credentials".into()));
    }
    assert!(locked, "wrong current passwords lock the account");
    for refused in ["p".repeat(1025), String::new(), "short".into()] {
        let r = change("not-the-password", refused.clone()).await;
        assert_eq!(code(r).await, (400, "validation_error".into()), "{refused:?}");
    }
    let r = change("not-the-password", "Another-Strong-Passphrase-2026".into()).await;
    assert_eq!(code(r).await, (423, "account_locked".into()));
}

/// Found by schemathesis: the login username is 1 to 256 characters, not all whitespace, as
/// the OpenAPI document says (its `maxLength` counts characters, not bytes).
async fn login_usernames_are_bounded_as_the_contract_says(w: TestWarden) {
    for blank in ["\t", " ", "\u{3000}\u{a0}", "\u{85}"] {
        assert_eq!(code(w.login(blank, "whatever").await).await, (400, "validation_error".into()), "{blank:?}");
    }
    // 256 characters of three bytes each: within the contract, so an unknown user (401).
    let wide = "\u{20ac}".repeat(256);
    assert_eq!(code(w.login(&wide, "whatever").await).await, (401, "invalid_credentials".into()));
    let r = w.login(&"\u{20ac}".repeat(257), "whatever").await;
    assert_eq!(code(r).await, (400, "validation_error".into()));
}
