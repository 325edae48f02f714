//! The rule engine: runs a compiled rule list over a [`WafRequest`] and returns a [`Verdict`].
//!
//! Two scoring modes:
//!
//! * [`Scoring::Native`] (the built-in rule set): rules above the policy's paranoia level do
//!   not run; each matching rule adds its severity's points (critical 5, error 4, warning 3,
//!   notice 2); the request is refused when the total reaches the policy's threshold.
//! * [`Scoring::Rules`] (a loaded OWASP CRS): the rules keep their own score in `tx`
//!   variables and refuse through a disruptive action (CRS's 949110); the engine seeds
//!   `tx.paranoia_level` / `tx.inbound_anomaly_score_threshold` (and the v4 names) from the
//!   policy, runs phase 1 then phase 2 honouring `chain`, `skipAfter` / `SecMarker`, `skip`,
//!   `setvar` with macro expansion and `ctl:ruleRemove*`.

use std::{
    borrow::Cow,
    collections::HashMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    config::{Mode, WafPolicy, source_covers},
    operator::{OpMatch, Operator, parse_num},
    prefilter::{ChainStops, SlotMatcher},
    request::{Collection, Entry, WafRequest},
    rule::{Ctl, Disruptive, EngineState, Item, Rule, Selector, SetVarOp, Severity, Source},
    seclang::LoadReport,
    transform::Transform,
};

/// How a rule set decides to block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoring {
    /// The engine adds severity points and compares with the policy's threshold.
    Native,
    /// The rules score themselves and block with a disruptive action (OWASP CRS).
    Rules,
}

/// A compiled rule set, ready to inspect requests. Cheap to share (`Arc<Engine>`).
#[derive(Debug)]
pub struct Engine {
    items: Vec<Item>,
    scoring: Scoring,
    /// Default disruptive action per phase (`SecDefaultAction`), index 1 and 2.
    default_disruptive: [Disruptive; 3],
    state: EngineState,
    needs_body: [bool; 5],
    report: LoadReport,
    pre: Prefilters,
    /// `REQUEST_BODY` is empty when a multipart, XML or JSON processor parsed the body
    /// (ModSecurity v2's rule, see [`crate::seclang::Loader::modsecurity_compat`]).
    parsed_body_hidden: bool,
}

/// Per-rule literal prefilters (see [`crate::prefilter`]): a rule whose literals are absent
/// from a value is not run on it.
///
/// Every scan uses one automaton over the literals of all prefiltered rules. A rule's chain
/// is reduced, per value, to the part that can change it (see [`crate::prefilter::reduce`]);
/// values scanned once per distinct reduced chain serve every rule whose chain reduces alike.
#[derive(Debug, Default)]
struct Prefilters {
    /// `false` for [`Engine::with_prefilters`]`(false)`: every rule is evaluated on every value.
    on: bool,
    /// Per item index: the rule's (slot, chain index), when it has a prefilter; the slot is
    /// the item index (literal hits are bitsets over items, like candidates).
    by_item: Vec<Option<(u16, u16)>>,
    /// Distinct transformation chains of prefiltered rules.
    chains: Vec<Vec<Transform>>,
    /// Distinct reduced chains ([`crate::prefilter::reduce`]); the empty one first.
    tails: Vec<Vec<Transform>>,
    /// Per chain, per [`crate::prefilter::reduce_start`] (`0..=len`): the index in `tails`.
    tail_of: Vec<Vec<u16>>,
    /// Per chain: [`crate::prefilter::reduce_start`], precomputed.
    stops: Vec<ChainStops>,
    /// Per [`crate::transform::features`] bit: the chains (bit per index) with a
    /// transformation that bit can make change a value. A value having none of a chain's
    /// bits is scanned raw for that chain (it reduces to nothing).
    chains_by_bit: [u64; 32],
    /// The literals of every prefiltered rule.
    global: Option<SlotMatcher>,
    /// `u64` words per bitset over items.
    words: usize,
    /// The candidate-rule index (see [`Candidates`]).
    cand: Candidates,
    /// Per item index: the chain links (depth from the head, 1 = the second link) that need
    /// a request value for the chain to complete (see [`chain_gates`]); empty for most.
    gates: Vec<Vec<u8>>,
}

/// Which rules can match a request at all, from the values it has: the per-request candidate
/// list. Bitsets are over item indexes (`u64` words of `words`).
///
/// A rule is a candidate when its first link may match: one of its targets selects a value
/// the request has and, for a prefiltered rule's value targets, the value holds one of the
/// rule's literals. A rule that is not a candidate cannot match and, since a first link
/// that matches nothing has no effect (no `setvar`, capture or `MATCHED_VAR` change), is not
/// evaluated. Targets the index cannot decide (`&` counts, `TX`, `MATCHED_VAR*`,
/// `REMOTE_ADDR`, `UNIQUE_ID`) and rules without targets make a rule a candidate always.
/// The index over-approximates: key regexes and `!` exclusions are ignored (the rule is then
/// a candidate and its evaluation selects the values as before).
#[derive(Debug, Default)]
struct Candidates {
    /// Rules that are candidates for every request.
    always: Vec<u64>,
    /// Per collection: rules that run when a selected value is present.
    presence: Vec<KeyIndex>,
    /// Per collection: prefiltered rules that run when a selected value holds a literal.
    literal: Vec<KeyIndex>,
    /// Per collection: prefiltered rules that run when a selected key (`..._NAMES`) holds
    /// a literal.
    literal_names: Vec<KeyIndex>,
    /// The three above merged per collection, for one key comparison per value.
    merged: Vec<Merged>,
    /// `SecMarker`s: (item index, name), in order.
    markers: Vec<(usize, String)>,
}

/// One collection's presence, literal and name-literal rules: bitsets of `3 * words`
/// (presence, literal, names) for every value and per key, with the literal and name chains.
#[derive(Debug, Default, Clone)]
struct Merged {
    all: Group,
    keys: Vec<(String, Group)>,
    empty: bool,
}

#[derive(Debug, Default, Clone)]
struct Group {
    bits: Vec<u64>,
    literal_chains: u64,
    name_chains: u64,
}

impl Merged {
    fn build(words: usize, p: &KeyIndex, l: &KeyIndex, n: &KeyIndex) -> Self {
        let group =
            |pb: Option<&Vec<u64>>, lb: Option<(&Vec<u64>, u64)>, nb: Option<(&Vec<u64>, u64)>| {
                let mut bits = vec![0u64; 3 * words];
                if let Some(b) = pb {
                    bits[..words].copy_from_slice(b);
                }
                let mut g = Group {
                    bits,
                    literal_chains: 0,
                    name_chains: 0,
                };
                if let Some((b, c)) = lb {
                    g.bits[words..2 * words].copy_from_slice(b);
                    g.literal_chains = c;
                }
                if let Some((b, c)) = nb {
                    g.bits[2 * words..].copy_from_slice(b);
                    g.name_chains = c;
                }
                g
            };
        fn key<'a>(ix: &'a KeyIndex, k: &str) -> Option<(&'a Vec<u64>, u64)> {
            ix.keys
                .iter()
                .find(|(x, _, _)| x == k)
                .map(|(_, b, c)| (b, *c))
        }
        let mut names: Vec<&String> = Vec::new();
        for ix in [p, l, n] {
            for (k, _, _) in &ix.keys {
                if !names.contains(&k) {
                    names.push(k);
                }
            }
        }
        Self {
            all: group(
                Some(&p.all),
                Some((&l.all, l.all_chains)),
                Some((&n.all, n.all_chains)),
            ),
            keys: names
                .into_iter()
                .map(|k| {
                    (
                        k.clone(),
                        group(key(p, k).map(|(b, _)| b), key(l, k), key(n, k)),
                    )
                })
                .collect(),
            empty: p.empty && l.empty && n.empty,
        }
    }
}

/// Rules selecting values of one collection: every value, or one key.
#[derive(Debug, Default, Clone)]
struct KeyIndex {
    all: Vec<u64>,
    /// The prefilter chains (bit per chain index) of the rules in `all`.
    all_chains: u64,
    /// (lowercase key, rules, their chains), compared ASCII case-insensitively as
    /// [`Selector::Key`] does.
    keys: Vec<(String, Vec<u64>, u64)>,
    /// Nothing is indexed here.
    empty: bool,
}

impl KeyIndex {
    fn new(words: usize) -> Self {
        Self {
            all: vec![0; words],
            all_chains: 0,
            keys: Vec::new(),
            empty: true,
        }
    }

    /// Index rule `idx` (prefilter chain `chain`, if any) under a selector.
    fn add(&mut self, sel: &Selector, idx: usize, chain: Option<u16>) {
        self.empty = false;
        let words = self.all.len();
        let (bits, chains) = match sel {
            Selector::Key(k) => {
                let k = k.to_ascii_lowercase();
                let at = match self.keys.iter().position(|(x, _, _)| *x == k) {
                    Some(at) => at,
                    None => {
                        self.keys.push((k, vec![0; words], 0));
                        self.keys.len() - 1
                    }
                };
                let (_, bits, chains) = &mut self.keys[at];
                (bits, chains)
            }
            // A key regex selects some keys: counted as selecting all of them.
            Selector::All | Selector::Regex(_) => (&mut self.all, &mut self.all_chains),
        };
        bits[idx / 64] |= 1 << (idx % 64);
        if let Some(c) = chain {
            *chains |= 1 << c;
        }
    }
}

impl Candidates {
    fn build(items: &[Item], by_item: &[Option<(u16, u16)>]) -> Self {
        let words = items.len().div_ceil(64).max(1);
        let mut c = Self {
            always: vec![0; words],
            presence: vec![KeyIndex::new(words); COLLECTIONS],
            literal: vec![KeyIndex::new(words); COLLECTIONS],
            literal_names: vec![KeyIndex::new(words); COLLECTIONS],
            merged: Vec::new(),
            markers: Vec::new(),
        };
        for (idx, item) in items.iter().enumerate() {
            let r = match item {
                Item::Rule(r) => r,
                Item::Marker(m) => {
                    c.markers.push((idx, m.clone()));
                    continue;
                }
            };
            let chain = by_item.get(idx).copied().flatten().map(|(_, c)| c);
            let mut always = r.targets.is_empty();
            for t in &r.targets {
                use Collection::{ArgsGet, ArgsPost, Files};
                // (collections, names or values)
                let (colls, names) = match t.source {
                    // A count that matches 0 matches a request without the values; one that
                    // does not needs a selected value (indexed as the values are).
                    _ if t.count && counts_zero(r) => {
                        always = true;
                        continue;
                    }
                    Source::Coll(coll) if t.count && coll != Collection::RemoteAddr => {
                        c.presence[coll as usize].add(&t.selector, idx, None);
                        continue;
                    }
                    Source::Args | Source::ArgsNames if t.count => {
                        c.presence[Collection::ArgsGet as usize].add(&t.selector, idx, None);
                        c.presence[Collection::ArgsPost as usize].add(&t.selector, idx, None);
                        continue;
                    }
                    _ if t.count => {
                        always = true;
                        continue;
                    }
                    Source::Coll(Collection::RemoteAddr) => {
                        always = true;
                        continue;
                    }
                    Source::Coll(coll) => ([Some(coll), None], false),
                    Source::Names(coll) => ([Some(coll), None], true),
                    Source::Args => ([Some(ArgsGet), Some(ArgsPost)], false),
                    Source::ArgsNames => ([Some(ArgsGet), Some(ArgsPost)], true),
                    Source::FilesNames => ([Some(Files), None], true),
                    Source::Tx
                    | Source::MatchedVar
                    | Source::MatchedVarName
                    | Source::MatchedVars
                    | Source::MatchedVarsNames
                    | Source::UniqueId => {
                        always = true;
                        continue;
                    }
                };
                let index = match (chain, names) {
                    (None, _) => &mut c.presence,
                    (Some(_), false) => &mut c.literal,
                    (Some(_), true) => &mut c.literal_names,
                };
                for coll in colls.into_iter().flatten() {
                    index[coll as usize].add(&t.selector, idx, chain);
                }
            }
            if always {
                c.always[idx / 64] |= 1 << (idx % 64);
            }
        }
        c.merged = (0..COLLECTIONS)
            .map(|i| Merged::build(words, &c.presence[i], &c.literal[i], &c.literal_names[i]))
            .collect();
        c
    }

