//! [`MinifyLayer`]: minify responses of routes with a [`MinifyPolicy`], once per cache miss.
//!
//! Placed between the cache and dispatch, so what the cache stores is already minified and a
//! hit costs nothing extra. A response is minified only when all hold: status 200, a
//! `Content-Type` of a kind the route asks for, no `Content-Encoding` (other than
//! `identity`), no `Cache-Control: no-transform`, and a body within the size limit (the
//! cache's `max_object_size`; a larger body streams through after the first `max_size`
//! bytes were buffered). The minified response gets a new `Content-Length` and a weak
//! `ETag` (`W/` + the origin's tag: same content, different bytes).
//!
//! Range requests on such routes are sent on without `Range` / `If-Range` so the minified
//! full body is what comes back (a server may ignore `Range`); the cache answers ranges of
//! the stored, minified entry.

use crate::BoxFut;
use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use rampart_core::{Body, BoxError, RoutePolicy, body};
use tower::{Layer, Service};

use crate::{
    config::{MinifyKind, MinifyPolicy},
    metrics::MinifyMetrics,
    minify,
};

/// Installs the minification transform.
#[derive(Debug, Clone)]
pub struct MinifyLayer {
    metrics: MinifyMetrics,
}

impl MinifyLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: MinifyMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MinifyLayer {
    type Service = MinifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MinifyService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`MinifyLayer`].
#[derive(Debug, Clone)]
pub struct MinifyService<S> {
    inner: S,
    metrics: MinifyMetrics,
}

impl<S> Service<Request<Body>> for MinifyService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFut;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> BoxFut {
        let policy = req
            .extensions()
            .get::<Arc<RoutePolicy>>()
            .and_then(|r| r.get::<Arc<MinifyPolicy>>())
            .cloned();
        let Some(policy) = policy.filter(|_| req.method() == Method::GET) else {
            return Box::pin(self.inner.call(req));
        };
        req.headers_mut().remove(header::RANGE);
        req.headers_mut().remove(header::IF_RANGE);
        // Boxed here, where its type is concrete (rustc's "`Send` is not general enough"
        // on async blocks holding an associated-type future).
        let fut: BoxFut = Box::pin(self.inner.call(req));
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let resp = fut.await?;
            Ok(transform(resp, &policy, &metrics).await)
        })
    }
}

/// The kind to minify `resp` as, if it qualifies (see the module docs).
fn eligible(resp: &Response<Body>, policy: &MinifyPolicy) -> Option<MinifyKind> {
    if resp.status() != StatusCode::OK {
        return None;
    }
    let h = resp.headers();
    if h.get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return None;
    }
    if h.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("no-transform"))
    }) {
        return None;
    }
    let kind = MinifyKind::of_content_type(h.get(header::CONTENT_TYPE)?.to_str().ok()?)?;
    policy.kinds.contains(&kind).then_some(kind)
}

async fn transform(
    resp: Response<Body>,
    policy: &MinifyPolicy,
    metrics: &MinifyMetrics,
) -> Response<Body> {
    if resp.status() == StatusCode::NOT_MODIFIED {
        // A revalidation of a stored minified entry: keep its validator weak, as stored.
        let (mut parts, b) = resp.into_parts();
        weaken_etag(&mut parts.headers);
        return Response::from_parts(parts, b);
    }
    let Some(kind) = eligible(&resp, policy) else {
        return resp;
    };
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > policy.max_size) {
        metrics.result(&policy.route, kind, "skipped");
        return resp;
    }
    let (mut parts, mut b) = resp.into_parts();
    // Buffer up to the limit; anything unusual (a trailer frame, an error, too many bytes)
    // replays what was read and streams the rest unchanged.
    let mut buf = BytesMut::new();
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut whole = true;
    loop {
        match b.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    buf.extend_from_slice(&data);
                    frames.push_back(Frame::data(data));
                    if buf.len() as u64 > policy.max_size {
                        whole = false;
                        break;
                    }
                }
                Err(other) => {
                    frames.push_back(other);
                    whole = false;
                    break;
                }
            },
            Some(Err(e)) => {
                let replay = Replay {
                    frames,
                    rest: Some(body::boxed(ErrBody(Some(e)))),
                };
                return Response::from_parts(parts, body::boxed(replay));
            }
        }
    }
    if !whole {
        metrics.result(&policy.route, kind, "skipped");
        let replay = Replay {
            frames,
            rest: Some(b),
        };
        return Response::from_parts(parts, body::boxed(replay));
    }
    let input = buf.freeze();
    let job = input.clone();
    let out = tokio::task::spawn_blocking(move || minify::minify(kind, &job))
        .await
        .ok()
        .flatten();
    match out {
        Some(out) => {
            metrics.minified(&policy.route, kind, (input.len() - out.len()) as u64);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
            weaken_etag(&mut parts.headers);
            Response::from_parts(parts, body::full(out))
        }
        None => {
            metrics.result(&policy.route, kind, "passthrough");
            Response::from_parts(parts, body::full(input))
        }
    }
}

