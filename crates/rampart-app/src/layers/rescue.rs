//! Layer 5: rescue, the one place errors become responses (`rampart_core::rescue`).

use rampart_core::{Request, RequestId, rescue};

use super::{BoxFuture, Middleware};
use rampart_core::{BoxError, Response};
use tower::Service;

/// See the module docs.
#[derive(Clone, Default)]
pub struct RescueMw;

impl Middleware for RescueMw {
    fn call<S>(&self, req: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let id = req.extensions().get::<RequestId>().cloned();
        let fut: BoxFuture = Box::pin(next.call(req));
        Box::pin(async move {
            match fut.await {
                Ok(r) => Ok(r),
                Err(e) => Ok(rescue::error_response(&e, id.as_ref())),
            }
        })
    }
}
