//! Rampart's web application firewall: a native, linear-time rule engine.
//!
//! Sits at layer 11 of the request path (ARCHITECTURE.md §3): after rate limiting (so floods
//! do not burn rule CPU) and before the cache (so a blocked request is never served from it).
//!
//! * [`request`]: the request model ([`WafRequest`]) with bounded body parsers (form,
//!   multipart, JSON with paths, XML as text).
//! * [`transform`]: ModSecurity-compatible transformations (`urlDecodeUni`, `htmlEntityDecode`,
//!   `cmdLine`, ...).
//! * [`operator`]: operators; regexes are the `regex` crate in byte mode (finite automata, no
//!   backtracking: no ReDoS), phrase sets are Aho-Corasick, [`sqli`] and [`xss`] are
//!   libinjection-style tokenizers.
//! * [`engine`]: anomaly scoring and paranoia levels, exclusions, [`Verdict`]s.
//! * [`seclang`]: the SecLang loader for the built-in rules and the OWASP CRS.
//! * [`layer`]: the tower [`WafLayer`], reading the per-route [`WafPolicy`] from
//!   `Arc<RoutePolicy>`; [`metrics`]: Prometheus families; [`cli`]: `rampart waf test`.
//!
//! Config it takes: `[waf]` ([`WafSettings`]: `enabled`, `builtin_rules`, `crs_path`,
//! `extra_rules`, plus policy defaults) and `[routes.waf]` ([`WafPolicy`]: `mode`,
//! `paranoia`, `threshold`, `body_limit`, `body_limit_action`, `exclusions`); see
//! `docs/waf.md`.

// Nested `if let` reads better than let-chains in the tokenizers and the engine.
#![allow(clippy::collapsible_if, clippy::collapsible_match)]

pub mod builtin;
pub mod cli;
pub mod config;
pub mod corpus;
pub mod engine;
pub mod layer;
pub mod metrics;
pub mod operator;
pub mod prefilter;
pub mod request;
pub mod rule;
pub mod seclang;
pub mod sqli;
pub mod transform;
pub mod xss;

pub use config::{BodyLimitAction, Exclusion, IdRange, Mode, TargetSpec, WafPolicy, WafSettings};
pub use engine::{Engine, Outcome, RuleMatch, Scoring, Verdict};
pub use layer::{WafElapsed, WafEvent, WafEventSink, WafLayer, WafService};
pub use metrics::WafMetrics;
pub use request::{Limits, WafRequest};
pub use seclang::{LoadError, LoadReport};

/// Build the engine the settings ask for: the OWASP CRS from `crs_path` when set, else the
/// built-in rules; `extra_rules` files are loaded after either.
pub fn build_engine(settings: &WafSettings) -> Result<Engine, LoadError> {
    match &settings.crs_path {
        Some(dir) => seclang::load_crs(dir, &settings.extra_rules),
        None => {
            let mut l = seclang::Loader::new();
            if settings.builtin_rules {
                l.add_text("builtin.conf", builtin::BUILTIN_RULES, None)?;
            }
            for f in &settings.extra_rules {
                l.add_file(f)?;
            }
            Ok(l.finish(Scoring::Native))
        }
    }
}
