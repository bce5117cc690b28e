//! The key service: API keys generated from the OS CSPRNG, stored as hashes, validated on
//! the hot path with a checksum, a row cache, constant-time comparison and a per-key rate
//! limit, and revoked on every replica at once.
pub mod api;
mod cache;
mod entity;
mod error;
mod format;
pub mod grpc;
mod hash;
mod input;
mod limiter;
pub mod migrations;
mod redis_state;
pub mod service;
mod usage;

pub use api::*;
pub use service::KeyService;
