//! AuthService: login, refresh, logout and caller verification (design flows 1, 3, 4).
use crate::api::*;
use crate::cache::{HOT_PATH_TTL, TtlCache};
use crate::entity::user;
use crate::password::{self, PasswordHasher};
use crate::policy::PasswordPolicy;
use crate::store::{LockoutPolicy, LoginUser, Rotation, SessionRecord, SessionStore};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;
use warden_common::clock::SharedClock;
use warden_common::db::{Db, unique};
use warden_common::sealing::Sealer;
use warden_common::secret::{Secret, sha256_hex};
use warden_common::{Config, Error, ErrorCode, Result};
use warden_key::{CreatedApiKey, NewApiKey, SharedKeys};
use warden_rbac::SharedRbac;
use warden_token::{SharedTokens, TokenKind, TokenSeed};

#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub refresh_ttl: i64,
    pub session_max_age: i64,
    pub refresh_replay_window: i64,
    pub lockout: LockoutPolicy,
    pub password: PasswordPolicy,
    /// Seals TOTP secrets at rest (the same root secret as signing keys).
    pub sealing_secret: Option<String>,
    /// The issuer name authenticator apps show.
    pub totp_issuer: String,
}

impl From<&Config> for AuthSettings {
    fn from(c: &Config) -> Self {
        AuthSettings {
            refresh_ttl: c.refresh_token_ttl,
            session_max_age: c.session_max_age,
            refresh_replay_window: c.refresh_replay_window,
            lockout: LockoutPolicy {
                threshold: c.lockout_threshold,
                base_seconds: c.lockout_seconds,
                max_seconds: c.lockout_max_seconds,
            },
            sealing_secret: c.signing_key_secret.clone(),
            totp_issuer: "Warden".to_owned(),
            password: PasswordPolicy {
                min_length: c.password_min_length as usize,
                min_strength: c.password_min_strength as u8,
            },
        }
    }
}

/// The peers the auth service calls: local services or gRPC clients.
#[derive(Clone)]
pub struct Peers {
    pub tokens: SharedTokens,
    pub keys: SharedKeys,
    pub rbac: SharedRbac,
}

pub struct AuthService {
    pub(crate) db: Db,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) peers: Peers,
    pub(crate) hasher: PasswordHasher,
    pub(crate) clock: SharedClock,
    pub(crate) settings: AuthSettings,
    pub(crate) totp_sealer: Sealer,
    users: TtlCache<Uuid, user::Model>,
}

pub(crate) fn invalid_credentials() -> Error {
    Error::new(ErrorCode::InvalidCredentials, "the username or password is incorrect")
}

fn session_expired() -> Error {
    Error::new(ErrorCode::SessionExpired, "the session has expired; log in again")
}

fn session_ended() -> Error {
    Error::new(ErrorCode::TokenRevoked, "the session has ended")
}

