//! The memory tier: a slab store. Objects (key + entry, encoded) are packed into arena
//! segments ([`crate::segments`]) and handed out as zero-copy `Bytes` slices; a compact
//! index maps a 32-bit hash of the primary key to 12-byte slots; eviction is S3-FIFO over
//! segments; every byte it holds is charged against `max_size`.
//!
//! **Why not a general-purpose concurrent cache** (moka, before): per object it cost ~2.2 KB
//! for a 1 KiB body (its own bookkeeping, an entry and record struct, the URL index, one
//! allocation per object); here a stored object is its encoded bytes plus ~20 bytes of
//! index (see `docs/cache.md`, "Storage").
//!
//! **Layout.** The store is split into shards by the key's 64-bit hash (high half); each
//! shard is a `Mutex` holding its index table, segments and purge indexes, so every
//! operation takes exactly one lock, never across an await (there are none inside).
//! A slot holds the key hash's low half, the segment id, the offset and a 2-bit use
//! counter; the full key is stored once, in the object, and compared on lookup. An object is
//!
//! ```text
//! u32 length, u8 kind (variant | hit-for-pass marker; bit 7: URL = key), order, key,
//! [URL if not the key], then the entry's facts (Entry::put_state) and blob (tags, fields,
//! body, encoded variants) — or, for a marker, the instant it ends.
//! ```
//!
//! Vary variants of a key are separate objects with the same key; a lookup collects them
//! (newest first by their put order) into a [`Record`], building each [`Entry`] over slices
//! of the segment (no copy).
//!
//! **Eviction** (S3-FIFO, Yang et al., SOSP '23, at segment granularity as in Segcache):
//! new objects go to the *small* queue; when memory exceeds `max_size`, the oldest segment
//! of the small queue (while it holds >= 10 % of the bytes) or else of the *main* queue is
//! evicted: its objects used since they were written are copied to the main queue (their
//! counter decremented), the others dropped. Objects dropped from the small queue leave
//! their hash in a *ghost* table; a key written again while its hash is there goes straight
//! to main. A scan of one-time objects therefore cycles through the small queue without
//! pushing out what is used. Shards are evicted round robin against one global byte count,
//! so objects up to `max_size` fit whatever the shard count.
//!
//! **Expiry** is decided with the tokio clock on every read (an expired variant is dropped
//! and counted); memory of objects nobody reads is reclaimed when their segment is evicted,
//! or, at most once a second per shard on writes, when every object of a segment expired.
//!
//! **Charged bytes** (`max_size`, `rampart_cache_bytes`): segments with their dead space,
//! pieces of open segments, the index table's allocation, the purge indexes, the ghost table
//! and per-segment records, so the limit bounds real memory.

use std::{
    hash::BuildHasher,
    ops::Range,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashTable};
use tokio::time::Instant;

use crate::{
    codec::{self, Reader},
    entry::{Entry, Record, StateView, Variants, blob_tags},
    key::Target,
    metrics::CacheMetrics,
    purge_index::{PurgeIndex, dir_of, spread},
    segments::{ID_BITS, OFF_BITS, Queue, SEG_OVERHEAD, Segments},
    store::{PurgeSelector, SoftPurge, Store, StoreFuture, StoreStats},
};

/// Most shards (lock contention is per shard).
const MAX_SHARDS: u64 = 16;
/// A shard per this many bytes of `max_size` (so small caches have one).
const BYTES_PER_SHARD: u64 = 8 << 20;
/// Segment size bounds: about 1/64 of a shard's share, a power of two.
const SEG_MIN: u64 = 4 << 10;
const SEG_MAX: u64 = 64 << 10;
/// Sweep for fully expired segments at most this often per shard (on writes).
const SWEEP_NS: i64 = 1_000_000_000;
/// Bound on segments evicted by one write (the next write continues).
const MAX_EVICTIONS: usize = 1 << 16;

const KIND_VARIANT: u8 = 0;
const KIND_PASS: u8 = 1;
const URL_IS_KEY: u8 = 0x80;

/// Index slot layout (one `u64`): segment id, offset, use counter, marker flag, hash.
const OFF_SHIFT: u32 = ID_BITS;
const FREQ_SHIFT: u32 = OFF_SHIFT + OFF_BITS;
const FREQ_MAX: u64 = 3;
const PASS_BIT: u64 = 1 << (FREQ_SHIFT + 2);
const HASH_SHIFT: u32 = FREQ_SHIFT + 3;
/// Bits of the key hash kept in a slot (and in the purge indexes).
const HASH_BITS: u32 = 64 - HASH_SHIFT;
const HASH_MASK: u64 = (1 << HASH_BITS) - 1;

/// An index slot (8 bytes): the key hash's low bits, the segment id, the offset in the
/// segment, a 2-bit use counter and the hit-for-pass marker flag. The full key is in the
/// object and compared on lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot(u64);

impl Slot {
    fn new(hash: u32, id: u32, off: u32, freq: u64, pass: bool) -> Self {
        let pass = if pass { PASS_BIT } else { 0 };
        Self(
            u64::from(id)
                | (u64::from(off) << OFF_SHIFT)
                | (freq.min(FREQ_MAX) << FREQ_SHIFT)
                | pass
                | ((u64::from(hash) & HASH_MASK) << HASH_SHIFT),
        )
    }

    fn hash(self) -> u32 {
        (self.0 >> HASH_SHIFT) as u32
    }

    fn id(self) -> u32 {
        (self.0 & ((1 << ID_BITS) - 1)) as u32
    }

    fn off(self) -> u32 {
        ((self.0 >> OFF_SHIFT) & ((1 << OFF_BITS) - 1)) as u32
    }

    fn freq(self) -> u64 {
        (self.0 >> FREQ_SHIFT) & FREQ_MAX
    }

    fn is_pass(self) -> bool {
        self.0 & PASS_BIT != 0
    }

    fn used(self) -> Self {
        let freq = (self.freq() + 1).min(FREQ_MAX);
        Self(self.0 & !(FREQ_MAX << FREQ_SHIFT) | (freq << FREQ_SHIFT))
    }

    fn moved(self, id: u32, off: u32, freq: u64) -> Self {
        Self::new(self.hash(), id, off, freq, self.is_pass())
    }

    /// The slot without its use counter: which object it is.
    fn place(self) -> u64 {
        self.0 & !(FREQ_MAX << FREQ_SHIFT)
    }
}

/// A decoded record kept for a key that was just read, so the next hit on it skips the
/// decoding and allocations: valid while the key's first slot is the one it was built
/// from (any change to a slot with the key's hash drops it).
struct Hot {
    slot: Slot,
    rec: Arc<Record>,
}

/// Hot records per shard (direct-mapped by key hash): one per 64 KiB of the shard's share
/// of `max_size`, within these bounds.
const HOT_MIN: u64 = 16;
const HOT_MAX: u64 = 1024;
/// Bytes charged per hot record (the record, its entries and their decoded fields).
const HOT_COST: usize = 512;

/// An arena object, parsed up to its facts.
struct Obj<'a> {
    buf: &'a [u8],
    kind: u8,
    order: u64,
    key: Range<usize>,
    url: Range<usize>,
    rest: usize,
}

fn parse(buf: &[u8]) -> Option<Obj<'_>> {
    let mut r = Reader::at(buf, 4);
    let tag = r.u8()?;
    let order = r.varint()?;
    let key = r.bytes_range()?;
    let kind = tag & !URL_IS_KEY;
    let url = if kind == KIND_VARIANT && tag & URL_IS_KEY == 0 {
        r.bytes_range()?
    } else {
        key.clone()
    };
    Some(Obj {
        buf,
        kind,
        order,
        key,
        url,
        rest: r.pos(),
    })
}

