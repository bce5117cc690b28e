//! Who may call a route. Every route is declared with an [`Access`] in the route table
//! (`routes.rs`); the middleware here authenticates the caller, decides the permission
//! through RbacService, and hands the handler a [`Caller`]. A route without a declared
//! access does not exist, so nothing is open by accident.
use crate::around::Around;
use crate::extract::credential;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header::HeaderName};
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use tower::Service;
use warden_auth::{Credential, Principal};
use warden_common::{Error, ErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credential needed.
    Public,
    /// Any authenticated caller; `api_keys` says whether API keys are accepted.
    Authenticated { api_keys: bool },
    /// An authenticated caller (bearer or API key) holding this permission.
    Permission(&'static str),
}

/// The authenticated caller, available to handlers as an extension.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub principal: Principal,
    pub credential: Credential,
}

pub(crate) fn unauthenticated() -> ApiError {
    ApiError::from(Error::new(ErrorCode::Unauthenticated, "authentication is required"))
}

/// Authenticates the request's credential, if any.
pub(crate) async fn authenticate(state: &AppState, headers: &HeaderMap) -> ApiResult<Option<Caller>> {
    let Some(credential) = credential(headers)? else { return Ok(None) };
    let presented = matches!(credential, Credential::AccessToken(_));
    match state.auth.authenticate(&credential).await {
        Ok(principal) => Ok(Some(Caller { principal, credential })),
        Err(e) if presented && e.code.http_status() == 401 => Err(ApiError::from(e).presented()),
        Err(e) => Err(e.into()),
    }
}

/// Decides one permission for a caller; a refusal is an error with the decision's code.
pub(crate) async fn require(state: &AppState, caller: &Caller, permission: &str) -> ApiResult<()> {
    let p = &caller.principal;
    let decisions = state.rbac.check_permissions(p.user_id, &[permission.to_owned()], p.scopes()).await?;
    match decisions.into_iter().next() {
        Some(d) if d.allowed => Ok(()),
        Some(d) => {
            tracing::info!(target: "audit", event = "access_denied", user_id = %p.user_id, permission, reason = %d.reason);
            let code = d.code.unwrap_or(ErrorCode::InsufficientPermissions);
            Err(Error::new(code, format!("{permission} is required")).into())
        }
        None => Err(Error::internal(anyhow::anyhow!("rbac answered no decision")).into()),
    }
}

/// The access rule of one route, around its handler: authenticates the caller and checks
/// the route's permission first; a refusal is answered here and the handler never sees the
/// request.
#[derive(Clone)]
pub(crate) struct Enforce {
    state: AppState,
    access: Access,
}

impl Enforce {
    pub(crate) fn new(state: AppState, access: Access) -> Self {
        Enforce { state, access }
    }
}

impl Around for Enforce {
    fn around<S>(
        &self,
        request: Request,
        inner: S,
    ) -> impl Future<Output = Result<Response, Infallible>> + Send + 'static
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        enforce(self.state.clone(), self.access, request, inner)
    }
}

/// An `async` block, not an `async fn`: an `async fn` copies its arguments (the request, 240
/// bytes) into locals beside themselves, and the box of every request holds both. Only the
/// rate-limit headers' figures outlive the check; the caller goes into the request.
#[expect(clippy::manual_async_fn, reason = "an async fn would hold the request twice (see above)")]
fn enforce<S>(
    state: AppState,
    access: Access,
    mut request: Request,
    mut inner: S,
) -> impl Future<Output = Result<Response, Infallible>> + use<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    async move {
        let limits = match check(&state, access, request.headers()).await {
            Ok(caller) => {
                let limits = caller.as_ref().and_then(|c| c.principal.api_key.clone());
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                limits
            }
            Err(e) => return Ok(axum::response::IntoResponse::into_response(e)),
        };
        let Ok(mut response) = inner.call(request).await;
        if let Some(key) = limits.filter(|k| k.rate_limit_per_minute > 0) {
            let headers = response.headers_mut();
            headers.insert(
                HeaderName::from_static("ratelimit-policy"),
                HeaderValue::from_str(&format!("{};w=60", key.rate_limit_per_minute)).expect("ascii"),
            );
            headers.insert(
                HeaderName::from_static("ratelimit"),
                HeaderValue::from_str(&format!(
                    "limit={}, remaining={}",
                    key.rate_limit_per_minute, key.rate_limit_remaining
                ))
                .expect("ascii"),
            );
        }
        Ok(response)
    }
}

async fn check(state: &AppState, access: Access, headers: &HeaderMap) -> ApiResult<Option<Caller>> {
    if access == Access::Public {
        return Ok(None);
    }
    // An API key on a bearer-only route is refused before it is validated, so it costs
    // nothing from the key's rate limit.
    if access == (Access::Authenticated { api_keys: false })
        && matches!(credential(headers)?, Some(Credential::ApiKey(_)))
    {
        return Err(Error::new(ErrorCode::AccessDenied, "this endpoint needs a bearer token, not an api key").into());
    }
    let caller = authenticate(state, headers).await?.ok_or_else(unauthenticated)?;
    match access {
        Access::Public => Ok(None),
        Access::Authenticated { api_keys } => {
            if !api_keys && caller.principal.api_key.is_some() {
                return Err(
                    Error::new(ErrorCode::AccessDenied, "this endpoint needs a bearer token, not an api key").into()
                );
            }
            Ok(Some(caller))
        }
        Access::Permission(permission) => {
            require(state, &caller, permission).await?;
            Ok(Some(caller))
        }
    }
}
