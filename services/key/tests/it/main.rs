//! Integration tests of the key service: every behaviour runs on SQLite (embedded mode) and,
//! when `WARDEN_TEST_DATABASE_URL` and `WARDEN_TEST_REDIS_URL` are set, on PostgreSQL + Redis
//! with several replicas.
mod grpc;
mod keys;
mod logs;
mod rate_limit;
mod revocation;
mod support;