/// Lockout and lookups are case-insensitive on the username.
pub(crate) fn username_key(username: &str) -> String {
    username.trim().to_lowercase()
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl AuthService {
    pub fn new(
        db: Db,
        store: Arc<dyn SessionStore>,
        peers: Peers,
        hasher: PasswordHasher,
        clock: SharedClock,
        settings: AuthSettings,
    ) -> Self {
        let totp_sealer = Sealer::new(settings.sealing_secret.as_deref(), "totp-secrets");
        AuthService { db, store, peers, hasher, clock, settings, totp_sealer, users: TtlCache::new(HOT_PATH_TTL) }
    }

    pub(crate) async fn find_user(&self, id: Uuid) -> Result<Option<user::Model>> {
        Ok(unique(user::Entity::find_by_id(id), &self.db).await?)
    }

    /// The user behind a request: cached for at most a second (see `cache.rs`). Disabling a
    /// user also ends its sessions, which are checked on every request, uncached in Redis.
    async fn request_user(&self, id: Uuid) -> Result<Option<user::Model>> {
        let miss = match self.users.lookup(&id) {
            Ok(user) => return Ok(Some(user)),
            Err(miss) => miss,
        };
        let user = self.find_user(id).await?;
        if let Some(user) = &user {
            self.users.fill(id, user.clone(), miss);
        }
        Ok(user)
    }

    /// Call after any change to a user row.
    pub(crate) fn forget_user(&self, id: Uuid) {
        self.users.remove(&id);
    }

    /// Creates a session and its first token pair.
    pub(crate) async fn start_session(&self, user_id: Uuid) -> Result<TokenPair> {
        let now = self.clock.unix();
        let session_id = Uuid::new_v4();
        let expires_at = now + self.settings.session_max_age;
        let refresh_expires_at = (now + self.settings.refresh_ttl).min(expires_at);
        let ttl = Some(refresh_expires_at - now);
        let pair = self.peers.tokens.generate_token_pair(user_id, session_id, ttl, None, None).await?;
        let (access, refresh) = (pair.access, pair.refresh);
        let record = SessionRecord {
            id: session_id,
            user_id,
            refresh_hash: sha256_hex(&refresh.token),
            created_at: now,
            expires_at,
            refresh_expires_at,
            last_refreshed_at: now,
            previous_hash: None,
            rotated_at: 0,
        };
        self.store.create_session(&record).await?;
        Ok(TokenPair {
            access_token: access.token,
            refresh_token: refresh.token,
            expires_in: access.expires_in,
            refresh_expires_in: refresh_expires_at - now,
        })
    }

    /// The token pair that replaces `presented`. Its `jti`s derive from the presented
    /// token's hash and its `iat` from the rotation time, so issuing it again inside the
    /// replay window yields the very same tokens (Ed25519 signatures are deterministic).
    async fn successor(
        &self,
        subject: Uuid,
        session_id: Uuid,
        presented: &str,
        rotated_at: i64,
        refresh_expires_at: i64,
    ) -> Result<TokenPair> {
        let seed = |tag: &str| TokenSeed {
            jti: sha256_hex(&format!("{presented}:{tag}"))[..32].to_owned(),
            issued_at: rotated_at,
        };
        let tokens = &self.peers.tokens;
        let ttl = refresh_expires_at - rotated_at;
        let pair = tokens.generate_token_pair(subject, session_id, Some(ttl), Some(seed("a")), Some(seed("r"))).await?;
        let (access, refresh) = (pair.access, pair.refresh);
        Ok(TokenPair {
            access_token: access.token,
            refresh_token: refresh.token,
            expires_in: access.expires_in,
            refresh_expires_in: (refresh_expires_at - self.clock.unix()).max(0),
        })
    }

    /// The common case without a signature check: a token whose SHA-256 is the live session's
    /// current refresh hash is one this service issued for that session, byte for byte (only
    /// the hash of an issued token is ever stored), so its signature, type and expiry were
    /// checked when it was made and the session record bounds its life. The unverified payload
    /// only names the user and session to look up. Anything else (stale, reused, forged,
    /// expired) takes the full path, which verifies the signature before it may revoke a session.
    async fn refresh_current(&self, refresh_token: &Secret, presented: &str) -> Result<Option<TokenPair>> {
        let Some((subject, session_id)) = unverified_session(refresh_token.expose()) else { return Ok(None) };
        let now = self.clock.unix();
        let Some(session) = self.store.get_session(subject, session_id, now).await? else { return Ok(None) };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(session.refresh_hash.as_bytes(), presented.as_bytes())) {
            return Ok(None);
        }
        self.rotate_session(subject, session_id, presented, &session, now).await.map(Some)
    }

    /// Issues the successor of the presented refresh token and makes it the session's current one.
    async fn rotate_session(
        &self,
        subject: Uuid,
        session_id: Uuid,
        presented: &str,
        session: &SessionRecord,
        now: i64,
    ) -> Result<TokenPair> {
        let refresh_expires_at = (now + self.settings.refresh_ttl).min(session.expires_at);
        let next = self.successor(subject, session_id, presented, now, refresh_expires_at).await?;
        let rotation = self
            .store
            .rotate(subject, session_id, presented, &sha256_hex(&next.refresh_token), refresh_expires_at, now)
            .await?;
        match rotation {
            Rotation::Rotated(_) => {
                tracing::info!(target: "audit", event = "token_refreshed", user_id = %subject, session_id = %session_id);
                Ok(next)
            }
            Rotation::NotCurrent(current) => self.replay_or_revoke(subject, session_id, presented, current, now).await,
            Rotation::Expired => Err(session_expired()),
            Rotation::Missing => Err(session_ended()),
        }
    }

    /// A live session's refresh token that is not current: the one just rotated (inside the
    /// replay window) gets the same successor again; anything older is reuse of a stolen or
    /// leaked token, and the whole session ends.
    async fn replay_or_revoke(
        &self,
        subject: Uuid,
        session_id: Uuid,
        presented: &str,
        current: SessionRecord,
        now: i64,
    ) -> Result<TokenPair> {
        let just_rotated = current.previous_hash.as_deref() == Some(presented)
            && self.settings.refresh_replay_window > 0
            && now - current.rotated_at <= self.settings.refresh_replay_window;
        if just_rotated {
            let again =
                self.successor(subject, session_id, presented, current.rotated_at, current.refresh_expires_at).await?;
            // Only hand it out if it really is the session's current token (it is not if
            // the signing key rotated in between); otherwise the client must log in again.
            if sha256_hex(&again.refresh_token) == current.refresh_hash {
                tracing::info!(target: "audit", event = "refresh_replayed", user_id = %subject, session_id = %session_id);
                return Ok(again);
            }
            return Err(Error::new(ErrorCode::RefreshFailed, "the refresh token was just rotated; use its successor"));
        }
        self.store.delete_session(subject, session_id).await?;
        metrics::counter!("warden_refresh_reuse_detected_total").increment(1);
        tracing::warn!(target: "audit", event = "refresh_token_reuse", user_id = %subject, session_id = %session_id);
        Err(Error::new(ErrorCode::TokenRevoked, "the refresh token was already used; the session is revoked"))
    }

    async fn set_password(&self, user: user::Model, new: &Secret) -> Result<()> {
        let hash = self.hasher.hash(new).await?;
        let id = user.id;
        let mut active: user::ActiveModel = user.into();
        active.password_hash = Set(hash);
        active.updated_at = Set(self.clock.now());
        active.update(&self.db).await?;
        self.forget_user(id);
        tracing::info!(target: "audit", event = "password_changed", user_id = %id);
        Ok(())
    }

    /// Ends sessions and says so in the audit log.
    pub(crate) async fn end_user_sessions(&self, user_id: Uuid, keep: Option<Uuid>, why: &str) -> Result<()> {
        let ended = self.store.delete_user_sessions(user_id, keep, self.clock.unix()).await?;
        tracing::info!(target: "audit", event = "sessions_ended", user_id = %user_id, count = ended.len(), reason = why);
        Ok(())
    }

    async fn verify_access(&self, access_token: &Secret) -> Result<(user::Model, Uuid)> {
        let token = self.peers.tokens.verify_token(access_token.expose(), TokenKind::Access).await?;
        self.store.get_session(token.subject, token.session_id, self.clock.unix()).await?.ok_or_else(session_ended)?;
        let user = self.request_user(token.subject).await?.filter(|u| !u.disabled).ok_or_else(session_ended)?;
        Ok((user, token.session_id))
    }

    fn validate_login_input(username: &str, password: &Secret) -> Result<()> {
        // Characters, as the OpenAPI document's maxLength counts them.
        if username.trim().is_empty() || username.chars().count() > 256 {
            return Err(Error::validation("username must be 1 to 256 characters"));
        }
        if password.expose().is_empty() {
            return Err(Error::validation("password must not be empty"));
        }
        password::check_length(password)
    }
}

