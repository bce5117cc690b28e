//! Integration tests of the token service's gRPC edge: a real server on a socket and the
//! `RemoteTokens` client that split-mode callers use.
mod remote_verify;
mod support;
