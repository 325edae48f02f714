//! Layer 5: rescue, the one place errors become responses (`rampart_core::rescue`).
//! Responses it builds get the security headers too (layer 13 only sees answers from below
//! it, and a refusal from layers 6-12 never passes through 13).

use futures_util::FutureExt;
use std::sync::Arc;

use rampart_core::{ConnInfo, Request, RequestId, rescue};
use rampart_guard::SecurityHeadersPolicy;

use super::{BoxFuture, Middleware};
use rampart_core::{BoxError, Response};
use tower::Service;

/// See the module docs.
#[derive(Clone, Default)]
pub struct RescueMw {
    headers: Option<Arc<SecurityHeadersPolicy>>,
}

impl RescueMw {
    /// Add these security headers to error responses (`None`: none).
    pub fn new(headers: Option<Arc<SecurityHeadersPolicy>>) -> Self {
        Self { headers }
    }
}

impl Middleware for RescueMw {
    fn call<S>(&self, req: Request, next: &mut S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let id = req.extensions().get::<RequestId>().cloned();
        let tls = req.extensions().get::<ConnInfo>().is_some_and(|c| c.tls);
        let headers = self.headers.clone();
        Box::pin(next.call(req).map(move |r| match r {
            Ok(r) => Ok(r),
            Err(e) => {
                let mut resp = rescue::error_response(&e, id.as_ref());
                if let Some(h) = headers {
                    h.apply(resp.headers_mut(), tls);
                }
                Ok(resp)
            }
        }))
    }
}
