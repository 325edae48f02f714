//! Entity tags (RFC 9110 §8.8.3) and preconditions (§13.1, evaluated in the order of
//! §13.2.2), for a resource that exists: a stored 2xx answer (`rampart-compress`, above the
//! cache) or a file (`rampart-static`). `Range` / `If-Range` are the next step
//! ([`crate::range`]).

use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Method, header};

/// The opaque part and weakness of an entity tag.
fn split(tag: &[u8]) -> (bool, &[u8]) {
    match tag.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, tag),
    }
}

/// Weak comparison (§8.8.3.2): opaque tags equal, weakness ignored.
pub fn weak_eq(a: &[u8], b: &[u8]) -> bool {
    split(a).1 == split(b).1
}

/// Strong comparison: both strong and equal.
pub fn strong_eq(a: &[u8], b: &[u8]) -> bool {
    let (wa, oa) = split(a);
    let (wb, ob) = split(b);
    !wa && !wb && oa == ob
}

/// The members of an entity-tag list (`"a", W/"b,c", *`), trimmed; a comma inside quotes
/// does not split.
fn tags(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut quoted = false;
    value
        .split(move |&b| {
            if b == b'"' {
                quoted = !quoted;
            }
            b == b',' && !quoted
        })
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Whether a member of any `name` field matches `etag` under `eq`; `*` matches the current
/// representation, which exists here (with or without an entity tag, §13.1.1).
fn list_matches(
    req: &HeaderMap,
    name: &header::HeaderName,
    etag: Option<&[u8]>,
    eq: fn(&[u8], &[u8]) -> bool,
) -> bool {
    req.get_all(name)
        .iter()
        .flat_map(|v| tags(v.as_bytes()))
        .any(|t| t == b"*" || etag.is_some_and(|e| eq(t, e)))
}

/// An HTTP-date field (surrounding whitespace allowed); `None` when absent or malformed.
pub fn date(h: &HeaderMap, name: &header::HeaderName) -> Option<SystemTime> {
    let v = h.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(v.trim()).ok()
}

/// Result of evaluating the preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Go on (serve, or apply `Range`).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// The selected representation's validators.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// Its `ETag` (as sent with it: weakened when transformed).
    pub etag: Option<&'a [u8]>,
    /// Its `Last-Modified`.
    pub last_modified: Option<SystemTime>,
}

impl<'a> Validators<'a> {
    /// Read from response headers.
    pub fn from_headers(h: &'a HeaderMap) -> Self {
        Self {
            etag: h.get(header::ETAG).map(HeaderValue::as_bytes),
            last_modified: date(h, &header::LAST_MODIFIED),
        }
    }
}

