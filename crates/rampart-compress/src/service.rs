//! [`CompressLayer`] / [`CompressService`]: the representation layer, right above the cache.
//!
//! On the way down it parses `Accept-Encoding`, keeps the client's preconditions and `Range`,
//! decodes a `Content-Encoding` request body when the route allows it (capped), and marks the
//! request [`RepresentationsAbove`] so the cache leaves preconditions and ranges to it.
//!
//! On the way up:
//!
//! ```text
//! answer from the cache (StoredBody)  -> pick the encoding among the stored variants
//!                                        (a missing one is made once, on the blocking pool,
//!                                        while this answer uses what exists: a hit never
//!                                        compresses); weak ETag when transformed;
//!                                        If-Match / If-Unmodified-Since -> 412,
//!                                        If-None-Match / If-Modified-Since -> 304,
//!                                        Range / If-Range -> 206 (multipart for several) / 416
//! anything else (miss, pass, uncached) -> compress while streaming when worth it:
//!                                        200, no Content-Encoding, no no-transform, allowed
//!                                        type, at least min_size, an acceptable coding
//! ```

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{
    HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header, response::Parts,
};
use http_body_util::BodyExt;
use rampart_core::{
    Body, BoxError, Error, ErrorKind, RoutePolicy, body as core_body,
    conditional::{self, NOT_MODIFIED_FIELDS, Precondition, Validators},
    negotiate::{Accepted, Choice},
    range::{self, RangeOutcome},
    stored::{RepresentationsAbove, StoredBody, StoredVariants},
};
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use crate::{
    body::CompressBody,
    coding::{Coding, CodingSet, StreamEncoder, decode, encode},
    config::CompressPolicy,
    metrics::{CompressMetrics, Mode},
    validators,
};

/// Most variants being made at once (each takes a blocking-pool thread).
pub const MAX_BACKGROUND: usize = 2;

/// Shared state of the layer: metrics and the bound on background work.
#[derive(Debug, Clone)]
pub struct CompressLayer {
    metrics: CompressMetrics,
    background: Arc<Semaphore>,
}

impl CompressLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: CompressMetrics) -> Self {
        Self {
            metrics,
            background: Arc::new(Semaphore::new(MAX_BACKGROUND)),
        }
    }
}

impl<S> Layer<S> for CompressLayer {
    type Service = CompressService<S>;

    fn layer(&self, inner: S) -> CompressService<S> {
        CompressService {
            inner,
            shared: self.clone(),
        }
    }
}

/// The service (see the module docs).
#[derive(Debug, Clone)]
pub struct CompressService<S> {
    inner: S,
    shared: CompressLayer,
}

/// What the request asked for, kept for the response.
struct Asked {
    method: Method,
    accepted: Accepted,
    /// Only the precondition and range fields (usually none: no allocation).
    conditions: HeaderMap,
    policy: Option<Arc<CompressPolicy>>,
}

const CONDITION_FIELDS: [header::HeaderName; 6] = [
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
];

impl<S> Service<Request<Body>> for CompressService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let policy = req
            .extensions()
            .get::<Arc<RoutePolicy>>()
            .and_then(|r| r.get::<Arc<CompressPolicy>>())
            .cloned();
        let mut conditions = HeaderMap::new();
        for name in CONDITION_FIELDS {
            for v in req.headers().get_all(&name) {
                conditions.append(name.clone(), v.clone());
            }
        }
        let asked = Asked {
            method: req.method().clone(),
            accepted: Accepted::from_headers(req.headers()),
            conditions,
            policy,
        };
        req.extensions_mut().insert(RepresentationsAbove);
        let shared = self.shared.clone();
        let decode_max = asked.policy.as_ref().and_then(|p| p.request_max);
        let needs_decode = decode_max.is_some()
            && req
                .headers()
                .get(header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .and_then(Coding::parse)
                .is_some();
        if !needs_decode {
            return Box::pin(ShapeFuture {
                fut: self.inner.call(req),
                shared,
                asked: Some(asked),
            });
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let decoded: BoxFuture<'static, Result<Request<Body>, BoxError>> = Box::pin({
            let metrics = shared.metrics.clone();
            async move { decode_request(req, decode_max.unwrap_or(0), &metrics).await }
        });
        Box::pin(async move {
            let req = decoded.await?;
            let fut: BoxFuture<'static, _> = Box::pin(inner.call(req));
            let resp = fut.await?;
            shared.shape(resp, &asked)
        })
    }
}

