//! Common pieces of every Warden service: the error-code table, configuration, telemetry,
//! database and Redis connections, the clock, secret handling, gRPC plumbing and the
//! reloading of the request path's cached entries.
pub mod clock;
pub mod config;
pub mod db;
pub mod deadline;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod net;
pub mod redis;
pub mod reload;
pub mod sealing;
pub mod secret;
pub mod telemetry;
pub mod testing;
pub mod timestamp;
pub mod tls;

pub use config::Config;
pub use error::{Error, ErrorCode, Result};
