//! Header handling: what is never stored (hop-by-hop, RFC 9111 §3.1), the 304 / HEAD update
//! of stored headers (§3.2, §4.3.4, §4.3.5), and the `Age` / `Cache-Status` (RFC 9211) fields
//! added on the way out.

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::{
    config::SetCookiePolicy,
    directives::{CDN_CACHE_CONTROL, ResponseDirectives},
};

/// The `Cache-Status` field name (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Hop-by-hop fields never stored (RFC 9110 §7.6.1) plus proxy-specific ones (§3.1).
pub const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TRAILER,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("proxy-authentication-info"),
];

fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

/// Remove everything a shared cache must not store: hop-by-hop and `Connection`-listed
/// fields, `Age` (recomputed on every hit), fields named by qualified `no-cache` / `private`
/// (§5.2.2.4, §5.2.2.7), and `Set-Cookie` when the route strips it.
pub fn strip_for_storage(
    headers: &mut HeaderMap,
    cc: &ResponseDirectives,
    set_cookie: SetCookiePolicy,
) {
    for name in connection_listed(headers) {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::AGE);
    for f in cc.no_cache_fields.iter().chain(&cc.private_fields) {
        if let Ok(n) = HeaderName::from_bytes(f.as_bytes()) {
            headers.remove(n);
        }
    }
    if set_cookie != SetCookiePolicy::Store {
        headers.remove(header::SET_COOKIE);
    }
}

/// Update stored headers from a 304 (or a HEAD 200) per §3.2: every field of the new
/// response replaces the stored one, except hop-by-hop / `Connection`-listed fields,
/// `Content-Length` (and the other framing / encoding fields the stored body depends on),
/// and `Age`.
pub fn update_stored(stored: &mut HeaderMap, fresh: &HeaderMap) {
    let listed = connection_listed(fresh);
    let mut seen: Vec<&HeaderName> = Vec::new();
    for (name, value) in fresh {
        if HOP_BY_HOP.contains(name)
            || listed.contains(name)
            || *name == header::CONTENT_LENGTH
            || *name == header::CONTENT_ENCODING
            || *name == header::CONTENT_RANGE
            || *name == header::AGE
        {
            continue;
        }
        if !seen.contains(&name) {
            stored.remove(name);
            seen.push(name);
        }
        stored.append(name.clone(), value.clone());
    }
}

/// Remove the targeted cache-control fields before a response goes downstream.
pub fn strip_targeted(headers: &mut HeaderMap, targeted: Option<&HeaderName>) {
    headers.remove(CDN_CACHE_CONTROL);
    if let Some(t) = targeted {
        headers.remove(t);
    }
}

/// What a `Cache-Status` member says about the forward to the next hop (RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// Not handled by the cache (configuration, hit-for-pass).
    Bypass,
    /// The method is not cacheable.
    Method,
    /// Nothing stored under the URI.
    UriMiss,
    /// Something stored under the URI, but no variant matched.
    VaryMiss,
    /// A miss the cache cannot classify further.
    Miss,
    /// The request's directives prevented use of a stored response.
    Request,
    /// A stored response was stale.
    Stale,
}

impl Fwd {
    /// The RFC 9211 token.
    pub fn as_str(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Miss => "miss",
            Fwd::Request => "request",
            Fwd::Stale => "stale",
        }
    }
}

/// One `Cache-Status` member for this cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Served from cache without going forward.
    pub hit: bool,
    /// Why the request went forward.
    pub fwd: Option<Fwd>,
    /// Status of the forwarded response.
    pub fwd_status: Option<u16>,
    /// Remaining freshness (negative: stale).
    pub ttl: Option<i64>,
    /// The response was (or is being) stored.
    pub stored: bool,
    /// The request was collapsed with another one.
    pub collapsed: bool,
    /// Extra detail (a token).
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    /// Render as a header value, e.g. `rampart; hit; ttl=42`.
    pub fn to_header(&self, cache_name: &str) -> HeaderValue {
        // On every response: built in one buffer without `fmt`.
        let mut s = Vec::with_capacity(cache_name.len() + 48);
        s.extend_from_slice(cache_name.as_bytes());
        if self.hit {
            s.extend_from_slice(b"; hit");
        }
        if let Some(f) = self.fwd {
            s.extend_from_slice(b"; fwd=");
            s.extend_from_slice(f.as_str().as_bytes());
        }
        if let Some(st) = self.fwd_status {
            s.extend_from_slice(b"; fwd-status=");
            s.extend_from_slice(itoa::Buffer::new().format(st).as_bytes());
        }
        if let Some(t) = self.ttl {
            s.extend_from_slice(b"; ttl=");
            s.extend_from_slice(itoa::Buffer::new().format(t).as_bytes());
        }
        if self.stored {
            s.extend_from_slice(b"; stored");
        }
        if self.collapsed {
            s.extend_from_slice(b"; collapsed");
        }
        if let Some(d) = self.detail {
            s.extend_from_slice(b"; detail=");
            s.extend_from_slice(d.as_bytes());
        }
        HeaderValue::from_maybe_shared(bytes::Bytes::from(s))
            .unwrap_or_else(|_| HeaderValue::from_static("rampart"))
    }
}

