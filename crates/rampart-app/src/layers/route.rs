//! Layer 3: route. Host + path + method -> `Arc<RoutePolicy>` in the extensions. A request
//! that matches nothing goes on without a policy; the dispatcher answers it 404 (through the
//! rescue), so the layers above never fail.

use std::sync::Arc;

use rampart_core::Request;

use super::{BoxFuture, Middleware};
use crate::routes::RouteTable;
use rampart_core::{BoxError, Response};
use tower::Service;

/// See the module docs.
#[derive(Clone)]
pub struct RouteMw {
    table: Arc<RouteTable>,
}

impl RouteMw {
    /// Over a compiled table.
    pub fn new(table: Arc<RouteTable>) -> Self {
        Self { table }
    }
}

impl Middleware for RouteMw {
    fn call<S>(&self, mut req: Request, next: &mut S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        if let Some(policy) = self.table.route(&req) {
            req.extensions_mut().insert(policy.clone());
        }
        Box::pin(next.call(req))
    }
}
