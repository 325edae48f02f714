//! The SecLang (ModSecurity rule language) loader: reads the built-in rule set and the OWASP
//! Core Rule Set from their own files.
//!
//! Supported directives: `SecRule`, `SecAction`, `SecMarker`, `SecDefaultAction`,
//! `SecRuleEngine`, `SecRuleRemoveById`, `SecRuleRemoveByTag`, `SecRuleUpdateTargetById`,
//! `SecRuleUpdateTargetByTag`. Directives about the host server (`SecRequestBodyAccess`,
//! audit-log settings, `SecComponentSignature`, ...) are accepted and listed in
//! [`LoadReport::ignored_directives`]; anything else is listed in
//! [`LoadReport::unsupported_directives`]. Rules that cannot be compiled (a regex with
//! look-around or back-references, an unknown operator or variable) are dropped and listed in
//! [`LoadReport::dropped_rules`] with the reason: nothing is skipped silently.

use std::{
    collections::BTreeSet,
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    engine::{Engine, Scoring},
    operator::{Operator, OperatorError, compile_regex, phrase_set},
    request::Collection,
    rule::{
        Actions, Ctl, Disruptive, EngineState, Item, Rule, Selector, SetVar, SetVarOp, Severity,
        Source, Target,
    },
    transform::Transform,
};

/// A hard load error (the rule files cannot be used at all).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("waf rules: cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A syntax error.
    #[error("waf rules: {location}: {message}")]
    Syntax {
        /// `file:line`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// No rule was found.
    #[error("waf rules: no rules found in {0}")]
    Empty(PathBuf),
}

/// What the loader did, reported at load time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Rules compiled.
    pub rules: usize,
    /// Files read.
    pub files: Vec<String>,
    /// Directives accepted without effect (server settings), by name with location.
    pub ignored_directives: Vec<String>,
    /// Directives this engine does not implement, by name with location.
    pub unsupported_directives: Vec<String>,
    /// Rules dropped, with the reason (`942100 at f.conf:12: regex does not compile: ...`).
    pub dropped_rules: Vec<String>,
    /// Targets or actions dropped from rules that were kept.
    pub warnings: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} rules from {} files; {} rules dropped, {} unsupported directives, {} ignored directives, {} warnings",
            self.rules,
            self.files.len(),
            self.dropped_rules.len(),
            self.unsupported_directives.len(),
            self.ignored_directives.len(),
            self.warnings.len()
        )?;
        for d in &self.unsupported_directives {
            writeln!(f, "  unsupported directive: {d}")?;
        }
        for d in &self.dropped_rules {
            writeln!(f, "  dropped rule: {d}")?;
        }
        for d in &self.warnings {
            writeln!(f, "  warning: {d}")?;
        }
        Ok(())
    }
}

const IGNORED_DIRECTIVES: &[&str] = &[
    "seccomponentsignature",
    "secrequestbodyaccess",
    "secresponsebodyaccess",
    "secresponsebodymimetype",
    "secrequestbodylimit",
    "secrequestbodynofileslimit",
    "secrequestbodyinmemorylimit",
    "secrequestbodylimitaction",
    "secresponsebodylimit",
    "secresponsebodylimitaction",
    "secpcrematchlimit",
    "secpcrematchlimitrecursion",
    "sectmpdir",
    "secdatadir",
    "secauditengine",
    "secauditlog",
    "secauditlogparts",
    "secauditlogtype",
    "secauditlogrelevantstatus",
    "secauditlogstoragedir",
    "secauditlogformat",
    "secdebuglog",
    "secdebugloglevel",
    "secargumentseparator",
    "seccookieformat",
    "secunicodemapfile",
    "secstatusengine",
    "seccollectiontimeout",
    "secargumentslimit",
    "secserversignature",
    "sectmpsaveuploadedfiles",
    "secuploaddir",
    "secuploadfilemode",
    "secuploadkeepfiles",
];

/// A rule set being built (several files can be added in order).
#[derive(Debug)]
pub struct Loader {
    items: Vec<Item>,
    default_actions: [Actions; 3],
    default_transforms: [Vec<Transform>; 3],
    default_disruptive: [Disruptive; 3],
    state: EngineState,
    report: LoadReport,
    removed: Vec<(u32, u32)>,
    removed_tags: Vec<String>,
    /// ModSecurity semantics for rule sets written for it (the CRS); off for the built-in
    /// rule set. See [`Loader::modsecurity_compat`].
    modsec: bool,
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

/// Split a file into logical lines (continuations joined), with the starting line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if cur.is_empty() {
            start = i + 1;
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            cur.push_str(stripped);
            cur.push(' ');
        } else {
            cur.push_str(line);
            out.push((start, std::mem::take(&mut cur)));
        }
    }
    if !cur.trim().is_empty() {
        out.push((start, cur));
    }
    out
}

/// Split a directive line into words: bare words or double-quoted strings (`\"` unescaped,
/// other backslashes kept).
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut w = String::new();
        if c == '"' || c == '\'' {
            let q = c;
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.peek() {
                        Some(&n) if n == q => {
                            w.push(n);
                            chars.next();
                        }
                        _ => w.push('\\'),
                    }
                } else if c == q {
                    closed = true;
                    break;
                } else {
                    w.push(c);
                }
            }
            if !closed {
                return Err("unterminated quoted string".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
        }
        out.push(w);
    }
    Ok(out)
}

