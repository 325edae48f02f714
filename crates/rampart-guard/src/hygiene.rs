//! Request hygiene per route: allowed methods (405 + `Allow`), max query parameters (400),
//! header deny / require rules (400), header strip / allow-list rules (headers removed), max
//! body (413) and a slow-body read timeout (408).
//!
//! Runs with the request limits (stack layer 7, after the core's global caps), or anywhere
//! before dispatch: it needs only the route policy. The body checks wrap the request body, so
//! they cost nothing until the body is read, and fire while it streams.

use std::{
    collections::HashSet,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderName, Method, header};
use http_body_util::BodyExt;
use rampart_core::{BoxError, Error, ErrorKind, RoutePolicy};
use tokio::time::{Instant, Sleep};

use crate::{
    events::{EventSink, SecurityEvent, SecurityEventKind},
    future::{GuardFuture, Pass},
};

/// A route's hygiene rules (a [`RoutePolicy`] extension, or the layer default).
#[derive(Debug, Clone, Default)]
pub struct HygienePolicy {
    /// Allowed methods (`None` = any). HEAD is allowed whenever GET is.
    pub methods: Option<HashSet<Method>>,
    /// Maximum number of query parameters.
    pub max_query_params: Option<usize>,
    /// Requests carrying any of these headers are refused (400).
    pub deny_headers: Vec<HeaderName>,
    /// Requests missing any of these headers are refused (400).
    pub require_headers: Vec<HeaderName>,
    /// Headers silently removed before the request goes on.
    pub strip_headers: Vec<HeaderName>,
    /// If set, every request header not in this set is removed (an allow list).
    pub allow_headers: Option<HashSet<HeaderName>>,
    /// Maximum body size in bytes (413); checked on `Content-Length` up front and while
    /// streaming.
    pub max_body: Option<u64>,
    /// Maximum time between two body chunks, and before the first one (408).
    pub body_read_timeout: Option<Duration>,
}

impl HygienePolicy {
    fn allow_value(&self) -> String {
        let Some(methods) = &self.methods else {
            return String::new();
        };
        let mut v: Vec<&str> = methods.iter().map(Method::as_str).collect();
        if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
            v.push("HEAD");
        }
        v.sort_unstable();
        v.join(", ")
    }

    /// Check the request head; `Err((error, rule))` when refused.
    fn check(&self, req: &http::Request<rampart_core::Body>) -> Result<(), (Error, &'static str)> {
        if let Some(m) = &self.methods {
            // A handful of methods: comparing them is cheaper than hashing (SipHash) the one
            // asked for.
            let has = |want: &Method| {
                if m.len() <= 8 {
                    m.iter().any(|x| x == want)
                } else {
                    m.contains(want)
                }
            };
            let ok = has(req.method()) || (*req.method() == Method::HEAD && has(&Method::GET));
            if !ok {
                return Err((
                    Error::new(ErrorKind::MethodNotAllowed(self.allow_value())),
                    "method",
                ));
            }
        }
        if let Some(max) = self.max_query_params {
            let n = req
                .uri()
                .query()
                .map(|q| q.split('&').filter(|p| !p.is_empty()).count())
                .unwrap_or(0);
            if n > max {
                return Err((
                    Error::new(ErrorKind::BadRequest)
                        .with_message(format!("{n} query parameters, max {max}")),
                    "max_query_params",
                ));
            }
        }
        for h in &self.deny_headers {
            if req.headers().contains_key(h) {
                return Err((
                    Error::new(ErrorKind::BadRequest).with_message(format!("header {h} denied")),
                    "deny_header",
                ));
            }
        }
        for h in &self.require_headers {
            if !req.headers().contains_key(h) {
                return Err((
                    Error::new(ErrorKind::BadRequest).with_message(format!("header {h} required")),
                    "require_header",
                ));
            }
        }
        if let Some(max) = self.max_body {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max) {
                return Err((Error::new(ErrorKind::PayloadTooLarge), "max_body"));
            }
        }
        Ok(())
    }
}