    /// The first marker named `name` at item index `from` or later.
    fn marker_at_or_after(&self, from: usize, name: &str) -> Option<usize> {
        self.markers
            .iter()
            .find(|(i, m)| *i >= from && m == name)
            .map(|(i, _)| *i)
    }
}

/// Does the rule's operator match a count of 0 (`&X @eq 0`)? `true` when unknown.
fn counts_zero(r: &Rule) -> bool {
    match &r.op {
        Operator::Dynamic(..) => true,
        op => op.is_match(b"0") != r.negate,
    }
}

/// The first set bit at index `from` or later.
fn next_bit(bits: &[u64], from: usize) -> Option<usize> {
    let mut w = from / 64;
    let mut cur = bits.get(w)? & (u64::MAX << (from % 64));
    loop {
        if cur != 0 {
            return Some(w * 64 + cur.trailing_zeros() as usize);
        }
        w += 1;
        cur = *bits.get(w)?;
    }
}

impl Prefilters {
    fn build(items: &[Item]) -> Self {
        let mut by_item = Vec::with_capacity(items.len());
        let mut chains: Vec<Vec<Transform>> = Vec::new();
        let mut lits: Vec<(u16, Vec<Vec<u8>>)> = Vec::new();
        for (idx, item) in items.iter().enumerate() {
            let mut entry = None;
            if let (Item::Rule(r), Ok(slot)) = (item, u16::try_from(idx)) {
                if !r.targets.is_empty()
                    && !r.negate
                    && !r.actions.multi_match
                    && r.targets.iter().any(|t| !t.count)
                {
                    if let Some(set) = r.op.required_literals() {
                        let c = match chains.iter().position(|c| *c == r.transforms) {
                            Some(c) => Some(c),
                            None if chains.len() < 64 => {
                                chains.push(r.transforms.clone());
                                Some(chains.len() - 1)
                            }
                            None => None,
                        };
                        if let Some(c) = c.and_then(|c| u16::try_from(c).ok()) {
                            lits.push((slot, set));
                            entry = Some((slot, c));
                        }
                    }
                }
            }
            by_item.push(entry);
        }
        let all: Vec<(u16, &[Vec<u8>])> = lits.iter().map(|(s, l)| (*s, l.as_slice())).collect();
        let global = SlotMatcher::build(&all);
        if global.is_none() {
            // No automaton (no literal, or it could not be built): no rule is prefiltered.
            by_item.iter_mut().for_each(|e| *e = None);
        }
        let cand = Candidates::build(items, &by_item);
        let mut tails: Vec<Vec<Transform>> = vec![Vec::new()];
        let tail_of = chains
            .iter()
            .map(|c| {
                (0..=c.len())
                    .map(|start| {
                        let t = crate::prefilter::reduce_tail(c, start);
                        let at = match tails.iter().position(|x| *x == t) {
                            Some(at) => at,
                            None => {
                                tails.push(t);
                                tails.len() - 1
                            }
                        };
                        u16::try_from(at).unwrap_or(u16::MAX)
                    })
                    .collect()
            })
            .collect();
        let mut chains_by_bit = [0u64; 32];
        for (c, chain) in chains.iter().enumerate() {
            let mask = chain.iter().fold(0u32, |m, t| m | t.noop_mask());
            for (b, by_bit) in chains_by_bit.iter_mut().enumerate() {
                if mask & (1 << b) != 0 {
                    *by_bit |= 1 << c;
                }
            }
        }
        Self {
            on: true,
            by_item,
            chains_by_bit,
            stops: chains.iter().map(|c| ChainStops::new(c)).collect(),
            chains,
            tails,
            tail_of,
            global,
            words: items.len().div_ceil(64).max(1),
            cand,
            gates: chain_gates(items),
        }
    }
}

/// Can a rule see the `MATCHED_VAR*` another rule left? A link reads it through a target or
/// a macro (message, `setvar`, operator argument). A chain whose every link has value
/// targets only (no count, not target-less) sets `MATCHED_VAR` in each link that matches,
/// before its own reads (the head's message and `setvar`s are expanded after the head's
/// match); so only a head reading it as a target or in its operator argument, or a read in
/// a chain with a count or target-less link, can see another rule's value. When none can,
/// a chain that is not evaluated changes nothing that later rules read.
fn reads_matched_across(items: &[Item]) -> bool {
    let has = |s: &str| s.to_ascii_lowercase().contains("matched_var");
    let target_reads = |r: &Rule| {
        r.targets.iter().any(|t| {
            matches!(
                t.source,
                Source::MatchedVar
                    | Source::MatchedVarName
                    | Source::MatchedVars
                    | Source::MatchedVarsNames
            )
        })
    };
    let op_reads = |r: &Rule| matches!(&r.op, Operator::Dynamic(_, arg) if has(arg));
    let reads = |r: &Rule| {
        target_reads(r)
            || op_reads(r)
            || r.actions.msg.as_deref().is_some_and(has)
            || r.actions.logdata.as_deref().is_some_and(has)
            || r.actions.setvars.iter().any(|sv| {
                has(&sv.name)
                    || matches!(&sv.op, SetVarOp::Set(v) | SetVarOp::Add(v) | SetVarOp::Sub(v) if has(v))
            })
    };
    items.iter().any(|item| {
        let Item::Rule(head) = item else {
            return false;
        };
        if target_reads(head) || op_reads(head) {
            return true;
        }
        let mut all_values = true;
        let mut any_reads = false;
        let mut link = Some(&**head);
        while let Some(r) = link {
            all_values &= !r.targets.is_empty() && r.targets.iter().all(|t| !t.count);
            any_reads |= reads(r);
            link = r.chain.as_deref();
        }
        any_reads && !all_values
    })
}

/// Can a link only match on a value the request has (every target a request collection,
/// its values or names, or a count of them that has to be more than 0)? Then a request
/// without a value it selects makes the link, and so the chain, fail.
fn needs_a_value(r: &Rule) -> bool {
    !r.targets.is_empty()
        && r.targets.iter().all(|t| {
            // A count of no values is 0: it fails unless the operator matches 0.
            (!t.count || !counts_zero(r))
                && match t.source {
                    Source::Coll(c) => c != Collection::RemoteAddr,
                    Source::Args | Source::ArgsNames | Source::FilesNames => true,
                    Source::Names(c) => matches!(
                        c,
                        Collection::ArgsGet
                            | Collection::ArgsPost
                            | Collection::Cookies
                            | Collection::Headers
                            | Collection::Files
                            | Collection::MultipartPartHeaders
                    ),
                    _ => false,
                }
        })
}

/// Per item: the depths of the chain links that gate it ([`Prefilters::gates`]). A chain
/// whose gating link selects no value of the request cannot complete; its links before
/// that one are then not evaluated at all. That is exact only when those links' matches
/// leave no trace: no `setvar`, `ctl` or `capture` on them, and no rule reading
/// `MATCHED_VAR*` anywhere (their match records are dropped with the failed chain).
fn chain_gates(items: &[Item]) -> Vec<Vec<u8>> {
    if reads_matched_across(items) {
        return vec![Vec::new(); items.len()];
    }
    items
        .iter()
        .map(|item| {
            let Item::Rule(head) = item else {
                return Vec::new();
            };
            let mut gates = Vec::new();
            let mut prev: &Rule = head;
            let mut depth = 1u8;
            while let Some(link) = prev.chain.as_deref() {
                let quiet = prev.actions.setvars.is_empty()
                    && prev.actions.ctls.is_empty()
                    && !prev.actions.capture;
                if !quiet || depth == u8::MAX {
                    break;
                }
                if needs_a_value(link) {
                    gates.push(depth);
                }
                prev = link;
                depth += 1;
            }
            gates
        })
        .collect()
}

/// The outcome of an inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing reached the threshold.
    Pass,
    /// Refused (block mode).
    Block,
    /// Would have been refused, but the policy is in detect mode.
    Detect,
}

impl Outcome {
    /// `pass`, `block` or `detect` (the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Block => "block",
            Outcome::Detect => "detect",
        }
    }
}

/// One matched rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// The rule id.
    pub rule_id: u32,
    /// The target that matched, `ARGS:q` style.
    pub target: String,
    /// The matched (transformed) value, truncated to 64 bytes, printable, secrets redacted.
    pub excerpt: String,
    /// The rule's message.
    pub msg: Option<String>,
    /// The rule's severity.
    pub severity: Option<Severity>,
    /// Points added (native scoring).
    pub score: u32,
}

/// The result of [`Engine::inspect`].
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Pass, block or detect.
    pub outcome: Outcome,
    /// The inbound anomaly score.
    pub score: u32,
    /// Every matched rule, in evaluation order.
    pub matches: Vec<RuleMatch>,
    /// The rule that refused the request (rule-driven scoring), if any.
    pub blocking_rule: Option<u32>,
    /// Time spent in the rules.
    pub elapsed: Duration,
}

impl Verdict {
    /// A verdict with no match.
    pub fn pass() -> Self {
        Self {
            outcome: Outcome::Pass,
            score: 0,
            matches: Vec::new(),
            blocking_rule: None,
            elapsed: Duration::ZERO,
        }
    }

    /// Matched rule ids, deduplicated, in order.
    pub fn rule_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = Vec::new();
        for m in &self.matches {
            if !ids.contains(&m.rule_id) {
                ids.push(m.rule_id);
            }
        }
        ids
    }
}

impl Engine {
    /// Build from a rule list.
    pub fn new(
        items: Vec<Item>,
        scoring: Scoring,
        default_disruptive: [Disruptive; 3],
        state: EngineState,
        report: LoadReport,
    ) -> Self {
        let mut needs_body = [false; 5];
        for item in &items {
            if let Item::Rule(r) = item {
                if r.needs_body() {
                    let from = match scoring {
                        Scoring::Native => usize::from(r.actions.paranoia.clamp(1, 4)),
                        Scoring::Rules => 1,
                    };
                    for nb in needs_body.iter_mut().skip(from) {
                        *nb = true;
                    }
                }
            }
        }
        let pre = Prefilters::build(&items);
        Self {
            items,
            scoring,
            default_disruptive,
            state,
            needs_body,
            report,
            pre,
            parsed_body_hidden: false,
        }
    }

    /// With `true`, `REQUEST_BODY` is empty when a multipart, XML or JSON body processor
    /// parsed the body, unless a rule runs `ctl:forceRequestBodyVariable=On`.
    pub fn with_parsed_body_hidden(mut self, on: bool) -> Self {
        self.parsed_body_hidden = on;
        self
    }

    /// With `false`, every rule is evaluated on every value: no literal prefilter and no
    /// collection-presence skip. Verdicts must not change (the corpus test compares both); this
    /// exists for that test and for measuring what the prefilters save.
    pub fn with_prefilters(mut self, on: bool) -> Self {
        self.pre = if on {
            Prefilters::build(&self.items)
        } else {
            Prefilters::default()
        };
        debug_assert_eq!(self.pre.on, on);
        self
    }

    /// The built-in rule set (embedded), compiled.
    pub fn builtin() -> Result<Self, crate::seclang::LoadError> {
        crate::builtin::engine()
    }

    /// Load the OWASP CRS from a directory (see [`crate::seclang::load_crs`]).
    pub fn crs(dir: &std::path::Path) -> Result<Self, crate::seclang::LoadError> {
        crate::seclang::load_crs(dir, &[])
    }

    /// Does any rule that runs at this paranoia level read the body?
    pub fn needs_body(&self, paranoia: u8) -> bool {
        self.needs_body[usize::from(paranoia.clamp(1, 4))]
    }

    /// What the loader accepted, ignored and refused.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// The scoring mode.
    pub fn scoring(&self) -> Scoring {
        self.scoring
    }