pin_project_lite::pin_project! {
    /// The inner call, then [`CompressLayer::shape`] (a plain future: one box per request).
    struct ShapeFuture<F> {
        #[pin]
        fut: F,
        shared: CompressLayer,
        asked: Option<Asked>,
    }
}

impl<F> std::future::Future for ShapeFuture<F>
where
    F: std::future::Future<Output = Result<Response<Body>, BoxError>>,
{
    type Output = Result<Response<Body>, BoxError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = std::task::ready!(this.fut.poll(cx))?;
        match this.asked.take() {
            Some(asked) => Poll::Ready(this.shared.shape(resp, &asked)),
            None => Poll::Ready(Ok(resp)),
        }
    }
}

/// Decode a request body sent with a content coding (capped: a decompression bomb gets 413).
async fn decode_request(
    req: Request<Body>,
    max: u64,
    metrics: &CompressMetrics,
) -> Result<Request<Body>, BoxError> {
    let (mut parts, body) = req.into_parts();
    let Some(coding) = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .and_then(Coding::parse)
    else {
        return Ok(Request::from_parts(parts, body));
    };
    // The encoded body is already capped by the route's body limit (layer 7).
    let encoded = body.collect().await?.to_bytes();
    let decoded = block::block_in_place_or_inline(|| decode(coding, &encoded, max));
    let decoded = decoded.map_err(|e| {
        let kind = match e {
            crate::error::DecodeError::TooLarge { .. } => ErrorKind::PayloadTooLarge,
            crate::error::DecodeError::Corrupt(_) => ErrorKind::BadRequest,
        };
        Box::new(Error::new(kind).with_message(format!("request body: {e}"))) as BoxError
    })?;
    metrics.operation(coding, Mode::Decode);
    parts.headers.remove(header::CONTENT_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(decoded.len()));
    Ok(Request::from_parts(parts, core_body::full(decoded)))
}

/// `tokio::task::block_in_place` needs the multi-thread runtime; decoding a request body is
/// bounded (cap), so on other runtimes it simply runs here.
mod block {
    pub(crate) fn block_in_place_or_inline<R>(f: impl FnOnce() -> R) -> R {
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
            _ => f(),
        }
    }
}

/// A `Content-Length`-style value: ASCII digits only, no sign, no spaces.
fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn no_transform(h: &HeaderMap) -> bool {
    h.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
    })
}

