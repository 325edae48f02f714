//! CORS (stack layer 9): preflights answered by the gateway, before auth and rate limits;
//! response headers added to actual requests from allowed origins.
//!
//! Origins are exact (`https://app.example.com`), wildcard subdomains
//! (`https://*.example.com`: any non-empty subdomain, not the apex) or regexes
//! (`~^https://[a-z]+\.example\.org$`, always anchored). `*` allows any origin and cannot be
//! combined with credentials (refused by [`CorsPolicy::new`]). Every response of a route with
//! an origin-dependent policy gets `Vary: Origin`, so shared caches do not mix origins.

use std::{
    collections::HashSet,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use rampart_core::{BoxError, Error, ErrorKind, RoutePolicy};
use regex::Regex;

use crate::{
    events::{EventSink, SecurityEvent, SecurityEventKind},
    future::{After, GuardFuture},
    reference,
};

/// A CORS / origin configuration error.
#[derive(Debug, thiserror::Error)]
pub enum CorsConfigError {
    /// `*` origin with credentials.
    #[error("cors: allowed origin \"*\" cannot be combined with allow_credentials = true")]
    WildcardWithCredentials,
    /// A malformed origin pattern.
    #[error(
        "cors: origin pattern {0:?} must be scheme://host[:port], https://*.domain, ~regex or *"
    )]
    BadOrigin(String),
    /// A regex that does not compile.
    #[error("cors: origin regex {pattern:?}: {source}")]
    BadRegex {
        /// The pattern.
        pattern: String,
        /// The error.
        #[source]
        source: regex::Error,
    },
    /// A method or header name that is not a valid token.
    #[error("cors: invalid method or header name {0:?}")]
    BadToken(String),
}

/// A set of allowed origins.
#[derive(Debug, Clone, Default)]
pub struct OriginMatcher {
    any: bool,
    exact: HashSet<String>,
    wildcard: Vec<(String, String)>,
    regex: Vec<Regex>,
}

impl OriginMatcher {
    /// Compile origin patterns (see the module doc).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, CorsConfigError> {
        let mut m = Self::default();
        for p in patterns {
            let p = p.as_ref().trim();
            if p == "*" {
                m.any = true;
            } else if let Some(re) = p.strip_prefix('~') {
                let anchored =
                    format!("^(?:{})$", re.trim_start_matches('^').trim_end_matches('$'));
                let r = Regex::new(&anchored).map_err(|source| CorsConfigError::BadRegex {
                    pattern: re.to_owned(),
                    source,
                })?;
                m.regex.push(r);
            } else if let Some((scheme, rest)) = p.split_once("://*.") {
                if !valid_scheme(scheme) || !valid_hostport(rest) {
                    return Err(CorsConfigError::BadOrigin(p.to_owned()));
                }
                m.wildcard.push((
                    format!("{}://", scheme.to_ascii_lowercase()),
                    format!(".{}", rest.to_ascii_lowercase()),
                ));
            } else {
                let (scheme, rest) = p
                    .split_once("://")
                    .ok_or_else(|| CorsConfigError::BadOrigin(p.to_owned()))?;
                if !valid_scheme(scheme) || !valid_hostport(rest) {
                    return Err(CorsConfigError::BadOrigin(p.to_owned()));
                }
                m.exact.insert(p.to_ascii_lowercase());
            }
        }
        Ok(m)
    }

    /// Whether any origin is allowed (`*`).
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// Whether `origin` (the `Origin` header value) is allowed.
    pub fn matches(&self, origin: &str) -> bool {
        if self.any {
            return true;
        }
        if origin.len() > 512 {
            return false;
        }
        let lower = origin.to_ascii_lowercase();
        if self.exact.contains(&lower) {
            return true;
        }
        for (scheme, suffix) in &self.wildcard {
            if let Some(host) = lower
                .strip_prefix(scheme.as_str())
                .and_then(|r| r.strip_suffix(suffix.as_str()))
                && !host.is_empty()
                && host
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
                && !host.starts_with('.')
                && !host.ends_with('.')
            {
                return true;
            }
        }
        self.regex.iter().any(|r| r.is_match(origin))
    }
}

fn valid_scheme(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

fn valid_hostport(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(['/', '@', '?', '#', ' '])
        && s.bytes().all(|c| c.is_ascii_graphic())
}

/// A route's compiled CORS policy (a [`RoutePolicy`] extension).
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: OriginMatcher,
    methods: Vec<Method>,
    allow_methods: HeaderValue,
    headers: Option<HashSet<HeaderName>>,
    allow_headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

/// Inputs of [`CorsPolicy::new`] (already parsed config values).
#[derive(Debug, Clone)]
pub struct CorsSettings {
    /// Origin patterns.
    pub origins: Vec<String>,
    /// Allowed methods (default GET, HEAD, POST).
    pub methods: Vec<String>,
    /// Allowed request headers; `["*"]` allows any requested header (not with credentials: then
    /// the requested ones are echoed). Default: none beyond the CORS-safelisted ones.
    pub headers: Vec<String>,
    /// Response headers exposed to scripts.
    pub expose_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// Preflight cache lifetime (`Access-Control-Max-Age`), default 10 min.
    pub max_age: Option<Duration>,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            methods: vec!["GET".into(), "HEAD".into(), "POST".into()],
            headers: Vec::new(),
            expose_headers: Vec::new(),
            credentials: false,
            max_age: Some(Duration::from_secs(600)),
        }
    }
}

