//! The memory tier: a [`moka::sync::Cache`] (W-TinyLFU admission, LRU eviction) of
//! per-key [`Record`]s, weighed by real bytes, plus purge indexes.
//!
//! Why `moka::sync` and not `moka::future`: every operation of the memory tier completes
//! without waiting on anything, so there is nothing to await; the sync cache avoids boxing
//! and async locks on the hit path, and its eviction listener runs inline, which keeps the
//! indexes below in step. No lock is held across an await (there are none inside).
//!
//! Indexes (a `std::sync::Mutex`, never held while calling into moka, because moka may call
//! the eviction listener, which takes it, from inside its own operations):
//! * canonical URL → keys, in a `BTreeMap`, so purge by URL is a lookup and purge by URL
//!   prefix is a range scan over the matches only; a path prefix (`/static/`) runs that
//!   range once per origin;
//! * tag → keys, a `HashMap`, so purge by tag costs the matching entries.
//!
//! Index slots carry the record's generation, so the late eviction of an old record never
//! removes the slots of its replacement.
//!
//! Time-based expiry is decided with the tokio clock (so tests can pause it) when a record is
//! read; moka's own per-entry expiry (real clock) reclaims memory of records nobody reads.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use moka::{Expiry, notification::RemovalCause, ops::compute::Op, sync::Cache as Moka};
use tokio::time::Instant;

use crate::{
    entry::{Entry, Record},
    metrics::CacheMetrics,
    store::{PurgeSelector, SoftPurge, Store, StoreFuture, StoreStats},
};

#[derive(Debug, Default)]
struct Index {
    urls: BTreeMap<Arc<str>, Vec<(Arc<str>, u64)>>,
    origins: BTreeMap<Arc<str>, usize>,
    tags: HashMap<Arc<str>, HashMap<Arc<str>, u64>>,
}

fn origin_of(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => &url[..after + i],
        None => url,
    }
}

impl Index {
    fn add(&mut self, key: &Arc<str>, rec: &Record) {
        let generation = rec.generation;
        for v in &rec.variants {
            let slot = self.urls.entry(v.url.clone()).or_default();
            if !slot.iter().any(|(k, g)| k == key && *g == generation) {
                slot.push((key.clone(), generation));
                *self
                    .origins
                    .entry(Arc::from(origin_of(&v.url)))
                    .or_default() += 1;
            }
            for t in v.tags.iter() {
                self.tags
                    .entry(t.clone())
                    .or_default()
                    .insert(key.clone(), generation);
            }
        }
    }

    fn remove(&mut self, key: &str, rec: &Record) {
        let generation = rec.generation;
        for v in &rec.variants {
            if let Some(slot) = self.urls.get_mut(&v.url) {
                let before = slot.len();
                slot.retain(|(k, g)| !(&**k == key && *g == generation));
                if slot.len() != before {
                    let origin = origin_of(&v.url);
                    if let Some(n) = self.origins.get_mut(origin) {
                        *n -= 1;
                        if *n == 0 {
                            self.origins.remove(origin);
                        }
                    }
                }
                if slot.is_empty() {
                    self.urls.remove(&v.url);
                }
            }
            for t in v.tags.iter() {
                if let Some(keys) = self.tags.get_mut(t) {
                    if keys.get(key) == Some(&generation) {
                        keys.remove(key);
                    }
                    if keys.is_empty() {
                        self.tags.remove(t);
                    }
                }
            }
        }
    }

    fn keys_for_url(&self, url: &str, out: &mut Vec<Arc<str>>) {
        if let Some(slot) = self.urls.get(url) {
            out.extend(slot.iter().map(|(k, _)| k.clone()));
        }
    }

    fn keys_for_prefix(&self, prefix: &str, out: &mut Vec<Arc<str>>) {
        let mut scan = |start: &str| {
            for (url, slot) in self
                .urls
                .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            {
                if !url.starts_with(start) {
                    break;
                }
                out.extend(slot.iter().map(|(k, _)| k.clone()));
            }
        };
        if prefix.starts_with('/') {
            for origin in self.origins.keys() {
                scan(&format!("{origin}{prefix}"));
            }
        } else {
            scan(prefix);
        }
    }

    fn keys_for_tag(&self, tag: &str, out: &mut Vec<Arc<str>>) {
        if let Some(keys) = self.tags.get(tag) {
            out.extend(keys.keys().cloned());
        }
    }
}

#[derive(Debug)]
struct Accounting {
    entries: AtomicI64,
    bytes: AtomicI64,
    metrics: CacheMetrics,
}