impl AuthService {
    /// Password login; [`AuthApi::login`] counts its outcome.
    async fn password_login(&self, username: &str, password: &Secret) -> Result<TokenPair> {
        Self::validate_login_input(username, password)?;
        let key = username_key(username);
        let now = self.clock.unix();
        let (state, user) = self.store.login_state(&key, now, &self.db).await?;
        if state.locked_until > now {
            tracing::info!(target: "audit", event = "login_refused_locked", username_hash = %&sha256_hex(&key)[..16]);
            return Err(Error::new(ErrorCode::AccountLocked, "too many failed attempts; try again later")
                .with_retry_after((state.locked_until - now) as u64));
        }
        let verified = self.hasher.verify(password, user.as_ref().map(|u| u.user.password_hash.clone())).await?;
        let LoginUser { user, mfa_enabled } = match user {
            Some(user) if verified.matches => user,
            _ => {
                let state = self.store.record_failure(&key, self.clock.unix(), &self.settings.lockout).await?;
                tracing::info!(target: "audit", event = "login_failed", username_hash = %&sha256_hex(&key)[..16], failures = state.failures);
                if state.locked_until > 0 {
                    metrics::counter!("warden_lockouts_total").increment(1);
                    tracing::warn!(target: "audit", event = "account_locked", username_hash = %&sha256_hex(&key)[..16], until = state.locked_until);
                }
                return Err(invalid_credentials());
            }
        };
        if user.disabled {
            tracing::info!(target: "audit", event = "login_refused_disabled", user_id = %user.id);
            return Err(Error::new(ErrorCode::AccountDisabled, "the account is disabled"));
        }
        if verified.needs_rehash {
            let hash = self.hasher.hash(password).await?;
            let mut active: user::ActiveModel = user.clone().into();
            active.password_hash = Set(hash);
            active.updated_at = Set(self.clock.now());
            active.update(&self.db).await?;
        }
        // Read with the user, before the hash: a factor confirmed while this login hashed
        // applies from the next login on, as it would had this login finished a moment sooner.
        if mfa_enabled {
            // Password failures are cleared only once the second factor is passed too.
            return Err(self.mfa_challenge(user.id).await?);
        }
        if state.failures > 0 {
            self.store.clear_failures(&key).await?;
        }
        let pair = self.start_session(user.id).await?;
        tracing::info!(target: "audit", event = "login_succeeded", user_id = %user.id);
        Ok(pair)
    }
}

