//! Upstream metric families.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// `{upstream, endpoint, outcome}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Upstream name.
    pub upstream: String,
    /// Endpoint `host:port`.
    pub endpoint: String,
    /// `ok`, `http_5xx`, `connect_error`, `timeout`, `protocol_error`.
    pub outcome: &'static str,
}

/// `{upstream}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabel {
    /// Upstream name.
    pub upstream: String,
}

/// `{upstream, endpoint}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// Upstream name.
    pub upstream: String,
    /// Endpoint `host:port`.
    pub endpoint: String,
}

/// `{upstream, endpoint, state}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakerLabels {
    /// Upstream name.
    pub upstream: String,
    /// Endpoint `host:port`.
    pub endpoint: String,
    /// `closed`, `open`, `half_open`.
    pub state: &'static str,
}

/// `{upstream, reason}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    /// Upstream name.
    pub upstream: String,
    /// `connect_error`, `reset`, `timeout`, `status`, or `budget_exhausted` (a retry the
    /// budget refused).
    pub reason: &'static str,
}

/// `{upstream, state}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// Upstream name.
    pub upstream: String,
    /// `idle` or `in_use`.
    pub state: &'static str,
}

fn new_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// Metric families of the upstream side. Cheap to clone (all handles are shared).
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) duration: Family<UpstreamLabel, Histogram, fn() -> Histogram>,
    pub(crate) pool: Family<PoolLabels, Gauge>,
    pub(crate) healthy: Family<EndpointLabels, Gauge>,
    pub(crate) breaker: Family<BreakerLabels, Gauge>,
    pub(crate) ejections: Family<EndpointLabels, Counter>,
    pub(crate) retries: Family<RetryLabels, Counter>,
    pub(crate) overloaded: Family<UpstreamLabel, Counter>,
}

impl Default for UpstreamMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(new_histogram),
            pool: Family::default(),
            healthy: Family::default(),
            breaker: Family::default(),
            ejections: Family::default(),
            retries: Family::default(),
            overloaded: Family::default(),
        }
    }
}

impl UpstreamMetrics {
    /// Create the families and register them under their full names.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "rampart_upstream_requests",
            "Requests sent to upstream endpoints, by outcome",
            m.requests.clone(),
        );
        registry.register(
            "rampart_upstream_request_duration_seconds",
            "Time from sending a request upstream to its response head",
            m.duration.clone(),
        );
        registry.register(
            "rampart_upstream_pool_connections",
            "Pooled upstream connections by state",
            m.pool.clone(),
        );
        registry.register(
            "rampart_upstream_endpoint_healthy",
            "1 when the endpoint takes traffic (health checks pass, not ejected, breaker not open)",
            m.healthy.clone(),
        );
        registry.register(
            "rampart_upstream_breaker_state",
            "Circuit breaker state per endpoint: 1 for the current state",
            m.breaker.clone(),
        );
        registry.register(
            "rampart_upstream_ejections",
            "Endpoints ejected by outlier detection",
            m.ejections.clone(),
        );
        registry.register(
            "rampart_upstream_retries",
            "Requests retried on another endpoint, by reason (budget_exhausted: refused by the retry budget)",
            m.retries.clone(),
        );
        registry.register(
            "rampart_upstream_overloaded",
            "Requests refused at an upstream's concurrency limit",
            m.overloaded.clone(),
        );
        m
    }
}
