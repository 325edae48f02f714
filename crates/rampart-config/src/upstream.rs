//! Schema of upstream resilience (rampart-upstream): balancing, active health checks,
//! passive outlier ejection, circuit breakers and retries. These tables hang off each
//! `[[upstreams]]` entry (`[upstreams.health_check]`, `[upstreams.outlier]`,
//! `[upstreams.breaker]`, `[upstreams.retry]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::{ByteSize, duration};

/// `balance`: how an upstream picks an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceStrategy {
    /// In turn, ignoring weights.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin (as nginx does).
    WeightedRoundRobin,
    /// Fewest requests in flight (power of two choices).
    LeastRequests,
    /// Lowest peak-EWMA latency × requests in flight (power of two choices).
    Ewma,
    /// Weighted random.
    Random,
    /// Rendezvous hashing on `hash_on` (affinity, cache locality).
    Hash,
}

/// `[upstreams.health_check]`: active checks, run in the background. Off unless `path` is set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Path to request, e.g. `"/healthz"`. Default: none (active checks off).
    pub path: Option<String>,
    /// Method of the check request. Default `"GET"`.
    pub method: String,
    /// `Host` header of the check request. Default: the endpoint's `host:port`.
    pub host: Option<String>,
    /// Statuses that count as healthy: codes (`"200"`) or classes (`"2xx"`). Default `["2xx"]`.
    pub expected_statuses: Vec<String>,
    /// Time between checks of one endpoint. Default `"5s"`.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// A check without a response head in this time fails. Default `"2s"`.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Up to this much random delay is added to each interval. Default `"500ms"`.
    #[serde(with = "duration")]
    pub jitter: Duration,
    /// Passing checks in a row that make an unhealthy endpoint healthy. Default 2.
    pub healthy_threshold: u32,
    /// Failing checks in a row that make a healthy endpoint unhealthy. Default 3.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            path: None,
            method: "GET".into(),
            host: None,
            expected_statuses: vec!["2xx".into()],
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            jitter: Duration::from_millis(500),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// `[upstreams.outlier]`: passive outlier detection from live traffic.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierConfig {
    /// Consecutive failures (5xx, connect errors, timeouts) that eject an endpoint; 0 turns
    /// ejection off. Default 5.
    pub consecutive_failures: u32,
    /// First ejection time; the n-th ejection in a row lasts n times this. Default `"30s"`.
    #[serde(with = "duration")]
    pub base_ejection_time: Duration,
    /// Upper bound of one ejection. Default `"5m"`.
    #[serde(with = "duration")]
    pub max_ejection_time: Duration,
    /// At most this percentage of the pool is ejected at once (at least one endpoint may be).
    /// Default 50.
    pub max_ejection_percent: u8,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// `[upstreams.breaker]`: per-endpoint circuit breaker.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Use the breaker. Default `true`.
    pub enabled: bool,
    /// Failure share over `window` (0.0–1.0) that opens the breaker. Default `0.5`.
    pub failure_rate: f64,
    /// Requests in `window` needed before the rate is judged. Default 20.
    pub min_requests: u32,
    /// Rolling window of the failure rate. Default `"10s"`.
    #[serde(with = "duration")]
    pub window: Duration,
    /// Time open before probing (half-open). Default `"10s"`.
    #[serde(with = "duration")]
    pub cool_down: Duration,
    /// Probe requests let through half-open; all must succeed to close. Default 3.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(10),
            half_open_probes: 3,
        }
    }
}

/// `[upstreams.retry]`: retries of idempotent requests.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Tries per request, the first included; 1 turns retries off. Default 3.
    pub max_attempts: u32,
    /// Response statuses that are retried. Default `[502, 503, 504]`.
    pub statuses: Vec<u16>,
    /// Backoff before retry n is a random time up to `backoff_base × 2^(n-1)` (full
    /// jitter). Default `"10ms"`.
    #[serde(with = "duration")]
    pub backoff_base: Duration,
    /// Upper bound of one backoff. Default `"250ms"`.
    #[serde(with = "duration")]
    pub backoff_max: Duration,
    /// Retries may add at most this share of the requests over the last 10 s. Default `0.2`.
    pub budget_ratio: f64,
    /// Retries always allowed per second on top of the ratio. Default 5.
    pub budget_min_per_second: u32,
    /// Request bodies up to this size (known length) are buffered so they can be replayed;
    /// larger or streamed bodies are never retried. Default `"64KiB"`.
    pub max_replay_body: ByteSize,
    /// Also retry non-idempotent requests that carry `Idempotency-Key`. Default `false`.
    pub idempotency_key: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            statuses: vec![502, 503, 504],
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(250),
            budget_ratio: 0.2,
            budget_min_per_second: 5,
            max_replay_body: ByteSize(64 * 1024),
            idempotency_key: false,
        }
    }
}

