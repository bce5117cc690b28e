//! Integration tests of warden-rbac, compiled into one binary. Each behaviour runs on SQLite,
//! on PostgreSQL (when `WARDEN_TEST_DATABASE_URL` is set) and through gRPC.
mod checks;
mod grpc;
mod harness;
mod matcher_props;
mod migrations;
mod replicas;
mod roles;
