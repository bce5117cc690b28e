//! The gRPC edge: [`KeyGrpc`] serves any [`KeyApi`] as `warden.key.v1.KeyService`, and
//! [`RemoteKeys`] is the same [`KeyApi`] reached over a channel. Prost types stay here.
use crate::api::{ApiKey, CreatedApiKey, KeyApi, NewApiKey, SharedKeys, ValidatedApiKey};
use tonic::{Request, Response, Status};
use uuid::Uuid;
use warden_common::grpc::PeerChannel;
use warden_common::secret::Secret;
use warden_common::timestamp::{from_proto, to_proto};
use warden_common::{Error, ErrorCode, Result};
use warden_proto::key::v1 as pb;
use warden_proto::key::v1::key_service_client::KeyServiceClient;
use warden_proto::key::v1::key_service_server::{KeyService, KeyServiceServer};

pub struct KeyGrpc(pub SharedKeys);

pub fn server(api: SharedKeys) -> KeyServiceServer<KeyGrpc> {
    KeyServiceServer::new(KeyGrpc(api))
}

fn parse_uuid(field: &str, value: &str) -> Result<Uuid> {
    Uuid::parse_str(value).map_err(|_| Error::validation(format!("{field} must be a UUID")))
}

impl From<ApiKey> for pb::ApiKey {
    fn from(k: ApiKey) -> Self {
        pb::ApiKey {
            id: k.id.to_string(),
            owner_id: k.owner_id.to_string(),
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            created_at: Some(to_proto(k.created_at)),
            expires_at: k.expires_at.map(to_proto),
            last_used_at: k.last_used_at.map(to_proto),
            revoked_at: k.revoked_at.map(to_proto),
            rate_limit_per_minute: k.rate_limit_per_minute,
        }
    }
}

impl TryFrom<pb::ApiKey> for ApiKey {
    type Error = Error;

    /// A malformed key from our own peer is a bug, not the caller's fault.
    fn try_from(k: pb::ApiKey) -> Result<Self> {
        let uuid = |v: &str| Uuid::parse_str(v).map_err(|e| Error::internal(anyhow::anyhow!("peer sent {e}")));
        Ok(ApiKey {
            id: uuid(&k.id)?,
            owner_id: uuid(&k.owner_id)?,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            created_at: k
                .created_at
                .as_ref()
                .map(from_proto)
                .ok_or_else(|| Error::internal(anyhow::anyhow!("peer sent a key without created_at")))?,
            expires_at: k.expires_at.as_ref().map(from_proto),
            last_used_at: k.last_used_at.as_ref().map(from_proto),
            revoked_at: k.revoked_at.as_ref().map(from_proto),
            rate_limit_per_minute: k.rate_limit_per_minute,
        })
    }
}

fn required_key(key: Option<pb::ApiKey>) -> Result<ApiKey> {
    key.ok_or_else(|| Error::internal(anyhow::anyhow!("peer sent a response without a key")))?.try_into()
}

#[tonic::async_trait]
impl KeyService for KeyGrpc {
    async fn generate_api_key(
        &self,
        request: Request<pb::GenerateApiKeyRequest>,
    ) -> Result<Response<pb::GenerateApiKeyResponse>, Status> {
        let r = request.into_inner();
        let new = NewApiKey {
            owner_id: parse_uuid("owner_id", &r.owner_id)?,
            name: r.name,
            scopes: r.scopes,
            expires_in: r.expires_in,
            rate_limit_per_minute: r.rate_limit_per_minute,
        };
        let created = self.0.generate_api_key(new).await?;
        Ok(Response::new(pb::GenerateApiKeyResponse {
            key: Some(created.key.into()),
            secret: created.secret.expose().to_owned(),
        }))
    }

    async fn validate_api_key(
        &self,
        request: Request<pb::ValidateApiKeyRequest>,
    ) -> Result<Response<pb::ValidateApiKeyResponse>, Status> {
        let validated = self.0.validate_api_key(&request.into_inner().key).await?;
        Ok(Response::new(pb::ValidateApiKeyResponse {
            key: Some(validated.key.into()),
            rate_limit_remaining: validated.rate_limit_remaining,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let r = request.into_inner();
        let owner = match r.owner_id.as_str() {
            "" => None,
            owner => Some(parse_uuid("owner_id", owner)?),
        };
        self.0.revoke_api_key(parse_uuid("id", &r.id)?, owner).await?;
        Ok(Response::new(pb::RevokeApiKeyResponse {}))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let keys = self.0.list_api_keys(parse_uuid("owner_id", &request.into_inner().owner_id)?).await?;
        Ok(Response::new(pb::ListApiKeysResponse { items: keys.into_iter().map(Into::into).collect() }))
    }
}

/// The key service in another process.
#[derive(Clone)]
pub struct RemoteKeys {
    client: KeyServiceClient<PeerChannel>,
}

impl RemoteKeys {
    pub fn new(channel: impl Into<PeerChannel>) -> Self {
        RemoteKeys { client: KeyServiceClient::new(channel.into()) }
    }
}

#[async_trait::async_trait]
impl KeyApi for RemoteKeys {
    async fn generate_api_key(&self, new: NewApiKey) -> Result<CreatedApiKey> {
        let request = pb::GenerateApiKeyRequest {
            owner_id: new.owner_id.to_string(),
            name: new.name,
            scopes: new.scopes,
            expires_in: new.expires_in,
            rate_limit_per_minute: new.rate_limit_per_minute,
        };
        let r = self.client.clone().generate_api_key(request).await?.into_inner();
        Ok(CreatedApiKey { key: required_key(r.key)?, secret: Secret::new(r.secret) })
    }

    async fn validate_api_key(&self, key: &str) -> Result<ValidatedApiKey> {
        let request = pb::ValidateApiKeyRequest { key: key.to_owned() };
        let r = self.client.clone().validate_api_key(request).await?.into_inner();
        Ok(ValidatedApiKey { key: required_key(r.key)?, rate_limit_remaining: r.rate_limit_remaining })
    }

    async fn revoke_api_key(&self, id: Uuid, owner: Option<Uuid>) -> Result<()> {
        let request =
            pb::RevokeApiKeyRequest { id: id.to_string(), owner_id: owner.map(|o| o.to_string()).unwrap_or_default() };
        self.client.clone().revoke_api_key(request).await?;
        Ok(())
    }

    async fn list_api_keys(&self, owner: Uuid) -> Result<Vec<ApiKey>> {
        let request = pb::ListApiKeysRequest { owner_id: owner.to_string() };
        let r = self.client.clone().list_api_keys(request).await?.into_inner();
        r.items.into_iter().map(ApiKey::try_from).collect()
    }

    /// The peer answers a syntactically invalid key with `key_invalid` without touching its
    /// storage: that proves it is up and serving this API.
    async fn ready(&self) -> bool {
        let request = pb::ValidateApiKeyRequest { key: String::new() };
        match self.client.clone().validate_api_key(request).await {
            Ok(_) => true,
            Err(status) => Error::from(status).code == ErrorCode::KeyInvalid,
        }
    }
}
