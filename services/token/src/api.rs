//! The token service's interface in domain terms. Callers hold a [`SharedTokens`]: the
//! local [`crate::TokenService`] in the all-in-one process, or [`crate::grpc::RemoteTokens`]
//! over gRPC in split mode.
use time::OffsetDateTime;
use uuid::Uuid;
use warden_common::Result;

/// Which kind of JWT; each has its own `typ` header so one is never accepted as the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    /// The JOSE `typ` header value (RFC 9068 for access tokens).
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Access => "at+jwt",
            TokenKind::Refresh => "rt+jwt",
        }
    }
}

#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub expires_at: OffsetDateTime,
    pub expires_in: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    pub subject: Uuid,
    pub session_id: Uuid,
    pub jti: String,
    pub kind: TokenKind,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub kid: String,
}

/// A public key as published in the JWKS (RFC 8037 OKP key).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

/// An access token and a refresh token for one session.
#[derive(Clone, Debug)]
pub struct IssuedPair {
    pub access: IssuedToken,
    pub refresh: IssuedToken,
}

/// Fixes a token's `jti` and `iat` so that issuing twice yields the same token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSeed {
    pub jti: String,
    pub issued_at: i64,
}

#[async_trait::async_trait]
pub trait TokenApi: Send + Sync + 'static {
    async fn generate_access_token(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        seed: Option<TokenSeed>,
    ) -> Result<IssuedToken>;
    /// `ttl`: lifetime in seconds; `None` means the configured refresh token TTL.
    async fn generate_refresh_token(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        ttl: Option<i64>,
        seed: Option<TokenSeed>,
    ) -> Result<IssuedToken>;
    /// Both tokens of a login or a refresh: the same as the two calls above (one round trip
    /// in split mode). `refresh_ttl` and the seeds as for those calls.
    async fn generate_token_pair(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        refresh_ttl: Option<i64>,
        access_seed: Option<TokenSeed>,
        refresh_seed: Option<TokenSeed>,
    ) -> Result<IssuedPair> {
        let refresh = self.generate_refresh_token(user_id, session_id, refresh_ttl, refresh_seed).await?;
        let access = self.generate_access_token(user_id, session_id, access_seed).await?;
        Ok(IssuedPair { access, refresh })
    }
    /// Checks signature, `alg`, `typ`, `kid`, `iss`, `aud`, `exp`, `nbf`. Not session liveness.
    async fn verify_token(&self, token: &str, kind: TokenKind) -> Result<VerifiedToken>;
    async fn jwks(&self) -> Result<Vec<Jwk>>;
    /// Makes a new signing key current and returns its `kid`.
    async fn rotate_signing_key(&self) -> Result<String>;
    async fn ready(&self) -> bool;
}

pub type SharedTokens = std::sync::Arc<dyn TokenApi>;
