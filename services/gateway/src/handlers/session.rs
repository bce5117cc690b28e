//! Login, refresh, logout and session management (design flows 1 and 3).
use crate::access::{Caller, unauthenticated};
use crate::extract::{Json, Path, credential};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use uuid::Uuid;
use warden_auth::{Credential, LogoutTarget, TokenPair};
use warden_common::secret::Secret;
use warden_common::timestamp::rfc3339;
use warden_common::{Error, ErrorCode};

#[derive(Deserialize)]
pub(crate) struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct TokenBody {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_expires_in: i64,
}

/// Token answers must never be cached (RFC 6749 §5.1).
pub(crate) fn no_store<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], axum::Json(body)).into_response()
}

pub(crate) fn tokens(pair: TokenPair) -> Response {
    no_store(
        StatusCode::OK,
        TokenBody {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
            refresh_expires_in: pair.refresh_expires_in,
        },
    )
}

/// Counts an attempt against the client's budget before anything else is done.
pub(crate) async fn throttle(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> ApiResult<()> {
    Ok(state.throttle.check(state.throttle.client(peer, headers)).await?)
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> ApiResult<Response> {
    throttle(&state, peer, &headers).await?;
    Ok(tokens(state.auth.login(&body.username, &Secret::new(body.password)).await?))
}

#[derive(Deserialize)]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

pub(crate) async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<RefreshBody>,
) -> ApiResult<Response> {
    throttle(&state, peer, &headers).await?;
    Ok(tokens(state.auth.refresh(&Secret::new(body.refresh_token)).await?))
}

#[derive(Deserialize)]
pub(crate) struct LogoutBody {
    #[serde(default, deserialize_with = "crate::extract::string_if_present")]
    refresh_token: Option<String>,
    #[serde(default)]
    all: bool,
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<LogoutBody>,
) -> ApiResult<StatusCode> {
    let target = match (body.all, body.refresh_token) {
        (true, _) => match credential(&headers)? {
            Some(Credential::AccessToken(token)) => LogoutTarget::AllSessions { access_token: token },
            Some(Credential::ApiKey(_)) => {
                return Err(Error::new(ErrorCode::AccessDenied, "logout of all sessions needs a bearer token").into());
            }
            None => return Err(unauthenticated()),
        },
        (false, Some(token)) => LogoutTarget::Session { refresh_token: Secret::new(token) },
        (false, None) => return Err(Error::validation("send refresh_token, or all: true with a bearer token").into()),
    };
    let bearer = matches!(target, LogoutTarget::AllSessions { .. });
    state.auth.logout(target).await.map_err(|e| {
        let e = ApiError::from(e);
        if bearer { e.presented() } else { e }
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct SessionBody {
    id: Uuid,
    created_at: String,
    expires_at: String,
    last_refreshed_at: String,
    current: bool,
}

pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    let Credential::AccessToken(token) = &caller.credential else { return Err(unauthenticated()) };
    let sessions = state.auth.list_sessions(token).await?;
    let items: Vec<SessionBody> = sessions
        .into_iter()
        .map(|s| SessionBody {
            id: s.id,
            created_at: rfc3339(s.created_at),
            expires_at: rfc3339(s.expires_at),
            last_refreshed_at: rfc3339(s.last_refreshed_at),
            current: s.current,
        })
        .collect();
    Ok(no_store(StatusCode::OK, serde_json::json!({ "items": items })))
}

pub(crate) async fn delete_session(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let Credential::AccessToken(token) = &caller.credential else { return Err(unauthenticated()) };
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("no such session"))?;
    state.auth.revoke_session(token, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password; the caller's session stays, every other one ends.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<ChangePasswordBody>,
) -> ApiResult<StatusCode> {
    let Credential::AccessToken(token) = &caller.credential else { return Err(unauthenticated()) };
    let (current, new) = (Secret::new(body.current_password), Secret::new(body.new_password));
    state.auth.change_password(token, &current, &new).await?;
    Ok(StatusCode::NO_CONTENT)
}