/// Parse a `hash_on` value: `client_ip`, `path`, `header:NAME` or `cookie:NAME`.
pub fn check_hash_on(s: &str) -> Result<(), String> {
    match s.split_once(':') {
        None if s == "client_ip" || s == "path" => Ok(()),
        Some(("header" | "cookie", name)) if !name.is_empty() => Ok(()),
        _ => Err(format!(
            "{s:?}: expected \"client_ip\", \"path\", \"header:NAME\" or \"cookie:NAME\""
        )),
    }
}

/// Parse an expected status: `"200"` or `"2xx"`. Returns the inclusive range.
pub fn parse_status_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?}: expected a status code (\"200\") or class (\"2xx\")");
    if let Some(c) = s.strip_suffix("xx") {
        let d: u16 = c.parse().map_err(|_| bad())?;
        if !(1..=5).contains(&d) {
            return Err(bad());
        }
        return Ok((d * 100, d * 100 + 99));
    }
    let n: u16 = s.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&n) {
        return Err(bad());
    }
    Ok((n, n))
}

/// Check the resilience keys of one upstream: `(key relative to the upstream, message)`.
pub fn validate_upstream(
    u: &crate::UpstreamConfig,
    all: &[crate::UpstreamConfig],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut err = |k: &str, m: String| out.push((k.to_string(), m));
    if u.balance == BalanceStrategy::Hash
        && let Err(m) = check_hash_on(&u.hash_on)
    {
        err("hash_on", m);
    }
    if !u.weights.is_empty() && u.weights.len() != u.endpoints.len() {
        err(
            "weights",
            format!(
                "has {} entries for {} endpoints",
                u.weights.len(),
                u.endpoints.len()
            ),
        );
    }
    if u.weights.contains(&0) {
        err("weights", "weights must be at least 1".into());
    }
    if let Some(b) = &u.backup {
        if b == &u.name {
            err("backup", "an upstream cannot be its own backup".into());
        } else if !all.iter().any(|x| &x.name == b) {
            err("backup", format!("unknown upstream {b:?}"));
        }
    }
    let h = &u.health_check;
    if let Some(p) = &h.path
        && !p.starts_with('/')
    {
        err("health_check.path", format!("{p:?} must start with '/'"));
    }
    if http::Method::from_bytes(h.method.as_bytes()).is_err() || h.method.is_empty() {
        err(
            "health_check.method",
            format!("{:?} is not a method name", h.method),
        );
    }
    for (j, s) in h.expected_statuses.iter().enumerate() {
        if let Err(m) = parse_status_range(s) {
            err(&format!("health_check.expected_statuses[{j}]"), m);
        }
    }
    if h.interval.is_zero() {
        err("health_check.interval", "must be greater than 0".into());
    }
    if h.timeout.is_zero() {
        err("health_check.timeout", "must be greater than 0".into());
    }
    if h.healthy_threshold == 0 {
        err(
            "health_check.healthy_threshold",
            "must be at least 1".into(),
        );
    }
    if h.unhealthy_threshold == 0 {
        err(
            "health_check.unhealthy_threshold",
            "must be at least 1".into(),
        );
    }
    let o = &u.outlier;
    if o.max_ejection_percent > 100 {
        err(
            "outlier.max_ejection_percent",
            "must be between 0 and 100".into(),
        );
    }
    if o.consecutive_failures > 0 && o.base_ejection_time.is_zero() {
        err(
            "outlier.base_ejection_time",
            "must be greater than 0".into(),
        );
    }
    if o.max_ejection_time < o.base_ejection_time {
        err(
            "outlier.max_ejection_time",
            "must not be less than outlier.base_ejection_time".into(),
        );
    }
    let b = &u.breaker;
    if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
        err(
            "breaker.failure_rate",
            "must be greater than 0 and at most 1".into(),
        );
    }
    if b.window.is_zero() {
        err("breaker.window", "must be greater than 0".into());
    }
    if b.half_open_probes == 0 {
        err("breaker.half_open_probes", "must be at least 1".into());
    }
    let r = &u.retry;
    if r.max_attempts == 0 {
        err("retry.max_attempts", "must be at least 1".into());
    }
    if r.max_attempts > 10 {
        err("retry.max_attempts", "must be at most 10".into());
    }
    for (j, s) in r.statuses.iter().enumerate() {
        if !(500..=599).contains(s) && *s != 429 && *s != 408 {
            err(
                &format!("retry.statuses[{j}]"),
                format!("{s} is not a retryable status (5xx, 408 or 429)"),
            );
        }
    }
    if !(0.0..=1.0).contains(&r.budget_ratio) {
        err("retry.budget_ratio", "must be between 0 and 1".into());
    }
    if r.backoff_max < r.backoff_base {
        err(
            "retry.backoff_max",
            "must not be less than retry.backoff_base".into(),
        );
    }
    out
}