impl Accounting {
    fn add(&self, key_len: usize, rec: &Record, sign: i64) {
        let n = sign * i64::try_from(rec.variants.len()).unwrap_or(0);
        let w = sign * i64::from(rec.weight(key_len));
        let e = self.entries.fetch_add(n, Ordering::Relaxed) + n;
        let b = self.bytes.fetch_add(w, Ordering::Relaxed) + w;
        self.metrics.entries.set(e.max(0));
        self.metrics.bytes.set(b.max(0));
    }
}

struct RecordExpiry;

impl RecordExpiry {
    fn ttl(rec: &Record) -> Option<Duration> {
        rec.expires_at()
            .map(|e| e.saturating_duration_since(Instant::now()))
    }
}

impl Expiry<Arc<str>, Arc<Record>> for RecordExpiry {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        value: &Arc<Record>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Self::ttl(value)
    }

    fn expire_after_update(
        &self,
        _key: &Arc<str>,
        value: &Arc<Record>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Self::ttl(value)
    }
}

/// The embedded memory tier.
#[derive(Clone)]
pub struct MemoryStore {
    cache: Moka<Arc<str>, Arc<Record>>,
    index: Arc<Mutex<Index>>,
    acct: Arc<Accounting>,
    generation: Arc<AtomicU64>,
    max_variants: usize,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    // A panic while holding the index lock cannot leave it logically broken beyond stale
    // slots, so a poisoned lock is used as is.
    index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryStore {
    /// A memory tier of at most `max_size` bytes, at most `max_variants` variants per key.
    pub fn new(max_size: u64, max_variants: usize, metrics: CacheMetrics) -> Self {
        let index = Arc::new(Mutex::new(Index::default()));
        let acct = Arc::new(Accounting {
            entries: AtomicI64::new(0),
            bytes: AtomicI64::new(0),
            metrics,
        });
        let (l_index, l_acct) = (index.clone(), acct.clone());
        let cache = Moka::builder()
            .max_capacity(max_size)
            .weigher(|k: &Arc<str>, v: &Arc<Record>| v.weight(k.len()))
            .expire_after(RecordExpiry)
            .eviction_listener(move |key: Arc<Arc<str>>, rec: Arc<Record>, cause| {
                l_acct.add(key.len(), &rec, -1);
                let n = rec.variants.len() as u64;
                match cause {
                    RemovalCause::Replaced => return,
                    RemovalCause::Size => l_acct.metrics.evicted("size", n),
                    RemovalCause::Expired => l_acct.metrics.evicted("expired", n),
                    RemovalCause::Explicit => {}
                }
                lock(&l_index).remove(&key, &rec);
            })
            .build();
        Self {
            cache,
            index,
            acct,
            generation: Arc::new(AtomicU64::new(1)),
            max_variants: max_variants.max(1),
        }
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed)
    }

