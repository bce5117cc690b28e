//! An inventory service protected by Warden through `warden-client`: `GET /items` needs
//! `items:read`, `POST /items` needs `items:write`, `/health` is public. Everything Warden
//! asks of a service is the two `RequirePermission` layers and the `Authenticated` argument.
use axum::extract::State;
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use warden_client::{Authenticated, Error, Rejection, RequirePermission, WardenClient};

/// Longest item name, in characters.
const MAX_NAME_CHARS: usize = 200;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Item {
    pub id: u64,
    pub name: String,
    /// The Warden user id of whoever added it.
    pub added_by: String,
}

#[derive(Deserialize)]
pub struct NewItem {
    pub name: String,
}

#[derive(Default)]
struct Inventory {
    items: Mutex<Vec<Item>>,
}

type Shared = Arc<Inventory>;

/// The service's routes, guarded by `warden`.
pub fn router(warden: &WardenClient) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/items",
            get(list.layer(RequirePermission::new(warden, "items:read")))
                .post(add.layer(RequirePermission::new(warden, "items:write"))),
        )
        .with_state(Shared::default())
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn list(State(inventory): State<Shared>, caller: Authenticated) -> Json<Vec<Item>> {
    tracing::debug!(subject = caller.subject(), "listing items");
    Json(inventory.items.lock().expect("inventory lock").clone())
}

async fn add(
    State(inventory): State<Shared>,
    caller: Authenticated,
    Json(new): Json<NewItem>,
) -> Result<(StatusCode, Json<Item>), Rejection> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::validation(format!("name must be 1 to {MAX_NAME_CHARS} characters")).into());
    }
    let mut items = inventory.items.lock().expect("inventory lock");
    let item = Item { id: items.len() as u64 + 1, name: name.to_owned(), added_by: caller.subject().to_owned() };
    items.push(item.clone());
    Ok((StatusCode::CREATED, Json(item)))
}
