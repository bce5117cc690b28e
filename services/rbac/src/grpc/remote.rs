//! [`RemoteRbac`]: the RBAC API of a remote rbac service (split mode).
use super::convert::bad_peer;
use crate::api::{Decision, NewRole, RbacApi, Role, UserRoles};
use uuid::Uuid;
use warden_common::Result;
use warden_common::grpc::PeerChannel;
use warden_proto::rbac::v1 as pb;
use warden_proto::rbac::v1::rbac_service_client::RbacServiceClient;

/// A client of `warden.rbac.v1.RbacService`; cheap to clone.
#[derive(Clone)]
pub struct RemoteRbac {
    client: RbacServiceClient<PeerChannel>,
}

impl RemoteRbac {
    pub fn new(channel: impl Into<PeerChannel>) -> Self {
        RemoteRbac { client: RbacServiceClient::new(channel.into()) }
    }

    /// The generated client needs `&mut self`; clones share the channel.
    fn client(&self) -> RbacServiceClient<PeerChannel> {
        self.client.clone()
    }
}

#[async_trait::async_trait]
impl RbacApi for RemoteRbac {
    async fn check_permissions(
        &self,
        user_id: Uuid,
        permissions: &[String],
        scopes: Option<&[String]>,
    ) -> Result<Vec<Decision>> {
        let request = pb::CheckPermissionsRequest {
            user_id: user_id.to_string(),
            permissions: permissions.to_vec(),
            scopes: scopes.map(<[String]>::to_vec).unwrap_or_default(),
            has_scopes: scopes.is_some(),
        };
        let response = self.client().check_permissions(request).await?.into_inner();
        // Each answer must be for the permission asked at that position, or none counts.
        if response.decisions.len() != permissions.len()
            || response.decisions.iter().zip(permissions).any(|(d, p)| &d.permission != p)
        {
            return Err(bad_peer("decisions do not match the request"));
        }
        response.decisions.into_iter().map(Decision::try_from).collect()
    }

    async fn get_user_roles(&self, user_id: Uuid) -> Result<UserRoles> {
        let request = pb::GetUserRolesRequest { user_id: user_id.to_string() };
        let response = self.client().get_user_roles(request).await?.into_inner();
        Ok(UserRoles { roles: response.roles, permissions: response.permissions })
    }

    async fn create_role(&self, role: NewRole) -> Result<Role> {
        let request = pb::CreateRoleRequest { name: role.name, permissions: role.permissions, inherits: role.inherits };
        Ok(self.client().create_role(request).await?.into_inner().into())
    }

    async fn get_role(&self, name: &str) -> Result<Role> {
        Ok(self.client().get_role(pb::GetRoleRequest { name: name.to_owned() }).await?.into_inner().into())
    }

    async fn list_roles(&self) -> Result<Vec<Role>> {
        let response = self.client().list_roles(pb::ListRolesRequest {}).await?.into_inner();
        Ok(response.roles.into_iter().map(Into::into).collect())
    }

    async fn delete_role(&self, name: &str) -> Result<()> {
        self.client().delete_role(pb::DeleteRoleRequest { name: name.to_owned() }).await?;
        Ok(())
    }

    async fn assign_role(&self, user_id: Uuid, role: &str) -> Result<()> {
        let request = pb::AssignRoleRequest { user_id: user_id.to_string(), role: role.to_owned() };
        self.client().assign_role(request).await?;
        Ok(())
    }

    async fn unassign_role(&self, user_id: Uuid, role: &str) -> Result<()> {
        let request = pb::UnassignRoleRequest { user_id: user_id.to_string(), role: role.to_owned() };
        self.client().unassign_role(request).await?;
        Ok(())
    }

    /// Ready when the remote service answers a cheap call.
    async fn ready(&self) -> bool {
        self.client().list_roles(pb::ListRolesRequest {}).await.is_ok()
    }
}
