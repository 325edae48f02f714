//! CSRF guard for cookie-authenticated unsafe requests (per-route opt-in).
//!
//! Applies to requests whose method is not GET/HEAD/OPTIONS/TRACE and that carry cookies (or
//! the configured session cookie). Such a request passes when its `Origin` (or, without one,
//! the origin of its `Referer`) is the request's own host or an allowed origin, or when the
//! double-submit token matches (cookie value == header value, compared in constant time).
//! Otherwise it is refused with 403.

use http::{HeaderMap, HeaderName, Method, header};
use subtle::ConstantTimeEq;

use crate::{cors::OriginMatcher, ratelimit::cookie_value};

/// The double-submit token: a cookie and a header that must carry the same value.
#[derive(Debug, Clone)]
pub struct DoubleSubmit {
    /// Cookie name (e.g. `csrf_token`).
    pub cookie: String,
    /// Header name (e.g. `x-csrf-token`).
    pub header: HeaderName,
}

/// A route's CSRF policy.
#[derive(Debug, Clone, Default)]
pub struct CsrfPolicy {
    /// Cross-origin callers allowed besides the request's own host.
    pub origins: OriginMatcher,
    /// Optional double-submit token.
    pub double_submit: Option<DoubleSubmit>,
    /// Only guard requests carrying this cookie (the session cookie); `None` = any cookie.
    pub session_cookie: Option<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    /// Origin / Referer present and not allowed.
    #[error("csrf: origin not allowed")]
    OriginMismatch,
    /// No Origin, no Referer and no valid double-submit token.
    #[error("csrf: no origin and no valid token")]
    NoProof,
}

impl CsrfPolicy {
    /// Check a request.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), CsrfError> {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return Ok(());
        }
        let has_cookie = match &self.session_cookie {
            Some(name) => cookie_value(headers, name).is_some(),
            None => headers.contains_key(header::COOKIE),
        };
        if !has_cookie {
            return Ok(());
        }
        if let Some(ds) = &self.double_submit
            && let (Some(c), Some(h)) = (
                cookie_value(headers, &ds.cookie),
                headers.get(&ds.header).map(|v| v.as_bytes()),
            )
            && !c.is_empty()
            && c.len() == h.len()
            && bool::from(c.as_bytes().ct_eq(h))
        {
            return Ok(());
        }
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .filter(|o| *o != "null")
            .map(str::to_owned)
            .or_else(|| {
                headers
                    .get(header::REFERER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(origin_of_url)
            });
        let Some(origin) = origin else {
            return Err(CsrfError::NoProof);
        };
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let same_host = origin
            .split_once("://")
            .map(|(_, hp)| Some(hp) == host)
            .unwrap_or(false);
        if same_host || self.origins.matches(&origin) {
            Ok(())
        } else {
            Err(CsrfError::OriginMismatch)
        }
    }
}

/// `scheme://host[:port]` of an absolute URL.
fn origin_of_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let hostport = &rest[..end];
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    (!hostport.is_empty()).then(|| format!("{scheme}://{hostport}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn csrf_rules() {
        let p = CsrfPolicy {
            origins: OriginMatcher::new(&["https://app.example.com"]).unwrap(),
            double_submit: Some(DoubleSubmit {
                cookie: "csrf".into(),
                header: HeaderName::from_static("x-csrf-token"),
            }),
            session_cookie: None,
        };
        let post = Method::POST;
        // Safe methods and cookie-less requests are not guarded.
        assert_eq!(
            p.check(&Method::GET, &headers(&[("cookie", "s=1")])),
            Ok(())
        );
        assert_eq!(p.check(&post, &headers(&[])), Ok(()));
        // Cookie + no proof.
        assert_eq!(
            p.check(&post, &headers(&[("cookie", "s=1")])),
            Err(CsrfError::NoProof)
        );
        // Allowed origin, same host, foreign origin.
        let ok = headers(&[("cookie", "s=1"), ("origin", "https://app.example.com")]);
        assert_eq!(p.check(&post, &ok), Ok(()));
        let same = headers(&[
            ("cookie", "s=1"),
            ("origin", "https://gw.local:8443"),
            ("host", "gw.local:8443"),
        ]);
        assert_eq!(p.check(&post, &same), Ok(()));
        let evil = headers(&[("cookie", "s=1"), ("origin", "https://evil.example")]);
        assert_eq!(p.check(&post, &evil), Err(CsrfError::OriginMismatch));
        // Referer fallback.
        let r = headers(&[
            ("cookie", "s=1"),
            ("referer", "https://app.example.com/page?x=1"),
        ]);
        assert_eq!(p.check(&post, &r), Ok(()));
        let r = headers(&[
            ("cookie", "s=1"),
            ("referer", "https://evil.example/app.example.com"),
        ]);
        assert_eq!(p.check(&post, &r), Err(CsrfError::OriginMismatch));
        // Double submit.
        let t = headers(&[
            ("cookie", "s=1; csrf=tok123"),
            ("x-csrf-token", "tok123"),
            ("origin", "https://evil.example"),
        ]);
        assert_eq!(p.check(&post, &t), Ok(()));
        let t = headers(&[("cookie", "s=1; csrf=tok123"), ("x-csrf-token", "tok124")]);
        assert_eq!(p.check(&post, &t), Err(CsrfError::NoProof));
    }

    #[test]
    fn session_cookie_scoping() {
        let p = CsrfPolicy {
            session_cookie: Some("session".into()),
            ..Default::default()
        };
        assert_eq!(
            p.check(&Method::POST, &headers(&[("cookie", "theme=dark")])),
            Ok(())
        );
        assert_eq!(
            p.check(&Method::DELETE, &headers(&[("cookie", "session=abc")])),
            Err(CsrfError::NoProof)
        );
    }
}
