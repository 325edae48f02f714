//! Compiled rules: targets, transformations, an operator and actions (ModSecurity's model).

use std::sync::Arc;

use regex::bytes::Regex;

use crate::{operator::Operator, request::Collection, transform::Transform};

/// Rule severity; in the built-in (native) scoring it fixes the anomaly score a match adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// 5 points.
    Critical,
    /// 4 points.
    Error,
    /// 3 points.
    Warning,
    /// 2 points.
    Notice,
    /// 0 points.
    Info,
}

impl Severity {
    /// Anomaly points (CRS defaults).
    pub fn score(self) -> u32 {
        match self {
            Severity::Critical => 5,
            Severity::Error => 4,
            Severity::Warning => 3,
            Severity::Notice => 2,
            Severity::Info => 0,
        }
    }

    /// Parse `CRITICAL` / `2` (syslog numbers).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "EMERGENCY" | "ALERT" | "CRITICAL" | "0" | "1" | "2" => Severity::Critical,
            "ERROR" | "3" => Severity::Error,
            "WARNING" | "4" => Severity::Warning,
            "NOTICE" | "5" => Severity::Notice,
            "INFO" | "DEBUG" | "6" | "7" => Severity::Info,
            _ => return None,
        })
    }
}

/// What a target selects inside a collection.
#[derive(Debug, Clone)]
pub enum Selector {
    /// Every value.
    All,
    /// One key (compared case-insensitively).
    Key(String),
    /// Keys matching a regex (`ARGS:/^id_/`).
    Regex(Regex),
}

impl Selector {
    /// Does this selector pick `key`?
    pub fn selects(&self, key: &str) -> bool {
        match self {
            Selector::All => true,
            // Keys are lowercase at parse and header names arrive lowercase: equal bytes
            // first (one comparison), the case-insensitive walk only when they differ.
            Selector::Key(k) => k == key || k.eq_ignore_ascii_case(key),
            Selector::Regex(re) => re.is_match(key.as_bytes()),
        }
    }
}

/// The source of a target's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A request collection.
    Coll(Collection),
    /// `ARGS`: `ARGS_GET` and `ARGS_POST`.
    Args,
    /// The keys of a request collection (`ARGS_GET_NAMES`, `REQUEST_HEADERS_NAMES`, ...).
    Names(Collection),
    /// `ARGS_NAMES`.
    ArgsNames,
    /// `FILES_NAMES`: the field names of file parts.
    FilesNames,
    /// `TX`: the transaction variables.
    Tx,
    /// `MATCHED_VAR`.
    MatchedVar,
    /// `MATCHED_VAR_NAME`.
    MatchedVarName,
    /// `MATCHED_VARS`.
    MatchedVars,
    /// `MATCHED_VARS_NAMES`.
    MatchedVarsNames,
    /// `REQUEST_COOKIES_NAMES` is `Names(Cookies)`; this is `UNIQUE_ID`.
    UniqueId,
}

/// One target of a rule: `ARGS:foo`, `!ARGS:bar`, `&REQUEST_HEADERS:Host`.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where values come from.
    pub source: Source,
    /// Which keys.
    pub selector: Selector,
    /// `&`: the operator sees the number of selected values.
    pub count: bool,
    /// `!`-exclusions attached to this source.
    pub exclude: Vec<Selector>,
}

impl Target {
    /// Whole-collection target.
    pub fn all(source: Source) -> Self {
        Self {
            source,
            selector: Selector::All,
            count: false,
            exclude: Vec::new(),
        }
    }
}

/// `setvar` operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetVarOp {
    /// `=value`
    Set(String),
    /// `=+value`
    Add(String),
    /// `=-value`
    Sub(String),
    /// `!name`
    Delete,
}

/// `setvar:tx.name=...` (only the `tx` collection is kept per transaction; others are ignored
/// and reported at load time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetVar {
    /// Variable name (lowercase, may contain macros).
    pub name: String,
    /// Operation.
    pub op: SetVarOp,
}

