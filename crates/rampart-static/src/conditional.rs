//! Validators, conditional requests (RFC 9110 §13) and single byte ranges (§14) for files.
//!
//! Pure functions over header maps. The precedence is §13.2.2: `If-Match`, else
//! `If-Unmodified-Since` (412 when they fail); then `If-None-Match`, else
//! `If-Modified-Since` for GET/HEAD (304); then `Range` with `If-Range`.
//!
//! (rampart-compress answers the same questions for cached responses; the two are to be
//! folded into one helper.)

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, header};

/// A strong entity tag for a file of `len` bytes modified at `mtime`, with the sidecar's
/// encoding (`""` for the file itself) so each representation has its own tag.
pub fn etag(len: u64, mtime: Option<SystemTime>, encoding: &str) -> String {
    let nanos = mtime
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    if encoding.is_empty() {
        format!("\"{len:x}-{nanos:x}\"")
    } else {
        format!("\"{len:x}-{nanos:x}-{encoding}\"")
    }
}

/// What the preconditions say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Go on and serve.
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluate the preconditions of `req` against the file's validators (§13.2.2).
/// `last_modified` is in whole seconds (as sent).
pub fn evaluate(
    method: &Method,
    req: &HeaderMap,
    etag: &str,
    last_modified: Option<SystemTime>,
) -> Precondition {
    // 1-2: If-Match, else If-Unmodified-Since.
    if let Some(list) = header_list(req, &header::IF_MATCH) {
        if !list_matches(&list, etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(since) = header_date(req, &header::IF_UNMODIFIED_SINCE)
        && let Some(lm) = last_modified
        && lm > since
    {
        return Precondition::Failed;
    }
    // 3-4: If-None-Match, else If-Modified-Since (GET/HEAD only).
    let safe = method == Method::GET || method == Method::HEAD;
    if let Some(list) = header_list(req, &header::IF_NONE_MATCH) {
        if list_matches(&list, etag, false) {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe
        && let Some(since) = header_date(req, &header::IF_MODIFIED_SINCE)
        && let Some(lm) = last_modified
        && lm <= since
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// `Last-Modified` truncated to whole seconds (what the header can carry).
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => UNIX_EPOCH,
    }
}

fn header_date(req: &HeaderMap, name: &header::HeaderName) -> Option<SystemTime> {
    let v = req.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(v.trim()).ok()
}

/// The comma-separated entity tags of every `name` field; `None` when absent.
fn header_list(req: &HeaderMap, name: &header::HeaderName) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut any = false;
    for v in req.get_all(name) {
        any = true;
        let Ok(s) = v.to_str() else { continue };
        out.extend(split_tags(s));
    }
    any.then_some(out)
}

/// Split an entity-tag list (`"a", W/"b,c", *`) without breaking quoted commas.
fn split_tags(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    let t = cur.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
    out
}

fn list_matches(list: &[String], etag: &str, strong: bool) -> bool {
    list.iter().any(|t| {
        if t == "*" {
            return true;
        }
        if strong {
            // Strong comparison: neither may be weak.
            !t.starts_with("W/") && !etag.starts_with("W/") && t == etag
        } else {
            opaque(t) == opaque(etag)
        }
    })
}

fn opaque(t: &str) -> &str {
    t.strip_prefix("W/").unwrap_or(t)
}

/// What `Range` asks of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No (usable) range: serve the whole representation (200).
    Full,
    /// One satisfiable range, inclusive `start..=end` (206).
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// No range can be satisfied (416, `Content-Range: bytes */len`).
    Unsatisfiable,
}

/// Evaluate `Range` (GET only) with `If-Range` against the validators. Several ranges are
/// answered with the whole representation (allowed by §14.2); a malformed field is ignored.
pub fn range(
    method: &Method,
    req: &HeaderMap,
    len: u64,
    etag: &str,
    last_modified: Option<SystemTime>,
) -> RangeAnswer {
    if method != Method::GET {
        return RangeAnswer::Full;
    }
    let Some(v) = req.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeAnswer::Full;
    };
    if let Some(ir) = req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let ir = ir.trim();
        let fresh = if ir.starts_with('"') {
            ir == etag
        } else if ir.starts_with("W/") {
            false
        } else {
            // A date validator must match exactly (and be strong; ours is: whole seconds).
            httpdate::parse_http_date(ir)
                .ok()
                .zip(last_modified)
                .is_some_and(|(d, lm)| d == lm)
        };
        if !fresh {
            return RangeAnswer::Full;
        }
    }
    parse_range(v, len)
}

