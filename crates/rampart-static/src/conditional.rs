//! Validators of files, and the file service's use of the shared conditional-request and
//! Range rules (`rampart_core::conditional`, `rampart_core::range`: RFC 9110 §13.2.2
//! precedence, `If-Range`, byte ranges), the same rules the compression layer applies to
//! cached answers.
//!
//! Files are streamed, so one range is served (206); several ranges that do not coalesce
//! into one are answered with the whole file, as §14.2 allows.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method};
use rampart_core::{
    conditional::Validators,
    range::{self, RangeOutcome},
};

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

/// `Last-Modified` truncated to whole seconds (what the header can carry).
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => UNIX_EPOCH,
    }
}

/// What `Range` asks of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No (usable) range: serve the whole file (200).
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

/// Evaluate `Range` (GET only) with `If-Range` against the file's validators.
pub fn range(method: &Method, req: &HeaderMap, len: u64, v: Validators<'_>) -> RangeAnswer {
    if method != Method::GET {
        return RangeAnswer::Full;
    }
    match range::evaluate(req, len, v) {
        RangeOutcome::Partial(r) => match r.as_slice() {
            [one] => RangeAnswer::Partial {
                start: *one.start(),
                end: *one.end(),
            },
            _ => RangeAnswer::Full,
        },
        RangeOutcome::Full => RangeAnswer::Full,
        RangeOutcome::Unsatisfiable => RangeAnswer::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::header;
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

    #[test]
    fn one_range_per_file() {
        use RangeAnswer::*;
        let v = Validators {
            etag: Some(b"\"1f-abc\""),
            last_modified: None,
        };
        let get = |r: &str| range(&Method::GET, &h(&[("range", r)]), 100, v);
        assert_eq!(get("bytes=0-9"), Partial { start: 0, end: 9 });
        assert_eq!(get("bytes=-10"), Partial { start: 90, end: 99 });
        assert_eq!(get("bytes=100-"), Unsatisfiable);
        assert_eq!(get("bytes=5-1"), Full);
        // Several ranges: the whole file, unless they coalesce into one.
        assert_eq!(get("bytes=0-1,5-6"), Full);
        assert_eq!(get("bytes=0-4,5-9"), Partial { start: 0, end: 9 });
        // If-Range is applied.
        let stale = h(&[("range", "bytes=0-0"), ("if-range", "\"old\"")]);
        assert_eq!(range(&Method::GET, &stale, 10, v), Full);
        // HEAD ignores Range.
        let head = range(&Method::HEAD, &h(&[("range", "bytes=0-0")]), 10, v);
        assert_eq!(head, Full);
    }

    #[test]
    fn etags_differ_per_encoding() {
        let t = Some(UNIX_EPOCH + Duration::from_nanos(5));
        assert_eq!(etag(31, t, ""), "\"1f-5\"");
        assert_eq!(etag(31, t, "br"), "\"1f-5-br\"");
    }

    #[test]
    fn last_modified_in_whole_seconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(whole_seconds(t), UNIX_EPOCH + Duration::from_secs(1));
    }
}
