//! Warden for internal services, in a few lines.
//!
//! ```no_run
//! use axum::{Router, handler::Handler, routing::get};
//! use warden_client::{Authenticated, ClientOptions, RequirePermission, WardenClient};
//!
//! async fn list(caller: Authenticated) -> String {
//!     format!("items of {}", caller.subject())
//! }
//!
//! # async fn run() -> Result<(), warden_client::Error> {
//! let options = ClientOptions::new("https://auth.example.com", "warden");
//! let warden = WardenClient::connect("http://warden-auth:50051", "http://warden-gateway:8080", options).await?;
//! let app: Router = Router::new()
//!     .route("/items", get(list.layer(RequirePermission::new(&warden, "items:read"))))
//!     .route("/health", get(|| async { "ok" }));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! - [`WardenClient`]: `verify_bearer` (local check against the cached, auto-refreshed JWKS,
//!   then the live-session check and the permission decision in one `AuthService.Authorize`
//!   call), `verify_api_key`, `authorize` (enforcing), and the generated AuthService client.
//! - axum: the [`RequirePermission`] layer and the [`Authenticated`] extractor; refusals are
//!   problem+json with Warden's `code` ([`Rejection`]).
//! - tonic: the [`GrpcAuthLayer`] async interceptor; refusals are `tonic::Status` carrying
//!   Warden's `google.rpc.ErrorInfo`.
//!
//! Everything fails closed: when Warden cannot be asked, the request is refused with 503
//! (`UNAVAILABLE` over gRPC). Nothing about sessions or decisions is cached, so a logout, a
//! revoked key or a removed role takes effect on the next request.
mod client;
mod credential;
pub mod grpc;
pub mod http;
mod jwks;
mod options;

pub use client::{Decision, Principal, WardenClient};
pub use credential::{Credential, CredentialKind};
pub use grpc::GrpcAuthLayer;
pub use http::{Authenticated, Rejection, RequirePermission};
pub use jwks::{LEEWAY_SECONDS, MAX_TOKEN_BYTES, TokenClaims};
pub use options::ClientOptions;
pub use warden_common::{Error, ErrorCode};