fn add_vary(h: &mut HeaderMap) {
    let present = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.eq_ignore_ascii_case("accept-encoding")
        });
    if !present {
        h.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

fn weaken_etag(h: &mut HeaderMap) {
    if let Some(e) = h.get(header::ETAG) {
        let w = validators::weaken(e);
        h.insert(header::ETAG, w);
    }
}

impl CompressLayer {
    fn shape(&self, mut resp: Response<Body>, asked: &Asked) -> Result<Response<Body>, BoxError> {
        match resp.extensions_mut().remove::<StoredBody>() {
            Some(StoredBody(stored)) => self.serve_stored(resp, stored, asked),
            None => self.streamed(resp, asked),
        }
    }

    /// Whether a response's type and size make it worth compressing under `p` (the caller
    /// also checks `no-transform`).
    fn worth(p: &CompressPolicy, h: &HeaderMap, len: Option<u64>) -> bool {
        p.enabled
            && !p.prefer.is_empty()
            && len.is_none_or(|n| n >= p.min_size)
            && h.get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| p.types.matches(ct))
    }

    /// A response that did not come from a stored entry: compress it as it streams.
    fn streamed(&self, resp: Response<Body>, asked: &Asked) -> Result<Response<Body>, BoxError> {
        let Some(p) = asked.policy.as_deref() else {
            return Ok(resp);
        };
        let (mut parts, body) = resp.into_parts();
        if parts.status != StatusCode::OK
            || asked.method == Method::HEAD
            || parts.headers.contains_key(header::CONTENT_ENCODING)
            || parts.headers.contains_key(header::CONTENT_RANGE)
        {
            return Ok(Response::from_parts(parts, body));
        }
        let len = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if !Self::worth(p, &parts.headers, len) || no_transform(&parts.headers) {
            return Ok(Response::from_parts(parts, body));
        }
        // The answer now depends on Accept-Encoding, whichever way it goes.
        add_vary(&mut parts.headers);
        let all: CodingSet = p.prefer.iter().copied().collect();
        let coding = match asked.accepted.choose(&p.prefer, all, true) {
            Choice::Coding(c) => c,
            Choice::Identity | Choice::NotAcceptable => {
                return Ok(Response::from_parts(parts, body));
            }
        };
        let enc = StreamEncoder::new(coding, p.levels.get(coding))?;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::ACCEPT_RANGES);
        parts.headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.as_str()),
        );
        weaken_etag(&mut parts.headers);
        let body = core_body::boxed(CompressBody::new(body, enc, coding, self.metrics.clone()));
        Ok(Response::from_parts(parts, body))
    }

    /// Start making `coding` of a stored entry on the blocking pool, unless it is being made
    /// or too much background work runs already (a later hit asks again).
    fn make_later(&self, stored: &Arc<dyn StoredVariants>, coding: Coding, level: i32) {
        let Ok(permit) = self.background.clone().try_acquire_owned() else {
            return;
        };
        if !stored.claim(coding.as_str()) {
            return;
        }
        let stored = stored.clone();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let made = identity_of(&*stored, &metrics)
                .and_then(|src| encode(coding, level, &src).ok().map(|b| (src.len(), b)));
            match made {
                Some((n, b)) if b.len() < n => {
                    metrics.operation(coding, Mode::Stored);
                    metrics.ratio(coding, n as u64, b.len() as u64);
                    stored.add_variant(coding.as_str(), b);
                }
                // Not smaller, or failed: keep the claim so it is not retried for this entry.
                Some(_) => metrics.operation(coding, Mode::Stored),
                None => stored.release(coding.as_str()),
            }
        });
    }

    /// A response built from a stored entry.
    fn serve_stored(
        &self,
        resp: Response<Body>,
        stored: Arc<dyn StoredVariants>,
        asked: &Asked,
    ) -> Result<Response<Body>, BoxError> {
        let (mut parts, body) = resp.into_parts();
        if parts.status != StatusCode::OK {
            return Ok(Response::from_parts(parts, body));
        }
        let stored_coding = match stored.stored_coding() {
            "identity" => None,
            other => match Coding::parse(other) {
                Some(c) => Some(c),
                // A coding we cannot read: as stored, only preconditions apply.
                None => return self.finish(parts, stored.body(), asked),
            },
        };
        let default_policy;
        let p = match asked.policy.as_deref() {
            Some(p) => p,
            None => {
                default_policy = CompressPolicy {
                    enabled: false,
                    ..CompressPolicy::default()
                };
                &default_policy
            }
        };
        let identity_len = match stored_coding {
            None => Some(stored.body().len() as u64),
            Some(_) => stored.variant("identity").map(|b| b.len() as u64),
        };
        let transformable = !no_transform(&parts.headers);
        let worth = stored_coding.is_none()
            && transformable
            && Self::worth(p, &parts.headers, identity_len);
        let mut available = CodingSet::EMPTY;
        if let Some(c) = stored_coding {
            available = available.with(c);
        }
        // Only a coding the client accepts can be chosen: look up just those variants (none
        // at all for a request without Accept-Encoding).
        for &c in p.prefer.iter().filter(|c| asked.accepted.accepts(**c)) {
            if stored.variant(c.as_str()).is_some() {
                available = available.with(c);
            }
        }
        // Offered: what this route would send (and a coding the body is stored in), on the
        // stack: there are only `Coding::ALL.len()` codings.
        let mut offered_buf = [Coding::Gzip; Coding::ALL.len() + 1];
        let mut n_offered = 0;
        if worth {
            for &c in &p.prefer {
                if n_offered < Coding::ALL.len() && !offered_buf[..n_offered].contains(&c) {
                    offered_buf[n_offered] = c;
                    n_offered += 1;
                }
            }
        }
        if let Some(c) = stored_coding
            && !offered_buf[..n_offered].contains(&c)
        {
            offered_buf[n_offered] = c;
            n_offered += 1;
        }
        let offered = &offered_buf[..n_offered];
        let identity_ok = stored_coding.is_none() || transformable;
        if worth {
            let could: CodingSet = p.prefer.iter().copied().collect();
            if let Choice::Coding(want) = asked.accepted.choose(offered, could, identity_ok)
                && !available.contains(want)
            {
                self.make_later(&stored, want, p.stored_levels.get(want));
            }
        }
        let choice = asked.accepted.choose(offered, available, identity_ok);
        let (coding, bytes) = match choice {
            Choice::Coding(c) if Some(c) == stored_coding => (Some(c), stored.body()),
            Choice::Coding(c) => match stored.variant(c.as_str()) {
                Some(b) => (Some(c), b),
                None => (stored_coding, stored.body()),
            },
            Choice::Identity => match stored_coding {
                None => (None, stored.body()),
                Some(c) => match self.identity_now(&stored, c) {
                    Some(b) => (None, b),
                    // Undecodable: send it as stored.
                    None => (Some(c), stored.body()),
                },
            },
            Choice::NotAcceptable => {
                // Identity refused and no acceptable variant exists yet: make one now if
                // this route may (counted as `inline`), else 406 (RFC 9110 §12.5.3).
                let could: CodingSet = p.prefer.iter().copied().collect();
                match asked.accepted.choose(&p.prefer, could, false) {
                    Choice::Coding(c) if p.enabled && transformable && stored_coding.is_none() => {
                        let src = stored.body();
                        let b = encode(c, p.levels.get(c), &src)?;
                        self.metrics.operation(c, Mode::Inline);
                        self.metrics.ratio(c, src.len() as u64, b.len() as u64);
                        (Some(c), b)
                    }
                    _ => {
                        return Err(Box::new(Error::new(ErrorKind::NotAcceptable).with_message(
                            "compression: identity refused and no acceptable content coding",
                        )));
                    }
                }
            }
        };
        let h = &mut parts.headers;
        if worth || stored_coding.is_some() {
            add_vary(h);
        }
        if coding != stored_coding {
            weaken_etag(h);
            match coding {
                Some(c) => {
                    h.insert(
                        header::CONTENT_ENCODING,
                        HeaderValue::from_static(c.as_str()),
                    );
                }
                None => {
                    h.remove(header::CONTENT_ENCODING);
                }
            }
        }
        if let Some(c) = coding
            && let Some(n) = identity_len
        {
            self.metrics.served(c, n, bytes.len() as u64);
        }
        self.finish(parts, bytes, asked)
    }

    /// The identity body of an entry stored encoded: the stored decoded copy, or decode it
    /// now (once: the result is stored beside the entry).
    fn identity_now(&self, stored: &Arc<dyn StoredVariants>, c: Coding) -> Option<Bytes> {
        if let Some(b) = stored.variant("identity") {
            return Some(b);
        }
        let b = decode(c, &stored.body(), DECODE_MAX).ok()?;
        self.metrics.operation(c, Mode::Decode);
        if stored.claim("identity") {
            stored.add_variant("identity", b.clone());
        }
        Some(b)
    }

    /// Preconditions, then Range, then the body (none for HEAD).
    fn finish(
        &self,
        mut parts: Parts,
        bytes: Bytes,
        asked: &Asked,
    ) -> Result<Response<Body>, BoxError> {
        let len = bytes.len() as u64;
        // A stored identity hit usually carries both fields right already: keep them then
        // (no formatting, no allocation).
        if parts
            .headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| parse_u64(v.as_bytes()) != Some(len))
        {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        if parts
            .headers
            .get(header::ACCEPT_RANGES)
            .is_none_or(|v| v.as_bytes() != b"bytes")
        {
            parts
                .headers
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
        let v = Validators::from_headers(&parts.headers);
        match conditional::evaluate(&asked.method, &asked.conditions, v) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                let mut h = HeaderMap::new();
                for name in NOT_MODIFIED_FIELDS {
                    for v in parts.headers.get_all(&name) {
                        h.append(name.clone(), v.clone());
                    }
                }
                parts.status = StatusCode::NOT_MODIFIED;
                parts.headers = h;
                return Ok(Response::from_parts(parts, core_body::empty()));
            }
            Precondition::Failed => {
                parts.status = StatusCode::PRECONDITION_FAILED;
                for name in [
                    header::CONTENT_ENCODING,
                    header::CONTENT_TYPE,
                    header::ACCEPT_RANGES,
                ] {
                    parts.headers.remove(name);
                }
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                return Ok(Response::from_parts(parts, core_body::empty()));
            }
        }
        if asked.method == Method::HEAD {
            return Ok(Response::from_parts(parts, core_body::empty()));
        }
        if asked.method != Method::GET {
            return Ok(Response::from_parts(parts, core_body::full(bytes)));
        }
        match range::evaluate(&asked.conditions, len, v) {
            RangeOutcome::Full => Ok(Response::from_parts(parts, core_body::full(bytes))),
            RangeOutcome::Unsatisfiable => {
                parts.status = StatusCode::RANGE_NOT_SATISFIABLE;
                parts
                    .headers
                    .insert(header::CONTENT_RANGE, range::unsatisfied_range(len));
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                Ok(Response::from_parts(parts, core_body::empty()))
            }
            RangeOutcome::Partial(ranges) => {
                parts.status = StatusCode::PARTIAL_CONTENT;
                let body = if let [r] = ranges.as_slice() {
                    parts
                        .headers
                        .insert(header::CONTENT_RANGE, range::content_range(r, len));
                    bytes.slice(*r.start() as usize..=*r.end() as usize)
                } else {
                    let boundary = boundary();
                    let (b, ct) = range::multipart(
                        &bytes,
                        &ranges,
                        parts.headers.get(header::CONTENT_TYPE),
                        &boundary,
                    );
                    parts.headers.insert(header::CONTENT_TYPE, ct);
                    b
                };
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                Ok(Response::from_parts(parts, core_body::full(body)))
            }
        }
    }
}

/// Cap on decoding a stored body for a client that does not accept its coding.
const DECODE_MAX: u64 = 256 * 1024 * 1024;

/// The identity body of a stored entry (decoded if stored encoded).
fn identity_of(stored: &dyn StoredVariants, metrics: &CompressMetrics) -> Option<Bytes> {
    match stored.stored_coding() {
        "identity" => Some(stored.body()),
        other => {
            if let Some(b) = stored.variant("identity") {
                return Some(b);
            }
            let c = Coding::parse(other)?;
            let b = decode(c, &stored.body(), DECODE_MAX).ok()?;
            metrics.operation(c, Mode::Decode);
            Some(b)
        }
    }
}

/// A multipart boundary unlikely to occur in the body.
fn boundary() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "rampart-{:016x}",
        xxhash_rust::xxh3::xxh3_64(&n.to_le_bytes()) ^ std::process::id() as u64
    )
}
