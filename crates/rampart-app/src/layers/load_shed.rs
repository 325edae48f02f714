//! Layer 6: load shed and request deadline. At most `server.max_concurrent_requests`
//! requests are processed at once; the next one is answered 503 at once (never queued).
//! Each request must produce its response head within `server.request_timeout` (504).

use futures_util::FutureExt;
use std::{sync::Arc, time::Duration};

use rampart_core::{Error, ErrorKind, Request};
use tokio::sync::Semaphore;

use super::{BoxFuture, Middleware};
use rampart_core::{BoxError, Response};
use tower::Service;

/// See the module docs.
#[derive(Clone)]
pub struct LoadShedMw {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl LoadShedMw {
    /// At most `max` in flight, each with this deadline.
    pub fn new(max: usize, timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.max(1))),
            timeout,
        }
    }
}

impl Middleware for LoadShedMw {
    fn call<S>(&self, req: Request, next: &mut S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Box::pin(async { Err(Error::new(ErrorKind::Overloaded).into()) });
        };
        let timeout = self.timeout;
        // `map` instead of an async block: the inner future is not boxed a second time.
        Box::pin(tokio::time::timeout(timeout, next.call(req)).map(move |r| {
            drop(permit);
            match r {
                Ok(r) => r,
                Err(e) => Err(Error::new(ErrorKind::GatewayTimeout)
                    .with_message("request deadline reached")
                    .with_source(e)
                    .into()),
            }
        }))
    }
}
