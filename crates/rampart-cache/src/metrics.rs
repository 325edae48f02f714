//! Cache metrics (prometheus-client) and the access-log hook.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `rampart_cache_requests_total` | counter | `route`, `result` = hit, miss, stale, revalidated, expired, pass, bypass |
//! | `rampart_cache_entries` | gauge | |
//! | `rampart_cache_bytes` | gauge | |
//! | `rampart_cache_evictions_total` | counter | `reason` = size, expired |
//! | `rampart_cache_coalesced_total` | counter | |
//! | `rampart_cache_purged_total` | counter | `kind` = url, prefix, tag, all, invalidation, method |

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// What the cache did with a request; also put into the response extensions for the access
/// log (`response.extensions().get::<CacheOutcome>()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheOutcome {
    /// Served fresh from cache.
    Hit,
    /// Not in cache; fetched.
    Miss,
    /// Served stale (max-stale, stale-while-revalidate, stale-if-error).
    Stale,
    /// Stale entry validated by a 304 and served from cache.
    Revalidated,
    /// Stale entry replaced by a full response.
    Expired,
    /// Not cacheable (method, hit-for-pass, uncacheable response).
    Pass,
    /// The request's directives or a policy bypassed the cache.
    Bypass,
}

impl CacheOutcome {
    /// The label value (`hit`, `miss`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Stale => "stale",
            CacheOutcome::Revalidated => "revalidated",
            CacheOutcome::Expired => "expired",
            CacheOutcome::Pass => "pass",
            CacheOutcome::Bypass => "bypass",
        }
    }
}

impl EncodeLabelValue for CacheOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

pub use rampart_core::labels::RouteLabel;

/// Labels of `rampart_cache_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route name.
    pub route: RouteLabel,
    /// Outcome.
    pub result: CacheOutcome,
}

/// Labels with a single static `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Eviction reason.
    pub reason: &'static str,
}

/// Labels with a single static `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    /// Purge kind.
    pub kind: &'static str,
}

/// Handles to the cache metric families. Cheap to clone (all shared).
#[derive(Debug, Clone, Default)]
pub struct CacheMetrics {
    /// `rampart_cache_requests_total{route,result}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `rampart_cache_entries`.
    pub entries: Gauge,
    /// `rampart_cache_bytes`.
    pub bytes: Gauge,
    /// `rampart_cache_evictions_total{reason}`.
    pub evictions: Family<ReasonLabels, Counter>,
    /// `rampart_cache_coalesced_total`.
    pub coalesced: Counter,
    /// `rampart_cache_purged_total{kind}`.
    pub purged: Family<KindLabels, Counter>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl CacheMetrics {
    /// Create the families and register them in `registry` (the root registry: names are
    /// registered in full, prometheus-client adds `_total` to counters).
    pub fn register(registry: &mut Registry) -> CacheMetrics {
        let m = CacheMetrics::default();
        registry.register(
            "rampart_cache_requests",
            "Cache lookups by route and result",
            m.requests.clone(),
        );
        registry.register(
            "rampart_cache_entries",
            "Stored cache objects (variants)",
            m.entries.clone(),
        );
        registry.register(
            "rampart_cache_bytes",
            "Bytes charged to the memory tier",
            m.bytes.clone(),
        );
        registry.register(
            "rampart_cache_evictions",
            "Objects evicted by reason",
            m.evictions.clone(),
        );
        registry.register(
            "rampart_cache_coalesced",
            "Requests that waited on another request for the same key",
            m.coalesced.clone(),
        );
        registry.register(
            "rampart_cache_purged",
            "Objects removed or marked stale by purge and invalidation, by kind",
            m.purged.clone(),
        );
        m
    }

    /// Count one request outcome for a route.
    pub fn record(&self, route: &Arc<str>, outcome: CacheOutcome) {
        self.requests
            .get_or_create(&RequestLabels {
                route: RouteLabel(route.clone()),
                result: outcome,
            })
            .inc();
        match outcome {
            CacheOutcome::Hit => {
                self.hits.fetch_add(1, Ordering::Relaxed);
            }
            CacheOutcome::Miss => {
                self.misses.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Count an eviction.
    pub fn evicted(&self, reason: &'static str, n: u64) {
        self.evictions
            .get_or_create(&ReasonLabels { reason })
            .inc_by(n);
    }

    /// Count purged objects.
    pub fn purged(&self, kind: &'static str, n: u64) {
        if n > 0 {
            self.purged.get_or_create(&KindLabels { kind }).inc_by(n);
        }
    }

    /// Total hits and misses so far.
    pub fn hits_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// A snapshot for `/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Fresh hits.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
    /// Stored objects (variants).
    pub entries: u64,
    /// Bytes charged to the memory tier.
    pub bytes: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_issue_names() {
        let mut reg = Registry::default();
        let m = CacheMetrics::register(&mut reg);
        m.record(&Arc::from("api"), CacheOutcome::Hit);
        m.record(&Arc::from("api"), CacheOutcome::Miss);
        m.evicted("size", 2);
        m.purged("tag", 3);
        m.coalesced.inc();
        m.entries.set(5);
        m.bytes.set(1024);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        for needle in [
            "rampart_cache_requests_total{route=\"api\",result=\"hit\"} 1",
            "rampart_cache_requests_total{route=\"api\",result=\"miss\"} 1",
            "rampart_cache_entries 5",
            "rampart_cache_bytes 1024",
            "rampart_cache_evictions_total{reason=\"size\"} 2",
            "rampart_cache_coalesced_total 1",
            "rampart_cache_purged_total{kind=\"tag\"} 3",
        ] {
            assert!(out.contains(needle), "missing {needle} in\n{out}");
        }
        assert_eq!(m.hits_misses(), (1, 1));
        let s = CacheStats {
            hits: 3,
            misses: 1,
            entries: 0,
            bytes: 0,
        };
        assert!((s.hit_ratio() - 0.75).abs() < 1e-9);
    }
}
