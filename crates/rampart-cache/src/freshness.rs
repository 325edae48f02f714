//! Freshness maths: lifetime (RFC 9111 §4.2.1), heuristic freshness (§4.2.2), `Age`
//! (§4.2.3, §5.1) and the stale windows of RFC 5861.
//!
//! Everything here is a pure function of its inputs: times are passed in, nothing reads a
//! clock.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, header};

use crate::directives::{DELTA_MAX, Delta, PolicySource, ResponseDirectives};

/// Status codes that are heuristically cacheable (RFC 9110 §15.1).
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Where a response's freshness lifetime came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// `s-maxage`, `max-age` or `Expires` (an invalid one reads as 0).
    Explicit(Duration),
    /// The route's opt-in default TTL (origin gave no freshness information).
    Default(Duration),
    /// Heuristic: a fraction of the time since `Last-Modified`, capped.
    Heuristic(Duration),
    /// No freshness at all (stale on arrival; usable only after validation).
    None,
}

impl Lifetime {
    /// The lifetime as a duration (`None` is zero).
    pub fn duration(self) -> Duration {
        match self {
            Lifetime::Explicit(d) | Lifetime::Default(d) | Lifetime::Heuristic(d) => d,
            Lifetime::None => Duration::ZERO,
        }
    }

    /// Whether the lifetime is explicit (from the origin's directives or `Expires`).
    pub fn is_explicit(self) -> bool {
        matches!(self, Lifetime::Explicit(_))
    }
}

/// Knobs of the lifetime computation that come from gateway configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimeConfig {
    /// Cap on heuristic freshness.
    pub heuristic_max: Duration,
    /// Opt-in default TTL when the origin gives no explicit freshness.
    pub default_ttl: Option<Duration>,
    /// Cap on any lifetime.
    pub ttl_max: Option<Duration>,
}

impl Default for LifetimeConfig {
    fn default() -> Self {
        Self {
            heuristic_max: Duration::from_secs(24 * 3600),
            default_ttl: None,
            ttl_max: None,
        }
    }
}

/// First value of a singleton date field; `Err(())` when present but unparsable or
/// conflicting, `Ok(None)` when absent.
fn date_field(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<SystemTime>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let parsed = first
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
        .ok_or(())?;
    // Duplicate lines that disagree: treat as invalid (RFC 9111 §4.2.1).
    for other in values {
        if other != first {
            return Err(());
        }
    }
    Ok(Some(parsed))
}

/// The `Date` value, if present and valid.
pub fn date_value(headers: &HeaderMap) -> Option<SystemTime> {
    date_field(headers, header::DATE).ok().flatten()
}

/// The `Last-Modified` value, if present and valid.
pub fn last_modified(headers: &HeaderMap) -> Option<SystemTime> {
    date_field(headers, header::LAST_MODIFIED).ok().flatten()
}

/// The freshness lifetime of a response for a shared cache (RFC 9111 §4.2.1):
/// `s-maxage`, else `max-age`, else `Expires - Date` (unless a targeted field is in use,
/// RFC 9213 §2.1); then the opt-in default TTL; then the heuristic (only for heuristically
/// cacheable statuses or `public`, and only with `Last-Modified`). The result is capped by
/// `ttl_max`.
pub fn lifetime(
    status: StatusCode,
    cc: &ResponseDirectives,
    source: PolicySource,
    headers: &HeaderMap,
    response_time: SystemTime,
    cfg: &LifetimeConfig,
) -> Lifetime {
    let cap = |d: Duration| cfg.ttl_max.map_or(d, |m| d.min(m));
    let secs = |d: Delta| Duration::from_secs(d.secs_or_zero());
    if let Some(s) = cc.s_maxage {
        return Lifetime::Explicit(cap(secs(s)));
    }
    if let Some(m) = cc.max_age {
        return Lifetime::Explicit(cap(secs(m)));
    }
    if source == PolicySource::CacheControl && headers.contains_key(header::EXPIRES) {
        let lt = match date_field(headers, header::EXPIRES) {
            // Invalid Expires (e.g. "0") means already expired (§5.3).
            Err(()) | Ok(None) => Duration::ZERO,
            Ok(Some(expires)) => {
                let date = date_value(headers).unwrap_or(response_time);
                expires.duration_since(date).unwrap_or(Duration::ZERO)
            }
        };
        return Lifetime::Explicit(cap(lt.min(Duration::from_secs(DELTA_MAX))));
    }
    let heuristic_ok = heuristically_cacheable(status) || cc.public;
    if let Some(d) = cfg.default_ttl.filter(|_| heuristic_ok) {
        return Lifetime::Default(cap(d));
    }
    let lm_age = last_modified(headers)
        .filter(|_| heuristic_ok)
        .and_then(|lm| {
            let date = date_value(headers).unwrap_or(response_time);
            date.duration_since(lm).ok()
        });
    match lm_age {
        Some(age) => Lifetime::Heuristic(cap((age / 10).min(cfg.heuristic_max))),
        None => Lifetime::None,
    }
}

