//! The gRPC edge of the auth service: the server adapter and the remote client.
use crate::api::*;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use warden_common::grpc::PeerChannel;
use warden_common::secret::Secret;
use warden_common::timestamp::{from_proto, to_proto};
use warden_common::{Error, ErrorCode, Result};
use warden_key::{ApiKey, CreatedApiKey};
use warden_proto::auth::v1 as pb;
use warden_proto::auth::v1::auth_service_client::AuthServiceClient;
use warden_proto::auth::v1::auth_service_server::{AuthService as AuthRpc, AuthServiceServer};

pub struct AuthGrpc(pub SharedAuth);

pub fn server(api: SharedAuth) -> AuthServiceServer<AuthGrpc> {
    AuthServiceServer::new(AuthGrpc(api))
}

fn uuid_arg(name: &str, value: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(value).map_err(|_| Error::validation(format!("{name} must be a UUID")).into())
}

fn credential(c: Option<pb::authenticate_request::Credential>) -> Result<Credential, Status> {
    match c {
        Some(pb::authenticate_request::Credential::AccessToken(t)) => Ok(Credential::AccessToken(Secret::new(t))),
        Some(pb::authenticate_request::Credential::ApiKey(k)) => Ok(Credential::ApiKey(Secret::new(k))),
        None => Err(Error::new(ErrorCode::Unauthenticated, "an access token or api key is required").into()),
    }
}

fn authorize_credential(c: Option<pb::authorize_request::Credential>) -> Option<pb::authenticate_request::Credential> {
    c.map(|c| match c {
        pb::authorize_request::Credential::AccessToken(t) => pb::authenticate_request::Credential::AccessToken(t),
        pb::authorize_request::Credential::ApiKey(k) => pb::authenticate_request::Credential::ApiKey(k),
    })
}

impl From<TokenPair> for pb::LoginResponse {
    fn from(p: TokenPair) -> Self {
        pb::LoginResponse {
            access_token: p.access_token,
            refresh_token: p.refresh_token,
            expires_in: p.expires_in,
            token_type: "Bearer".into(),
            refresh_expires_in: p.refresh_expires_in,
        }
    }
}

impl From<User> for pb::User {
    fn from(u: User) -> Self {
        pb::User {
            id: u.id.to_string(),
            username: u.username,
            roles: u.roles,
            disabled: u.disabled,
            locked: u.locked,
            created_at: Some(to_proto(u.created_at)),
            mfa_enabled: u.mfa_enabled,
        }
    }
}

impl From<Principal> for pb::Principal {
    fn from(p: Principal) -> Self {
        let key = p.api_key.clone();
        pb::Principal {
            user_id: p.user_id.to_string(),
            username: p.username,
            session_id: p.session_id.map(|s| s.to_string()).unwrap_or_default(),
            api_key_id: key.as_ref().map(|k| k.id.to_string()).unwrap_or_default(),
            scopes: key.as_ref().map(|k| k.scopes.clone()).unwrap_or_default(),
            rate_limit_per_minute: key.as_ref().map(|k| k.rate_limit_per_minute).unwrap_or_default(),
            rate_limit_remaining: key.as_ref().map(|k| k.rate_limit_remaining).unwrap_or_default(),
        }
    }
}