pin_project_lite::pin_project! {
    /// A body wrapper enforcing a size cap and an idle read timeout.
    pub struct GuardedBody {
        #[pin]
        inner: rampart_core::Body,
        max: Option<u64>,
        seen: u64,
        timeout: Option<Duration>,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl GuardedBody {
    /// Wrap `inner`.
    pub fn new(inner: rampart_core::Body, max: Option<u64>, timeout: Option<Duration>) -> Self {
        Self {
            inner,
            max,
            seen: 0,
            timeout,
            sleep: timeout.map(tokio::time::sleep),
        }
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.max.is_some_and(|m| *this.seen > m) {
                        return Poll::Ready(Some(Err(Box::new(Error::new(
                            ErrorKind::PayloadTooLarge,
                        )))));
                    }
                }
                if let (Some(t), Some(sleep)) = (this.timeout, this.sleep.as_mut().as_pin_mut()) {
                    sleep.reset(Instant::now() + *t);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                if let Some(sleep) = this.sleep.as_pin_mut()
                    && sleep.poll(cx).is_ready()
                {
                    return Poll::Ready(Some(Err(Box::new(
                        Error::new(ErrorKind::RequestTimeout)
                            .with_message("request body read timed out"),
                    ))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Request hygiene layer.
#[derive(Clone, Default)]
pub struct HygieneLayer {
    default: Option<Arc<HygienePolicy>>,
    events: EventSink,
}

impl HygieneLayer {
    /// Routes without a [`HygienePolicy`] use `default` (none = no checks).
    pub fn new(default: Option<Arc<HygienePolicy>>, events: EventSink) -> Self {
        Self { default, events }
    }
}

impl<S> tower::Layer<S> for HygieneLayer {
    type Service = HygieneService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        HygieneService {
            inner,
            default: self.default.clone(),
            events: self.events.clone(),
        }
    }
}

/// The service of [`HygieneLayer`].
#[derive(Clone)]
pub struct HygieneService<S> {
    inner: S,
    default: Option<Arc<HygienePolicy>>,
    events: EventSink,
}

type Req = http::Request<rampart_core::Body>;
type Resp = http::Response<rampart_core::Body>;

impl<S, F> tower::Service<Req> for HygieneService<S>
where
    S: tower::Service<Req, Response = Resp, Error = BoxError, Future = F> + Send + 'static,
    F: std::future::Future<Output = Result<Resp, BoxError>> + Send + 'static,
{
    type Response = Resp;
    type Error = BoxError;
    type Future = GuardFuture<F, Pass>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let policy: Option<&HygienePolicy> = req
            .extensions()
            .get::<Arc<RoutePolicy>>()
            .and_then(|r| r.get::<HygienePolicy>())
            .or(self.default.as_deref());
        let Some(policy) = policy else {
            return GuardFuture::pass(self.inner.call(req));
        };
        if let Err((err, rule)) = policy.check(&req) {
            self.events.emit(
                SecurityEvent::from_request(SecurityEventKind::RequestRejected, &req)
                    .rule(rule)
                    .details(err.to_string()),
            );
            return GuardFuture::error(err);
        }
        let (max_body, read_timeout) = (policy.max_body, policy.body_read_timeout);
        let wrap_body = max_body.is_some() || read_timeout.is_some();
        let strip = !policy.strip_headers.is_empty() || policy.allow_headers.is_some();
        if !strip && !wrap_body {
            return GuardFuture::pass(self.inner.call(req));
        }
        let (mut parts, mut body) = req.into_parts();
        if strip
            && let Some(policy) = parts
                .extensions
                .get::<Arc<RoutePolicy>>()
                .and_then(|r| r.get::<HygienePolicy>())
                .or(self.default.as_deref())
        {
            strip_headers(policy, &mut parts.headers);
        }
        if wrap_body {
            body = GuardedBody::new(body, max_body, read_timeout).boxed_unsync();
        }
        GuardFuture::pass(self.inner.call(http::Request::from_parts(parts, body)))
    }
}

fn strip_headers(policy: &HygienePolicy, headers: &mut http::HeaderMap) {
    for h in &policy.strip_headers {
        headers.remove(h);
    }
    if let Some(allow) = &policy.allow_headers {
        let drop: Vec<HeaderName> = headers
            .keys()
            .filter(|k| !allow.contains(*k))
            .cloned()
            .collect();
        for h in drop {
            headers.remove(&h);
        }
    }
}
