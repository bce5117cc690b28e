//! API keys of the caller (design flow 2).
use crate::access::{self, Caller};
use crate::escalation;
use crate::extract::{Json, Path};
use crate::handlers::session::no_store;
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warden_auth::{Credential, NewKeyRequest};
use warden_common::Error;
use warden_common::timestamp::rfc3339;
use warden_key::{ApiKey, NewApiKey};

#[derive(Deserialize)]
pub(crate) struct CreateKeyBody {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default, deserialize_with = "crate::extract::integer")]
    expires_in: Option<i64>,
    #[serde(default, deserialize_with = "crate::extract::integer")]
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
    let created = match &caller.credential {
        Credential::AccessToken(token) => {
            let request = NewKeyRequest {
                name: body.name,
                scopes: body.scopes,
                expires_in: body.expires_in,
                rate_limit_per_minute: body.rate_limit_per_minute,
            };
            state.auth.create_api_key(token, request).await?
        }
        // A key may create keys only with keys:write, and never one broader than itself.
        Credential::ApiKey(_) => {
            access::require(&state, &caller, "keys:write").await?;
            let scopes = escalation::scopes_for_new_key(&state, &caller, body.scopes).await?;
            let created = state
                .keys
                .generate_api_key(NewApiKey {
                    owner_id: caller.principal.user_id,
                    name: body.name,
                    scopes,
                    expires_in: body.expires_in,
                    rate_limit_per_minute: body.rate_limit_per_minute,
                })
                .await?;
            tracing::info!(target: "audit", event = "api_key_created_by_key", user_id = %caller.principal.user_id, key_id = %created.key.id);
            created
        }
    };
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

/// Admin: any user's keys (`keys:admin`).
pub(crate) async fn admin_list(State(state): State<AppState>, Path(user): Path<String>) -> ApiResult<Response> {
    let user = Uuid::parse_str(&user).map_err(|_| Error::not_found("no such user"))?;
    let items: Vec<KeyBody> = state.keys.list_api_keys(user).await?.into_iter().map(KeyBody::from).collect();
    Ok(no_store(StatusCode::OK, serde_json::json!({ "items": items })))
}

/// Admin: revoke any key (`keys:admin`).
pub(crate) async fn admin_revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("no such api key"))?;
    state.keys.revoke_api_key(id, None).await?;
    tracing::info!(target: "audit", event = "api_key_revoked_by_admin", admin_id = %caller.principal.user_id, key_id = %id);
    Ok(StatusCode::NO_CONTENT)
}