/// Split an action list on commas outside single quotes.
fn split_actions(s: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_q => {
                if let Some(&n) = chars.peek() {
                    if n == '\'' {
                        cur.push('\'');
                        chars.next();
                        continue;
                    }
                }
                cur.push('\\');
            }
            '\'' => in_q = !in_q,
            ',' if !in_q => {
                push_action(&mut out, &cur);
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    push_action(&mut out, &cur);
    out
}

fn push_action(out: &mut Vec<(String, Option<String>)>, raw: &str) {
    let raw = raw.trim();
    if raw.is_empty() {
        return;
    }
    match raw.split_once(':') {
        Some((k, v)) => out.push((k.trim().to_ascii_lowercase(), Some(v.trim().to_string()))),
        None => out.push((raw.to_ascii_lowercase(), None)),
    }
}

fn source_by_name(name: &str) -> Option<Source> {
    use Collection as C;
    Some(match name.to_ascii_uppercase().as_str() {
        "ARGS" => Source::Args,
        "ARGS_GET" => Source::Coll(C::ArgsGet),
        "ARGS_POST" => Source::Coll(C::ArgsPost),
        "ARGS_NAMES" => Source::ArgsNames,
        "ARGS_GET_NAMES" => Source::Names(C::ArgsGet),
        "ARGS_POST_NAMES" => Source::Names(C::ArgsPost),
        "REQUEST_HEADERS" => Source::Coll(C::Headers),
        "REQUEST_HEADERS_NAMES" => Source::Names(C::Headers),
        "REQUEST_COOKIES" => Source::Coll(C::Cookies),
        "REQUEST_COOKIES_NAMES" => Source::Names(C::Cookies),
        "REQUEST_BODY" => Source::Coll(C::Body),
        "REQUEST_URI" => Source::Coll(C::Uri),
        "REQUEST_URI_RAW" => Source::Coll(C::UriRaw),
        "REQUEST_FILENAME" => Source::Coll(C::Filename),
        "REQUEST_BASENAME" => Source::Coll(C::Basename),
        "REQUEST_LINE" => Source::Coll(C::RequestLine),
        "REQUEST_METHOD" => Source::Coll(C::Method),
        "REQUEST_PROTOCOL" => Source::Coll(C::Protocol),
        "QUERY_STRING" => Source::Coll(C::QueryString),
        "FILES" => Source::Coll(C::Files),
        "FILES_NAMES" => Source::FilesNames,
        "MULTIPART_PART_HEADERS" => Source::Coll(C::MultipartPartHeaders),
        "XML" => Source::Coll(C::Xml),
        "REQBODY_ERROR" => Source::Coll(C::ReqBodyError),
        "REQBODY_PROCESSOR" => Source::Coll(C::ReqBodyProcessor),
        "REQUEST_BODY_LENGTH" => Source::Coll(C::BodyLength),
        "ARGS_COMBINED_SIZE" => Source::Coll(C::ArgsCombinedSize),
        "FILES_SIZES" => Source::Coll(C::FilesSizes),
        "FILES_COMBINED_SIZE" => Source::Coll(C::FilesCombinedSize),
        "INBOUND_DATA_ERROR" => Source::Coll(C::InboundDataError),
        "MULTIPART_STRICT_ERROR" => Source::Coll(C::MultipartStrictError),
        "REMOTE_ADDR" => Source::Coll(C::RemoteAddr),
        "TX" => Source::Tx,
        "MATCHED_VAR" => Source::MatchedVar,
        "MATCHED_VAR_NAME" => Source::MatchedVarName,
        "MATCHED_VARS" => Source::MatchedVars,
        "MATCHED_VARS_NAMES" => Source::MatchedVarsNames,
        "UNIQUE_ID" => Source::UniqueId,
        _ => return None,
    })
}

fn parse_selector(key: &str) -> Result<Selector, String> {
    if key.len() >= 2 && key.starts_with('/') && key.ends_with('/') {
        let re = compile_regex(&format!("(?i){}", &key[1..key.len() - 1]))
            .map_err(|e| format!("selector {key}: {e}"))?;
        return Ok(Selector::Regex(re));
    }
    let key = key.trim_matches('\'');
    if key == "*" || key == "/*" {
        return Ok(Selector::All);
    }
    Ok(Selector::Key(key.to_ascii_lowercase()))
}

/// The XML values an XPath target selects: `//@*` (every attribute) the attribute values
/// (key `@`); `/*` (the document) every extracted value, or with `modsec` (ModSecurity's
/// view) its text and attribute values but not the element and attribute names (key `name`).
fn xpath_selector(key: &str, modsec: bool) -> Selector {
    match key.trim().trim_matches('\'') {
        "//@*" => Selector::Key("@".into()),
        _ if modsec => Selector::Regex(XML_CONTENT.clone()),
        _ => Selector::All,
    }
}

/// The keys of the XML text (`/*`) and attribute (`@`) values.
static XML_CONTENT: std::sync::LazyLock<regex::bytes::Regex> =
    std::sync::LazyLock::new(|| compile_regex(r"^(?:/\*|@)$").expect("a valid regex"));

/// Parse `ARGS:password` (for exclusions and `ctl:ruleRemoveTarget*`).
pub fn parse_target_spec(s: &str) -> Result<crate::config::TargetSpec, String> {
    let (name, key) = match s.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (s, None),
    };
    let source = source_by_name(name.trim()).ok_or_else(|| format!("unknown target {name:?}"))?;
    let selector = match key {
        Some(k) => parse_selector(k.trim())?,
        None => Selector::All,
    };
    Ok(crate::config::TargetSpec { source, selector })
}