impl<'a> Obj<'a> {
    fn key(&self) -> &'a [u8] {
        &self.buf[self.key.clone()]
    }

    fn url(&self) -> &'a str {
        std::str::from_utf8(&self.buf[self.url.clone()]).unwrap_or_default()
    }

    fn is_pass(&self) -> bool {
        self.kind == KIND_PASS
    }

    /// End of a hit-for-pass marker (ns from the epoch).
    fn until(&self) -> Option<i64> {
        Reader::at(self.buf, self.rest).signed()
    }

    /// A variant's facts and the offset of its blob.
    fn state(&self, epoch: Instant) -> Option<(StateView<'a>, usize)> {
        let mut r = Reader::at(self.buf, self.rest);
        let view = StateView::read(&mut r, epoch)?;
        Some((view, r.pos()))
    }

    /// When the object may go (ns from the epoch).
    fn expiry(&self, epoch: Instant) -> Option<i64> {
        if self.is_pass() {
            return self.until();
        }
        let (view, _) = self.state(epoch)?;
        Some(codec::instant_ns(view.meta.expires_at, epoch))
    }

    /// A variant's tags.
    fn tags(&self, epoch: Instant) -> Vec<&'a str> {
        match self.state(epoch) {
            Some((_, blob)) => blob_tags(self.buf, blob),
            None => Vec::new(),
        }
    }
}

/// Write the length into an encoded object's first four bytes.
fn finish(mut obj: Vec<u8>) -> Option<Bytes> {
    let len = u32::try_from(obj.len()).ok()?;
    obj[..4].copy_from_slice(&len.to_le_bytes());
    if obj.len() != obj.capacity() {
        obj.shrink_to_fit();
    }
    Some(Bytes::from(obj))
}

fn encode_variant(order: u64, key: &[u8], entry: &Entry, epoch: Instant) -> Option<Bytes> {
    let url = entry.url().as_bytes();
    let mut head = Vec::with_capacity(64 + key.len() + url.len() + entry.secondary.len());
    head.extend_from_slice(&[0; 4]);
    head.push(KIND_VARIANT | if url == key { URL_IS_KEY } else { 0 });
    codec::put_varint(&mut head, order);
    codec::put_bytes(&mut head, key);
    if url != key {
        codec::put_bytes(&mut head, url);
    }
    entry.put_state(&mut head, epoch);
    let mut obj = Vec::with_capacity(head.len() + entry.blob_len());
    obj.extend_from_slice(&head);
    entry.write_blob(&mut obj);
    finish(obj)
}

fn encode_pass(order: u64, key: &[u8], until: i64) -> Option<Bytes> {
    let mut obj = Vec::with_capacity(32 + key.len());
    obj.extend_from_slice(&[0; 4]);
    obj.push(KIND_PASS);
    codec::put_varint(&mut obj, order);
    codec::put_bytes(&mut obj, key);
    codec::put_signed(&mut obj, until);
    finish(obj)
}

/// Store-wide constants.
struct Cx {
    epoch: Instant,
    hasher: DefaultHashBuilder,
    max_size: u64,
    max_variants: usize,
}

impl Cx {
    fn hash(&self, b: &[u8]) -> u64 {
        self.hasher.hash_one(b)
    }

    /// The hash kept in slots and purge indexes for a key or URL.
    fn short(&self, b: &[u8]) -> u32 {
        (self.hash(b) & HASH_MASK) as u32
    }

    fn ns(&self, t: Instant) -> i64 {
        codec::instant_ns(t, self.epoch)
    }
}

/// Why a slot goes (which eviction counter it feeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Replaced, purged or removed: not an eviction.
    Dropped,
    Expired,
    Size,
}

struct Shard {
    table: HashTable<Slot>,
    segs: Segments,
    index: PurgeIndex,
    /// S3-FIFO ghost: 16-bit tags of hashes evicted from the small queue, direct-mapped.
    ghost: Vec<u16>,
    hot: Vec<Option<Hot>>,
    hot_cells: usize,
    hot_count: usize,
    /// Something changed since the last [`Self::flush`].
    dirty: bool,
    next_order: u64,
    next_sweep: i64,
    /// Stored variants.
    variants: i64,
    /// Evictions not yet counted in the metrics: (size, expired).
    evicted: (u64, u64),
    /// Bytes and variants last added to the store-wide counts.
    reported: (i64, i64),
}

impl Shard {
    fn new(seg_size: usize, hot_cells: usize) -> Self {
        Self {
            table: HashTable::new(),
            segs: Segments::new(seg_size),
            index: PurgeIndex::default(),
            ghost: Vec::new(),
            hot: Vec::new(),
            hot_cells,
            hot_count: 0,
            dirty: false,
            next_order: 0,
            next_sweep: i64::MIN,
            variants: 0,
            evicted: (0, 0),
            reported: (0, 0),
        }
    }

    fn charged(&self) -> usize {
        self.segs.charged()
            + self.table.allocation_size()
            + self.index.charged()
            + self.ghost.capacity() * 2
            + self.hot.capacity() * std::mem::size_of::<Option<Hot>>()
            + self.hot_count * HOT_COST
    }

