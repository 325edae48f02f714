//! Range requests (RFC 9110 §14) on a representation of known length: `bytes` ranges in every
//! form (`a-b`, `a-`, `-n`), several at once (sorted and coalesced; `multipart/byteranges`
//! built by [`multipart`]), `If-Range`, and 416 with `Content-Range: bytes */len`. Shared by
//! `rampart-compress` (stored answers, several ranges) and `rampart-static` (files, one
//! range; several are answered whole, as §14.2 allows).
//!
//! Defences: at most [`MAX_RANGES`] ranges; a request with more is served whole (§14.2 lets
//! a server ignore `Range`), so a request cannot make the gateway send the same bytes many
//! times over. Positions too large for 64 bits count as past the end.

use std::ops::RangeInclusive;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, header};

use crate::conditional::{Validators, strong_eq};

/// Most ranges served in one multipart answer.
pub const MAX_RANGES: usize = 16;

/// What a `Range` request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No (usable) `Range`, or `If-Range` did not match: the whole representation, 200.
    Full,
    /// 206 with these inclusive byte ranges (sorted, merged when they overlap or touch).
    Partial(Vec<RangeInclusive<u64>>),
    /// 416: no range overlaps the representation.
    Unsatisfiable,
}

/// Evaluate `Range` (and `If-Range`) of a GET against a representation of `len` bytes with
/// validators `v` (call it for GET only: other methods ignore `Range`).
pub fn evaluate(req: &HeaderMap, len: u64, v: Validators<'_>) -> RangeOutcome {
    let Some(range) = req.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeOutcome::Full;
    };
    if let Some(if_range) = req.get(header::IF_RANGE)
        && !if_range_matches(if_range, v)
    {
        return RangeOutcome::Full;
    }
    parse(range, len)
}

/// §13.1.5: an entity tag compares strongly; a date must equal `Last-Modified` exactly.
fn if_range_matches(if_range: &HeaderValue, v: Validators<'_>) -> bool {
    let b = if_range.as_bytes().trim_ascii();
    if b.starts_with(b"\"") || b.starts_with(b"W/") {
        return v.etag.is_some_and(|e| strong_eq(b, e));
    }
    let date = std::str::from_utf8(b)
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok());
    matches!((date, v.last_modified), (Some(d), Some(lm)) if d == lm)
}

/// A byte position: digits only; more than 64 bits saturates (past any end).
fn position(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// Parse a `Range` value for a representation of `len` bytes.
pub fn parse(value: &str, len: u64) -> RangeOutcome {
    let value = value.trim();
    let spec = match value.split_at_checked(6) {
        Some((unit, spec)) if unit.eq_ignore_ascii_case("bytes=") => spec,
        _ => return RangeOutcome::Full, // other units: ignored
    };
    let mut ranges: Vec<RangeInclusive<u64>> = Vec::new();
    let mut count = 0usize;
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        count += 1;
        if count > MAX_RANGES {
            return RangeOutcome::Full;
        }
        let Some((a, b)) = item.split_once('-') else {
            return RangeOutcome::Full; // invalid syntax: ignore the field
        };
        let (a, b) = (a.trim(), b.trim());
        let r = if a.is_empty() {
            // suffix: the last n bytes
            let Some(n) = position(b) else {
                return RangeOutcome::Full;
            };
            if n == 0 || len == 0 {
                continue; // unsatisfiable member
            }
            len.saturating_sub(n)..=len - 1
        } else {
            let Some(first) = position(a) else {
                return RangeOutcome::Full;
            };
            let last = if b.is_empty() {
                u64::MAX
            } else {
                match position(b) {
                    Some(l) if l >= first => l,
                    _ => return RangeOutcome::Full,
                }
            };
            if first >= len {
                continue; // unsatisfiable member
            }
            first..=last.min(len - 1)
        };
        ranges.push(r);
    }
    if count == 0 {
        return RangeOutcome::Full;
    }
    if ranges.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }
    // Merge overlapping or adjacent ranges (§14.2 allows coalescing).
    ranges.sort_by_key(|r| *r.start());
    let mut merged: Vec<RangeInclusive<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if *r.start() <= last.end().saturating_add(1) => {
                let end = (*last.end()).max(*r.end());
                *last = *last.start()..=end;
            }
            _ => merged.push(r),
        }
    }
    RangeOutcome::Partial(merged)
}