/// Split a variable list on `|` outside `/regex/` selectors.
fn split_vars(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_re = false;
    let mut prev = '\0';
    let mut after_colon = false;
    for c in s.chars() {
        // `XML:` keys are XPath expressions (`XML:/*`, `XML://@*`), never `/regex/`.
        let xpath = after_colon && {
            let name = cur.trim_start_matches(['!', '&']).trim();
            name.eq_ignore_ascii_case("XML:")
        };
        if c == '/' && prev != '\\' && (in_re || (after_colon && !xpath)) {
            in_re = !in_re;
        }
        after_colon = c == ':' && !in_re;
        if c == '|' && !in_re {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
        prev = c;
    }
    out.push(cur);
    out.into_iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Parse a variable list into targets; unknown variables are returned as warnings.
fn parse_targets(s: &str, modsec: bool) -> (Vec<Target>, Vec<String>) {
    let mut targets: Vec<Target> = Vec::new();
    let mut warnings = Vec::new();
    let mut exclusions: Vec<(Source, Selector)> = Vec::new();
    for v in split_vars(s) {
        let (neg, count, body) = if let Some(b) = v.strip_prefix('!') {
            (true, false, b)
        } else if let Some(b) = v.strip_prefix('&') {
            (false, true, b)
        } else {
            (false, false, v.as_str())
        };
        let (name, key) = match body.split_once(':') {
            Some((n, k)) => (n, Some(k)),
            None => (body, None),
        };
        let Some(source) = source_by_name(name) else {
            warnings.push(format!("unsupported variable {name}"));
            continue;
        };
        let selector = match key
            .map(|k| match source {
                Source::Coll(Collection::Xml) => Ok(xpath_selector(k, modsec)),
                _ => parse_selector(k),
            })
            .transpose()
        {
            Ok(s) => s.unwrap_or(Selector::All),
            Err(e) => {
                warnings.push(e);
                continue;
            }
        };
        if neg {
            exclusions.push((source, selector));
        } else {
            targets.push(Target {
                source,
                selector,
                count,
                exclude: Vec::new(),
            });
        }
    }
    for (source, sel) in exclusions {
        for t in targets.iter_mut().filter(|t| t.source == source) {
            t.exclude.push(sel.clone());
        }
    }
    (targets, warnings)
}

fn parse_id_range(s: &str) -> Option<(u32, u32)> {
    let s = s.trim();
    match s.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => s.parse().ok().map(|n| (n, n)),
    }
}

impl Loader {
    /// An empty loader. `SecDefaultAction` defaults to `pass` for both phases.
    pub fn new() -> Self {
        Self {
            items: Vec::new(),
            default_actions: Default::default(),
            default_transforms: Default::default(),
            default_disruptive: [Disruptive::Pass; 3],
            state: EngineState::On,
            report: LoadReport::default(),
            removed: Vec::new(),
            removed_tags: Vec::new(),
            modsec: false,
        }
    }

    /// ModSecurity's semantics, as rule sets written for it (the CRS) expect, for the rules
    /// added from now on:
    /// * `@rx` compiles with PCRE's `DOTALL | MULTILINE` (ModSecurity v3's and Coraza's flags):
    ///   `.` matches a newline, `^`/`$` match at line boundaries;
    /// * `XML:/*` is the document's text and attribute values, not element or attribute names;
    ///
    /// and for the engine: `REQUEST_BODY` is empty when a multipart, XML or JSON body processor
    /// parsed the body, unless `ctl:forceRequestBodyVariable=On` (ModSecurity v2's rule, which
    /// the CRS and its regression tests are written for).
    pub fn modsecurity_compat(&mut self, on: bool) {
        self.modsec = on;
    }

    /// Load one file from disk; `@pmFromFile` data files are looked up beside it.
    pub fn add_file(&mut self, path: &Path) -> Result<(), LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path.display().to_string();
        self.report.files.push(name.clone());
        let dir = path.parent().map(Path::to_path_buf);
        self.add_text(&name, &text, dir.as_deref())
    }

    /// Load rules from text. `name` is used in locations; `dir` resolves `@pmFromFile`.
    pub fn add_text(
        &mut self,
        name: &str,
        text: &str,
        dir: Option<&Path>,
    ) -> Result<(), LoadError> {
        let mut pending_chain: Option<(Rule, Vec<Rule>)> = None;
        for (lineno, line) in logical_lines(text) {
            let loc = format!("{name}:{lineno}");
            let w = words(&line).map_err(|message| LoadError::Syntax {
                location: loc.clone(),
                message,
            })?;
            let Some(directive) = w.first() else { continue };
            let d = directive.to_ascii_lowercase();
            match d.as_str() {
                "secrule" | "secaction" => {
                    let (vars, op, actions) = if d == "secrule" {
                        if w.len() < 3 {
                            return Err(LoadError::Syntax {
                                location: loc,
                                message: "SecRule needs variables and an operator".into(),
                            });
                        }
                        (
                            w[1].as_str(),
                            w[2].as_str(),
                            w.get(3).map(String::as_str).unwrap_or(""),
                        )
                    } else {
                        (
                            "",
                            "@unconditionalMatch",
                            w.get(1).map(String::as_str).unwrap_or(""),
                        )
                    };
                    let in_chain = pending_chain.is_some();
                    let rule = self.compile_rule(vars, op, actions, in_chain, dir, &loc);
                    let wants_chain = rule.as_ref().map(|(_, c)| *c).unwrap_or_else(|_| {
                        split_actions(actions).iter().any(|(k, _)| k == "chain")
                    });
                    match (pending_chain.take(), rule) {
                        (None, Ok((r, _))) => {
                            if wants_chain {
                                pending_chain = Some((r, Vec::new()));
                            } else {
                                self.push_rule(r);
                            }
                        }
                        (Some((head, mut links)), Ok((r, _))) => {
                            links.push(r);
                            if wants_chain {
                                pending_chain = Some((head, links));
                            } else {
                                self.push_rule(assemble(head, links));
                            }
                        }
                        (_, Err(reason)) => {
                            // Drop the whole chain; swallow its remaining links.
                            self.report.dropped_rules.push(format!("{loc}: {reason}"));
                            if wants_chain {
                                pending_chain = Some((dropped_marker(), vec![dropped_marker()]));
                            }
                        }
                    }
                }
                "secmarker" => {
                    let m = w.get(1).cloned().unwrap_or_default();
                    self.items.push(Item::Marker(m));
                }
                "secdefaultaction" => {
                    let acts = w.get(1).map(String::as_str).unwrap_or("");
                    let mut a = Actions::default();
                    let mut t = Vec::new();
                    let mut phase = 2u8;
                    let mut disruptive = Disruptive::Pass;
                    let mut warns = Vec::new();
                    let mut skip_chain = false;
                    apply_actions(
                        acts,
                        &mut a,
                        &mut t,
                        &mut phase,
                        &mut skip_chain,
                        &mut warns,
                        &mut 0,
                    );
                    if let Some(d) = a.disruptive {
                        disruptive = d;
                    }
                    if (1..=2).contains(&phase) {
                        let p = usize::from(phase);
                        self.default_disruptive[p] = disruptive;
                        self.default_transforms[p] = t;
                        a.disruptive = None;
                        self.default_actions[p] = a;
                    }
                }
                "secruleengine" => {
                    self.state = match w.get(1).map(|s| s.to_ascii_lowercase()).as_deref() {
                        Some("off") => EngineState::Off,
                        Some("detectiononly") => EngineState::DetectionOnly,
                        _ => EngineState::On,
                    };
                }
                "secruleremovebyid" => {
                    for part in &w[1..] {
                        match parse_id_range(part) {
                            Some(r) => self.removed.push(r),
                            None => self.report.warnings.push(format!("{loc}: bad id {part:?}")),
                        }
                    }
                }
                "secruleremovebytag" => {
                    self.removed_tags.extend(w[1..].iter().cloned());
                }
                "secruleupdatetargetbyid" | "secruleupdatetargetbytag" => {
                    let (Some(sel), Some(vars)) = (w.get(1), w.get(2)) else {
                        self.report
                            .warnings
                            .push(format!("{loc}: {directive} needs two arguments"));
                        continue;
                    };
                    self.update_targets(&d, sel, vars, &loc);
                }
                other if IGNORED_DIRECTIVES.contains(&other) => {
                    self.report
                        .ignored_directives
                        .push(format!("{directive} at {loc}"));
                }
                _ => {
                    tracing::warn!(directive = %directive, location = %loc, "waf: unsupported directive");
                    self.report
                        .unsupported_directives
                        .push(format!("{directive} at {loc}"));
                }
            }
        }
        if let Some((head, links)) = pending_chain {
            if head.id != u32::MAX {
                self.report
                    .dropped_rules
                    .push(format!("{} at {name}: chain never ends", head.id));
            }
            drop(links);
        }
        Ok(())
    }

    fn update_targets(&mut self, d: &str, sel: &str, vars: &str, loc: &str) {
        let (targets, warns) = parse_targets(vars, self.modsec);
        self.report
            .warnings
            .extend(warns.into_iter().map(|w| format!("{loc}: {w}")));
        let by_id = d == "secruleupdatetargetbyid";
        let range = parse_id_range(sel);
        for item in &mut self.items {
            let Item::Rule(rule) = item else { continue };
            let hit = if by_id {
                range.is_some_and(|(a, b)| (a..=b).contains(&rule.id))
            } else {
                rule.actions.tags.iter().any(|t| t == sel)
            };
            if !hit {
                continue;
            }
            let r = Arc::make_mut(rule);
            for t in &targets {
                // `!ARGS:x` arrives as an exclusion on no target: apply it to the rule's ones.
                let _ = t;
            }
            let (_, neg_only) = parse_targets(vars, self.modsec);
            let _ = neg_only;
            for v in split_vars(vars) {
                if let Some(ex) = v.strip_prefix('!') {
                    if let Ok(spec) = parse_target_spec(ex) {
                        for t in r.targets.iter_mut().filter(|t| {
                            t.source == spec.source
                                || (t.source == Source::Args
                                    && matches!(
                                        spec.source,
                                        Source::Coll(Collection::ArgsGet | Collection::ArgsPost)
                                    ))
                        }) {
                            t.exclude.push(spec.selector.clone());
                        }
                    }
                }
            }
            for t in &targets {
                r.targets.push(t.clone());
            }
        }
    }

    fn push_rule(&mut self, r: Rule) {
        if r.id == u32::MAX {
            return;
        }
        self.report.rules += 1;
        self.items.push(Item::Rule(Arc::new(r)));
    }

    /// Compile one `SecRule`; returns the rule and whether it has `chain`.
    fn compile_rule(
        &mut self,
        vars: &str,
        op: &str,
        actions: &str,
        in_chain: bool,
        dir: Option<&Path>,
        loc: &str,
    ) -> Result<(Rule, bool), String> {
        let mut a = Actions::default();
        let mut transforms = Vec::new();
        let mut phase = 2u8;
        let mut chain = false;
        let mut warns = Vec::new();
        let mut id = 0u32;
        apply_actions(
            actions,
            &mut a,
            &mut transforms,
            &mut phase,
            &mut chain,
            &mut warns,
            &mut id,
        );
        if !in_chain {
            // Defaults of the phase, then the rule's own actions on top.
            let p = usize::from(phase.clamp(1, 2));
            let mut t = self.default_transforms[p].clone();
            if !actions.to_ascii_lowercase().contains("t:none") {
                t.extend(transforms);
                transforms = t;
            }
            if a.severity.is_none() {
                a.severity = self.default_actions[p].severity;
            }
        }
        if a.paranoia == 0 {
            a.paranoia = 1;
        }
        let label = if id != 0 {
            id.to_string()
        } else {
            "chained rule".into()
        };
        for w in warns {
            self.report.warnings.push(format!("{label} at {loc}: {w}"));
        }
        let (targets, twarn) = parse_targets(vars, self.modsec);
        for w in twarn {
            self.report.warnings.push(format!("{label} at {loc}: {w}"));
        }
        if !vars.is_empty() && targets.is_empty() {
            return Err(format!("{label}: no supported variable in {vars:?}"));
        }
        let op = op.trim();
        let (negate, op) = match op.strip_prefix('!') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, op),
        };
        let (opname, arg) = match op.strip_prefix('@') {
            Some(rest) => match rest.split_once(char::is_whitespace) {
                Some((n, a)) => (n.to_string(), a.trim_start().to_string()),
                None => (rest.to_string(), String::new()),
            },
            None => ("rx".to_string(), op.to_string()),
        };
        let operator = match opname.to_ascii_lowercase().as_str() {
            "pmfromfile" | "pmf" | "ipmatchfromfile" | "ipmatchf" => {
                let mut phrases: Vec<String> = Vec::new();
                for f in arg.split_whitespace() {
                    let p = match dir {
                        Some(d) => d.join(f),
                        None => PathBuf::from(f),
                    };
                    let text = std::fs::read_to_string(&p)
                        .map_err(|e| format!("{label}: cannot read {}: {e}", p.display()))?;
                    phrases.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(str::to_string),
                    );
                }
                if opname.to_ascii_lowercase().starts_with("ip") {
                    Operator::parse("ipMatch", &phrases.join(","))
                } else {
                    phrase_set(phrases.iter())
                }
            }
            "rx" if self.modsec => Operator::parse(&opname, &format!("(?sm){arg}")),
            _ => Operator::parse(&opname, &arg),
        }
        .map_err(|e: OperatorError| format!("{label}: {e}"))?;
        Ok((
            Rule {
                id,
                phase,
                targets,
                transforms,
                op: operator,
                negate,
                actions: a,
                chain: None,
            },
            chain,
        ))
    }

    /// Finish: apply `SecRuleRemoveBy*` and build the engine.
    pub fn finish(mut self, scoring: Scoring) -> Engine {
        let removed = std::mem::take(&mut self.removed);
        let removed_tags = std::mem::take(&mut self.removed_tags);
        self.items.retain(|i| match i {
            Item::Rule(r) => {
                !removed.iter().any(|(a, b)| (*a..=*b).contains(&r.id))
                    && !r.actions.tags.iter().any(|t| removed_tags.contains(t))
            }
            Item::Marker(_) => true,
        });
        self.report.rules = self
            .items
            .iter()
            .filter(|i| matches!(i, Item::Rule(_)))
            .count();
        Engine::new(
            self.items,
            scoring,
            self.default_disruptive,
            self.state,
            self.report,
        )
        .with_parsed_body_hidden(self.modsec)
    }

    /// The report so far.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }
}

