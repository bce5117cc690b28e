//! Discovery and operations: JWKS, OIDC discovery, health, readiness, metrics, OpenAPI.
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use warden_common::{Error, ErrorCode};

pub(crate) async fn jwks(State(state): State<AppState>) -> ApiResult<Response> {
    let keys = state.tokens.jwks().await?;
    // Short public caching: rotation publishes the new key before it signs anything.
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], axum::Json(serde_json::json!({ "keys": keys })))
        .into_response())
}

pub(crate) async fn openid_configuration(State(state): State<AppState>) -> Response {
    let issuer = state.issuer.trim_end_matches('/');
    axum::Json(serde_json::json!({
        "issuer": state.issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": format!("{issuer}/api/v1/auth/login"),
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid"],
    }))
    .into_response()
}

pub(crate) async fn healthz() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Ready only when every service (and through them the database and Redis) answers.
pub(crate) async fn readyz(State(state): State<AppState>) -> ApiResult<Response> {
    let (auth, tokens, keys, rbac) =
        tokio::join!(state.auth.ready(), state.tokens.ready(), state.keys.ready(), state.rbac.ready());
    let checks = serde_json::json!({ "auth": auth, "token": tokens, "key": keys, "rbac": rbac });
    if auth && tokens && keys && rbac {
        Ok(axum::Json(serde_json::json!({ "status": "ready", "checks": checks })).into_response())
    } else {
        let mut e = Error::new(ErrorCode::Unavailable, format!("not ready: {checks}"));
        e.retry_after = Some(1);
        Err(e.into())
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => crate::problem::ApiError::from(Error::new(ErrorCode::Unavailable, "metrics are not available"))
            .into_response(),
    }
}

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::DOCUMENT).into_response()
}