    fn order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    fn obj_at(&self, slot: Slot) -> Option<Obj<'_>> {
        parse(self.segs.object(slot.id(), slot.off())?)
    }

    /// Bucket indexes of the slots (variants and marker) of `key`.
    fn find(&self, h: u32, key: &[u8]) -> Vec<usize> {
        self.table
            .iter_hash_buckets(spread(h))
            .filter(|i| {
                self.table.get_bucket(*i).is_some_and(|s| {
                    s.hash() == h && self.obj_at(*s).is_some_and(|o| o.key() == key)
                })
            })
            .collect()
    }

    /// A lookup: the live variants of `key` (newest first) and its marker; expired ones go.
    fn hot_pos(&self, h: u32) -> usize {
        (h as usize >> 7) % self.hot.len().max(1)
    }

    /// Drop the hot record of hash `h`, if any (a slot with that hash changes).
    fn unhot(&mut self, h: u32) {
        let pos = self.hot_pos(h);
        let Some(cell) = self.hot.get_mut(pos) else {
            return;
        };
        if cell.as_ref().is_some_and(|x| x.slot.hash() == h) {
            *cell = None;
            self.hot_count -= 1;
            self.dirty = true;
        }
    }

    fn set_hot(&mut self, slot: Slot, rec: &Arc<Record>) {
        if self.hot.is_empty() {
            self.hot.resize_with(self.hot_cells, || None);
        }
        let pos = self.hot_pos(slot.hash());
        let cell = &mut self.hot[pos];
        if cell.is_none() {
            self.hot_count += 1;
            self.dirty = true;
        }
        *cell = Some(Hot {
            slot,
            rec: rec.clone(),
        });
    }

    /// The hot record for `slot` (the key's first slot), if still usable at `now`.
    fn hot_for(&self, slot: Slot, now: Instant) -> Option<Arc<Record>> {
        let hot = self.hot.get(self.hot_pos(slot.hash()))?.as_ref()?;
        let rec = &hot.rec;
        let usable = hot.slot.place() == slot.place()
            && rec.variants.iter().all(|v| v.meta.expires_at > now)
            && rec.pass_until.is_none_or(|u| now < u);
        usable.then(|| rec.clone())
    }

    fn get(&mut self, cx: &Cx, h: u32, key: &[u8], now: Instant) -> Option<Arc<Record>> {
        // One variant (the common case) needs no vector.
        let mut one: Option<(u64, Arc<Entry>)> = None;
        let mut more: Vec<(u64, Arc<Entry>)> = Vec::new();
        let mut pass_until = None;
        let mut used = [0usize; 4];
        let mut n_used = 0;
        let mut expired = Vec::new();
        let mut first = None;
        for i in self.table.iter_hash_buckets(spread(h)) {
            let Some(&slot) = self.table.get_bucket(i) else {
                continue;
            };
            if slot.hash() != h {
                continue;
            }
            let Some(obj) = self.obj_at(slot).filter(|o| o.key() == key) else {
                continue;
            };
            if first.is_none() {
                if let Some(rec) = self.hot_for(slot, now) {
                    if let Some(s) = self.table.get_bucket_mut(i) {
                        *s = s.used();
                    }
                    return Some(rec);
                }
                first = Some(slot);
            }
            if obj.is_pass() {
                match obj.until().map(|u| codec::ns_instant(u, cx.epoch)) {
                    Some(u) if now < u => pass_until = Some(u),
                    _ => expired.push(i),
                }
                continue;
            }
            let Some((view, blob)) = obj.state(cx.epoch) else {
                continue;
            };
            if view.meta.expires_at <= now {
                expired.push(i);
                continue;
            }
            let (order, url) = (obj.order, obj.url.clone());
            let Some(entry) = self
                .segs
                .object_bytes(slot.id(), slot.off())
                .and_then(|whole| view.into_entry(whole, blob, url))
            else {
                continue;
            };
            let found = (order, Arc::new(entry));
            match one.take() {
                None if more.is_empty() => one = Some(found),
                first => more.extend(first.into_iter().chain([found])),
            }
            if n_used < used.len() {
                used[n_used] = i;
                n_used += 1;
            }
        }
        for &i in &used[..n_used] {
            if let Some(s) = self.table.get_bucket_mut(i) {
                *s = s.used();
            }
        }
        for i in expired {
            self.remove_at(cx, i, Why::Expired);
        }
        let (generation, variants) = match one {
            Some((order, e)) => (order, Variants::from(e)),
            None if more.is_empty() && pass_until.is_none() => return None,
            None => {
                more.sort_unstable_by_key(|v| std::cmp::Reverse(v.0));
                let generation = more.first().map_or(0, |v| v.0);
                let list: Vec<Arc<Entry>> = more.into_iter().map(|(_, e)| e).collect();
                (generation, Variants::from(list))
            }
        };
        let rec = Arc::new(Record {
            variants,
            pass_until,
            generation,
        });
        if let Some(slot) = first.filter(|_| !rec.variants.is_empty()) {
            self.set_hot(slot, &rec);
        }
        Some(rec)
    }

    /// Remove the slot in bucket `i`, its index entries and its share of its segment.
    fn remove_at(&mut self, cx: &Cx, i: usize, why: Why) {
        let Ok(e) = self.table.get_bucket_entry(i) else {
            return;
        };
        let (slot, _) = e.remove();
        self.dirty = true;
        self.unhot(slot.hash());
        if !slot.is_pass() {
            self.unindex(cx, slot);
            self.variants -= 1;
            match why {
                Why::Size => self.evicted.0 += 1,
                Why::Expired => self.evicted.1 += 1,
                Why::Dropped => {}
            }
        }
        self.segs.release(slot.id());
    }

    /// Drop a removed variant from the purge indexes, except what another stored variant
    /// with the same key hash (usually another Vary variant of the key) still needs.
    fn unindex(&mut self, cx: &Cx, slot: Slot) {
        let Self {
            table, segs, index, ..
        } = self;
        let Some(obj) = segs.object(slot.id(), slot.off()).and_then(parse) else {
            return;
        };
        let url = obj.url();
        let others: Vec<Obj<'_>> = table
            .iter_hash(spread(slot.hash()))
            .filter(|s| s.hash() == slot.hash() && !s.is_pass())
            .filter_map(|s| segs.object(s.id(), s.off()).and_then(parse))
            .collect();
        if !others.iter().any(|o| dir_of(o.url()) == dir_of(url)) {
            index.remove_dir(slot.hash(), url);
        }
        for t in obj.tags(cx.epoch) {
            if !others.iter().any(|o| o.tags(cx.epoch).contains(&t)) {
                index.remove_tag(slot.hash(), t);
            }
        }
        let alt = |o: &Obj<'_>| o.url().as_bytes() != o.key();
        if alt(&obj) && !others.iter().any(|o| alt(o) && o.url() == url) {
            index.remove_alt(cx.short(url.as_bytes()), slot.hash());
        }
    }

    /// Encode and append a variant with its slot and index entries.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        cx: &Cx,
        h: u32,
        key: &[u8],
        entry: &Entry,
        order: u64,
        freq: u64,
        q: Queue,
    ) -> bool {
        let Some(obj) = encode_variant(order, key, entry, cx.epoch) else {
            return false;
        };
        if (obj.len() + SEG_OVERHEAD) as u64 > cx.max_size {
            return false;
        }
        let expiry = cx.ns(entry.meta.expires_at);
        let Some((id, off)) = self.segs.append(q, obj, expiry) else {
            return false;
        };
        self.unhot(h);
        self.table
            .insert_unique(spread(h), Slot::new(h, id, off, freq, false), |s| {
                spread(s.hash())
            });
        let url = entry.url();
        let alt = (url.as_bytes() != key).then(|| cx.short(url.as_bytes()));
        self.index.add(h, url, alt, entry.tags());
        self.variants += 1;
        true
    }

    fn put(&mut self, cx: &Cx, h: u32, key: &[u8], entry: &Entry, now: Instant) {
        self.sweep(cx, cx.ns(now));
        let (mut drop, mut keep) = (Vec::new(), Vec::new());
        let (mut freq, mut main) = (0, false);
        for i in self.find(h, key) {
            let Some(&slot) = self.table.get_bucket(i) else {
                continue;
            };
            let state = self
                .obj_at(slot)
                .filter(|o| !o.is_pass())
                .and_then(|o| Some((o.order, o.state(cx.epoch)?.0)));
            match state {
                None => drop.push(i),
                Some((_, v)) if v.secondary == entry.secondary.as_bytes() => {
                    freq = freq.max(slot.freq());
                    main |= self.segs.queue_of(slot.id()) == Some(Queue::Main);
                    drop.push(i);
                }
                Some((_, v)) if v.meta.expires_at <= now => drop.push(i),
                Some((order, _)) => keep.push((order, i)),
            }
        }
        keep.sort_unstable_by_key(|k| std::cmp::Reverse(k.0));
        drop.extend(
            keep.iter()
                .skip(cx.max_variants.saturating_sub(1))
                .map(|(_, i)| *i),
        );
        for i in drop {
            self.remove_at(cx, i, Why::Dropped);
        }
        let q = if self.ghost_take(h) || freq > 0 || main {
            Queue::Main
        } else {
            Queue::Small
        };
        let order = self.order();
        self.write(cx, h, key, entry, order, freq, q);
    }

    /// The slot of `key` holding the entry version `version`.
    fn find_version(&self, cx: &Cx, h: u32, key: &[u8], version: u64) -> Option<(usize, Slot)> {
        self.find(h, key).into_iter().find_map(|i| {
            let slot = *self.table.get_bucket(i)?;
            let (view, _) = self
                .obj_at(slot)
                .filter(|o| !o.is_pass())?
                .state(cx.epoch)?;
            (view.version == version).then_some((i, slot))
        })
    }

    fn replace(&mut self, cx: &Cx, h: u32, key: &[u8], old: &Entry, new: &Entry) -> bool {
        let Some((_, slot)) = self.find_version(cx, h, key, old.version()) else {
            return false;
        };
        let Some(order) = self.obj_at(slot).map(|o| o.order) else {
            return false;
        };
        let q = self.segs.queue_of(slot.id()).unwrap_or(Queue::Small);
        if !self.write(cx, h, key, new, order, slot.freq(), q) {
            return false;
        }
        // The write may have grown the table: find the old slot again.
        if let Some((i, _)) = self.find_version(cx, h, key, old.version()) {
            self.remove_at(cx, i, Why::Dropped);
        }
        true
    }

    fn mark_pass(&mut self, cx: &Cx, h: u32, key: &[u8], until: Instant) {
        for i in self.find(h, key) {
            self.remove_at(cx, i, Why::Dropped);
        }
        let until = cx.ns(until);
        let order = self.order();
        let Some(obj) = encode_pass(order, key, until) else {
            return;
        };
        if let Some((id, off)) = self.segs.append(Queue::Small, obj, until) {
            self.unhot(h);
            self.table
                .insert_unique(spread(h), Slot::new(h, id, off, 0, true), |s| {
                    spread(s.hash())
                });
        }
    }

    /// Remove `key` with all its variants; returns how many variants went.
    fn remove_key(&mut self, cx: &Cx, h: u32, key: &[u8]) -> u64 {
        let mut n = 0;
        for i in self.find(h, key) {
            if self.table.get_bucket(i).is_some_and(|s| !s.is_pass()) {
                n += 1;
            }
            self.remove_at(cx, i, Why::Dropped);
        }
        n
    }

    /// Mark every variant of `key` stale (rewritten with purged facts, same place in the
    /// variant order); returns how many.
    fn soft(&mut self, cx: &Cx, h: u32, key: &[u8], soft: SoftPurge, now: Instant) -> u64 {
        let mut old = Vec::new();
        for i in self.find(h, key) {
            let Some(&slot) = self.table.get_bucket(i) else {
                continue;
            };
            let Some(obj) = self.obj_at(slot).filter(|o| !o.is_pass()) else {
                continue;
            };
            let Some((view, blob)) = obj.state(cx.epoch) else {
                continue;
            };
            let (order, url) = (obj.order, obj.url.clone());
            let entry = self
                .segs
                .object_bytes(slot.id(), slot.off())
                .and_then(|whole| view.into_entry(whole, blob, url));
            if let Some(e) = entry {
                old.push((slot, order, e));
            }
        }
        if old.is_empty() {
            return 0;
        }
        let mut versions = Vec::with_capacity(old.len());
        for (slot, order, e) in &old {
            let mut meta = e.meta.clone();
            meta.soft_purge(now, soft.stale_window, soft.keep);
            let q = self.segs.queue_of(slot.id()).unwrap_or(Queue::Small);
            if self.write(cx, h, key, &e.with_meta(meta), *order, slot.freq(), q) {
                versions.push(e.version());
            }
        }
        // Drop the replaced versions and any hit-for-pass marker.
        for i in self.find(h, key) {
            let stale = self.table.get_bucket(i).is_some_and(|s| {
                s.is_pass()
                    || self
                        .obj_at(*s)
                        .and_then(|o| o.state(cx.epoch))
                        .is_some_and(|(v, _)| versions.contains(&v.version))
            });
            if stale {
                self.remove_at(cx, i, Why::Dropped);
            }
        }
        old.len() as u64
    }

    /// Keys of the variants (in bucket hash `h`) that satisfy `pred`.
    fn keys_where(&self, h: u32, pred: impl Fn(&Obj<'_>) -> bool, out: &mut Vec<Box<[u8]>>) {
        for s in self.table.iter_hash(spread(h)) {
            if s.hash() != h || s.is_pass() {
                continue;
            }
            if let Some(o) = self.obj_at(*s).filter(|o| pred(o)) {
                out.push(Box::from(o.key()));
            }
        }
    }

    /// Keys with a variant stored from `url`.
    fn keys_for_url(&self, cx: &Cx, url: &str, out: &mut Vec<Box<[u8]>>) {
        let h = cx.short(url.as_bytes());
        self.keys_where(h, |o| o.key() == url.as_bytes() && o.url() == url, out);
        for kh in self.index.alt_keys(h) {
            self.keys_where(kh, |o| o.url() == url, out);
        }
    }

    /// The keys `selector` selects in this shard.
    fn select(&self, cx: &Cx, selector: &PurgeSelector) -> Vec<Box<[u8]>> {
        let mut keys = Vec::new();
        match selector {
            PurgeSelector::Urls(urls) => {
                for u in urls {
                    match Target::parse_absolute(u) {
                        Some(t) => {
                            self.keys_for_url(cx, &t.canonical_url(), &mut keys);
                            self.keys_for_url(cx, &t.canonical_url_sorted(), &mut keys);
                        }
                        None => self.keys_for_url(cx, u, &mut keys),
                    }
                }
            }
            PurgeSelector::Prefix(p) => {
                for (start, hashes) in self.index.prefix_candidates(p) {
                    for h in hashes {
                        self.keys_where(h, |o| o.url().starts_with(start.as_str()), &mut keys);
                    }
                }
            }
            PurgeSelector::Tags(tags) => {
                for t in tags {
                    let t = t.trim();
                    for h in self.index.tag_keys(t) {
                        self.keys_where(h, |o| o.tags(cx.epoch).contains(&t), &mut keys);
                    }
                }
            }
            PurgeSelector::All => {
                for s in self.table.iter().filter(|s| !s.is_pass()) {
                    if let Some(o) = self.obj_at(*s) {
                        keys.push(Box::from(o.key()));
                    }
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    fn ghost_slot(&self, h: u32) -> Option<(usize, u16)> {
        if self.ghost.is_empty() {
            return None;
        }
        Some(((h as usize) & (self.ghost.len() - 1), (h >> 16) as u16 | 1))
    }

    fn ghost_put(&mut self, h: u32) {
        if let Some((i, tag)) = self.ghost_slot(h) {
            self.ghost[i] = tag;
        }
    }

    fn ghost_take(&mut self, h: u32) -> bool {
        match self.ghost_slot(h) {
            Some((i, tag)) if self.ghost[i] == tag => {
                self.ghost[i] = 0;
                true
            }
            _ => false,
        }
    }

    /// Size the ghost to about the number of stored objects (a power of two).
    fn ghost_fit(&mut self) {
        let want = self.table.len().max(64).next_power_of_two();
        if self.ghost.len() < want / 2 || self.ghost.len() > want * 2 {
            self.ghost = vec![0; want];
        }
    }

    /// Evict one segment (S3-FIFO); `false` when there is nothing left to evict.
    fn evict_one(&mut self, cx: &Cx, now_ns: i64) -> bool {
        let small = self.segs.sealed_bytes(Queue::Small);
        let main = self.segs.sealed_bytes(Queue::Main);
        let total = self.segs.queue_bytes(Queue::Small) + self.segs.queue_bytes(Queue::Main);
        let q = if small > 0 && (small * 10 >= total || main == 0) {
            Queue::Small
        } else if main > 0 {
            Queue::Main
        } else if self.segs.has_open(Queue::Small) {
            self.segs.seal(Queue::Small);
            Queue::Small
        } else if self.segs.has_open(Queue::Main) {
            self.segs.seal(Queue::Main);
            Queue::Main
        } else {
            return false;
        };
        let Some(id) = self.segs.pop_victim(q) else {
            return false;
        };
        self.ghost_fit();
        self.evict_segment(cx, id, now_ns);
        true
    }

    /// Empty segment `id`: expired objects and markers go, objects used since they were
    /// written move to the main queue (one use less), the rest go (size eviction; from the
    /// small queue their hash enters the ghost).
    fn evict_segment(&mut self, cx: &Cx, id: u32, now_ns: i64) {
        let Some(q) = self.segs.queue_of(id) else {
            return;
        };
        let large = self.segs.is_large(id);
        let Some(snapshot) = self.segs.snapshot(id) else {
            return;
        };
        for (off, bytes) in snapshot.objects() {
            let Some(obj) = parse(&bytes) else { continue };
            let h = cx.short(obj.key());
            let found = self.table.find_bucket_index(spread(h), |s| {
                s.hash() == h && s.id() == id && s.off() == off
            });
            let Some(i) = found else { continue };
            let Some(&slot) = self.table.get_bucket(i) else {
                continue;
            };
            let expiry = obj.expiry(cx.epoch).unwrap_or(i64::MIN);
            if slot.is_pass() || expiry <= now_ns {
                self.remove_at(cx, i, Why::Expired);
                continue;
            }
            if slot.freq() == 0 {
                if q == Queue::Small {
                    self.ghost_put(h);
                }
                self.remove_at(cx, i, Why::Size);
                continue;
            }
            let freq = if q == Queue::Small {
                0
            } else {
                slot.freq() - 1
            };
            if large {
                self.segs.requeue(id, Queue::Main);
                if let Some(s) = self.table.get_bucket_mut(i) {
                    *s = s.moved(id, off, freq);
                }
                continue;
            }
            match self
                .segs
                .append(Queue::Main, Bytes::copy_from_slice(&bytes), expiry)
            {
                Some((nid, noff)) => {
                    self.unhot(h);
                    if let Some(s) = self.table.get_bucket_mut(i) {
                        *s = s.moved(nid, noff, freq);
                    }
                    self.segs.release(id);
                }
                None => self.remove_at(cx, i, Why::Size),
            }
        }
    }

    /// At most once a second: evict the segments whose objects all expired.
    fn sweep(&mut self, cx: &Cx, now_ns: i64) {
        if now_ns < self.next_sweep {
            return;
        }
        self.next_sweep = now_ns.saturating_add(SWEEP_NS);
        for id in self.segs.expired(now_ns) {
            self.segs.unqueue(id);
            self.evict_segment(cx, id, now_ns);
        }
    }

    /// Drop the hot records read from segments that were open and are now sealed: they
    /// hold the pieces sealing copied, whose memory is no longer charged.
    fn drop_hot_of_sealed(&mut self) {
        let Some(sealed) = self.segs.take_sealed() else {
            return;
        };
        for cell in &mut self.hot {
            if cell.as_ref().is_some_and(|x| sealed.contains(&x.slot.id())) {
                *cell = None;
                self.hot_count -= 1;
                self.dirty = true;
            }
        }
    }

    /// Report size changes and evictions to the store-wide counts and metrics. An empty
    /// shard gives back its tables.
    fn flush(&mut self, acct: &Accounting) {
        self.drop_hot_of_sealed();
        if self.table.is_empty() && self.table.allocation_size() > 0 {
            let keep = (self.reported, self.evicted, self.next_order);
            *self = Self::new(self.segs.seg_size(), self.hot_cells);
            (self.reported, self.evicted, self.next_order) = keep;
        }
        self.dirty = false;
        let bytes = i64::try_from(self.charged()).unwrap_or(i64::MAX);
        let (db, de) = (bytes - self.reported.0, self.variants - self.reported.1);
        self.reported = (bytes, self.variants);
        let evicted = std::mem::take(&mut self.evicted);
        acct.apply(db, de, evicted);
    }
}

/// Store-wide counts.
struct Accounting {
    entries: AtomicI64,
    bytes: AtomicI64,
    metrics: CacheMetrics,
}

impl Accounting {
    fn apply(&self, db: i64, de: i64, (size, expired): (u64, u64)) {
        if db != 0 {
            let b = self.bytes.fetch_add(db, Ordering::Relaxed) + db;
            self.metrics.bytes.set(b.max(0));
        }
        if de != 0 {
            let e = self.entries.fetch_add(de, Ordering::Relaxed) + de;
            self.metrics.entries.set(e.max(0));
        }
        if size > 0 {
            self.metrics.evicted("size", size);
        }
        if expired > 0 {
            self.metrics.evicted("expired", expired);
        }
    }
}

/// Where a memory store's charged bytes go ([`MemoryStore::usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Stored objects (variants and hit-for-pass markers).
    pub objects: u64,
    /// Their encoded bytes (key, URL, facts, fields, body, encoded variants).
    pub object_bytes: u64,
    /// Segments: the objects plus dead space (removed or moved objects not yet evicted),
    /// per-object costs of open segments and per-segment records.
    pub segment_bytes: u64,
    /// The key → slot index tables.
    pub index_bytes: u64,
    /// URL, directory, tag indexes.
    pub purge_index_bytes: u64,
    /// Ghost tables and hot records.
    pub other_bytes: u64,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    cx: Cx,
    acct: Accounting,
    /// Next shard to evict from (round robin).
    cursor: AtomicUsize,
}

/// The embedded memory tier.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.inner.shards.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock can leave at worst a stale index slot or an
    // uncounted byte; the shard is used as is.
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryStore {
    /// A memory tier of at most `max_size` bytes, at most `max_variants` variants per key.
    pub fn new(max_size: u64, max_variants: usize, metrics: CacheMetrics) -> Self {
        let shards = (max_size / BYTES_PER_SHARD).clamp(1, MAX_SHARDS);
        let seg = (max_size / shards / 64).clamp(SEG_MIN, SEG_MAX);
        let seg = 1usize << (63 - seg.leading_zeros());
        let hot = (max_size / shards / (64 << 10)).clamp(HOT_MIN, HOT_MAX) as usize;
        Self {
            inner: Arc::new(Inner {
                shards: (0..shards)
                    .map(|_| Mutex::new(Shard::new(seg, hot)))
                    .collect(),
                cx: Cx {
                    epoch: Instant::now(),
                    hasher: DefaultHashBuilder::default(),
                    max_size,
                    max_variants: max_variants.max(1),
                },
                acct: Accounting {
                    entries: AtomicI64::new(0),
                    bytes: AtomicI64::new(0),
                    metrics,
                },
                cursor: AtomicUsize::new(0),
            }),
        }
    }

    /// Number of shards and segment size (for the docs and tests).
    pub fn layout(&self) -> (usize, usize) {
        let seg = lock(&self.inner.shards[0]).segs.seg_size();
        (self.inner.shards.len(), seg)
    }

    /// Where the charged bytes go (walks every shard: for measurements, not the request
    /// path).
    pub fn usage(&self) -> MemoryUsage {
        let mut u = MemoryUsage::default();
        for shard in &self.inner.shards {
            let shard = lock(shard);
            for slot in shard.table.iter() {
                u.objects += 1;
                u.object_bytes += shard
                    .segs
                    .object(slot.id(), slot.off())
                    .map_or(0, |o| o.len() as u64);
            }
            u.segment_bytes += shard.segs.charged() as u64;
            u.index_bytes += shard.table.allocation_size() as u64;
            u.purge_index_bytes += shard.index.charged() as u64;
            u.other_bytes += (shard.charged()
                - shard.segs.charged()
                - shard.table.allocation_size()
                - shard.index.charged()) as u64;
        }
        u
    }

    fn shard(&self, key: &[u8]) -> (MutexGuard<'_, Shard>, u32) {
        let h = self.inner.cx.hash(key);
        let i = ((h >> 32) as usize) % self.inner.shards.len();
        (lock(&self.inner.shards[i]), (h & HASH_MASK) as u32)
    }

    /// Evict (round robin over the shards) until the charged bytes fit `max_size`.
    fn enforce(&self, now: Instant) {
        let inner = &*self.inner;
        let now_ns = inner.cx.ns(now);
        let n = inner.shards.len();
        let mut idle = 0;
        for _ in 0..MAX_EVICTIONS {
            if inner.acct.bytes.load(Ordering::Relaxed)
                <= i64::try_from(inner.cx.max_size).unwrap_or(i64::MAX)
            {
                return;
            }
            let i = inner.cursor.fetch_add(1, Ordering::Relaxed) % n;
            let mut shard = lock(&inner.shards[i]);
            let evicted = shard.evict_one(&inner.cx, now_ns);
            shard.flush(&inner.acct);
            drop(shard);
            idle = if evicted { 0 } else { idle + 1 };
            if idle >= n {
                return;
            }
        }
    }

    fn get_sync(&self, key: &str, now: Instant) -> Option<Arc<Record>> {
        let (mut shard, h) = self.shard(key.as_bytes());
        let rec = shard.get(&self.inner.cx, h, key.as_bytes(), now);
        if shard.dirty {
            shard.flush(&self.inner.acct);
        }
        rec
    }

    fn put_sync(&self, key: &str, entry: &Entry) {
        let now = Instant::now();
        let (mut shard, h) = self.shard(key.as_bytes());
        shard.put(&self.inner.cx, h, key.as_bytes(), entry, now);
        shard.flush(&self.inner.acct);
        drop(shard);
        self.enforce(now);
    }

    fn replace_sync(&self, key: &str, old: &Entry, new: &Entry) -> bool {
        let (mut shard, h) = self.shard(key.as_bytes());
        let done = shard.replace(&self.inner.cx, h, key.as_bytes(), old, new);
        shard.flush(&self.inner.acct);
        drop(shard);
        self.enforce(Instant::now());
        done
    }

    fn pass_sync(&self, key: &str, until: Instant) {
        let (mut shard, h) = self.shard(key.as_bytes());
        shard.mark_pass(&self.inner.cx, h, key.as_bytes(), until);
        shard.flush(&self.inner.acct);
        drop(shard);
        self.enforce(Instant::now());
    }

    fn remove_sync(&self, key: &str) -> u64 {
        let (mut shard, h) = self.shard(key.as_bytes());
        let n = shard.remove_key(&self.inner.cx, h, key.as_bytes());
        shard.flush(&self.inner.acct);
        n
    }

    fn purge_sync(&self, selector: &PurgeSelector, soft: Option<SoftPurge>, now: Instant) -> u64 {
        let cx = &self.inner.cx;
        let mut n = 0;
        for shard in &self.inner.shards {
            let mut shard = lock(shard);
            if soft.is_none() && *selector == PurgeSelector::All {
                n += shard.variants.max(0) as u64;
                let keep = (shard.reported, shard.evicted, shard.next_order);
                *shard = Shard::new(shard.segs.seg_size(), shard.hot_cells);
                (shard.reported, shard.evicted, shard.next_order) = keep;
            } else {
                for key in shard.select(cx, selector) {
                    let h = cx.short(&key);
                    n += match soft {
                        None => shard.remove_key(cx, h, &key),
                        Some(s) => shard.soft(cx, h, &key, s, now),
                    };
                }
            }
            shard.flush(&self.inner.acct);
        }
        if soft.is_some() {
            self.enforce(now);
        }
        n
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl Store for MemoryStore {
    fn get<'a>(&'a self, key: &'a str, now: Instant) -> StoreFuture<'a, Option<Arc<Record>>> {
        ready(self.get_sync(key, now))
    }

    fn put_variant(&self, key: Arc<str>, entry: Arc<Entry>) -> StoreFuture<'static, ()> {
        self.put_sync(&key, &entry);
        ready(())
    }

    fn replace_variant(
        &self,
        key: Arc<str>,
        old: Arc<Entry>,
        new: Arc<Entry>,
    ) -> StoreFuture<'static, bool> {
        ready(self.replace_sync(&key, &old, &new))
    }

    fn mark_pass(&self, key: Arc<str>, until: Instant) -> StoreFuture<'static, ()> {
        self.pass_sync(&key, until);
        ready(())
    }

    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, u64> {
        ready(self.remove_sync(key))
    }

    fn purge<'a>(
        &'a self,
        selector: &'a PurgeSelector,
        soft: Option<SoftPurge>,
        now: Instant,
    ) -> StoreFuture<'a, u64> {
        ready(self.purge_sync(selector, soft, now))
    }

    fn stats(&self) -> StoreStats {
        let acct = &self.inner.acct;
        StoreStats {
            entries: acct.entries.load(Ordering::Relaxed).max(0) as u64,
            bytes: acct.bytes.load(Ordering::Relaxed).max(0) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryMeta;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use std::time::Duration;

    fn entry(url: &str, secondary: &str, tags: &[&str], body_len: usize) -> Arc<Entry> {
        let now = Instant::now();
        let mut meta = EntryMeta {
            lifetime: Duration::from_secs(60),
            initial_age: Duration::ZERO,
            stored_at: now,
            no_cache: false,
            forbids_stale: false,
            swr: Duration::ZERO,
            sie: Duration::ZERO,
            has_validator: false,
            soft_purged: false,
            expires_at: now,
        };
        meta.compute_expiry(Duration::ZERO);
        Arc::new(
            Entry::new(
                StatusCode::OK,
                &HeaderMap::new(),
                &[Bytes::from(vec![b'x'; body_len])],
                meta,
                vec![],
                secondary.to_owned(),
                tags.iter().map(|t| Arc::from(*t)).collect(),
                Arc::from(url),
            )
            .unwrap(),
        )
    }

    fn store() -> MemoryStore {
        MemoryStore::new(1 << 20, 4, CacheMetrics::default())
    }

    #[tokio::test(start_paused = true)]
    async fn variants_replace_by_secondary_and_purge_removes_all() {
        let s = store();
        let k: Arc<str> = Arc::from("http://h/a");
        s.put_variant(k.clone(), entry("http://h/a", "v1", &[], 10))
            .await;
        s.put_variant(k.clone(), entry("http://h/a", "v2", &[], 10))
            .await;
        s.put_variant(k.clone(), entry("http://h/a", "v1", &[], 10))
            .await;
        let rec = s.get(&k, Instant::now()).await.unwrap();
        assert_eq!(rec.variants.len(), 2);
        assert_eq!(&*rec.variants[0].secondary, "v1");
        assert_eq!(s.stats().entries, 2);
        let n = s
            .purge(
                &PurgeSelector::Urls(vec!["http://h/a".into()]),
                None,
                Instant::now(),
            )
            .await;
        assert_eq!(n, 2);
        assert!(s.get(&k, Instant::now()).await.is_none());
        assert_eq!(s.stats(), StoreStats::default());
    }

    #[tokio::test(start_paused = true)]
    async fn prefix_and_tag_indexes() {
        let s = store();
        for (url, tags) in [
            ("http://h/static/a.css", vec!["css", "site"]),
            ("http://h/static/b.js", vec!["js", "site"]),
            ("http://h/api/x", vec!["api"]),
            ("http://other/static/c.css", vec!["css"]),
        ] {
            s.put_variant(Arc::from(url), entry(url, "", &tags, 5))
                .await;
        }
        let now = Instant::now();
        let sel = PurgeSelector::Tags(vec!["css".into()]);
        assert_eq!(s.purge(&sel, None, now).await, 2);
        assert_eq!(s.purge(&sel, None, now).await, 0);
        let sel = PurgeSelector::Prefix("/static/".into());
        assert_eq!(
            s.purge(&sel, None, now).await,
            1,
            "b.js left under /static/"
        );
        let sel = PurgeSelector::Prefix("http://h/".into());
        assert_eq!(s.purge(&sel, None, now).await, 1);
        assert_eq!(s.stats().entries, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn replacement_keeps_index_of_new_generation() {
        let s = store();
        let k: Arc<str> = Arc::from("http://h/a");
        s.put_variant(k.clone(), entry("http://h/a", "", &["t1"], 5))
            .await;
        s.put_variant(k.clone(), entry("http://h/a", "", &["t2"], 5))
            .await;
        let now = Instant::now();
        assert_eq!(
            s.purge(&PurgeSelector::Tags(vec!["t1".into()]), None, now)
                .await,
            0
        );
        assert_eq!(
            s.purge(&PurgeSelector::Tags(vec!["t2".into()]), None, now)
                .await,
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_by_tokio_clock_and_soft_purge() {
        let s = store();
        let k: Arc<str> = Arc::from("http://h/a");
        s.put_variant(k.clone(), entry("http://h/a", "", &[], 5))
            .await;
        let soft = SoftPurge {
            stale_window: Duration::from_secs(30),
            keep: Duration::ZERO,
        };
        let n = s
            .purge(&PurgeSelector::All, Some(soft), Instant::now())
            .await;
        assert_eq!(n, 1);
        let rec = s.get(&k, Instant::now()).await.unwrap();
        assert!(rec.variants[0].meta.soft_purged);
        assert!(!rec.variants[0].meta.is_fresh(Instant::now()));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(
            s.get(&k, Instant::now()).await.is_none(),
            "gone after stale window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn size_limit_evicts() {
        let metrics = CacheMetrics::default();
        let s = MemoryStore::new(100_000, 4, metrics.clone());
        for i in 0..200 {
            let url = format!("http://h/{i}");
            s.put_variant(Arc::from(url.as_str()), entry(&url, "", &[], 1000))
                .await;
        }
        let st = s.stats();
        assert!(st.bytes <= 100_000, "{st:?}");
        assert!(st.entries < 200 && st.entries > 0, "{st:?}");
        let evicted = metrics
            .evictions
            .get_or_create(&crate::metrics::ReasonLabels { reason: "size" })
            .get();
        assert_eq!(
            evicted,
            200 - st.entries,
            "every eviction counted by reason"
        );
        assert_eq!(metrics.entries.get(), i64::try_from(st.entries).unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn hit_for_pass_marker() {
        let s = store();
        let k: Arc<str> = Arc::from("http://h/a");
        s.put_variant(k.clone(), entry("http://h/a", "", &[], 5))
            .await;
        s.mark_pass(k.clone(), Instant::now() + Duration::from_secs(10))
            .await;
        let rec = s.get(&k, Instant::now()).await.unwrap();
        assert!(rec.variants.is_empty());
        assert!(rec.is_pass(Instant::now()));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(s.get(&k, Instant::now()).await.is_none());
    }

    // Tests of the slab store itself (added with it).

    fn entry_with(url: &str, body: &[u8], ttl: Duration, field: &str) -> Arc<Entry> {
        let now = Instant::now();
        let mut meta = EntryMeta {
            lifetime: ttl,
            initial_age: Duration::from_nanos(1234),
            stored_at: now,
            no_cache: false,
            forbids_stale: false,
            swr: Duration::ZERO,
            sie: Duration::from_secs(5),
            has_validator: true,
            soft_purged: false,
            expires_at: now,
        };
        meta.compute_expiry(Duration::ZERO);
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        h.insert("x-field", field.parse().unwrap());
        Arc::new(
            Entry::new(
                StatusCode::OK,
                &h,
                &[Bytes::copy_from_slice(body)],
                meta,
                vec![],
                String::new(),
                vec![],
                Arc::from(url),
            )
            .unwrap(),
        )
    }

    fn evicted(m: &CacheMetrics, reason: &'static str) -> u64 {
        m.evictions
            .get_or_create(&crate::metrics::ReasonLabels { reason })
            .get()
    }

    fn now_or_never<T>(f: StoreFuture<'_, T>) -> T {
        futures_util::FutureExt::now_or_never(f).expect("the memory tier completes at once")
    }

    #[tokio::test(start_paused = true)]
    async fn objects_read_back_intact_from_open_and_sealed_segments() {
        let s = MemoryStore::new(4 << 20, 4, CacheMetrics::default());
        assert_eq!(s.layout(), (1, 64 << 10));
        let body = |i: usize| format!("body-{i}-").repeat(i % 40 + 1).into_bytes();
        for i in 0..400 {
            let url = format!("http://h/o/{i}");
            s.put_variant(
                Arc::from(url.as_str()),
                entry_with(&url, &body(i), Duration::from_secs(60), &i.to_string()),
            )
            .await;
        }
        assert!(
            lock(&s.inner.shards[0]).segs.count() > 1,
            "segments were sealed"
        );
        for i in 0..400 {
            let url = format!("http://h/o/{i}");
            let rec = s.get(&url, Instant::now()).await.unwrap();
            let e = &rec.variants[0];
            assert_eq!(e.body(), body(i));
            assert_eq!(
                e.header(&http::HeaderName::from_static("x-field")).unwrap(),
                i.to_string().as_str()
            );
            assert_eq!(e.url(), url);
            assert_eq!(e.meta.initial_age, Duration::from_nanos(1234));
            assert_eq!(e.meta.sie, Duration::from_secs(5));
            assert!(e.meta.has_validator);
        }
        assert_eq!(s.stats().entries, 400);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_sharing_a_slot_hash_stay_apart() {
        // One shard, 30 000 keys: about fifty pairs share the 23-bit hash kept in a slot.
        let s = MemoryStore::new(7 << 20, 4, CacheMetrics::default());
        let n = 30_000;
        for i in 0..n {
            let url = format!("http://h/d{}/{i}", i % 7);
            s.put_variant(Arc::from(url.as_str()), entry(&url, "", &[], 8))
                .await;
        }
        assert_eq!(s.stats().entries, n as u64);
        let distinct = {
            let shard = lock(&s.inner.shards[0]);
            let mut hashes: Vec<u32> = shard.table.iter().map(|s| s.hash()).collect();
            hashes.sort_unstable();
            hashes.dedup();
            hashes.len()
        };
        assert!(distinct < n, "the test needs colliding slot hashes");
        let now = Instant::now();
        let urls: Vec<String> = (0..n)
            .step_by(2)
            .map(|i| format!("http://h/d{}/{i}", i % 7))
            .collect();
        assert_eq!(
            s.purge(&PurgeSelector::Urls(urls), None, now).await,
            (n / 2) as u64
        );
        for i in 0..n {
            let url = format!("http://h/d{}/{i}", i % 7);
            let rec = s.get(&url, now).await;
            assert_eq!(rec.is_some(), i % 2 == 1, "{url}");
            if let Some(rec) = rec {
                assert_eq!(rec.variants[0].url(), url);
            }
        }
        // Directory d3 keeps exactly its odd members.
        let left = (0..n).filter(|i| i % 2 == 1 && i % 7 == 3).count() as u64;
        assert_eq!(
            s.purge(&PurgeSelector::Prefix("/d3/".into()), None, now)
                .await,
            left
        );
        assert_eq!(s.stats().entries, (n / 2) as u64 - left);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scan_of_one_time_objects_does_not_flush_what_is_used() {
        let metrics = CacheMetrics::default();
        let s = MemoryStore::new(2 << 20, 4, metrics.clone());
        let hot: Vec<String> = (0..200).map(|i| format!("http://h/hot/{i}")).collect();
        for u in &hot {
            s.put_variant(Arc::from(u.as_str()), entry(u, "", &[], 1000))
                .await;
            assert!(s.get(u, Instant::now()).await.is_some());
        }
        // Ten times the cache's size in objects read once (never read again).
        for i in 0..20_000 {
            let u = format!("http://h/scan/{i}");
            s.put_variant(Arc::from(u.as_str()), entry(&u, "", &[], 1000))
                .await;
        }
        assert!(s.stats().bytes <= 2 << 20, "{:?}", s.stats());
        assert!(evicted(&metrics, "size") > 15_000);
        let kept = futures_util::future::join_all(hot.iter().map(|u| s.get(u, Instant::now())))
            .await
            .iter()
            .filter(|r| r.is_some())
            .count();
        assert_eq!(
            kept,
            hot.len(),
            "the used objects were moved to the main queue"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_evicted_unused_comes_back_to_the_main_queue() {
        // The ghost is direct-mapped on a per-store random hash, so another key evicted in the
        // same batch can take `first`'s slot (~1 run in 5 here): the ghost then forgets, by
        // design. Each attempt is a fresh store (fresh seed); at least one of eight must
        // remember (all eight forgetting by chance: ~3e-6; a broken ghost: always).
        let mut remembered = 0;
        for _ in 0..8 {
            let s = MemoryStore::new(200_000, 4, CacheMetrics::default());
            let first = "http://h/first";
            let h = s.inner.cx.short(first.as_bytes());
            let slot = |s: &MemoryStore| {
                let shard = lock(&s.inner.shards[0]);
                let slot = shard.table.find(spread(h), |x| x.hash() == h).copied();
                slot.map(|x| (x, shard.segs.queue_of(x.id())))
            };
            s.put_variant(Arc::from(first), entry(first, "", &[], 500))
                .await;
            assert_eq!(slot(&s).unwrap().1, Some(Queue::Small));
            let mut i = 0;
            while slot(&s).is_some() {
                let u = format!("http://h/{i}");
                s.put_variant(Arc::from(u.as_str()), entry(&u, "", &[], 500))
                    .await;
                i += 1;
                assert!(i < 1000, "never evicted");
            }
            s.put_variant(Arc::from(first), entry(first, "", &[], 500))
                .await;
            if slot(&s).unwrap().1 == Some(Queue::Main) {
                remembered += 1;
            }
        }
        assert!(remembered > 0, "the ghost never remembered the evicted key");
    }

    #[tokio::test(start_paused = true)]
    async fn expired_objects_are_reclaimed_without_being_read() {
        let metrics = CacheMetrics::default();
        let s = MemoryStore::new(4 << 20, 4, metrics.clone());
        for i in 0..300 {
            let u = format!("http://h/{i}");
            s.put_variant(
                Arc::from(u.as_str()),
                entry_with(&u, &[b'x'; 600], Duration::from_secs(10), "a"),
            )
            .await;
        }
        let full = s.stats();
        tokio::time::advance(Duration::from_secs(20)).await;
        // A later write sweeps the segments whose objects all expired.
        let u = "http://h/new";
        s.put_variant(
            Arc::from(u),
            entry_with(u, b"y", Duration::from_secs(10), "b"),
        )
        .await;
        let st = s.stats();
        assert!(
            st.entries <= 2 && st.bytes < full.bytes / 4,
            "{full:?} -> {st:?}"
        );
        assert!(evicted(&metrics, "expired") >= 298);
    }

    #[tokio::test(start_paused = true)]
    async fn rewriting_the_same_keys_stays_within_the_budget() {
        let s = MemoryStore::new(300_000, 4, CacheMetrics::default());
        for round in 0..100 {
            for i in 0..100 {
                let u = format!("http://h/{i}");
                let body = vec![b'a' + (round % 26) as u8; 1000];
                s.put_variant(
                    Arc::from(u.as_str()),
                    entry_with(&u, &body, Duration::from_secs(60), "r"),
                )
                .await;
            }
            assert!(s.stats().bytes <= 300_000, "{:?}", s.stats());
        }
        let st = s.stats();
        assert!(st.entries > 50, "{st:?}");
        assert!(
            st.bytes >= st.entries * 1000,
            "charged bytes cover the bodies: {st:?}"
        );
        let rec = s.get("http://h/99", Instant::now()).await.unwrap();
        assert_eq!(rec.variants[0].body()[0], b'a' + 99 % 26);
    }

    #[tokio::test(start_paused = true)]
    async fn an_object_larger_than_a_shard_share_fits_the_global_budget() {
        let s = MemoryStore::new(40 << 20, 4, CacheMetrics::default());
        assert_eq!(s.layout().0, 5);
        let u = "http://h/big";
        let body = vec![7u8; 12 << 20];
        s.put_variant(
            Arc::from(u),
            entry_with(u, &body, Duration::from_secs(60), "big"),
        )
        .await;
        let rec = s.get(u, Instant::now()).await.unwrap();
        assert_eq!(rec.variants[0].body_len(), 12 << 20);
        // Larger than the whole cache: not stored.
        let huge = vec![7u8; 41 << 20];
        s.put_variant(
            Arc::from("http://h/huge"),
            entry_with("http://h/huge", &huge, Duration::from_secs(60), "x"),
        )
        .await;
        assert!(s.get("http://h/huge", Instant::now()).await.is_none());
        assert!(s.stats().bytes <= 40 << 20);
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_hits_follow_every_change_of_the_key() {
        let s = store();
        let k: Arc<str> = Arc::from("http://h/a");
        s.put_variant(
            k.clone(),
            entry_with(&k, b"one", Duration::from_secs(60), "1"),
        )
        .await;
        let rec = s.get(&k, Instant::now()).await.unwrap();
        let again = s.get(&k, Instant::now()).await.unwrap();
        assert!(
            Arc::ptr_eq(&rec, &again),
            "the second hit reuses the decoded record"
        );
        // An added coding replaces the variant; a handle on the old one no longer can.
        let old = rec.variants[0].clone();
        let new = Arc::new(old.with_encoded("br", Bytes::from_static(b"BR")));
        assert!(s.replace_variant(k.clone(), old.clone(), new).await);
        let rec = s.get(&k, Instant::now()).await.unwrap();
        assert_eq!(rec.variants[0].encoded("br").unwrap(), "BR");
        assert_eq!(rec.variants[0].body(), "one");
        let stale = Arc::new(old.with_encoded("gzip", Bytes::from_static(b"GZ")));
        assert!(!s.replace_variant(k.clone(), old, stale).await);
        // A new response, a soft purge, a removal: each is seen at once.
        s.put_variant(
            k.clone(),
            entry_with(&k, b"two", Duration::from_secs(60), "2"),
        )
        .await;
        assert_eq!(
            s.get(&k, Instant::now()).await.unwrap().variants[0].body(),
            "two"
        );
        let soft = SoftPurge {
            stale_window: Duration::from_secs(30),
            keep: Duration::ZERO,
        };
        assert_eq!(
            s.purge(&PurgeSelector::Tags(vec![]), Some(soft), Instant::now())
                .await,
            0
        );
        assert_eq!(
            s.purge(&PurgeSelector::All, Some(soft), Instant::now())
                .await,
            1
        );
        assert!(
            s.get(&k, Instant::now()).await.unwrap().variants[0]
                .meta
                .soft_purged
        );
        assert_eq!(s.remove(&k).await, 1);
        assert!(s.get(&k, Instant::now()).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn sealing_drops_hot_records_holding_open_pieces() {
        let s = MemoryStore::new(1 << 20, 4, CacheMetrics::default());
        let k = "http://h/k";
        s.put_variant(Arc::from(k), entry(k, "", &[], 100)).await;
        let hot = s.get(k, Instant::now()).await.unwrap();
        let piece = hot.variants[0].body();
        assert_eq!(lock(&s.inner.shards[0]).hot_count, 1);
        // 16 KiB segments: this fills the open one and seals it.
        for i in 0..200 {
            let u = format!("http://h/{i}");
            s.put_variant(Arc::from(u.as_str()), entry(&u, "", &[], 100))
                .await;
        }
        assert_eq!(lock(&s.inner.shards[0]).hot_count, 0, "sealed since");
        let sealed = s.get(k, Instant::now()).await.unwrap();
        assert_eq!(sealed.variants[0].body(), piece);
        assert_ne!(sealed.variants[0].body().as_ptr(), piece.as_ptr());
    }

    #[tokio::test(start_paused = true)]
    async fn purge_by_url_finds_keys_that_are_not_their_url() {
        let s = store();
        let url = "http://h/p?b=2&a=1";
        for key in ["http://h/p?b=2&a=1|cookie=x", "http://h/p?b=2&a=1|cookie=y"] {
            s.put_variant(Arc::from(key), entry(url, "", &["t"], 5))
                .await;
        }
        s.put_variant(
            Arc::from("http://h/p?a=1&b=2"),
            entry("http://h/p?a=1&b=2", "", &[], 5),
        )
        .await;
        s.put_variant(
            Arc::from("http://h/other"),
            entry("http://h/other", "", &[], 5),
        )
        .await;
        let now = Instant::now();
        // Purge by URL tries the URL as given and with its query sorted.
        assert_eq!(
            s.purge(&PurgeSelector::Urls(vec![url.into()]), None, now)
                .await,
            3
        );
        assert_eq!(s.stats().entries, 1);
        assert_eq!(
            s.purge(&PurgeSelector::Tags(vec!["t".into()]), None, now)
                .await,
            0
        );
    }

    #[test]
    fn threads_reading_writing_and_purging_keep_the_counts_true() {
        let s = MemoryStore::new(1 << 20, 4, CacheMetrics::default());
        let keys: Vec<String> = (0..64).map(|i| format!("http://h/{}/{i}", i % 4)).collect();
        std::thread::scope(|scope| {
            for t in 0..4usize {
                let (s, keys) = (&s, &keys);
                scope.spawn(move || {
                    for n in 0..3000usize {
                        let k = &keys[(n * 7 + t * 13) % keys.len()];
                        match n % 10 {
                            0 => {
                                now_or_never(s.remove(k));
                            }
                            1 => {
                                let sel = PurgeSelector::Prefix(format!("/{}/", n % 4));
                                now_or_never(s.purge(&sel, None, Instant::now()));
                            }
                            2..=5 => {
                                let v = ["", "gzip", "br"][n % 3];
                                now_or_never(
                                    s.put_variant(Arc::from(k.as_str()), entry(k, v, &[], 700)),
                                );
                            }
                            _ => {
                                if let Some(r) = now_or_never(s.get(k, Instant::now())) {
                                    assert!(r.variants.iter().all(|v| v.url() == k));
                                }
                            }
                        }
                    }
                });
            }
        });
        let stored: usize = keys
            .iter()
            .filter_map(|k| now_or_never(s.get(k, Instant::now())))
            .map(|r| r.variants.len())
            .sum();
        let st = s.stats();
        assert_eq!(st.entries, stored as u64);
        assert!(st.bytes <= 1 << 20);
        let n = now_or_never(s.purge(&PurgeSelector::All, None, Instant::now()));
        assert_eq!(n, stored as u64);
        assert_eq!(s.stats(), StoreStats::default());
    }
}
