//! tonic: [`GrpcAuthLayer`], the async interceptor for gRPC servers. It has the semantics of
//! the axum layer: the credential from `authorization` (`Bearer …` / `ApiKey …`) or
//! `x-api-key` metadata, the local JWT check then `AuthService.Authorize`, one permission per
//! method, and failures as `tonic::Status` with Warden's `google.rpc.ErrorInfo` (so a caller
//! that uses `warden_common::Error::from(status)` sees Warden's code). tonic's own
//! `Interceptor` is synchronous and cannot ask Warden, hence a tower layer.
use crate::client::{Principal, WardenClient};
use crate::credential::Credential;
use axum::http;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::server::NamedService;
use tower::{Layer, Service};
use warden_common::{Error, ErrorCode};

#[derive(Clone, Debug)]
enum Rule {
    Permission(Arc<str>),
    Public,
}

/// Requires a permission on every method of the services it wraps: one default, overridden
/// per method path (`/package.Service/Method`); methods may be declared public.
///
/// ```no_run
/// use tower::Layer;
/// use warden_client::{GrpcAuthLayer, WardenClient};
///
/// # async fn run(warden: WardenClient) -> Result<(), Box<dyn std::error::Error>> {
/// use tonic::transport::Server;
/// let (_, health) = tonic_health::server::health_reporter();
/// let auth = GrpcAuthLayer::new(&warden, "items:read")
///     .method("/grpc.health.v1.Health/Watch", "items:write")
///     .public("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
/// let addr = "127.0.0.1:50052".parse()?;
/// // One service (it keeps its `NamedService`):
/// Server::builder().add_service(auth.clone().layer(health.clone())).serve(addr).await?;
/// // Or every service of a server:
/// Server::builder().layer(auth).add_service(health).serve(addr).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct GrpcAuthLayer {
    client: WardenClient,
    default: Rule,
    methods: Arc<HashMap<String, Rule>>,
}

impl GrpcAuthLayer {
    /// Every method needs `permission` unless declared otherwise.
    pub fn new(client: &WardenClient, permission: &str) -> Self {
        GrpcAuthLayer {
            client: client.clone(),
            default: Rule::Permission(permission.into()),
            methods: Arc::new(HashMap::new()),
        }
    }

    /// The method at `path` (`/package.Service/Method`) needs `permission` instead.
    pub fn method(mut self, path: &str, permission: &str) -> Self {
        Arc::make_mut(&mut self.methods).insert(path.to_owned(), Rule::Permission(permission.into()));
        self
    }

    /// The method at `path` needs no credential (health checks, reflection).
    pub fn public(mut self, path: &str) -> Self {
        Arc::make_mut(&mut self.methods).insert(path.to_owned(), Rule::Public);
        self
    }

    fn rule(&self, path: &str) -> Rule {
        self.methods.get(path).unwrap_or(&self.default).clone()
    }
}

impl<S> Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth { inner, layer: self.clone() }
    }
}

/// A gRPC service (or a whole server) behind [`GrpcAuthLayer`].
#[derive(Clone, Debug)]
pub struct GrpcAuth<S> {
    inner: S,
    layer: GrpcAuthLayer,
}

/// A wrapped generated server can still be added with `Server::add_service`.
impl<S: NamedService> NamedService for GrpcAuth<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for GrpcAuth<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let rule = self.layer.rule(request.uri().path());
        let client = self.layer.client.clone();
        Box::pin(async move {
            let permission = match rule {
                Rule::Public => return inner.call(request).await,
                Rule::Permission(permission) => permission,
            };
            match authorize_metadata(&client, request.headers(), &permission).await {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

async fn authorize_metadata(
    client: &WardenClient,
    headers: &http::HeaderMap,
    permission: &str,
) -> Result<Principal, tonic::Status> {
    let credential = Credential::from_headers(headers)?
        .ok_or_else(|| Error::new(ErrorCode::Unauthenticated, "authentication is required"))?;
    Ok(client.authorize(&credential, permission).await?)
}

/// Inside a handler: authorizes the request's caller for `permission` (for decisions that
/// depend on the message, which a layer cannot see).
pub async fn authorize_request<T>(
    client: &WardenClient,
    request: &tonic::Request<T>,
    permission: &str,
) -> Result<Principal, tonic::Status> {
    authorize_metadata(client, request.metadata().as_ref(), permission).await
}

/// Inside a handler behind [`GrpcAuthLayer`]: the caller the layer authorized.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<&Principal, tonic::Status> {
    request.extensions().get::<Principal>().ok_or_else(|| {
        tonic::Status::from(Error::internal(anyhow::anyhow!("principal() called on a method without GrpcAuthLayer")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientOptions;

    #[tokio::test]
    async fn method_rules_override_the_default() {
        let client = WardenClient::connect_lazy("http://127.0.0.1:1", "http://127.0.0.1:1", ClientOptions::default())
            .expect("client");
        let layer =
            GrpcAuthLayer::new(&client, "items:read").method("/x.Items/Add", "items:write").public("/x.Items/Ping");
        let permission = |path: &str| match layer.rule(path) {
            Rule::Permission(p) => Some(p.to_string()),
            Rule::Public => None,
        };
        assert_eq!(permission("/x.Items/List").as_deref(), Some("items:read"));
        assert_eq!(permission("/x.Items/Add").as_deref(), Some("items:write"));
        assert_eq!(permission("/x.Items/Ping"), None);
    }
}
