//! The core layers of the request path. Each is a tower [`Layer`](tower::Layer) built on
//! [`Middleware`]: a piece of state plus one `async` function that gets the request and the
//! next service. The order they run in is fixed in `stack.rs`.

pub mod client_ip;
pub mod load_shed;
pub mod observe;
pub mod request_id;
pub mod rescue;
pub mod route;
pub mod sanitize;

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use rampart_core::{BoxError, Request, Response};
use tower::{Layer, Service};

/// A boxed response future.
pub type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send>>;

/// One middleware: cheap to clone (state behind `Arc`s).
pub trait Middleware: Clone + Send + Sync + 'static {
    /// Handle `req`, calling `next` (at most once, before returning) to go deeper.
    ///
    /// `next` is borrowed, not cloned: cloning the whole stack below at every layer was
    /// O(layers²) refcount traffic per request.
    fn call<S>(&self, req: Request, next: &mut S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static;
}

/// Turns a [`Middleware`] into a tower layer.
#[derive(Clone)]
pub struct MwLayer<M>(pub M);

impl<S, M: Clone> Layer<S> for MwLayer<M> {
    type Service = MwService<S, M>;
    fn layer(&self, inner: S) -> Self::Service {
        MwService {
            inner,
            mw: self.0.clone(),
        }
    }
}

/// The service produced by [`MwLayer`].
#[derive(Clone)]
pub struct MwService<S, M> {
    inner: S,
    mw: M,
}

impl<S, M> Service<Request> for MwService<S, M>
where
    S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    M: Middleware,
{
    type Response = Response;
    type Error = BoxError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> BoxFuture {
        // Every service below is always ready (no backpressure inside the stack; overload
        // is answered by the load-shed layer), so the one polled ready is the one called.
        self.mw.call(req, &mut self.inner)
    }
}
