//! Layer 1: request id. A well-formed incoming `x-request-id` is kept, otherwise one is
//! generated; it goes into the request extensions, upstream as `x-request-id`, and back on
//! every response.

use futures_util::FutureExt;
use http::HeaderName;
use rampart_core::{Request, RequestId};
use tracing::Instrument;

use super::{BoxFuture, Middleware};
use rampart_core::{BoxError, Response};
use tower::Service;

/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// See the module docs.
#[derive(Clone, Default)]
pub struct RequestIdMw;

impl Middleware for RequestIdMw {
    fn call<S>(&self, mut req: Request, next: &mut S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let id = req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(RequestId::from_header)
            .unwrap_or_else(RequestId::generate);
        req.headers_mut()
            .insert(X_REQUEST_ID.clone(), id.header_value().clone());
        req.extensions_mut().insert(id.clone());
        let span = tracing::debug_span!("request", id = %id);
        Box::pin(
            next.call(req)
                .map(move |r| {
                    let mut resp = r?;
                    resp.headers_mut()
                        .insert(X_REQUEST_ID.clone(), id.header_value().clone());
                    Ok(resp)
                })
                .instrument(span),
        )
    }
}
