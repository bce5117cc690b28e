//! Integration tests of the token service's gRPC edge: a real server on a socket and the
//! `RemoteTokens` client that split-mode callers use.
mod pair;
mod parse_props;
mod remote_verify;
mod support;
