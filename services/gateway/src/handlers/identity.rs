//! Who am I, may I: `/me`, `/authorize` and the forward-auth `/verify` (design flow 4).
use crate::access::{self, Caller};
use crate::extract::{Json, Query};
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warden_common::Error;

#[derive(Serialize)]
struct MeBody {
    id: Uuid,
    username: String,
    roles: Vec<String>,
    permissions: Vec<String>,
}

pub(crate) async fn me(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> ApiResult<Response> {
    let p = &caller.principal;
    let roles = state.rbac.get_user_roles(p.user_id).await?;
    let permissions = match p.scopes() {
        None => roles.permissions,
        Some(scopes) => key_permissions(&state, p.user_id, roles.permissions, scopes).await?,
    };
    let body = MeBody { id: p.user_id, username: p.username.clone(), roles: roles.roles, permissions };
    Ok(crate::handlers::session::no_store(StatusCode::OK, body))
}

/// What a scoped key may do: the owner's grants and the key's scopes that hold under both
/// (scopes ∩ the owner's permissions), plus the owner's denies, which still apply.
async fn key_permissions(
    state: &AppState,
    user: Uuid,
    owner: Vec<String>,
    scopes: &[String],
) -> ApiResult<Vec<String>> {
    let (denies, grants): (Vec<String>, Vec<String>) = owner.into_iter().partition(|p| p.starts_with('!'));
    let mut candidates: Vec<String> =
        grants.into_iter().chain(scopes.iter().filter(|s| !s.starts_with('!')).cloned()).collect();
    candidates.sort();
    candidates.dedup();
    if candidates.is_empty() {
        return Ok(denies);
    }
    let decisions = state.rbac.check_permissions(user, &candidates, Some(scopes)).await?;
    let mut effective: Vec<String> = decisions.into_iter().filter(|d| d.allowed).map(|d| d.permission).collect();
    effective.extend(denies);
    Ok(effective)
}

#[derive(Deserialize)]
pub(crate) struct AuthorizeBody {
    permission: String,
}

#[derive(Serialize)]
struct AuthorizeAnswer {
    allowed: bool,
    subject: Uuid,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
}

pub(crate) async fn authorize(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<AuthorizeBody>,
) -> ApiResult<Response> {
    let p = &caller.principal;
    let decisions = state.rbac.check_permissions(p.user_id, std::slice::from_ref(&body.permission), p.scopes()).await?;
    let d =
        decisions.into_iter().next().ok_or_else(|| Error::internal(anyhow::anyhow!("rbac answered no decision")))?;
    if !d.allowed {
        tracing::info!(target: "audit", event = "access_denied", user_id = %p.user_id, permission = %body.permission, reason = %d.reason);
    }
    let answer =
        AuthorizeAnswer { allowed: d.allowed, subject: p.user_id, reason: d.reason, code: d.code.map(|c| c.as_str()) };
    Ok(crate::handlers::session::no_store(StatusCode::OK, answer))
}

#[derive(Deserialize)]
pub(crate) struct VerifyQuery {
    permission: Option<String>,
}

/// Forward-auth for nginx `auth_request`, Traefik and Envoy: 200 with `X-Warden-Subject`,
/// 401 or 403. Without `permission` it only authenticates.
pub(crate) async fn verify(
    State(state): State<AppState>,
    Query(q): Query<VerifyQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let caller = access::authenticate(&state, &headers).await?.ok_or_else(access::unauthenticated)?;
    if let Some(permission) = q.permission.as_deref() {
        access::require(&state, &caller, permission).await?;
    }
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(
        "x-warden-subject",
        HeaderValue::from_str(&caller.principal.user_id.to_string()).expect("uuid is ascii"),
    );
    if let Ok(name) = HeaderValue::from_str(&caller.principal.username) {
        headers.insert("x-warden-username", name);
    }
    headers.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
