//! `warden-rbac`: roles, permissions, inheritance and user-role assignments, and the
//! permission decisions built on them (SPEC §3 "Permissions").
//!
//! [`RbacService`] implements [`RbacApi`] on the database; [`grpc`] serves it and provides the
//! remote client; [`matcher`] is the pure matching logic; [`migrations()`] creates the tables
//! and the built-in `admin` role.
pub mod api;
pub mod grpc;
pub mod matcher;
pub mod migrations;
pub mod service;

mod cache;
mod decision;
mod epoch;
mod graph;
mod store;
mod validate;

pub use api::*;
pub use migrations::migrations;
pub use service::RbacService;