/// The `Age` value for a number of seconds.
pub fn age_header(secs: u64) -> HeaderValue {
    HeaderValue::from(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn storage_strips_hop_by_hop_and_listed_fields() {
        let mut h = map(&[
            ("connection", "x-conn-field, keep-alive"),
            ("keep-alive", "timeout=5"),
            ("x-conn-field", "a"),
            ("transfer-encoding", "chunked"),
            ("age", "10"),
            ("x-user", "bob"),
            ("x-secret", "s"),
            ("set-cookie", "a=b"),
            ("content-type", "text/plain"),
            ("etag", "\"1\""),
        ]);
        let cc = ResponseDirectives {
            private_fields: vec!["x-user".into()],
            no_cache_fields: vec!["x-secret".into()],
            ..ResponseDirectives::default()
        };
        strip_for_storage(&mut h, &cc, SetCookiePolicy::Strip);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["content-type", "etag"]);

        let mut h = map(&[("set-cookie", "a=b")]);
        strip_for_storage(
            &mut h,
            &ResponseDirectives::default(),
            SetCookiePolicy::Store,
        );
        assert!(h.contains_key(header::SET_COOKIE));
    }

    #[test]
    fn not_modified_updates_headers_with_exceptions() {
        let mut stored = map(&[
            ("content-type", "text/plain"),
            ("content-length", "5"),
            ("cache-control", "max-age=10"),
            ("etag", "\"1\""),
            ("x-old", "keep"),
            ("x-multi", "a"),
            ("x-multi", "b"),
        ]);
        let fresh = map(&[
            ("cache-control", "max-age=100"),
            ("content-length", "0"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("age", "3"),
            ("x-multi", "c"),
            ("x-new", "n"),
            ("etag", "\"1\""),
        ]);
        update_stored(&mut stored, &fresh);
        assert_eq!(stored["cache-control"], "max-age=100");
        assert_eq!(stored["content-length"], "5");
        assert_eq!(stored["x-old"], "keep");
        assert_eq!(stored["x-new"], "n");
        assert!(!stored.contains_key("x-hop"));
        assert!(!stored.contains_key("age"));
        let multi: Vec<_> = stored.get_all("x-multi").iter().collect();
        assert_eq!(multi, vec!["c"]);
    }

    #[test]
    fn cache_status_rendering() {
        let cases = [
            (
                CacheStatus {
                    hit: true,
                    ttl: Some(42),
                    ..CacheStatus::default()
                },
                "rampart; hit; ttl=42",
            ),
            (
                CacheStatus {
                    fwd: Some(Fwd::UriMiss),
                    fwd_status: Some(200),
                    stored: true,
                    ..CacheStatus::default()
                },
                "rampart; fwd=uri-miss; fwd-status=200; stored",
            ),
            (
                CacheStatus {
                    fwd: Some(Fwd::Stale),
                    fwd_status: Some(304),
                    ttl: Some(60),
                    ..CacheStatus::default()
                },
                "rampart; fwd=stale; fwd-status=304; ttl=60",
            ),
            (
                CacheStatus {
                    hit: true,
                    ttl: Some(-3),
                    collapsed: true,
                    detail: Some("stale-while-revalidate"),
                    ..CacheStatus::default()
                },
                "rampart; hit; ttl=-3; collapsed; detail=stale-while-revalidate",
            ),
            (
                CacheStatus {
                    hit: true,
                    ttl: Some(0),
                    ..CacheStatus::default()
                },
                "rampart; hit; ttl=0",
            ),
            (
                CacheStatus {
                    ttl: Some(i64::MIN),
                    fwd_status: Some(u16::MAX),
                    ..CacheStatus::default()
                },
                "rampart; fwd-status=65535; ttl=-9223372036854775808",
            ),
        ];
        for (cs, want) in cases {
            assert_eq!(cs.to_header("rampart"), want);
        }
    }

    #[test]
    fn targeted_fields_are_stripped() {
        let mut h = map(&[
            ("cdn-cache-control", "max-age=5"),
            ("rampart-cache-control", "max-age=5"),
            ("cache-control", "max-age=1"),
        ]);
        strip_targeted(
            &mut h,
            Some(&HeaderName::from_static("rampart-cache-control")),
        );
        assert_eq!(h.len(), 1);
    }
}