/// Parse `bytes=…` for a representation of `len` bytes.
pub fn parse_range(v: &str, len: u64) -> RangeAnswer {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    let specs: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.len() != 1 {
        return RangeAnswer::Full;
    }
    let Some((a, b)) = specs[0].split_once('-') else {
        return RangeAnswer::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if a.is_empty() {
        // Suffix: the last n bytes.
        if !digits(b) {
            return RangeAnswer::Full;
        }
        let Ok(n) = b.parse::<u64>() else {
            return RangeAnswer::Full;
        };
        if n == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        };
    }
    if !digits(a) || !(b.is_empty() || digits(b)) {
        return RangeAnswer::Full;
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeAnswer::Unsatisfiable;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        b.parse::<u64>().unwrap_or(u64::MAX)
    };
    if end < start {
        return RangeAnswer::Full;
    }
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial {
        start,
        end: end.min(len - 1),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    const TAG: &str = "\"1f-abc\"";

    fn lm() -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn precondition_precedence() {
        use Precondition::*;
        let get = Method::GET;
        let cases: Vec<(Vec<(&str, String)>, Precondition)> = vec![
            (vec![], Proceed),
            (vec![("if-none-match", TAG.into())], NotModified),
            (vec![("if-none-match", format!("W/{TAG}"))], NotModified),
            (
                vec![("if-none-match", "\"x\", \"1f-abc\"".into())],
                NotModified,
            ),
            (vec![("if-none-match", "*".into())], NotModified),
            (vec![("if-none-match", "\"x\"".into())], Proceed),
            (vec![("if-match", TAG.into())], Proceed),
            (vec![("if-match", "\"x\"".into())], Failed),
            (vec![("if-match", format!("W/{TAG}"))], Failed),
            (
                vec![("if-modified-since", date(1_700_000_000))],
                NotModified,
            ),
            (vec![("if-modified-since", date(1_699_999_999))], Proceed),
            (vec![("if-unmodified-since", date(1_699_999_999))], Failed),
            (vec![("if-unmodified-since", date(1_700_000_000))], Proceed),
            // If-None-Match wins over If-Modified-Since.
            (
                vec![
                    ("if-none-match", "\"x\"".into()),
                    ("if-modified-since", date(1_800_000_000)),
                ],
                Proceed,
            ),
            // If-Match wins over If-Unmodified-Since.
            (
                vec![("if-match", TAG.into()), ("if-unmodified-since", date(1))],
                Proceed,
            ),
            // A failed If-Match wins over a matching If-None-Match.
            (
                vec![("if-match", "\"x\"".into()), ("if-none-match", TAG.into())],
                Failed,
            ),
        ];
        for (hs, want) in cases {
            let pairs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(evaluate(&get, &h(&pairs), TAG, lm()), want, "{hs:?}");
        }
        // Unsafe methods: a matching If-None-Match is 412, If-Modified-Since ignored.
        assert_eq!(
            evaluate(&Method::POST, &h(&[("if-none-match", TAG)]), TAG, lm()),
            Failed
        );
        let ims = date(1_800_000_000);
        assert_eq!(
            evaluate(&Method::POST, &h(&[("if-modified-since", &ims)]), TAG, lm()),
            Proceed
        );
    }

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        for (v, want) in [
            ("bytes=0-9", Partial { start: 0, end: 9 }),
            ("bytes=10-", Partial { start: 10, end: 99 }),
            ("bytes=-10", Partial { start: 90, end: 99 }),
            ("bytes=-1000", Partial { start: 0, end: 99 }),
            ("bytes=90-1000", Partial { start: 90, end: 99 }),
            ("bytes=100-", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=5-1", Full),
            ("bytes=0-1,5-6", Full),
            ("items=0-1", Full),
            ("bytes=a-b", Full),
            ("bytes=99999999999999999999999-", Unsatisfiable),
        ] {
            assert_eq!(parse_range(v, 100), want, "{v}");
        }
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn if_range() {
        let get = Method::GET;
        let lmd = date(1_700_000_000);
        let r = |ir: &str| {
            range(
                &get,
                &h(&[("range", "bytes=0-0"), ("if-range", ir)]),
                10,
                TAG,
                lm(),
            )
        };
        assert_eq!(r(TAG), RangeAnswer::Partial { start: 0, end: 0 });
        assert_eq!(r("\"other\""), RangeAnswer::Full);
        assert_eq!(r(&format!("W/{TAG}")), RangeAnswer::Full);
        assert_eq!(r(&lmd), RangeAnswer::Partial { start: 0, end: 0 });
        assert_eq!(r(&date(1_600_000_000)), RangeAnswer::Full);
        // HEAD ignores Range.
        assert_eq!(
            range(&Method::HEAD, &h(&[("range", "bytes=0-0")]), 10, TAG, lm()),
            RangeAnswer::Full
        );
    }

    #[test]
    fn etags_differ_per_encoding() {
        let t = Some(UNIX_EPOCH + Duration::from_nanos(5));
        assert_eq!(etag(31, t, ""), "\"1f-5\"");
        assert_eq!(etag(31, t, "br"), "\"1f-5-br\"");
    }
}