#[tonic::async_trait]
impl AuthRpc for AuthGrpc {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(self.0.login(&r.username, &Secret::new(r.password)).await?.into()))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(self.0.refresh(&Secret::new(r.refresh_token)).await?.into()))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        let r = request.into_inner();
        let target = if r.all {
            LogoutTarget::AllSessions { access_token: Secret::new(r.access_token) }
        } else if !r.refresh_token.is_empty() {
            LogoutTarget::Session { refresh_token: Secret::new(r.refresh_token) }
        } else {
            return Err(Error::validation("refresh_token, or all with access_token, is required").into());
        };
        self.0.logout(target).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn authenticate(&self, request: Request<pb::AuthenticateRequest>) -> Result<Response<pb::Principal>, Status> {
        let credential = credential(request.into_inner().credential)?;
        Ok(Response::new(self.0.authenticate(&credential).await?.into()))
    }

    async fn get_verified_user(
        &self,
        request: Request<pb::GetVerifiedUserRequest>,
    ) -> Result<Response<pb::GetVerifiedUserResponse>, Status> {
        let v = self.0.get_verified_user(&Secret::new(request.into_inner().access_token)).await?;
        Ok(Response::new(pb::GetVerifiedUserResponse {
            user_id: v.user_id.to_string(),
            username: v.username,
            roles: v.roles,
            session_id: v.session_id.to_string(),
        }))
    }

    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let r = request.into_inner();
        let credential = credential(authorize_credential(r.credential))?;
        let o = self.0.authorize(&credential, &r.permission).await?;
        Ok(Response::new(pb::AuthorizeResponse {
            allowed: o.allowed,
            subject: o.subject.to_string(),
            reason: o.reason,
            code: o.code.map(|c| c.as_str().to_owned()).unwrap_or_default(),
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let r = request.into_inner();
        let new = NewKeyRequest {
            name: r.name,
            scopes: r.scopes,
            expires_in: r.expires_in,
            rate_limit_per_minute: r.rate_limit_per_minute,
        };
        let created = self.0.create_api_key(&Secret::new(r.access_token), new).await?;
        let k = created.key;
        Ok(Response::new(pb::CreateApiKeyResponse {
            id: k.id.to_string(),
            key: created.secret.expose().to_owned(),
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            expires_at: k.expires_at.map(to_proto),
            rate_limit_per_minute: k.rate_limit_per_minute,
            created_at: Some(to_proto(k.created_at)),
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let sessions = self.0.list_sessions(&Secret::new(request.into_inner().access_token)).await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions
                .into_iter()
                .map(|s| pb::Session {
                    id: s.id.to_string(),
                    created_at: Some(to_proto(s.created_at)),
                    expires_at: Some(to_proto(s.expires_at)),
                    last_refreshed_at: Some(to_proto(s.last_refreshed_at)),
                    current: s.current,
                })
                .collect(),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let r = request.into_inner();
        self.0.revoke_session(&Secret::new(r.access_token), uuid_arg("session_id", &r.session_id)?).await?;
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let r = request.into_inner();
        let (token, current, new) =
            (Secret::new(r.access_token), Secret::new(r.current_password), Secret::new(r.new_password));
        self.0.change_password(&token, &current, &new).await?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let r = request.into_inner();
        self.0.reset_password(uuid_arg("user_id", &r.user_id)?, &Secret::new(r.new_password)).await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn complete_mfa_login(
        &self,
        request: Request<pb::CompleteMfaLoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(self.0.complete_mfa_login(&Secret::new(r.mfa_token), &r.code).await?.into()))
    }

    async fn enroll_totp(
        &self,
        request: Request<pb::EnrollTotpRequest>,
    ) -> Result<Response<pb::EnrollTotpResponse>, Status> {
        let e = self.0.enroll_totp(&Secret::new(request.into_inner().access_token)).await?;
        Ok(Response::new(pb::EnrollTotpResponse { secret: e.secret, otpauth_uri: e.otpauth_uri, qr_svg: e.qr_svg }))
    }

    async fn confirm_totp(
        &self,
        request: Request<pb::ConfirmTotpRequest>,
    ) -> Result<Response<pb::ConfirmTotpResponse>, Status> {
        let r = request.into_inner();
        let recovery_codes = self.0.confirm_totp(&Secret::new(r.access_token), &r.code).await?;
        Ok(Response::new(pb::ConfirmTotpResponse { recovery_codes }))
    }

    async fn disable_totp(
        &self,
        request: Request<pb::DisableTotpRequest>,
    ) -> Result<Response<pb::DisableTotpResponse>, Status> {
        let r = request.into_inner();
        self.0.disable_totp(&Secret::new(r.access_token), &r.code).await?;
        Ok(Response::new(pb::DisableTotpResponse {}))
    }

    async fn remove_user_mfa(
        &self,
        request: Request<pb::RemoveUserMfaRequest>,
    ) -> Result<Response<pb::RemoveUserMfaResponse>, Status> {
        self.0.remove_user_mfa(uuid_arg("user_id", &request.into_inner().user_id)?).await?;
        Ok(Response::new(pb::RemoveUserMfaResponse {}))
    }

    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Result<Response<pb::User>, Status> {
        let r = request.into_inner();
        let user = self
            .0
            .create_user(NewUser { username: r.username, password: Secret::new(r.password), roles: r.roles })
            .await?;
        Ok(Response::new(user.into()))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::User>, Status> {
        let id = uuid_arg("id", &request.into_inner().id)?;
        Ok(Response::new(self.0.get_user(id).await?.into()))
    }

    async fn update_user(&self, request: Request<pb::UpdateUserRequest>) -> Result<Response<pb::User>, Status> {
        let r = request.into_inner();
        let update = UserUpdate { disabled: r.disabled, locked: r.locked };
        Ok(Response::new(self.0.update_user(uuid_arg("id", &r.id)?, update).await?.into()))
    }
}

/// The auth service reached over gRPC (split mode).
#[derive(Clone)]
pub struct RemoteAuth {
    client: AuthServiceClient<PeerChannel>,
}

impl RemoteAuth {
    pub fn new(channel: impl Into<PeerChannel>) -> Self {
        RemoteAuth { client: AuthServiceClient::new(channel.into()) }
    }
}

fn peer_uuid(value: &str) -> Result<Uuid> {
    Uuid::parse_str(value).map_err(|_| Error::internal(anyhow::anyhow!("auth service returned a malformed id")))
}

fn optional_uuid(value: &str) -> Result<Option<Uuid>> {
    if value.is_empty() { Ok(None) } else { peer_uuid(value).map(Some) }
}

fn pair(r: pb::LoginResponse) -> TokenPair {
    TokenPair {
        access_token: r.access_token,
        refresh_token: r.refresh_token,
        expires_in: r.expires_in,
        refresh_expires_in: r.refresh_expires_in,
    }
}

fn user(u: pb::User) -> Result<User> {
    Ok(User {
        id: peer_uuid(&u.id)?,
        username: u.username,
        roles: u.roles,
        disabled: u.disabled,
        locked: u.locked,
        mfa_enabled: u.mfa_enabled,
        created_at: u.created_at.as_ref().map(from_proto).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    })
}

fn wire_credential(c: &Credential) -> pb::authenticate_request::Credential {
    match c {
        Credential::AccessToken(t) => pb::authenticate_request::Credential::AccessToken(t.expose().to_owned()),
        Credential::ApiKey(k) => pb::authenticate_request::Credential::ApiKey(k.expose().to_owned()),
    }
}

#[async_trait::async_trait]
impl AuthApi for RemoteAuth {
    async fn login(&self, username: &str, password: &Secret) -> Result<TokenPair> {
        let request = pb::LoginRequest { username: username.to_owned(), password: password.expose().to_owned() };
        Ok(pair(self.client.clone().login(request).await?.into_inner()))
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenPair> {
        let request = pb::RefreshRequest { refresh_token: refresh_token.expose().to_owned() };
        Ok(pair(self.client.clone().refresh(request).await?.into_inner()))
    }

    async fn logout(&self, target: LogoutTarget) -> Result<()> {
        let request = match target {
            LogoutTarget::Session { refresh_token } => {
                pb::LogoutRequest { refresh_token: refresh_token.expose().to_owned(), ..Default::default() }
            }
            LogoutTarget::AllSessions { access_token } => {
                pb::LogoutRequest { access_token: access_token.expose().to_owned(), all: true, ..Default::default() }
            }
        };
        self.client.clone().logout(request).await?;
        Ok(())
    }

    async fn authenticate(&self, credential: &Credential) -> Result<Principal> {
        let request = pb::AuthenticateRequest { credential: Some(wire_credential(credential)) };
        let p = self.client.clone().authenticate(request).await?.into_inner();
        let api_key = match optional_uuid(&p.api_key_id)? {
            Some(id) => Some(KeyPrincipal {
                id,
                scopes: p.scopes,
                rate_limit_per_minute: p.rate_limit_per_minute,
                rate_limit_remaining: p.rate_limit_remaining,
            }),
            None => None,
        };
        Ok(Principal {
            user_id: peer_uuid(&p.user_id)?,
            username: p.username,
            session_id: optional_uuid(&p.session_id)?,
            api_key,
        })
    }

    async fn get_verified_user(&self, access_token: &Secret) -> Result<VerifiedUser> {
        let request = pb::GetVerifiedUserRequest { access_token: access_token.expose().to_owned() };
        let v = self.client.clone().get_verified_user(request).await?.into_inner();
        Ok(VerifiedUser {
            user_id: peer_uuid(&v.user_id)?,
            username: v.username,
            roles: v.roles,
            session_id: peer_uuid(&v.session_id)?,
        })
    }

    async fn authorize(&self, credential: &Credential, permission: &str) -> Result<AuthorizeOutcome> {
        let credential = match wire_credential(credential) {
            pb::authenticate_request::Credential::AccessToken(t) => pb::authorize_request::Credential::AccessToken(t),
            pb::authenticate_request::Credential::ApiKey(k) => pb::authorize_request::Credential::ApiKey(k),
        };
        let request = pb::AuthorizeRequest { credential: Some(credential), permission: permission.to_owned() };
        let o = self.client.clone().authorize(request).await?.into_inner();
        Ok(AuthorizeOutcome {
            allowed: o.allowed,
            subject: peer_uuid(&o.subject)?,
            reason: o.reason,
            code: ErrorCode::parse(&o.code),
        })
    }

    async fn create_api_key(&self, access_token: &Secret, r: NewKeyRequest) -> Result<CreatedApiKey> {
        let request = pb::CreateApiKeyRequest {
            access_token: access_token.expose().to_owned(),
            name: r.name,
            scopes: r.scopes,
            expires_in: r.expires_in,
            rate_limit_per_minute: r.rate_limit_per_minute,
        };
        let c = self.client.clone().create_api_key(request).await?.into_inner();
        let created_at = c.created_at.as_ref().map(from_proto).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Ok(CreatedApiKey {
            key: ApiKey {
                id: peer_uuid(&c.id)?,
                // The caller is the owner; the gRPC answer does not repeat it.
                owner_id: Uuid::nil(),
                name: c.name,
                prefix: c.prefix,
                scopes: c.scopes,
                created_at,
                expires_at: c.expires_at.as_ref().map(from_proto),
                last_used_at: None,
                revoked_at: None,
                rate_limit_per_minute: c.rate_limit_per_minute,
            },
            secret: Secret::new(c.key),
        })
    }

    async fn list_sessions(&self, access_token: &Secret) -> Result<Vec<SessionInfo>> {
        let request = pb::ListSessionsRequest { access_token: access_token.expose().to_owned() };
        let sessions = self.client.clone().list_sessions(request).await?.into_inner().sessions;
        let time =
            |t: &Option<prost_types::Timestamp>| t.as_ref().map(from_proto).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        sessions
            .into_iter()
            .map(|s| {
                Ok(SessionInfo {
                    id: peer_uuid(&s.id)?,
                    created_at: time(&s.created_at),
                    expires_at: time(&s.expires_at),
                    last_refreshed_at: time(&s.last_refreshed_at),
                    current: s.current,
                })
            })
            .collect()
    }

    async fn revoke_session(&self, access_token: &Secret, session_id: Uuid) -> Result<()> {
        let request = pb::RevokeSessionRequest {
            access_token: access_token.expose().to_owned(),
            session_id: session_id.to_string(),
        };
        self.client.clone().revoke_session(request).await?;
        Ok(())
    }

    async fn change_password(&self, access_token: &Secret, current: &Secret, new: &Secret) -> Result<()> {
        let request = pb::ChangePasswordRequest {
            access_token: access_token.expose().to_owned(),
            current_password: current.expose().to_owned(),
            new_password: new.expose().to_owned(),
        };
        self.client.clone().change_password(request).await?;
        Ok(())
    }

    async fn reset_password(&self, user_id: Uuid, new: &Secret) -> Result<()> {
        let request = pb::ResetPasswordRequest { user_id: user_id.to_string(), new_password: new.expose().to_owned() };
        self.client.clone().reset_password(request).await?;
        Ok(())
    }

    async fn complete_mfa_login(&self, mfa_token: &Secret, code: &str) -> Result<TokenPair> {
        let request = pb::CompleteMfaLoginRequest { mfa_token: mfa_token.expose().to_owned(), code: code.to_owned() };
        Ok(pair(self.client.clone().complete_mfa_login(request).await?.into_inner()))
    }

    async fn enroll_totp(&self, access_token: &Secret) -> Result<TotpEnrollment> {
        let request = pb::EnrollTotpRequest { access_token: access_token.expose().to_owned() };
        let e = self.client.clone().enroll_totp(request).await?.into_inner();
        Ok(TotpEnrollment { secret: e.secret, otpauth_uri: e.otpauth_uri, qr_svg: e.qr_svg })
    }

    async fn confirm_totp(&self, access_token: &Secret, code: &str) -> Result<Vec<String>> {
        let request = pb::ConfirmTotpRequest { access_token: access_token.expose().to_owned(), code: code.to_owned() };
        Ok(self.client.clone().confirm_totp(request).await?.into_inner().recovery_codes)
    }

    async fn disable_totp(&self, access_token: &Secret, code: &str) -> Result<()> {
        let request = pb::DisableTotpRequest { access_token: access_token.expose().to_owned(), code: code.to_owned() };
        self.client.clone().disable_totp(request).await?;
        Ok(())
    }

    async fn remove_user_mfa(&self, user_id: Uuid) -> Result<()> {
        self.client.clone().remove_user_mfa(pb::RemoveUserMfaRequest { user_id: user_id.to_string() }).await?;
        Ok(())
    }

    async fn create_user(&self, new: NewUser) -> Result<User> {
        let request = pb::CreateUserRequest {
            username: new.username,
            password: new.password.expose().to_owned(),
            roles: new.roles,
        };
        user(self.client.clone().create_user(request).await?.into_inner())
    }

    async fn get_user(&self, id: Uuid) -> Result<User> {
        user(self.client.clone().get_user(pb::GetUserRequest { id: id.to_string() }).await?.into_inner())
    }

    async fn update_user(&self, id: Uuid, update: UserUpdate) -> Result<User> {
        let request = pb::UpdateUserRequest { id: id.to_string(), disabled: update.disabled, locked: update.locked };
        user(self.client.clone().update_user(request).await?.into_inner())
    }

    async fn ready(&self) -> bool {
        // Any answer from the service (even "not found") proves it is up.
        match self.client.clone().get_user(pb::GetUserRequest { id: Uuid::nil().to_string() }).await {
            Ok(_) => true,
            Err(status) => Error::from(status).code == ErrorCode::NotFound,
        }
    }
}
