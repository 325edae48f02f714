//! Minification metrics.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `rampart_minify_saved_bytes_total` | counter | `route`, `kind` = html, css, js, json |
//! | `rampart_minify_responses_total` | counter | `route`, `kind`, `result` = minified, passthrough, skipped |
//!
//! `passthrough`: the minifier declined (parse failure, no gain); `skipped`: the body was
//! larger than the size limit.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::config::MinifyKind;

pub use rampart_core::labels::RouteLabel;

/// Labels of `rampart_minify_saved_bytes_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SavedLabels {
    /// Route name.
    pub route: RouteLabel,
    /// Content kind.
    pub kind: &'static str,
}

/// Labels of `rampart_minify_responses_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    /// Route name.
    pub route: RouteLabel,
    /// Content kind.
    pub kind: &'static str,
    /// `minified`, `passthrough` or `skipped`.
    pub result: &'static str,
}

/// Handles to the minification families, plus process totals for `/stats`. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct MinifyMetrics {
    saved: Family<SavedLabels, Counter>,
    responses: Family<ResultLabels, Counter>,
    totals: Arc<Totals>,
}

#[derive(Debug, Default)]
struct Totals {
    saved: [AtomicU64; 4],
    minified: AtomicU64,
    passthrough: AtomicU64,
}

/// `/stats` numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinifyStats {
    /// Bytes saved, per [`MinifyKind::ALL`] entry.
    pub saved_bytes: [u64; 4],
    /// Responses minified.
    pub minified: u64,
    /// Responses passed through unchanged by the minifier (parse failure, no gain).
    pub passthrough: u64,
}

fn kind_index(k: MinifyKind) -> usize {
    MinifyKind::ALL.iter().position(|x| *x == k).unwrap_or(0)
}

impl MinifyMetrics {
    /// Create and register the families.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "rampart_minify_saved_bytes",
            "Bytes removed by minification, by route and content kind",
            m.saved.clone(),
        );
        registry.register(
            "rampart_minify_responses",
            "Responses seen by the minifier, by route, kind and result",
            m.responses.clone(),
        );
        m
    }

    /// Record one minified response.
    pub fn minified(&self, route: &Arc<str>, kind: MinifyKind, saved: u64) {
        self.saved
            .get_or_create(&SavedLabels {
                route: RouteLabel(route.clone()),
                kind: kind.as_str(),
            })
            .inc_by(saved);
        self.totals.saved[kind_index(kind)].fetch_add(saved, Ordering::Relaxed);
        self.totals.minified.fetch_add(1, Ordering::Relaxed);
        self.result(route, kind, "minified");
    }

    /// Record a response the minifier left alone (`passthrough` or `skipped`).
    pub fn result(&self, route: &Arc<str>, kind: MinifyKind, result: &'static str) {
        if result == "passthrough" {
            self.totals.passthrough.fetch_add(1, Ordering::Relaxed);
        }
        self.responses
            .get_or_create(&ResultLabels {
                route: RouteLabel(route.clone()),
                kind: kind.as_str(),
                result,
            })
            .inc();
    }

    /// Totals since start.
    pub fn stats(&self) -> MinifyStats {
        MinifyStats {
            saved_bytes: std::array::from_fn(|i| self.totals.saved[i].load(Ordering::Relaxed)),
            minified: self.totals.minified.load(Ordering::Relaxed),
            passthrough: self.totals.passthrough.load(Ordering::Relaxed),
        }
    }
}
