//! Arena segments of the memory store: objects (an encoded key + entry, see
//! [`crate::memory`]) appended to the open segment of a queue, handed out as zero-copy
//! `Bytes` slices, and dropped a whole segment at a time.
//!
//! A segment is **open** while it is being filled: its objects are separate `Bytes` (each
//! the exact-size buffer it was encoded into), because a buffer that is still appended to
//! cannot be shared. When the next object does not fit, the segment is **sealed**: its
//! objects are copied once into one exact-size buffer, so a stored object costs its own
//! bytes plus its index slot, with no per-object allocation. Objects of at least a quarter
//! of the segment size get a sealed segment of their own (no copy).
//!
//! Each queue (S3-FIFO's small and main) is a FIFO of sealed segments; eviction takes the
//! oldest ([`Segments::pop_victim`]). A segment whose last live object goes is freed at once.
//! Segment ids are reused; a generation per id tells stale FIFO references apart.

use std::collections::VecDeque;

use bytes::Bytes;

/// Memory charged per segment beyond its bytes: the `Segment` record in the slab vector,
/// its FIFO reference and the buffer's allocation header.
pub(crate) const SEG_OVERHEAD: usize = 112;
/// Memory charged per object of an open segment beyond its bytes: the allocation header,
/// the `Bytes` handle and offset in the piece list, and the shared-buffer record created on
/// the first slice.
pub(crate) const PIECE_OVERHEAD: usize = 96;
/// Segment ids fit in this many bits of an index slot.
pub(crate) const ID_BITS: u32 = 22;
/// Offsets in a segment fit in this many bits (segments are at most 64 KiB; a larger
/// object has a segment of its own, at offset 0).
pub(crate) const OFF_BITS: u32 = 16;

/// The two S3-FIFO queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    /// New objects, until they are evicted or, if used meanwhile, moved to `Main`.
    Small = 0,
    /// Objects used at least once after their insertion (or seen recently by the ghost).
    Main = 1,
}

#[derive(Debug)]
enum Data {
    Open {
        pieces: Vec<(u32, Bytes)>,
        len: usize,
    },
    Sealed(Bytes),
}

/// The bytes of a segment, to walk its objects (cheap clones of the buffers).
#[derive(Debug, Clone)]
pub(crate) enum Snapshot {
    Pieces(Vec<(u32, Bytes)>),
    Sealed(Bytes),
}

impl Snapshot {
    /// Every object with its offset.
    pub(crate) fn objects(&self) -> Vec<(u32, Bytes)> {
        match self {
            Self::Pieces(p) => p.clone(),
            Self::Sealed(b) => {
                let mut out = Vec::new();
                let mut off = 0usize;
                while let Some(len) = read_len(b, off) {
                    let Ok(o) = u32::try_from(off) else { break };
                    out.push((o, b.slice(off..off + len)));
                    off += len;
                }
                out
            }
        }
    }
}

/// The total length written in an object's first four bytes, if the object fits.
fn read_len(buf: &[u8], off: usize) -> Option<usize> {
    let b = buf.get(off..off.checked_add(4)?)?;
    let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    (len >= 4 && off + len <= buf.len()).then_some(len)
}

#[derive(Debug)]
struct Segment {
    data: Data,
    queue: Queue,
    /// Live objects (index slots pointing here).
    live: u32,
    /// Latest expiry (ns from the store's epoch) of the objects written here.
    max_expiry: i64,
    /// Bytes charged for it.
    charged: usize,
    /// Referenced by its queue's FIFO.
    in_fifo: bool,
}

/// The segments of one shard.
#[derive(Debug)]
pub(crate) struct Segments {
    list: Vec<Option<Segment>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    fifo: [VecDeque<(u32, u32)>; 2],
    /// FIFO references to segments freed since they were queued.
    stale: [usize; 2],
    open: [Option<u32>; 2],
    /// Bytes charged per queue (sealed and open segments).
    bytes: [usize; 2],
    seg_size: usize,
    large: usize,
    /// Segments sealed since [`Self::take_sealed`] (their open pieces were dropped).
    sealed: Vec<u32>,
}

impl Segments {
    pub(crate) fn new(seg_size: usize) -> Self {
        Self {
            list: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            fifo: [VecDeque::new(), VecDeque::new()],
            stale: [0, 0],
            open: [None, None],
            bytes: [0, 0],
            seg_size,
            large: (seg_size / 4).max(1),
            sealed: Vec::new(),
        }
    }

