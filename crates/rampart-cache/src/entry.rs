//! A stored response ([`Entry`]) and the per-key [`Record`] holding its Vary variants.
//!
//! An entry's body, encoded variants, tags and header fields live in **one** buffer (the
//! blob), laid out exactly as the memory store keeps them in its arena:
//!
//! ```text
//! body:    len, bytes
//! codings: n, (coding code, len, bytes)*
//! tags:    n, (len, bytes)*
//! fields:  n, (name, len, value)*      name = 1-byte code of a common field, or 0 + literal
//! ```
//!
//! (lengths are LEB128 varints, [`crate::codec`]; the body first so a hit finds it, and the
//! fields, in two or three varints). A hit rebuilds the `HeaderMap` with
//! `HeaderValue`s that are `Bytes` slices of that buffer and a body that is one more slice:
//! no copy of any byte. Packing (rather than keeping a `HeaderMap`) keeps the per-object
//! overhead small and does not pin the upstream's read buffer (hyper's parsed header values
//! are slices of it). The facts (status, [`EntryMeta`], Vary names, secondary key) are plain
//! fields; the memory store encodes them beside the blob ([`Entry::put_state`]) and decodes
//! them on a hit ([`StateView`]).

use std::{
    ops::Range,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;

use crate::{
    codec::{self, CODINGS, NameRef, Reader},
    freshness,
};

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

/// One stored response (one Vary variant of a key).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Response status.
    pub status: StatusCode,
    /// The blob (layout in the module docs) at `start..`; an entry read from the store
    /// keeps the whole arena object here and starts further in.
    blob: Bytes,
    start: usize,
    body_start: usize,
    body_end: usize,
    tags_start: usize,
    fields_start: usize,
    /// Freshness facts.
    pub meta: EntryMeta,
    /// Field names of the response's `Vary` (sorted, lowercase).
    pub vary: Box<[HeaderName]>,
    /// The secondary key the variant was stored under.
    pub secondary: Box<str>,
    /// Canonical URL of the request that stored it (purge / invalidation index).
    url: Url,
    /// Encoded variants added since the blob was packed ([`Self::with_encoded`]); when set
    /// they replace the blob's codings section.
    added: Option<Box<[(&'static str, Bytes)]>>,
    /// Identity of this value: every constructor takes a new one, so the store can tell
    /// whether the variant it holds is still the one a handle saw.
    version: u64,
    /// Identity of the body: shared by the copies that keep it (header updates, added
    /// variants), so a coding is made once per body ([`Self::claim`]).
    body_id: u64,
}

/// Where an entry's URL is.
#[derive(Debug, Clone)]
enum Url {
    Shared(Arc<str>),
    /// In the blob (an entry read from the store).
    InBlob(Range<usize>),
}

/// Source of entry and body identities (process-wide, so identities never repeat across
/// stores).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Codings being made right now, by body identity. Few at a time (one per body and coding
/// while a compressor runs), so a vector; process-wide because the entries of a body are
/// rebuilt from the store on every hit and must all see the same claims.
static MAKING: Mutex<Vec<(u64, &'static str)>> = Mutex::new(Vec::new());

fn making() -> std::sync::MutexGuard<'static, Vec<(u64, &'static str)>> {
    MAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the tags section of a new blob comes from.
enum TagsSrc<'a> {
    List(&'a [Arc<str>]),
    Raw(&'a [u8]),
}

/// Where the codings section of a blob comes from.
pub(crate) enum CodingsSrc<'a> {
    List(&'a [(&'static str, Bytes)]),
    Raw(&'a [u8]),
}

impl CodingsSrc<'_> {
    /// Encoded size (an upper bound for `List`).
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Raw(r) => r.len(),
            Self::List(l) => 10 + l.iter().map(|(_, b)| b.len() + 11).sum::<usize>(),
        }
    }

    /// Append the section. Codings outside [`CODINGS`] cannot be named by a `&'static str`
    /// when read back, so they are left out.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Raw(r) => out.extend_from_slice(r),
            Self::List(l) => {
                let known = || {
                    l.iter()
                        .filter_map(|(c, b)| Some((codec::coding_code(c)?, b)))
                };
                codec::put_varint(out, known().count() as u64);
                for (code, b) in known() {
                    out.push(code);
                    codec::put_bytes(out, b);
                }
            }
        }
    }
}

