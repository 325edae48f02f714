//! May this response be stored? (RFC 9111 §3, §3.5; RFC 9110 §15.1), plus the gateway's own
//! policy checks (`Set-Cookie`, cache deception guard).

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode, header};

use crate::{
    config::{CachePolicy, SetCookiePolicy},
    directives::{Delta, RequestDirectives, ResponseDirectives},
    freshness::{Lifetime, heuristically_cacheable},
};

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// Only GET responses are stored.
    Method,
    /// The status is not final, is 206 / 304, or is not understood under `must-understand`.
    Status,
    /// `no-store` in the request.
    RequestNoStore,
    /// `no-store` in the response.
    NoStore,
    /// Unqualified `private`.
    Private,
    /// The request had `Authorization` and the response has no `public`, `s-maxage` or
    /// `must-revalidate` (§3.5).
    Authorization,
    /// `Vary: *`.
    VaryStar,
    /// No explicit freshness, status not heuristically cacheable, no validator to make a
    /// stored copy useful.
    NoFreshness,
    /// Carries `Set-Cookie` and the route does not store those.
    SetCookie,
    /// `Content-Type` does not match the path's extension (deception guard).
    Deception,
    /// Larger than the maximum object size.
    TooLarge,
    /// The body ended early, failed, or did not match `Content-Length`.
    Incomplete,
    /// The response has unqualified `no-cache` and no validator: every use would need a full
    /// fetch anyway.
    NoCacheWithoutValidator,
}

impl NotStorable {
    /// A short label for logs and `Cache-Status` `detail`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::RequestNoStore => "request-no-store",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::VaryStar => "vary-star",
            NotStorable::NoFreshness => "no-freshness",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::Deception => "content-type-mismatch",
            NotStorable::TooLarge => "too-large",
            NotStorable::Incomplete => "incomplete",
            NotStorable::NoCacheWithoutValidator => "no-cache",
        }
    }
}

/// Status codes this cache understands (for `must-understand`, §5.2.2.3): the final codes
/// defined by RFC 9110 except 206 (not stored) and 304.
pub fn understood_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=205 | 300..=303 | 305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// The stale windows an entry gets: the response's `stale-while-revalidate` /
/// `stale-if-error`, else the route's defaults (a response's own value, even 0, wins).
pub fn stale_windows(cc: &ResponseDirectives, policy: &CachePolicy) -> (Duration, Duration) {
    let secs = |d: Delta| Duration::from_secs(d.secs_or_zero());
    let swr = cc
        .stale_while_revalidate
        .map(secs)
        .or(policy.stale_while_revalidate)
        .unwrap_or_default();
    let sie = cc
        .stale_if_error
        .map(secs)
        .or(policy.stale_if_error)
        .unwrap_or_default();
    (swr, sie)
}

/// Whether a stored copy could be served stale at all: a window is granted and the response
/// does not forbid stale use (`must-revalidate`, `proxy-revalidate`, `s-maxage`).
fn has_stale_window(cc: &ResponseDirectives, policy: &CachePolicy) -> bool {
    let (swr, sie) = stale_windows(cc, policy);
    !cc.forbids_stale() && (!swr.is_zero() || !sie.is_zero())
}

/// Whether the response has a strong or weak validator.
pub fn has_validator(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED)
}

/// Everything the storage decision looks at.
#[derive(Debug)]
pub struct StoreInput<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request headers.
    pub req_headers: &'a HeaderMap,
    /// Request directives.
    pub req_cc: &'a RequestDirectives,
    /// Response status.
    pub status: StatusCode,
    /// Response headers.
    pub resp_headers: &'a HeaderMap,
    /// The selected response directives.
    pub resp_cc: &'a ResponseDirectives,
    /// The computed lifetime.
    pub lifetime: Lifetime,
    /// The request path (for the deception guard).
    pub path: &'a str,
}