/// The `Age` header value (§5.1): the first member of a list, ignored when invalid,
/// saturated at 2^31.
pub fn age_value(headers: &HeaderMap) -> Duration {
    let Some(v) = headers.get(header::AGE).and_then(|v| v.to_str().ok()) else {
        return Duration::ZERO;
    };
    let first = v.split(',').next().unwrap_or("");
    match crate::directives::parse_delta(Some(first)) {
        Delta::Secs(s) => Duration::from_secs(s),
        Delta::Invalid => Duration::ZERO,
    }
}

/// `corrected_initial_age` of RFC 9111 §4.2.3:
/// `max(apparent_age, age_value + response_delay)`.
pub fn corrected_initial_age(
    age_value: Duration,
    date_value: Option<SystemTime>,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent_age = date_value
        .and_then(|d| response_time.duration_since(d).ok())
        .unwrap_or(Duration::ZERO);
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    apparent_age.max(age_value.saturating_add(response_delay))
}

/// `current_age = corrected_initial_age + resident_time` (§4.2.3).
pub fn current_age(corrected_initial_age: Duration, resident_time: Duration) -> Duration {
    corrected_initial_age.saturating_add(resident_time)
}

/// Seconds of remaining freshness (`lifetime - age`), negative when stale: the `ttl`
/// parameter of `Cache-Status` (RFC 9211 §2.4).
pub fn ttl_secs(lifetime: Duration, age: Duration) -> i64 {
    let l = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let a = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
    l.saturating_sub(a)
}

/// The `Age` header value to send: whole seconds, saturated at 2^31 (§5.1).
pub fn age_header_secs(age: Duration) -> u64 {
    age.as_secs().min(DELTA_MAX)
}

