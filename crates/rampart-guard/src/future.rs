//! The response future shared by the guard layers: no allocation per request.
//!
//! Every layer of this crate answers a request in one of three ways: at once (a refusal, a
//! preflight), by calling the inner service and touching its answer on the way out (headers,
//! ban counters), or, rarely, through an `async` block that has to await something before it
//! can call the inner service (a remote rate-limit store, a JWKS fetch). [`GuardFuture`] covers
//! the three without boxing the first two, so a request that passes through the protection
//! layers pays no heap allocation for their futures.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use futures_util::future::BoxFuture;
use rampart_core::BoxError;

type Resp = http::Response<rampart_core::Body>;

/// Work done on the inner service's result on its way out.
pub trait After: Send + 'static {
    /// Turn the inner result into this layer's result.
    fn after(self, result: Result<Resp, BoxError>) -> Result<Resp, BoxError>;
}

/// Nothing to do on the way out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pass;

impl After for Pass {
    fn after(self, result: Result<Resp, BoxError>) -> Result<Resp, BoxError> {
        result
    }
}

/// `None`: nothing to do (the layer has no policy for this request).
impl<A: After> After for Option<A> {
    fn after(self, result: Result<Resp, BoxError>) -> Result<Resp, BoxError> {
        match self {
            Some(a) => a.after(result),
            None => result,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a guard layer's service (see the module doc). The variants' fields are
    /// private in spirit: build it with the constructors below.
    #[project = GuardFutureProj]
    #[allow(missing_docs)] // pin-project-lite takes no doc comments on variant fields
    pub enum GuardFuture<F, A> {
        /// Answered without calling the inner service (`result` is taken when polled).
        Ready { result: Option<Result<Resp, BoxError>> },
        /// The inner service's future; `after` runs on its output.
        Inner { #[pin] fut: F, after: Option<A> },
        /// The slow path: an `async` block that awaits before calling the inner service.
        Boxed { fut: BoxFuture<'static, Result<Resp, BoxError>> },
    }
}

impl<F, A> GuardFuture<F, A> {
    /// An answer that needs no inner call.
    pub fn ready(result: Result<Resp, BoxError>) -> Self {
        Self::Ready {
            result: Some(result),
        }
    }

    /// A refusal.
    pub fn error(err: impl Into<BoxError>) -> Self {
        Self::ready(Err(err.into()))
    }

    /// The inner call, with `after` applied to its output.
    pub fn inner(fut: F, after: A) -> Self {
        Self::Inner {
            fut,
            after: Some(after),
        }
    }

    /// The slow path.
    pub fn boxed(fut: BoxFuture<'static, Result<Resp, BoxError>>) -> Self {
        Self::Boxed { fut }
    }
}

impl<F> GuardFuture<F, Pass> {
    /// The inner call, untouched.
    pub fn pass(fut: F) -> Self {
        Self::inner(fut, Pass)
    }
}

impl<F, A> Future for GuardFuture<F, A>
where
    F: Future<Output = Result<Resp, BoxError>>,
    A: After,
{
    type Output = Result<Resp, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardFutureProj::Ready { result } => Poll::Ready(
                result
                    .take()
                    .unwrap_or_else(|| Err("guard future polled after completion".into())),
            ),
            GuardFutureProj::Inner { fut, after } => {
                let result = std::task::ready!(fut.poll(cx));
                Poll::Ready(match after.take() {
                    Some(a) => a.after(result),
                    None => result,
                })
            }
            GuardFutureProj::Boxed { fut } => fut.as_mut().poll(cx),
        }
    }
}
