//! The TOTP second factor: enrolment, activation with recovery codes, removal, and the
//! second login step. Codes are single-use (the last accepted time step is stored and only
//! a later one is accepted), recovery codes are stored as hashes and used once, the
//! pending-login token is single-use and short-lived, and wrong codes count toward lockout.
use crate::api::{TokenPair, TotpEnrollment};
use crate::entity::{mfa_totp, recovery_code};
use crate::service::{AuthService, username_key};
use crate::totp;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;
use warden_common::db::unique;
use warden_common::secret::{Secret, random_bytes, random_token, sha256_hex};
use warden_common::{Error, ErrorCode, Result};

/// How long the password-verified half of a login waits for its second factor.
pub(crate) const MFA_TOKEN_TTL: i64 = 300;
const RECOVERY_CODES: usize = 10;

fn mfa_invalid() -> Error {
    Error::new(ErrorCode::MfaInvalid, "the code is wrong, expired or already used")
}

/// A recovery code as users type it: 16 base32 characters in groups of four.
fn new_recovery_code() -> String {
    let raw = totp::base32(&random_bytes::<10>()).to_lowercase();
    raw.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect::<Vec<_>>().join("-")
}

fn normalize_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase()
}

impl AuthService {
    async fn totp_row(&self, user_id: Uuid) -> Result<Option<mfa_totp::Model>> {
        Ok(unique(mfa_totp::Entity::find_by_id(user_id), &self.db).await?)
    }

    pub(crate) async fn mfa_enabled(&self, user_id: Uuid) -> Result<bool> {
        Ok(self.totp_row(user_id).await?.is_some_and(|r| r.confirmed))
    }

    fn open_secret(&self, row: &mfa_totp::Model) -> Result<Vec<u8>> {
        self.totp_sealer.open(&row.user_id.to_string(), &row.secret)
    }

    pub(crate) async fn enroll_totp_for(&self, user_id: Uuid, username: &str) -> Result<TotpEnrollment> {
        if self.mfa_enabled(user_id).await? {
            return Err(Error::new(ErrorCode::Conflict, "a second factor is already active; remove it first"));
        }
        let secret = random_bytes::<20>();
        let row = mfa_totp::ActiveModel {
            user_id: Set(user_id),
            secret: Set(self.totp_sealer.seal(&user_id.to_string(), &secret)?),
            confirmed: Set(false),
            last_used_step: Set(-1),
            created_at: Set(self.clock.now()),
        };
        let txn = self.db.begin().await?;
        mfa_totp::Entity::delete_by_id(user_id).exec(&txn).await?;
        row.insert(&txn).await?;
        txn.commit().await?;
        let uri = totp::otpauth_uri(&self.settings.totp_issuer, username, &secret);
        tracing::info!(target: "audit", event = "totp_enrolment_started", user_id = %user_id);
        Ok(TotpEnrollment { secret: totp::base32(&secret), qr_svg: totp::qr_svg(&uri), otpauth_uri: uri })
    }

    /// Accepts a TOTP code once: only a time step later than the last accepted one.
    async fn accept_totp(&self, row: &mfa_totp::Model, code: &str) -> Result<bool> {
        let secret = self.open_secret(row)?;
        let Some(step) = totp::matching_step(&secret, code, self.clock.unix()) else { return Ok(false) };
        let claimed = mfa_totp::Entity::update_many()
            .col_expr(mfa_totp::Column::LastUsedStep, Expr::value(step))
            .filter(mfa_totp::Column::UserId.eq(row.user_id))
            .filter(mfa_totp::Column::LastUsedStep.lt(step))
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }

