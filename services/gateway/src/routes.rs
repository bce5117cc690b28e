//! The route table: every REST route with the access it needs, in one place. The router is
//! built from this table only, so a route cannot exist without a declared access.
use crate::access::{Access, Enforce};
use crate::around::AroundLayer;
use crate::handlers::{admin, docs, identity, keys, mfa, ops, session};
use crate::problem::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use warden_common::{Error, ErrorCode};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &'static str, access: Access, handler: MethodRouter<AppState>) -> Route {
    Route { method, path, access, handler }
}

const BEARER: Access = Access::Authenticated { api_keys: false };
const ANY_CALLER: Access = Access::Authenticated { api_keys: true };

/// Every route of the gateway.
pub fn table() -> Vec<Route> {
    use Access::{Permission, Public};
    use Method as M;
    vec![
        route(M::POST, "/api/v1/auth/login", Public, post(session::login)),
        route(M::POST, "/api/v1/auth/login/mfa", Public, post(mfa::login)),
        route(M::POST, "/api/v1/auth/refresh", Public, post(session::refresh)),
        // Logout authenticates by the refresh token in the body or the bearer for `all`.
        route(M::POST, "/api/v1/auth/logout", Public, post(session::logout)),
        route(M::GET, "/api/v1/auth/me", ANY_CALLER, get(identity::me)),
        route(M::GET, "/api/v1/auth/sessions", BEARER, get(session::list_sessions)),
        route(M::DELETE, "/api/v1/auth/sessions/{id}", BEARER, delete(session::delete_session)),
        route(M::POST, "/api/v1/auth/api-key", ANY_CALLER, post(keys::create)),
        route(M::GET, "/api/v1/auth/api-keys", BEARER, get(keys::list)),
        route(M::DELETE, "/api/v1/auth/api-keys/{id}", BEARER, delete(keys::revoke)),
        route(M::POST, "/api/v1/auth/authorize", ANY_CALLER, post(identity::authorize)),
        route(M::POST, "/api/v1/auth/password", BEARER, post(session::change_password)),
        route(M::POST, "/api/v1/auth/mfa/totp", BEARER, post(mfa::enroll)),
        route(M::POST, "/api/v1/auth/mfa/totp/confirm", BEARER, post(mfa::confirm)),
        route(M::DELETE, "/api/v1/auth/mfa/totp", BEARER, delete(mfa::disable)),
        // Forward-auth answers 401/403 itself, with its own permission from the query.
        route(M::GET, "/api/v1/auth/verify", Public, get(identity::verify)),
        route(M::POST, "/api/v1/admin/users", Permission("users:write"), post(admin::create_user)),
        route(M::GET, "/api/v1/admin/users/{id}", Permission("users:read"), get(admin::get_user)),
        route(M::PATCH, "/api/v1/admin/users/{id}", Permission("users:write"), patch(admin::patch_user)),
        route(M::POST, "/api/v1/admin/users/{id}/password", Permission("users:write"), post(admin::reset_password)),
        route(M::DELETE, "/api/v1/admin/users/{id}/mfa", Permission("users:write"), delete(mfa::admin_remove)),
        route(M::POST, "/api/v1/admin/roles", Permission("roles:write"), post(admin::create_role)),
        route(M::GET, "/api/v1/admin/roles", Permission("roles:read"), get(admin::list_roles)),
        route(M::DELETE, "/api/v1/admin/roles/{name}", Permission("roles:write"), delete(admin::delete_role)),
        route(M::PUT, "/api/v1/admin/users/{id}/roles/{role}", Permission("roles:write"), put(admin::assign_role)),
        route(
            M::DELETE,
            "/api/v1/admin/users/{id}/roles/{role}",
            Permission("roles:write"),
            delete(admin::unassign_role),
        ),
        route(M::GET, "/api/v1/admin/users/{id}/api-keys", Permission("keys:admin"), get(keys::admin_list)),
        route(M::DELETE, "/api/v1/admin/api-keys/{id}", Permission("keys:admin"), delete(keys::admin_revoke)),
        route(M::GET, "/.well-known/jwks.json", Public, get(ops::jwks)),
        route(M::GET, "/.well-known/openid-configuration", Public, get(ops::openid_configuration)),
        route(M::GET, "/healthz", Public, get(ops::healthz)),
        route(M::GET, "/readyz", Public, get(ops::readyz)),
        route(M::GET, "/metrics", Public, get(ops::metrics)),
        route(M::GET, "/api/v1/openapi.json", Public, get(ops::openapi)),
        route(M::GET, "/api/v1/docs", Public, get(docs::page)),
        route(M::GET, "/api/v1/docs/app.js", Public, get(docs::script)),
        route(M::GET, "/api/v1/docs/app.css", Public, get(docs::style)),
    ]
}

/// The whole REST application.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for r in table() {
        let guarded = r.handler.route_layer(AroundLayer(Enforce::new(state.clone(), r.access)));
        router = router.route(r.path, guarded);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(AroundLayer(crate::metrics::Track))
        .with_state(state)
}

async fn not_found() -> ApiError {
    Error::not_found("no such route").into()
}

async fn method_not_allowed() -> ApiError {
    Error::new(ErrorCode::MethodNotAllowed, "method not allowed on this route").into()
}