/// RFC 9110 §13.2.2, for a resource that exists:
/// 1. `If-Match` (strong comparison) false → 412;
/// 2. else `If-Unmodified-Since` false → 412;
/// 3. `If-None-Match` (weak comparison) true → 304 for GET/HEAD, 412 otherwise;
/// 4. else, for GET/HEAD, `If-Modified-Since` false (not modified) → 304;
/// 5. `Range` / `If-Range` are the caller's next step ([`crate::range`]).
pub fn evaluate(method: &Method, req: &HeaderMap, v: Validators<'_>) -> Precondition {
    if req.contains_key(header::IF_MATCH) {
        if !list_matches(req, &header::IF_MATCH, v.etag, strong_eq) {
            return Precondition::Failed;
        }
    } else if let (Some(ius), Some(lm)) = (date(req, &header::IF_UNMODIFIED_SINCE), v.last_modified)
        && lm > ius
    {
        return Precondition::Failed;
    }
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if req.contains_key(header::IF_NONE_MATCH) {
        if list_matches(req, &header::IF_NONE_MATCH, v.etag, weak_eq) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head
        && let (Some(ims), Some(lm)) = (date(req, &header::IF_MODIFIED_SINCE), v.last_modified)
        && lm <= ims
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Headers a 304 carries (§15.4.5): those a 200 would have sent among these.
pub const NOT_MODIFIED_FIELDS: [header::HeaderName; 8] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
    header::LAST_MODIFIED,
    header::AGE,
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::type_complexity)]
    use super::*;

    const LM: &str = "Sun, 01 Nov 2026 00:00:00 GMT";
    const BEFORE: &str = "Sat, 31 Oct 2026 00:00:00 GMT";
    const AFTER: &str = "Mon, 02 Nov 2026 00:00:00 GMT";

    fn req(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            h.append(
                header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn comparisons() {
        assert!(weak_eq(b"W/\"a\"", b"\"a\""));
        assert!(!strong_eq(b"W/\"a\"", b"\"a\""));
        assert!(strong_eq(b"\"a\"", b"\"a\""));
        assert!(!weak_eq(b"\"a\"", b"\"b\""));
    }

    #[test]
    fn tag_lists_keep_quoted_commas() {
        let got: Vec<&[u8]> = tags(br#" "a" ,W/"b,c",, * "#).collect();
        assert_eq!(got, [&br#""a""#[..], br#"W/"b,c""#, b"*"]);
    }

    #[test]
    fn precedence_table() {
        use Precondition::*;
        let lm = httpdate::parse_http_date(LM).ok();
        let strong = Validators {
            etag: Some(b"\"v1\""),
            last_modified: lm,
        };
        let weak = Validators {
            etag: Some(b"W/\"v1\""),
            last_modified: lm,
        };
        let none = Validators {
            etag: None,
            last_modified: None,
        };
        let comma = Validators {
            etag: Some(b"\"b,c\""),
            last_modified: None,
        };
        let get = Method::GET;
        let cases: &[(&[(&str, &str)], Validators<'_>, &Method, Precondition)] = &[
            (&[], strong, &get, Proceed),
            (&[("if-none-match", "\"v1\"")], strong, &get, NotModified),
            (&[("if-none-match", "W/\"v1\"")], strong, &get, NotModified),
            (&[("if-none-match", "\"v1\"")], weak, &get, NotModified),
            (
                &[("if-none-match", "\"x\", \"v1\"")],
                strong,
                &get,
                NotModified,
            ),
            (&[("if-none-match", "*")], strong, &get, NotModified),
            // `*` is about the representation existing, not about it having a tag.
            (&[("if-none-match", "*")], none, &get, NotModified),
            (&[("if-none-match", "\"x\"")], strong, &get, Proceed),
            (
                &[("if-none-match", "\"a\", \"b,c\"")],
                comma,
                &get,
                NotModified,
            ),
            (&[("if-none-match", "\"b\"")], comma, &get, Proceed),
            (
                &[("if-none-match", "\"v1\"")],
                strong,
                &Method::POST,
                Failed,
            ),
            (&[("if-match", "\"v1\"")], strong, &get, Proceed),
            (&[("if-match", "\"v1\"")], weak, &get, Failed),
            (&[("if-match", "*")], strong, &get, Proceed),
            (&[("if-match", "*")], none, &get, Proceed),
            (&[("if-match", "\"x\"")], strong, &get, Failed),
            (&[("if-match", "\"x\"")], none, &get, Failed),
            // If-Match fails first even when If-None-Match would give 304.
            (
                &[("if-match", "\"x\""), ("if-none-match", "\"v1\"")],
                strong,
                &get,
                Failed,
            ),
            (&[("if-unmodified-since", BEFORE)], strong, &get, Failed),
            (&[("if-unmodified-since", LM)], strong, &get, Proceed),
            (&[("if-unmodified-since", AFTER)], strong, &get, Proceed),
            // If-Unmodified-Since is ignored when If-Match is present.
            (
                &[("if-match", "\"v1\""), ("if-unmodified-since", BEFORE)],
                strong,
                &get,
                Proceed,
            ),
            (&[("if-unmodified-since", "garbage")], strong, &get, Proceed),
            (&[("if-modified-since", LM)], strong, &get, NotModified),
            (&[("if-modified-since", AFTER)], strong, &get, NotModified),
            (&[("if-modified-since", BEFORE)], strong, &get, Proceed),
            (&[("if-modified-since", LM)], none, &get, Proceed),
            (
                &[("if-modified-since", LM)],
                strong,
                &Method::HEAD,
                NotModified,
            ),
            (&[("if-modified-since", LM)], strong, &Method::POST, Proceed),
            // If-Modified-Since is ignored when If-None-Match is present.
            (
                &[("if-none-match", "\"x\""), ("if-modified-since", AFTER)],
                strong,
                &get,
                Proceed,
            ),
        ];
        for (fields, v, m, want) in cases {
            assert_eq!(evaluate(m, &req(fields), *v), *want, "{m} {fields:?}");
        }
    }
}