fn dropped_marker() -> Rule {
    Rule {
        id: u32::MAX,
        phase: 0,
        targets: Vec::new(),
        transforms: Vec::new(),
        op: Operator::NoMatch,
        negate: false,
        actions: Actions::default(),
        chain: None,
    }
}

fn assemble(mut head: Rule, links: Vec<Rule>) -> Rule {
    if head.id == u32::MAX || links.iter().any(|l| l.id == u32::MAX) {
        return dropped_marker();
    }
    let mut next: Option<Box<Rule>> = None;
    for mut l in links.into_iter().rev() {
        l.chain = next;
        l.phase = head.phase;
        next = Some(Box::new(l));
    }
    head.chain = next;
    head
}

#[allow(clippy::too_many_arguments)]
fn apply_actions(
    s: &str,
    a: &mut Actions,
    transforms: &mut Vec<Transform>,
    phase: &mut u8,
    chain: &mut bool,
    warns: &mut Vec<String>,
    id: &mut u32,
) {
    for (k, v) in split_actions(s) {
        let val = v.clone().unwrap_or_default();
        let unq = val.trim_matches('\'').to_string();
        match k.as_str() {
            "id" => *id = unq.parse().unwrap_or(0),
            "phase" => {
                *phase = match unq.to_ascii_lowercase().as_str() {
                    "request" => 2,
                    "response" => 4,
                    "logging" => 5,
                    n => n.parse().unwrap_or(2),
                }
            }
            "msg" => a.msg = Some(unq),
            "logdata" => a.logdata = Some(unq),
            "severity" => a.severity = Severity::parse(&unq),
            "tag" => {
                if let Some(pl) = unq.strip_prefix("paranoia-level/") {
                    a.paranoia = pl.parse().unwrap_or(1);
                }
                a.tags.push(unq);
            }
            "t" => {
                if unq.eq_ignore_ascii_case("none") {
                    transforms.clear();
                } else {
                    match Transform::from_name(&unq) {
                        Ok(t) => transforms.push(t),
                        Err(n) => warns.push(format!("unsupported transformation {n}")),
                    }
                }
            }
            "chain" => *chain = true,
            "capture" => a.capture = true,
            "multimatch" => a.multi_match = true,
            "nolog" => a.nolog = true,
            "log" => a.nolog = false,
            "pass" => a.disruptive = Some(Disruptive::Pass),
            "block" => a.disruptive = Some(Disruptive::Block),
            "deny" => a.disruptive = Some(Disruptive::Deny),
            "drop" => a.disruptive = Some(Disruptive::Drop),
            "redirect" => a.disruptive = Some(Disruptive::Redirect),
            "allow" => a.disruptive = Some(Disruptive::Allow),
            "skipafter" => a.skip_after = Some(unq),
            "skip" => a.skip = unq.parse().unwrap_or(0),
            "setvar" => match parse_setvar(&unq) {
                Some(sv) => {
                    if !sv.name.to_ascii_lowercase().starts_with("tx.") {
                        warns.push(format!("setvar on a non-tx collection ignored: {unq}"));
                    }
                    a.setvars.push(sv);
                }
                None => warns.push(format!("bad setvar {unq}")),
            },
            "ctl" => match parse_ctl(&unq) {
                Ok(c) => a.ctls.push(c),
                Err(e) => warns.push(e),
            },
            "auditlog"
            | "noauditlog"
            | "status"
            | "rev"
            | "ver"
            | "maturity"
            | "accuracy"
            | "expirevar"
            | "initcol"
            | "setuid"
            | "setsid"
            | "sanitisematched"
            | "sanitiseArg"
            | "sanitisearg"
            | "sanitisematchedbytes"
            | "xmlns"
            | "append"
            | "prepend"
            | "deprecatevar" => {
                if matches!(k.as_str(), "initcol" | "setuid" | "setsid" | "expirevar") {
                    warns.push(format!("persistent collections not supported: {k}"));
                }
            }
            other => warns.push(format!("unsupported action {other}")),
        }
    }
}

