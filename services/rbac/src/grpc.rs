//! The gRPC edge: [`RbacGrpc`] serves any [`RbacApi`] as `warden.rbac.v1.RbacService`, and
//! [`RemoteRbac`] is the [`RbacApi`] of a remote rbac service. Prost types stay here; errors
//! cross as `tonic::Status` with `ErrorInfo` through `warden_common`'s `From` impls.
mod convert;
mod remote;

pub use remote::RemoteRbac;

use crate::api::{NewRole, SharedRbac};
use convert::parse_user_id;
use tonic::{Request, Response, Status};
use warden_common::Error;
use warden_proto::rbac::v1 as pb;
use warden_proto::rbac::v1::rbac_service_server::RbacServiceServer;

/// Serves an [`RbacApi`](crate::RbacApi) over gRPC.
pub struct RbacGrpc(pub SharedRbac);

/// The tonic service for a router.
pub fn server(api: SharedRbac) -> RbacServiceServer<RbacGrpc> {
    RbacServiceServer::new(RbacGrpc(api))
}

#[tonic::async_trait]
impl pb::rbac_service_server::RbacService for RbacGrpc {
    async fn check_permissions(
        &self,
        request: Request<pb::CheckPermissionsRequest>,
    ) -> Result<Response<pb::CheckPermissionsResponse>, Status> {
        let request = request.into_inner();
        let user_id = parse_user_id(&request.user_id)?;
        // Scopes without the flag would silently widen an API key to its owner's rights.
        if !request.has_scopes && !request.scopes.is_empty() {
            return Err(Error::validation("scopes are set but has_scopes is false").into());
        }
        let scopes = request.has_scopes.then_some(request.scopes.as_slice());
        let decisions = self.0.check_permissions(user_id, &request.permissions, scopes).await?;
        // An empty request is not a grant of anything.
        let allowed = !decisions.is_empty() && decisions.iter().all(|d| d.allowed);
        Ok(Response::new(pb::CheckPermissionsResponse {
            allowed,
            decisions: decisions.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_user_roles(
        &self,
        request: Request<pb::GetUserRolesRequest>,
    ) -> Result<Response<pb::GetUserRolesResponse>, Status> {
        let user_id = parse_user_id(&request.into_inner().user_id)?;
        let roles = self.0.get_user_roles(user_id).await?;
        Ok(Response::new(pb::GetUserRolesResponse { roles: roles.roles, permissions: roles.permissions }))
    }

    async fn create_role(&self, request: Request<pb::CreateRoleRequest>) -> Result<Response<pb::Role>, Status> {
        let pb::CreateRoleRequest { name, permissions, inherits } = request.into_inner();
        let role = self.0.create_role(NewRole { name, permissions, inherits }).await?;
        Ok(Response::new(role.into()))
    }

    async fn get_role(&self, request: Request<pb::GetRoleRequest>) -> Result<Response<pb::Role>, Status> {
        Ok(Response::new(self.0.get_role(&request.into_inner().name).await?.into()))
    }

    async fn list_roles(&self, _: Request<pb::ListRolesRequest>) -> Result<Response<pb::ListRolesResponse>, Status> {
        let roles = self.0.list_roles().await?;
        Ok(Response::new(pb::ListRolesResponse { roles: roles.into_iter().map(Into::into).collect() }))
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        self.0.delete_role(&request.into_inner().name).await?;
        Ok(Response::new(pb::DeleteRoleResponse {}))
    }

    async fn assign_role(
        &self,
        request: Request<pb::AssignRoleRequest>,
    ) -> Result<Response<pb::AssignRoleResponse>, Status> {
        let request = request.into_inner();
        self.0.assign_role(parse_user_id(&request.user_id)?, &request.role).await?;
        Ok(Response::new(pb::AssignRoleResponse {}))
    }

    async fn unassign_role(
        &self,
        request: Request<pb::UnassignRoleRequest>,
    ) -> Result<Response<pb::UnassignRoleResponse>, Status> {
        let request = request.into_inner();
        self.0.unassign_role(parse_user_id(&request.user_id)?, &request.role).await?;
        Ok(Response::new(pb::UnassignRoleResponse {}))
    }
}
