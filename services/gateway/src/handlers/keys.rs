//! API keys of the caller (design flow 2).
use crate::access::{Caller, unauthenticated};
use crate::extract::Json;
use crate::handlers::session::no_store;
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warden_auth::{Credential, NewKeyRequest};
use warden_common::Error;
use warden_common::timestamp::rfc3339;
use warden_key::ApiKey;

#[derive(Deserialize)]
pub(crate) struct CreateKeyBody {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    expires_in: Option<i64>,
    rate_limit_per_minute: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct KeyBody {
    id: Uuid,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    expires_at: Option<String>,
    rate_limit_per_minute: u32,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
    /// Present only in the creation answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl From<ApiKey> for KeyBody {
    fn from(k: ApiKey) -> Self {
        KeyBody {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            expires_at: k.expires_at.map(rfc3339),
            rate_limit_per_minute: k.rate_limit_per_minute,
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
            key: None,
        }
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<CreateKeyBody>,
) -> ApiResult<Response> {
    let Credential::AccessToken(token) = &caller.credential else { return Err(unauthenticated()) };
    let request = NewKeyRequest {
        name: body.name,
        scopes: body.scopes,
        expires_in: body.expires_in,
        rate_limit_per_minute: body.rate_limit_per_minute,
    };
    let created = state.auth.create_api_key(token, request).await?;
    let mut answer = KeyBody::from(created.key);
    answer.key = Some(created.secret.expose().to_owned());
    Ok(no_store(StatusCode::CREATED, answer))
}

pub(crate) async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> ApiResult<Response> {
    let keys = state.keys.list_api_keys(caller.principal.user_id).await?;
    let items: Vec<KeyBody> = keys.into_iter().map(KeyBody::from).collect();
    Ok(no_store(StatusCode::OK, serde_json::json!({ "items": items })))
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("no such api key"))?;
    state.keys.revoke_api_key(id, Some(caller.principal.user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
