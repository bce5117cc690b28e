//! [`WardenClient`]: verifies callers and decides permissions with Warden's AuthService.
//!
//! A bearer token is first checked locally against Warden's JWKS (cheap, and garbage never
//! reaches Warden), then `AuthService.Authorize` checks in one call that its session is still
//! live and decides the permission. Nothing about sessions is cached, so a logout or a
//! revocation takes effect on the very next request. API keys go straight to `Authorize`.
use crate::credential::{Credential, CredentialKind};
use crate::jwks::{self, Jwks, TokenClaims};
use crate::options::ClientOptions;
use std::sync::Arc;
use tonic::transport::{Channel, Endpoint};
use warden_common::{Error, ErrorCode};
use warden_proto::auth::v1::auth_service_client::AuthServiceClient;
use warden_proto::auth::v1::{AuthorizeRequest, authorize_request};

/// An authenticated caller and Warden's decision on the permission asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The caller's user id (for an API key, its owner's).
    pub subject: String,
    pub credential: CredentialKind,
    /// The login session of a bearer token.
    pub session_id: Option<String>,
    pub decision: Decision,
}

/// Warden's answer to "may this caller do `permission`?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub permission: String,
    pub allowed: bool,
    /// Which role and entry decided, e.g. `granted by role ops (items:*)`.
    pub reason: String,
    /// Why not: `insufficient_permissions`, `policy_violation` or `access_denied`.
    pub code: Option<ErrorCode>,
}

impl Principal {
    /// `Ok` when allowed; otherwise the refusal as an error with Warden's code.
    pub fn ensure_allowed(&self) -> Result<(), Error> {
        let d = &self.decision;
        if d.allowed {
            return Ok(());
        }
        let code = d.code.unwrap_or(ErrorCode::InsufficientPermissions);
        Err(Error::new(code, format!("{} is required", d.permission)))
    }
}

/// A handle on Warden for one service: cheap to clone, shared JWKS cache and gRPC channel.
#[derive(Clone)]
pub struct WardenClient {
    inner: Arc<Inner>,
}

struct Inner {
    auth: AuthServiceClient<Channel>,
    jwks: Arc<Jwks>,
    options: ClientOptions,
}

impl std::fmt::Debug for WardenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WardenClient").field("options", &self.inner.options).finish_non_exhaustive()
    }
}

