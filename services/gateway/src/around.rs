//! Middleware as plain tower services: an [`Around`] says what runs around the inner service
//! (the access rule of a route, the request metrics), and [`AroundLayer`] wraps a service in it.
//!
//! Hand-written rather than axum's `from_fn`: that boxes a clone of the inner service for
//! every request as well as the future, and moves the larger future through more layers;
//! malloc, free and memmove under the two `from_fn` layers took ~10 % of a protected
//! request's CPU (perf, BENCHMARKS.md session 9).
use axum::extract::Request;
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// What runs around the inner service for one request.
pub(crate) trait Around: Clone + Send + Sync + 'static {
    fn around<S>(
        &self,
        request: Request,
        inner: S,
    ) -> impl Future<Output = Result<Response, Infallible>> + Send + 'static
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static;
}

/// Wraps a service in `A`.
#[derive(Clone, Copy)]
pub(crate) struct AroundLayer<A>(pub(crate) A);

impl<S, A: Clone> Layer<S> for AroundLayer<A> {
    type Service = AroundService<S, A>;

    fn layer(&self, inner: S) -> AroundService<S, A> {
        AroundService { inner, around: self.0.clone() }
    }
}

#[derive(Clone)]
pub(crate) struct AroundService<S, A> {
    inner: S,
    around: A,
}

impl<S, A> Service<Request> for AroundService<S, A>
where
    A: Around,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service that was polled ready serves this request; its clone waits for the next.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        // Boxed as it is: an `async` wrapper around it would hold the future twice (as the
        // captured value and as the one awaited), and every request copies the box's bytes.
        Box::pin(self.around.around(request, inner))
    }
}
