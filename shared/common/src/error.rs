//! The one error-code table: every failure Warden reports has a stable `code` (SPEC §3), an
//! HTTP status and a gRPC status. Services return [`Error`]; the gRPC adapters turn it into a
//! `tonic::Status` carrying `google.rpc.ErrorInfo { reason: code }`, and callers (the gateway,
//! the remote clients) turn that back into the same [`Error`], so the mapping is one to one.
use std::fmt;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// Domain of the `google.rpc.ErrorInfo` Warden attaches to every error status.
pub const ERROR_DOMAIN: &str = "warden";

macro_rules! error_codes {
    ($($variant:ident => $code:literal, $http:literal, $grpc:ident, $title:literal;)*) => {
        /// A stable, documented error code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant),* }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The `code` string of the SPEC error table.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),* }
            }
            /// The HTTP status the gateway answers with.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $http),* }
            }
            /// The gRPC status code the services answer with.
            pub fn grpc_code(self) -> Code {
                match self { $(ErrorCode::$variant => Code::$grpc),* }
            }
            /// A short human title for problem+json.
            pub fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title),* }
            }
            pub fn parse(code: &str) -> Option<ErrorCode> {
                match code { $($code => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    InvalidCredentials => "invalid_credentials", 401, Unauthenticated, "invalid credentials";
    AccountLocked => "account_locked", 423, Unauthenticated, "account locked";
    AccountDisabled => "account_disabled", 403, PermissionDenied, "account disabled";
    TokenInvalid => "token_invalid", 401, Unauthenticated, "token invalid";
    TokenExpired => "token_expired", 401, Unauthenticated, "token expired";
    TokenRevoked => "token_revoked", 401, Unauthenticated, "token revoked";
    SessionExpired => "session_expired", 401, Unauthenticated, "session expired";
    MfaRequired => "mfa_required", 401, Unauthenticated, "second factor required";
    MfaInvalid => "mfa_invalid", 401, Unauthenticated, "second factor invalid";
    RefreshFailed => "refresh_failed", 401, Unauthenticated, "refresh failed";
    KeyInvalid => "key_invalid", 401, Unauthenticated, "api key invalid";
    KeyRevoked => "key_revoked", 401, Unauthenticated, "api key revoked";
    KeyExpired => "key_expired", 401, Unauthenticated, "api key expired";
    Unauthenticated => "unauthenticated", 401, Unauthenticated, "authentication required";
    RateLimited => "rate_limited", 429, ResourceExhausted, "rate limit exceeded";
    InsufficientPermissions => "insufficient_permissions", 403, PermissionDenied, "insufficient permissions";
    PolicyViolation => "policy_violation", 403, PermissionDenied, "policy violation";
    AccessDenied => "access_denied", 403, PermissionDenied, "access denied";
    RoleNotFound => "role_not_found", 404, NotFound, "role not found";
    NotFound => "not_found", 404, NotFound, "not found";
    ValidationError => "validation_error", 400, InvalidArgument, "invalid request";
    MethodNotAllowed => "method_not_allowed", 405, Unimplemented, "method not allowed";
    Conflict => "conflict", 409, AlreadyExists, "conflict";
    Unavailable => "unavailable", 503, Unavailable, "service unavailable";
    Internal => "internal", 500, Internal, "internal error";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Warden error: a stable code, a client-safe detail, and optional extras.
/// The `source` is for logs only and never leaves the process.
#[derive(Debug)]
pub struct Error {
    pub code: ErrorCode,
    pub detail: String,
    /// Seconds the client should wait (`Retry-After`).
    pub retry_after: Option<u64>,
    /// Extra machine-readable fields (e.g. `mfa_token`), carried in ErrorInfo metadata.
    pub extra: Vec<(String, String)>,
    source: Option<anyhow::Error>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Error { code, detail: detail.into(), retry_after: None, extra: Vec::new(), source: None }
    }
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }
    pub fn with_extra(mut self, key: &str, value: impl Into<String>) -> Self {
        self.extra.push((key.to_owned(), value.into()));
        self
    }
    pub fn extra(&self, key: &str) -> Option<&str> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    pub fn validation(detail: impl Into<String>) -> Self {
        Error::new(ErrorCode::ValidationError, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Error::new(ErrorCode::NotFound, detail)
    }
    /// A dependency failed: fail closed with 503. The cause is kept for the log.
    pub fn unavailable(what: &str, source: impl Into<anyhow::Error>) -> Self {
        let mut e = Error::new(ErrorCode::Unavailable, format!("{what} is unavailable"));
        e.retry_after = Some(1);
        e.source = Some(source.into());
        e
    }
    /// A bug: the client learns nothing; the cause goes to the log.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut e = Error::new(ErrorCode::Internal, "internal error");
        e.source = Some(source.into());
        e
    }
    pub fn source_chain(&self) -> Option<String> {
        self.source.as_ref().map(|s| format!("{s:#}"))
    }

    /// Logs server-side faults with their cause; client errors are the caller's business.
    pub fn log_if_server_fault(&self) {
        if matches!(self.code, ErrorCode::Internal | ErrorCode::Unavailable) {
            tracing::error!(code = %self.code, cause = self.source_chain().unwrap_or_default(), "request failed");
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Error {}

impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        Error::unavailable("database", e)
    }
}

impl From<fred::error::Error> for Error {
    fn from(e: fred::error::Error) -> Self {
        Error::unavailable("redis", e)
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        e.log_if_server_fault();
        let mut metadata = std::collections::HashMap::new();
        if let Some(s) = e.retry_after {
            metadata.insert("retry_after".to_owned(), s.to_string());
        }
        for (k, v) in &e.extra {
            metadata.insert(k.clone(), v.clone());
        }
        let details = ErrorDetails::with_error_info(e.code.as_str(), ERROR_DOMAIN, metadata);
        tonic::Status::with_error_details(e.code.grpc_code(), e.detail, details)
    }
}

impl From<tonic::Status> for Error {
    /// Maps a status from a Warden peer back through ErrorInfo; a status without it (a
    /// transport failure, a peer that is down) is treated as the dependency being unavailable.
    fn from(status: tonic::Status) -> Self {
        let info = status.get_details_error_info();
        match info.as_ref().and_then(|i| ErrorCode::parse(&i.reason)) {
            Some(code) => {
                let info = info.expect("parsed above");
                let mut e = Error::new(code, status.message());
                for (k, v) in info.metadata {
                    if k == "retry_after" {
                        e.retry_after = v.parse().ok();
                    } else {
                        e.extra.push((k, v));
                    }
                }
                e
            }
            None => match status.code() {
                Code::InvalidArgument => Error::validation(status.message()),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                    Error::unavailable("a backend service", anyhow::anyhow!("{status}"))
                }
                _ => Error::internal(anyhow::anyhow!("{status}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_grpc() {
        for &code in ErrorCode::ALL {
            let e = Error::new(code, "detail").with_retry_after(7).with_extra("mfa_token", "t");
            let status: tonic::Status = e.into();
            assert_eq!(status.code(), code.grpc_code());
            let back = Error::from(status);
            assert_eq!(back.code, code);
            assert_eq!(back.retry_after, Some(7));
            assert_eq!(back.extra("mfa_token"), Some("t"));
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
    }

    #[test]
    fn transport_failures_become_unavailable() {
        let e = Error::from(tonic::Status::unavailable("connection refused"));
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(e.code.http_status(), 503);
    }
}
