//! Prometheus families of the WAF (prometheus-client):
//!
//! * `rampart_waf_requests_total{route,verdict="pass|block|detect"}`
//! * `rampart_waf_rule_matches_total{rule}`: the label set is bounded by the loaded rule ids
//! * `rampart_waf_inspection_seconds`: time spent in the rules per inspected request

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

use crate::engine::Verdict;

pub use rampart_core::labels::RouteLabel;

/// Labels of `rampart_waf_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route name.
    pub route: RouteLabel,
    /// `pass`, `block` or `detect`.
    pub verdict: &'static str,
}

/// Labels of `rampart_waf_rule_matches_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RuleLabels {
    /// Rule id.
    pub rule: String,
}

/// The WAF's metric handles (cheap to clone).
#[derive(Debug, Clone)]
pub struct WafMetrics {
    requests: Family<RequestLabels, Counter>,
    rule_matches: Family<RuleLabels, Counter>,
    inspection: Histogram,
}

impl Default for WafMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            rule_matches: Family::default(),
            // 10 µs .. ~160 ms
            inspection: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                1e-5, 2.0, 15,
            )),
        }
    }
}

impl WafMetrics {
    /// Create the families and register them.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self::default();
        registry.register(
            "rampart_waf_requests",
            "Requests inspected by the WAF, by route and verdict",
            m.requests.clone(),
        );
        registry.register(
            "rampart_waf_rule_matches",
            "WAF rule matches, by rule id",
            m.rule_matches.clone(),
        );
        registry.register(
            "rampart_waf_inspection_seconds",
            "Time spent evaluating WAF rules per request",
            m.inspection.clone(),
        );
        Arc::new(m)
    }

    /// Record one inspection.
    pub fn observe(&self, route: &Arc<str>, verdict: &Verdict) {
        self.requests
            .get_or_create(&RequestLabels {
                route: RouteLabel(route.clone()),
                verdict: verdict.outcome.as_str(),
            })
            .inc();
        for id in verdict.rule_ids() {
            self.rule_matches
                .get_or_create(&RuleLabels {
                    rule: id.to_string(),
                })
                .inc();
        }
        self.inspection.observe(verdict.elapsed.as_secs_f64());
    }

    /// Count a request by verdict label only (e.g. a 413 past the body limit).
    pub fn count(&self, route: &Arc<str>, verdict: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                route: RouteLabel(route.clone()),
                verdict,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_encodes() {
        let mut reg = Registry::default();
        let m = WafMetrics::register(&mut reg);
        let mut v = Verdict::pass();
        v.outcome = crate::engine::Outcome::Block;
        v.matches.push(crate::engine::RuleMatch {
            rule_id: 242100,
            target: "ARGS:q".into(),
            excerpt: "x".into(),
            msg: None,
            severity: None,
            score: 5,
        });
        m.observe(&Arc::from("api"), &v);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains(r#"rampart_waf_requests_total{route="api",verdict="block"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"rampart_waf_rule_matches_total{rule="242100"} 1"#),
            "{out}"
        );
        assert!(
            out.contains("rampart_waf_inspection_seconds_count 1"),
            "{out}"
        );
    }
}
