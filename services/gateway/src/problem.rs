//! Errors as RFC 9457 problem documents, with the headers SPEC §3 asks for:
//! `WWW-Authenticate` on 401 and insufficient-scope 403, `Retry-After` on 423/429/503.
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use warden_common::{Error, ErrorCode};

pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<&'a str>,
}

/// An error on its way to the client. `token_presented` picks the right challenge.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub error: Error,
    pub status: Option<StatusCode>,
    pub token_presented: bool,
}

impl ApiError {
    pub(crate) fn with_status(error: Error, status: StatusCode) -> Self {
        ApiError { error, status: Some(status), token_presented: false }
    }
    pub(crate) fn presented(mut self) -> Self {
        self.token_presented = true;
        self
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError { error, status: None, token_presented: false }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = &self.error;
        e.log_if_server_fault();
        let status = self
            .status
            .unwrap_or_else(|| StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
        let body = Problem {
            kind: format!("urn:warden:problem:{}", e.code),
            title: e.code.title(),
            status: status.as_u16(),
            detail: &e.detail,
            code: e.code.as_str(),
            mfa_token: e.extra("mfa_token"),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if self.token_presented {
                r#"Bearer realm="warden", error="invalid_token""#
            } else {
                r#"Bearer realm="warden""#
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if matches!(e.code, ErrorCode::InsufficientPermissions | ErrorCode::PolicyViolation | ErrorCode::AccessDenied) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="warden", error="insufficient_scope""#),
            );
        }
        if let Some(seconds) = e.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(policy) = e.extra("ratelimit_policy").and_then(|p| HeaderValue::from_str(p).ok()) {
            headers.insert(HeaderName::from_static("ratelimit-policy"), policy);
        }
        let body = serde_json::to_vec(&body).unwrap_or_default();
        (status, headers, body).into_response()
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