/// Offsets of a blob's sections, from the start of the buffer holding it.
#[derive(Debug, Clone, Copy)]
struct Layout {
    body_start: usize,
    body_end: usize,
    tags_start: usize,
    fields_start: usize,
}

/// Find the sections of the blob at `buf[start..]`: the body length, the codings (one byte
/// when there are none) and the tags (likewise) are skipped; the fields are read only when
/// headers are.
fn layout(buf: &[u8], start: usize) -> Option<Layout> {
    let mut r = Reader::at(buf, start);
    let body_len = r.usize()?;
    let body_start = r.pos();
    r.take(body_len)?;
    let body_end = r.pos();
    for _ in 0..r.usize()? {
        r.u8()?;
        r.bytes()?;
    }
    let tags_start = r.pos();
    for _ in 0..r.usize()? {
        r.bytes()?;
    }
    Some(Layout {
        body_start,
        body_end,
        tags_start,
        fields_start: r.pos(),
    })
}

/// The tags of the blob at `buf[start..]`.
pub(crate) fn blob_tags(buf: &[u8], start: usize) -> Vec<&str> {
    let Some(l) = layout(buf, start) else {
        return Vec::new();
    };
    let mut r = Reader::at(&buf[..l.fields_start], l.tags_start);
    let n = r.usize().unwrap_or(0);
    (0..n)
        .map_while(|_| std::str::from_utf8(r.bytes()?).ok())
        .collect()
}

/// Pack body, codings, tags and fields into one exact-size buffer.
fn pack(
    body: &[Bytes],
    codings: &CodingsSrc<'_>,
    tags: TagsSrc<'_>,
    headers: &HeaderMap,
) -> (Bytes, Layout) {
    let tags_len = match &tags {
        TagsSrc::Raw(r) => r.len(),
        TagsSrc::List(l) => 10 + l.iter().map(|t| t.len() + 10).sum::<usize>(),
    };
    let fields_len: usize = 10
        + headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 12)
            .sum::<usize>();
    let body_len: usize = body.iter().map(Bytes::len).sum();
    let mut buf = Vec::with_capacity(10 + body_len + codings.len() + tags_len + fields_len);
    codec::put_varint(&mut buf, body_len as u64);
    let body_start = buf.len();
    for chunk in body {
        buf.extend_from_slice(chunk);
    }
    let body_end = buf.len();
    codings.write(&mut buf);
    let tags_start = buf.len();
    match tags {
        TagsSrc::Raw(r) => buf.extend_from_slice(r),
        TagsSrc::List(l) => {
            codec::put_varint(&mut buf, l.len() as u64);
            for t in l {
                codec::put_bytes(&mut buf, t.as_bytes());
            }
        }
    }
    let fields_start = buf.len();
    codec::put_varint(&mut buf, headers.len() as u64);
    for (n, v) in headers {
        codec::put_name(&mut buf, n);
        codec::put_bytes(&mut buf, v.as_bytes());
    }
    let layout = Layout {
        body_start,
        body_end,
        tags_start,
        fields_start,
    };
    (Bytes::from(buf), layout)
}

/// The header fields of a blob: name and value range.
struct Fields<'a> {
    r: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (NameRef<'a>, Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let name = self.r.name()?;
        let range = self.r.bytes_range()?;
        Some((name, range))
    }
}

const FLAG_NO_CACHE: u8 = 1;
const FLAG_FORBIDS_STALE: u8 = 2;
const FLAG_VALIDATOR: u8 = 4;
const FLAG_SOFT_PURGED: u8 = 8;
const FLAG_SWR: u8 = 16;
const FLAG_SIE: u8 = 32;
const FLAG_BODY_ID: u8 = 64;
const FLAG_EXPIRED_BEFORE_STORED: u8 = 128;

/// An entry's facts as the store encodes them ([`Entry::put_state`]), read without
/// allocating; [`Self::into_entry`] makes the entry.
#[derive(Debug)]
pub(crate) struct StateView<'a> {
    pub(crate) version: u64,
    body_id: u64,
    status: u16,
    pub(crate) meta: EntryMeta,
    vary: Reader<'a>,
    vary_len: usize,
    pub(crate) secondary: &'a [u8],
}