/// Decide whether a response may be stored by a shared cache (RFC 9111 §3).
pub fn storable(input: &StoreInput<'_>, policy: &CachePolicy) -> Result<(), NotStorable> {
    let o = &policy.overrides;
    let cc = input.resp_cc;
    if *input.method != Method::GET {
        return Err(NotStorable::Method);
    }
    let st = input.status;
    // Final status only; 206 needs range combination (not done), 304 is never stored.
    if st.is_informational() || st == StatusCode::PARTIAL_CONTENT || st == StatusCode::NOT_MODIFIED
    {
        return Err(NotStorable::Status);
    }
    if input.req_cc.no_store {
        return Err(NotStorable::RequestNoStore);
    }
    if cc.must_understand {
        // must-understand: store only understood statuses; no-store is then ignored.
        if !understood_status(st) {
            return Err(NotStorable::Status);
        }
    } else if cc.no_store && !o.ignore_no_store {
        return Err(NotStorable::NoStore);
    }
    if cc.private && !o.ignore_private {
        return Err(NotStorable::Private);
    }
    if input.req_headers.contains_key(header::AUTHORIZATION)
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return Err(NotStorable::Authorization);
    }
    if crate::key::vary_names(input.resp_headers).is_err() {
        return Err(NotStorable::VaryStar);
    }
    // §3: explicit freshness, public, or a heuristically cacheable status (or the route's
    // opt-in default TTL, which is computed into `lifetime`).
    let allowed = cc.public
        || input.lifetime.is_explicit()
        || matches!(input.lifetime, Lifetime::Default(_))
        || heuristically_cacheable(st);
    if !allowed {
        return Err(NotStorable::NoFreshness);
    }
    let validator = has_validator(input.resp_headers);
    if cc.no_cache && !o.ignore_no_cache && !validator {
        return Err(NotStorable::NoCacheWithoutValidator);
    }
    // A response with no freshness at all is only useful if it can be revalidated, or served
    // stale within a window the origin or the route grants (RFC 5861: `max-age=0,
    // stale-if-error=600` asks for exactly that).
    if input.lifetime.duration().is_zero()
        && !validator
        && !cc.no_cache
        && !has_stale_window(cc, policy)
    {
        return Err(NotStorable::NoFreshness);
    }
    if policy.set_cookie == SetCookiePolicy::Pass
        && input.resp_headers.contains_key(header::SET_COOKIE)
    {
        return Err(NotStorable::SetCookie);
    }
    if policy.deception_guard && !content_type_matches_path(input.path, input.resp_headers) {
        return Err(NotStorable::Deception);
    }
    Ok(())
}

/// The deception guard: if the path's last segment has a known static extension, the
/// response's `Content-Type` must be one that extension is served with. Paths without a
/// known extension pass.
pub fn content_type_matches_path(path: &str, headers: &HeaderMap) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    let Some((_, ext)) = last.rsplit_once('.') else {
        return true;
    };
    let ext = ext.to_ascii_lowercase();
    let Some(allowed) = expected_types(&ext) else {
        return true;
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    allowed.iter().any(|a| {
        if let Some(prefix) = a.strip_suffix("/*") {
            ct.split('/').next() == Some(prefix)
        } else {
            ct == *a
        }
    })
}

