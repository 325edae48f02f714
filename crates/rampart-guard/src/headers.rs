//! Response security headers (stack layer 13), on by default.
//!
//! | header | default |
//! |---|---|
//! | `Strict-Transport-Security` | `max-age=31536000; includeSubDomains` (TLS connections only, per [`ConnInfo::tls`]) |
//! | `X-Content-Type-Options` | `nosniff` |
//! | `X-Frame-Options` | `DENY` |
//! | `Referrer-Policy` | `strict-origin-when-cross-origin` |
//! | `Permissions-Policy` | `camera=(), microphone=(), geolocation=(), payment=(), usb=()` |
//! | `Cross-Origin-Opener-Policy` | `same-origin` |
//! | `Content-Security-Policy` | none (preset `strict`: [`CSP_STRICT`]) |
//!
//! A value the upstream already set is kept unless `override` is on. `Server` and
//! `X-Powered-By` are removed by default.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderName, HeaderValue, header, header::Entry};
use rampart_core::{BoxError, ConnInfo, RoutePolicy};

use crate::future::{After, GuardFuture};

/// The `strict` CSP preset.
pub const CSP_STRICT: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; upgrade-insecure-requests";

/// A security-headers policy (global default on the layer, or a route's
/// [`RoutePolicy`] extension).
#[derive(Debug, Clone)]
pub struct SecurityHeadersPolicy {
    /// HSTS value, sent on TLS connections only (`None` = off).
    pub hsts: Option<HeaderValue>,
    /// Other headers to set (name, value); headers turned off in the settings are absent.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Replace values set by the upstream (default false: upstream wins).
    pub override_upstream: bool,
    /// Headers removed from responses (default `server`, `x-powered-by`).
    pub remove: Vec<HeaderName>,
}

/// Inputs of [`SecurityHeadersPolicy::from_settings`]; `None` turns a header off.
#[derive(Debug, Clone)]
pub struct SecurityHeadersSettings {
    /// `Strict-Transport-Security`.
    pub hsts: Option<String>,
    /// `X-Content-Type-Options`.
    pub content_type_options: Option<String>,
    /// `X-Frame-Options`.
    pub frame_options: Option<String>,
    /// `Referrer-Policy`.
    pub referrer_policy: Option<String>,
    /// `Permissions-Policy`.
    pub permissions_policy: Option<String>,
    /// `Cross-Origin-Opener-Policy`.
    pub coop: Option<String>,
    /// `Content-Security-Policy` (`"strict"` = [`CSP_STRICT`]).
    pub csp: Option<String>,
    /// Replace upstream values.
    pub override_upstream: bool,
    /// Headers to remove.
    pub remove: Vec<String>,
}

impl Default for SecurityHeadersSettings {
    fn default() -> Self {
        Self {
            hsts: Some("max-age=31536000; includeSubDomains".into()),
            content_type_options: Some("nosniff".into()),
            frame_options: Some("DENY".into()),
            referrer_policy: Some("strict-origin-when-cross-origin".into()),
            permissions_policy: Some(
                "camera=(), microphone=(), geolocation=(), payment=(), usb=()".into(),
            ),
            coop: Some("same-origin".into()),
            csp: None,
            override_upstream: false,
            remove: vec!["server".into(), "x-powered-by".into()],
        }
    }
}

/// A header name or value in the settings is invalid.
#[derive(Debug, thiserror::Error)]
#[error("security_headers.{key}: invalid header {what}")]
pub struct InvalidHeader {
    /// The settings key.
    pub key: &'static str,
    /// `name` or `value`.
    pub what: &'static str,
}