impl WardenClient {
    /// Connects to Warden's gRPC endpoint (`http://warden-auth:50051`) and fetches the JWKS
    /// from `{http_base_url}/.well-known/jwks.json`; fails with `unavailable` when either is
    /// unreachable. The connection is re-established by itself after a failure.
    pub async fn connect(
        grpc_url: impl Into<String>,
        http_base_url: &str,
        options: ClientOptions,
    ) -> Result<WardenClient, Error> {
        let endpoint = endpoint(grpc_url.into(), &options)?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Error::unavailable("warden's grpc endpoint", anyhow::Error::new(e)))?;
        let client = Self::with_channel(channel, http_base_url, options)?;
        client.inner.jwks.refresh().await?;
        Ok(client)
    }

    /// Like [`WardenClient::connect`] without any I/O: the connection and the JWKS are
    /// fetched on first use, so a service may start before Warden. Needs a Tokio runtime.
    pub fn connect_lazy(
        grpc_url: impl Into<String>,
        http_base_url: &str,
        options: ClientOptions,
    ) -> Result<WardenClient, Error> {
        let channel = endpoint(grpc_url.into(), &options)?.connect_lazy();
        Self::with_channel(channel, http_base_url, options)
    }

    /// On a channel built by the caller (e.g. balanced over several Warden replicas with
    /// `Channel::balance_list`). Needs a Tokio runtime.
    pub fn with_channel(channel: Channel, http_base_url: &str, options: ClientOptions) -> Result<WardenClient, Error> {
        let url = format!("{}/.well-known/jwks.json", http_base_url.trim_end_matches('/'));
        let jwks = Arc::new(Jwks::new(url, options.request_timeout, options.jwks_min_refresh_gap)?);
        jwks::spawn_refresher(Arc::downgrade(&jwks), options.jwks_refresh);
        let auth = AuthServiceClient::new(channel);
        Ok(WardenClient { inner: Arc::new(Inner { auth, jwks, options }) })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The generated AuthService client on the same channel, for the RPCs not wrapped here.
    pub fn auth_service(&self) -> AuthServiceClient<Channel> {
        self.inner.auth.clone()
    }

    /// The local check alone: signature against the cached JWKS, `typ`, `iss`, `aud` and
    /// times. It does **not** know whether the session was ended; use it only together with
    /// a live check ([`WardenClient::verify_bearer`] does both).
    pub async fn check_token_locally(&self, token: &str) -> Result<TokenClaims, Error> {
        let o = &self.inner.options;
        self.inner.jwks.verify(token, &o.issuer, &o.audience).await
    }

    /// Verifies a bearer token (locally, then its live session through `Authorize`) and
    /// returns the caller with Warden's decision on `permission`, allowed or not.
    pub async fn verify_bearer(&self, token: &str, permission: &str) -> Result<Principal, Error> {
        let claims = self.check_token_locally(token).await?;
        let credential = authorize_request::Credential::AccessToken(token.to_owned());
        let principal = self.call_authorize(credential, permission, CredentialKind::Bearer).await?;
        if principal.subject != claims.subject {
            return Err(Error::internal(anyhow::anyhow!("warden authorized another subject than the token's")));
        }
        Ok(Principal { session_id: claims.session_id, ..principal })
    }

    /// Verifies an API key through `Authorize` and returns the caller with the decision.
    pub async fn verify_api_key(&self, key: &str, permission: &str) -> Result<Principal, Error> {
        let credential = authorize_request::Credential::ApiKey(key.to_owned());
        self.call_authorize(credential, permission, CredentialKind::ApiKey).await
    }

    /// Either of the above.
    pub async fn verify(&self, credential: &Credential, permission: &str) -> Result<Principal, Error> {
        match credential {
            Credential::Bearer(token) => self.verify_bearer(token, permission).await,
            Credential::ApiKey(key) => self.verify_api_key(key, permission).await,
        }
    }

    /// Verifies and enforces: a refusal is an error carrying Warden's code
    /// (`insufficient_permissions`, `policy_violation`, `access_denied`).
    pub async fn authorize(&self, credential: &Credential, permission: &str) -> Result<Principal, Error> {
        let principal = self.verify(credential, permission).await?;
        principal.ensure_allowed()?;
        Ok(principal)
    }

    async fn call_authorize(
        &self,
        credential: authorize_request::Credential,
        permission: &str,
        kind: CredentialKind,
    ) -> Result<Principal, Error> {
        let request = AuthorizeRequest { credential: Some(credential), permission: permission.to_owned() };
        // A status without Warden's ErrorInfo (connection refused, deadline) becomes
        // `unavailable`: the caller fails closed.
        let answer = self.inner.auth.clone().authorize(request).await.map_err(Error::from)?.into_inner();
        if answer.subject.is_empty() {
            return Err(Error::internal(anyhow::anyhow!("warden's authorize answer has no subject")));
        }
        let code = ErrorCode::parse(&answer.code);
        if !answer.allowed {
            tracing::debug!(subject = %answer.subject, permission, code = answer.code, "warden refused");
        }
        Ok(Principal {
            subject: answer.subject,
            credential: kind,
            session_id: None,
            decision: Decision {
                permission: permission.to_owned(),
                allowed: answer.allowed,
                reason: answer.reason,
                code,
            },
        })
    }
}

fn endpoint(url: String, options: &ClientOptions) -> Result<Endpoint, Error> {
    let endpoint = Endpoint::from_shared(url)
        .map_err(|e| Error::validation(format!("the warden grpc url is not valid: {e}")))?
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .tcp_nodelay(true);
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: Option<ErrorCode>) -> Principal {
        Principal {
            subject: "u".into(),
            credential: CredentialKind::Bearer,
            session_id: None,
            decision: Decision { permission: "items:write".into(), allowed: false, reason: "no".into(), code },
        }
    }

    #[test]
    fn refusals_keep_wardens_code_and_default_to_insufficient_permissions() {
        let e = refused(Some(ErrorCode::PolicyViolation)).ensure_allowed().unwrap_err();
        assert_eq!((e.code, e.detail.as_str()), (ErrorCode::PolicyViolation, "items:write is required"));
        assert_eq!(refused(None).ensure_allowed().unwrap_err().code, ErrorCode::InsufficientPermissions);
    }

    #[tokio::test]
    async fn an_unreachable_warden_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}");
        let e = WardenClient::connect(url.clone(), &url, ClientOptions::default()).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        let lazy = WardenClient::connect_lazy(url.clone(), &url, ClientOptions::default()).unwrap();
        let e = lazy.verify(&Credential::ApiKey("wdn_x".into()), "items:read").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        let e = WardenClient::connect_lazy("not a url", &url, ClientOptions::default()).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
    }
}
