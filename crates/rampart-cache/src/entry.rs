//! A stored response ([`Entry`]) and the per-key [`Record`] holding its Vary variants.
//!
//! Headers and body live in **one** exact-size allocation: the header names and values
//! back to back, then the body. A hit rebuilds the `HeaderMap` with `HeaderValue`s that are
//! `Bytes` slices of that buffer and a body that is one more slice: no copy of any byte.
//! Storing headers packed (4 bytes of index per field) instead of as a `HeaderMap` keeps the
//! per-object overhead small and, importantly, does not pin the upstream's read buffer
//! (hyper's parsed header values are slices of it).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;

use crate::freshness;

/// Freshness facts of an entry, computed once when it is stored or revalidated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    /// Freshness lifetime (§4.2.1), already capped.
    pub lifetime: Duration,
    /// `corrected_initial_age` (§4.2.3).
    pub initial_age: Duration,
    /// When the response was received (`response_time`, tokio clock): resident time is
    /// measured from here.
    pub stored_at: Instant,
    /// Unqualified `no-cache` (and not overridden): validate on every use.
    pub no_cache: bool,
    /// `must-revalidate` / `proxy-revalidate` / `s-maxage`: never serve stale.
    pub forbids_stale: bool,
    /// `stale-while-revalidate` window (response directive or route default).
    pub swr: Duration,
    /// `stale-if-error` window (response directive or route default).
    pub sie: Duration,
    /// Has `ETag` or `Last-Modified`.
    pub has_validator: bool,
    /// Marked stale by a soft purge.
    pub soft_purged: bool,
    /// The store may drop the entry after this instant.
    pub expires_at: Instant,
}

impl EntryMeta {
    /// `current_age` at `now` (§4.2.3).
    pub fn age(&self, now: Instant) -> Duration {
        freshness::current_age(
            self.initial_age,
            now.saturating_duration_since(self.stored_at),
        )
    }

    /// Whether the entry is fresh at `now` (a soft-purged entry never is).
    pub fn is_fresh(&self, now: Instant) -> bool {
        !self.soft_purged && self.lifetime > self.age(now)
    }

    /// Remaining freshness in seconds (negative when stale), for `Cache-Status: ttl`.
    pub fn ttl_secs(&self, now: Instant) -> i64 {
        if self.soft_purged {
            return freshness::ttl_secs(Duration::ZERO, self.age(now)).min(-1);
        }
        freshness::ttl_secs(self.lifetime, self.age(now))
    }

    /// How long past its lifetime the entry is at `now` (zero while fresh). A soft purge
    /// sets the lifetime to the age at purge time, so staleness counts from the purge.
    pub fn staleness(&self, now: Instant) -> Duration {
        freshness::staleness(self.lifetime, self.age(now))
    }

    /// Mark stale now (soft purge): the lifetime ends at the current age and the entry may be
    /// served stale for at least `stale_window` while it revalidates (unless it forbids
    /// stale serving).
    pub fn soft_purge(&mut self, now: Instant, stale_window: Duration, keep: Duration) {
        self.lifetime = self.lifetime.min(self.age(now));
        self.soft_purged = true;
        self.swr = self.swr.max(stale_window);
        self.compute_expiry(keep);
    }

