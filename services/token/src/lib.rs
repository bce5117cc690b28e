//! warden-token: signs and verifies Warden's JWTs (EdDSA) and owns the signing keys.
mod api;
mod cache;
mod entity;
pub mod grpc;
mod jwks_keys;
mod jwt;
mod keyring;
mod keyset;
mod migrations;
mod service;
mod signing_key;
mod verifier;

pub use api::{IssuedPair, IssuedToken, Jwk, SharedTokens, TokenApi, TokenKind, TokenSeed, VerifiedToken};
pub use jwt::{LEEWAY_SECONDS, MAX_TOKEN_BYTES};
pub use migrations::migrations;
pub use service::{TokenService, TokenSettings};