    /// Run moka's pending maintenance (evictions, listener calls) now. For tests and
    /// measurements; the cache does this by itself as it is used.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    fn get_sync(&self, key: &str, now: Instant) -> Option<Arc<Record>> {
        let rec = self.cache.get(key)?;
        if rec.expires_at().is_some_and(|e| now >= e) {
            if let Some(gone) = self.cache.remove(key) {
                self.acct
                    .metrics
                    .evicted("expired", gone.variants.len() as u64);
            }
            return None;
        }
        Some(rec)
    }

    fn put_sync(&self, key: Arc<str>, entry: Arc<Entry>) {
        let generation = self.next_generation();
        let max = self.max_variants;
        let mut old: Option<Arc<Record>> = None;
        let now = Instant::now();
        let mut new_rec: Option<Arc<Record>> = None;
        self.cache.entry(key.clone()).and_compute_with(|cur| {
            let mut variants = Vec::with_capacity(1);
            variants.push(entry.clone());
            if let Some(cur) = cur {
                let cur = cur.into_value();
                for v in &cur.variants {
                    if variants.len() >= max {
                        break;
                    }
                    if v.secondary != entry.secondary && v.meta.expires_at > now {
                        variants.push(v.clone());
                    }
                }
                old = Some(cur);
            }
            let rec = Arc::new(Record {
                variants,
                pass_until: None,
                generation,
            });
            new_rec = Some(rec.clone());
            Op::Put(rec)
        });
        if let Some(rec) = new_rec {
            self.acct.add(key.len(), &rec, 1);
            let mut index = lock(&self.index);
            if let Some(old) = &old {
                index.remove(&key, old);
            }
            index.add(&key, &rec);
        }
    }

    fn replace_sync(&self, key: Arc<str>, old: &Arc<Entry>, new: &Arc<Entry>) -> bool {
        let mut added: Option<Arc<Record>> = None;
        self.cache.entry(key.clone()).and_compute_with(|cur| {
            let Some(cur) = cur else { return Op::Nop };
            let cur = cur.into_value();
            if !cur.variants.iter().any(|v| Arc::ptr_eq(v, old)) {
                return Op::Nop;
            }
            let variants = cur
                .variants
                .iter()
                .map(|v| {
                    if Arc::ptr_eq(v, old) {
                        new.clone()
                    } else {
                        v.clone()
                    }
                })
                .collect();
            // Same generation, URL and tags: the purge indexes stay as they are.
            let rec = Arc::new(Record {
                variants,
                pass_until: cur.pass_until,
                generation: cur.generation,
            });
            added = Some(rec.clone());
            Op::Put(rec)
        });
        match added {
            Some(rec) => {
                // The listener took the old record's weight off (cause `Replaced`).
                self.acct.add(key.len(), &rec, 1);
                true
            }
            None => false,
        }
    }

    fn pass_sync(&self, key: Arc<str>, until: Instant) {
        let generation = self.next_generation();
        let mut old: Option<Arc<Record>> = None;
        let rec = Arc::new(Record {
            variants: Vec::new(),
            pass_until: Some(until),
            generation,
        });
        let put = rec.clone();
        self.cache.entry(key.clone()).and_compute_with(|cur| {
            old = cur.map(moka::Entry::into_value);
            Op::Put(put)
        });
        self.acct.add(key.len(), &rec, 1);
        if let Some(old) = &old {
            lock(&self.index).remove(&key, old);
        }
    }

    fn remove_sync(&self, key: &str) -> u64 {
        let Some(rec) = self.cache.remove(key) else {
            return 0;
        };
        // The listener cleans the index too; doing it here makes it immediate.
        lock(&self.index).remove(key, &rec);
        rec.variants.len() as u64
    }

    fn soft_sync(&self, key: &Arc<str>, soft: SoftPurge, now: Instant) -> u64 {
        let mut n = 0u64;
        let mut added: Option<Arc<Record>> = None;
        self.cache.entry(key.clone()).and_compute_with(|cur| {
            let Some(cur) = cur else { return Op::Nop };
            let cur = cur.into_value();
            if cur.variants.is_empty() {
                return Op::Nop;
            }
            let variants = cur
                .variants
                .iter()
                .map(|v| {
                    let mut e = (**v).clone();
                    e.meta.soft_purge(now, soft.stale_window, soft.keep);
                    Arc::new(e)
                })
                .collect::<Vec<_>>();
            n = variants.len() as u64;
            let rec = Arc::new(Record {
                variants,
                pass_until: None,
                generation: cur.generation,
            });
            added = Some(rec.clone());
            Op::Put(rec)
        });
        if let Some(rec) = added {
            self.acct.add(key.len(), &rec, 1);
        }
        n
    }

    fn purge_sync(&self, selector: &PurgeSelector, soft: Option<SoftPurge>, now: Instant) -> u64 {
        let mut keys: Vec<Arc<str>> = Vec::new();
        match selector {
            PurgeSelector::All => {
                if soft.is_none() {
                    let n: u64 = self
                        .cache
                        .iter()
                        .map(|(_, r)| r.variants.len() as u64)
                        .sum();
                    self.cache.invalidate_all();
                    *lock(&self.index) = Index::default();
                    self.cache.run_pending_tasks();
                    return n;
                }
                keys.extend(self.cache.iter().map(|(k, _)| (*k).clone()));
            }
            PurgeSelector::Urls(urls) => {
                let index = lock(&self.index);
                for u in urls {
                    if let Some(t) = crate::key::Target::parse_absolute(u) {
                        index.keys_for_url(&t.canonical_url(), &mut keys);
                        index.keys_for_url(&t.canonical_url_sorted(), &mut keys);
                    } else {
                        index.keys_for_url(u, &mut keys);
                    }
                }
            }
            PurgeSelector::Prefix(p) => lock(&self.index).keys_for_prefix(p, &mut keys),
            PurgeSelector::Tags(tags) => {
                let index = lock(&self.index);
                for t in tags {
                    index.keys_for_tag(t.trim(), &mut keys);
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys.iter()
            .map(|k| match soft {
                None => self.remove_sync(k),
                Some(s) => self.soft_sync(k, s, now),
            })
            .sum()
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
        self.put_sync(key, entry);
        ready(())
    }

    fn replace_variant(
        &self,
        key: Arc<str>,
        old: Arc<Entry>,
        new: Arc<Entry>,
    ) -> StoreFuture<'static, bool> {
        ready(self.replace_sync(key, &old, &new))
    }

    fn mark_pass(&self, key: Arc<str>, until: Instant) -> StoreFuture<'static, ()> {
        self.pass_sync(key, until);
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
        StoreStats {
            entries: self.acct.entries.load(Ordering::Relaxed).max(0) as u64,
            bytes: self.acct.bytes.load(Ordering::Relaxed).max(0) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryMeta;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

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
        s.run_pending_tasks();
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
        s.run_pending_tasks();
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
        s.run_pending_tasks();
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
}
