//! `Server-Timing` (W3C Server Timing), per route, off by default (`routes[].server_timing`).
//!
//! Two middlewares, installed only when some route turns the header on:
//!
//! * [`OriginTimingMw`], just above dispatch: times the upstream (or static file service)
//!   up to the response head and leaves an [`OriginElapsed`] in the response extensions.
//!   The cache keeps response extensions on a miss, so the figure travels up; a hit has none.
//! * [`ServerTimingMw`], layer 13 (response headers): writes the header from what the
//!   layers left behind: the cache outcome (`rampart_cache::CacheOutcome`, response
//!   extension), the WAF's inspection time (`rampart_waf::WafElapsed`, request extension,
//!   set above this layer) and [`OriginElapsed`].
//!
//! ```text
//! Server-Timing: waf;dur=0.042, cache;desc=miss, upstream;dur=3.117
//! ```

use futures_util::FutureExt;
use std::{sync::Arc, time::Duration};

use http::HeaderValue;
use rampart_cache::CacheOutcome;
use rampart_core::{BoxError, Request, Response, RoutePolicy};
use rampart_waf::WafElapsed;
use tokio::time::Instant;
use tower::Service;

use super::{BoxFuture, Middleware};

/// Route policy marker: this route sends `Server-Timing`.
#[derive(Debug, Clone, Copy)]
pub struct ServerTimingOn;

/// Time the origin (upstream or static files) took to produce the response head.
#[derive(Debug, Clone, Copy)]
pub struct OriginElapsed {
    /// Elapsed time.
    pub dur: Duration,
    /// `upstream` or `static`.
    pub name: &'static str,
}

fn enabled(req: &Request) -> Option<Arc<RoutePolicy>> {
    req.extensions()
        .get::<Arc<RoutePolicy>>()
        .filter(|r| r.get::<ServerTimingOn>().is_some())
        .cloned()
}

/// Times the origin (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct OriginTimingMw;

impl Middleware for OriginTimingMw {
    fn call<S>(&self, req: Request, next: &mut S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let Some(route) = enabled(&req) else {
            return Box::pin(next.call(req));
        };
        let name = if route.upstream.is_some() {
            "upstream"
        } else {
            "static"
        };
        let start = Instant::now();
        Box::pin(next.call(req).map(move |r| {
            let mut resp = r?;
            resp.extensions_mut().insert(OriginElapsed {
                dur: start.elapsed(),
                name,
            });
            Ok(resp)
        }))
    }
}

/// Writes `Server-Timing` (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerTimingMw;

impl Middleware for ServerTimingMw {
    fn call<S>(&self, req: Request, next: &mut S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        if enabled(&req).is_none() {
            return Box::pin(next.call(req));
        }
        let waf = req.extensions().get::<WafElapsed>().map(|w| w.0);
        Box::pin(next.call(req).map(move |r| {
            let mut resp = r?;
            let value = header_value(
                waf,
                resp.extensions().get::<CacheOutcome>().copied(),
                resp.extensions().get::<OriginElapsed>().copied(),
            );
            if let Ok(v) = HeaderValue::from_str(&value)
                && !value.is_empty()
            {
                resp.headers_mut().append("server-timing", v);
            }
            Ok(resp)
        }))
    }
}

/// The header value (milliseconds with three decimals).
pub fn header_value(
    waf: Option<Duration>,
    cache: Option<CacheOutcome>,
    origin: Option<OriginElapsed>,
) -> String {
    let mut parts: Vec<String> = Vec::with_capacity(3);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if let Some(d) = waf {
        parts.push(format!("waf;dur={:.3}", ms(d)));
    }
    if let Some(c) = cache {
        parts.push(format!("cache;desc={}", c.as_str()));
    }
    if let Some(o) = origin {
        parts.push(format!("{};dur={:.3}", o.name, ms(o.dur)));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_each_metric() {
        assert_eq!(header_value(None, None, None), "");
        assert_eq!(
            header_value(
                Some(Duration::from_micros(42)),
                Some(CacheOutcome::Miss),
                Some(OriginElapsed {
                    dur: Duration::from_micros(3117),
                    name: "upstream"
                })
            ),
            "waf;dur=0.042, cache;desc=miss, upstream;dur=3.117"
        );
        assert_eq!(
            header_value(None, Some(CacheOutcome::Hit), None),
            "cache;desc=hit"
        );
    }
}