#[async_trait::async_trait]
impl AuthApi for AuthService {
    async fn login(&self, username: &str, password: &Secret) -> Result<TokenPair> {
        let outcome = self.password_login(username, password).await;
        let label = outcome.as_ref().map_or_else(|e| e.code.as_str(), |_| "success");
        metrics::counter!("warden_login_attempts_total", "outcome" => label).increment(1);
        outcome
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenPair> {
        let presented = sha256_hex(refresh_token.expose());
        if let Some(pair) = self.refresh_current(refresh_token, &presented).await? {
            return Ok(pair);
        }
        let token = match self.peers.tokens.verify_token(refresh_token.expose(), TokenKind::Refresh).await {
            Ok(t) => t,
            Err(e) if e.code == ErrorCode::TokenExpired => return Err(session_expired()),
            Err(e) if e.code == ErrorCode::TokenInvalid => {
                return Err(Error::new(ErrorCode::RefreshFailed, "the refresh token is not usable"));
            }
            Err(e) => return Err(e),
        };
        let now = self.clock.unix();
        let Some(session) = self.store.get_session(token.subject, token.session_id, now).await? else {
            // The refresh token's exp is the session's end: past it, the session expired
            // (inside the verification leeway); before it, the session was ended.
            return Err(if now >= token.expires_at.unix_timestamp() { session_expired() } else { session_ended() });
        };
        self.rotate_session(token.subject, token.session_id, &presented, &session, now).await
    }

    async fn logout(&self, target: LogoutTarget) -> Result<()> {
        match target {
            LogoutTarget::Session { refresh_token } => {
                let token = match self.peers.tokens.verify_token(refresh_token.expose(), TokenKind::Refresh).await {
                    Ok(t) => t,
                    Err(e) if e.code == ErrorCode::Unavailable => return Err(e),
                    Err(_) => return Err(Error::new(ErrorCode::RefreshFailed, "the refresh token is not usable")),
                };
                let ended = self.store.delete_session(token.subject, token.session_id).await?;
                tracing::info!(target: "audit", event = "logout", user_id = %token.subject, ended);
                Ok(())
            }
            LogoutTarget::AllSessions { access_token } => {
                let (user, _) = self.verify_access(&access_token).await?;
                self.end_user_sessions(user.id, None, "logout_all").await
            }
        }
    }

    async fn authenticate(&self, credential: &Credential) -> Result<Principal> {
        match credential {
            Credential::AccessToken(token) => {
                let (user, session_id) = self.verify_access(token).await?;
                Ok(Principal { user_id: user.id, username: user.username, session_id: Some(session_id), api_key: None })
            }
            Credential::ApiKey(key) => {
                let validated = self.peers.keys.validate_api_key(key.expose()).await?;
                let owner = validated.key.owner_id;
                let user = self
                    .request_user(owner)
                    .await?
                    .ok_or_else(|| Error::new(ErrorCode::KeyRevoked, "the api key's owner no longer exists"))?;
                if user.disabled {
                    return Err(Error::new(ErrorCode::AccountDisabled, "the api key's owner is disabled"));
                }
                Ok(Principal {
                    user_id: user.id,
                    username: user.username,
                    session_id: None,
                    api_key: Some(KeyPrincipal {
                        id: validated.key.id,
                        scopes: validated.key.scopes,
                        rate_limit_per_minute: validated.key.rate_limit_per_minute,
                        rate_limit_remaining: validated.rate_limit_remaining,
                    }),
                })
            }
        }
    }

    async fn get_verified_user(&self, access_token: &Secret) -> Result<VerifiedUser> {
        let (user, session_id) = self.verify_access(access_token).await?;
        let roles = self.peers.rbac.get_user_roles(user.id).await?.roles;
        Ok(VerifiedUser { user_id: user.id, username: user.username, roles, session_id })
    }

    async fn authorize(&self, credential: &Credential, permission: &str) -> Result<AuthorizeOutcome> {
        let principal = self.authenticate(credential).await?;
        let decisions =
            self.peers.rbac.check_permissions(principal.user_id, &[permission.to_owned()], principal.scopes()).await?;
        let decision = decisions
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal(anyhow::anyhow!("rbac answered no decision")))?;
        if !decision.allowed {
            tracing::info!(target: "audit", event = "access_denied", user_id = %principal.user_id, permission, reason = %decision.reason);
        }
        Ok(AuthorizeOutcome {
            allowed: decision.allowed,
            subject: principal.user_id,
            reason: decision.reason,
            code: decision.code,
        })
    }