    /// Number of rules (chains count once).
    pub fn rule_count(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i, Item::Rule(_)))
            .count()
    }

    /// Every rule id with its message (for the bounded metric label set).
    pub fn rule_ids(&self) -> Vec<u32> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Rule(r) if r.id != 0 => Some(r.id),
                _ => None,
            })
            .collect()
    }

    /// Each rule's literal prefilter, one line per rule: id, quality and the first literals,
    /// or `-` when the rule always runs (a tuning aid; see [`crate::prefilter`]).
    pub fn prefilter_report(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            if let Item::Rule(r) = item {
                let line = match r.op.required_literals() {
                    Some(set) if !r.negate => {
                        let shown: Vec<String> = set
                            .iter()
                            .take(12)
                            .map(|l| format!("{:?}", String::from_utf8_lossy(l)))
                            .collect();
                        format!(
                            "{}\tq={}\tn={}\t{}\n",
                            r.id,
                            crate::prefilter::quality(&set),
                            set.len(),
                            shown.join(" ")
                        )
                    }
                    _ => format!("{}\t-\t{:?}\n", r.id, r.op),
                };
                out.push_str(&line);
            }
        }
        out
    }

    /// Time each rule alone on a request (for tuning; slowest first).
    pub fn rule_timings(&self, req: &WafRequest, policy: &WafPolicy) -> Vec<(u32, Duration)> {
        let mut out = Vec::new();
        for (idx, item) in self.items.iter().enumerate() {
            if let Item::Rule(rule) = item {
                if rule.actions.paranoia > policy.paranoia {
                    continue;
                }
                let mut txn = Txn::new(req, &self.pre, policy, None);
                // Literal passes done once (as a whole inspection shares them), then timed.
                txn.cur_pre = self.pre.by_item.get(idx).copied().flatten();
                let _ = txn.eval_chain(rule);
                let mut best = Duration::MAX;
                for _ in 0..20 {
                    let t = Instant::now();
                    let _ = txn.eval_chain(rule);
                    best = best.min(t.elapsed());
                }
                out.push((rule.id, best));
            }
        }
        out.sort_by_key(|x| std::cmp::Reverse(x.1));
        out
    }

    /// Inspect a request under a policy.
    pub fn inspect(&self, req: &WafRequest, policy: &WafPolicy, client: Option<IpAddr>) -> Verdict {
        let start = Instant::now();
        let mut txn = Txn::new(req, &self.pre, policy, client);
        txn.body_hidden = self.parsed_body_hidden
            && matches!(
                req.first(Collection::ReqBodyProcessor),
                Some(b"MULTIPART" | b"XML" | b"JSON")
            );
        // Client-wide exclusions: a matching exclusion with neither ids nor target turns the
        // WAF off; with ids it removes rules for this client.
        for ex in &policy.exclusions {
            let applies = ex.clients.is_empty()
                || client.is_some_and(|ip| ex.clients.iter().any(|n| n.contains(&ip)));
            if !applies {
                continue;
            }
            match (&ex.target, ex.rule_ids.is_empty()) {
                (None, true) => {
                    if !ex.clients.is_empty() {
                        let mut v = Verdict::pass();
                        v.elapsed = start.elapsed();
                        return v;
                    }
                }
                (None, false) => txn
                    .removed
                    .extend(ex.rule_ids.iter().map(|r| (r.from, r.to))),
                (Some(t), _) => {
                    let ranges = if ex.rule_ids.is_empty() {
                        vec![(0, u32::MAX)]
                    } else {
                        ex.rule_ids.iter().map(|r| (r.from, r.to)).collect()
                    };
                    for (a, b) in ranges {
                        txn.removed_targets
                            .push((a, b, t.source, t.selector.clone()));
                    }
                }
            }
        }
        if self.state == EngineState::Off {
            let mut v = Verdict::pass();
            v.elapsed = start.elapsed();
            return v;
        }
        if self.scoring == Scoring::Rules {
            let pl = policy.paranoia.to_string();
            for k in [
                "paranoia_level",
                "executing_paranoia_level",
                "detection_paranoia_level",
                "blocking_paranoia_level",
            ] {
                txn.tx.insert(k.to_string(), pl.clone());
            }
            txn.tx.insert(
                "inbound_anomaly_score_threshold".to_string(),
                policy.threshold.to_string(),
            );
        }
        let mut blocking_rule = None;
        if self.pre.on {
            self.run_candidates(&mut txn, policy, &mut blocking_rule);
        } else {
            self.run_all(&mut txn, policy, &mut blocking_rule);
        }
        let (score, would_block) = match self.scoring {
            Scoring::Native => (txn.score, txn.score >= policy.threshold),
            Scoring::Rules => {
                let s = [
                    "blocking_inbound_anomaly_score",
                    "anomaly_score",
                    "inbound_anomaly_score",
                ]
                .iter()
                .filter_map(|k| txn.tx.get(*k))
                .map(|v| parse_num(v))
                .max()
                .unwrap_or(0);
                (
                    u32::try_from(s.max(0)).unwrap_or(u32::MAX),
                    blocking_rule.is_some(),
                )
            }
        };
        let outcome = if !would_block {
            Outcome::Pass
        } else if policy.mode == Mode::Detect || txn.state == EngineState::DetectionOnly {
            Outcome::Detect
        } else {
            Outcome::Block
        };
        Verdict {
            outcome,
            score,
            matches: std::mem::take(&mut txn.matches),
            blocking_rule,
            elapsed: start.elapsed(),
        }
    }
}

impl Engine {
    /// Every rule in order, each evaluated (prefilters off: the reference the candidate list
    /// is tested against).
    fn run_all<'r>(
        &'r self,
        txn: &mut Txn<'r>,
        policy: &WafPolicy,
        blocking_rule: &mut Option<u32>,
    ) {
        for phase in 1..=2u8 {
            let mut skip_to: Option<&str> = None;
            let mut skip_n = 0u32;
            for (idx, item) in self.items.iter().enumerate() {
                let rule = match item {
                    Item::Marker(m) => {
                        if skip_to == Some(m.as_str()) {
                            skip_to = None;
                        }
                        continue;
                    }
                    Item::Rule(r) => r,
                };
                if rule.phase != phase || skip_to.is_some() {
                    continue;
                }
                if skip_n > 0 {
                    skip_n -= 1;
                    continue;
                }
                match self.run_rule(txn, policy, idx, rule, phase, blocking_rule) {
                    Step::Next => {}
                    Step::Skip(to, n) => {
                        skip_to = to;
                        skip_n = n;
                    }
                    Step::Stop => return,
                }
            }
        }
    }

    /// The candidate rules only (see [`Candidates`]), in order, with the same phases,
    /// `skipAfter` / `SecMarker` and `skip` handling as [`Engine::run_all`]: markers are found
    /// by position, `skip:N` counts every rule of the phase, candidate or not.
    fn run_candidates<'r>(
        &'r self,
        txn: &mut Txn<'r>,
        policy: &WafPolicy,
        blocking_rule: &mut Option<u32>,
    ) {
        let cand = txn.candidates();
        'phases: for phase in 1..=2u8 {
            let mut skip_to: Option<&str> = None;
            let mut skip_n = 0u32;
            let mut pos = 0usize;
            loop {
                if let Some(m) = skip_to.take() {
                    match self.pre.cand.marker_at_or_after(pos, m) {
                        Some(at) => pos = at + 1,
                        None => break,
                    }
                }
                while skip_n > 0 && pos < self.items.len() {
                    if matches!(&self.items[pos], Item::Rule(r) if r.phase == phase) {
                        skip_n -= 1;
                    }
                    pos += 1;
                }
                let Some(idx) = next_bit(&cand, pos) else {
                    break;
                };
                pos = idx + 1;
                let Some(Item::Rule(rule)) = self.items.get(idx) else {
                    continue;
                };
                if rule.phase != phase {
                    continue;
                }
                match self.run_rule(txn, policy, idx, rule, phase, blocking_rule) {
                    Step::Next => {}
                    Step::Skip(to, n) => {
                        skip_to = to;
                        skip_n = n;
                    }
                    Step::Stop => break 'phases,
                }
            }
        }
        txn.candidates_done(cand);
    }

    /// Evaluate one rule (phase and skips already decided) and apply its actions on a match.
    fn run_rule<'r>(
        &'r self,
        txn: &mut Txn<'r>,
        policy: &WafPolicy,
        idx: usize,
        rule: &'r Rule,
        phase: u8,
        blocking_rule: &mut Option<u32>,
    ) -> Step<'r> {
        if self.scoring == Scoring::Native && rule.actions.paranoia > policy.paranoia {
            return Step::Next;
        }
        if txn.is_removed(rule) {
            return Step::Next;
        }
        if let Some(gates) = self.pre.gates.get(idx).filter(|g| !g.is_empty()) {
            if !txn.links_have_values(rule, gates) {
                return Step::Next;
            }
        }
        txn.cur_pre = self.pre.by_item.get(idx).copied().flatten();
        if !txn.eval_chain(rule) {
            return Step::Next;
        }
        // Full match: actions of the chain head apply.
        let a = &rule.actions;
        if self.scoring == Scoring::Native {
            let pts = a.severity.map_or(0, Severity::score);
            txn.score += pts;
            if let Some(last) = txn.pending.last_mut() {
                last.score = pts;
            }
        }
        if !a.nolog && rule.id != 0 {
            let pending = std::mem::take(&mut txn.pending);
            txn.matches
                .extend(pending.into_iter().map(|p| p.build(rule)));
        }
        txn.pending.clear();
        if self.scoring == Scoring::Rules {
            let d = match a.disruptive {
                Some(Disruptive::Block) => self.default_disruptive[usize::from(phase)],
                Some(d) => d,
                None => Disruptive::Pass,
            };
            match d {
                Disruptive::Deny | Disruptive::Drop | Disruptive::Redirect => {
                    if txn.state == EngineState::On {
                        *blocking_rule = Some(rule.id);
                        return Step::Stop;
                    }
                }
                Disruptive::Allow => return Step::Stop,
                Disruptive::Pass | Disruptive::Block => {}
            }
        }
        if txn.state == EngineState::Off {
            return Step::Stop;
        }
        Step::Skip(a.skip_after.as_deref(), a.skip)
    }
}

/// What the rule loop does after a rule.
enum Step<'a> {
    /// Go on with the next rule.
    Next,
    /// Matched: skip to after this marker (if any), then skip this many rules of the phase.
    Skip(Option<&'a str>, u32),
    /// Stop inspecting (a disruptive action, `allow`, or the rule engine turned off).
    Stop,
}

/// The name `..._NAMES` inspects for an entry: its key, except that JSON leaves (keyed
/// `json.a.b`) are named without the `json.` root (as libmodsecurity names them), so an
/// attack in a top-level key is at the start of the name.
fn name_bytes<'a>(e: &Entry<'a>) -> &'a [u8] {
    match e.key.strip_prefix("json.") {
        Some(k) if e.coll == Collection::ArgsPost => k.as_bytes(),
        _ => e.key.as_bytes(),
    }
}

struct Val<'r> {
    coll: Option<Collection>,
    key: Cow<'r, str>,
    /// Collection name for display (`ARGS`); the key is appended when not empty.
    name: &'static str,
    bytes: Cow<'r, [u8]>,
    /// The scan slot of a request value (`i` for entry `i`'s value, `n + i` for its name):
    /// indexes the prefilter hits, the features and the transformation cache.
    entry: Option<usize>,
}

/// A transformed value: the raw bytes when no transformation changed them.
#[derive(Clone)]
enum Tv<'r> {
    Raw(&'r [u8]),
    Shared(Arc<Vec<u8>>),
}

impl std::ops::Deref for Tv<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Tv::Raw(r) => r,
            Tv::Shared(s) => s.as_slice(),
        }
    }
}

/// `NAME:key`, `NAME` or `key`.
fn display(name: &str, key: &str) -> String {
    match (name.is_empty(), key.is_empty()) {
        (_, true) => name.to_string(),
        (true, false) => key.to_string(),
        (false, false) => format!("{name}:{key}"),
    }
}

/// A matched value (`MATCHED_VAR*`), kept as its name parts and transformed bytes.
#[derive(Clone)]
struct Matched<'r> {
    name: &'static str,
    key: Cow<'r, str>,
    tv: Tv<'r>,
}

impl<'r> Matched<'r> {
    /// `NAME:key` (`MATCHED_VAR_NAME`).
    fn display(&self) -> String {
        display(self.name, &self.key)
    }

    fn bytes(&self) -> Cow<'r, [u8]> {
        match &self.tv {
            Tv::Raw(r) => Cow::Borrowed(r),
            Tv::Shared(s) => Cow::Owned(s.to_vec()),
        }
    }
}

/// What a match record shows of the value.
enum Shown<'r> {
    Tv(Tv<'r>),
    Bytes(Vec<u8>),
}

/// A match record of a chain link, kept cheap until the chain completes and is logged.
struct Pending<'r> {
    /// Collection name (`ARGS`, `&ARGS` for a count) and key of the matched value.
    name: Cow<'static, str>,
    key: Cow<'r, str>,
    shown: Shown<'r>,
    detail: Option<String>,
    /// The head's message, expanded when recorded if it has macros (their values change as
    /// the chain goes on); a plain message is copied when the record is built.
    msg: Option<String>,
    score: u32,
}

