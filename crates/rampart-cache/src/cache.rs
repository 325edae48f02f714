//! The long-lived cache handle: store, settings, metrics, clock, the coalescing table and
//! the purge API. It outlives config reloads; the layer holds a clone.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use tokio::{sync::watch, time::Instant};

use crate::{
    config::CacheSettings,
    error::PurgeError,
    key::Target,
    memory::MemoryStore,
    metrics::{CacheMetrics, CacheStats},
    store::{PurgeSelector, SoftPurge, Store},
};

/// Wall-clock time for HTTP dates, derived from the tokio clock so tests can pause it:
/// a `SystemTime` captured once plus tokio `Instant` elapsed.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_system: SystemTime,
    base_instant: Instant,
}

impl Clock {
    /// Capture the current wall-clock time and tokio instant.
    pub fn new() -> Self {
        Self {
            base_system: SystemTime::now(),
            base_instant: Instant::now(),
        }
    }

    /// The wall-clock time corresponding to a tokio instant.
    pub fn system_at(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.base_instant) {
            Some(d) => self.base_system + d,
            None => self.base_system - self.base_instant.duration_since(at),
        }
    }

    /// The current wall-clock time.
    pub fn system_now(&self) -> SystemTime {
        self.system_at(Instant::now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// JSON body of `POST /cache/purge`: exactly one of `urls`, `prefix`, `tags`, `all`, plus
/// optional `soft`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Absolute URLs (`https://host/path?query`); every variant goes.
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    /// A URL prefix (`https://host/static/`) or a path prefix on every host (`/static/`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Cache tags (`Surrogate-Key` / `Cache-Tag` values).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Everything.
    #[serde(default)]
    pub all: bool,
    /// Mark stale instead of deleting: served stale while it revalidates.
    #[serde(default)]
    pub soft: bool,
}

impl PurgeRequest {
    /// The selector, checking that exactly one was given.
    pub fn selector(&self) -> Result<(PurgeSelector, &'static str), PurgeError> {
        let mut found = Vec::new();
        if let Some(u) = &self.urls {
            if u.is_empty() {
                return Err(PurgeError::Empty("urls"));
            }
            found.push((PurgeSelector::Urls(u.clone()), "url"));
        }
        if let Some(p) = &self.prefix {
            if p.trim().is_empty() {
                return Err(PurgeError::Empty("prefix"));
            }
            found.push((PurgeSelector::Prefix(p.trim().to_owned()), "prefix"));
        }
        if let Some(t) = &self.tags {
            if t.iter().all(|t| t.trim().is_empty()) {
                return Err(PurgeError::Empty("tags"));
            }
            found.push((PurgeSelector::Tags(t.clone()), "tag"));
        }
        if self.all {
            found.push((PurgeSelector::All, "all"));
        }
        match found.len() {
            0 => Err(PurgeError::NoSelector),
            1 => Ok(found.remove(0)),
            _ => Err(PurgeError::ManySelectors),
        }
    }
}

/// Answer of a purge: how many stored objects (variants) were removed or marked stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeOutcome {
    /// Objects affected.
    pub purged: u64,
}

#[derive(Debug)]
struct FlightSlot {
    id: u64,
    rx: watch::Receiver<()>,
    waiters: usize,
}

/// Outcome of joining the coalescing table for a key.
pub(crate) enum Join {
    /// First: go upstream, release the guard when done.
    Leader(FlightGuard),
    /// Someone is already fetching: wait for the receiver to close.
    Waiter(watch::Receiver<()>),
    /// The waiting list is full: go upstream alone.
    Full,
}

/// Held by the request that fetches a key for others; dropping it wakes the waiters.
pub(crate) struct FlightGuard {
    cache: Cache,
    key: Arc<str>,
    id: u64,
    _tx: watch::Sender<()>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut flights = self
            .cache
            .inner
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if flights.get(&self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(&self.key);
        }
        // `_tx` drops after the slot is gone, waking the waiters.
    }
}

pub(crate) struct CacheInner {
    pub(crate) settings: CacheSettings,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) metrics: CacheMetrics,
    pub(crate) clock: Clock,
    flights: Mutex<HashMap<Arc<str>, FlightSlot>>,
    flight_ids: AtomicU64,
}

