//! What the scenarios need from a freshly started Warden: an admin's bearer token, an API
//! key, the admin's user id and the public key that verifies the tokens.
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Fixture {
    pub http: SocketAddr,
    pub grpc_auth: String,
    pub grpc_rbac: String,
    /// The bare axum ceiling server, when it runs.
    pub ceiling_http: Option<SocketAddr>,
    /// The bare tonic ceiling (same process as `ceiling_http`), when it runs.
    pub ceiling_grpc: Option<String>,
    pub username: String,
    pub password: String,
    pub access_token: String,
    pub api_key: String,
    pub user_id: String,
    pub issuer: String,
    /// The Ed25519 public key (JWK `x`) that signed `access_token`.
    pub jwk_x: String,
}

pub struct Login {
    pub access_token: String,
    pub refresh_token: String,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client")
}

pub async fn login(http: &reqwest::Client, base: &str, username: &str, password: &str) -> anyhow::Result<Login> {
    let response = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("login answered {status}: {body}");
    }
    let field = |name: &str| body[name].as_str().map(str::to_owned).with_context(|| format!("login answer: {name}"));
    Ok(Login { access_token: field("access_token")?, refresh_token: field("refresh_token")? })
}

/// Logs in, retrying while the services come up (split mode creates the admin in the background).
async fn first_login(http: &reqwest::Client, base: &str, username: &str, password: &str) -> anyhow::Result<Login> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match login(http, base, username, password).await {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() > deadline => return Err(e.context("no successful login within 60 s")),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The JSON claims (or header) of a JWT segment, without verifying anything.
pub fn jwt_part(token: &str, index: usize) -> anyhow::Result<Value> {
    let part = token.split('.').nth(index).context("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part)?)?)
}

pub async fn prepare(
    http_addr: SocketAddr,
    grpc_auth: String,
    grpc_rbac: String,
    username: &str,
    password: &str,
) -> anyhow::Result<Fixture> {
    let http = client();
    let base = format!("http://{http_addr}");
    let tokens = first_login(&http, &base, username, password).await?;
    let me: Value = http
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let user_id = me["id"].as_str().context("/me has no id")?.to_owned();
    let key: Value = http
        .post(format!("{base}/api/v1/auth/api-key"))
        .bearer_auth(&tokens.access_token)
        .json(&json!({ "name": "bench", "scopes": [crate::workers::PERMISSION] }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let api_key = key["key"].as_str().context("api-key answer has no key")?.to_owned();
    let jwks: Value =
        http.get(format!("{base}/.well-known/jwks.json")).send().await?.error_for_status()?.json().await?;
    let kid = jwt_part(&tokens.access_token, 0)?["kid"].as_str().context("token has no kid")?.to_owned();
    let jwk_x = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"].as_str() == Some(kid.as_str()))
        .and_then(|k| k["x"].as_str())
        .context("the token's key is not in the JWKS")?
        .to_owned();
    let issuer = jwt_part(&tokens.access_token, 1)?["iss"].as_str().context("token has no iss")?.to_owned();
    Ok(Fixture {
        http: http_addr,
        grpc_auth,
        grpc_rbac,
        ceiling_http: None,
        ceiling_grpc: None,
        username: username.to_owned(),
        password: password.to_owned(),
        access_token: tokens.access_token,
        api_key,
        user_id,
        issuer,
        jwk_x,
    })
}