    async fn create_api_key(&self, access_token: &Secret, request: NewKeyRequest) -> Result<CreatedApiKey> {
        let (user, _) = self.verify_access(access_token).await?;
        let created = self
            .peers
            .keys
            .generate_api_key(NewApiKey {
                owner_id: user.id,
                name: request.name,
                scopes: request.scopes,
                expires_in: request.expires_in,
                rate_limit_per_minute: request.rate_limit_per_minute,
            })
            .await?;
        Ok(created)
    }

    async fn list_sessions(&self, access_token: &Secret) -> Result<Vec<SessionInfo>> {
        let (user, current) = self.verify_access(access_token).await?;
        let sessions = self.store.list_sessions(user.id, self.clock.unix()).await?;
        Ok(sessions
            .into_iter()
            .map(|s| SessionInfo {
                id: s.id,
                created_at: at(s.created_at),
                expires_at: at(s.ends_at()),
                last_refreshed_at: at(s.last_refreshed_at),
                current: s.id == current,
            })
            .collect())
    }

    async fn revoke_session(&self, access_token: &Secret, session_id: Uuid) -> Result<()> {
        let (user, _) = self.verify_access(access_token).await?;
        // Another user's session is indistinguishable from a missing one.
        if self.store.get_session(user.id, session_id, self.clock.unix()).await?.is_none() {
            return Err(Error::not_found("no such session"));
        }
        self.store.delete_session(user.id, session_id).await?;
        tracing::info!(target: "audit", event = "session_revoked", user_id = %user.id, session_id = %session_id);
        Ok(())
    }