/// The cache: a cheap-to-clone handle shared by the layer, the admin API and background
/// refreshes.
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<CacheInner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("settings", &self.inner.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache with the embedded memory tier sized by `settings`.
    pub fn new(settings: CacheSettings, metrics: CacheMetrics) -> Self {
        let store = MemoryStore::new(settings.max_size, settings.max_variants, metrics.clone());
        Self::with_store(settings, metrics, Arc::new(store))
    }

    /// A cache over any [`Store`] (the shared tier, or a tiered store, later).
    pub fn with_store(
        settings: CacheSettings,
        metrics: CacheMetrics,
        store: Arc<dyn Store>,
    ) -> Self {
        Self {
            inner: Arc::new(CacheInner {
                settings,
                store,
                metrics,
                clock: Clock::new(),
                flights: Mutex::new(HashMap::new()),
                flight_ids: AtomicU64::new(1),
            }),
        }
    }

    /// The global settings.
    pub fn settings(&self) -> &CacheSettings {
        &self.inner.settings
    }

    /// The metric handles.
    pub fn metrics(&self) -> &CacheMetrics {
        &self.inner.metrics
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// A snapshot for `/stats` (hit ratio: [`CacheStats::hit_ratio`]).
    pub fn stats(&self) -> CacheStats {
        let (hits, misses) = self.inner.metrics.hits_misses();
        let s = self.inner.store.stats();
        CacheStats {
            hits,
            misses,
            entries: s.entries,
            bytes: s.bytes,
        }
    }

    /// Purge per the admin API's JSON body.
    pub async fn purge(&self, req: PurgeRequest) -> Result<PurgeOutcome, PurgeError> {
        let (selector, kind) = req.selector()?;
        let bad = match &selector {
            PurgeSelector::Urls(urls) => urls.iter().find(|u| Target::parse_absolute(u).is_none()),
            _ => None,
        };
        if let Some(bad) = bad {
            return Err(PurgeError::BadUrl(bad.clone()));
        }
        let soft = req.soft.then(|| self.soft_purge());
        let purged = self
            .inner
            .store
            .purge(&selector, soft, Instant::now())
            .await;
        self.inner.metrics.purged(kind, purged);
        Ok(PurgeOutcome { purged })
    }

    /// Purge one absolute URL (every variant), as the data-listener `PURGE` method does.
    /// The caller checks that the client may purge.
    pub async fn purge_url(&self, url: &str, soft: bool) -> Result<PurgeOutcome, PurgeError> {
        self.purge(PurgeRequest {
            urls: Some(vec![url.to_owned()]),
            soft,
            ..PurgeRequest::default()
        })
        .await
    }

    pub(crate) fn soft_purge(&self) -> SoftPurge {
        SoftPurge {
            stale_window: self.inner.settings.soft_purge_stale,
            keep: self.inner.settings.keep_for_revalidation,
        }
    }

    /// Join the coalescing table for `key`.
    pub(crate) fn join(&self, key: &Arc<str>) -> Join {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = flights.get_mut(key) {
            if slot.waiters >= self.inner.settings.coalesce_max_waiters {
                return Join::Full;
            }
            slot.waiters += 1;
            return Join::Waiter(slot.rx.clone());
        }
        let (tx, rx) = watch::channel(());
        let id = self.inner.flight_ids.fetch_add(1, Ordering::Relaxed);
        flights.insert(key.clone(), FlightSlot { id, rx, waiters: 0 });
        Join::Leader(FlightGuard {
            cache: self.clone(),
            key: key.clone(),
            id,
            _tx: tx,
        })
    }

    /// Become the leader for `key` only if nobody is fetching it (background refresh).
    pub(crate) fn try_lead(&self, key: &Arc<str>) -> Option<FlightGuard> {
        let flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if flights.contains_key(key) {
            return None;
        }
        drop(flights);
        match self.join(key) {
            Join::Leader(g) => Some(g),
            Join::Waiter(_) | Join::Full => None,
        }
    }

    /// Wait for a leader, bounded by the configured wait. `true` if the leader finished.
    pub(crate) async fn wait(&self, mut rx: watch::Receiver<()>) -> bool {
        self.inner.metrics.coalesced.inc();
        let wait: Duration = self.inner.settings.coalesce_wait;
        // The leader never sends; `changed` returns when its sender is dropped.
        tokio::time::timeout(wait, rx.changed()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_request_json() {
        let cases = [
            (r#"{"urls":["http://h/a"]}"#, Ok("url")),
            (r#"{"prefix":"/static/","soft":true}"#, Ok("prefix")),
            (r#"{"tags":["a","b"]}"#, Ok("tag")),
            (r#"{"all":true}"#, Ok("all")),
            (r#"{}"#, Err(PurgeError::NoSelector)),
            (
                r#"{"all":true,"tags":["x"]}"#,
                Err(PurgeError::ManySelectors),
            ),
            (r#"{"urls":[]}"#, Err(PurgeError::Empty("urls"))),
        ];
        for (json, want) in cases {
            let req: PurgeRequest = serde_json::from_str(json).unwrap();
            assert_eq!(req.selector().map(|(_, k)| k), want, "{json}");
        }
        assert!(serde_json::from_str::<PurgeRequest>(r#"{"bogus":1}"#).is_err());
        let out = serde_json::to_string(&PurgeOutcome { purged: 3 }).unwrap();
        assert_eq!(out, r#"{"purged":3}"#);
    }

    #[tokio::test(start_paused = true)]
    async fn clock_follows_tokio_time() {
        let c = Clock::new();
        let t0 = c.system_now();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(
            c.system_now().duration_since(t0).unwrap(),
            Duration::from_secs(90)
        );
    }
}