    /// When the store may drop an entry with these facts: end of freshness plus the larger
    /// stale window, plus `keep` when it can be revalidated.
    pub fn compute_expiry(&mut self, keep_for_revalidation: Duration) {
        let fresh_left = self.lifetime.saturating_sub(self.initial_age);
        let mut ttl = fresh_left.saturating_add(self.swr.max(self.sie));
        if self.has_validator {
            ttl = ttl.saturating_add(keep_for_revalidation);
        }
        // Bound the instant arithmetic (2^31 s lifetimes exist).
        let ttl = ttl.min(Duration::from_secs(10 * 365 * 24 * 3600));
        self.expires_at = self.stored_at + ttl;
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    name_len: u16,
    value_len: u16,
}

/// One stored response (one Vary variant of a key).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Response status.
    pub status: StatusCode,
    spans: Box<[Span]>,
    blob: Bytes,
    body_start: usize,
    /// Freshness facts.
    pub meta: EntryMeta,
    /// Field names of the response's `Vary` (sorted, lowercase).
    pub vary: Box<[HeaderName]>,
    /// The secondary key the variant was stored under.
    pub secondary: Box<str>,
    /// Cache tags (trimmed, deduplicated).
    pub tags: Box<[Arc<str>]>,
    /// Canonical URL of the request that stored it (purge / invalidation index).
    pub url: Arc<str>,
    /// Other codings of the same body, made once (by the layer above) and stored beside it:
    /// `("br", bytes)`, or `("identity", bytes)` for a body stored encoded.
    pub encoded: Box<[(&'static str, Bytes)]>,
    /// Codings being made right now (shared by the entry's copies, so each is made once).
    making: Arc<Mutex<Vec<&'static str>>>,
}

/// Fixed bytes charged per variant on top of its buffers: the `Entry` struct in its `Arc`,
/// the packed-field index and the buffer's shared header, as allocated (measured with the
/// `memory` example).
pub const ENTRY_OVERHEAD: usize = 320;

/// Fixed bytes charged per key: moka's per-entry bookkeeping (~310 B measured, plus ~47 B
/// with per-entry expiry), the `Record` and its variant list, the key string's allocation
/// and the URL index slot. With both constants the charged size tracks the process's real
/// memory, so `max_size` bounds RSS rather than payload.
pub const RECORD_OVERHEAD: usize = 576;

impl Entry {
    /// Pack a response. `None` if a header name or value exceeds 64 KiB.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[Bytes],
        meta: EntryMeta,
        vary: Vec<HeaderName>,
        secondary: String,
        tags: Vec<Arc<str>>,
        url: Arc<str>,
    ) -> Option<Self> {
        let header_len: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum();
        let body_len: usize = body.iter().map(Bytes::len).sum();
        let mut buf = Vec::with_capacity(header_len + body_len);
        let mut spans = Vec::with_capacity(headers.len());
        for (n, v) in headers {
            let name_len = u16::try_from(n.as_str().len()).ok()?;
            let value_len = u16::try_from(v.len()).ok()?;
            buf.extend_from_slice(n.as_str().as_bytes());
            buf.extend_from_slice(v.as_bytes());
            spans.push(Span {
                name_len,
                value_len,
            });
        }
        for chunk in body {
            buf.extend_from_slice(chunk);
        }
        Some(Self {
            status,
            spans: spans.into_boxed_slice(),
            blob: Bytes::from(buf),
            body_start: header_len,
            meta,
            vary: vary.into_boxed_slice(),
            secondary: secondary.into_boxed_str(),
            tags: tags.into_boxed_slice(),
            url,
            encoded: Box::new([]),
            making: Arc::default(),
        })
    }

    /// Same body, new headers and facts (304 / HEAD update, soft purge). The encoded
    /// variants of the body carry over.
    pub fn with_headers(&self, headers: &HeaderMap, meta: EntryMeta) -> Option<Self> {
        let body = self.body();
        let mut e = Self::new(
            self.status,
            headers,
            std::slice::from_ref(&body),
            meta,
            self.vary.to_vec(),
            self.secondary.to_string(),
            self.tags.to_vec(),
            self.url.clone(),
        )?;
        e.encoded = self.encoded.clone();
        e.making = self.making.clone();
        Some(e)
    }

    /// This entry plus one more coding of its body (replacing an earlier one of that coding).
    pub fn with_encoded(&self, coding: &'static str, body: Bytes) -> Self {
        let mut e = self.clone();
        let mut list: Vec<_> = self
            .encoded
            .iter()
            .filter(|(c, _)| *c != coding)
            .cloned()
            .collect();
        list.push((coding, body));
        e.encoded = list.into_boxed_slice();
        e
    }

    /// The stored variant of `coding`, if made.
    pub fn encoded(&self, coding: &str) -> Option<Bytes> {
        self.encoded
            .iter()
            .find(|(c, _)| *c == coding)
            .map(|(_, b)| b.clone())
    }

    /// Claim the making of `coding` (true once per coding, until [`Self::release`]).
    pub fn claim(&self, coding: &'static str) -> bool {
        let mut m = self
            .making
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.contains(&coding) || self.encoded(coding).is_some() {
            return false;
        }
        m.push(coding);
        true
    }

    /// Forget a claim (the variant was stored, or could not be made).
    pub fn release(&self, coding: &'static str) {
        self.making
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|c| *c != coding);
    }

    fn fields(&self) -> impl Iterator<Item = (&[u8], std::ops::Range<usize>)> + '_ {
        let mut off = 0usize;
        self.spans.iter().map(move |s| {
            let name = &self.blob[off..off + usize::from(s.name_len)];
            let vstart = off + usize::from(s.name_len);
            let vend = vstart + usize::from(s.value_len);
            off = vend;
            (name, vstart..vend)
        })
    }

    /// The stored headers as a fresh `HeaderMap` whose values share the entry's buffer.
    pub fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.spans.len() + 2);
        for (name, range) in self.fields() {
            let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_maybe_shared(self.blob.slice(range)),
            ) else {
                continue;
            };
            map.append(n, v);
        }
        map
    }

    /// The first stored value of a field.
    pub fn header(&self, name: &HeaderName) -> Option<HeaderValue> {
        self.fields()
            .find(|(n, _)| *n == name.as_str().as_bytes())
            .and_then(|(_, r)| HeaderValue::from_maybe_shared(self.blob.slice(r)).ok())
    }

    /// The body (a `Bytes` slice, no copy).
    pub fn body(&self) -> Bytes {
        self.blob.slice(self.body_start..)
    }

    /// Body length in bytes.
    pub fn body_len(&self) -> usize {
        self.blob.len() - self.body_start
    }

    /// Bytes charged for this entry (buffers + fixed overhead).
    pub fn weight(&self) -> usize {
        self.blob.len()
            + self.spans.len() * std::mem::size_of::<Span>()
            + self.secondary.len()
            + self.vary.len() * 16
            + self.tags.iter().map(|t| t.len() + 16).sum::<usize>()
            + self
                .encoded
                .iter()
                .map(|(_, b)| b.len() + 32)
                .sum::<usize>()
            + ENTRY_OVERHEAD
    }
}