impl Pending<'_> {
    fn build(self, head: &Rule) -> RuleMatch {
        let target = display(&self.name, &self.key);
        let shown: &[u8] = match &self.shown {
            Shown::Tv(t) => t,
            Shown::Bytes(b) => b,
        };
        let mut ex = if sensitive(&self.key) || sensitive(&target) {
            "[redacted]".to_string()
        } else {
            excerpt(shown)
        };
        if let Some(d) = self.detail {
            ex = format!("{ex} (fingerprint {d})");
        }
        RuleMatch {
            rule_id: head.id,
            target,
            excerpt: ex,
            msg: self.msg.or_else(|| head.actions.msg.clone()),
            severity: head.actions.severity,
            score: self.score,
        }
    }
}

/// A fast hasher for the per-request transformation cache (keys are already well mixed).
#[derive(Default)]
struct CacheHasher(u64);

impl std::hash::Hasher for CacheHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type CacheMap =
    HashMap<(usize, u64), Option<Arc<Vec<u8>>>, std::hash::BuildHasherDefault<CacheHasher>>;

/// Per scan slot (a request value, or a name: see [`Val::entry`]), in one allocation:
/// its features once computed, the prefilter chains done and reduced chains scanned (bit
/// sets), and its literal hits (a bitset over items).
struct Slots {
    n: usize,
    w: usize,
    /// `[features | 1 << 32 once known; n][done; n][scanned; n][hits; n * w]`.
    data: Vec<u64>,
}

impl Slots {
    /// `n` slots of `w` words each, in `data` (a reused buffer: cleared and zeroed here).
    fn new(n: usize, w: usize, mut data: Vec<u64>) -> Self {
        data.clear();
        data.resize(n * (3 + w), 0);
        Self { n, w, data }
    }

    fn features(&self, at: usize) -> Option<u32> {
        let v = self.data.get(at).copied().unwrap_or(0);
        (v >> 32 != 0).then_some(v as u32)
    }

    fn set_features(&mut self, at: usize, f: u32) {
        if let Some(v) = self.data.get_mut(at) {
            *v = (1 << 32) | u64::from(f);
        }
    }

    fn done(&mut self, at: usize) -> &mut u64 {
        &mut self.data[self.n + at]
    }

    fn scanned(&mut self, at: usize) -> &mut u64 {
        &mut self.data[2 * self.n + at]
    }

    fn bits(&self, at: usize) -> &[u64] {
        let o = 3 * self.n + at * self.w;
        &self.data[o..o + self.w]
    }

    fn bits_mut(&mut self, at: usize) -> &mut [u64] {
        let o = 3 * self.n + at * self.w;
        &mut self.data[o..o + self.w]
    }
}

/// The per-request buffers an inspection needs whatever the request (scan slots, the
/// collection index, the candidate bitsets), kept per thread between inspections: without
/// them each inspection made four allocations, two of them over 1 KiB (which glibc serves
/// only after consolidating its small-chunk bins). Taken out of the thread-local for an
/// inspection and put back when its [`Txn`] is dropped, so a nested inspection on the same
/// thread (none today) would merely allocate its own.
#[derive(Default)]
struct Scratch {
    slots: Vec<u64>,
    order: Vec<u16>,
    cand: Vec<u64>,
    sel: Vec<u64>,
}

/// Buffers larger than this (a request with thousands of values) are freed rather than kept.
const SCRATCH_KEEP_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

impl Scratch {
    fn take() -> Self {
        SCRATCH
            .try_with(|s| s.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)).ok())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn give_back(mut self) {
        fn keep<T>(v: &mut Vec<T>) {
            if v.capacity() * std::mem::size_of::<T>() > SCRATCH_KEEP_BYTES {
                *v = Vec::new();
            }
        }
        keep(&mut self.slots);
        keep(&mut self.order);
        keep(&mut self.cand);
        keep(&mut self.sel);
        let _ = SCRATCH.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                *s = self;
            }
        });
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        Scratch {
            slots: std::mem::take(&mut self.slots.data),
            order: std::mem::take(&mut self.order),
            cand: std::mem::take(&mut self.cand),
            sel: std::mem::take(&mut self.sel),
        }
        .give_back();
    }
}

struct Txn<'r> {
    req: &'r WafRequest,
    /// The request's entries, resolved once (the rule loop reads them many times).
    ents: Vec<Entry<'r>>,
    /// Per scan slot: features, prefilter chains done, tails scanned, literal hits.
    slots: Slots,
    client: Option<IpAddr>,
    tx: HashMap<String, String>,
    /// `MATCHED_VAR` / `MATCHED_VAR_NAME`: the last matched value (none yet: both empty).
    matched_var: Option<Matched<'r>>,
    /// `MATCHED_VARS` of the chain being evaluated.
    matched_vars: Vec<Matched<'r>>,
    removed: Vec<(u32, u32)>,
    removed_tags: Vec<String>,
    removed_targets: Vec<(u32, u32, Source, Selector)>,
    removed_targets_tag: Vec<(String, Source, Selector)>,
    /// (entry index, hash of a transformation-chain prefix) -> value; `None` = unchanged.
    cache: CacheMap,
    state: EngineState,
    score: u32,
    matches: Vec<RuleMatch>,
    /// Match records of the chain being evaluated, built into [`RuleMatch`]es only when the
    /// chain completes and its head logs.
    pending: Vec<Pending<'r>>,
    rule_id: u32,
    pre: &'r Prefilters,
    /// The prefilter (slot, chain) of the rule being evaluated.
    cur_pre: Option<(u16, u16)>,
    /// The link being evaluated ran its setvars for a matched value (they run once per
    /// matched value, as in ModSecurity, each with that value's captures).
    setvars_ran: bool,
    /// `REQUEST_BODY` reads as empty ([`Engine::with_parsed_body_hidden`]).
    body_hidden: bool,
    /// Entry indexes ordered by collection (stable), and per collection its start in `order`.
    order: Vec<u16>,
    starts: [u16; COLLECTIONS + 1],
    /// The candidate bitset ([`Txn::candidates`]) and its per-value selection buffer.
    cand: Vec<u64>,
    sel: Vec<u64>,
}

/// Number of [`Collection`] variants.
const COLLECTIONS: usize = Collection::RemoteAddr as usize + 1;
const _: () = assert!(COLLECTIONS <= 32, "collection bits fit a u32");

const EXCERPT_MAX: usize = 64;

/// Whether a key or target name contains (case-insensitively) a word that marks a secret.
fn sensitive(key: &str) -> bool {
    let k = key.as_bytes();
    (0..k.len()).any(|i| {
        // Dispatch on the first letter: one comparison per offset for most bytes.
        let words: &[&[u8]] = match k[i].to_ascii_lowercase() {
            b'p' => &[b"pass", b"pwd"],
            b's' => &[b"secret", b"session"],
            b't' => &[b"token"],
            b'a' => &[b"auth"],
            b'c' => &[b"cookie", b"csrf", b"card"],
            b'k' => &[b"key"],
            _ => return false,
        };
        let rest = &k[i..];
        words
            .iter()
            .any(|w| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w))
    })
}