fn parse_setvar(s: &str) -> Option<SetVar> {
    let s = s.trim();
    if let Some(name) = s.strip_prefix('!') {
        return Some(SetVar {
            name: name.trim().to_string(),
            op: SetVarOp::Delete,
        });
    }
    let (name, value) = match s.split_once('=') {
        Some((n, v)) => (n.trim(), v),
        None => (s, "1"),
    };
    if name.is_empty() {
        return None;
    }
    let op = if let Some(v) = value.strip_prefix('+') {
        SetVarOp::Add(v.to_string())
    } else if let Some(v) = value.strip_prefix('-') {
        SetVarOp::Sub(v.to_string())
    } else {
        SetVarOp::Set(value.to_string())
    };
    Some(SetVar {
        name: name.to_string(),
        op,
    })
}

fn parse_ctl(s: &str) -> Result<Ctl, String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("bad ctl {s}"))?;
    let k = k.trim().to_ascii_lowercase();
    let v = v.trim();
    Ok(match k.as_str() {
        "ruleremovebyid" => {
            let (a, b) = parse_id_range(v).ok_or_else(|| format!("bad ctl {s}"))?;
            Ctl::RemoveById(a, b)
        }
        "ruleremovebytag" => Ctl::RemoveByTag(v.to_string()),
        "ruleremovetargetbyid" | "ruleremovetargetbytag" => {
            let (sel, target) = v.split_once(';').ok_or_else(|| format!("bad ctl {s}"))?;
            let spec = parse_target_spec(target.trim()).map_err(|e| format!("ctl {s}: {e}"))?;
            if k == "ruleremovetargetbyid" {
                let (a, b) = parse_id_range(sel).ok_or_else(|| format!("bad ctl {s}"))?;
                Ctl::RemoveTargetById(a, b, spec.source, spec.selector)
            } else {
                Ctl::RemoveTargetByTag(sel.trim().to_string(), spec.source, spec.selector)
            }
        }
        "ruleengine" => Ctl::RuleEngine(match v.to_ascii_lowercase().as_str() {
            "off" => EngineState::Off,
            "detectiononly" => EngineState::DetectionOnly,
            _ => EngineState::On,
        }),
        "forcerequestbodyvariable" => Ctl::ForceRequestBody(matches!(
            v.to_ascii_lowercase().as_str(),
            "on" | "true" | "1"
        )),
        "auditengine"
        | "auditlogparts"
        | "requestbodyaccess"
        | "requestbodyprocessor"
        | "debugloglevel"
        | "responsebodyaccess" => Ctl::Ignored,
        _ => return Err(format!("unsupported ctl {k}")),
    })
}

