//! End-to-end tests through REST and gRPC, on SQLite and on PostgreSQL + Redis.
mod grpc;
mod input;
mod jwt;
mod lockout;
mod login;
mod split;
