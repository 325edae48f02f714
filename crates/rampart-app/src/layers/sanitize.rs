//! Layer 7: sanitize and limits.
//!
//! * `CONNECT` and `TRACE` are refused (405): a reverse proxy does not tunnel, and TRACE
//!   reflects credentials (XST).
//! * Request target longer than `server.max_uri_length`: 414.
//! * More than `server.max_headers` fields or `server.max_header_bytes` of head: 431
//!   (hyper enforces both on HTTP/1.1 before we see the request; this covers HTTP/2).
//! * Ambiguous framing, the shape of request smuggling: `Content-Length` together with
//!   `Transfer-Encoding`, several differing or unparsable `Content-Length`s,
//!   `Transfer-Encoding` on HTTP/1.0: 400.
//! * Hop-by-hop fields stripped (RFC 9110 §7.6.1), an `Upgrade` offer kept for pass-through.
//! * Body larger than the route's `max_request_body`: 413 up front from `Content-Length`, or
//!   as soon as a streamed body crosses the limit.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Method, Version, header};
use http_body::Body as _;
use rampart_core::{Body, BoxError, Error, ErrorKind, FramingConflict, Request, RoutePolicy, body};
use rampart_upstream::forward;

use super::{BoxFuture, Middleware};
use rampart_core::Response;
use tower::Service;

/// See the module docs.
#[derive(Clone)]
pub struct SanitizeMw {
    max_uri: usize,
    max_headers: usize,
    max_header_bytes: usize,
    default_max_body: u64,
}

impl SanitizeMw {
    /// With the server-wide limits.
    pub fn new(
        max_uri: usize,
        max_headers: usize,
        max_header_bytes: usize,
        default_max_body: u64,
    ) -> Self {
        Self {
            max_uri,
            max_headers,
            max_header_bytes,
            default_max_body,
        }
    }

    fn check(&self, req: &mut Request) -> Result<(), Error> {
        if req.method() == Method::CONNECT || req.method() == Method::TRACE {
            return Err(Error::new(ErrorKind::MethodNotAllowed(
                "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS".into(),
            )));
        }
        let target_len = req.uri().path_and_query().map_or(1, |pq| pq.as_str().len());
        if target_len > self.max_uri {
            return Err(Error::new(ErrorKind::UriTooLong));
        }
        let h = req.headers();
        if h.len() > self.max_headers {
            return Err(Error::new(ErrorKind::HeadersTooLarge));
        }
        // HTTP/1 heads are bounded by the parser before we see them; HTTP/2 ones are not.
        if req.version() == Version::HTTP_2 {
            let head_bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
            if head_bytes > self.max_header_bytes {
                return Err(Error::new(ErrorKind::HeadersTooLarge));
            }
        }
        // Framing.
        let te = h.contains_key(header::TRANSFER_ENCODING);
        let content_length = content_length(h)?;
        if te && (content_length.is_some() || req.extensions().get::<FramingConflict>().is_some()) {
            return Err(Error::new(ErrorKind::BadRequest)
                .with_message("both content-length and transfer-encoding"));
        }
        if te && req.version() == Version::HTTP_10 {
            return Err(
                Error::new(ErrorKind::BadRequest).with_message("transfer-encoding on http/1.0")
            );
        }
        let keep_upgrade = req.version() == Version::HTTP_11;
        forward::strip_hop_by_hop(req.headers_mut(), keep_upgrade);
        // Body limit.
        let limit = req
            .extensions()
            .get::<Arc<RoutePolicy>>()
            .map_or(self.default_max_body, |p| p.max_request_body);
        if content_length.is_some_and(|n| n > limit) {
            return Err(Error::new(ErrorKind::PayloadTooLarge));
        }
        // With a Content-Length the HTTP/1 and HTTP/2 codecs enforce it, and an empty body has
        // nothing to count: only a streamed body of unknown length needs the counting wrapper.
        if content_length.is_none() && !req.body().is_end_stream() && limit != u64::MAX {
            let b = std::mem::replace(req.body_mut(), body::empty());
            *req.body_mut() = body::boxed(LimitedBody {
                inner: b,
                remaining: limit,
            });
        }
        Ok(())
    }
}

/// The request's `Content-Length`: none, or one value (repeated identical values, also as a
/// list, are one value); unparsable or differing values are 400.
fn content_length(h: &http::HeaderMap) -> Result<Option<u64>, Error> {
    let mut found: Option<u64> = None;
    for v in h.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let n = std::str::from_utf8(part)
                .ok()
                .map(|p| p.trim_matches([' ', '\t']))
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::new(ErrorKind::BadRequest).with_message("unparsable content-length")
                })?;
            match found {
                Some(f) if f != n => {
                    return Err(Error::new(ErrorKind::BadRequest)
                        .with_message("conflicting content-length values"));
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

impl Middleware for SanitizeMw {
    fn call<S>(&self, mut req: Request, next: &mut S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        match self.check(&mut req) {
            Ok(()) => Box::pin(next.call(req)),
            Err(e) => Box::pin(async move { Err(e.into()) }),
        }
    }
}

pin_project_lite::pin_project! {
    /// A body that fails with `PayloadTooLarge` once more than `remaining` bytes pass.
    struct LimitedBody {
        #[pin]
        inner: Body,
        remaining: u64,
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > *this.remaining {
                        return Poll::Ready(Some(Err(Error::new(ErrorKind::PayloadTooLarge)
                            .with_message("request body over the limit")
                            .into())));
                    }
                    *this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
