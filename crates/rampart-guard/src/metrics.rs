//! Prometheus metric families of the guard.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `rampart_ratelimit_decisions_total` | counter | `route`, `limit`, `decision` (`allowed`, `rejected`, `dry_run_rejected`) |
//! | `rampart_bans_active` | gauge | |
//! | `rampart_bans_total` | counter | `reason` (ban rule name, or `manual`) |
//! | `rampart_auth_failures_total` | counter | `route`, `reason` (`missing`, `invalid`, `expired`, `forbidden`, `csrf`, ...) |
//! | `rampart_audit_events_total` | counter | `kind` (event kind written to the audit log) |
//! | `rampart_audit_dropped_total` | counter | (events dropped because the audit queue was full) |
//!
//! Labels are route, limit and rule names from the config: never a path or a client IP, so the
//! series count stays bounded. Hot-path counters are resolved once when a policy is compiled
//! (a `Counter` is an `Arc`), so a decision does not build label sets.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    route: String,
    limit: String,
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    route: String,
    reason: String,
}

/// The guard's metric families. Cheap to clone (every family is an `Arc` inside).
#[derive(Clone, Debug, Default)]
pub struct GuardMetrics {
    ratelimit_decisions: Family<DecisionLabels, Counter>,
    bans_active: Gauge,
    bans_total: Family<ReasonLabels, Counter>,
    auth_failures: Family<AuthLabels, Counter>,
    audit_events: Family<KindLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Pre-resolved counters of one rate limit on one route.
#[derive(Clone, Debug, Default)]
pub struct LimitCounters {
    /// `decision="allowed"`.
    pub allowed: Counter,
    /// `decision="rejected"`.
    pub rejected: Counter,
    /// `decision="dry_run_rejected"`.
    pub dry_run_rejected: Counter,
}

impl GuardMetrics {
    /// Create the families and register them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "rampart_ratelimit_decisions",
            "Rate-limit decisions by route, limit and outcome",
            m.ratelimit_decisions.clone(),
        );
        registry.register(
            "rampart_bans_active",
            "IP addresses currently banned",
            m.bans_active.clone(),
        );
        registry.register(
            "rampart_bans",
            "Bans created, by reason (rule name or manual)",
            m.bans_total.clone(),
        );
        registry.register(
            "rampart_auth_failures",
            "Authentication and authorisation failures by route and reason",
            m.auth_failures.clone(),
        );
        registry.register(
            "rampart_audit_events",
            "Security events written to the audit log, by kind",
            m.audit_events.clone(),
        );
        m
    }

    /// Register the audit queue's dropped-events counter (from `EventSink::dropped_counter`).
    pub fn register_audit_dropped(registry: &mut Registry, dropped: Counter) {
        registry.register(
            "rampart_audit_dropped",
            "Security events dropped because the audit queue was full",
            dropped,
        );
    }

    /// Count one event written to the audit log.
    pub fn audit_event(&self, kind: &'static str) {
        self.audit_events.get_or_create(&KindLabels { kind }).inc();
    }

    /// Counters for one limit of one route (resolve once, at compile time).
    pub fn limit_counters(&self, route: &str, limit: &str) -> LimitCounters {
        let get = |decision: &str| {
            self.ratelimit_decisions
                .get_or_create(&DecisionLabels {
                    route: route.to_owned(),
                    limit: limit.to_owned(),
                    decision: decision.to_owned(),
                })
                .clone()
        };
        LimitCounters {
            allowed: get("allowed"),
            rejected: get("rejected"),
            dry_run_rejected: get("dry_run_rejected"),
        }
    }

    /// The `rampart_bans_active` gauge.
    pub fn bans_active(&self) -> &Gauge {
        &self.bans_active
    }

    /// Count one ban created for `reason`.
    pub fn ban_created(&self, reason: &str) {
        self.bans_total
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Count one authentication / authorisation failure.
    pub fn auth_failure(&self, route: &str, reason: &str) {
        self.auth_failures
            .get_or_create(&AuthLabels {
                route: route.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_expected_names() {
        let mut reg = Registry::default();
        let m = GuardMetrics::register(&mut reg);
        m.limit_counters("login", "per_ip").rejected.inc();
        m.ban_created("manual");
        m.bans_active().set(3);
        m.auth_failure("api", "invalid");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(out.contains(
            "rampart_ratelimit_decisions_total{route=\"login\",limit=\"per_ip\",decision=\"rejected\"} 1"
        ));
        assert!(out.contains("rampart_bans_active 3"));
        assert!(out.contains("rampart_bans_total{reason=\"manual\"} 1"));
        assert!(out.contains("rampart_auth_failures_total{route=\"api\",reason=\"invalid\"} 1"));
    }
}
