//! axum: [`RequirePermission`], a tower layer that authenticates every request and enforces
//! one permission, and [`Authenticated`], the extractor that hands the caller to handlers.
//! Refusals are RFC 9457 problem documents with Warden's `code`, the status of Warden's error
//! table, `WWW-Authenticate` on 401 and on permission refusals, and `Retry-After` on 429/503.
//! Every failure refuses: when Warden cannot be asked, the answer is 503, never a pass.
use crate::client::{Principal, WardenClient};
use crate::credential::{Credential, CredentialKind};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};
use warden_common::{Error, ErrorCode};

/// The media type of every refusal.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A refused request, ready to become a problem+json response.
#[derive(Debug)]
pub struct Rejection {
    pub error: Error,
    /// A bearer token was presented, so a 401 says `error="invalid_token"`.
    pub token_presented: bool,
    realm: Arc<str>,
}

impl Rejection {
    pub fn new(error: Error, realm: &str) -> Self {
        Rejection { error, token_presented: false, realm: realm.into() }
    }

    fn challenge(&self, error: Option<&str>) -> HeaderValue {
        let realm = self.realm.replace(['"', '\\'], "");
        let value = match error {
            Some(error) => format!(r#"Bearer realm="{realm}", error="{error}""#),
            None => format!(r#"Bearer realm="{realm}""#),
        };
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(r#"Bearer realm="warden""#))
    }
}

impl From<Error> for Rejection {
    fn from(error: Error) -> Self {
        Rejection::new(error, "warden")
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let e = &self.error;
        e.log_if_server_fault();
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let problem = Problem {
            kind: format!("urn:warden:problem:{}", e.code),
            title: e.code.title(),
            status: status.as_u16(),
            detail: &e.detail,
            code: e.code.as_str(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            let error = self.token_presented.then_some("invalid_token");
            headers.insert(header::WWW_AUTHENTICATE, self.challenge(error));
        }
        if matches!(e.code, ErrorCode::InsufficientPermissions | ErrorCode::PolicyViolation | ErrorCode::AccessDenied) {
            headers.insert(header::WWW_AUTHENTICATE, self.challenge(Some("insufficient_scope")));
        }
        if let Some(seconds) = e.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(policy) = e.extra("ratelimit_policy").and_then(|p| HeaderValue::from_str(p).ok()) {
            headers.insert(HeaderName::from_static("ratelimit-policy"), policy);
        }
        (status, headers, serde_json::to_vec(&problem).unwrap_or_default()).into_response()
    }
}

/// Authenticates the request's credential and decides `permission`; the refusal, if any,
/// is ready to send.
pub async fn authorize_headers(
    client: &WardenClient,
    headers: &HeaderMap,
    permission: &str,
) -> Result<Principal, Rejection> {
    let realm = client.options().realm.as_str();
    let credential = match Credential::from_headers(headers) {
        Ok(Some(credential)) => credential,
        Ok(None) => {
            return Err(Rejection::new(Error::new(ErrorCode::Unauthenticated, "authentication is required"), realm));
        }
        Err(e) => {
            let presented = e.code == ErrorCode::TokenInvalid;
            return Err(Rejection { token_presented: presented, ..Rejection::new(e, realm) });
        }
    };
    client.authorize(&credential, permission).await.map_err(|e| {
        let presented = credential.kind() == CredentialKind::Bearer && e.code.http_status() == 401;
        Rejection { token_presented: presented, ..Rejection::new(e, realm) }
    })
}

/// A tower layer for axum routes and handlers: only callers Warden allows `permission` get
/// through, and the handler finds the [`Principal`] in the request extensions (or takes it
/// with [`Authenticated`]).
///
/// See the crate-level example and `examples/inventory`.
#[derive(Clone, Debug)]
pub struct RequirePermission {
    client: WardenClient,
    permission: Arc<str>,
}

impl RequirePermission {
    pub fn new(client: &WardenClient, permission: &str) -> Self {
        RequirePermission { client: client.clone(), permission: permission.into() }
    }
}

impl<S> Layer<S> for RequirePermission {
    type Service = RequirePermissionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermissionService { inner, client: self.client.clone(), permission: self.permission.clone() }
    }
}

/// The service [`RequirePermission`] wraps around a route.
#[derive(Clone, Debug)]
pub struct RequirePermissionService<S> {
    inner: S,
    client: WardenClient,
    permission: Arc<str>,
}

impl<S> Service<Request> for RequirePermissionService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (client, permission) = (self.client.clone(), self.permission.clone());
        Box::pin(async move {
            match authorize_headers(&client, request.headers(), &permission).await {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}

/// The caller of a route behind [`RequirePermission`].
///
/// On a route without the layer there is no caller to give: the extractor answers 500 (and
/// logs why) rather than run the handler unauthenticated.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// The caller's user id.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }
}

impl std::ops::Deref for Authenticated {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(principal) => Ok(Authenticated(principal.clone())),
            None => Err(Rejection::from(Error::internal(anyhow::anyhow!(
                "Authenticated used on a route that is not behind RequirePermission"
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parts(rejection: Rejection) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = rejection.into_response();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 4096).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn every_code_becomes_a_problem_with_its_status() {
        for &code in ErrorCode::ALL {
            let (status, headers, body) = parts(Rejection::from(Error::new(code, "detail"))).await;
            assert_eq!(status.as_u16(), code.http_status(), "{code}");
            assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
            assert_eq!(body["code"], code.as_str());
            assert_eq!(body["status"], code.http_status());
            assert_eq!(body["type"], format!("urn:warden:problem:{code}"));
        }
    }

    #[tokio::test]
    async fn challenges_follow_the_spec() {
        let (_, headers, _) = parts(Rejection::new(Error::new(ErrorCode::Unauthenticated, "x"), "inventory")).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], r#"Bearer realm="inventory""#);
        let presented =
            Rejection { token_presented: true, ..Rejection::from(Error::new(ErrorCode::TokenRevoked, "x")) };
        let (_, headers, _) = parts(presented).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], r#"Bearer realm="warden", error="invalid_token""#);
        let (_, headers, _) = parts(Rejection::from(Error::new(ErrorCode::AccessDenied, "x"))).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], r#"Bearer realm="warden", error="insufficient_scope""#);
        let (status, headers, _) = parts(Rejection::from(Error::unavailable("warden", anyhow::anyhow!("down")))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
    }

    #[tokio::test]
    async fn the_extractor_refuses_without_the_layer() {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        let rejection = Authenticated::from_request_parts(&mut parts, &()).await.unwrap_err();
        assert_eq!(rejection.error.code, ErrorCode::Internal);
    }
}