impl CorsPolicy {
    /// Compile and validate.
    pub fn new(s: &CorsSettings) -> Result<Self, CorsConfigError> {
        let origins = OriginMatcher::new(&s.origins)?;
        if origins.any && s.credentials {
            return Err(CorsConfigError::WildcardWithCredentials);
        }
        let methods = s
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| CorsConfigError::BadToken(m.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let join = |v: &[String]| v.join(", ");
        let allow_methods = HeaderValue::from_str(
            &methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        )
        .map_err(|_| CorsConfigError::BadToken(join(&s.methods)))?;
        let any_header = s.headers.iter().any(|h| h == "*");
        let headers = if any_header {
            None
        } else {
            Some(
                s.headers
                    .iter()
                    .map(|h| {
                        HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                            .map_err(|_| CorsConfigError::BadToken(h.clone()))
                    })
                    .collect::<Result<HashSet<_>, _>>()?,
            )
        };
        let allow_headers = match &headers {
            Some(set) if !set.is_empty() => Some(
                HeaderValue::from_str(&join(&s.headers).to_ascii_lowercase())
                    .map_err(|_| CorsConfigError::BadToken(join(&s.headers)))?,
            ),
            _ => None,
        };
        let expose = if s.expose_headers.is_empty() {
            None
        } else {
            for h in &s.expose_headers {
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| CorsConfigError::BadToken(h.clone()))?;
            }
            Some(
                HeaderValue::from_str(&join(&s.expose_headers))
                    .map_err(|_| CorsConfigError::BadToken(join(&s.expose_headers)))?,
            )
        };
        Ok(Self {
            origins,
            methods,
            allow_methods,
            headers,
            allow_headers,
            expose,
            credentials: s.credentials,
            max_age: s.max_age.map(|d| HeaderValue::from(d.as_secs())),
        })
    }

