//! Typed WAF configuration: global [`WafSettings`] (what rule set to load) and the per-route
//! [`WafPolicy`] (mode, paranoia, threshold, body limits, exclusions) the layer reads from the
//! route's `RoutePolicy`. Values arrive already validated by `rampart-config`; constructors
//! here only clamp.

use std::{path::PathBuf, sync::Arc};

use ipnet::IpNet;

use crate::{
    engine::Engine,
    request::{Collection, Limits},
    rule::{Selector, Source},
};

/// Global WAF settings (`[waf]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WafSettings {
    /// `waf.enabled` (default `true`).
    pub enabled: bool,
    /// `waf.builtin_rules` (default `true`): load the embedded rule set.
    pub builtin_rules: bool,
    /// `waf.crs_path` (default none): a directory holding the OWASP CRS (`crs-setup.conf*`
    /// and `rules/*.conf`) to load instead of the built-in rules.
    pub crs_path: Option<PathBuf>,
    /// `waf.extra_rules` (default none): additional SecLang files loaded after the rule set.
    pub extra_rules: Vec<PathBuf>,
}

impl Default for WafSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            builtin_rules: true,
            crs_path: None,
            extra_rules: Vec::new(),
        }
    }
}

/// `block` or `detect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Requests reaching the threshold are refused with 403.
    #[default]
    Block,
    /// Matches are logged, nothing is refused.
    Detect,
}

/// What happens to a body larger than the inspection limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyLimitAction {
    /// Inspect the first `body_limit` bytes, pass the rest unseen.
    #[default]
    InspectPrefix,
    /// Refuse with 413.
    Reject,
}

/// A rule-id range, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id.
    pub from: u32,
    /// Last id.
    pub to: u32,
}

impl IdRange {
    /// One id.
    pub fn one(id: u32) -> Self {
        Self { from: id, to: id }
    }

    /// Does it contain `id`?
    pub fn contains(&self, id: u32) -> bool {
        (self.from..=self.to).contains(&id)
    }
}

/// A target named in an exclusion: a collection and an optional key (`ARGS:password`).
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// The source (`ARGS`, `REQUEST_HEADERS`, ...).
    pub source: Source,
    /// The key; `Selector::All` for the whole collection.
    pub selector: Selector,
}

impl TargetSpec {
    /// Parse `ARGS:password`, `REQUEST_COOKIES:/^sess/`, `REQUEST_HEADERS:User-Agent`.
    pub fn parse(s: &str) -> Result<Self, TargetSpecError> {
        crate::seclang::parse_target_spec(s).map_err(TargetSpecError)
    }

    /// Does this spec cover a value of `coll` with `key`?
    pub fn covers(&self, coll: Collection, key: &str) -> bool {
        source_covers(self.source, coll) && self.selector.selects(key)
    }
}

/// A target that cannot be parsed (unknown collection or bad `/regex/` key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("waf exclusion target: {0}")]
pub struct TargetSpecError(pub String);

/// Does a source name cover a request collection? (`ARGS` covers `ARGS_GET` and `ARGS_POST`.)
pub fn source_covers(source: Source, coll: Collection) -> bool {
    match source {
        Source::Coll(c) => c == coll,
        Source::Args => matches!(coll, Collection::ArgsGet | Collection::ArgsPost),
        _ => false,
    }
}

/// An exclusion (`[[waf.exclusions]]` / `[[routes.waf.exclusions]]`).
///
/// Applies when the client is in `clients` (or `clients` is empty). With no `rule_ids` it
/// covers every rule; with no `target` the rules are removed, with a target only that target
/// is not inspected by them. An exclusion with no ids, no target and a client list turns the
/// WAF off for those clients.
#[derive(Debug, Clone, Default)]
pub struct Exclusion {
    /// Rule ids (ranges).
    pub rule_ids: Vec<IdRange>,
    /// The target, if only one target is excluded.
    pub target: Option<TargetSpec>,
    /// Client networks it applies to (empty = all clients).
    pub clients: Vec<IpNet>,
}

/// The per-route WAF policy, stored in `RoutePolicy::extensions` as `WafPolicy`.
#[derive(Debug, Clone)]
pub struct WafPolicy {
    /// The compiled rule set (shared by every route using it).
    pub engine: Arc<Engine>,
    /// Block or detect.
    pub mode: Mode,
    /// Paranoia level 1..=4 (default 1).
    pub paranoia: u8,
    /// Inbound anomaly threshold (default 5).
    pub threshold: u32,
    /// Bytes of body inspected (default 128 KiB).
    pub body_limit: usize,
    /// Past the limit (default inspect the prefix).
    pub body_limit_action: BodyLimitAction,
    /// Argument / nesting / part limits.
    pub limits: Limits,
    /// Exclusions (global ones first, then the route's).
    pub exclusions: Vec<Exclusion>,
}

impl WafPolicy {
    /// Defaults (block, PL1, threshold 5, 128 KiB prefix inspection) over an engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            mode: Mode::Block,
            paranoia: 1,
            threshold: 5,
            body_limit: 128 * 1024,
            body_limit_action: BodyLimitAction::InspectPrefix,
            limits: Limits::default(),
            exclusions: Vec::new(),
        }
    }

    /// Set the paranoia level (clamped to 1..=4).
    pub fn with_paranoia(mut self, pl: u8) -> Self {
        self.paranoia = pl.clamp(1, 4);
        self
    }

    /// Set the mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Set the threshold (at least 1).
    pub fn with_threshold(mut self, threshold: u32) -> Self {
        self.threshold = threshold.max(1);
        self
    }
}
