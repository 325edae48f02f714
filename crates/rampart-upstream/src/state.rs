//! Per-endpoint resilience state (breaker, ejection, active health, peak EWMA, in-flight)
//! and the registry that carries it, and the connection pools, across config reloads.
//!
//! State is keyed by upstream name + endpoint label and held weakly by the registry: a
//! reload that keeps an endpoint finds its state (and its pool, when the pool settings did
//! not change) and reuses it; an endpoint that leaves the config is dropped with the last
//! generation that used it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use tokio::time::Instant;

use crate::{
    breaker::{Breaker, BreakerSettings, BreakerState},
    ewma::PeakEwma,
    outlier::Outlier,
    pool::EndpointPool,
};

/// Guess of an endpoint's latency before its first response (seconds).
const INITIAL_RTT: f64 = 0.001;

/// Mutable state behind one lock (taken once per pick and once per outcome).
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) breaker: Breaker,
    pub(crate) outlier: Outlier,
    pub(crate) ewma: PeakEwma,
    /// When the endpoint last became available again after being taken out (ejection end,
    /// active checks healthy again, breaker closed again): slow start ramps from here. `None`
    /// for an endpoint never taken out, which gets its full weight from the start.
    pub(crate) returned_at: Option<Instant>,
    /// Active-check streaks: (passes, failures) in a row.
    pub(crate) streak: (u32, u32),
}

/// One endpoint's state.
#[derive(Debug)]
pub(crate) struct EndpointState {
    pub(crate) inner: Mutex<Inner>,
    /// Requests in flight (until the response head).
    pub(crate) inflight: AtomicUsize,
    /// Active checks say unhealthy (written by the checker task only).
    pub(crate) check_failed: AtomicBool,
}

impl EndpointState {
    fn new(breaker: &BreakerSettings) -> Self {
        let now = Instant::now();
        Self {
            inner: Mutex::new(Inner {
                breaker: Breaker::new(breaker, now),
                outlier: Outlier::default(),
                ewma: PeakEwma::new(INITIAL_RTT, now),
                returned_at: None,
                streak: (0, 0),
            }),
            inflight: AtomicUsize::new(0),
            check_failed: AtomicBool::new(false),
        }
    }

    /// Healthy per active checks.
    pub(crate) fn check_ok(&self) -> bool {
        !self.check_failed.load(Ordering::Relaxed)
    }

    pub(crate) fn lock(&self) -> Option<std::sync::MutexGuard<'_, Inner>> {
        self.inner.lock().ok()
    }
}

/// A point-in-time view of one endpoint, for `/readyz`, `/stats` and gauges.
#[derive(Debug, Clone)]
pub struct EndpointSnapshot {
    /// `host:port`.
    pub endpoint: Arc<str>,
    /// Takes traffic now (checks pass, not ejected, breaker not open).
    pub available: bool,
    /// Active health checks pass (or are off).
    pub check_ok: bool,
    /// Ejected by outlier detection.
    pub ejected: bool,
    /// Seconds of ejection left.
    pub ejected_for_secs: f64,
    /// Breaker state.
    pub breaker: BreakerState,
    /// Requests in flight.
    pub in_flight: usize,
    /// Peak-EWMA latency in milliseconds.
    pub ewma_ms: f64,
}

type Key = (String, String);

/// The registry of endpoint state and pools that outlives config generations.
#[derive(Debug, Default, Clone)]
pub struct EndpointRegistry {
    states: Arc<Mutex<HashMap<Key, Weak<EndpointState>>>>,
    pools: Arc<Mutex<HashMap<Key, Weak<EndpointPool>>>>,
}

impl EndpointRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn state(
        &self,
        upstream: &str,
        endpoint: &str,
        breaker: &BreakerSettings,
    ) -> Arc<EndpointState> {
        let Ok(mut map) = self.states.lock() else {
            return Arc::new(EndpointState::new(breaker));
        };
        map.retain(|_, w| w.strong_count() > 0);
        let key = (upstream.to_string(), endpoint.to_string());
        if let Some(s) = map.get(&key).and_then(Weak::upgrade) {
            return s;
        }
        let s = Arc::new(EndpointState::new(breaker));
        map.insert(key, Arc::downgrade(&s));
        s
    }

    /// The pool of this endpoint, reused when `fits` accepts the existing one.
    pub(crate) fn pool(
        &self,
        upstream: &str,
        endpoint: &str,
        fits: impl Fn(&EndpointPool) -> bool,
        make: impl FnOnce() -> Arc<EndpointPool>,
    ) -> Arc<EndpointPool> {
        let Ok(mut map) = self.pools.lock() else {
            return make();
        };
        map.retain(|_, w| w.strong_count() > 0);
        let key = (upstream.to_string(), endpoint.to_string());
        if let Some(p) = map.get(&key).and_then(Weak::upgrade)
            && fits(&p)
        {
            return p;
        }
        let p = make();
        map.insert(key, Arc::downgrade(&p));
        p
    }
}
