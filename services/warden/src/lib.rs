//! The `warden` binary's library: process assembly, shared by `main` and the test harness.
pub mod app;
pub mod cli;
mod grpc_limits;
pub mod migrator;
pub mod role;

pub use app::{LocalServices, Warden};
pub use role::ServiceRole;
