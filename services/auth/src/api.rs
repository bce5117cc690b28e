//! The auth service's interface in domain terms: the local [`crate::AuthService`] in the
//! all-in-one process, [`crate::grpc::RemoteAuth`] in split mode.
use time::OffsetDateTime;
use uuid::Uuid;
use warden_common::secret::Secret;
use warden_common::{ErrorCode, Result};
use warden_key::CreatedApiKey;

#[derive(Clone, Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub refresh_expires_in: i64,
}

/// How a caller proves who it is.
#[derive(Clone, Debug)]
pub enum Credential {
    AccessToken(Secret),
    ApiKey(Secret),
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub username: String,
    /// Set for bearer tokens.
    pub session_id: Option<Uuid>,
    /// Set for API keys.
    pub api_key: Option<KeyPrincipal>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPrincipal {
    pub id: Uuid,
    /// Empty means the owner's permissions.
    pub scopes: Vec<String>,
    pub rate_limit_per_minute: u32,
    pub rate_limit_remaining: u32,
}

impl Principal {
    /// Scopes that narrow the owner's permissions, if any.
    pub fn scopes(&self) -> Option<&[String]> {
        self.api_key.as_ref().filter(|k| !k.scopes.is_empty()).map(|k| k.scopes.as_slice())
    }
}

#[derive(Clone, Debug)]
pub struct VerifiedUser {
    pub user_id: Uuid,
    pub username: String,
    pub roles: Vec<String>,
    pub session_id: Uuid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizeOutcome {
    pub allowed: bool,
    pub subject: Uuid,
    pub reason: String,
    pub code: Option<ErrorCode>,
}

#[derive(Clone, Debug)]
pub struct NewKeyRequest {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_in: Option<i64>,
    pub rate_limit_per_minute: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub last_refreshed_at: OffsetDateTime,
    pub current: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub locked: bool,
    pub mfa_enabled: bool,
    pub created_at: OffsetDateTime,
}

/// A TOTP enrolment in progress: shown once, activated by confirming a code.
#[derive(Clone, Debug)]
pub struct TotpEnrollment {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub password: Secret,
    pub roles: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct UserUpdate {
    pub disabled: Option<bool>,
    /// Only `Some(false)` is meaningful: it clears a lockout.
    pub locked: Option<bool>,
}

/// What to end on logout.
#[derive(Clone, Debug)]
pub enum LogoutTarget {
    /// The session of this refresh token.
    Session { refresh_token: Secret },
    /// Every session of the bearer's user.
    AllSessions { access_token: Secret },
}

#[async_trait::async_trait]
pub trait AuthApi: Send + Sync + 'static {
    async fn login(&self, username: &str, password: &Secret) -> Result<TokenPair>;
    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenPair>;
    async fn logout(&self, target: LogoutTarget) -> Result<()>;
    /// Verifies a bearer token or API key: signature, live session or key, enabled user.
    async fn authenticate(&self, credential: &Credential) -> Result<Principal>;
    async fn get_verified_user(&self, access_token: &Secret) -> Result<VerifiedUser>;
    async fn authorize(&self, credential: &Credential, permission: &str) -> Result<AuthorizeOutcome>;
    async fn create_api_key(&self, access_token: &Secret, request: NewKeyRequest) -> Result<CreatedApiKey>;
    async fn list_sessions(&self, access_token: &Secret) -> Result<Vec<SessionInfo>>;
    async fn revoke_session(&self, access_token: &Secret, session_id: Uuid) -> Result<()>;
    /// Changes the caller's password (the current one must be right); every other session
    /// of the user ends at once, the caller's stays.
    async fn change_password(&self, access_token: &Secret, current: &Secret, new: &Secret) -> Result<()>;
    /// Admin reset: sets the password and ends every session of the user.
    async fn reset_password(&self, user_id: Uuid, new: &Secret) -> Result<()>;
    /// Second login step: the `mfa_token` from an `mfa_required` answer and a TOTP or
    /// recovery code.
    async fn complete_mfa_login(&self, mfa_token: &Secret, code: &str) -> Result<TokenPair>;
    async fn enroll_totp(&self, access_token: &Secret) -> Result<TotpEnrollment>;
    /// Activates the enrolment; returns the recovery codes, shown once.
    async fn confirm_totp(&self, access_token: &Secret, code: &str) -> Result<Vec<String>>;
    /// Removes the caller's factor; needs a current TOTP or recovery code.
    async fn disable_totp(&self, access_token: &Secret, code: &str) -> Result<()>;
    /// Admin removal of a user's second factor.
    async fn remove_user_mfa(&self, user_id: Uuid) -> Result<()>;
    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn get_user(&self, id: Uuid) -> Result<User>;
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> Result<User>;
    async fn ready(&self) -> bool;
}

pub type SharedAuth = std::sync::Arc<dyn AuthApi>;