    async fn change_password(&self, access_token: &Secret, current: &Secret, new: &Secret) -> Result<()> {
        let (user, session_id) = self.verify_access(access_token).await?;
        // Input that could never succeed is refused as such (400), locked account or not,
        // and before the current password costs a hash: the new password's policy depends on
        // nothing but the password and the username.
        password::check_length(current)?;
        self.settings.password.check(new, &user.username)?;
        let key = username_key(&user.username);
        let now = self.clock.unix();
        let state = self.store.failure_state(&key, now).await?;
        if state.locked_until > now {
            return Err(Error::new(ErrorCode::AccountLocked, "too many failed attempts; try again later")
                .with_retry_after((state.locked_until - now) as u64));
        }
        // The hot-path user cache may be a second old; the hash must be current.
        let user = self.find_user(user.id).await?.ok_or_else(session_ended)?;
        let verified = self.hasher.verify(current, Some(user.password_hash.clone())).await?;
        if !verified.matches {
            // A wrong current password is a failed login attempt like any other.
            self.store.record_failure(&key, self.clock.unix(), &self.settings.lockout).await?;
            tracing::info!(target: "audit", event = "password_change_failed", user_id = %user.id);
            return Err(invalid_credentials());
        }
        let user_id = user.id;
        self.set_password(user, new).await?;
        self.end_user_sessions(user_id, Some(session_id), "password_changed").await
    }

    async fn reset_password(&self, user_id: Uuid, new: &Secret) -> Result<()> {
        let user = self.find_user(user_id).await?.ok_or_else(|| Error::not_found("no such user"))?;
        self.settings.password.check(new, &user.username)?;
        let id = user.id;
        self.set_password(user, new).await?;
        tracing::info!(target: "audit", event = "password_reset", user_id = %id);
        self.end_user_sessions(id, None, "password_reset").await
    }

    async fn complete_mfa_login(&self, mfa_token: &Secret, code: &str) -> Result<TokenPair> {
        self.complete_mfa(mfa_token, code).await
    }

    async fn enroll_totp(&self, access_token: &Secret) -> Result<TotpEnrollment> {
        let (user, _) = self.verify_access(access_token).await?;
        self.enroll_totp_for(user.id, &user.username).await
    }

    async fn confirm_totp(&self, access_token: &Secret, code: &str) -> Result<Vec<String>> {
        let (user, _) = self.verify_access(access_token).await?;
        self.confirm_totp_for(user.id, code).await
    }

    async fn disable_totp(&self, access_token: &Secret, code: &str) -> Result<()> {
        let (user, _) = self.verify_access(access_token).await?;
        self.disable_totp_for(user.id, &user.username, code).await
    }

    async fn remove_user_mfa(&self, user_id: Uuid) -> Result<()> {
        self.find_user(user_id).await?.ok_or_else(|| Error::not_found("no such user"))?;
        self.remove_mfa(user_id, "admin").await
    }

    async fn create_user(&self, new: NewUser) -> Result<User> {
        self.insert_user(new).await
    }

    async fn get_user(&self, id: Uuid) -> Result<User> {
        let user = self.find_user(id).await?.ok_or_else(|| Error::not_found("no such user"))?;
        self.user_view(user).await
    }

    async fn update_user(&self, id: Uuid, update: UserUpdate) -> Result<User> {
        self.apply_update(id, update).await
    }

    async fn ready(&self) -> bool {
        warden_common::db::ping(&self.db).await && self.store.ping().await
    }
}

/// The `sub` and `sid` claims of a JWT, read WITHOUT checking anything: only a lookup key,
/// never trusted.
fn unverified_session(token: &str) -> Option<(Uuid, Uuid)> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Claims {
        sub: Uuid,
        sid: Uuid,
    }
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else { return None };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Claims>(&json).ok().map(|c| (c.sub, c.sid))
}
