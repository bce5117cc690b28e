//! End-to-end tests through REST and gRPC, on SQLite and on PostgreSQL + Redis.
mod api_keys;
mod faults;
mod flood;
mod grpc;
mod input;
mod jwt;
mod keys_rotation;
mod lockout;
mod login;
mod mfa;
mod outages;
mod password;
mod rbac;
mod refresh;
mod replicas;
mod split;
mod throttle;
