//! warden-auth: passwords, login sessions, lockout, caller verification and users.
mod api;
mod argon;
mod argon_fill;
mod cache;
mod entity;
pub mod grpc;
mod hash_crowding;
mod hash_memory;
mod hash_pool;
mod mfa;
mod migrations;
pub mod password;
pub mod policy;
mod service;
pub mod store;
pub mod totp;
mod users;

pub use api::*;
pub use migrations::migrations;
pub use service::{AuthService, AuthSettings, Peers};
