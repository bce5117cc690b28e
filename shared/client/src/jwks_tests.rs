use super::*;
use axum::Router;
use axum::routing::get;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

const ISS: &str = "http://warden.test";
const AUD: &str = "warden";
/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410), as Warden's token service uses.
const PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

struct TestKey {
    kid: String,
    signer: EncodingKey,
    public: [u8; 32],
}

impl TestKey {
    fn new(kid: &str, seed: u8) -> Self {
        let seed = [seed; 32];
        let mut der = PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        TestKey { kid: kid.to_owned(), signer: EncodingKey::from_ed_der(&der), public }
    }

    fn jwk(&self) -> Value {
        json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.kid,
                "x": URL_SAFE_NO_PAD.encode(self.public) })
    }

    fn sign_with(&self, header: Header, claims: Value) -> String {
        jsonwebtoken::encode(&header, &claims, &self.signer).unwrap()
    }

    fn header(&self) -> Header {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid.clone());
        header
    }

    fn token(&self, claims: Value) -> String {
        self.sign_with(self.header(), claims)
    }
}

fn claims(now: i64) -> Value {
    json!({ "iss": ISS, "aud": AUD, "sub": "user-1", "sid": "session-1", "jti": "j", "iat": now, "nbf": now, "exp": now + 900 })
}

fn check(key: &TestKey, token: &str, now: i64) -> Result<TokenClaims, Error> {
    let decoding = DecodingKey::from_ed_der(&key.public);
    verify_with(&decoding, checked_kid(token)?, token, ISS, AUD, now)
}

#[test]
fn accepts_a_well_formed_access_token() {
    let key = TestKey::new("k1", 7);
    let now = 1_800_000_000;
    let claims = check(&key, &key.token(claims(now)), now).unwrap();
    assert_eq!(claims.subject, "user-1");
    assert_eq!(claims.session_id.as_deref(), Some("session-1"));
    assert_eq!(claims.kid, "k1");
}

#[test]
fn applies_the_leeway_to_times() {
    let key = TestKey::new("k1", 7);
    let now = 1_800_000_000;
    let token = key.token(claims(now));
    assert!(check(&key, &token, now + 900 + LEEWAY_SECONDS).is_ok());
    assert_eq!(check(&key, &token, now + 901 + LEEWAY_SECONDS).unwrap_err().code, ErrorCode::TokenExpired);
    assert!(check(&key, &token, now - LEEWAY_SECONDS).is_ok());
    assert_eq!(check(&key, &token, now - LEEWAY_SECONDS - 1).unwrap_err().code, ErrorCode::TokenInvalid);
}

#[test]
fn refuses_wrong_issuer_audience_type_and_foreign_headers() {
    let key = TestKey::new("k1", 7);
    let now = 1_800_000_000;
    let mut wrong_iss = claims(now);
    wrong_iss["iss"] = json!("http://elsewhere");
    let mut wrong_aud = claims(now);
    wrong_aud["aud"] = json!("other");
    let mut no_sub = claims(now);
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut refresh = key.header();
    refresh.typ = Some("rt+jwt".into());
    let mut no_kid = key.header();
    no_kid.kid = None;
    let mut jku = key.header();
    jku.jku = Some("http://attacker/jwks".into());
    let other_key = TestKey::new("k1", 8);
    let cases = [
        ("iss", key.token(wrong_iss)),
        ("aud", key.token(wrong_aud)),
        ("sub", key.token(no_sub)),
        ("typ", key.sign_with(refresh, claims(now))),
        ("kid", key.sign_with(no_kid, claims(now))),
        ("jku", key.sign_with(jku, claims(now))),
        ("signature", other_key.token(claims(now))),
        ("garbage", "a.b.c".to_owned()),
        ("oversized", "a".repeat(MAX_TOKEN_BYTES + 1)),
    ];
    for (what, token) in cases {
        assert_eq!(check(&key, &token, now).unwrap_err().code, ErrorCode::TokenInvalid, "{what}");
    }
}

#[test]
fn refuses_other_algorithms() {
    let now = 1_800_000_000;
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(&header, &claims(now), &EncodingKey::from_secret(b"public key bytes")).unwrap();
    assert_eq!(checked_kid(&token).unwrap_err().code, ErrorCode::TokenInvalid);
}

#[test]
fn skips_keys_warden_would_not_publish() {
    let key = TestKey::new("k1", 7);
    let parse = |v: Value| ed25519_key(serde_json::from_value(v).unwrap()).map(|(kid, _)| kid);
    assert_eq!(parse(key.jwk()), Some("k1".to_owned()));
    for (field, value) in [("kty", "RSA"), ("crv", "X25519"), ("alg", "HS256"), ("use", "enc"), ("x", "AAAA")] {
        let mut jwk = key.jwk();
        jwk[field] = json!(value);
        assert_eq!(parse(jwk), None, "{field}");
    }
}

/// A JWKS endpoint serving `keys`, counting fetches.
async fn serve_jwks(keys: Arc<RwLock<Vec<Value>>>, fetches: Arc<AtomicUsize>) -> String {
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let keys = keys.read().unwrap().clone();
            fetches.fetch_add(1, Ordering::SeqCst);
            async move { axum::Json(json!({ "keys": keys })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/.well-known/jwks.json")
}

#[tokio::test]
async fn unknown_kids_fetch_again_but_at_most_once_per_gap() {
    let first = TestKey::new("first", 1);
    let second = TestKey::new("second", 2);
    let keys = Arc::new(RwLock::new(vec![first.jwk()]));
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = serve_jwks(keys.clone(), fetches.clone()).await;
    let gap = Duration::from_millis(300);
    let jwks = Arc::new(Jwks::new(url, Duration::from_secs(5), gap).unwrap());
    jwks.refresh().await.unwrap();
    let now = now_unix();
    assert!(jwks.verify(&first.token(claims(now)), ISS, AUD).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "a known kid needs no fetch");

    // A rotation: the new kid is fetched on first sight, even right after the last fetch.
    keys.write().unwrap().push(second.jwk());
    let started = Instant::now();
    assert!(jwks.verify(&second.token(claims(now)), ISS, AUD).await.is_ok());
    assert!(started.elapsed() >= gap / 2, "the fetch waited for the rest of the gap");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // Many junk kids at once share fetches: one per gap, not one per request.
    let junk = TestKey::new("junk", 3);
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let (jwks, token) = (jwks.clone(), junk.token(claims(now)));
            tokio::spawn(async move { jwks.verify(&token, ISS, AUD).await })
        })
        .collect();
    for attempt in attempts {
        assert_eq!(attempt.await.unwrap().unwrap_err().code, ErrorCode::TokenInvalid);
    }
    assert!(fetches.load(Ordering::SeqCst) <= 4, "fetches: {}", fetches.load(Ordering::SeqCst));
}

#[tokio::test]
async fn an_unreachable_jwks_fails_closed_as_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let jwks = Jwks::new(url, Duration::from_secs(2), Duration::from_millis(10)).unwrap();
    let key = TestKey::new("k1", 7);
    let e = jwks.verify(&key.token(claims(now_unix())), ISS, AUD).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
}
