//! The TOTP second factor over REST: enrolment, activation, removal, the second login
//! step, and admin removal.
use crate::access::{Caller, unauthenticated};
use crate::escalation;
use crate::extract::{Json, Path};
use crate::handlers::session::{no_store, throttle, tokens};
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use uuid::Uuid;
use warden_auth::Credential;
use warden_common::Error;
use warden_common::secret::Secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MfaLoginBody {
    mfa_token: String,
    code: String,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<MfaLoginBody>,
) -> ApiResult<Response> {
    throttle(&state, peer, &headers).await?;
    Ok(tokens(state.auth.complete_mfa_login(&Secret::new(body.mfa_token), &body.code).await?))
}

fn bearer(caller: &Caller) -> ApiResult<&Secret> {
    match &caller.credential {
        Credential::AccessToken(token) => Ok(token),
        Credential::ApiKey(_) => Err(unauthenticated()),
    }
}

#[derive(Serialize)]
struct EnrollmentBody {
    secret: String,
    otpauth_uri: String,
    qr_svg: String,
}

pub(crate) async fn enroll(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> ApiResult<Response> {
    let e = state.auth.enroll_totp(bearer(&caller)?).await?;
    Ok(no_store(StatusCode::OK, EnrollmentBody { secret: e.secret, otpauth_uri: e.otpauth_uri, qr_svg: e.qr_svg }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeBody {
    code: String,
}

pub(crate) async fn confirm(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<CodeBody>,
) -> ApiResult<Response> {
    let recovery_codes = state.auth.confirm_totp(bearer(&caller)?, &body.code).await?;
    Ok(no_store(StatusCode::OK, serde_json::json!({ "recovery_codes": recovery_codes })))
}

pub(crate) async fn disable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<CodeBody>,
) -> ApiResult<StatusCode> {
    state.auth.disable_totp(bearer(&caller)?, &body.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Admin removal; like a password reset it weakens the account, so the caller must hold
/// what the user's roles grant.
pub(crate) async fn admin_remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("no such user"))?;
    let target = state.auth.get_user(id).await?;
    escalation::ensure_may_take_over(&state, &caller, &target.roles).await?;
    state.auth.remove_user_mfa(id).await?;
    tracing::warn!(target: "audit", event = "mfa_removed_by_admin", admin_id = %caller.principal.user_id, user_id = %id);
    Ok(StatusCode::NO_CONTENT)
}