/// `bytes a-b/len` (206).
pub fn content_range(r: &RangeInclusive<u64>, len: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes {}-{}/{len}", r.start(), r.end()))
        .unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

/// `bytes */len` (416).
pub fn unsatisfied_range(len: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes */{len}"))
        .unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

/// A `multipart/byteranges` body (§14.6) and its `Content-Type`; each part carries the
/// representation's `Content-Type` (when it has one) and its `Content-Range`.
pub fn multipart(
    body: &Bytes,
    ranges: &[RangeInclusive<u64>],
    content_type: Option<&HeaderValue>,
    boundary: &str,
) -> (Bytes, HeaderValue) {
    let len = body.len() as u64;
    let total: u64 = ranges.iter().map(|r| r.end() - r.start() + 1 + 128).sum();
    let mut out = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
    for r in ranges {
        out.put_slice(b"\r\n--");
        out.put_slice(boundary.as_bytes());
        out.put_slice(b"\r\n");
        if let Some(ct) = content_type {
            out.put_slice(b"content-type: ");
            out.put_slice(ct.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"content-range: ");
        out.put_slice(content_range(r, len).as_bytes());
        out.put_slice(b"\r\n\r\n");
        let (s, e) = (*r.start() as usize, *r.end() as usize);
        out.put_slice(&body[s..=e]);
    }
    out.put_slice(b"\r\n--");
    out.put_slice(boundary.as_bytes());
    out.put_slice(b"--\r\n");
    let ct = HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
        .unwrap_or_else(|_| HeaderValue::from_static("multipart/byteranges"));
    (out.freeze(), ct)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::single_range_in_vec_init)]
    use super::*;
    use RangeOutcome::*;

    #[test]
    fn range_forms() {
        let cases: &[(&str, RangeOutcome)] = &[
            ("bytes=0-9", Partial(vec![0..=9])),
            ("bytes=90-", Partial(vec![90..=99])),
            ("bytes=95-200", Partial(vec![95..=99])),
            ("bytes=90-1000", Partial(vec![90..=99])),
            ("bytes=-10", Partial(vec![90..=99])),
            ("bytes=-500", Partial(vec![0..=99])),
            ("bytes=0-0,-1", Partial(vec![0..=0, 99..=99])),
            ("bytes=0-1,5-6", Partial(vec![0..=1, 5..=6])),
            ("bytes=10-19, 0-4", Partial(vec![0..=4, 10..=19])),
            ("bytes=0-10,5-20", Partial(vec![0..=20])),
            ("bytes=0-4,5-9", Partial(vec![0..=9])),
            ("bytes=100-", Unsatisfiable),
            ("bytes=200-300", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=100-,0-1", Partial(vec![0..=1])),
            // Positions beyond 64 bits are past the end, not malformed.
            ("bytes=99999999999999999999999-", Unsatisfiable),
            ("bytes=0-99999999999999999999999", Partial(vec![0..=99])),
            (" Bytes=0-9", Partial(vec![0..=9])),
            ("BYTES=0-9", Partial(vec![0..=9])),
            ("bytes=9-5", Full),
            ("bytes=5-1", Full),
            ("bytes=abc", Full),
            ("bytes=a-b", Full),
            ("bytes=1-2-3", Full),
            ("items=0-1", Full),
            ("bytes", Full),
            ("bytes=", Full),
            (
                "bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13,14-15,16-17,18-19,20-21,22-23,24-25,26-27,28-29,30-31,32-33",
                Full,
            ),
        ];
        for (v, want) in cases {
            assert_eq!(parse(v, 100), *want, "{v}");
        }
        assert_eq!(parse("bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn if_range() {
        let lm = httpdate::parse_http_date("Sun, 01 Nov 2026 00:00:00 GMT").ok();
        let v = Validators {
            etag: Some(b"\"v1\""),
            last_modified: lm,
        };
        let mut h = HeaderMap::new();
        assert_eq!(evaluate(&h, 10, v), Full, "no Range");
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        assert_eq!(evaluate(&h, 10, v), Partial(vec![0..=1]));
        for (if_range, want) in [
            ("\"v1\"", Partial(vec![0..=1])),
            ("\"v2\"", Full),
            ("W/\"v1\"", Full),
            ("Sun, 01 Nov 2026 00:00:00 GMT", Partial(vec![0..=1])),
            ("Mon, 02 Nov 2026 00:00:00 GMT", Full),
            ("Sat, 31 Oct 2026 00:00:00 GMT", Full),
            ("garbage", Full),
        ] {
            h.insert(header::IF_RANGE, HeaderValue::from_static(if_range));
            assert_eq!(evaluate(&h, 10, v), want, "If-Range: {if_range}");
        }
        // A weak ETag on the representation never matches If-Range.
        let weak = Validators {
            etag: Some(b"W/\"v1\""),
            last_modified: None,
        };
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"v1\""));
        assert_eq!(evaluate(&h, 10, weak), Full);
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(&(0..=9), 100), "bytes 0-9/100");
        assert_eq!(unsatisfied_range(100), "bytes */100");
    }

    #[test]
    fn multipart_body() {
        let body = Bytes::from_static(b"0123456789");
        let ct = HeaderValue::from_static("text/plain");
        let (b, t) = multipart(&body, &[0..=1, 8..=9], Some(&ct), "B");
        assert_eq!(t, "multipart/byteranges; boundary=B");
        let s = std::str::from_utf8(&b).unwrap();
        assert_eq!(
            s,
            "\r\n--B\r\ncontent-type: text/plain\r\ncontent-range: bytes 0-1/10\r\n\r\n01\r\n--B\r\ncontent-type: text/plain\r\ncontent-range: bytes 8-9/10\r\n\r\n89\r\n--B--\r\n"
        );
    }
}
