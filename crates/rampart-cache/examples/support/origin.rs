//! What the hit benchmark (`benches/hit.rs`) and the `hit_loop` example put behind the
//! cache: the same 1 KiB object with four typical headers, fresh for an hour, and a route
//! with the default cache policy. (A directory without `main.rs`: not a target of its own.)

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response};
use rampart_cache::CachePolicy;
use rampart_core::{Body, RouteId, RoutePolicy, body};

/// The origin's answer: `payload` with `content-type`, `cache-control`, `etag` and
/// `content-length`.
pub fn hot_object(payload: &Bytes) -> Response<Body> {
    let mut r = Response::new(body::full(payload.clone()));
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("text/plain"));
    h.insert("cache-control", HeaderValue::from_static("max-age=3600"));
    h.insert("etag", HeaderValue::from_static("\"abc\""));
    h.insert("content-length", payload.len().into());
    r
}

/// A route with the default cache policy.
pub fn route() -> Arc<RoutePolicy> {
    let mut route = RoutePolicy::new(RouteId(0), "bench", None);
    route.extensions.insert(CachePolicy::default());
    Arc::new(route)
}