/// The minimal `crs-setup.conf` used when none is found: anomaly scoring, CRS defaults.
const CRS_DEFAULT_SETUP: &str = r#"
SecDefaultAction "phase:1,log,auditlog,pass"
SecDefaultAction "phase:2,log,auditlog,pass"
SecAction "id:900990,phase:1,nolog,pass,t:none,setvar:tx.crs_setup_version=334"
"#;

/// Load the OWASP CRS from `dir`: `crs-setup.conf` (or `crs-setup.conf.example`) if present
/// (in `dir` or `/etc/modsecurity/crs` style layouts it may be passed in `extra`), then
/// `rules/REQUEST-*.conf` (or `dir/REQUEST-*.conf`) in name order, then `extra` files. Without a
/// setup file in `dir`, Debian's `/etc/modsecurity/crs/crs-setup.conf` is used when present,
/// else built-in anomaly-scoring defaults (reported as a warning).
pub fn load_crs(dir: &Path, extra: &[PathBuf]) -> Result<Engine, LoadError> {
    let mut loader = Loader::new();
    loader.modsecurity_compat(true);
    let candidates = [
        dir.join("crs-setup.conf"),
        dir.join("crs-setup.conf.example"),
        // Debian's modsecurity-crs keeps the setup under /etc.
        PathBuf::from("/etc/modsecurity/crs/crs-setup.conf"),
    ];
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => loader.add_file(p)?,
        None => {
            loader.report.warnings.push(format!(
                "no crs-setup.conf found in {}: using built-in anomaly-scoring defaults",
                dir.display()
            ));
            loader.add_text("crs-setup (built-in defaults)", CRS_DEFAULT_SETUP, None)?;
        }
    }
    let rules_dir = if dir.join("rules").is_dir() {
        dir.join("rules")
    } else {
        dir.to_path_buf()
    };
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    let rd = std::fs::read_dir(&rules_dir).map_err(|source| LoadError::Io {
        path: rules_dir.clone(),
        source,
    })?;
    for e in rd.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("REQUEST-") && name.ends_with(".conf") {
            files.insert(p);
        }
    }
    if files.is_empty() {
        return Err(LoadError::Empty(rules_dir));
    }
    for f in &files {
        loader.add_file(f)?;
    }
    for f in extra {
        loader.add_file(f)?;
    }
    let engine = loader.finish(Scoring::Rules);
    tracing::info!(report = %engine.report(), "waf: loaded crs");
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::WafPolicy, engine::Outcome, request::WafRequest};

    fn engine(text: &str, scoring: Scoring) -> Engine {
        let mut l = Loader::new();
        l.add_text("t.conf", text, None).unwrap();
        l.finish(scoring)
    }

    fn get(uri: &str) -> WafRequest {
        WafRequest::build(
            "GET",
            uri.as_bytes(),
            "HTTP/1.1",
            [(&b"host"[..], &b"x"[..])],
            None,
            &Default::default(),
        )
    }

    #[test]
    fn parses_words_actions_vars() {
        assert_eq!(
            words(r#"SecRule ARGS "@rx a\"b\d" "id:1,msg:'x, y'""#).unwrap(),
            vec!["SecRule", "ARGS", r#"@rx a"b\d"#, "id:1,msg:'x, y'"]
        );
        let acts = split_actions("id:1,msg:'a, b',t:none,setvar:'tx.x=+%{tx.y}'");
        assert_eq!(acts[1], ("msg".into(), Some("a, b".into())));
        assert_eq!(acts.len(), 4);
        assert_eq!(
            split_vars("ARGS|!REQUEST_COOKIES:/^(?:a|b)$/|XML:/*"),
            vec!["ARGS", "!REQUEST_COOKIES:/^(?:a|b)$/", "XML:/*"]
        );
        assert_eq!(
            logical_lines("# c\nSecRule A \\\n  B C\n\nSecMarker X\n").len(),
            2
        );
    }

    /// A policy whose own engine has no rules (the tests inspect with the engine they load).
    fn empty_policy() -> WafPolicy {
        WafPolicy::new(Arc::new(Engine::new(
            vec![],
            Scoring::Native,
            [Disruptive::Pass; 3],
            EngineState::On,
            LoadReport::default(),
        )))
    }

    #[test]
    fn crs_style_scoring_chain_skipafter() {
        let e = engine(
            r#"
SecDefaultAction "phase:2,log,auditlog,pass"
SecAction "id:900000,phase:1,nolog,pass,setvar:tx.crit=5"
SecRule TX:PARANOIA_LEVEL "@lt 2" "id:1,phase:2,pass,nolog,skipAfter:END-PL2"
SecRule ARGS "@rx pl2only" "id:2,phase:2,block,setvar:'tx.anomaly_score=+%{tx.crit}'"
SecMarker "END-PL2"
SecRule ARGS:q "@rx (?i)union" "id:3,phase:2,block,capture,t:lowercase,chain,setvar:'tx.anomaly_score=+%{tx.crit}'"
    SecRule TX:0 "@streq union" "setvar:tx.chained=1"
SecRule TX:ANOMALY_SCORE "@ge %{tx.inbound_anomaly_score_threshold}" "id:949110,phase:2,deny,msg:'score %{tx.anomaly_score}'"
"#,
            Scoring::Rules,
        );
        assert!(e.report().dropped_rules.is_empty(), "{}", e.report());
        let policy = empty_policy();
        let v = e.inspect(&get("/?q=UNION"), &policy, None);
        assert_eq!(v.outcome, Outcome::Block);
        assert_eq!(v.blocking_rule, Some(949110));
        assert_eq!(v.score, 5);
        assert_eq!(v.rule_ids(), vec![3, 949110]);
        let v = e.inspect(&get("/?q=pl2only"), &policy, None);
        assert_eq!(v.outcome, Outcome::Pass);
        let v = e.inspect(&get("/?q=pl2only"), &policy.clone().with_paranoia(2), None);
        assert_eq!(v.outcome, Outcome::Block);
    }

    #[test]
    fn chain_link_setvar_is_visible_to_the_next_link() {
        // CRS 920420's shape: the first link stores the content type, the next reads it.
        let e = engine(
            r#"
SecRule ARGS:t "@rx ^(\w+)" "id:30,phase:2,deny,capture,setvar:'tx.ct=|%{tx.1}|',chain"
    SecRule TX:ct "!@within |json| |form|"
"#,
            Scoring::Rules,
        );
        let policy = empty_policy();
        assert_eq!(
            e.inspect(&get("/?t=json"), &policy, None).outcome,
            Outcome::Pass
        );
        let v = e.inspect(&get("/?t=xml"), &policy, None);
        assert_eq!(v.blocking_rule, Some(30), "{v:?}");
    }

    #[test]
    fn ctl_and_remove() {
        let e = engine(
            r#"
SecRule REQUEST_FILENAME "@beginsWith /login" "id:10,phase:1,pass,nolog,ctl:ruleRemoveTargetById=20;ARGS:password"
SecRule ARGS "@rx '" "id:20,phase:2,deny"
SecRule ARGS "@rx zzz" "id:21,phase:2,deny"
SecRuleRemoveById 21
SecRuleUpdateTargetById 20 "!ARGS:comment"
"#,
            Scoring::Rules,
        );
        let policy = WafPolicy::new(Arc::new(e));
        let e = &policy.engine;
        assert_eq!(
            e.inspect(&get("/login?password=a'b"), &policy, None)
                .outcome,
            Outcome::Pass
        );
        assert_eq!(
            e.inspect(&get("/other?password=a'b"), &policy, None)
                .outcome,
            Outcome::Block
        );
        assert_eq!(
            e.inspect(&get("/x?comment=a'b"), &policy, None).outcome,
            Outcome::Pass
        );
        assert_eq!(
            e.inspect(&get("/x?a=zzz"), &policy, None).outcome,
            Outcome::Pass
        );
    }

    fn post(uri: &str, content_type: &str, body: &str) -> WafRequest {
        WafRequest::build(
            "POST",
            uri.as_bytes(),
            "HTTP/1.1",
            [
                (&b"host"[..], &b"x"[..]),
                (&b"content-type"[..], content_type.as_bytes()),
            ],
            Some(body.as_bytes()),
            &Default::default(),
        )
    }

    /// Rules loaded with ModSecurity's semantics ([`Loader::modsecurity_compat`]).
    fn modsec_engine(text: &str) -> Engine {
        let mut l = Loader::new();
        l.modsecurity_compat(true);
        l.add_text("t.conf", text, None).unwrap();
        l.finish(Scoring::Rules)
    }

    #[test]
    fn multi_match_tests_every_transformation_stage() {
        // base64Decode turns "plain" into bytes the pattern cannot match: only the raw stage
        // (tested with multiMatch) does.
        let rule = r#"SecRule ARGS "@rx ^plain$" "id:40,phase:2,deny,t:none,t:base64Decode"#;
        let policy = empty_policy();
        let without = engine(&format!("{rule}\"\n"), Scoring::Rules);
        assert_eq!(
            without.inspect(&get("/?a=plain"), &policy, None).outcome,
            Outcome::Pass
        );
        let with = engine(&format!("{rule},multiMatch\"\n"), Scoring::Rules);
        let v = with.inspect(&get("/?a=plain"), &policy, None);
        assert_eq!(v.blocking_rule, Some(40), "{v:?}");
        // The last stage still counts: "cGxhaW4=" decodes to "plain".
        let v = with.inspect(&get("/?a=cGxhaW4="), &policy, None);
        assert_eq!(v.blocking_rule, Some(40), "{v:?}");
    }

    #[test]
    fn setvar_runs_once_per_matched_value_with_its_captures() {
        // CRS 920450's shape: one TX variable per matched value, named after its capture.
        let e = engine(
            r#"
SecRule ARGS "@rx ^(\w+)$" "id:41,phase:2,pass,nolog,capture,setvar:'tx.seen_%{tx.1}=1',setvar:'tx.n=+1'"
SecRule TX:n "@eq 3" "id:42,phase:2,pass,log"
SecRule TX:seen_first "@eq 1" "id:43,phase:2,deny,chain"
    SecRule TX:seen_third "@eq 1"
"#,
            Scoring::Rules,
        );
        let policy = empty_policy();
        let v = e.inspect(&get("/?a=first&b=second&c=third"), &policy, None);
        assert_eq!(v.rule_ids(), vec![42, 43], "{v:?}");
    }

    #[test]
    fn macros_read_request_collections() {
        // CRS 922100's shape: `%{ARGS.name}` in a setvar.
        let e = engine(
            r#"
SecRule &ARGS:cs "@eq 1" "id:44,phase:2,pass,nolog,setvar:'tx.cs=|%{ARGS.cs}|'"
SecRule TX:cs "!@within |utf-8| |iso-8859-1|" "id:45,phase:2,deny"
"#,
            Scoring::Rules,
        );
        let policy = empty_policy();
        assert_eq!(
            e.inspect(&get("/?cs=utf-8"), &policy, None).outcome,
            Outcome::Pass
        );
        let v = e.inspect(&get("/?cs=utf-7"), &policy, None);
        assert_eq!(v.blocking_rule, Some(45), "{v:?}");
    }

    #[test]
    fn modsecurity_regex_flags_only_in_compat_mode() {
        // DOTALL: `.` crosses the newline; MULTILINE: `^` matches after it.
        let rules = "SecRule ARGS \"@rx ^b.c$\" \"id:46,phase:2,deny\"\n";
        let policy = empty_policy();
        let req = get("/?a=a%0Ab%0Ac");
        assert_eq!(
            engine(rules, Scoring::Rules)
                .inspect(&req, &policy, None)
                .outcome,
            Outcome::Pass
        );
        let v = modsec_engine(rules).inspect(&req, &policy, None);
        assert_eq!(v.blocking_rule, Some(46), "{v:?}");
    }

    #[test]
    fn xml_xpath_targets() {
        // `XML:` keys are XPath, not `/regex/`: the list splits after `XML:/*`.
        assert_eq!(
            split_vars("REQUEST_HEADERS|XML:/*|XML://@*|!REQUEST_HEADERS:/^x/"),
            vec![
                "REQUEST_HEADERS",
                "XML:/*",
                "XML://@*",
                "!REQUEST_HEADERS:/^x/"
            ]
        );
        let rules = r#"
SecRule XML://@* "@rx evil" "id:47,phase:2,deny"
SecRule REQUEST_HEADERS:x-none|XML:/* "@rx bad" "id:48,phase:2,deny"
"#;
        let policy = empty_policy();
        let xml = |b: &str| post("/", "application/xml", b);
        for e in [engine(rules, Scoring::Rules), modsec_engine(rules)] {
            // Attribute values only.
            let v = e.inspect(&xml(r#"<a x="evil">ok</a>"#), &policy, None);
            assert_eq!(v.blocking_rule, Some(47), "{v:?}");
            // Text is `XML:/*`, not `XML://@*`.
            assert_eq!(
                e.inspect(&xml("<a>evil</a>"), &policy, None).outcome,
                Outcome::Pass
            );
            // `XML:/*` after another target still reads the document's text.
            let v = e.inspect(&xml("<a>bad</a>"), &policy, None);
            assert_eq!(v.blocking_rule, Some(48), "{v:?}");
        }
        // Element names: part of `XML:/*` natively, not in ModSecurity's view.
        let names = xml("<bad>ok</bad>");
        let v = engine(rules, Scoring::Rules).inspect(&names, &policy, None);
        assert_eq!(v.blocking_rule, Some(48), "{v:?}");
        let v = modsec_engine(rules).inspect(&names, &policy, None);
        assert_eq!(v.outcome, Outcome::Pass, "{v:?}");
    }

    #[test]
    fn request_body_hidden_when_a_processor_parsed_it_in_compat_mode() {
        let rules = r#"SecRule REQUEST_BODY "@rx secret" "id:49,phase:2,deny""#;
        let policy = empty_policy();
        let json = post("/", "application/json", r#"{"a":"secret"}"#);
        let form = post("/", "application/x-www-form-urlencoded", "a=secret");
        // Native: the body is always there.
        let native = engine(rules, Scoring::Rules);
        assert_eq!(native.inspect(&json, &policy, None).blocking_rule, Some(49));
        // ModSecurity v2: not after the JSON processor; still for a form body.
        let e = modsec_engine(rules);
        assert_eq!(e.inspect(&json, &policy, None).outcome, Outcome::Pass);
        assert_eq!(e.inspect(&form, &policy, None).blocking_rule, Some(49));
        // ...unless a rule forces it (CRS 901340's ctl).
        let forced = modsec_engine(&format!(
            "SecAction \"id:50,phase:1,pass,nolog,ctl:forceRequestBodyVariable=On\"\n{rules}"
        ));
        assert_eq!(forced.inspect(&json, &policy, None).blocking_rule, Some(49));
    }

    #[test]
    fn files_combined_size_is_a_variable() {
        let e = engine(
            r#"SecRule FILES_COMBINED_SIZE "@gt 5" "id:51,phase:2,deny""#,
            Scoring::Rules,
        );
        assert!(e.report().dropped_rules.is_empty(), "{}", e.report());
        let policy = empty_policy();
        let upload = |content: &str| {
            post(
                "/",
                "multipart/form-data; boundary=B",
                &format!(
                    "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n{content}\r\n--B--\r\n"
                ),
            )
        };
        assert_eq!(
            e.inspect(&upload("1234"), &policy, None).outcome,
            Outcome::Pass
        );
        assert_eq!(
            e.inspect(&upload("123456"), &policy, None).blocking_rule,
            Some(51)
        );
    }

    #[test]
    fn reports_unsupported() {
        let mut l = Loader::new();
        l.add_text(
            "t.conf",
            "SecFooBar On\nSecRequestBodyAccess On\nSecRule ARGS \"@rx (?=x)\" \"id:5,deny\"\nSecRule ARGS \"@inspectFile x\" \"id:6,deny\"\nSecRule ARGS|GEO \"@rx x\" \"id:7,deny,t:md5\"\n",
            None,
        )
        .unwrap();
        let r = l.report().clone();
        assert_eq!(r.unsupported_directives, vec!["SecFooBar at t.conf:1"]);
        assert_eq!(r.ignored_directives.len(), 1);
        assert_eq!(r.dropped_rules.len(), 2, "{r}");
        assert!(r.warnings.iter().any(|w| w.contains("GEO")));
        assert!(r.warnings.iter().any(|w| w.contains("md5")));
        let bad = Loader::new().add_text("b.conf", "SecRule ARGS \"@rx x", None);
        assert!(matches!(bad, Err(LoadError::Syntax { .. })));
    }
}