    /// The size at which an open segment is sealed.
    pub(crate) fn seg_size(&self) -> usize {
        self.seg_size
    }

    /// Bytes charged: segments plus the slab and FIFO vectors.
    pub(crate) fn charged(&self) -> usize {
        self.bytes[0]
            + self.bytes[1]
            + (self.fifo[0].capacity() + self.fifo[1].capacity()) * 8
            + self.gens.capacity() * 4
            + self.free.capacity() * 4
    }

    /// Bytes charged by a queue's sealed segments.
    pub(crate) fn sealed_bytes(&self, q: Queue) -> usize {
        let open = self.open[q as usize]
            .and_then(|id| self.seg(id))
            .map_or(0, |s| s.charged);
        self.bytes[q as usize] - open
    }

    /// Bytes charged by a queue (sealed and open).
    pub(crate) fn queue_bytes(&self, q: Queue) -> usize {
        self.bytes[q as usize]
    }

    /// Whether a queue has an open segment with objects.
    pub(crate) fn has_open(&self, q: Queue) -> bool {
        self.open[q as usize].is_some()
    }

    fn seg(&self, id: u32) -> Option<&Segment> {
        self.list.get(id as usize)?.as_ref()
    }

    fn seg_mut(&mut self, id: u32) -> Option<&mut Segment> {
        self.list.get_mut(id as usize)?.as_mut()
    }

    /// The queue a segment belongs to.
    pub(crate) fn queue_of(&self, id: u32) -> Option<Queue> {
        self.seg(id).map(|s| s.queue)
    }

    fn insert(&mut self, seg: Segment) -> Option<u32> {
        let q = seg.queue as usize;
        let charged = seg.charged;
        let id = match self.free.pop() {
            Some(id) => {
                self.list[id as usize] = Some(seg);
                id
            }
            None => {
                let id = u32::try_from(self.list.len())
                    .ok()
                    .filter(|id| *id < (1 << ID_BITS))?;
                self.list.push(Some(seg));
                self.gens.push(0);
                id
            }
        };
        self.bytes[q] += charged;
        Some(id)
    }

    fn push_fifo(&mut self, id: u32) {
        let Some(seg) = self.seg_mut(id) else { return };
        seg.in_fifo = true;
        let q = seg.queue as usize;
        let generation = self.gens[id as usize];
        self.fifo[q].push_back((id, generation));
    }

    /// Append an object to queue `q`; returns its segment and offset. `None` when the
    /// object is too large for an offset or the shard ran out of segment ids.
    pub(crate) fn append(&mut self, q: Queue, obj: Bytes, expiry: i64) -> Option<(u32, u32)> {
        let len = obj.len();
        u32::try_from(len).ok()?;
        if len >= self.large {
            let id = self.insert(Segment {
                data: Data::Sealed(obj),
                queue: q,
                live: 1,
                max_expiry: expiry,
                charged: len + SEG_OVERHEAD,
                in_fifo: false,
            })?;
            self.push_fifo(id);
            return Some((id, 0));
        }
        let fits = |s: &Segment| match &s.data {
            Data::Open { len: used, .. } => used + len <= self.seg_size,
            Data::Sealed(_) => false,
        };
        let id = match self.open[q as usize] {
            Some(id) if self.seg(id).is_some_and(fits) => id,
            _ => {
                self.seal(q);
                let id = self.insert(Segment {
                    data: Data::Open {
                        pieces: Vec::new(),
                        len: 0,
                    },
                    queue: q,
                    live: 0,
                    max_expiry: i64::MIN,
                    charged: SEG_OVERHEAD,
                    in_fifo: false,
                })?;
                self.open[q as usize] = Some(id);
                id
            }
        };
        let seg = self.seg_mut(id)?;
        let Data::Open { pieces, len: used } = &mut seg.data else {
            return None;
        };
        let off = u32::try_from(*used).ok().filter(|o| *o < (1 << OFF_BITS))?;
        let before = pieces.capacity();
        pieces.push((off, obj));
        *used += len;
        let grown = (pieces.capacity() - before) * std::mem::size_of::<(u32, Bytes)>();
        seg.live += 1;
        seg.max_expiry = seg.max_expiry.max(expiry);
        seg.charged += len + PIECE_OVERHEAD + grown;
        self.bytes[q as usize] += len + PIECE_OVERHEAD + grown;
        Some((id, off))
    }