/// `"x"` -> `W/"x"` (same content, different bytes).
fn weaken_etag(h: &mut http::HeaderMap) {
    if let Some(tag) = h.get(header::ETAG)
        && !tag.as_bytes().starts_with(b"W/")
    {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(tag.as_bytes());
        if let Ok(v) = HeaderValue::from_bytes(&weak) {
            h.insert(header::ETAG, v);
        }
    }
}

/// Frames already read, then the rest of the body.
struct Replay {
    frames: VecDeque<Frame<Bytes>>,
    rest: Option<Body>,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        let mut h = self
            .rest
            .as_ref()
            .map_or(SizeHint::with_exact(0), |r| r.size_hint());
        h.set_lower(h.lower() + buffered);
        if let Some(u) = h.upper() {
            h.set_upper(u + buffered);
        }
        h
    }
}

/// A body that yields one error (an upstream body error met while buffering).
struct ErrBody(Option<BoxError>);

impl http_body::Body for ErrBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.take().map(Err))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tower::ServiceExt;

    fn route(kinds: Vec<MinifyKind>, max: u64) -> Arc<RoutePolicy> {
        let mut p = RoutePolicy::new(rampart_core::RouteId(0), "r", None);
        p.extensions.insert(Arc::new(MinifyPolicy {
            kinds,
            max_size: max,
            route: Arc::from("r"),
        }));
        Arc::new(p)
    }

    async fn run(
        route: Arc<RoutePolicy>,
        headers: &'static [(&'static str, &'static str)],
        status: u16,
        text: &'static str,
    ) -> (Response<Bytes>, MinifyMetrics) {
        let metrics = MinifyMetrics::default();
        let svc = MinifyLayer::new(metrics.clone()).layer(tower::service_fn(
            move |req: Request<Body>| async move {
                assert!(req.headers().get(header::RANGE).is_none());
                let mut r = Response::new(body::full(text));
                *r.status_mut() = StatusCode::from_u16(status).unwrap();
                for (k, v) in headers {
                    r.headers_mut().insert(*k, HeaderValue::from_static(v));
                }
                Ok::<_, BoxError>(r)
            },
        ));
        let mut req = Request::new(body::empty());
        req.headers_mut()
            .insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        req.extensions_mut().insert(route);
        let resp = svc.oneshot(req).await.unwrap();
        let (parts, b) = resp.into_parts();
        let bytes = b.collect().await.unwrap().to_bytes();
        (Response::from_parts(parts, bytes), metrics)
    }

    const JSON: &str = "{ \"a\" : 1 ,  \"b\" : [ 1 , 2 ] }";

    #[tokio::test]
    async fn minifies_eligible_json_and_weakens_the_etag() {
        let (r, m) = run(
            route(vec![MinifyKind::Json], 1 << 20),
            &[("content-type", "application/json"), ("etag", "\"v1\"")],
            200,
            JSON,
        )
        .await;
        assert_eq!(r.body().as_ref(), b"{\"a\":1,\"b\":[1,2]}");
        assert_eq!(r.headers()["etag"], "W/\"v1\"");
        assert_eq!(r.headers()["content-length"], "17");
        let st = m.stats();
        assert_eq!(st.minified, 1);
        assert_eq!(st.saved_bytes[3], (JSON.len() - 17) as u64);
    }

    #[tokio::test]
    async fn leaves_ineligible_responses_alone() {
        for (kinds, headers, status, max) in [
            (
                vec![MinifyKind::Css],
                &[("content-type", "application/json")][..],
                200,
                1 << 20,
            ),
            (
                vec![MinifyKind::Json],
                &[("content-type", "application/json")][..],
                404,
                1 << 20,
            ),
            (
                vec![MinifyKind::Json],
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                ][..],
                200,
                1 << 20,
            ),
            (
                vec![MinifyKind::Json],
                &[
                    ("content-type", "application/json"),
                    ("cache-control", "public, no-transform"),
                ][..],
                200,
                1 << 20,
            ),
            (
                vec![MinifyKind::Json],
                &[("content-type", "application/json")][..],
                200,
                8,
            ),
        ] {
            let headers: &'static [(&'static str, &'static str)] =
                Box::leak(headers.to_vec().into_boxed_slice());
            let (r, m) = run(route(kinds, max), headers, status, JSON).await;
            assert_eq!(r.body().as_ref(), JSON.as_bytes(), "{headers:?}");
            assert_eq!(m.stats().minified, 0);
        }
    }

    #[tokio::test]
    async fn broken_input_passes_byte_exact() {
        let broken = "{ \"a\" : 1 ,  \"b\" : [ 1 , 2 }";
        let (r, m) = run(
            route(vec![MinifyKind::Json], 1 << 20),
            &[("content-type", "application/json")],
            200,
            broken,
        )
        .await;
        assert_eq!(r.body().as_ref(), broken.as_bytes());
        assert_eq!(m.stats().passthrough, 1);
    }
}
