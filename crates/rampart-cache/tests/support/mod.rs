//! Test support: a counting origin behind the cache layer, and request helpers.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, request::Parts};
use http_body_util::BodyExt;
use rampart_cache::{Cache, CacheLayer, CacheMetrics, CachePolicy, CacheService, CacheSettings};
use rampart_core::{Body, BoxError, RouteId, RoutePolicy, body};
use tower::{Layer, Service, ServiceExt};

pub type Upstream = tower::util::BoxCloneService<Request<Body>, Response<Body>, BoxError>;

pub type Handler =
    Arc<dyn Fn(&Parts, usize) -> Result<Response<Body>, BoxError> + Send + Sync + 'static>;

/// A scripted origin that counts requests and records what it saw.
#[derive(Clone)]
pub struct Origin {
    pub calls: Arc<AtomicUsize>,
    inflight: Arc<AtomicUsize>,
    pub max_inflight: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Parts>>>,
    pub delay: Arc<Mutex<Duration>>,
    handler: Arc<Mutex<Handler>>,
    /// When set, every origin call waits for a permit (released by the test).
    pub gate: Arc<Mutex<Option<Arc<tokio::sync::Semaphore>>>>,
}

impl Origin {
    pub fn new(
        h: impl Fn(&Parts, usize) -> Result<Response<Body>, BoxError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            calls: Arc::default(),
            inflight: Arc::default(),
            max_inflight: Arc::default(),
            seen: Arc::default(),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
            handler: Arc::new(Mutex::new(Arc::new(h))),
            gate: Arc::default(),
        }
    }

    pub fn set(
        &self,
        h: impl Fn(&Parts, usize) -> Result<Response<Body>, BoxError> + Send + Sync + 'static,
    ) {
        *self.handler.lock().unwrap() = Arc::new(h);
    }

    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> Parts {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("origin saw a request")
    }

    pub fn service(&self) -> Upstream {
        let o = self.clone();
        Upstream::new(tower::service_fn(move |req: Request<Body>| {
            let o = o.clone();
            async move {
                let n = o.calls.fetch_add(1, Ordering::SeqCst) + 1;
                let cur = o.inflight.fetch_add(1, Ordering::SeqCst) + 1;
                o.max_inflight.fetch_max(cur, Ordering::SeqCst);
                let (parts, _body) = req.into_parts();
                o.seen.lock().unwrap().push(parts.clone());
                let gate = o.gate.lock().unwrap().clone();
                if let Some(g) = gate {
                    g.acquire().await.expect("gate open").forget();
                }
                let delay = *o.delay.lock().unwrap();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let h = o.handler.lock().unwrap().clone();
                let r = h(&parts, n);
                o.inflight.fetch_sub(1, Ordering::SeqCst);
                r
            }
        }))
    }
}

pub fn resp(status: u16, headers: &[(&str, &str)], body_text: &str) -> Response<Body> {
    let mut r = Response::new(body::full(Bytes::copy_from_slice(body_text.as_bytes())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        r.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    if !body_text.is_empty() && !r.headers().contains_key(http::header::CONTENT_LENGTH) {
        r.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(body_text.len()),
        );
    }
    r
}

pub fn route(policy: CachePolicy) -> Arc<RoutePolicy> {
    let mut r = RoutePolicy::new(RouteId(0), "test", Some(Arc::from("pool")));
    r.extensions.insert(policy);
    Arc::new(r)
}

pub struct Harness {
    pub cache: Cache,
    pub origin: Origin,
    pub route: Arc<RoutePolicy>,
    pub svc: CacheService<Upstream>,
}

impl Harness {
    pub fn new(origin: Origin) -> Self {
        Self::with(origin, CacheSettings::default(), CachePolicy::default())
    }

    pub fn with(origin: Origin, settings: CacheSettings, policy: CachePolicy) -> Self {
        let cache = Cache::new(settings, CacheMetrics::default());
        let svc = CacheLayer::new(cache.clone()).layer(origin.service());
        Self {
            cache,
            origin,
            route: route(policy),
            svc,
        }
    }

    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
        let mut r = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "example.com")
            .body(body::empty())
            .unwrap();
        for (k, v) in headers {
            r.headers_mut().append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r.extensions_mut().insert(self.route.clone());
        r
    }

    pub async fn call(&self, req: Request<Body>) -> Result<Got, BoxError> {
        let mut svc = self.svc.clone();
        let r = svc.ready().await?.call(req).await?;
        let (parts, body) = r.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok(Got {
            status: parts.status,
            headers: parts.headers,
            body: bytes,
            outcome: parts
                .extensions
                .get::<rampart_cache::CacheOutcome>()
                .copied(),
        })
    }

    pub async fn get(&self, path: &str) -> Got {
        self.call(self.req("GET", path, &[]))
            .await
            .expect("response")
    }

    pub async fn get_h(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.call(self.req("GET", path, headers))
            .await
            .expect("response")
    }
}

#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub outcome: Option<rampart_cache::CacheOutcome>,
}

impl Got {
    pub fn cs(&self) -> String {
        self.headers
            .get("cache-status")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn age(&self) -> u64 {
        self.h("age").expect("age header").parse().unwrap()
    }
}

/// Let spawned tasks (background refreshes) run, bounded.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

pub fn http_date(t: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(t)
}