    /// Seal the open segment of `q`: copy its objects into one exact-size buffer and queue it.
    pub(crate) fn seal(&mut self, q: Queue) {
        let Some(id) = self.open[q as usize].take() else {
            return;
        };
        let Some(seg) = self.seg_mut(id) else { return };
        let Data::Open { pieces, len } = &seg.data else {
            return;
        };
        let mut buf = Vec::with_capacity(*len);
        for (_, p) in pieces {
            buf.extend_from_slice(p);
        }
        let charged = buf.len() + SEG_OVERHEAD;
        seg.data = Data::Sealed(Bytes::from(buf));
        let before = std::mem::replace(&mut seg.charged, charged);
        self.bytes[q as usize] = self.bytes[q as usize] - before + charged;
        self.push_fifo(id);
        self.sealed.push(id);
    }

    /// The segments sealed since the last call: objects read from them while open are
    /// copies of pieces that sealing dropped, which nothing should keep for long.
    pub(crate) fn take_sealed(&mut self) -> Option<Vec<u32>> {
        (!self.sealed.is_empty()).then(|| std::mem::take(&mut self.sealed))
    }

    /// The object at `off` of segment `id`.
    pub(crate) fn object(&self, id: u32, off: u32) -> Option<&[u8]> {
        match &self.seg(id)?.data {
            Data::Sealed(b) => {
                let off = off as usize;
                b.get(off..off + read_len(b, off)?)
            }
            Data::Open { pieces, .. } => {
                let i = pieces.binary_search_by_key(&off, |(o, _)| *o).ok()?;
                Some(&pieces[i].1)
            }
        }
    }

    /// The object at `off` of segment `id`, as a shared slice.
    pub(crate) fn object_bytes(&self, id: u32, off: u32) -> Option<Bytes> {
        match &self.seg(id)?.data {
            Data::Sealed(b) => {
                let off = off as usize;
                Some(b.slice(off..off + read_len(b, off)?))
            }
            Data::Open { pieces, .. } => {
                let i = pieces.binary_search_by_key(&off, |(o, _)| *o).ok()?;
                Some(pieces[i].1.clone())
            }
        }
    }

    /// One live object less in segment `id`; the segment is freed with its last.
    pub(crate) fn release(&mut self, id: u32) {
        let Some(seg) = self.seg_mut(id) else { return };
        seg.live = seg.live.saturating_sub(1);
        if seg.live == 0 {
            self.free(id);
        }
    }

    fn free(&mut self, id: u32) {
        let Some(seg) = self.list.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        let q = seg.queue as usize;
        self.bytes[q] -= seg.charged;
        self.gens[id as usize] = self.gens[id as usize].wrapping_add(1);
        self.free.push(id);
        if self.open[q] == Some(id) {
            self.open[q] = None;
        }
        if seg.in_fifo {
            self.stale[q] += 1;
            if self.stale[q] > 64 && self.stale[q] * 2 > self.fifo[q].len() {
                let (list, gens) = (&self.list, &self.gens);
                self.fifo[q]
                    .retain(|(id, g)| gens[*id as usize] == *g && list[*id as usize].is_some());
                self.stale[q] = 0;
            }
        }
    }

    /// Take the oldest sealed segment of `q` off its FIFO (it stays readable until its
    /// objects are released or moved).
    pub(crate) fn pop_victim(&mut self, q: Queue) -> Option<u32> {
        while let Some((id, generation)) = self.fifo[q as usize].pop_front() {
            let live = self.gens[id as usize] == generation;
            match self.seg_mut(id) {
                Some(seg) if live => {
                    seg.in_fifo = false;
                    return Some(id);
                }
                _ => self.stale[q as usize] = self.stale[q as usize].saturating_sub(1),
            }
        }
        None
    }

    /// The bytes of segment `id`, to walk its objects while they are moved or released.
    pub(crate) fn snapshot(&self, id: u32) -> Option<Snapshot> {
        Some(match &self.seg(id)?.data {
            Data::Open { pieces, .. } => Snapshot::Pieces(pieces.clone()),
            Data::Sealed(b) => Snapshot::Sealed(b.clone()),
        })
    }

