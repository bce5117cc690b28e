//! The gRPC edge of the token service: the server adapter and the remote client. Prost
//! types stop here; both sides convert to the domain types of [`crate::api`].
use crate::api::{IssuedPair, IssuedToken, Jwk, SharedTokens, TokenApi, TokenKind, TokenSeed, VerifiedToken};
use crate::jwks_keys::JwksKeys;
use crate::verifier::Verifier;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use warden_common::clock::SharedClock;
use warden_common::grpc::PeerChannel;
use warden_common::timestamp::{from_proto, to_proto};
use warden_common::{Error, Result};
use warden_proto::token::v1 as pb;
use warden_proto::token::v1::token_service_client::TokenServiceClient;
use warden_proto::token::v1::token_service_server::{TokenService as TokenRpc, TokenServiceServer};

pub struct TokenGrpc(pub SharedTokens);

pub fn server(api: SharedTokens) -> TokenServiceServer<TokenGrpc> {
    TokenServiceServer::new(TokenGrpc(api))
}

fn uuid_arg(name: &str, value: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(value).map_err(|_| Error::validation(format!("{name} must be a UUID")).into())
}

fn kind_from_proto(t: i32) -> Result<TokenKind, Status> {
    match pb::TokenType::try_from(t) {
        Ok(pb::TokenType::Access) => Ok(TokenKind::Access),
        Ok(pb::TokenType::Refresh) => Ok(TokenKind::Refresh),
        _ => Err(Error::validation("expected_type must be ACCESS or REFRESH").into()),
    }
}

fn kind_to_proto(k: TokenKind) -> pb::TokenType {
    match k {
        TokenKind::Access => pb::TokenType::Access,
        TokenKind::Refresh => pb::TokenType::Refresh,
    }
}

fn seed(jti: String, issued_at: i64) -> Option<TokenSeed> {
    (!jti.is_empty()).then_some(TokenSeed { jti, issued_at })
}

fn seed_fields(seed: Option<TokenSeed>) -> (String, i64) {
    seed.map(|s| (s.jti, s.issued_at)).unwrap_or_default()
}

impl From<IssuedToken> for pb::GeneratedToken {
    fn from(t: IssuedToken) -> Self {
        pb::GeneratedToken {
            token: t.token,
            jti: t.jti,
            expires_at: Some(to_proto(t.expires_at)),
            expires_in: t.expires_in,
        }
    }
}

impl From<Jwk> for pb::Jwk {
    fn from(j: Jwk) -> Self {
        pb::Jwk { kty: j.kty, crv: j.crv, x: j.x, kid: j.kid, alg: j.alg, key_use: j.use_ }
    }
}

impl From<pb::Jwk> for Jwk {
    fn from(k: pb::Jwk) -> Self {
        Jwk { kty: k.kty, crv: k.crv, x: k.x, kid: k.kid, alg: k.alg, use_: k.key_use }
    }
}

#[tonic::async_trait]
impl TokenRpc for TokenGrpc {
    async fn generate_access_token(
        &self,
        request: Request<pb::GenerateAccessTokenRequest>,
    ) -> Result<Response<pb::GeneratedToken>, Status> {
        let r = request.into_inner();
        let seed = seed(r.jti, r.issued_at);
        let token = self
            .0
            .generate_access_token(uuid_arg("user_id", &r.user_id)?, uuid_arg("session_id", &r.session_id)?, seed)
            .await?;
        Ok(Response::new(token.into()))
    }

    async fn generate_refresh_token(
        &self,
        request: Request<pb::GenerateRefreshTokenRequest>,
    ) -> Result<Response<pb::GeneratedToken>, Status> {
        let r = request.into_inner();
        let ttl = (r.ttl_seconds > 0).then_some(r.ttl_seconds);
        let seed = seed(r.jti, r.issued_at);
        let token = self
            .0
            .generate_refresh_token(uuid_arg("user_id", &r.user_id)?, uuid_arg("session_id", &r.session_id)?, ttl, seed)
            .await?;
        Ok(Response::new(token.into()))
    }

    async fn generate_token_pair(
        &self,
        request: Request<pb::GenerateTokenPairRequest>,
    ) -> Result<Response<pb::GeneratedTokenPair>, Status> {
        let r = request.into_inner();
        let (Some(a), Some(f)) = (r.access, r.refresh) else {
            return Err(Error::validation("access and refresh are both required").into());
        };
        if a.user_id != f.user_id || a.session_id != f.session_id {
            return Err(Error::validation("access and refresh must name the same user_id and session_id").into());
        }
        let pair = self
            .0
            .generate_token_pair(
                uuid_arg("user_id", &a.user_id)?,
                uuid_arg("session_id", &a.session_id)?,
                (f.ttl_seconds > 0).then_some(f.ttl_seconds),
                seed(a.jti, a.issued_at),
                seed(f.jti, f.issued_at),
            )
            .await?;
        Ok(Response::new(pb::GeneratedTokenPair {
            access: Some(pair.access.into()),
            refresh: Some(pair.refresh.into()),
        }))
    }

