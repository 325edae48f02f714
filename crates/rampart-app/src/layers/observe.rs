//! Layer 4: metrics and access log. Outside the rescue, so it sees every final status.
//! A request is recorded when its response body has been sent (or dropped), so durations and
//! byte counts are those of the whole exchange.

use futures_util::FutureExt;
use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Method, header};
use rampart_core::{Body, BoxError, ClientIp, Request, RequestId, RoutePolicy, body, rescue};
use rampart_telemetry::{
    AccessLog, AccessRecord, CacheField, Metrics, RouteMetrics, access::now_rfc3339,
};
use rampart_upstream::UpstreamEndpoint;
use tokio::time::Instant;

use super::{BoxFuture, Middleware};
use rampart_core::Response;
use tower::Service;

/// See the module docs.
#[derive(Clone)]
pub struct ObserveMw {
    unmatched: Arc<RouteMetrics>,
    log: AccessLog,
}

impl ObserveMw {
    /// Record into `metrics` and `log`.
    pub fn new(metrics: &Metrics, log: AccessLog) -> Self {
        Self {
            unmatched: metrics.route("unmatched"),
            log,
        }
    }
}

struct Pending {
    metrics: Arc<RouteMetrics>,
    method: Method,
    status: u16,
    start: Instant,
    log: Option<(AccessLog, AccessRecord, Arc<AtomicU64>)>,
}

impl Pending {
    fn finish(self, bytes_out: u64) {
        let elapsed = self.start.elapsed();
        self.metrics.record(&self.method, self.status, elapsed);
        if let Some((log, mut rec, bytes_in)) = self.log {
            rec.bytes_out = bytes_out;
            rec.bytes_in = bytes_in.load(Ordering::Relaxed);
            rec.duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
            log.log(rec);
        }
    }
}

impl Middleware for ObserveMw {
    fn call<S>(&self, mut req: Request, next: &mut S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let start = Instant::now();
        let policy = req.extensions().get::<Arc<RoutePolicy>>().cloned();
        let metrics = policy
            .as_ref()
            .and_then(|p| p.get::<Arc<RouteMetrics>>().cloned())
            .unwrap_or_else(|| self.unmatched.clone());
        let method = req.method().clone();
        let log = self.log.enabled().then(|| {
            let bytes_in = Arc::new(AtomicU64::new(0));
            let b = std::mem::replace(req.body_mut(), body::empty());
            *req.body_mut() = body::boxed(Counted {
                inner: b,
                count: 0,
                shared: Some(bytes_in.clone()),
                on_end: None,
            });
            let rec = AccessRecord {
                time: now_rfc3339(),
                request_id: req
                    .extensions()
                    .get::<RequestId>()
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
                client_ip: req
                    .extensions()
                    .get::<ClientIp>()
                    .map(|c| c.0.to_string())
                    .unwrap_or_default(),
                method: method.to_string(),
                host: req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
                    .or_else(|| req.uri().authority().map(|a| a.to_string()))
                    .unwrap_or_default(),
                path: req.uri().path().to_string(),
                route: policy
                    .as_ref()
                    .map_or_else(|| "unmatched".to_string(), |p| p.name.to_string()),
                status: 0,
                bytes_in: 0,
                bytes_out: 0,
                duration_ms: 0.0,
                upstream: None,
                cache: None,
            };
            (self.log.clone(), rec, bytes_in)
        });
        let id = req.extensions().get::<RequestId>().cloned();
        Box::pin(next.call(req).map(move |r| {
            let resp = match r {
                Ok(r) => r,
                // The rescue below us turns errors into responses; this is a safety net.
                Err(e) => rescue::error_response(&e, id.as_ref()),
            };
            let status = resp.status().as_u16();
            let mut log = log;
            if let Some((_, rec, _)) = log.as_mut() {
                rec.status = status;
                rec.upstream = resp
                    .extensions()
                    .get::<UpstreamEndpoint>()
                    .map(|e| e.0.to_string());
                rec.cache = resp
                    .extensions()
                    .get::<rampart_cache::CacheOutcome>()
                    .map(|c| c.as_str())
                    .or_else(|| resp.extensions().get::<CacheField>().map(|c| c.0));
            }
            let pending = Pending {
                metrics,
                method,
                status,
                start,
                log,
            };
            Ok(resp.map(|b| {
                body::boxed(Counted {
                    inner: b,
                    count: 0,
                    shared: None,
                    on_end: Some(pending),
                })
            }))
        }))
    }
}

pin_project_lite::pin_project! {
    /// Counts body bytes (also into `shared` when another task reads the count); runs
    /// `on_end` at end of stream or on drop.
    struct Counted {
        #[pin]
        inner: Body,
        count: u64,
        shared: Option<Arc<AtomicU64>>,
        on_end: Option<Pending>,
    }
    impl PinnedDrop for Counted {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(p) = this.on_end.take() {
                p.finish(*this.count);
            }
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    *this.count += d.len() as u64;
                    if let Some(shared) = this.shared {
                        shared.store(*this.count, Ordering::Relaxed);
                    }
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(p) = this.on_end.take() {
                    p.finish(*this.count);
                }
            }
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
