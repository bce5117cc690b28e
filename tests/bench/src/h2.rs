//! The load generator's gRPC transport: one HTTP/2 connection driven by hyper directly,
//! shared by the workers it carries. tonic's `Channel` puts a buffer task and a reconnect
//! layer in front of the connection: one more queue and task wake-up per call, which a load
//! generator whose connections never move has no use for. On these two cores every
//! microsecond the client spends is taken from the server it measures.
use anyhow::Context;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use tokio::net::TcpStream;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response, Uri};

/// One HTTP/2 connection; clones share it (each call is a stream of its own). It is never
/// reconnected: a scenario opens its own and keeps them for its two phases, well within the
/// ten minutes after which Warden's gRPC server asks a client to move to a new connection.
#[derive(Clone, Debug)]
pub struct H2 {
    send: SendRequest<Body>,
}

/// Opens a connection to `url` (`http://host:port`); the generated clients take it with
/// `with_origin(h2, origin)`, which gives each call its scheme and authority.
pub async fn connect(url: &str) -> anyhow::Result<(H2, Uri)> {
    let origin: Uri = url.parse().with_context(|| format!("bad gRPC url {url}"))?;
    let authority = origin.authority().with_context(|| format!("no host in {url}"))?.as_str();
    let stream = TcpStream::connect(authority).await.with_context(|| format!("connect {url}"))?;
    stream.set_nodelay(true)?;
    let (send, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the server or the last clone closes the connection.
        let _ = connection.await;
    });
    Ok((H2 { send }, origin))
}

impl Service<Request<Body>> for H2 {
    type Response = Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), hyper::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.send.send_request(request))
    }
}
