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

#[derive(Clone)]
pub struct AppState {
    pub auth: SharedAuth,
    pub tokens: SharedTokens,
    pub keys: SharedKeys,
    pub rbac: SharedRbac,
    pub issuer: String,
    pub metrics: Option<PrometheusHandle>,
    pub throttle: Arc<ClientThrottle>,
}

impl AppState {
    pub fn new(
        services: Services,
        issuer: String,
        metrics: Option<PrometheusHandle>,
        throttle: Arc<ClientThrottle>,
    ) -> Self {
        AppState {
            auth: services.auth,
            tokens: services.tokens,
            keys: services.keys,
            rbac: services.rbac,
            issuer,
            metrics,
            throttle,
        }
    }
}
