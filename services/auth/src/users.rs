//! User administration: creation (with the password policy), lookup, disable and unlock.
use crate::api::{NewUser, User, UserUpdate};
use crate::entity::user;
use crate::service::{AuthService, username_key};
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set, SqlErr};
use uuid::Uuid;
use warden_common::secret::Secret;
use warden_common::{Error, ErrorCode, Result};

const MAX_USERNAME_CHARS: usize = 64;

fn validate_username(username: &str) -> Result<()> {
    let ok = !username.is_empty()
        && username.chars().count() <= MAX_USERNAME_CHARS
        && username.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!("username must be 1 to {MAX_USERNAME_CHARS} letters, digits or . _ - @ +")))
    }
}

impl AuthService {
    pub(crate) async fn insert_user(&self, new: NewUser) -> Result<User> {
        validate_username(&new.username)?;
        self.settings.password.check(&new.password, &new.username)?;
        // Unknown roles are refused before anything is written.
        for role in &new.roles {
            self.peers.rbac.get_role(role).await?;
        }
        let hash = self.hasher.hash(&new.password).await?;
        let now = self.clock.now();
        let model = user::ActiveModel {
            id: Set(Uuid::now_v7()),
            username: Set(new.username.clone()),
            username_key: Set(username_key(&new.username)),
            password_hash: Set(hash),
            disabled: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let created = model.insert(&self.db).await.map_err(|e| match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => Error::new(ErrorCode::Conflict, "the username is taken"),
            _ => Error::from(e),
        })?;
        for role in &new.roles {
            if let Err(e) = self.peers.rbac.assign_role(created.id, role).await {
                // Leave nothing half-written: a user without the requested roles is removed.
                let _ = user::Entity::delete_by_id(created.id).exec(&self.db).await;
                return Err(e);
            }
        }
        tracing::info!(target: "audit", event = "user_created", user_id = %created.id, roles = ?new.roles);
        self.user_view(created).await
    }

    pub(crate) async fn user_view(&self, user: user::Model) -> Result<User> {
        let roles = self.peers.rbac.get_user_roles(user.id).await?.roles;
        let state = self.store.failure_state(&username_key(&user.username), self.clock.unix()).await?;
        Ok(User {
            id: user.id,
            username: user.username,
            roles,
            disabled: user.disabled,
            locked: state.locked_until > 0,
            mfa_enabled: self.mfa_enabled(user.id).await?,
            created_at: user.created_at,
        })
    }

    pub(crate) async fn apply_update(&self, id: Uuid, update: UserUpdate) -> Result<User> {
        if update.locked == Some(true) {
            return Err(Error::validation("locked can only be set to false"));
        }
        let user = self.find_user(id).await?.ok_or_else(|| Error::not_found("no such user"))?;
        let user = match update.disabled {
            Some(disabled) if disabled != user.disabled => {
                let mut active: user::ActiveModel = user.into();
                active.disabled = Set(disabled);
                active.updated_at = Set(self.clock.now());
                let user = active.update(&self.db).await?;
                self.forget_user(id);
                tracing::info!(target: "audit", event = if disabled { "user_disabled" } else { "user_enabled" }, user_id = %id);
                if disabled {
                    self.end_user_sessions(id, None, "user_disabled").await?;
                }
                user
            }
            _ => user,
        };
        if update.locked == Some(false) {
            self.store.clear_failures(&username_key(&user.username)).await?;
            tracing::info!(target: "audit", event = "user_unlocked", user_id = %id);
        }
        self.user_view(user).await
    }

    /// Clears the lockout of a username, known or not (`warden admin unlock`).
    pub async fn unlock(&self, username: &str) -> Result<()> {
        self.store.clear_failures(&username_key(username)).await?;
        tracing::info!(target: "audit", event = "username_unlocked", username_hash = %&warden_common::secret::sha256_hex(&username_key(username))[..16]);
        Ok(())
    }

    /// Creates the bootstrap admin if no user exists yet. Returns whether it did.
    pub async fn bootstrap_admin(&self, username: &str, password: &Secret) -> Result<bool> {
        if user::Entity::find().count(&self.db).await? > 0 {
            return Ok(false);
        }
        match self
            .insert_user(NewUser {
                username: username.to_owned(),
                password: password.clone(),
                roles: vec!["admin".into()],
            })
            .await
        {
            Ok(_) => Ok(true),
            // Another replica bootstrapped at the same moment.
            Err(e) if e.code == ErrorCode::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }
}