    /// Whether segment `id` holds one large object (moved between queues without a copy).
    pub(crate) fn is_large(&self, id: u32) -> bool {
        self.seg(id).is_some_and(|s| match &s.data {
            Data::Sealed(b) => b.len() >= self.large && read_len(b, 0) == Some(b.len()),
            Data::Open { .. } => false,
        })
    }

    /// Move a sealed segment (taken off its FIFO) to the back of `q`.
    pub(crate) fn requeue(&mut self, id: u32, q: Queue) {
        let Some(seg) = self.seg_mut(id) else { return };
        let (from, charged) = (seg.queue as usize, seg.charged);
        seg.queue = q;
        self.bytes[from] -= charged;
        self.bytes[q as usize] += charged;
        self.push_fifo(id);
    }

    /// Segments whose objects have all expired at `now_ns`.
    pub(crate) fn expired(&self, now_ns: i64) -> Vec<u32> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| s.max_expiry <= now_ns))
            .filter_map(|(id, _)| u32::try_from(id).ok())
            .collect()
    }

    /// Take a segment that was found expired off its FIFO before it is emptied.
    pub(crate) fn unqueue(&mut self, id: u32) {
        if let Some(seg) = self.seg_mut(id)
            && seg.in_fifo
        {
            seg.in_fifo = false;
            let q = seg.queue as usize;
            self.stale[q] += 1;
        }
    }

    /// Number of segments in use.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.list.iter().filter(|s| s.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(fill: u8, len: usize) -> Bytes {
        let mut v = vec![fill; len];
        v[..4].copy_from_slice(&(len as u32).to_le_bytes());
        Bytes::from(v)
    }

    #[test]
    fn open_segments_seal_into_one_buffer_and_free_with_their_last_object() {
        let mut s = Segments::new(4096);
        let a = s.append(Queue::Small, obj(1, 600), 10).unwrap();
        let b = s.append(Queue::Small, obj(2, 600), 20).unwrap();
        assert_eq!(a.0, b.0, "same open segment");
        assert_eq!(b.1, 600);
        assert_eq!(s.object(a.0, a.1).unwrap()[4], 1);
        // Objects that do not fit seal it; reads then slice the sealed buffer.
        let mut last = b;
        for i in 0..6 {
            last = s.append(Queue::Small, obj(3 + i, 600), 30).unwrap();
        }
        assert_ne!(last.0, a.0);
        let sealed = s.object_bytes(b.0, b.1).unwrap();
        assert_eq!((sealed.len(), sealed[4]), (600, 2));
        assert_eq!(s.snapshot(a.0).unwrap().objects().len(), 6);
        assert!(s.sealed_bytes(Queue::Small) >= 3600);
        // The victim is the oldest sealed segment; releasing its objects frees it.
        assert_eq!(s.pop_victim(Queue::Small), Some(a.0));
        assert_eq!(s.pop_victim(Queue::Small), None, "the other one is open");
        let before = s.queue_bytes(Queue::Small);
        for _ in 0..6 {
            s.release(a.0);
        }
        assert!(s.object(a.0, 0).is_none());
        assert!(s.queue_bytes(Queue::Small) < before);
        assert_eq!(s.count(), 1);
    }

    #[test]
    fn large_objects_get_their_own_segment_and_move_without_copy() {
        let mut s = Segments::new(4096);
        let (id, off) = s.append(Queue::Small, obj(9, 2000), 5).unwrap();
        assert_eq!(off, 0);
        assert!(s.is_large(id));
        assert_eq!(s.pop_victim(Queue::Small), Some(id));
        let ptr = s.object(id, 0).unwrap().as_ptr();
        s.requeue(id, Queue::Main);
        assert_eq!(s.queue_of(id), Some(Queue::Main));
        assert_eq!(s.object(id, 0).unwrap().as_ptr(), ptr);
        assert_eq!(s.queue_bytes(Queue::Small), 0);
        assert_eq!(s.expired(5), vec![id]);
        assert!(s.expired(4).is_empty());
    }

    #[test]
    fn stale_fifo_references_are_skipped_and_compacted() {
        let mut s = Segments::new(4096);
        let ids: Vec<u32> = (0..200)
            .map(|_| s.append(Queue::Small, obj(1, 1500), 0).unwrap().0)
            .collect();
        for id in &ids[..150] {
            s.release(*id);
        }
        assert!(s.fifo[0].len() < 150, "compacted: {}", s.fifo[0].len());
        assert_eq!(s.pop_victim(Queue::Small), Some(ids[150]));
    }
}
