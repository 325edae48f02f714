//! `[[upstreams]]` resilience keys -> typed `rampart-upstream` settings, and what `/readyz`,
//! `/stats` and `/metrics` show about endpoints.

use http::Method;
use rampart_admin::{Component, Health};
use rampart_config::{BalanceStrategy, ConfigError, UpstreamConfig};
use rampart_upstream::{
    BreakerSettings, HashOn, HealthSettings, OutlierSettings, ResilienceSettings, RetrySettings,
    Strategy, Upstreams,
};

/// The resilience settings of `upstreams[i]`; problems go to `errors` with their key path.
pub fn settings(i: usize, u: &UpstreamConfig, errors: &mut Vec<ConfigError>) -> ResilienceSettings {
    let strategy = match u.balance {
        BalanceStrategy::RoundRobin => Strategy::RoundRobin,
        BalanceStrategy::WeightedRoundRobin => Strategy::WeightedRoundRobin,
        BalanceStrategy::LeastRequests => Strategy::LeastRequests,
        BalanceStrategy::Ewma => Strategy::Ewma,
        BalanceStrategy::Random => Strategy::Random,
        BalanceStrategy::Hash => Strategy::Hash,
    };
    let hash_on = match HashOn::parse(&u.hash_on) {
        Ok(h) => h,
        Err(m) => {
            errors.push(ConfigError::new(format!("upstreams[{i}].hash_on"), m));
            HashOn::default()
        }
    };
    let h = &u.health_check;
    let health = h.path.as_ref().map(|path| HealthSettings {
        method: Method::from_bytes(h.method.as_bytes()).unwrap_or(Method::GET),
        path: path.clone(),
        host: h.host.clone(),
        expected: h
            .expected_statuses
            .iter()
            .filter_map(|s| rampart_config::parse_status_range(s).ok())
            .collect(),
        interval: h.interval,
        timeout: h.timeout,
        jitter: h.jitter,
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
    });
    let (o, b, r) = (&u.outlier, &u.breaker, &u.retry);
    ResilienceSettings {
        strategy,
        hash_on,
        weights: u.weights.clone(),
        slow_start: u.slow_start,
        backup: u.backup.as_deref().map(Into::into),
        max_concurrent: u.max_concurrent_requests,
        request_timeout: (!u.request_timeout.is_zero()).then_some(u.request_timeout),
        health,
        outlier: OutlierSettings {
            consecutive: o.consecutive_failures,
            base: o.base_ejection_time,
            max: o.max_ejection_time,
            max_percent: o.max_ejection_percent,
        },
        breaker: BreakerSettings {
            enabled: b.enabled,
            failure_rate: b.failure_rate,
            min_requests: b.min_requests,
            window: b.window,
            cool_down: b.cool_down,
            probes: b.half_open_probes,
        },
        retry: RetrySettings {
            max_attempts: r.max_attempts,
            statuses: r.statuses.clone(),
            backoff_base: r.backoff_base,
            backoff_max: r.backoff_max,
            budget_ratio: r.budget_ratio,
            budget_min_per_second: r.budget_min_per_second,
            max_replay_body: r.max_replay_body.bytes(),
            idempotency_key: r.idempotency_key,
        },
        min_idle: u.min_idle_per_endpoint,
    }
}

/// One `/readyz` component per upstream: healthy when every endpoint is available,
/// degraded when some are, unhealthy when none is. Also returns whether all are unhealthy.
pub fn readiness(upstreams: &Upstreams) -> (Vec<Component>, bool) {
    let mut ups: Vec<_> = upstreams.iter().collect();
    ups.sort_by(|a, b| a.name().cmp(b.name()));
    let mut all_down = !ups.is_empty();
    let mut out = Vec::new();
    for u in ups {
        let snap = u.snapshot();
        let up = snap.iter().filter(|e| e.available).count();
        let status = if up == snap.len() {
            Health::Healthy
        } else if up > 0 {
            Health::Degraded
        } else {
            Health::Unhealthy
        };
        all_down &= status == Health::Unhealthy;
        let down: Vec<String> = snap
            .iter()
            .filter(|e| !e.available)
            .map(|e| {
                let why = if !e.check_ok {
                    "failing health checks"
                } else if e.ejected {
                    "ejected"
                } else {
                    "breaker open"
                };
                format!("{} {why}", e.endpoint)
            })
            .collect();
        out.push(Component {
            name: format!("upstream:{}", u.name()),
            status,
            detail: (!down.is_empty()).then(|| {
                format!(
                    "{up}/{} endpoints available; {}",
                    snap.len(),
                    down.join(", ")
                )
            }),
        });
    }
    (out, all_down)
}

/// `/stats` `upstreams`: per upstream, per endpoint state.
pub fn stats(upstreams: &Upstreams) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for u in upstreams.iter() {
        let eps: Vec<_> = u
            .snapshot()
            .into_iter()
            .map(|e| {
                serde_json::json!({
                    "endpoint": &*e.endpoint,
                    "available": e.available,
                    "health_check_ok": e.check_ok,
                    "ejected": e.ejected,
                    "ejected_for_seconds": e.ejected_for_secs,
                    "breaker": e.breaker.as_str(),
                    "in_flight": e.in_flight,
                    "ewma_ms": (e.ewma_ms * 1000.0).round() / 1000.0,
                })
            })
            .collect();
        map.insert(
            u.name().to_string(),
            serde_json::json!({ "endpoints": eps }),
        );
    }
    serde_json::Value::Object(map)
}

/// Bring the per-endpoint gauges up to date before a scrape.
pub fn refresh_gauges(upstreams: &Upstreams) {
    for u in upstreams.iter() {
        u.refresh_gauges();
    }
}