    /// Whether the `Access-Control-Allow-Origin` value depends on the request's `Origin`.
    fn varies(&self) -> bool {
        !self.origins.any || self.credentials
    }

    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.origins.any && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// Answer a preflight: `Ok(headers)` for a 204, `Err(reason)` when refused.
    fn preflight(
        &self,
        req: &http::HeaderMap,
        origin: &HeaderValue,
    ) -> Result<http::HeaderMap, &'static str> {
        let origin_str = origin.to_str().map_err(|_| "origin")?;
        if !self.origins.matches(origin_str) {
            return Err("origin");
        }
        let method = req
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or("method")?;
        if !self.methods.contains(&method) {
            return Err("method");
        }
        let requested = req
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect::<Vec<_>>();
        if let Some(allowed) = &self.headers {
            for h in &requested {
                let ok = HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map(|n| allowed.contains(&n))
                    .unwrap_or(false);
                if !ok {
                    return Err("header");
                }
            }
        }
        let mut out = http::HeaderMap::new();
        out.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin_value(origin),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        );
        match (&self.headers, &self.allow_headers) {
            (Some(_), Some(v)) => {
                out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
            }
            (None, _) if !requested.is_empty() => {
                if let Ok(v) = HeaderValue::from_str(&requested.join(", ")) {
                    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
                }
            }
            _ => {}
        }
        if self.credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.max_age {
            out.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        if self.varies() {
            out.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        out.append(
            header::VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Ok(out)
    }

    /// Add CORS headers to an actual response.
    fn decorate(&self, origin: Option<&HeaderValue>, resp: &mut http::HeaderMap) {
        if self.varies() {
            add_vary_origin(resp);
        }
        let Some(origin) = origin else { return };
        let Ok(origin_str) = origin.to_str() else {
            return;
        };
        if !self.origins.matches(origin_str) {
            return;
        }
        resp.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin_value(origin),
        );
        if self.credentials {
            resp.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.expose {
            resp.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }
}

/// Add `Vary: Origin` unless a `Vary` field already lists `Origin` (or `*`); one hash lookup.
fn add_vary_origin(h: &mut http::HeaderMap) {
    let origin = HeaderValue::from_static("Origin");
    match h.try_entry(header::VARY) {
        Ok(http::header::Entry::Vacant(e)) => {
            let _ = e.try_insert(origin);
        }
        Ok(http::header::Entry::Occupied(mut e)) => {
            if !e.iter().any(|v| lists_origin(v.as_bytes())) {
                e.append(origin);
            }
        }
        Err(_) => {}
    }
}

/// Whether a `Vary` value lists `Origin` or `*`.
fn lists_origin(v: &[u8]) -> bool {
    v.split(|&c| c == b',').any(|t| {
        let t = t.trim_ascii();
        t == b"*" || t.eq_ignore_ascii_case(b"origin")
    })
}

/// Layer 9: CORS.
#[derive(Clone, Default)]
pub struct CorsLayer {
    default: Option<Arc<CorsPolicy>>,
    events: EventSink,
}

impl CorsLayer {
    /// Routes without a [`CorsPolicy`] use `default` (none = no CORS handling).
    pub fn new(default: Option<Arc<CorsPolicy>>, events: EventSink) -> Self {
        Self { default, events }
    }
}

impl<S> tower::Layer<S> for CorsLayer {
    type Service = CorsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CorsService {
            inner,
            default: self.default.clone(),
            events: self.events.clone(),
        }
    }
}

/// The service of [`CorsLayer`].
#[derive(Clone)]
pub struct CorsService<S> {
    inner: S,
    default: Option<Arc<CorsPolicy>>,
    events: EventSink,
}

type Req = http::Request<rampart_core::Body>;
type Resp = http::Response<rampart_core::Body>;

/// Where the request's CORS policy lives.
pub enum Which {
    /// In the route's policy.
    Route(Arc<RoutePolicy>),
    /// The layer's default.
    Default(Arc<CorsPolicy>),
}

impl Which {
    fn get(&self) -> Option<&CorsPolicy> {
        match self {
            Self::Route(p) => p.get::<CorsPolicy>(),
            Self::Default(p) => Some(p),
        }
    }
}

/// The way out of [`CorsService`]: CORS response headers for the request's `Origin`.
pub struct Decorate {
    which: Which,
    origin: Option<HeaderValue>,
}

impl After for Decorate {
    fn after(self, result: Result<Resp, BoxError>) -> Result<Resp, BoxError> {
        let mut resp = result?;
        if let Some(policy) = self.which.get() {
            policy.decorate(self.origin.as_ref(), resp.headers_mut());
        }
        Ok(resp)
    }
}

impl<S, F> tower::Service<Req> for CorsService<S>
where
    S: tower::Service<Req, Response = Resp, Error = BoxError, Future = F> + Clone + Send + 'static,
    F: std::future::Future<Output = Result<Resp, BoxError>> + Send + 'static,
{
    type Response = Resp;
    type Error = BoxError;
    type Future = GuardFuture<F, Option<Decorate>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let which = match req
            .extensions()
            .get::<Arc<RoutePolicy>>()
            .filter(|p| p.get::<CorsPolicy>().is_some())
        {
            Some(p) => Which::Route(p.clone()),
            None => match &self.default {
                Some(d) => Which::Default(d.clone()),
                None => return GuardFuture::inner(self.inner.call(req), None),
            },
        };
        let Some(policy) = which.get() else {
            return GuardFuture::inner(self.inner.call(req), None);
        };
        let origin = req.headers().get(header::ORIGIN).cloned();
        let is_preflight = req.method() == Method::OPTIONS
            && origin.is_some()
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if is_preflight {
            let result = origin
                .as_ref()
                .map(|o| policy.preflight(req.headers(), o))
                .unwrap_or(Err("origin"));
            return match result {
                Ok(headers) => {
                    let mut resp = http::Response::new(rampart_core::body::empty());
                    *resp.status_mut() = StatusCode::NO_CONTENT;
                    *resp.headers_mut() = headers;
                    GuardFuture::ready(Ok(resp))
                }
                Err(what) => {
                    let reference = reference(&req, "cors");
                    self.events.emit(
                        SecurityEvent::from_request(SecurityEventKind::CorsRejected, &req)
                            .rule(format!("preflight_{what}"))
                            .reference(reference.clone())
                            .details(format!(
                                "origin {:?}",
                                origin.as_ref().and_then(|o| o.to_str().ok()).unwrap_or("")
                            )),
                    );
                    let err = Error::new(ErrorKind::Forbidden { reference })
                        .with_message(format!("cors preflight refused: {what} not allowed"));
                    GuardFuture::error(err)
                }
            };
        }
        GuardFuture::inner(self.inner.call(req), Some(Decorate { which, origin }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_patterns() {
        let m = OriginMatcher::new(&[
            "https://app.example.com",
            "https://*.example.org",
            "~https://[a-z]+\\.example\\.net",
        ])
        .unwrap();
        let cases = [
            ("https://app.example.com", true),
            ("HTTPS://APP.EXAMPLE.COM", true),
            ("http://app.example.com", false),
            ("https://app.example.com.evil.com", false),
            ("https://a.example.org", true),
            ("https://a.b.example.org", true),
            ("https://example.org", false),
            ("https://evilexample.org", false),
            ("https://x/.example.org", false),
            ("https://abc.example.net", true),
            ("https://abc.example.net.evil", false), // regexes are anchored
            ("null", false),
        ];
        for (o, want) in cases {
            assert_eq!(m.matches(o), want, "{o}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(OriginMatcher::new(&["example.com"]).is_err());
        assert!(OriginMatcher::new(&["https://example.com/path"]).is_err());
        assert!(OriginMatcher::new(&["~(unclosed"]).is_err());
        let s = CorsSettings {
            origins: vec!["*".into()],
            credentials: true,
            ..Default::default()
        };
        assert!(matches!(
            CorsPolicy::new(&s),
            Err(CorsConfigError::WildcardWithCredentials)
        ));
    }
}
