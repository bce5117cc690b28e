//! The key service's domain types and its one interface, implemented in-process by
//! [`crate::KeyService`] and over gRPC by [`crate::grpc::RemoteKeys`].
use time::OffsetDateTime;
use uuid::Uuid;
use warden_common::Result;
use warden_common::secret::Secret;

/// An API key as stored and listed: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    /// The public identifier at the start of the key (`wdn_<id>`), safe to show and log.
    pub prefix: String,
    /// Permissions the key is limited to (`resource:action`); empty means the owner's.
    pub scopes: Vec<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    /// Requests per minute; 0 = unlimited.
    pub rate_limit_per_minute: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApiKey {
    pub owner_id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    /// Seconds until expiry; `None` never expires.
    pub expires_in: Option<i64>,
    /// `None` or `Some(0)` = unlimited.
    pub rate_limit_per_minute: Option<u32>,
}

/// A new key together with its secret, which is never available again.
#[derive(Clone, Debug)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub secret: Secret,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedApiKey {
    pub key: ApiKey,
    /// Requests left in the current window; `u32::MAX` when the key is unlimited.
    pub rate_limit_remaining: u32,
}

#[async_trait::async_trait]
pub trait KeyApi: Send + Sync + 'static {
    async fn generate_api_key(&self, new: NewApiKey) -> Result<CreatedApiKey>;
    /// Checks format, checksum, hash, revocation and expiry, and consumes one unit of the
    /// key's rate limit.
    async fn validate_api_key(&self, key: &str) -> Result<ValidatedApiKey>;
    /// Revokes a key everywhere at once. With `owner`, a key of someone else is `not_found`.
    async fn revoke_api_key(&self, id: Uuid, owner: Option<Uuid>) -> Result<()>;
    /// The owner's keys, newest first, revoked ones included, without secrets.
    async fn list_api_keys(&self, owner: Uuid) -> Result<Vec<ApiKey>>;
    /// Whether the dependencies answer (readiness).
    async fn ready(&self) -> bool;
}

pub type SharedKeys = std::sync::Arc<dyn KeyApi>;