impl SecurityHeadersPolicy {
    /// Compile settings.
    pub fn from_settings(s: &SecurityHeadersSettings) -> Result<Self, InvalidHeader> {
        let val =
            |key: &'static str, v: &Option<String>| -> Result<Option<HeaderValue>, InvalidHeader> {
                v.as_deref()
                    .map(|v| {
                        let v = if key == "csp" && v == "strict" {
                            CSP_STRICT
                        } else {
                            v
                        };
                        HeaderValue::from_str(v).map_err(|_| InvalidHeader { key, what: "value" })
                    })
                    .transpose()
            };
        let mut set = Vec::new();
        let pairs: [(&'static str, HeaderName, &Option<String>); 6] = [
            (
                "content_type_options",
                header::X_CONTENT_TYPE_OPTIONS,
                &s.content_type_options,
            ),
            ("frame_options", header::X_FRAME_OPTIONS, &s.frame_options),
            (
                "referrer_policy",
                header::REFERRER_POLICY,
                &s.referrer_policy,
            ),
            (
                "permissions_policy",
                HeaderName::from_static("permissions-policy"),
                &s.permissions_policy,
            ),
            (
                "coop",
                HeaderName::from_static("cross-origin-opener-policy"),
                &s.coop,
            ),
            ("csp", header::CONTENT_SECURITY_POLICY, &s.csp),
        ];
        for (key, name, v) in pairs {
            if let Some(v) = val(key, v)? {
                set.push((name, v));
            }
        }
        let remove = s
            .remove
            .iter()
            .map(|n| {
                HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    InvalidHeader {
                        key: "remove",
                        what: "name",
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            hsts: val("hsts", &s.hsts)?,
            set,
            override_upstream: s.override_upstream,
            remove,
        })
    }

    /// Apply to a response's headers: one hash lookup per header (an insert only where the
    /// upstream left the header unset, unless `override`), room reserved once.
    pub fn apply(&self, headers: &mut HeaderMap, tls: bool) {
        for name in &self.remove {
            headers.remove(name);
        }
        let hsts = self.hsts.as_ref().filter(|_| tls);
        // At most this many inserts: grow the table once instead of on the way.
        let _ = headers.try_reserve(self.set.len() + usize::from(hsts.is_some()));
        let hsts = hsts.map(|v| (&header::STRICT_TRANSPORT_SECURITY, v));
        for (name, value) in hsts.into_iter().chain(self.set.iter().map(|(n, v)| (n, v))) {
            if self.override_upstream {
                let _ = headers.try_insert(name.clone(), value.clone());
            } else if let Ok(Entry::Vacant(e)) = headers.try_entry(name) {
                let _ = e.try_insert(value.clone());
            }
        }
    }
}

impl Default for SecurityHeadersPolicy {
    fn default() -> Self {
        // The defaults are static strings that are always valid; fall back to "nothing" rather
        // than panic if that ever changed.
        Self::from_settings(&SecurityHeadersSettings::default()).unwrap_or(Self {
            hsts: None,
            set: Vec::new(),
            override_upstream: false,
            remove: Vec::new(),
        })
    }
}

/// Layer 13 (response side): security headers.
#[derive(Clone, Default)]
pub struct SecurityHeadersLayer {
    default: Arc<SecurityHeadersPolicy>,
}

impl SecurityHeadersLayer {
    /// Routes without their own [`SecurityHeadersPolicy`] get `default`.
    pub fn new(default: Arc<SecurityHeadersPolicy>) -> Self {
        Self { default }
    }
}

impl<S> tower::Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeadersService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeadersService {
            inner,
            default: self.default.clone(),
        }
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Clone)]
pub struct SecurityHeadersService<S> {
    inner: S,
    default: Arc<SecurityHeadersPolicy>,
}

type Req = http::Request<rampart_core::Body>;
type Resp = http::Response<rampart_core::Body>;

/// The way out of [`SecurityHeadersService`]: the route's policy or the default.
pub struct ApplyHeaders {
    policy: Which,
    tls: bool,
}

enum Which {
    Route(Arc<RoutePolicy>),
    Default(Arc<SecurityHeadersPolicy>),
}

impl After for ApplyHeaders {
    fn after(self, result: Result<Resp, BoxError>) -> Result<Resp, BoxError> {
        let mut resp = result?;
        let policy = match &self.policy {
            Which::Route(r) => r.get::<SecurityHeadersPolicy>(),
            Which::Default(d) => Some(&**d),
        };
        if let Some(policy) = policy {
            policy.apply(resp.headers_mut(), self.tls);
        }
        Ok(resp)
    }
}

impl<S, F> tower::Service<Req> for SecurityHeadersService<S>
where
    S: tower::Service<Req, Response = Resp, Error = BoxError, Future = F> + Send + 'static,
    F: std::future::Future<Output = Result<Resp, BoxError>> + Send + 'static,
{
    type Response = Resp;
    type Error = BoxError;
    type Future = GuardFuture<F, ApplyHeaders>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let tls = req.extensions().get::<ConnInfo>().is_some_and(|c| c.tls);
        let policy = match req
            .extensions()
            .get::<Arc<RoutePolicy>>()
            .filter(|p| p.get::<SecurityHeadersPolicy>().is_some())
        {
            Some(route) => Which::Route(route.clone()),
            None => Which::Default(self.default.clone()),
        };
        GuardFuture::inner(self.inner.call(req), ApplyHeaders { policy, tls })
    }
}