impl<'a> StateView<'a> {
    /// Read the facts at the reader's position; the reader ends after them.
    pub(crate) fn read(r: &mut Reader<'a>, epoch: Instant) -> Option<Self> {
        let flags = r.u8()?;
        let version = r.varint()?;
        let body_id = if flags & FLAG_BODY_ID != 0 {
            version.wrapping_sub(r.varint()?)
        } else {
            version
        };
        let status = r.take(2)?;
        let status = u16::from_le_bytes([status[0], status[1]]);
        let stored = r.take(8)?;
        let stored = i64::from_le_bytes([
            stored[0], stored[1], stored[2], stored[3], stored[4], stored[5], stored[6], stored[7],
        ]);
        let lifetime = r.duration()?;
        let initial_age = r.duration()?;
        let swr = if flags & FLAG_SWR != 0 {
            r.duration()?
        } else {
            Duration::ZERO
        };
        let sie = if flags & FLAG_SIE != 0 {
            r.duration()?
        } else {
            Duration::ZERO
        };
        let to_expiry = r.duration()?;
        let stored_at = codec::ns_instant(stored, epoch);
        let expires_at = if flags & FLAG_EXPIRED_BEFORE_STORED != 0 {
            stored_at.checked_sub(to_expiry).unwrap_or(stored_at)
        } else {
            stored_at + to_expiry
        };
        let meta = EntryMeta {
            lifetime,
            initial_age,
            stored_at,
            no_cache: flags & FLAG_NO_CACHE != 0,
            forbids_stale: flags & FLAG_FORBIDS_STALE != 0,
            swr,
            sie,
            has_validator: flags & FLAG_VALIDATOR != 0,
            soft_purged: flags & FLAG_SOFT_PURGED != 0,
            expires_at,
        };
        let vary_len = r.usize()?;
        let vary = r.clone();
        for _ in 0..vary_len {
            r.name()?;
        }
        let secondary = r.bytes()?;
        Some(Self {
            version,
            body_id,
            status,
            meta,
            vary,
            vary_len,
            secondary,
        })
    }

    /// The entry over the store's object `obj`, whose blob starts at `start` and whose URL
    /// is at `url`: no byte is copied.
    pub(crate) fn into_entry(self, obj: Bytes, start: usize, url: Range<usize>) -> Option<Entry> {
        let l = layout(&obj, start)?;
        let mut r = self.vary;
        let vary = (0..self.vary_len)
            .map(|_| r.name()?.to_name())
            .collect::<Option<Box<[HeaderName]>>>()?;
        Some(Entry::from_parts(
            StatusCode::from_u16(self.status).ok()?,
            (obj, start, l),
            self.meta,
            vary,
            Box::from(std::str::from_utf8(self.secondary).ok()?),
            Url::InBlob(url),
            self.version,
            self.body_id,
        ))
    }
}

impl Entry {
    #[allow(clippy::too_many_arguments)]
    fn from_parts(
        status: StatusCode,
        (blob, start, l): (Bytes, usize, Layout),
        meta: EntryMeta,
        vary: Box<[HeaderName]>,
        secondary: Box<str>,
        url: Url,
        version: u64,
        body_id: u64,
    ) -> Self {
        Self {
            status,
            blob,
            start,
            body_start: l.body_start,
            body_end: l.body_end,
            tags_start: l.tags_start,
            fields_start: l.fields_start,
            meta,
            vary,
            secondary,
            url,
            added: None,
            version,
            body_id,
        }
    }