/// Staleness of a response: how long past its lifetime it is (zero while fresh).
pub fn staleness(lifetime: Duration, age: Duration) -> Duration {
    age.saturating_sub(lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directives::select_response;
    use http::HeaderValue;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }
    fn date(st: SystemTime) -> HeaderValue {
        HeaderValue::from_str(&httpdate::fmt_http_date(st)).unwrap()
    }
    fn headers(pairs: &[(&str, HeaderValue)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.clone(),
            );
        }
        h
    }
    fn lt(status: u16, h: &HeaderMap, cfg: &LifetimeConfig) -> Lifetime {
        let (cc, src) = select_response(h, None);
        lifetime(
            StatusCode::from_u16(status).unwrap(),
            &cc,
            src,
            h,
            t(0),
            cfg,
        )
    }

    #[test]
    fn lifetime_precedence_table() {
        let cfg = LifetimeConfig::default();
        let s = |n| Lifetime::Explicit(Duration::from_secs(n));
        let cases: Vec<(u16, HeaderMap, Lifetime)> = vec![
            (
                200,
                headers(&[(
                    "cache-control",
                    HeaderValue::from_static("max-age=10, s-maxage=20"),
                )]),
                s(20),
            ),
            (
                200,
                headers(&[
                    ("cache-control", HeaderValue::from_static("max-age=10")),
                    ("expires", date(t(1000))),
                    ("date", date(t(0))),
                ]),
                s(10),
            ),
            (
                200,
                headers(&[("expires", date(t(300))), ("date", date(t(100)))]),
                s(200),
            ),
            // Expires without Date: relative to response time.
            (200, headers(&[("expires", date(t(50)))]), s(50)),
            // Expires in the past, invalid Expires: stale.
            (
                200,
                headers(&[("expires", date(t(0))), ("date", date(t(10)))]),
                s(0),
            ),
            (
                200,
                headers(&[("expires", HeaderValue::from_static("0"))]),
                s(0),
            ),
            // Conflicting duplicate Expires: stale.
            (
                200,
                headers(&[("expires", date(t(100))), ("expires", date(t(200)))]),
                s(0),
            ),
            // Invalid max-age: stale even with a good Expires.
            (
                200,
                headers(&[
                    ("cache-control", HeaderValue::from_static("max-age=x")),
                    ("expires", date(t(100))),
                ]),
                s(0),
            ),
            // Huge saturates.
            (
                200,
                headers(&[(
                    "cache-control",
                    HeaderValue::from_static("max-age=9999999999999"),
                )]),
                s(DELTA_MAX),
            ),
            // Heuristic: 10% of Date - Last-Modified.
            (
                200,
                headers(&[("last-modified", date(t(0) - Duration::from_secs(1000)))]),
                Lifetime::Heuristic(Duration::from_secs(100)),
            ),
            // Heuristic capped.
            (
                404,
                headers(&[("last-modified", date(SystemTime::UNIX_EPOCH))]),
                Lifetime::Heuristic(Duration::from_secs(24 * 3600)),
            ),
            // Not heuristically cacheable status: nothing.
            (
                302,
                headers(&[("last-modified", date(t(0) - Duration::from_secs(1000)))]),
                Lifetime::None,
            ),
            // ... unless public.
            (
                302,
                headers(&[
                    ("last-modified", date(t(0) - Duration::from_secs(1000))),
                    ("cache-control", HeaderValue::from_static("public")),
                ]),
                Lifetime::Heuristic(Duration::from_secs(100)),
            ),
            (200, headers(&[]), Lifetime::None),
        ];
        for (i, (status, h, want)) in cases.iter().enumerate() {
            assert_eq!(lt(*status, h, &cfg), *want, "case {i}: {h:?}");
        }
    }

    #[test]
    fn targeted_field_ignores_expires_and_caps_apply() {
        let h = headers(&[
            ("cdn-cache-control", HeaderValue::from_static("public")),
            ("expires", date(t(100))),
        ]);
        assert_eq!(lt(200, &h, &LifetimeConfig::default()), Lifetime::None);

        let cfg = LifetimeConfig {
            default_ttl: Some(Duration::from_secs(30)),
            ttl_max: Some(Duration::from_secs(60)),
            ..LifetimeConfig::default()
        };
        assert_eq!(
            lt(200, &headers(&[]), &cfg),
            Lifetime::Default(Duration::from_secs(30))
        );
        assert_eq!(lt(500, &headers(&[]), &cfg), Lifetime::None);
        let h = headers(&[("cache-control", HeaderValue::from_static("max-age=3600"))]);
        assert_eq!(
            lt(200, &h, &cfg),
            Lifetime::Explicit(Duration::from_secs(60))
        );
    }

    #[test]
    fn age_maths_table() {
        // (age header, date, request time, response time) -> corrected initial age
        let cases = [
            (0, Some(t(0)), t(0), t(0), 0),
            (0, Some(t(0)), t(0), t(5), 5),   // apparent age 5
            (10, Some(t(0)), t(0), t(2), 12), // age + delay beats apparent 2
            (0, Some(t(100)), t(0), t(2), 2), // date in future: apparent 0, delay 2
            (3, None, t(0), t(1), 4),
        ];
        for (age, d, req, resp, want) in cases {
            let got = corrected_initial_age(Duration::from_secs(age), d, req, resp);
            assert_eq!(got, Duration::from_secs(want), "{age} {d:?}");
        }
        assert_eq!(
            current_age(Duration::from_secs(4), Duration::from_secs(6)),
            Duration::from_secs(10)
        );
        assert_eq!(ttl_secs(Duration::from_secs(10), Duration::from_secs(4)), 6);
        assert_eq!(
            ttl_secs(Duration::from_secs(10), Duration::from_secs(14)),
            -4
        );
        assert_eq!(age_header_secs(Duration::from_secs(u64::MAX)), DELTA_MAX);
        assert_eq!(
            staleness(Duration::from_secs(10), Duration::from_secs(14)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn age_header_parsing() {
        let cases = [
            ("5", 5),
            ("5, 7", 5),
            ("abc", 0),
            ("-3", 0),
            ("99999999999999", DELTA_MAX),
        ];
        for (v, want) in cases {
            let h = headers(&[("age", HeaderValue::from_static(v))]);
            assert_eq!(age_value(&h), Duration::from_secs(want), "{v}");
        }
        assert_eq!(age_value(&HeaderMap::new()), Duration::ZERO);
    }

    #[test]
    fn heuristic_statuses() {
        for s in [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501] {
            assert!(
                heuristically_cacheable(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
        for s in [201, 302, 303, 307, 400, 403, 500, 502, 503] {
            assert!(
                !heuristically_cacheable(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }
}
