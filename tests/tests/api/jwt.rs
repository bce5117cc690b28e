//! Access tokens checked from outside: the signature is verified against the published
//! JWKS with ed25519-dalek directly (not the code path that signed), and forged, tampered,
//! `alg: none` and wrong-audience tokens are refused.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{Value, json};
use warden_tests::{ADMIN_PASSWORD, Backend, TestWarden, backend_urls, base_config, on_every_backend};

on_every_backend!(token_verifies_independently_against_jwks, forged_tokens_are_refused);

fn decode(part: &str) -> Value {
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

async fn jwks(w: &TestWarden) -> Value {
    w.http.get(w.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap()
}

async fn token_verifies_independently_against_jwks(w: TestWarden) {
    let tokens = w.login_ok(&w.admin, ADMIN_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode(parts[0]);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let kid = header["kid"].as_str().unwrap();

    let keys = jwks(&w).await;
    let jwk = keys["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("kid published");
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert!(jwk.get("d").is_none(), "no private material in the JWKS");
    let public: [u8; 32] = B64.decode(jwk["x"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key = VerifyingKey::from_bytes(&public).unwrap();
    let signature = Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature).expect("signature verifies");

    let claims = decode(parts[1]);
    assert_eq!(claims["iss"], w.config.issuer);
    assert_eq!(claims["aud"], "warden");
    for claim in ["sub", "sid", "jti", "iat", "nbf", "exp"] {
        assert!(claims.get(claim).is_some(), "claim {claim}");
    }
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);

    // The refresh token has its own type and is not accepted as an access token.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(decode(refresh.split('.').next().unwrap())["typ"], "rt+jwt");
    assert_eq!(w.get_with("/api/v1/auth/me", refresh).await.status(), 401);
    // Nor the access token as a refresh token.
    let r = w.post("/api/v1/auth/refresh", json!({ "refresh_token": token })).await;
    assert_eq!(r.status(), 401);
    w.shutdown().await;
}

async fn assert_invalid(w: &TestWarden, token: &str, what: &str) {
    let r = w.get_with("/api/v1/auth/me", token).await;
    assert_eq!(r.status(), 401, "{what}");
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"warden\", error=\"invalid_token\"", "{what}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "token_invalid", "{what}");
}

async fn forged_tokens_are_refused(w: TestWarden) {
    let token = w.login_ok(&w.admin, ADMIN_PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    let claims = decode(parts[1]);
    let header = decode(parts[0]);

    // Tampered payload with the original signature.
    let mut tampered = claims.clone();
    tampered["sub"] = json!(uuid::Uuid::new_v4().to_string());
    let forged = format!("{}.{}.{}", parts[0], B64.encode(tampered.to_string()), parts[2]);
    assert_invalid(&w, &forged, "tampered payload").await;

    // Flipped signature bit.
    let mut sig = B64.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    assert_invalid(&w, &format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig)), "flipped bit").await;

    // alg none, in several casings, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = json!({ "alg": alg, "typ": "at+jwt", "kid": header["kid"] });
        let unsigned = format!("{}.{}.", B64.encode(h.to_string()), parts[1]);
        assert_invalid(&w, &unsigned, alg).await;
        assert_invalid(&w, &format!("{unsigned}{}", parts[2]), alg).await;
    }

    // HS256 "signed" with the public key (algorithm confusion).
    let h = json!({ "alg": "HS256", "typ": "at+jwt", "kid": header["kid"] });
    assert_invalid(&w, &format!("{}.{}.{}", B64.encode(h.to_string()), parts[1], parts[2]), "hs256").await;

    // Embedded jwk and junk kid.
    let own = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let sign = |h: Value, c: &Value| {
        let input = format!("{}.{}", B64.encode(h.to_string()), B64.encode(c.to_string()));
        let sig = ed25519_dalek::Signer::sign(&own, input.as_bytes());
        format!("{input}.{}", B64.encode(sig.to_bytes()))
    };
    let x = B64.encode(own.verifying_key().to_bytes());
    let embedded = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": header["kid"], "jwk": { "kty": "OKP", "crv": "Ed25519", "x": x } });
    assert_invalid(&w, &sign(embedded, &claims), "embedded jwk").await;
    let junk = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "../../etc/passwd' OR 1=1" });
    assert_invalid(&w, &sign(junk, &claims), "junk kid").await;
    let own_key = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": header["kid"] });
    assert_invalid(&w, &sign(own_key, &claims), "foreign key, our kid").await;
    assert_invalid(&w, "not-a-jwt", "garbage").await;
    assert_invalid(&w, &"a".repeat(5000), "oversized").await;
    w.shutdown().await;
}

/// A token from the same keys but another audience is refused; restarting keeps the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_audience_is_refused_and_restart_keeps_keys() {
    let (db, _) = backend_urls(Backend::Sqlite, "audience").await.unwrap();
    let first = TestWarden::start_config(base_config(db.clone(), None)).await;
    let tokens = first.login_ok(&first.admin, ADMIN_PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let kid_before = jwks(&first).await["keys"][0]["kid"].clone();
    first.shutdown().await;

    // Same database, same signing keys, other audience: the token must not pass.
    let mut other = base_config(db.clone(), None);
    other.audience = "another-service".into();
    let other = TestWarden::start_config(other).await;
    assert_invalid(&other, &access, "wrong audience").await;
    other.shutdown().await;

    let again = TestWarden::start_config(base_config(db, None)).await;
    assert_eq!(jwks(&again).await["keys"][0]["kid"], kid_before, "keys survive a restart");
    assert_eq!(again.get_with("/api/v1/auth/me", &access).await.status(), 200, "sessions survive a restart");
    again.shutdown().await;
}