/// A printable, truncated excerpt.
pub fn excerpt(v: &[u8]) -> String {
    let mut s = String::new();
    for &c in v.iter().take(EXCERPT_MAX) {
        if (0x20..0x7f).contains(&c) {
            s.push(char::from(c));
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    if v.len() > EXCERPT_MAX {
        s.push_str("...");
    }
    s
}

impl<'r> Txn<'r> {
    fn new(
        req: &'r WafRequest,
        pre: &'r Prefilters,
        _policy: &WafPolicy,
        client: Option<IpAddr>,
    ) -> Self {
        let scratch = Scratch::take();
        Self {
            req,
            slots: Slots::new(2 * req.len(), pre.words, scratch.slots),
            ents: req.entries().collect(),
            client,
            tx: HashMap::new(),
            matched_var: None,
            matched_vars: Vec::new(),
            removed: Vec::new(),
            removed_tags: Vec::new(),
            removed_targets: Vec::new(),
            removed_targets_tag: Vec::new(),
            cache: CacheMap::default(),
            state: EngineState::On,
            score: 0,
            matches: Vec::new(),
            pending: Vec::new(),
            rule_id: 0,
            pre,
            cur_pre: None,
            setvars_ran: false,
            body_hidden: false,
            order: scratch.order,
            starts: [0; COLLECTIONS + 1],
            cand: scratch.cand,
            sel: scratch.sel,
        }
        .indexed()
    }

    /// Index the entries by collection (a counting sort, stable: entry order within a
    /// collection).
    fn indexed(mut self) -> Self {
        let entries = self.ents.iter().take(usize::from(u16::MAX));
        let mut starts = [0u16; COLLECTIONS + 1];
        for e in entries.clone() {
            let c = e.coll as usize;
            starts[c + 1] = starts[c + 1].saturating_add(1);
        }
        for c in 0..COLLECTIONS {
            starts[c + 1] = starts[c + 1].saturating_add(starts[c]);
        }
        let mut next = starts;
        let order = &mut self.order;
        order.clear();
        order.resize(entries.len(), 0);
        for (i, e) in entries.enumerate() {
            let c = e.coll as usize;
            if let (Some(slot), Ok(i)) = (order.get_mut(usize::from(next[c])), u16::try_from(i)) {
                *slot = i;
            }
            next[c] = next[c].saturating_add(1);
        }
        self.starts = starts;
        self
    }

    /// The span of `order` holding collections `first..=last` (adjacent in declaration order).
    fn coll_range(&self, first: Collection, last: Collection) -> (usize, usize) {
        (
            usize::from(self.starts[first as usize]),
            usize::from(self.starts[last as usize + 1]),
        )
    }

    /// The transformation features of entry `i`, computed once.
    fn features_of(&mut self, i: usize, raw: &[u8]) -> u32 {
        match self.slots.features(i) {
            Some(f) => f,
            None => {
                let f = crate::transform::features(raw);
                self.slots.set_features(i, f);
                f
            }
        }
    }

    /// The items that may match this request (see [`Candidates`]): a bitset over item
    /// indexes. Scans each value the literal index needs once per distinct reduced chain
    /// (the scans are kept for [`Txn::prefilter_admits`]). The returned buffer is the
    /// transaction's: hand it back with [`Txn::candidates_done`].
    fn candidates(&mut self) -> Vec<u64> {
        let pre = self.pre;
        let idx = &pre.cand;
        let w = pre.words;
        let mut cand = std::mem::take(&mut self.cand);
        cand.clear();
        cand.extend_from_slice(&idx.always);
        let mut sel = std::mem::take(&mut self.sel);
        sel.clear();
        sel.resize(3 * w, 0);
        let n = self.ents.len();
        for i in 0..n {
            let e = self.ents[i];
            let Some(m) = idx.merged.get(e.coll as usize).filter(|m| !m.empty) else {
                continue;
            };
            // The rules selecting this value: (presence, literal, names) bits and chains.
            sel.copy_from_slice(&m.all.bits);
            let (mut lc, mut nc) = (m.all.literal_chains, m.all.name_chains);
            for (k, g) in &m.keys {
                if k.eq_ignore_ascii_case(e.key) {
                    for (s, b) in sel.iter_mut().zip(&g.bits) {
                        *s |= b;
                    }
                    lc |= g.literal_chains;
                    nc |= g.name_chains;
                }
            }
            let (presence, rest) = sel.split_at(w);
            let (literal, names) = rest.split_at(w);
            for (c, p) in cand.iter_mut().zip(presence) {
                *c |= p;
            }
            self.literal_hits(i, literal, lc, &mut cand);
            self.literal_hits(n + i, names, nc, &mut cand);
        }
        self.sel = sel;
        cand
    }

    /// Keep the candidate buffer for the next inspection on this thread.
    fn candidates_done(&mut self, cand: Vec<u64>) {
        self.cand = cand;
    }

    /// `cand |=` the rules `lit` (prefiltered on `chains`) whose literal is in scan slot `at`.
    fn literal_hits(&mut self, at: usize, lit: &[u64], chains: u64, cand: &mut [u64]) {
        // Rules already candidates need no scan.
        if lit.iter().zip(cand.iter()).all(|(l, c)| l & !c == 0) {
            return;
        }
        let Some(raw) = self.slot_bytes(at) else {
            return;
        };
        // Chains none of whose transformations can change this value: one raw scan.
        let mut f = self.features_of(at, raw) | crate::transform::F_ALWAYS;
        let mut touched = 0u64;
        while f != 0 {
            touched |= self.pre.chains_by_bit[f.trailing_zeros() as usize];
            f &= f - 1;
        }
        if chains & !touched != 0 {
            self.scan_raw(at, chains & !touched);
        }
        let mut chains = chains & touched;
        while chains != 0 {
            let chain = chains.trailing_zeros();
            chains &= chains - 1;
            self.scan(at, chain as usize);
        }
        let hits = self.slots.bits(at);
        for ((c, l), h) in cand.iter_mut().zip(lit.iter()).zip(hits) {
            *c |= l & h;
        }
    }

    /// The bytes of scan slot `at`: entry `at`'s value, or for `at >= n` the name (key) of
    /// entry `at - n` as `..._NAMES` inspects it.
    fn slot_bytes(&self, at: usize) -> Option<&'r [u8]> {
        match self.ents.get(at) {
            Some(e) => Some(e.value),
            None => self.ents.get(at - self.ents.len()).map(name_bytes),
        }
    }

    /// Scan entry `i` for the literals of rules on prefilter chain `chain`, once per distinct
    /// reduced chain (the raw value when the chain cannot change it beyond case): sets the
    /// entry's bit of every rule with a literal in it.
    fn scan(&mut self, i: usize, chain: usize) {
        let pre = self.pre;
        if *self.slots.done(i) & (1 << chain) != 0 {
            return;
        }
        *self.slots.done(i) |= 1 << chain;
        let (Some(transforms), Some(stops), Some(tail_of), Some(global), Some(raw)) = (
            pre.chains.get(chain),
            pre.stops.get(chain),
            pre.tail_of.get(chain),
            &pre.global,
            self.slot_bytes(i),
        ) else {
            return;
        };
        let f = self.features_of(i, raw);
        let tail = tail_of
            .get(stops.start(f))
            .map_or(usize::MAX, |t| usize::from(*t));
        // A tail past the first 64 is scanned each time (a repeated scan only sets the same
        // bits again).
        if tail < 64 {
            if *self.slots.scanned(i) & (1 << tail) != 0 {
                return;
            }
            *self.slots.scanned(i) |= 1 << tail;
        }
        let key = pre
            .tails
            .get(tail)
            .map_or(transforms.as_slice(), Vec::as_slice);
        let tv = crate::transform::apply_all_given(key, raw, f);
        global.scan(&tv, self.slots.bits_mut(i));
    }

    /// Scan slot `at` raw (the reduced chain of `chains` for this value is empty).
    fn scan_raw(&mut self, at: usize, chains: u64) {
        let pre = self.pre;
        let (Some(global), Some(raw)) = (&pre.global, self.slot_bytes(at)) else {
            return;
        };
        *self.slots.done(at) |= chains;
        // Tail 0 is the empty chain.
        if *self.slots.scanned(at) & 1 == 0 {
            *self.slots.scanned(at) |= 1;
            global.scan(raw, self.slots.bits_mut(at));
        }
    }

    /// May the rule with prefilter `slot` over chain `chain` match entry `i`?
    fn prefilter_admits(&mut self, i: usize, slot: u16, chain: u16) -> bool {
        self.scan(i, usize::from(chain));
        let s = usize::from(slot);
        self.slots
            .bits(i)
            .get(s / 64)
            .is_none_or(|b| b & (1 << (s % 64)) != 0)
    }

    fn is_removed(&self, rule: &Rule) -> bool {
        self.removed
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&rule.id))
            || self
                .removed_tags
                .iter()
                .any(|t| rule.actions.tags.iter().any(|rt| rt == t))
    }

    fn target_excluded(
        &self,
        rule_id: u32,
        tags: &[String],
        source: Source,
        coll: Option<Collection>,
        key: &str,
    ) -> bool {
        if self.removed_targets.is_empty() && self.removed_targets_tag.is_empty() {
            return false;
        }
        let covers = |s: Source, sel: &Selector| {
            (s == source || coll.is_some_and(|c| source_covers(s, c))) && sel.selects(key)
        };
        self.removed_targets
            .iter()
            .any(|(a, b, s, sel)| (*a..=*b).contains(&rule_id) && covers(*s, sel))
            || self
                .removed_targets_tag
                .iter()
                .any(|(t, s, sel)| tags.iter().any(|rt| rt == t) && covers(*s, sel))
    }

    /// Does each gating link of `head`'s chain (depths `gates`, see [`chain_gates`]) select a
    /// value of the request? (Exclusions are not applied: they only remove values.)
    fn links_have_values(&self, head: &Rule, gates: &[u8]) -> bool {
        gates.iter().all(|&depth| {
            let mut link = Some(head);
            for _ in 0..depth {
                link = link.and_then(|l| l.chain.as_deref());
            }
            let Some(link) = link else {
                return true;
            };
            link.targets.iter().any(|t| {
                let (lo, hi) = match t.source {
                    Source::Coll(c) | Source::Names(c) => self.coll_range(c, c),
                    Source::FilesNames => self.coll_range(Collection::Files, Collection::Files),
                    _ => self.coll_range(Collection::ArgsGet, Collection::ArgsPost),
                };
                self.order[lo..hi].iter().any(|i| {
                    self.ents
                        .get(usize::from(*i))
                        .is_some_and(|e| t.selector.selects(e.key))
                })
            })
        })
    }

    /// Evaluate a rule and its chain, running each link's setvars/ctls as soon as that link
    /// matches (as ModSecurity does: the CRS sets `tx.content_type` in a chain's first rule
    /// and reads it in the next); leave the match records in `pending` on a full match.
    fn eval_chain(&mut self, head: &Rule) -> bool {
        self.matched_vars.clear();
        self.pending.clear();
        self.rule_id = head.id;
        let mut cur = Some(head);
        while let Some(rule) = cur {
            self.setvars_ran = false;
            if !self.eval_one(rule, head) {
                self.pending.clear();
                return false;
            }
            if !self.setvars_ran && !rule.actions.setvars.is_empty() {
                // Matched without a value (a count, an unconditional rule): once.
                self.run_setvars(rule);
            }
            if !rule.actions.ctls.is_empty() {
                self.run_ctls(rule);
            }
            cur = rule.chain.as_deref();
        }
        true
    }

    fn values(&self, t: &crate::rule::Target) -> Vec<Val<'r>> {
        let mut out: Vec<Val<'r>> = Vec::new();
        let name = source_name(t.source);
        let keep = |key: &str| t.selector.selects(key) && !t.exclude.iter().any(|e| e.selects(key));
        match t.source {
            Source::Coll(c) => {
                for (i, e) in self.ents.iter().enumerate() {
                    if e.coll == c && keep(e.key) {
                        out.push(Val {
                            coll: Some(c),
                            name,
                            key: Cow::Borrowed(e.key),
                            bytes: Cow::Borrowed(e.value),
                            entry: Some(i),
                        });
                    }
                }
            }
            Source::Args => {
                for (i, e) in self.ents.iter().enumerate() {
                    if matches!(e.coll, Collection::ArgsGet | Collection::ArgsPost) && keep(e.key) {
                        out.push(Val {
                            coll: Some(e.coll),
                            name: "ARGS",
                            key: Cow::Borrowed(e.key),
                            bytes: Cow::Borrowed(e.value),
                            entry: Some(i),
                        });
                    }
                }
            }
            Source::Names(_) | Source::ArgsNames | Source::FilesNames => {
                let colls: &[Collection] = match t.source {
                    Source::ArgsNames => &[Collection::ArgsGet, Collection::ArgsPost],
                    Source::FilesNames => &[Collection::Files],
                    Source::Names(Collection::ArgsGet) => &[Collection::ArgsGet],
                    Source::Names(Collection::ArgsPost) => &[Collection::ArgsPost],
                    Source::Names(Collection::Cookies) => &[Collection::Cookies],
                    Source::Names(Collection::Headers) => &[Collection::Headers],
                    Source::Names(Collection::Files) => &[Collection::Files],
                    Source::Names(Collection::MultipartPartHeaders) => {
                        &[Collection::MultipartPartHeaders]
                    }
                    _ => &[],
                };
                let n = self.ents.len();
                for (i, e) in self.ents.iter().enumerate() {
                    if colls.contains(&e.coll) && keep(e.key) {
                        out.push(Val {
                            coll: Some(e.coll),
                            name,
                            key: Cow::Borrowed(e.key),
                            bytes: Cow::Borrowed(name_bytes(e)),
                            entry: Some(n + i),
                        });
                    }
                }
            }
            Source::Tx => {
                let mut keys: Vec<&String> = self.tx.keys().filter(|k| keep(k)).collect();
                keys.sort();
                for k in keys {
                    out.push(Val {
                        coll: None,
                        name: "TX",
                        key: Cow::Owned(k.clone()),
                        bytes: Cow::Owned(self.tx.get(k).cloned().unwrap_or_default().into_bytes()),
                        entry: None,
                    });
                }
            }
            Source::MatchedVar => out.push(Val {
                coll: None,
                name: "MATCHED_VAR",
                key: Cow::Borrowed(""),
                bytes: self
                    .matched_var
                    .as_ref()
                    .map_or(Cow::Borrowed(&[][..]), Matched::bytes),
                entry: None,
            }),
            Source::MatchedVarName => out.push(Val {
                coll: None,
                name: "MATCHED_VAR_NAME",
                key: Cow::Borrowed(""),
                bytes: Cow::Owned(
                    self.matched_var
                        .as_ref()
                        .map(Matched::display)
                        .unwrap_or_default()
                        .into_bytes(),
                ),
                entry: None,
            }),
            Source::MatchedVars | Source::MatchedVarsNames => {
                for m in &self.matched_vars {
                    let n = m.display();
                    if !keep(&n) {
                        continue;
                    }
                    let bytes = if t.source == Source::MatchedVars {
                        m.bytes()
                    } else {
                        Cow::Owned(n.clone().into_bytes())
                    };
                    out.push(Val {
                        coll: None,
                        name: "",
                        key: Cow::Owned(n),
                        bytes,
                        entry: None,
                    });
                }
            }
            Source::UniqueId => out.push(Val {
                coll: None,
                name: "UNIQUE_ID",
                key: Cow::Borrowed(""),
                bytes: Cow::Borrowed(b"0"),
                entry: None,
            }),
        }
        if t.source == Source::Coll(Collection::RemoteAddr) && out.is_empty() {
            if let Some(ip) = self.client {
                out.push(Val {
                    coll: Some(Collection::RemoteAddr),
                    name: "REMOTE_ADDR",
                    key: Cow::Borrowed(""),
                    bytes: Cow::Owned(ip.to_string().into_bytes()),
                    entry: None,
                });
            }
        }
        out
    }

    fn transformed(&mut self, v: &Val<'r>, chain: &[Transform]) -> Tv<'r> {
        let raw: &'r [u8] = match &v.bytes {
            Cow::Borrowed(b) => b,
            Cow::Owned(o) => {
                return Tv::Shared(Arc::new(crate::transform::apply_all(chain, o).into_owned()));
            }
        };
        let Some(i) = v.entry else {
            return match crate::transform::apply_all(chain, raw) {
                Cow::Borrowed(b) => Tv::Raw(b),
                Cow::Owned(o) => Tv::Shared(Arc::new(o)),
            };
        };
        if chain.is_empty() {
            return Tv::Raw(raw);
        }
        if raw.len() < 256 {
            // Cheaper to recompute than to cache; the value's features are computed once.
            let f = self.features_of(i, raw);
            return match crate::transform::apply_all_given(chain, raw, f) {
                Cow::Borrowed(b) => Tv::Raw(b),
                Cow::Owned(o) => Tv::Shared(Arc::new(o)),
            };
        }
        // Prefix hashes: a rule's chain often extends another rule's.
        let mut hashes = [0u64; 16];
        let k = chain.len().min(16);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (j, t) in chain.iter().take(k).enumerate() {
            h = (h ^ (*t as u64 + 1)).wrapping_mul(0x0100_0000_01b3);
            hashes[j] = h;
        }
        // Longest cached prefix.
        let mut start = 0;
        let mut cur: Option<Arc<Vec<u8>>> = None;
        for j in (0..k).rev() {
            if let Some(hit) = self.cache.get(&(i, hashes[j])) {
                start = j + 1;
                cur = hit.clone();
                break;
            }
        }
        for (j, t) in chain.iter().enumerate().skip(start) {
            let base: &[u8] = cur.as_deref().map_or(raw, |c| c.as_slice());
            if !t.is_noop_for(base) {
                cur = Some(Arc::new(t.apply(base)));
            }
            if j < k {
                self.cache.insert((i, hashes[j]), cur.clone());
            }
        }
        match cur {
            Some(c) => Tv::Shared(c),
            None => Tv::Raw(raw),
        }
    }

    fn eval_one(&mut self, rule: &Rule, head: &Rule) -> bool {
        if rule.targets.is_empty() {
            // SecAction / unconditional.
            return rule.op.matches(b"", false).is_some() != rule.negate;
        }
        let dynamic_op;
        let op: &Operator = match &rule.op {
            Operator::Dynamic(name, arg) => {
                let expanded = self.expand(arg);
                match Operator::parse(name, &expanded) {
                    Ok(o) => {
                        dynamic_op = o;
                        &dynamic_op
                    }
                    Err(_) => return false,
                }
            }
            o => o,
        };
        let mut any = false;
        for t in &rule.targets {
            if self.body_hidden && t.source == Source::Coll(Collection::Body) && !t.count {
                continue;
            }
            // Request collections: evaluate in place, without building a value list.
            let direct = match t.source {
                Source::Coll(c) if c != Collection::RemoteAddr => Some(Some(c)),
                Source::Args => Some(None),
                _ => None,
            };
            // Their keys (`..._NAMES`) too: the same walk, the name as the value.
            let names = match t.source {
                Source::Names(
                    c @ (Collection::ArgsGet
                    | Collection::ArgsPost
                    | Collection::Cookies
                    | Collection::Headers
                    | Collection::Files
                    | Collection::MultipartPartHeaders),
                ) => Some(Some(c)),
                Source::FilesNames => Some(Some(Collection::Files)),
                Source::ArgsNames => Some(None),
                _ => None,
            };
            if let (false, Some(coll)) = (t.count, direct.or(names)) {
                let name = source_name(t.source);
                let n = self.ents.len();
                let (lo, hi) = match coll {
                    Some(c) => self.coll_range(c, c),
                    None => self.coll_range(Collection::ArgsGet, Collection::ArgsPost),
                };
                let mut k = lo;
                while k < hi {
                    let i = usize::from(self.order[k]);
                    k += 1;
                    let Some(&e) = self.ents.get(i) else {
                        continue;
                    };
                    // A named key of another length is decided here, without a call.
                    if matches!(&t.selector, Selector::Key(k) if k.len() != e.key.len())
                        || !t.selector.selects(e.key)
                        || t.exclude.iter().any(|x| {
                            !matches!(x, Selector::Key(k) if k.len() != e.key.len())
                                && x.selects(e.key)
                        })
                    {
                        continue;
                    }
                    let v = if names.is_some() {
                        Val {
                            coll: Some(e.coll),
                            key: Cow::Borrowed(e.key),
                            name,
                            bytes: Cow::Borrowed(name_bytes(&e)),
                            entry: Some(n + i),
                        }
                    } else {
                        Val {
                            coll: Some(e.coll),
                            key: Cow::Borrowed(e.key),
                            name,
                            bytes: Cow::Borrowed(e.value),
                            entry: Some(i),
                        }
                    };
                    any |= self.eval_value(rule, head, op, t, &v);
                }
                continue;
            }
            if t.count {
                let n = match direct {
                    // Request collections: counted in place.
                    Some(coll) => {
                        let (lo, hi) = match coll {
                            Some(c) => self.coll_range(c, c),
                            None => self.coll_range(Collection::ArgsGet, Collection::ArgsPost),
                        };
                        self.order[lo..hi]
                            .iter()
                            .filter(|i| {
                                let key = self.ents.get(usize::from(**i)).map_or("", |e| e.key);
                                t.selector.selects(key) && !t.exclude.iter().any(|x| x.selects(key))
                            })
                            .count()
                    }
                    None => self.values(t).len(),
                }
                .to_string();
                if op.matches(n.as_bytes(), false).is_some() != rule.negate {
                    any = true;
                    self.record(
                        head,
                        Cow::Owned(format!("&{}", source_name(t.source))),
                        Cow::Borrowed(""),
                        Shown::Bytes(n.into_bytes()),
                        None,
                    );
                }
                continue;
            }
            for v in self.values(t) {
                any |= self.eval_value(rule, head, op, t, &v);
            }
        }
        any
    }

    /// Test one value; on a match set `MATCHED_VAR*`, captures and the pending record.
    fn eval_value(
        &mut self,
        rule: &Rule,
        head: &Rule,
        op: &Operator,
        t: &crate::rule::Target,
        v: &Val<'r>,
    ) -> bool {
        if let (Some((slot, chain)), Some(i)) = (self.cur_pre, v.entry) {
            if std::ptr::eq(rule, head) && !self.prefilter_admits(i, slot, chain) {
                return false;
            }
        }
        if self.target_excluded(head.id, &head.actions.tags, t.source, v.coll, &v.key) {
            return false;
        }
        let mut tv = self.transformed(v, &rule.transforms);
        let m = if rule.negate {
            // A negated rule matches when the operator does not: nothing to capture or show
            // but the value.
            if op.is_match(&tv) {
                return false;
            }
            None
        } else {
            match op.matches(&tv, rule.actions.capture) {
                Some(m) => Some(m),
                // `multiMatch`: the untransformed value and each intermediate one too.
                None if rule.actions.multi_match => {
                    match (0..rule.transforms.len()).find_map(|j| {
                        let t = self.transformed(v, &rule.transforms[..j]);
                        op.matches(&t, rule.actions.capture).map(|m| (t, m))
                    }) {
                        Some((t, m)) => {
                            tv = t;
                            Some(m)
                        }
                        None => return false,
                    }
                }
                None => return false,
            }
        };
        if rule.actions.capture {
            if let Some(OpMatch { captures, .. }) = &m {
                for (i, c) in captures.iter().enumerate() {
                    self.tx
                        .insert(i.to_string(), String::from_utf8_lossy(c).into_owned());
                }
            }
        }
        // Kept as parts (no copy): read only by later links and macros.
        let matched = Matched {
            name: v.name,
            key: v.key.clone(),
            tv: tv.clone(),
        };
        self.matched_vars.push(matched.clone());
        self.matched_var = Some(matched);
        let (shown, detail) = match m {
            Some(OpMatch {
                mut captures,
                detail: None,
            }) if !captures.is_empty() => (Shown::Bytes(captures.swap_remove(0)), None),
            Some(OpMatch { detail, .. }) => (Shown::Tv(tv), detail),
            None => (Shown::Tv(tv), None),
        };
        self.record(head, Cow::Borrowed(v.name), v.key.clone(), shown, detail);
        if !rule.actions.setvars.is_empty() {
            self.run_setvars(rule);
            self.setvars_ran = true;
        }
        true
    }

    /// Keep a match record of the chain being evaluated (at most 16).
    fn record(
        &mut self,
        head: &Rule,
        name: Cow<'static, str>,
        key: Cow<'r, str>,
        shown: Shown<'r>,
        detail: Option<String>,
    ) {
        if self.pending.len() >= 16 {
            return;
        }
        let msg = match &head.actions.msg {
            Some(m) if m.contains("%{") => Some(self.expand(m)),
            _ => None,
        };
        self.pending.push(Pending {
            name,
            key,
            shown,
            detail,
            msg,
            score: 0,
        });
    }

    fn run_setvars(&mut self, rule: &Rule) {
        for sv in &rule.actions.setvars {
            let name = self.expand(&sv.name).to_ascii_lowercase();
            let Some(var) = name.strip_prefix("tx.") else {
                continue;
            };
            let var = var.to_string();
            match &sv.op {
                SetVarOp::Set(v) => {
                    let v = self.expand(v);
                    self.tx.insert(var, v);
                }
                SetVarOp::Add(v) | SetVarOp::Sub(v) => {
                    let d = parse_num(&self.expand(v));
                    let old = self.tx.get(&var).map_or(0, |s| parse_num(s));
                    let new = if matches!(sv.op, SetVarOp::Add(_)) {
                        old.saturating_add(d)
                    } else {
                        old.saturating_sub(d)
                    };
                    self.tx.insert(var, new.to_string());
                }
                SetVarOp::Delete => {
                    self.tx.remove(&var);
                }
            }
        }
    }

    fn run_ctls(&mut self, rule: &Rule) {
        for ctl in &rule.actions.ctls {
            match ctl {
                Ctl::RemoveById(a, b) => self.removed.push((*a, *b)),
                Ctl::RemoveByTag(t) => self.removed_tags.push(t.clone()),
                Ctl::RemoveTargetById(a, b, s, sel) => {
                    self.removed_targets.push((*a, *b, *s, sel.clone()));
                }
                Ctl::RemoveTargetByTag(t, s, sel) => {
                    self.removed_targets_tag.push((t.clone(), *s, sel.clone()));
                }
                Ctl::RuleEngine(s) => self.state = *s,
                Ctl::ForceRequestBody(on) => {
                    if *on {
                        self.body_hidden = false;
                    }
                }
                Ctl::Ignored => {}
            }
        }
    }

    /// Expand `%{tx.x}`, `%{MATCHED_VAR}`, `%{MATCHED_VAR_NAME}`, `%{rule.id}`,
    /// `%{REQUEST_HEADERS.x}`, `%{REMOTE_ADDR}`; unknown macros expand to nothing.
    fn expand(&self, s: &str) -> String {
        if !s.contains("%{") {
            return s.to_string();
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(p) = rest.find("%{") {
            out.push_str(&rest[..p]);
            let after = &rest[p + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[p..]);
                return out;
            };
            let name = after[..end].to_ascii_lowercase();
            out.push_str(&self.macro_value(&name));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn macro_value(&self, name: &str) -> String {
        if let Some(v) = name.strip_prefix("tx.") {
            return self.tx.get(v).cloned().unwrap_or_default();
        }
        if let Some(h) = name.strip_prefix("request_headers.") {
            return self
                .req
                .header(h)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
        }
        match name {
            "matched_var" => self
                .matched_var
                .as_ref()
                .map(|m| String::from_utf8_lossy(&m.tv).into_owned())
                .unwrap_or_default(),
            "matched_var_name" => self
                .matched_var
                .as_ref()
                .map(Matched::display)
                .unwrap_or_default(),
            "rule.id" => self.rule_id.to_string(),
            "remote_addr" => self.client.map(|c| c.to_string()).unwrap_or_default(),
            "request_line" => self
                .req
                .first(Collection::RequestLine)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default(),
            _ => self.coll_macro(name).unwrap_or_default(),
        }
    }

    /// `%{ARGS.name}`, `%{REQUEST_COOKIES.name}`, ...: the first value of that key.
    fn coll_macro(&self, name: &str) -> Option<String> {
        let (coll, key) = name.split_once('.')?;
        let e = self.ents.iter().find(|e| {
            let c = e.coll.name();
            (c.eq_ignore_ascii_case(coll)
                || (coll == "args" && matches!(e.coll, Collection::ArgsGet | Collection::ArgsPost)))
                && e.key.eq_ignore_ascii_case(key)
        })?;
        Some(String::from_utf8_lossy(e.value).into_owned())
    }
}

/// Display name of a source.
pub fn source_name(s: Source) -> &'static str {
    match s {
        Source::Coll(c) => c.name(),
        Source::Args => "ARGS",
        Source::ArgsNames => "ARGS_NAMES",
        Source::Names(Collection::ArgsGet) => "ARGS_GET_NAMES",
        Source::Names(Collection::ArgsPost) => "ARGS_POST_NAMES",
        Source::Names(Collection::Headers) => "REQUEST_HEADERS_NAMES",
        Source::Names(Collection::Cookies) => "REQUEST_COOKIES_NAMES",
        Source::Names(_) => "NAMES",
        Source::FilesNames => "FILES_NAMES",
        Source::Tx => "TX",
        Source::MatchedVar => "MATCHED_VAR",
        Source::MatchedVarName => "MATCHED_VAR_NAME",
        Source::MatchedVars => "MATCHED_VARS",
        Source::MatchedVarsNames => "MATCHED_VARS_NAMES",
        Source::UniqueId => "UNIQUE_ID",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        config::{Exclusion, IdRange, TargetSpec},
        request::Limits,
    };

    fn policy() -> WafPolicy {
        WafPolicy::new(Arc::new(Engine::builtin().unwrap()))
    }

    fn get(uri: &str) -> WafRequest {
        let headers: [(&[u8], &[u8]); 3] = [
            (b"Host", b"example.com"),
            (b"User-Agent", b"Mozilla/5.0"),
            (b"Accept", b"*/*"),
        ];
        WafRequest::build(
            "GET",
            uri.as_bytes(),
            "HTTP/1.1",
            headers,
            None,
            &Limits::default(),
        )
    }

    const SQLI: &str = "/login?password=1%27%20or%20%271%27%3D%271&user=bob";

    #[test]
    fn sensitive_finds_each_word_anywhere_in_any_case() {
        // The plain definition: any of the words at any offset, ASCII case-insensitively.
        fn reference(k: &str) -> bool {
            let words = [
                "pass", "pwd", "secret", "token", "auth", "session", "cookie", "key", "csrf",
                "card",
            ];
            let k = k.to_ascii_lowercase();
            words.iter().any(|w| k.contains(w))
        }
        let keys = [
            "",
            "q",
            "ARGS:password",
            "user_PWD",
            "x-Secret",
            "access_token",
            "Authorization",
            "JSESSIONID",
            "REQUEST_COOKIES:id",
            "apikey",
            "X-CSRF-Token",
            "CardNumber",
            "pas",
            "pw",
            "ke",
            "ARGS:page",
            "REQUEST_HEADERS:Host",
            "c",
            "sessio",
            "tokeN",
            "cAr",
            "kkey",
            "ppass",
            "ssecret",
        ];
        for k in keys {
            assert_eq!(sensitive(k), reference(k), "{k}");
        }
        assert!(sensitive("ARGS:password") && !sensitive("ARGS:page"));
    }

    #[test]
    fn records_are_kept_only_for_completed_logged_chains() {
        let mut l = crate::seclang::Loader::new();
        l.add_text(
            "t.conf",
            concat!(
                "SecRule ARGS \"@rx ^a\" \"id:1,phase:2,pass,msg:'failed chain',chain\"\n",
                "SecRule ARGS:b \"@rx z\" \"t:none\"\n",
                "SecRule ARGS \"@rx ^a\" \"id:2,phase:2,pass,nolog,msg:'not logged'\"\n",
                "SecRule ARGS \"@rx ^a\" \"id:3,phase:2,pass,msg:'on %{MATCHED_VAR_NAME}',chain\"\n",
                "SecRule ARGS:b \"@rx ^b\" \"t:none\"\n",
                "SecRule ARGS:token \"@rx .\" \"id:4,phase:2,pass,msg:'plain'\"\n",
            ),
            None,
        )
        .unwrap();
        let p = WafPolicy::new(Arc::new(l.finish(Scoring::Rules)));
        let v = p.engine.inspect(&get("/x?a=a1&b=b2&token=t0k"), &p, None);
        let got: Vec<(u32, &str, &str, Option<&str>)> = v
            .matches
            .iter()
            .map(|m| {
                (
                    m.rule_id,
                    m.target.as_str(),
                    m.excerpt.as_str(),
                    m.msg.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                // A record shows the match (not the whole value); its message is expanded
                // when that link matched, not when the chain ended.
                (3, "ARGS:a", "a", Some("on ARGS:a")),
                (3, "ARGS:b", "b", Some("on ARGS:b")),
                (4, "ARGS:token", "[redacted]", Some("plain")),
            ]
        );
    }

    #[test]
    fn scores_and_threshold() {
        let p = policy();
        let v = p.engine.inspect(&get(SQLI), &p, None);
        assert_eq!(v.outcome, Outcome::Block);
        assert!(v.score >= 5);
        let m = &v.matches[0];
        assert_eq!(m.target, "ARGS:password");
        assert!(
            m.excerpt.starts_with("[redacted]"),
            "secrets are not logged"
        );
        let lax = policy().with_threshold(1000);
        assert_eq!(
            lax.engine.inspect(&get(SQLI), &lax, None).outcome,
            Outcome::Pass
        );
        let clean = p.engine.inspect(&get("/search?q=shoes&page=2"), &p, None);
        assert_eq!(clean.outcome, Outcome::Pass);
        assert!(clean.matches.is_empty(), "{:?}", clean.matches);
    }

    #[test]
    fn exclusions_by_id_target_and_client() {
        let base = policy();
        let ids = base.engine.inspect(&get(SQLI), &base, None).rule_ids();
        // By rule ids.
        let mut p = policy();
        p.exclusions.push(Exclusion {
            rule_ids: ids.iter().map(|i| IdRange::one(*i)).collect(),
            ..Default::default()
        });
        assert_eq!(
            p.engine.inspect(&get(SQLI), &p, None).outcome,
            Outcome::Pass
        );
        // By target (any rule).
        let mut p = policy();
        p.exclusions.push(Exclusion {
            target: Some(TargetSpec::parse("ARGS:password").unwrap()),
            ..Default::default()
        });
        assert_eq!(
            p.engine.inspect(&get(SQLI), &p, None).outcome,
            Outcome::Pass
        );
        // The same attack in another argument still blocks.
        let other = "/login?q=1%27%20or%20%271%27%3D%271";
        assert_eq!(
            p.engine.inspect(&get(other), &p, None).outcome,
            Outcome::Block
        );
        // By client network.
        let mut p = policy();
        p.exclusions.push(Exclusion {
            clients: vec!["10.0.0.0/8".parse().unwrap()],
            ..Default::default()
        });
        let inside = Some("10.1.2.3".parse().unwrap());
        let outside = Some("192.0.2.1".parse().unwrap());
        assert_eq!(
            p.engine.inspect(&get(SQLI), &p, inside).outcome,
            Outcome::Pass
        );
        assert_eq!(
            p.engine.inspect(&get(SQLI), &p, outside).outcome,
            Outcome::Block
        );
        assert!(TargetSpec::parse("NOPE:x").is_err());
    }

    #[test]
    fn paranoia_levels_select_rules() {
        // 242210 is a PL2 rule: it only runs at PL2 and above.
        let uri = "/?q=case%20when%20x%20then%20y";
        let pl1 = policy();
        let pl2 = policy().with_paranoia(2);
        let v1 = pl1.engine.inspect(&get(uri), &pl1, None);
        let v2 = pl2.engine.inspect(&get(uri), &pl2, None);
        assert!(!v1.rule_ids().contains(&242210), "{:?}", v1.rule_ids());
        assert!(v2.rule_ids().contains(&242210), "{:?}", v2.rule_ids());
        assert!(pl1.engine.needs_body(1));
    }

    fn json_post(body: &[u8]) -> WafRequest {
        let headers: [(&[u8], &[u8]); 3] = [
            (b"Host", b"example.com"),
            (b"User-Agent", b"Mozilla/5.0"),
            (b"Content-Type", b"application/json"),
        ];
        WafRequest::build(
            "POST",
            b"/api",
            "HTTP/1.1",
            headers,
            Some(body),
            &Limits::default(),
        )
    }

    /// Two engines from the same SecLang text: prefilters (and candidate list) on and off.
    fn on_off(rules: &str) -> (WafPolicy, WafPolicy) {
        let build = || {
            let mut l = crate::seclang::Loader::new();
            l.add_text("t.conf", rules, None).unwrap();
            l.finish(Scoring::Rules)
        };
        (
            WafPolicy::new(Arc::new(build())),
            WafPolicy::new(Arc::new(build().with_prefilters(false))),
        )
    }

    /// Matched rule ids with the candidate list, asserted equal (ids, targets, score,
    /// outcome) to the run with every rule evaluated.
    fn same_ids(p: &(WafPolicy, WafPolicy), req: &WafRequest) -> Vec<u32> {
        let a = p.0.engine.inspect(req, &p.0, None);
        let b = p.1.engine.inspect(req, &p.1, None);
        let key = |v: &Verdict| {
            let m: Vec<(u32, String)> = v
                .matches
                .iter()
                .map(|m| (m.rule_id, m.target.clone()))
                .collect();
            (v.outcome, v.score, v.blocking_rule, m)
        };
        assert_eq!(key(&a), key(&b), "candidate list on (left) and off (right)");
        a.rule_ids()
    }

    /// The ids of the rules on the request's candidate list.
    fn candidate_ids(p: &WafPolicy, req: &WafRequest) -> Vec<u32> {
        let e = &p.engine;
        let mut txn = Txn::new(req, &e.pre, p, None);
        let cand = txn.candidates();
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(i) = next_bit(&cand, pos) {
            pos = i + 1;
            if let Some(Item::Rule(r)) = e.items.get(i) {
                out.push(r.id);
            }
        }
        out
    }

    fn with_header(uri: &str, name: &str, value: &str) -> WafRequest {
        let headers: [(&[u8], &[u8]); 2] = [
            (b"Host", b"example.com"),
            (name.as_bytes(), value.as_bytes()),
        ];
        WafRequest::build(
            "GET",
            uri.as_bytes(),
            "HTTP/1.1",
            headers,
            None,
            &Limits::default(),
        )
    }

    /// The per-thread scratch buffers carry nothing from one inspection to the next: a
    /// sequence of requests of different sizes and verdicts inspected on one thread gives the
    /// verdicts each gets on a fresh thread (fresh buffers).
    #[test]
    fn reused_scratch_keeps_verdicts() {
        let p = policy();
        let big: String = (0..400).map(|i| format!("a{i}=v{i}&")).collect();
        let reqs = [
            get(SQLI),
            get("/index.html"),
            get(&format!("/x?{big}q=%3Cscript%3Ealert(1)%3C/script%3E")),
            get("/x?q=hello"),
            with_header("/", "User-Agent", "sqlmap/1.0"),
            get("/index.html"),
            get(SQLI),
        ];
        let summary = |v: &Verdict| {
            let mut m: Vec<(u32, String)> = v
                .matches
                .iter()
                .map(|m| (m.rule_id, m.target.clone()))
                .collect();
            m.sort();
            (v.outcome, v.score, v.blocking_rule, m)
        };
        let fresh: Vec<_> = reqs
            .iter()
            .map(|r| {
                std::thread::scope(|s| {
                    s.spawn(|| summary(&p.engine.inspect(r, &p, None)))
                        .join()
                        .unwrap()
                })
            })
            .collect();
        let reused: Vec<_> = reqs
            .iter()
            .map(|r| summary(&p.engine.inspect(r, &p, None)))
            .collect();
        assert_eq!(reused, fresh);
        // The attack and clean requests are told apart (the comparison above is not vacuous).
        assert_eq!(fresh[0].0, Outcome::Block);
        assert_eq!(fresh[1].0, Outcome::Pass);
        assert_eq!(fresh[2].0, Outcome::Block);
        assert_eq!(fresh[3].0, Outcome::Pass);
    }

    /// Named keys and `!` exclusions select by case-insensitive equality, whatever the
    /// length shortcut in the rule loop.
    #[test]
    fn named_keys_and_exclusions_select_by_equal_keys() {
        let p = on_off(concat!(
            "SecRule REQUEST_HEADERS:X-Foo \"@rx evil\" \"id:1,phase:1,pass,log\"\n",
            "SecRule REQUEST_HEADERS|!REQUEST_HEADERS:x-foo \"@rx evil\" \"id:2,phase:1,pass,log\"\n",
        ));
        assert_eq!(same_ids(&p, &with_header("/", "X-FOO", "evil")), [1]);
        assert_eq!(same_ids(&p, &with_header("/", "x-foo", "evil")), [1]);
        // One byte longer or shorter, or the same length and another key: not selected by
        // rule 1, not excluded from rule 2.
        assert_eq!(same_ids(&p, &with_header("/", "x-fooo", "evil")), [2]);
        assert_eq!(same_ids(&p, &with_header("/", "x-fo", "evil")), [2]);
        assert_eq!(same_ids(&p, &with_header("/", "x-fop", "evil")), [2]);
        assert_eq!(
            same_ids(&p, &with_header("/", "x-foo", "good")),
            Vec::<u32>::new()
        );
    }

    /// `..._NAMES` targets are walked in place (no value list): each selected name once, in
    /// request order (query arguments before body arguments), exclusions applied.
    #[test]
    fn names_are_walked_in_request_order() {
        let p = on_off(concat!(
            "SecRule ARGS_NAMES \"@rx evil\" \"id:1,phase:2,pass,log\"\n",
            "SecRule REQUEST_HEADERS_NAMES|!REQUEST_HEADERS_NAMES:x-evil-b \"@rx evil\" \"id:2,phase:1,pass,log\"\n",
            "SecRule ARGS_GET_NAMES:evil2 \"@rx evil\" \"id:3,phase:2,pass,log\"\n",
        ));
        let headers: [(&[u8], &[u8]); 4] = [
            (b"Host", b"example.com"),
            (b"X-Evil-A", b"1"),
            (b"X-Evil-B", b"1"),
            (b"Content-Type", b"application/x-www-form-urlencoded"),
        ];
        let req = WafRequest::build(
            "POST",
            b"/x?evil1=a&good=b&evil2=c",
            "HTTP/1.1",
            headers,
            Some(b"evil3=d&fine=e"),
            &Limits::default(),
        );
        assert_eq!(same_ids(&p, &req), [2, 1, 3]);
        let v = p.0.engine.inspect(&req, &p.0, None);
        let targets: Vec<&str> = v.matches.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(
            targets,
            [
                "REQUEST_HEADERS_NAMES:x-evil-a",
                "ARGS_NAMES:evil1",
                "ARGS_NAMES:evil2",
                "ARGS_NAMES:evil3",
                "ARGS_GET_NAMES:evil2",
            ]
        );
    }

    #[test]
    fn candidates_follow_literals_and_present_values() {
        let p = on_off(concat!(
            // A literal ("evil"): a candidate only when a selected value holds it.
            "SecRule ARGS \"@rx evil\\d\" \"id:1,phase:2,pass\"\n",
            // No literal: a candidate when a selected value is present, whatever it holds.
            "SecRule REQUEST_HEADERS:X-Foo \"@rx ^$\" \"id:2,phase:1,pass\"\n",
            "SecRule REQUEST_HEADERS:X-Foo \"!@rx ^\\d+$\" \"id:3,phase:1,pass\"\n",
            // A count: always (`&X @eq 0` matches when X is absent).
            "SecRule &ARGS \"@eq 0\" \"id:4,phase:2,pass\"\n",
            // Names are scanned too: a candidate when a selected name holds the literal.
            "SecRule ARGS_NAMES \"@rx evil\" \"id:5,phase:2,pass\"\n",
            // A literal the value has only after its transformation chain.
            "SecRule ARGS \"@rx bad\" \"id:6,phase:2,pass,t:none,t:urlDecodeUni\"\n",
            // A count that cannot match 0: a candidate when a selected value is present.
            "SecRule &REQUEST_HEADERS:X-Foo \"!@eq 0\" \"id:7,phase:1,pass\"\n",
            "SecRule &ARGS \"@gt 1\" \"id:8,phase:2,pass\"\n",
        ));
        let on = &p.0;
        assert_eq!(candidate_ids(on, &get("/x")), [4]);
        assert_eq!(candidate_ids(on, &get("/x?a=good")), [4, 8]);
        assert_eq!(same_ids(&p, &get("/x?a=good")), Vec::<u32>::new());
        assert_eq!(candidate_ids(on, &get("/x?a=evil1")), [1, 4, 8]);
        assert_eq!(candidate_ids(on, &get("/x?evil=1")), [4, 5, 8]);
        assert_eq!(same_ids(&p, &get("/x?evil=1")), [5]);
        // A JSON key is named without its `json.` root, and scanned so.
        assert_eq!(same_ids(&p, &json_post(br#"{"evil": 1}"#)), [5]);
        assert_eq!(same_ids(&p, &get("/x?a=evil1")), [1]);
        assert_eq!(candidate_ids(on, &get("/x?a=bad")), [4, 6, 8]);
        // `%62ad` (`bad` once decoded; `ARGS` values are decoded once already, so this is
        // `%2562ad` on the wire) is found through the decoding chain only.
        assert_eq!(candidate_ids(on, &get("/x?a=%2562ad")), [4, 6, 8]);
        assert_eq!(same_ids(&p, &get("/x?a=%2562ad")), [6]);
        // A value's hits are shared by the rules scanning it: `evil` found in the decoded
        // value makes rule 1 (no transformation) a candidate too, which then does not match.
        assert_eq!(candidate_ids(on, &get("/x?a=%2565vil2")), [1, 4, 8]);
        assert_eq!(same_ids(&p, &get("/x?a=%2565vil2")), Vec::<u32>::new());
        // The header rules: candidates with the header, whatever its value; not without.
        assert_eq!(
            candidate_ids(on, &with_header("/", "x-foo", "")),
            [2, 3, 4, 7]
        );
        assert_eq!(same_ids(&p, &with_header("/", "X-Foo", "")), [2, 3, 7, 4]);
        assert_eq!(same_ids(&p, &with_header("/", "X-Foo", "12")), [7, 4]);
        assert_eq!(candidate_ids(on, &get("/x?a=1&b=2")), [4, 8]);
        assert_eq!(same_ids(&p, &get("/x?a=1&b=2")), [8]);
        assert_eq!(same_ids(&p, &get("/x?a=1")), Vec::<u32>::new());
        assert_eq!(candidate_ids(on, &with_header("/", "x-bar", "")), [4]);
    }

    #[test]
    fn skips_across_rules_that_are_not_candidates() {
        let p = on_off(concat!(
            "SecRule ARGS \"@rx go\" \"id:10,phase:2,pass,skipAfter:END\"\n",
            "SecRule ARGS \"@rx zzz\" \"id:11,phase:2,pass\"\n",
            "SecRule ARGS \"@rx .\" \"id:12,phase:2,pass\"\n",
            "SecMarker END\n",
            "SecRule ARGS \"@rx .\" \"id:13,phase:2,pass\"\n",
            // `skip:1` counts the next rule of the phase even when it is not a candidate
            // (21), and not a rule of another phase (22).
            "SecRule ARGS \"@rx go\" \"id:20,phase:2,pass,skip:1\"\n",
            "SecRule REQUEST_HEADERS:Host \"@rx .\" \"id:22,phase:1,pass\"\n",
            "SecRule ARGS \"@rx zzz\" \"id:21,phase:2,pass\"\n",
            "SecRule ARGS \"@rx .\" \"id:23,phase:2,pass\"\n",
            // A skip to a marker that does not follow skips the rest of the phase.
            "SecRule ARGS \"@rx stop\" \"id:30,phase:2,pass,skipAfter:END\"\n",
            "SecRule ARGS \"@rx .\" \"id:31,phase:2,pass\"\n",
        ));
        assert_eq!(
            candidate_ids(&p.0, &get("/?a=go")),
            [10, 12, 13, 20, 22, 23, 31]
        );
        assert_eq!(same_ids(&p, &get("/?a=go")), [22, 10, 13, 20, 23, 31]);
        assert_eq!(same_ids(&p, &get("/?a=gostop")), [22, 10, 13, 20, 23, 30]);
        assert_eq!(same_ids(&p, &get("/?a=x")), [22, 12, 13, 23, 31]);
    }

    /// The gate ids of an engine (rules skipped when a later link has no value).
    fn gated_ids(p: &WafPolicy) -> Vec<u32> {
        let e = &p.engine;
        e.items
            .iter()
            .zip(&e.pre.gates)
            .filter_map(|(item, g)| match item {
                Item::Rule(r) if !g.is_empty() => Some(r.id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn chain_gates_skip_only_traceless_chains() {
        let p = on_off(concat!(
            // Gated: the second link needs a header value, or a count of them above 0.
            "SecRule REQUEST_METHOD \"@rx ^GET$\" \"id:70,phase:1,pass,chain\"\n",
            "SecRule REQUEST_HEADERS:X-Absent \"@rx .\" \"\"\n",
            "SecRule REQUEST_METHOD \"@rx ^GET$\" \"id:71,phase:1,pass,chain\"\n",
            "SecRule &REQUEST_HEADERS:X-Te \"@gt 0\" \"\"\n",
            // Not gated: a count that matches 0, a first link with a setvar, a link reading
            // MATCHED_VAR (set by its own chain).
            "SecRule REQUEST_METHOD \"@rx ^GET$\" \"id:72,phase:1,pass,chain\"\n",
            "SecRule &REQUEST_HEADERS:X-Te \"@eq 0\" \"\"\n",
            "SecRule REQUEST_METHOD \"@rx ^GET$\" \"id:73,phase:1,pass,setvar:tx.b=1,chain\"\n",
            "SecRule REQUEST_HEADERS:X-Absent \"@rx .\" \"\"\n",
            "SecRule TX:b \"@eq 1\" \"id:74,phase:1,pass\"\n",
            "SecRule REQUEST_METHOD \"@rx ^GET$\" \"id:75,phase:1,pass,chain\"\n",
            "SecRule MATCHED_VAR \"@rx ^GET$\" \"\"\n",
        ));
        assert_eq!(gated_ids(&p.0), [70, 71]);
        assert!(gated_ids(&p.1).is_empty(), "no gate with prefilters off");
        assert_eq!(same_ids(&p, &get("/")), [72, 74, 75]);
        assert_eq!(
            same_ids(&p, &with_header("/", "x-absent", "y")),
            [70, 72, 73, 74, 75]
        );
        assert_eq!(same_ids(&p, &with_header("/", "x-te", "1")), [71, 74, 75]);
        // A rule reading MATCHED_VAR as its first target sees what the rule before left:
        // no chain is gated then (80's first link sets MATCHED_VAR even though 80 fails).
        let p = on_off(concat!(
            "SecRule REQUEST_METHOD \"@rx ^GET$\" \"id:80,phase:1,pass,chain\"\n",
            "SecRule REQUEST_HEADERS:X-Absent \"@rx .\" \"\"\n",
            "SecRule MATCHED_VAR \"@rx ^GET$\" \"id:81,phase:1,pass\"\n",
        ));
        assert!(gated_ids(&p.0).is_empty());
        assert_eq!(same_ids(&p, &get("/")), [81]);
        // The built-in rules read MATCHED_VAR only inside chains: their method chains are
        // gated.
        let builtin = WafPolicy::new(Arc::new(Engine::builtin().unwrap()));
        assert!(
            gated_ids(&builtin).contains(&210140),
            "{:?}",
            gated_ids(&builtin)
        );
    }

    #[test]
    fn chains_setvar_and_ctl_around_skipped_rules() {
        let p = on_off(concat!(
            // The first link matches and sets a variable, the chain then fails: the variable
            // stays set (read by 41, a `TX` rule: always a candidate).
            "SecRule REQUEST_METHOD \"@rx ^GET$\" \"id:40,phase:1,pass,setvar:tx.a=1,chain\"\n",
            "SecRule ARGS:nope \"@rx .\" \"\"\n",
            "SecRule TX:a \"@eq 1\" \"id:41,phase:1,pass\"\n",
            // A chain whose first link has a literal and whose next link reads a header.
            "SecRule ARGS \"@rx evil\" \"id:50,phase:2,pass,chain\"\n",
            "SecRule REQUEST_HEADERS:X-Foo \"@rx on\" \"\"\n",
            // ctl removes a later candidate rule.
            "SecRule ARGS \"@rx drop51\" \"id:60,phase:2,pass,ctl:ruleRemoveById=61\"\n",
            "SecRule ARGS \"@rx evil\" \"id:61,phase:2,pass\"\n",
        ));
        assert_eq!(same_ids(&p, &get("/")), [41]);
        assert_eq!(same_ids(&p, &get("/?a=evil")), [41, 61]);
        assert_eq!(
            same_ids(&p, &with_header("/?a=evil", "x-foo", "on")),
            [41, 50, 61]
        );
        assert_eq!(
            same_ids(&p, &with_header("/?a=evil", "x-foo", "none")),
            [41, 50, 61]
        );
        assert_eq!(
            same_ids(&p, &with_header("/?a=evil", "x-foo", "no")),
            [41, 61]
        );
        assert_eq!(same_ids(&p, &get("/?a=evil&b=drop51")), [41, 60]);
    }

    #[test]
    fn json_keys_are_names_without_the_root() {
        // A top-level JSON key is inspected as `ARGS_NAMES` without the `json.` root, so
        // anchored name rules (shellshock `^() {`) see it as sent.
        let p = policy();
        let v = p
            .engine
            .inspect(&json_post(br#"{"() { :; }": "x"}"#), &p, None);
        assert!(v.rule_ids().contains(&232120), "{:?}", v.matches);
    }

    #[test]
    fn json_structure_is_not_sql() {
        let p = policy();
        let body = br#"{"select":{"from":["where","union"]},"or":1,"note":"it's fine"}"#;
        let v = p.engine.inspect(&json_post(body), &p, None);
        assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.matches);
    }
}
