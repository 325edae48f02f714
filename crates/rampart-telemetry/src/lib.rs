//! Seeing what the gateway does: Prometheus metrics, per-route stats and the access log.
//!
//! * [`Metrics`]: the registry (prefix `rampart_`) and the core HTTP families
//!   (`rampart_http_requests_total{route,method,status_class}`,
//!   `rampart_http_request_duration_seconds{route}`, `rampart_http_connections{state}`,
//!   `rampart_build_info{version}`). Feature crates register their own families into the same
//!   registry at start. Labels are route and upstream names, never raw paths or client IPs.
//! * [`stats`]: lock-free per-route counters and latency histograms behind `GET /stats`.
//! * [`access`]: one JSON line per request, written by a background task through a bounded
//!   queue (`[log].access_log`).
//!
//! All of it is long-lived: it survives config reloads, so counters never reset on reload.

pub mod access;
pub mod metrics;
pub mod stats;

pub use access::{AccessLog, AccessRecord, CacheField};
pub use metrics::{Metrics, RouteMetrics};
pub use stats::{LatencyHistogram, RouteStats, StatsSnapshot};
