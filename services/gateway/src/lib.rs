//! warden-gateway: the public REST API under `/api/v1`, translated into calls on the
//! auth, token, key and RBAC services (in-process or over gRPC).
mod access;
mod around;
mod escalation;
mod extract;
mod handlers;
mod metrics;
mod openapi;
mod problem;
pub mod routes;
mod state;
mod throttle;

pub use access::Access;
pub use metrics::recorder as metrics_recorder;
pub use openapi::DOCUMENT as OPENAPI_DOCUMENT;
pub use routes::{router, table};
pub use state::{AppState, Services, Shared};
pub use throttle::ClientThrottle;