/// `ctl:` actions the engine honours.
#[derive(Debug, Clone)]
pub enum Ctl {
    /// `ctl:ruleRemoveById=ID` or a range `A-B`.
    RemoveById(u32, u32),
    /// `ctl:ruleRemoveByTag=TAG`.
    RemoveByTag(String),
    /// `ctl:ruleRemoveTargetById=ID;ARGS:x`.
    RemoveTargetById(u32, u32, Source, Selector),
    /// `ctl:ruleRemoveTargetByTag=TAG;ARGS:x`.
    RemoveTargetByTag(String, Source, Selector),
    /// `ctl:ruleEngine=Off|DetectionOnly|On`.
    RuleEngine(EngineState),
    /// `ctl:forceRequestBodyVariable=On|Off`: `REQUEST_BODY` is available even when a body
    /// processor (multipart, XML, JSON) parsed the body.
    ForceRequestBody(bool),
    /// Accepted and ignored (`ctl:auditEngine`, ...).
    Ignored,
}

/// `SecRuleEngine` state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Rules run and block.
    On,
    /// Rules run, nothing blocks.
    DetectionOnly,
    /// Rules do not run.
    Off,
}

/// A disruptive action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruptive {
    /// Continue.
    Pass,
    /// Use the phase's default disruptive action.
    Block,
    /// Refuse (403).
    Deny,
    /// Refuse (connection drop; answered as 403 here).
    Drop,
    /// Refuse with a redirect (answered as 403 here).
    Redirect,
    /// Stop inspecting and let the request through.
    Allow,
}

/// A rule's actions.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    /// `msg`.
    pub msg: Option<String>,
    /// `severity`.
    pub severity: Option<Severity>,
    /// Paranoia level from `tag:'paranoia-level/N'` (1 when absent).
    pub paranoia: u8,
    /// `tag`s.
    pub tags: Vec<String>,
    /// The disruptive action, if given.
    pub disruptive: Option<Disruptive>,
    /// `setvar`s, in order.
    pub setvars: Vec<SetVar>,
    /// `ctl`s.
    pub ctls: Vec<Ctl>,
    /// `skipAfter`.
    pub skip_after: Option<String>,
    /// `skip:N`.
    pub skip: u32,
    /// `capture`.
    pub capture: bool,
    /// `multiMatch`: test the value after each transformation too.
    pub multi_match: bool,
    /// `nolog` was given.
    pub nolog: bool,
    /// `logdata`.
    pub logdata: Option<String>,
}

/// A compiled rule (a `SecRule`, or a `SecAction` with no targets).
#[derive(Debug, Clone)]
pub struct Rule {
    /// `id` (0 for chained rules).
    pub id: u32,
    /// `phase` (1 request headers, 2 request body; 3+ are ignored by this engine).
    pub phase: u8,
    /// Targets; empty for `SecAction`.
    pub targets: Vec<Target>,
    /// Transformations, in order.
    pub transforms: Vec<Transform>,
    /// The operator.
    pub op: Operator,
    /// `!@op`.
    pub negate: bool,
    /// Actions.
    pub actions: Actions,
    /// The next rule of a `chain`.
    pub chain: Option<Box<Rule>>,
}

impl Rule {
    /// `true` if this rule (or its chain) reads any body collection.
    pub fn needs_body(&self) -> bool {
        self.phase >= 2
            && (self.targets.iter().any(|t| match t.source {
                Source::Coll(c) | Source::Names(c) => c.needs_body(),
                Source::Args | Source::ArgsNames | Source::FilesNames => true,
                _ => false,
            }) || self.chain.as_ref().is_some_and(|c| c.needs_body()))
    }
}

/// One entry of a rule list.
#[derive(Debug, Clone)]
pub enum Item {
    /// A rule.
    Rule(Arc<Rule>),
    /// A `SecMarker`.
    Marker(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_selectors_compare_ascii_case_insensitively() {
        let s = Selector::Key("user-agent".to_string());
        for key in ["user-agent", "User-Agent", "USER-AGENT"] {
            assert!(s.selects(key), "{key}");
        }
        for key in ["user-agenT2", "user-agen", "user_agent", "", "accept"] {
            assert!(!s.selects(key), "{key}");
        }
        assert!(Selector::All.selects("anything"));
    }
}