/// Everything stored under one primary key: its variants (newest first) and an optional
/// hit-for-pass marker.
#[derive(Debug, Clone)]
pub struct Record {
    /// Vary variants, newest first.
    pub variants: Vec<Arc<Entry>>,
    /// Hit-for-pass until this instant: requests go straight upstream, uncoalesced.
    pub pass_until: Option<Instant>,
    /// Generation: distinguishes this record from a later one under the same key.
    pub generation: u64,
}

impl Record {
    /// The variant matching a request, given a function computing the request's secondary
    /// key for a Vary list.
    pub fn select(
        &self,
        now: Instant,
        mut secondary_for: impl FnMut(&[HeaderName]) -> String,
    ) -> Option<&Arc<Entry>> {
        let mut cached: Option<(&[HeaderName], String)> = None;
        for v in self.variants.iter().filter(|v| v.meta.expires_at > now) {
            let key = match &cached {
                Some((names, k)) if *names == &*v.vary => k.clone(),
                _ => {
                    let k = secondary_for(&v.vary);
                    cached = Some((&v.vary, k.clone()));
                    k
                }
            };
            if *v.secondary == *key {
                return Some(v);
            }
        }
        None
    }

    /// Whether hit-for-pass is active at `now`.
    pub fn is_pass(&self, now: Instant) -> bool {
        self.pass_until.is_some_and(|u| now < u)
    }

    /// Total weight in bytes.
    pub fn weight(&self, key_len: usize) -> u32 {
        let w = key_len + RECORD_OVERHEAD + self.variants.iter().map(|v| v.weight()).sum::<usize>();
        u32::try_from(w).unwrap_or(u32::MAX)
    }

    /// When the store may drop the whole record.
    pub fn expires_at(&self) -> Option<Instant> {
        let v = self.variants.iter().map(|v| v.meta.expires_at).max();
        match (v, self.pass_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn meta(now: Instant) -> EntryMeta {
        EntryMeta {
            lifetime: Duration::from_secs(60),
            initial_age: Duration::from_secs(10),
            stored_at: now,
            no_cache: false,
            forbids_stale: false,
            swr: Duration::from_secs(5),
            sie: Duration::from_secs(30),
            has_validator: true,
            soft_purged: false,
            expires_at: now,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn packs_headers_and_body_without_copies_on_read() {
        let now = Instant::now();
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.append("x-multi", HeaderValue::from_static("a"));
        h.append("x-multi", HeaderValue::from_static("b"));
        let body = [Bytes::from_static(b"hello "), Bytes::from_static(b"world")];
        let e = Entry::new(
            StatusCode::OK,
            &h,
            &body,
            meta(now),
            vec![],
            String::new(),
            vec![],
            Arc::from("http://h/"),
        )
        .unwrap();
        assert_eq!(e.headers(), h);
        assert_eq!(e.body(), "hello world");
        assert_eq!(e.body_len(), 11);
        assert_eq!(e.header(&header::CONTENT_TYPE).unwrap(), "text/plain");
        assert!(e.header(&header::ETAG).is_none());
        // The body is a view into the single buffer.
        assert_eq!(e.body().as_ptr(), e.blob[e.body_start..].as_ptr());
    }

    #[tokio::test(start_paused = true)]
    async fn meta_age_and_expiry() {
        let now = Instant::now();
        let mut m = meta(now);
        m.compute_expiry(Duration::from_secs(100));
        // fresh_left 50 + max(5, 30) + keep 100
        assert_eq!(m.expires_at - now, Duration::from_secs(180));
        assert!(m.is_fresh(now));
        assert_eq!(m.ttl_secs(now), 50);
        tokio::time::advance(Duration::from_secs(55)).await;
        assert!(!m.is_fresh(Instant::now()));
        assert_eq!(m.ttl_secs(Instant::now()), -5);
        assert_eq!(m.staleness(Instant::now()), Duration::from_secs(5));
        m.soft_purged = true;
        m.compute_expiry(Duration::ZERO);
        assert!(!m.is_fresh(now));
    }
}