fn expected_types(ext: &str) -> Option<&'static [&'static str]> {
    Some(match ext {
        "css" => &["text/css"],
        "js" | "mjs" => &[
            "application/javascript",
            "text/javascript",
            "application/x-javascript",
        ],
        "json" => &["application/json"],
        "map" => &["application/json", "application/octet-stream"],
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "avif" | "ico" | "bmp" | "svg" => &["image/*"],
        "woff" | "woff2" | "ttf" | "otf" | "eot" => &[
            "font/*",
            "application/font-woff",
            "application/font-woff2",
            "application/vnd.ms-fontobject",
            "application/x-font-ttf",
            "application/octet-stream",
        ],
        "txt" => &["text/plain"],
        "xml" => &["application/xml", "text/xml"],
        "pdf" => &["application/pdf"],
        "mp4" | "webm" | "m4v" | "mov" => &["video/*"],
        "mp3" | "ogg" | "wav" | "m4a" => &["audio/*"],
        "wasm" => &["application/wasm"],
        "zip" => &["application/zip"],
        "html" | "htm" => &["text/html"],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Overrides,
        directives::select_response,
        freshness::{LifetimeConfig, lifetime},
    };
    use http::HeaderValue;
    use std::time::SystemTime;

    fn check(
        method: Method,
        req: &[(&str, &str)],
        status: u16,
        resp: &[(&str, &str)],
        policy: &CachePolicy,
    ) -> Result<(), NotStorable> {
        let mut rq = HeaderMap::new();
        for (k, v) in req {
            rq.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut rs = HeaderMap::new();
        for (k, v) in resp {
            rs.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let req_cc = RequestDirectives::parse(&rq);
        let (cc, src) = select_response(&rs, None);
        let status = StatusCode::from_u16(status).unwrap();
        let lt = lifetime(
            status,
            &cc,
            src,
            &rs,
            SystemTime::now(),
            &LifetimeConfig {
                default_ttl: policy.default_ttl,
                ..LifetimeConfig::default()
            },
        );
        storable(
            &StoreInput {
                method: &method,
                req_headers: &rq,
                req_cc: &req_cc,
                status,
                resp_headers: &rs,
                resp_cc: &cc,
                lifetime: lt,
                path: "/x",
            },
            policy,
        )
    }

    #[test]
    fn a_route_stale_default_keeps_a_response_without_freshness_or_validator() {
        let zero = [("cache-control", "max-age=0")];
        let plain = CachePolicy::default();
        assert_eq!(
            check(Method::GET, &[], 200, &zero, &plain),
            Err(NotStorable::NoFreshness)
        );
        let sie = CachePolicy {
            stale_if_error: Some(Duration::from_secs(60)),
            ..CachePolicy::default()
        };
        assert_eq!(check(Method::GET, &[], 200, &zero, &sie), Ok(()));
        // The response's own window, even 0, wins over the route's default.
        let own_zero = [("cache-control", "max-age=0, stale-if-error=0")];
        assert_eq!(
            check(Method::GET, &[], 200, &own_zero, &sie),
            Err(NotStorable::NoFreshness)
        );
        assert_eq!(
            stale_windows(&select_response(&HeaderMap::new(), None).0, &sie),
            (Duration::ZERO, Duration::from_secs(60))
        );
    }

    #[test]
    fn storable_table() {
        use NotStorable::{
            Authorization, NoCacheWithoutValidator, NoFreshness, NoStore, Private, RequestNoStore,
            SetCookie, Status, VaryStar,
        };
        let p = CachePolicy::default();
        let ma = ("cache-control", "max-age=60");
        let etag = ("etag", "\"v1\"");
        let lm = ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT");
        type Case<'a> = (
            Method,
            Vec<(&'a str, &'a str)>,
            u16,
            Vec<(&'a str, &'a str)>,
            Result<(), NotStorable>,
        );
        let cases: Vec<Case<'_>> = vec![
            (Method::GET, vec![], 200, vec![ma], Ok(())),
            (
                Method::HEAD,
                vec![],
                200,
                vec![ma],
                Err(NotStorable::Method),
            ),
            (
                Method::POST,
                vec![],
                200,
                vec![ma],
                Err(NotStorable::Method),
            ),
            (Method::GET, vec![], 206, vec![ma], Err(Status)),
            (Method::GET, vec![], 304, vec![ma], Err(Status)),
            (
                Method::GET,
                vec![],
                200,
                vec![("cache-control", "no-store, max-age=60")],
                Err(NoStore),
            ),
            (
                Method::GET,
                vec![("cache-control", "no-store")],
                200,
                vec![ma],
                Err(RequestNoStore),
            ),
            (
                Method::GET,
                vec![],
                200,
                vec![("cache-control", "private, max-age=60")],
                Err(Private),
            ),
            (
                Method::GET,
                vec![],
                200,
                vec![("cache-control", "private=\"x-user\", max-age=60")],
                Ok(()),
            ),
            (
                Method::GET,
                vec![],
                200,
                vec![("cache-control", "public, private")],
                Err(Private),
            ),
            // §3.5 Authorization
            (
                Method::GET,
                vec![("authorization", "Bearer x")],
                200,
                vec![ma],
                Err(Authorization),
            ),
            (
                Method::GET,
                vec![("authorization", "Bearer x")],
                200,
                vec![("cache-control", "public, max-age=60")],
                Ok(()),
            ),
            (
                Method::GET,
                vec![("authorization", "Bearer x")],
                200,
                vec![("cache-control", "s-maxage=60")],
                Ok(()),
            ),
            (
                Method::GET,
                vec![("authorization", "Bearer x")],
                200,
                vec![("cache-control", "must-revalidate, max-age=60")],
                Ok(()),
            ),
            (
                Method::GET,
                vec![],
                200,
                vec![ma, ("vary", "*")],
                Err(VaryStar),
            ),
            // Heuristically cacheable status without explicit freshness: needs a validator or LM.
            (Method::GET, vec![], 200, vec![lm], Ok(())),
            (Method::GET, vec![], 200, vec![etag], Ok(())),
            (Method::GET, vec![], 200, vec![], Err(NoFreshness)),
            // No freshness and no validator, but a stale window (RFC 5861): kept for it.
            (
                Method::GET,
                vec![],
                200,
                vec![("cache-control", "max-age=0, stale-if-error=600")],
                Ok(()),
            ),
            (
                Method::GET,
                vec![],
                200,
                vec![("cache-control", "max-age=0, stale-while-revalidate=30")],
                Ok(()),
            ),
            // ... unless the window is empty or stale use is forbidden.
            (
                Method::GET,
                vec![],
                200,
                vec![("cache-control", "max-age=0, stale-if-error=0")],
                Err(NoFreshness),
            ),
            (
                Method::GET,
                vec![],
                200,
                vec![(
                    "cache-control",
                    "max-age=0, must-revalidate, stale-if-error=600",
                )],
                Err(NoFreshness),
            ),
            (Method::GET, vec![], 404, vec![lm], Ok(())),
            // Not heuristically cacheable: only with explicit freshness.
            (Method::GET, vec![], 302, vec![lm], Err(NoFreshness)),
            (Method::GET, vec![], 302, vec![ma], Ok(())),
            (Method::GET, vec![], 500, vec![ma], Ok(())),
            (Method::GET, vec![], 503, vec![etag], Err(NoFreshness)),
            (
                Method::GET,
                vec![],
                201,
                vec![("cache-control", "public")],
                Err(NoFreshness),
            ),
            // no-cache: stored only with a validator.
            (
                Method::GET,
                vec![],
                200,
                vec![("cache-control", "no-cache")],
                Err(NoCacheWithoutValidator),
            ),
            (
                Method::GET,
                vec![],
                200,
                vec![("cache-control", "no-cache"), etag],
                Ok(()),
            ),
            // must-understand: understood status, no-store ignored.
            (
                Method::GET,
                vec![],
                200,
                vec![("cache-control", "must-understand, no-store, max-age=5")],
                Ok(()),
            ),
            (
                Method::GET,
                vec![],
                299,
                vec![("cache-control", "must-understand, no-store, max-age=5")],
                Err(Status),
            ),
            (
                Method::GET,
                vec![],
                200,
                vec![ma, ("set-cookie", "a=b")],
                Err(SetCookie),
            ),
        ];
        for (i, (m, rq, st, rs, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                check(m, &rq, st, &rs, &p),
                want,
                "case {i}: {rq:?} {st} {rs:?}"
            );
        }
    }

    #[test]
    fn overrides_and_set_cookie_policy() {
        let mut p = CachePolicy {
            overrides: Overrides {
                ignore_no_store: true,
                ignore_private: true,
                ..Overrides::default()
            },
            ..CachePolicy::default()
        };
        let rs = [("cache-control", "no-store, private, max-age=5")];
        assert_eq!(check(Method::GET, &[], 200, &rs, &p), Ok(()));
        p.set_cookie = SetCookiePolicy::Strip;
        let rs = [("cache-control", "max-age=5"), ("set-cookie", "a=b")];
        assert_eq!(check(Method::GET, &[], 200, &rs, &p), Ok(()));
        let p = CachePolicy {
            default_ttl: Some(std::time::Duration::from_secs(5)),
            ..CachePolicy::default()
        };
        assert_eq!(check(Method::GET, &[], 200, &[], &p), Ok(()));
        assert_eq!(
            check(Method::GET, &[], 500, &[], &p),
            Err(NotStorable::NoFreshness),
            "default TTL only for heuristically cacheable statuses"
        );
    }

    #[test]
    fn deception_guard_table() {
        let cases = [
            ("/a/style.css", Some("text/css; charset=utf-8"), true),
            ("/a/style.css", Some("text/html"), false),
            ("/account.php/x.css", Some("text/html"), false),
            ("/logo.PNG", Some("image/png"), true),
            ("/logo.png", Some("text/html"), false),
            ("/logo.png", None, false),
            ("/app.js", Some("text/javascript"), true),
            ("/page", Some("text/html"), true),
            ("/x.unknownext", Some("text/html"), true),
            ("/font.woff2", Some("font/woff2"), true),
        ];
        for (path, ct, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            assert_eq!(content_type_matches_path(path, &h), want, "{path} {ct:?}");
        }
    }
}
