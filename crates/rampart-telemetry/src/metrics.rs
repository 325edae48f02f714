//! The Prometheus registry and the core HTTP metric families.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::stats::{RouteStats, StatsSnapshot};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// Method label values; anything else is counted as `OTHER` (a bounded label set).
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// Handles of one route, resolved once per config so the request path does no label lookup.
#[derive(Debug)]
pub struct RouteMetrics {
    counters: Vec<Counter>,
    duration: Histogram,
    /// The route's `/stats` counters.
    pub stats: Arc<RouteStats>,
}

impl RouteMetrics {
    /// Record a finished request.
    pub fn record(&self, method: &http::Method, status: u16, elapsed: std::time::Duration) {
        let m = match *method {
            http::Method::GET => 0,
            http::Method::HEAD => 1,
            http::Method::POST => 2,
            http::Method::PUT => 3,
            http::Method::DELETE => 4,
            http::Method::PATCH => 5,
            http::Method::OPTIONS => 6,
            _ => 7,
        };
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.counters[m * CLASSES.len() + class].inc();
        self.duration.observe(elapsed.as_secs_f64());
        self.stats.record(status, elapsed);
    }
}

/// The registry and the core families. One per process; survives reloads.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<HttpLabels, Counter>,
    duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    connections: Family<StateLabel, Gauge>,
    routes: RwLock<HashMap<String, Arc<RouteMetrics>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with the core families registered. Every family is registered under its
    /// full name (`rampart_...`); feature crates do the same.
    pub fn new(version: &str) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<HttpLabels, Counter>::default();
        let duration: Family<RouteLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        let connections = Family::<StateLabel, Gauge>::default();
        let build = Family::<VersionLabel, Gauge>::default();
        registry.register(
            "rampart_http_requests",
            "Requests answered, by route, method and status class",
            requests.clone(),
        );
        registry.register(
            "rampart_http_request_duration_seconds",
            "Time from request head to the end of the response, by route",
            duration.clone(),
        );
        registry.register(
            "rampart_http_connections",
            "Open client connections by state",
            connections.clone(),
        );
        registry.register("rampart_build_info", "Build information", build.clone());
        build
            .get_or_create(&VersionLabel {
                version: version.to_string(),
            })
            .set(1);
        Self {
            registry: Mutex::new(registry),
            requests,
            duration,
            connections,
            routes: RwLock::new(HashMap::new()),
        }
    }

    /// Let a feature crate register its families (`f` gets the registry).
    pub fn register_with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        let mut reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut reg)
    }

    /// The handles of a route (created on first use, shared afterwards).
    pub fn route(&self, name: &str) -> Arc<RouteMetrics> {
        if let Some(r) = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return r.clone();
        }
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes
            .entry(name.to_string())
            .or_insert_with(|| {
                let mut counters = Vec::with_capacity(METHODS.len() * CLASSES.len());
                for method in METHODS {
                    for status_class in CLASSES {
                        counters.push(
                            self.requests
                                .get_or_create(&HttpLabels {
                                    route: name.to_string(),
                                    method,
                                    status_class,
                                })
                                .clone(),
                        );
                    }
                }
                Arc::new(RouteMetrics {
                    counters,
                    duration: self
                        .duration
                        .get_or_create(&RouteLabel {
                            route: name.to_string(),
                        })
                        .clone(),
                    stats: Arc::new(RouteStats::default()),
                })
            })
            .clone()
    }

    /// Set the connection gauges (called before each scrape).
    pub fn set_connections(&self, active: usize, idle: usize) {
        self.connections
            .get_or_create(&StateLabel { state: "active" })
            .set(active as i64);
        self.connections
            .get_or_create(&StateLabel { state: "idle" })
            .set(idle as i64);
    }

    /// Prometheus / OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }

    /// Per-route snapshots for `/stats`, sorted by route name.
    pub fn route_stats(&self) -> Vec<(String, StatsSnapshot)> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = routes
            .iter()
            .map(|(k, r)| (k.clone(), r.stats.snapshot()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_contract_names() {
        let m = Metrics::new("1.2.3");
        let r = m.route("api");
        r.record(&http::Method::GET, 200, std::time::Duration::from_millis(5));
        r.record(
            &http::Method::from_bytes(b"PROPFIND").unwrap(),
            502,
            std::time::Duration::from_millis(5),
        );
        m.set_connections(2, 3);
        let text = m.encode();
        for needle in [
            "rampart_http_requests_total{route=\"api\",method=\"GET\",status_class=\"2xx\"} 1",
            "rampart_http_requests_total{route=\"api\",method=\"OTHER\",status_class=\"5xx\"} 1",
            "rampart_http_request_duration_seconds_count{route=\"api\"} 2",
            "rampart_http_connections{state=\"idle\"} 3",
            "rampart_build_info{version=\"1.2.3\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(Arc::ptr_eq(&r, &m.route("api")));
    }
}