    /// Accepts a recovery code once.
    async fn accept_recovery_code(&self, user_id: Uuid, code: &str) -> Result<bool> {
        let used = recovery_code::Entity::update_many()
            .col_expr(recovery_code::Column::UsedAt, Expr::value(self.clock.unix()))
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::CodeHash.eq(sha256_hex(&normalize_recovery(code))))
            .filter(recovery_code::Column::UsedAt.is_null())
            .exec(&self.db)
            .await?;
        if used.rows_affected == 1 {
            tracing::warn!(target: "audit", event = "recovery_code_used", user_id = %user_id);
        }
        Ok(used.rows_affected == 1)
    }

    /// A TOTP code or a recovery code of an active factor.
    async fn accept_second_factor(&self, user_id: Uuid, code: &str) -> Result<bool> {
        let Some(row) = self.totp_row(user_id).await?.filter(|r| r.confirmed) else { return Ok(false) };
        let code = code.trim();
        if code.len() == totp::DIGITS as usize && code.bytes().all(|b| b.is_ascii_digit()) {
            return self.accept_totp(&row, code).await;
        }
        self.accept_recovery_code(user_id, code).await
    }

    pub(crate) async fn confirm_totp_for(&self, user_id: Uuid, code: &str) -> Result<Vec<String>> {
        let row =
            self.totp_row(user_id).await?.filter(|r| !r.confirmed).ok_or_else(|| {
                Error::validation("no enrolment is pending; start one with POST /api/v1/auth/mfa/totp")
            })?;
        if !self.accept_totp(&row, code.trim()).await? {
            return Err(mfa_invalid());
        }
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let txn = self.db.begin().await?;
        recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(&txn).await?;
        for code in &codes {
            recovery_code::ActiveModel {
                id: Set(Uuid::new_v4()),
                user_id: Set(user_id),
                code_hash: Set(sha256_hex(&normalize_recovery(code))),
                used_at: Set(None),
            }
            .insert(&txn)
            .await?;
        }
        mfa_totp::Entity::update_many()
            .col_expr(mfa_totp::Column::Confirmed, Expr::value(true))
            .filter(mfa_totp::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "totp_enabled", user_id = %user_id);
        Ok(codes)
    }

    pub(crate) async fn disable_totp_for(&self, user_id: Uuid, username: &str, code: &str) -> Result<()> {
        if !self.mfa_enabled(user_id).await? {
            return Err(Error::not_found("no second factor is active"));
        }
        if !self.accept_second_factor(user_id, code).await? {
            self.store.record_failure(&username_key(username), self.clock.unix(), &self.settings.lockout).await?;
            return Err(mfa_invalid());
        }
        self.remove_mfa(user_id, "user").await
    }

    /// Removes the factor and its recovery codes (the user, or an admin).
    pub(crate) async fn remove_mfa(&self, user_id: Uuid, by: &str) -> Result<()> {
        let txn = self.db.begin().await?;
        mfa_totp::Entity::delete_by_id(user_id).exec(&txn).await?;
        recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(&txn).await?;
        txn.commit().await?;
        tracing::warn!(target: "audit", event = "totp_removed", user_id = %user_id, by);
        Ok(())
    }

    /// The password was right and a second factor is active: no tokens yet, only a
    /// single-use token for the second step.
    pub(crate) async fn mfa_challenge(&self, user_id: Uuid) -> Result<Error> {
        let token = random_token::<32>();
        self.store.put_mfa_challenge(&sha256_hex(&token), user_id, self.clock.unix() + MFA_TOKEN_TTL).await?;
        tracing::info!(target: "audit", event = "mfa_required", user_id = %user_id);
        Ok(Error::new(ErrorCode::MfaRequired, "a second factor is required; send the code with the mfa_token")
            .with_extra("mfa_token", token))
    }

    pub(crate) async fn complete_mfa(&self, mfa_token: &Secret, code: &str) -> Result<TokenPair> {
        let hash = sha256_hex(mfa_token.expose());
        let now = self.clock.unix();
        let user_id = self.store.get_mfa_challenge(&hash, now).await?.ok_or_else(mfa_invalid)?;
        let user = self.find_user(user_id).await?.filter(|u| !u.disabled).ok_or_else(mfa_invalid)?;
        let key = username_key(&user.username);
        let state = self.store.failure_state(&key, now).await?;
        if state.locked_until > now {
            return Err(Error::new(ErrorCode::AccountLocked, "too many failed attempts; try again later")
                .with_retry_after((state.locked_until - now) as u64));
        }
        if !self.accept_second_factor(user.id, code).await? {
            self.store.record_failure(&key, self.clock.unix(), &self.settings.lockout).await?;
            tracing::info!(target: "audit", event = "mfa_failed", user_id = %user.id);
            return Err(mfa_invalid());
        }
        // Single use: of two racing completions, one wins.
        if !self.store.take_mfa_challenge(&hash).await? {
            return Err(mfa_invalid());
        }
        if state.failures > 0 {
            self.store.clear_failures(&key).await?;
        }
        let pair = self.start_session(user.id).await?;
        tracing::info!(target: "audit", event = "login_succeeded", user_id = %user.id, mfa = true);
        Ok(pair)
    }
}