    async fn verify_token(
        &self,
        request: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        let r = request.into_inner();
        let v = self.0.verify_token(&r.token, kind_from_proto(r.expected_type)?).await?;
        Ok(Response::new(pb::VerifyTokenResponse {
            subject: v.subject.to_string(),
            session_id: v.session_id.to_string(),
            jti: v.jti,
            token_type: kind_to_proto(v.kind).into(),
            issued_at: Some(to_proto(v.issued_at)),
            expires_at: Some(to_proto(v.expires_at)),
            kid: v.kid,
        }))
    }

    async fn get_jwks(&self, _: Request<pb::GetJwksRequest>) -> Result<Response<pb::GetJwksResponse>, Status> {
        let keys = self.0.jwks().await?.into_iter().map(Into::into).collect();
        Ok(Response::new(pb::GetJwksResponse { keys }))
    }

    async fn rotate_signing_key(
        &self,
        _: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        Ok(Response::new(pb::RotateSigningKeyResponse { kid: self.0.rotate_signing_key().await? }))
    }
}

/// The token service reached over gRPC (split mode). Tokens are issued remotely but
/// verified here, against the token service's published keys, exactly as it verifies them:
/// a protected request then costs no round trip to the token service.
#[derive(Clone)]
pub struct RemoteTokens {
    client: TokenServiceClient<PeerChannel>,
    keys: JwksKeys,
    verifier: Arc<Verifier>,
}

impl RemoteTokens {
    /// `issuer` and `audience` must be the token service's (`WARDEN_ISSUER`,
    /// `WARDEN_AUDIENCE`); `clock` decides expiry, as the token service's clock does.
    pub fn new(channel: impl Into<PeerChannel>, issuer: &str, audience: &str, clock: SharedClock) -> Self {
        let client = TokenServiceClient::new(channel.into());
        RemoteTokens {
            keys: JwksKeys::new(client.clone()),
            client,
            verifier: Arc::new(Verifier::new(issuer.to_owned(), audience.to_owned(), clock)),
        }
    }
}

fn issued(t: pb::GeneratedToken) -> IssuedToken {
    IssuedToken {
        token: t.token,
        jti: t.jti,
        expires_at: t.expires_at.as_ref().map(from_proto).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        expires_in: t.expires_in,
    }
}

#[async_trait::async_trait]
impl TokenApi for RemoteTokens {
    async fn generate_access_token(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        seed: Option<TokenSeed>,
    ) -> Result<IssuedToken> {
        let (jti, issued_at) = seed_fields(seed);
        let request = pb::GenerateAccessTokenRequest {
            user_id: user_id.to_string(),
            session_id: session_id.to_string(),
            jti,
            issued_at,
        };
        Ok(issued(self.client.clone().generate_access_token(request).await?.into_inner()))
    }

    async fn generate_refresh_token(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        ttl: Option<i64>,
        seed: Option<TokenSeed>,
    ) -> Result<IssuedToken> {
        let (jti, issued_at) = seed_fields(seed);
        let request = pb::GenerateRefreshTokenRequest {
            user_id: user_id.to_string(),
            session_id: session_id.to_string(),
            ttl_seconds: ttl.unwrap_or(0),
            jti,
            issued_at,
        };
        Ok(issued(self.client.clone().generate_refresh_token(request).await?.into_inner()))
    }

    async fn generate_token_pair(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        refresh_ttl: Option<i64>,
        access_seed: Option<TokenSeed>,
        refresh_seed: Option<TokenSeed>,
    ) -> Result<IssuedPair> {
        let (access_jti, access_issued_at) = seed_fields(access_seed);
        let (refresh_jti, refresh_issued_at) = seed_fields(refresh_seed);
        let request = pb::GenerateTokenPairRequest {
            access: Some(pb::GenerateAccessTokenRequest {
                user_id: user_id.to_string(),
                session_id: session_id.to_string(),
                jti: access_jti,
                issued_at: access_issued_at,
            }),
            refresh: Some(pb::GenerateRefreshTokenRequest {
                user_id: user_id.to_string(),
                session_id: session_id.to_string(),
                ttl_seconds: refresh_ttl.unwrap_or(0),
                jti: refresh_jti,
                issued_at: refresh_issued_at,
            }),
        };
        let pair = self.client.clone().generate_token_pair(request).await?.into_inner();
        let (Some(access), Some(refresh)) = (pair.access, pair.refresh) else {
            return Err(Error::unavailable("token service", anyhow::anyhow!("token pair answer lacks a token")));
        };
        Ok(IssuedPair { access: issued(access), refresh: issued(refresh) })
    }

    async fn verify_token(&self, token: &str, kind: TokenKind) -> Result<VerifiedToken> {
        self.verifier.verify(&self.keys, token, kind).await
    }

    async fn jwks(&self) -> Result<Vec<Jwk>> {
        self.keys.published().await
    }

    async fn rotate_signing_key(&self) -> Result<String> {
        Ok(self.client.clone().rotate_signing_key(pb::RotateSigningKeyRequest {}).await?.into_inner().kid)
    }

    async fn ready(&self) -> bool {
        self.client.clone().get_jwks(pb::GetJwksRequest {}).await.is_ok()
    }
}
