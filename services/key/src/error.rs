//! The key service's own failures, mapped into the shared error-code table.
use warden_common::{Error, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// Malformed, bad checksum, unknown id or wrong secret: one answer for all of them.
    #[error("api key invalid")]
    Invalid,
    #[error("api key revoked")]
    Revoked,
    #[error("api key expired")]
    Expired,
    #[error("api key rate limit exceeded")]
    RateLimited { retry_after: u64 },
    #[error("api key not found")]
    NotFound,
    #[error("{0}")]
    Validation(String),
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        let code = match &e {
            KeyError::Invalid => ErrorCode::KeyInvalid,
            KeyError::Revoked => ErrorCode::KeyRevoked,
            KeyError::Expired => ErrorCode::KeyExpired,
            KeyError::RateLimited { .. } => ErrorCode::RateLimited,
            KeyError::NotFound => ErrorCode::NotFound,
            KeyError::Validation(_) => ErrorCode::ValidationError,
        };
        let error = Error::new(code, e.to_string());
        match e {
            KeyError::RateLimited { retry_after } => error.with_retry_after(retry_after),
            _ => error,
        }
    }
}
