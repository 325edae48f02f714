//! Compact byte encodings shared by [`crate::entry::Entry`] and the memory store's arena
//! objects: LEB128 varints, durations, instants relative to an epoch, and header names as
//! one-byte codes for the common response fields (a literal for the rest).
//!
//! Decoding never panics: every read returns `None` past the end or on a malformed value,
//! and callers treat that as "not stored".

use std::time::Duration;

use http::{HeaderName, header};
use tokio::time::Instant;

/// Append `v` as an unsigned LEB128 varint (1 byte below 128, at most 10).
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Append a length-prefixed byte string.
pub(crate) fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Append a duration exactly: whole seconds shifted left by one, the low bit set when
/// nanoseconds follow (2 bytes for `3600s`). Durations above 2^63 s saturate.
pub(crate) fn put_duration(buf: &mut Vec<u8>, d: Duration) {
    let secs = d.as_secs().min(u64::MAX >> 1) << 1;
    match d.subsec_nanos() {
        0 => put_varint(buf, secs),
        n => {
            put_varint(buf, secs | 1);
            put_varint(buf, u64::from(n));
        }
    }
}

/// Append a signed value (zigzag varint).
pub(crate) fn put_signed(buf: &mut Vec<u8>, v: i64) {
    put_varint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Nanoseconds from `epoch` to `t` (negative before it), saturating at ±292 years.
pub(crate) fn instant_ns(t: Instant, epoch: Instant) -> i64 {
    match t.checked_duration_since(epoch) {
        Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        None => i64::try_from(epoch.duration_since(t).as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// The instant `ns` nanoseconds from `epoch` (inverse of [`instant_ns`]).
pub(crate) fn ns_instant(ns: i64, epoch: Instant) -> Instant {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        epoch + d
    } else {
        epoch.checked_sub(d).unwrap_or(epoch)
    }
}

/// A cursor over encoded bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[cfg(test)]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    /// Current offset in the buffer.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let b = self.u8()?;
        if b < 0x80 {
            return Some(u64::from(b));
        }
        let v = u64::from(b & 0x7f);
        let b = self.u8()?;
        if b < 0x80 {
            return Some(v | u64::from(b) << 7);
        }
        self.varint_rest(v | u64::from(b & 0x7f) << 7)
    }

    fn varint_rest(&mut self, mut v: u64) -> Option<u64> {
        let mut shift = 14;
        while shift < 64 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
            shift += 7;
        }
        None
    }

    #[inline]
    pub(crate) fn usize(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }

    #[inline]
    pub(crate) fn signed(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    #[inline(always)]
    pub(crate) fn duration(&mut self) -> Option<Duration> {
        let v = self.varint()?;
        if v & 1 == 0 {
            return Some(Duration::from_secs(v >> 1));
        }
        let nanos = u32::try_from(self.varint()?)
            .ok()
            .filter(|n| *n < 1_000_000_000)?;
        Some(Duration::new(v >> 1, nanos))
    }

    /// The next `n` bytes.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// A length-prefixed byte string, as its range in the buffer.
    #[inline]
    pub(crate) fn bytes_range(&mut self) -> Option<std::ops::Range<usize>> {
        let n = self.usize()?;
        let start = self.pos;
        self.take(n)?;
        Some(start..self.pos)
    }

    /// A length-prefixed byte string.
    #[inline]
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.usize()?;
        self.take(n)
    }

    /// A header name written by [`put_name`]: a code into [`NAMES`], or 0 and a literal.
    #[inline]
    pub(crate) fn name(&mut self) -> Option<NameRef<'a>> {
        match self.u8()? {
            0 => Some(NameRef::Literal(self.bytes()?)),
            c => NAMES.get(usize::from(c) - 1).map(NameRef::Known),
        }
    }
}

/// A decoded header name: one of the common names, or the bytes of another.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NameRef<'a> {
    Known(&'static HeaderName),
    Literal(&'a [u8]),
}

impl NameRef<'_> {
    /// The name as a `HeaderName` (a copy of a constant for the common names).
    pub(crate) fn to_name(self) -> Option<HeaderName> {
        match self {
            Self::Known(n) => Some(n.clone()),
            Self::Literal(b) => HeaderName::from_bytes(b).ok(),
        }
    }

    /// Whether this is `name`.
    pub(crate) fn is(self, name: &HeaderName) -> bool {
        match self {
            Self::Known(n) => n == name,
            Self::Literal(b) => b == name.as_str().as_bytes(),
        }
    }
}