    /// Pack a response. `None` is kept for callers written against a packing that could
    /// refuse (the current one cannot).
    #[allow(clippy::too_many_arguments, clippy::unnecessary_wraps)]
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
        let (blob, l) = pack(body, &CodingsSrc::List(&[]), TagsSrc::List(&tags), headers);
        let version = next_id();
        Some(Self::from_parts(
            status,
            (blob, 0, l),
            meta,
            vary.into_boxed_slice(),
            secondary.into_boxed_str(),
            Url::Shared(url),
            version,
            version,
        ))
    }

    /// Same body, new headers and facts (304 / HEAD update). The encoded variants of the
    /// body carry over, and so do claims on making more.
    pub fn with_headers(&self, headers: &HeaderMap, meta: EntryMeta) -> Option<Self> {
        let packed = pack(
            std::slice::from_ref(&self.body()),
            &self.codings_src(),
            TagsSrc::Raw(&self.blob[self.tags_start..self.fields_start]),
            headers,
        );
        let (blob, l) = packed;
        Some(Self::from_parts(
            self.status,
            (blob, 0, l),
            meta,
            self.vary.clone(),
            self.secondary.clone(),
            Url::Shared(Arc::from(self.url())),
            next_id(),
            self.body_id,
        ))
    }

    /// This entry plus one more coding of its body (replacing an earlier one of that coding).
    pub fn with_encoded(&self, coding: &'static str, body: Bytes) -> Self {
        let mut list: Vec<_> = self
            .encoded_list()
            .into_iter()
            .filter(|(c, _)| *c != coding)
            .collect();
        list.push((coding, body));
        let mut e = self.clone();
        e.added = Some(list.into_boxed_slice());
        e.version = next_id();
        e
    }

    /// A copy with other facts (a soft purge in the store), as a new version.
    pub(crate) fn with_meta(&self, meta: EntryMeta) -> Self {
        let mut e = self.clone();
        e.meta = meta;
        e.version = next_id();
        e
    }

    /// The codings section as it should be stored.
    pub(crate) fn codings_src(&self) -> CodingsSrc<'_> {
        match &self.added {
            Some(list) => CodingsSrc::List(list),
            None => CodingsSrc::Raw(&self.blob[self.body_end..self.tags_start]),
        }
    }

    /// Upper bound of the blob's size as [`Self::write_blob`] writes it.
    pub(crate) fn blob_len(&self) -> usize {
        (self.body_end - self.start)
            + self.codings_src().len()
            + (self.blob.len() - self.tags_start)
    }

    /// Append the blob as the store keeps it (with the codings added since it was packed).
    pub(crate) fn write_blob(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.blob[self.start..self.body_end]);
        self.codings_src().write(out);
        out.extend_from_slice(&self.blob[self.tags_start..]);
    }

    fn raw_codings(&self) -> impl Iterator<Item = (&'static str, Range<usize>)> + '_ {
        let mut r = Reader::at(&self.blob[..self.tags_start], self.body_end);
        let n = r.usize().unwrap_or(0);
        (0..n).map_while(move |_| {
            let code = r.u8()?;
            let range = r.bytes_range()?;
            Some((*CODINGS.get(usize::from(code))?, range))
        })
    }

    fn encoded_list(&self) -> Vec<(&'static str, Bytes)> {
        match &self.added {
            Some(list) => list.to_vec(),
            None => self
                .raw_codings()
                .map(|(c, r)| (c, self.blob.slice(r)))
                .collect(),
        }
    }

    /// The codings stored beside the body.
    pub fn codings(&self) -> Vec<&'static str> {
        self.encoded_list().into_iter().map(|(c, _)| c).collect()
    }

    /// The stored variant of `coding`, if made.
    pub fn encoded(&self, coding: &str) -> Option<Bytes> {
        match &self.added {
            Some(list) => list
                .iter()
                .find(|(c, _)| *c == coding)
                .map(|(_, b)| b.clone()),
            None => self
                .raw_codings()
                .find(|(c, _)| *c == coding)
                .map(|(_, r)| self.blob.slice(r)),
        }
    }

    /// Claim the making of `coding` (true once per body and coding, until [`Self::release`]).
    pub fn claim(&self, coding: &'static str) -> bool {
        if self.encoded(coding).is_some() {
            return false;
        }
        let mut m = making();
        if m.contains(&(self.body_id, coding)) {
            return false;
        }
        m.push((self.body_id, coding));
        true
    }

    /// Forget a claim (the variant was stored, or could not be made).
    pub fn release(&self, coding: &'static str) {
        making().retain(|c| *c != (self.body_id, coding));
    }

    /// Identity of this value (see the field).
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Canonical URL of the request that stored it.
    pub fn url(&self) -> &str {
        match &self.url {
            Url::Shared(u) => u,
            Url::InBlob(r) => self
                .blob
                .get(r.clone())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
        }
    }

    /// Cache tags (trimmed, deduplicated).
    pub fn tags(&self) -> impl Iterator<Item = &str> + '_ {
        let mut r = Reader::at(&self.blob[..self.fields_start], self.tags_start);
        let n = r.usize().unwrap_or(0);
        (0..n).map_while(move |_| std::str::from_utf8(r.bytes()?).ok())
    }

    fn fields(&self) -> Fields<'_> {
        let mut r = Reader::at(&self.blob, self.fields_start);
        let left = r.usize().unwrap_or(0);
        Fields { r, left }
    }

    /// The stored headers as a fresh `HeaderMap` whose values share the entry's buffer.
    pub fn headers(&self) -> HeaderMap {
        const RESPONSE_HEADER_ROOM: usize = 16;
        let fields = self.fields();
        // Room for what the layers above add to a hit (Age, Cache-Status, Vary, security
        // headers, RateLimit fields, CORS), so none of them makes the table grow and rehash.
        let mut map = HeaderMap::with_capacity(fields.left + RESPONSE_HEADER_ROOM);
        for (name, range) in fields {
            let (Some(n), Ok(v)) = (
                name.to_name(),
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
            .find(|(n, _)| n.is(name))
            .and_then(|(_, r)| HeaderValue::from_maybe_shared(self.blob.slice(r)).ok())
    }

    /// The body (a `Bytes` slice, no copy).
    pub fn body(&self) -> Bytes {
        self.blob.slice(self.body_start..self.body_end)
    }

    /// Body length in bytes.
    pub fn body_len(&self) -> usize {
        self.body_end - self.body_start
    }

    /// Append the facts the store keeps beside the blob (instants relative to `epoch`).
    pub(crate) fn put_state(&self, out: &mut Vec<u8>, epoch: Instant) {
        let m = &self.meta;
        let bits = [
            (m.no_cache, FLAG_NO_CACHE),
            (m.forbids_stale, FLAG_FORBIDS_STALE),
            (m.has_validator, FLAG_VALIDATOR),
            (m.soft_purged, FLAG_SOFT_PURGED),
            (!m.swr.is_zero(), FLAG_SWR),
            (!m.sie.is_zero(), FLAG_SIE),
            (self.body_id != self.version, FLAG_BODY_ID),
            (m.expires_at < m.stored_at, FLAG_EXPIRED_BEFORE_STORED),
        ];
        out.push(
            bits.iter()
                .filter(|(on, _)| *on)
                .fold(0u8, |acc, (_, f)| acc | f),
        );
        codec::put_varint(out, self.version);
        if self.body_id != self.version {
            codec::put_varint(out, self.version.wrapping_sub(self.body_id));
        }
        out.extend_from_slice(&self.status.as_u16().to_le_bytes());
        out.extend_from_slice(&codec::instant_ns(m.stored_at, epoch).to_le_bytes());
        codec::put_duration(out, m.lifetime);
        codec::put_duration(out, m.initial_age);
        if !m.swr.is_zero() {
            codec::put_duration(out, m.swr);
        }
        if !m.sie.is_zero() {
            codec::put_duration(out, m.sie);
        }
        let to_expiry = if m.expires_at < m.stored_at {
            m.stored_at - m.expires_at
        } else {
            m.expires_at - m.stored_at
        };
        codec::put_duration(out, to_expiry);
        codec::put_varint(out, self.vary.len() as u64);
        for n in &self.vary {
            codec::put_name(out, n);
        }
        codec::put_bytes(out, self.secondary.as_bytes());
    }
}

/// The Vary variants of a record, newest first: a slice, held inline when there is one
/// (the common case, no allocation on a hit).
#[derive(Debug, Clone, Default)]
pub struct Variants(VariantsRepr);

#[derive(Debug, Clone, Default)]
enum VariantsRepr {
    #[default]
    None,
    One(Arc<Entry>),
    Many(Vec<Arc<Entry>>),
}

impl std::ops::Deref for Variants {
    type Target = [Arc<Entry>];

    fn deref(&self) -> &[Arc<Entry>] {
        match &self.0 {
            VariantsRepr::None => &[],
            VariantsRepr::One(e) => std::slice::from_ref(e),
            VariantsRepr::Many(v) => v,
        }
    }
}

impl From<Vec<Arc<Entry>>> for Variants {
    fn from(mut v: Vec<Arc<Entry>>) -> Self {
        Self(match v.len() {
            0 => VariantsRepr::None,
            1 => v.pop().map_or(VariantsRepr::None, VariantsRepr::One),
            _ => VariantsRepr::Many(v),
        })
    }
}

impl From<Arc<Entry>> for Variants {
    fn from(e: Arc<Entry>) -> Self {
        Self(VariantsRepr::One(e))
    }
}

/// Everything stored under one primary key: its variants (newest first) and an optional
/// hit-for-pass marker.
#[derive(Debug, Clone)]
pub struct Record {
    /// Vary variants, newest first.
    pub variants: Variants,
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
