//! What every handler can reach: the four services (local or remote) and settings.
use crate::throttle::ClientThrottle;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use warden_auth::SharedAuth;
use warden_key::SharedKeys;
use warden_rbac::SharedRbac;
use warden_token::SharedTokens;

/// The services the gateway translates REST into.
#[derive(Clone)]
pub struct Services {
    pub auth: SharedAuth,
    pub tokens: SharedTokens,
    pub keys: SharedKeys,
    pub rbac: SharedRbac,
}

/// Axum clones the state for every request, and the access middleware once more: one
/// reference count to bump, where cloning the fields took six counts and the issuer's
/// allocation (12 % of the CPU of a protected request, `perf`, session 8).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] holds, shared by every request.
pub struct Shared {
    pub auth: SharedAuth,
    pub tokens: SharedTokens,
    pub keys: SharedKeys,
    pub rbac: SharedRbac,
    pub issuer: String,
    pub metrics: Option<PrometheusHandle>,
    pub throttle: Arc<ClientThrottle>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(
        services: Services,
        issuer: String,
        metrics: Option<PrometheusHandle>,
        throttle: Arc<ClientThrottle>,
    ) -> Self {
        AppState(Arc::new(Shared {
            auth: services.auth,
            tokens: services.tokens,
            keys: services.keys,
            rbac: services.rbac,
            issuer,
            metrics,
            throttle,
        }))
    }
}