/// Response header names stored as one byte (code = index + 1). Append only: the codes are
/// the store's format (in memory only, so a reorder would be harmless, but pointless).
pub(crate) static NAMES: [HeaderName; 48] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CACHE_CONTROL,
    header::DATE,
    header::ETAG,
    header::LAST_MODIFIED,
    header::EXPIRES,
    header::VARY,
    header::CONTENT_ENCODING,
    header::SERVER,
    header::SET_COOKIE,
    header::ACCEPT_RANGES,
    header::LOCATION,
    header::CONTENT_LANGUAGE,
    header::CONTENT_DISPOSITION,
    header::CONTENT_LOCATION,
    header::CONTENT_RANGE,
    header::CONTENT_SECURITY_POLICY,
    header::STRICT_TRANSPORT_SECURITY,
    header::X_CONTENT_TYPE_OPTIONS,
    header::X_FRAME_OPTIONS,
    header::X_XSS_PROTECTION,
    header::REFERRER_POLICY,
    header::LINK,
    header::ALT_SVC,
    header::VIA,
    header::PRAGMA,
    header::RETRY_AFTER,
    header::WWW_AUTHENTICATE,
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    header::ACCESS_CONTROL_ALLOW_HEADERS,
    header::ACCESS_CONTROL_ALLOW_METHODS,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
    header::ACCESS_CONTROL_MAX_AGE,
    HeaderName::from_static("timing-allow-origin"),
    header::AGE,
    header::WARNING,
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("surrogate-key"),
    HeaderName::from_static("surrogate-control"),
    HeaderName::from_static("cache-tag"),
    HeaderName::from_static("cdn-cache-control"),
    HeaderName::from_static("permissions-policy"),
    HeaderName::from_static("cross-origin-opener-policy"),
    HeaderName::from_static("cross-origin-resource-policy"),
    HeaderName::from_static("cross-origin-embedder-policy"),
    HeaderName::from_static("x-request-id"),
];

/// Append a header name: its code, or 0 and the name's bytes.
pub(crate) fn put_name(buf: &mut Vec<u8>, name: &HeaderName) {
    match NAMES.iter().position(|n| n == name) {
        Some(i) => buf.push((i + 1) as u8),
        None => {
            buf.push(0);
            put_bytes(buf, name.as_str().as_bytes());
        }
    }
}

/// Content codings of stored variants, stored as their index. The representation layer
/// names codings with `&'static str`; these are the ones it can produce.
pub(crate) static CODINGS: [&str; 5] = ["identity", "br", "zstd", "gzip", "deflate"];

/// The code of a coding, if it is one of [`CODINGS`].
pub(crate) fn coding_code(coding: &str) -> Option<u8> {
    CODINGS.iter().position(|c| *c == coding).map(|i| i as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_durations_and_names_round_trip() {
        let mut b = Vec::new();
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            put_varint(&mut b, v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            put_signed(&mut b, v);
        }
        let d = Duration::new(3600, 250);
        put_duration(&mut b, d);
        put_duration(&mut b, Duration::from_secs(3600));
        put_name(&mut b, &header::ETAG);
        put_name(&mut b, &HeaderName::from_static("x-custom"));
        let mut r = Reader::new(&b);
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(r.varint(), Some(v));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(r.signed(), Some(v));
        }
        assert_eq!(r.duration(), Some(d));
        assert_eq!(r.duration(), Some(Duration::from_secs(3600)));
        assert_eq!(r.name().and_then(NameRef::to_name), Some(header::ETAG));
        let custom = r.name().unwrap();
        assert!(custom.is(&HeaderName::from_static("x-custom")));
        assert!(!custom.is(&header::ETAG));
        assert_eq!(r.pos(), b.len());
        assert_eq!(r.u8(), None, "reads past the end fail");
        // A truncated varint fails instead of panicking.
        assert_eq!(Reader::new(&[0x80, 0x80]).varint(), None);
        assert_eq!(Reader::new(&[0xff; 11]).varint(), None);
    }

    #[test]
    fn common_names_take_one_byte() {
        let mut b = Vec::new();
        put_name(&mut b, &header::CONTENT_TYPE);
        put_name(&mut b, &HeaderName::from_static("cdn-cache-control"));
        assert_eq!(b.len(), 2);
        assert!(
            NAMES
                .iter()
                .all(|n| n.as_str() == n.as_str().to_ascii_lowercase())
        );
        assert!(CODINGS.len() < 256 && NAMES.len() < 256);
    }

    #[tokio::test(start_paused = true)]
    async fn instants_relative_to_an_epoch() {
        let epoch = Instant::now();
        tokio::time::advance(Duration::from_secs(5)).await;
        let later = Instant::now();
        assert_eq!(instant_ns(later, epoch), 5_000_000_000);
        assert_eq!(ns_instant(5_000_000_000, epoch), later);
        assert_eq!(instant_ns(epoch, later), -5_000_000_000);
        assert_eq!(ns_instant(-5_000_000_000, later), epoch);
    }
}
