//! Operators: the test a (transformed) value must pass for a rule to match.
//!
//! All of them run in time linear in the input: regexes are the `regex` crate in byte mode
//! (finite automata, no backtracking, no look-around or back-references: such patterns are
//! refused at load time), phrase sets are Aho-Corasick automata, the SQLi / XSS detectors are
//! single-pass tokenizers.

use std::{fmt, net::IpAddr, sync::Arc};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use ipnet::IpNet;
use regex::bytes::{Regex, RegexBuilder};

use crate::{sqli, xss};

/// Why an operator could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// The operator name is not known.
    #[error("unsupported operator @{0}")]
    Unsupported(String),
    /// The regex does not compile in the linear-time engine.
    #[error("regex does not compile: {0}")]
    Regex(String),
    /// A bad argument (IP, number, byte range, phrase list).
    #[error("bad operator argument: {0}")]
    Argument(String),
}

/// A compiled operator.
#[derive(Clone)]
pub enum Operator {
    /// `@rx`: regex in byte mode.
    Rx(Regex),
    /// `@rx` with a required-byte prefilter: every match contains one of `need`'s bytes, so a
    /// value without any of them is rejected without running the regex.
    RxNeed(Regex, Arc<ByteNeed>),
    /// `@rx` anchored at both ends with a small finite language (`^(?:GET|HEAD)$`): a value
    /// matches exactly when it is one of these strings (sorted), and the match is the value.
    RxExact(Regex, Arc<[Vec<u8>]>),
    /// `@pm` / `@pmFromFile`: case-insensitive phrase set (the automaton and its phrases).
    Pm(Arc<AhoCorasick>, Arc<[Vec<u8>]>),
    /// `@detectSQLi`.
    DetectSqli,
    /// `@detectXSS`.
    DetectXss,
    /// `@streq`.
    StrEq(Vec<u8>),
    /// `@contains`.
    Contains(Vec<u8>),
    /// `@containsWord`.
    ContainsWord(Vec<u8>),
    /// `@beginsWith`.
    BeginsWith(Vec<u8>),
    /// `@endsWith`.
    EndsWith(Vec<u8>),
    /// `@within`: the value is a substring of the argument.
    Within(Vec<u8>),
    /// `@eq`, `@ge`, `@gt`, `@le`, `@lt`.
    Num(NumOp, i64),
    /// `@ipMatch`.
    IpMatch(Vec<IpNet>),
    /// `@validateByteRange`: matches when a byte is outside the allowed set.
    ValidateByteRange(Box<[bool; 256]>),
    /// `@validateUrlEncoding`: matches on an invalid `%` escape.
    ValidateUrlEncoding,
    /// `@validateUtf8Encoding`: matches on invalid UTF-8.
    ValidateUtf8Encoding,
    /// `@unconditionalMatch`.
    Unconditional,
    /// `@noMatch`.
    NoMatch,
    /// An operator whose argument has `%{...}` macros: built at evaluation time.
    Dynamic(String, String),
}

impl fmt::Debug for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operator::Rx(r) | Operator::RxNeed(r, _) | Operator::RxExact(r, _) => {
                write!(f, "@rx {}", r.as_str())
            }
            Operator::Pm(..) => f.write_str("@pm"),
            Operator::DetectSqli => f.write_str("@detectSQLi"),
            Operator::DetectXss => f.write_str("@detectXSS"),
            Operator::Num(op, n) => write!(f, "@{op:?} {n}"),
            Operator::Dynamic(n, a) => write!(f, "@{n} {a}"),
            other => write!(f, "{}", other.name()),
        }
    }
}

/// Numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    /// `==`
    Eq,
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `<`
    Lt,
}

/// Outcome of a successful match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpMatch {
    /// Regex captures (`TX:0` is the whole match), when the operator has them.
    pub captures: Vec<Vec<u8>>,
    /// A fingerprint or detail (libinjection-style fingerprint for `@detectSQLi`).
    pub detail: Option<String>,
}

/// Compile a regex the ModSecurity way: byte mode, Unicode off (so `\xHH` is a byte),
/// generous but bounded automaton sizes.
pub fn compile_regex(pattern: &str) -> Result<Regex, OperatorError> {
    let p = translate_regex(pattern);
    RegexBuilder::new(&p)
        .unicode(false)
        .size_limit(64 << 20)
        .dfa_size_limit(16 << 20)
        .build()
        .or_else(|_| {
            // Some patterns only compile with Unicode classes on (e.g. `\p{..}`).
            RegexBuilder::new(&p)
                .unicode(true)
                .size_limit(64 << 20)
                .dfa_size_limit(16 << 20)
                .build()
        })
        .map_err(|e| OperatorError::Regex(first_line(&e.to_string())))
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

/// PCRE-isms the `regex` crate spells differently: `\x{HH}` -> `\xHH`, possessive and atomic
/// groups become plain ones (equivalent for matching without backtracking), `\/` is kept.
/// Inside a character class PCRE reads `[` (but for `[:name:]`), `&&` and `~~` literally where
/// `regex` nests classes or applies set operations, and `+` is never a possessive marker there.
fn translate_regex(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len());
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        if in_class && b[i] != b'\\' {
            match b[i] {
                b']' => in_class = false,
                b'[' if b.get(i + 1) == Some(&b':') => {
                    // A POSIX class `[:alpha:]` (same spelling in `regex`).
                    if let Some(end) = p[i + 2..].find(":]") {
                        out.push_str(&p[i..i + 2 + end + 2]);
                        i += 2 + end + 2;
                        continue;
                    }
                    out.push_str("\\[");
                    i += 1;
                    continue;
                }
                b'[' | b'&' | b'~' => {
                    out.push_str(&format!("\\x{:02x}", b[i]));
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let ch_len = p[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&p[i..i + ch_len]);
            i += ch_len;
            continue;
        }
        if b[i] == b'[' {
            // A class opens; a `]` right after `[` or `[^` is a literal.
            in_class = true;
            out.push('[');
            i += 1;
            if b.get(i) == Some(&b'^') {
                out.push('^');
                i += 1;
            }
            if b.get(i) == Some(&b']') {
                out.push_str("\\]");
                i += 1;
            }
            continue;
        }
        if b[i] == b'\\' && i + 1 < b.len() {
            // \x{HH} with at most two digits -> \xHH (a byte in non-Unicode mode).
            if b[i + 1] == b'x' && b.get(i + 2) == Some(&b'{') {
                if let Some(close) = p[i + 3..].find('}') {
                    let digits = &p[i + 3..i + 3 + close];
                    if (1..=2).contains(&digits.len())
                        && digits.bytes().all(|c| c.is_ascii_hexdigit())
                    {
                        out.push_str("\\x");
                        if digits.len() == 1 {
                            out.push('0');
                        }
                        out.push_str(digits);
                        i += 3 + close + 1;
                        continue;
                    }
                }
            }
            // PCRE escapes punctuation freely; `\<` / `\>` are word boundaries in `regex`:
            // spell every escaped ASCII punctuation character as a hex byte.
            let n = b[i + 1];
            if n.is_ascii_punctuation() {
                out.push_str(&format!("\\x{n:02x}"));
                i += 2;
                continue;
            }
            // Keep other escape pairs as they are (char-boundary safe).
            let ch_len = p[i + 1..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&p[i..i + 1 + ch_len]);
            i += 1 + ch_len;
            continue;
        }
        // PCRE reads a `{` that does not start `{n}`, `{n,}` or `{n,m}` as a literal.
        if b[i] == b'{' && !is_counted_repetition(&b[i..]) {
            out.push_str("\\{");
            i += 1;
            continue;
        }
        if b[i] == b'}' && !closes_repetition(b, i) {
            out.push_str("\\}");
            i += 1;
            continue;
        }
        if b[i] == b'(' && b.get(i + 1) == Some(&b'?') && b.get(i + 2) == Some(&b'>') {
            out.push_str("(?:");
            i += 3;
            continue;
        }
        // Possessive quantifiers `*+`, `++`, `?+`, `}+`: drop the `+`.
        if b[i] == b'+'
            && i > 0
            && matches!(b[i - 1], b'*' | b'+' | b'?' | b'}')
            && !escaped(b, i - 1)
        {
            i += 1;
            continue;
        }
        let ch_len = p[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&p[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// `{n}`, `{n,}`, `{n,m}` at the start of `b`.
fn is_counted_repetition(b: &[u8]) -> bool {
    let mut j = 1;
    let start = j;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j == start {
        return false;
    }
    if b.get(j) == Some(&b',') {
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    b.get(j) == Some(&b'}')
}

/// Does the `}` at `i` close a counted repetition?
fn closes_repetition(b: &[u8], i: usize) -> bool {
    match b[..i].iter().rposition(|c| *c == b'{') {
        Some(p) => is_counted_repetition(&b[p..=i]) && !escaped(b, p),
        None => false,
    }
}

fn escaped(b: &[u8], i: usize) -> bool {
    let mut n = 0;
    let mut j = i;
    while j > 0 && b[j - 1] == b'\\' {
        n += 1;
        j -= 1;
    }
    n % 2 == 1
}

/// A case-insensitive phrase-set automaton.
pub fn phrase_set<I, P>(phrases: I) -> Result<Operator, OperatorError>
where
    I: IntoIterator<Item = P>,
    P: AsRef<[u8]>,
{
    let list: Vec<Vec<u8>> = phrases
        .into_iter()
        .map(|p| p.as_ref().to_vec())
        .filter(|p| !p.is_empty())
        .collect();
    if list.is_empty() {
        return Ok(Operator::NoMatch);
    }
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .kind(if list.len() <= 2000 {
            Some(aho_corasick::AhoCorasickKind::DFA)
        } else {
            None
        })
        .match_kind(MatchKind::LeftmostFirst)
        .build(&list)
        .map(|ac| Operator::Pm(Arc::new(ac), list.into()))
        .map_err(|e| OperatorError::Argument(e.to_string()))
}

impl Operator {
    /// Build an operator from its ModSecurity name and argument. `@pmFromFile` and
    /// `@ipMatchFromFile` are resolved by the loader (it reads the file) and arrive here as
    /// `pm` / `ipMatch`.
    pub fn parse(name: &str, arg: &str) -> Result<Self, OperatorError> {
        let lname = name.to_ascii_lowercase();
        if arg.contains("%{") && lname != "rx" {
            return Ok(Operator::Dynamic(lname, arg.to_string()));
        }
        Ok(match lname.as_str() {
            "rx" => {
                if arg.contains("%{") {
                    return Ok(Operator::Dynamic(lname, arg.to_string()));
                }
                let re = compile_regex(arg)?;
                if let Some(set) = crate::prefilter::exact_language(re.as_str()) {
                    return Ok(Operator::RxExact(re, set.into()));
                }
                match required_bytes(re.as_str()) {
                    Some(need) => Operator::RxNeed(re, Arc::new(need)),
                    None => Operator::Rx(re),
                }
            }
            "pm" => phrase_set(arg.split_ascii_whitespace())?,
            "detectsqli" => Operator::DetectSqli,
            "detectxss" => Operator::DetectXss,
            "streq" => Operator::StrEq(arg.as_bytes().to_vec()),
            "contains" | "strmatch" => Operator::Contains(arg.as_bytes().to_vec()),
            "containsword" => Operator::ContainsWord(arg.as_bytes().to_vec()),
            "beginswith" => Operator::BeginsWith(arg.as_bytes().to_vec()),
            "endswith" => Operator::EndsWith(arg.as_bytes().to_vec()),
            "within" => Operator::Within(arg.as_bytes().to_vec()),
            "eq" | "ge" | "gt" | "le" | "lt" => {
                let op = match lname.as_str() {
                    "eq" => NumOp::Eq,
                    "ge" => NumOp::Ge,
                    "gt" => NumOp::Gt,
                    "le" => NumOp::Le,
                    _ => NumOp::Lt,
                };
                Operator::Num(op, parse_num(arg.trim()))
            }
            "ipmatch" => Operator::IpMatch(parse_ips(arg)?),
            "validatebyterange" => Operator::ValidateByteRange(parse_byte_range(arg)?),
            "validateurlencoding" => Operator::ValidateUrlEncoding,
            "validateutf8encoding" => Operator::ValidateUtf8Encoding,
            "unconditionalmatch" => Operator::Unconditional,
            "nomatch" => Operator::NoMatch,
            _ => return Err(OperatorError::Unsupported(name.to_string())),
        })
    }

    /// The operator's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Operator::Rx(_) | Operator::RxNeed(..) | Operator::RxExact(..) => "rx",
            Operator::Pm(..) => "pm",
            Operator::DetectSqli => "detectSQLi",
            Operator::DetectXss => "detectXSS",
            Operator::StrEq(_) => "streq",
            Operator::Contains(_) => "contains",
            Operator::ContainsWord(_) => "containsWord",
            Operator::BeginsWith(_) => "beginsWith",
            Operator::EndsWith(_) => "endsWith",
            Operator::Within(_) => "within",
            Operator::Num(..) => "num",
            Operator::IpMatch(_) => "ipMatch",
            Operator::ValidateByteRange(_) => "validateByteRange",
            Operator::ValidateUrlEncoding => "validateUrlEncoding",
            Operator::ValidateUtf8Encoding => "validateUtf8Encoding",
            Operator::Unconditional => "unconditionalMatch",
            Operator::NoMatch => "noMatch",
            Operator::Dynamic(..) => "dynamic",
        }
    }

    /// Literals (lowercase, compared ASCII case-insensitively) at least one of which every
    /// value this operator matches contains, when such a useful set is known (see
    /// [`crate::prefilter`]).
    pub fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        match self {
            Operator::Rx(re) | Operator::RxNeed(re, _) => {
                crate::prefilter::required_literals(re.as_str())
            }
            // The value is one of the strings: each is required whatever its quality (a
            // common one only makes the rule a candidate more often; its test is cheap).
            Operator::RxExact(re, set) => {
                crate::prefilter::required_literals(re.as_str()).or_else(|| {
                    let mut lits: Vec<Vec<u8>> =
                        set.iter().map(|s| s.to_ascii_lowercase()).collect();
                    lits.sort();
                    lits.dedup();
                    (lits.len() <= 64 && lits.iter().all(|l| !l.is_empty())).then_some(lits)
                })
            }
            Operator::StrEq(s) if !s.is_empty() => Some(vec![s.to_ascii_lowercase()]),
            Operator::Pm(_, phrases) => {
                let set: Vec<Vec<u8>> = phrases.iter().map(|p| p.to_ascii_lowercase()).collect();
                (crate::prefilter::quality(&set) >= crate::prefilter::MIN_QUALITY).then_some(set)
            }
            Operator::Contains(s)
            | Operator::ContainsWord(s)
            | Operator::BeginsWith(s)
            | Operator::EndsWith(s)
                if !s.is_empty() =>
            {
                let set = vec![s.to_ascii_lowercase()];
                (crate::prefilter::quality(&set) >= crate::prefilter::MIN_QUALITY).then_some(set)
            }
            // Matches when a byte outside the range is present: those bytes, when few.
            Operator::ValidateByteRange(allowed) => {
                let set: Vec<Vec<u8>> = (0..=255u8)
                    .filter(|b| !allowed[usize::from(*b)])
                    .map(|b| vec![b.to_ascii_lowercase()])
                    .collect();
                (!set.is_empty()
                    && set.len() <= 64
                    && crate::prefilter::quality(&set) >= crate::prefilter::MIN_QUALITY)
                    .then_some(set)
            }
            _ => None,
        }
    }

    /// Does the operator match the value? As `matches(v, false).is_some()`, without building
    /// the match (a negated rule needs only this).
    pub fn is_match(&self, v: &[u8]) -> bool {
        match self {
            Operator::RxNeed(re, need) => need.any_in(v) && re.is_match(v),
            Operator::Rx(re) => re.is_match(v),
            Operator::RxExact(_, set) => set.binary_search_by(|s| s.as_slice().cmp(v)).is_ok(),
            Operator::Pm(ac, _) => ac.is_match(v),
            Operator::DetectSqli => sqli::detect(v).is_some(),
            other => other.matches(v, false).is_some(),
        }
    }

    /// Test a value. `want_captures` asks `@rx` for its groups.
    pub fn matches(&self, v: &[u8], want_captures: bool) -> Option<OpMatch> {
        let hit = |b: bool| b.then(OpMatch::default);
        match self {
            Operator::RxNeed(re, need) => {
                if !need.any_in(v) {
                    return None;
                }
                rx_match(re, v, want_captures)
            }
            Operator::Rx(re) => rx_match(re, v, want_captures),
            Operator::RxExact(re, set) => {
                if set.binary_search_by(|s| s.as_slice().cmp(v)).is_err() {
                    return None;
                }
                if want_captures {
                    return rx_match(re, v, true);
                }
                // The match is the whole value: no capture to copy (a record then shows the
                // value, the same bytes).
                Some(OpMatch::default())
            }
            Operator::Pm(ac, _) => ac.find(v).map(|m| OpMatch {
                captures: vec![v[m.start()..m.end()].to_vec()],
                detail: None,
            }),
            Operator::DetectSqli => sqli::detect(v).map(|fp| OpMatch {
                captures: vec![fp.clone().into_bytes()],
                detail: Some(fp),
            }),
            Operator::DetectXss => hit(xss::detect(v)),
            Operator::StrEq(s) => hit(v == s.as_slice()),
            Operator::Contains(s) => hit(crate::transform::find(v, s).is_some()),
            Operator::ContainsWord(s) => hit(contains_word(v, s)),
            Operator::BeginsWith(s) => hit(v.starts_with(s)),
            Operator::EndsWith(s) => hit(v.ends_with(s)),
            Operator::Within(s) => hit(!v.is_empty() && crate::transform::find(s, v).is_some()),
            Operator::Num(op, n) => {
                let x = parse_num(&String::from_utf8_lossy(v));
                hit(match op {
                    NumOp::Eq => x == *n,
                    NumOp::Ge => x >= *n,
                    NumOp::Gt => x > *n,
                    NumOp::Le => x <= *n,
                    NumOp::Lt => x < *n,
                })
            }
            Operator::IpMatch(nets) => {
                let ip: Option<IpAddr> = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
                hit(ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))))
            }
            Operator::ValidateByteRange(allowed) => {
                hit(v.iter().any(|b| !allowed[usize::from(*b)]))
            }
            Operator::ValidateUrlEncoding => hit(invalid_url_encoding(v)),
            Operator::ValidateUtf8Encoding => hit(std::str::from_utf8(v).is_err()),
            Operator::Unconditional => Some(OpMatch::default()),
            Operator::NoMatch => None,
            Operator::Dynamic(..) => None,
        }
    }
}

fn rx_match(re: &Regex, v: &[u8], want_captures: bool) -> Option<OpMatch> {
    if want_captures {
        let caps = re.captures(v)?;
        Some(OpMatch {
            captures: caps
                .iter()
                .take(10)
                .map(|m| m.map(|m| m.as_bytes().to_vec()).unwrap_or_default())
                .collect(),
            detail: None,
        })
    } else {
        // `is_match` can stop at the first match and skips start-finding.
        if !re.is_match(v) {
            return None;
        }
        re.find(v).map(|m| OpMatch {
            captures: vec![m.as_bytes().to_vec()],
            detail: None,
        })
    }
}

/// A set of bytes at least one of which every match of a regex contains.
#[derive(Debug, Clone)]
pub struct ByteNeed {
    table: [bool; 256],
    few: Vec<u8>,
}

impl ByteNeed {
    /// Does `v` contain one of the bytes?
    pub fn any_in(&self, v: &[u8]) -> bool {
        match self.few.as_slice() {
            [a] => memchr::memchr(*a, v).is_some(),
            [a, b] => memchr::memchr2(*a, *b, v).is_some(),
            [a, b, c] => memchr::memchr3(*a, *b, *c, v).is_some(),
            _ => v.iter().any(|c| self.table[usize::from(*c)]),
        }
    }
}

/// Bytes of which every match of `pattern` must contain at least one (`None` when no small
/// such set exists, e.g. for `.*` or a pattern that can match the empty string).
pub fn required_bytes(pattern: &str) -> Option<ByteNeed> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    let set = need_of(&hir)?;
    let n = set.iter().filter(|b| **b).count();
    if n == 0 || n > 24 {
        return None;
    }
    let few: Vec<u8> = (0..=255u8).filter(|b| set[usize::from(*b)]).collect();
    Some(ByteNeed {
        table: set,
        few: if few.len() <= 3 { few } else { Vec::new() },
    })
}

fn count(s: &[bool; 256]) -> usize {
    s.iter().filter(|b| **b).count()
}

fn need_of(h: &regex_syntax::hir::Hir) -> Option<[bool; 256]> {
    use regex_syntax::hir::{Class, HirKind};
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => None,
        HirKind::Literal(lit) => {
            // Any byte of the literal is required: take the rarest-looking (non-letter) one.
            let b = lit
                .0
                .iter()
                .copied()
                .find(|c| !c.is_ascii_alphanumeric())
                .or_else(|| lit.0.first().copied())?;
            let mut s = [false; 256];
            s[usize::from(b)] = true;
            Some(s)
        }
        HirKind::Class(Class::Bytes(c)) => {
            let mut s = [false; 256];
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    s[usize::from(b)] = true;
                }
            }
            (count(&s) <= 24).then_some(s)
        }
        HirKind::Class(Class::Unicode(c)) => {
            let mut s = [false; 256];
            for r in c.ranges() {
                let (a, z) = (u32::from(r.start()), u32::from(r.end()));
                if z > 0x7f || z - a > 24 {
                    return None;
                }
                for b in a..=z {
                    s[b as usize] = true;
                }
            }
            Some(s)
        }
        HirKind::Repetition(r) => {
            if r.min == 0 {
                None
            } else {
                need_of(&r.sub)
            }
        }
        HirKind::Capture(c) => need_of(&c.sub),
        HirKind::Concat(xs) => xs.iter().filter_map(need_of).min_by_key(count),
        HirKind::Alternation(xs) => {
            let mut s = [false; 256];
            for x in xs {
                let n = need_of(x)?;
                for (a, b) in s.iter_mut().zip(n.iter()) {
                    *a |= *b;
                }
            }
            Some(s)
        }
    }
}

/// Leading integer of a string (ModSecurity's `atoi`): `"12abc"` -> 12, junk -> 0.
pub fn parse_num(s: &str) -> i64 {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut n: i64 = 0;
    for c in digits.bytes() {
        if !c.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add(i64::from(c - b'0'));
    }
    if neg { -n } else { n }
}

fn contains_word(v: &[u8], w: &[u8]) -> bool {
    if w.is_empty() {
        return true;
    }
    let mut start = 0;
    while let Some(p) = crate::transform::find(&v[start..], w) {
        let i = start + p;
        let before = i == 0 || !v[i - 1].is_ascii_alphanumeric();
        let after = i + w.len() >= v.len() || !v[i + w.len()].is_ascii_alphanumeric();
        if before && after {
            return true;
        }
        start = i + 1;
    }
    false
}

fn parse_ips(arg: &str) -> Result<Vec<IpNet>, OperatorError> {
    arg.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| OperatorError::Argument(format!("bad ip or cidr {s:?}")))
        })
        .collect()
}

/// `@validateByteRange 1-255,9,10`.
pub fn parse_byte_range(arg: &str) -> Result<Box<[bool; 256]>, OperatorError> {
    let mut allowed = Box::new([false; 256]);
    for part in arg.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: u8 = lo
            .parse()
            .map_err(|_| OperatorError::Argument(format!("bad byte range {part:?}")))?;
        let hi: u8 = hi
            .parse()
            .map_err(|_| OperatorError::Argument(format!("bad byte range {part:?}")))?;
        for b in lo..=hi {
            allowed[usize::from(b)] = true;
        }
    }
    Ok(allowed)
}

fn invalid_url_encoding(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            if i + 2 >= v.len() {
                return true;
            }
            if !(v[i + 1].is_ascii_hexdigit() && v[i + 2].is_ascii_hexdigit()) {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, arg: &str, v: &str) -> bool {
        Operator::parse(name, arg)
            .unwrap()
            .matches(v.as_bytes(), false)
            .is_some()
    }

    #[test]
    fn regex_byte_mode() {
        assert!(m("rx", r"(?i)union\s+select", "1 UNION  SELECT x"));
        let re = compile_regex(r"\x{c0}").unwrap();
        assert!(re.is_match(&[0xc0]));
        assert!(compile_regex(r"a*+b").unwrap().is_match(b"aab"));
        assert!(compile_regex(r"(?>ab)").unwrap().is_match(b"ab"));
        assert!(compile_regex(r"(?:{|x)a{2}\{").unwrap().is_match(b"{aa{"));
        // Inside a class: `[` is a literal (not a nested class), `&&` / `~~` are literals (not
        // set operations), `+` after `*` is a member (not a possessive marker), a leading `]`
        // is a member, `[:digit:]` is a POSIX class.
        let class = compile_regex(r#"^[^"(),/:;<=>?![\x5c\]{}]+$"#).unwrap();
        assert!(class.is_match(b"text"));
        assert!(!class.is_match(b"a[b"));
        assert!(!class.is_match(b"a]b"));
        assert!(compile_regex(r"x[([]*?y").unwrap().is_match(b"x([y"));
        assert!(compile_regex(r"^[a&&b]+$").unwrap().is_match(b"a&b"));
        assert!(compile_regex(r"^[a~~b]+$").unwrap().is_match(b"~"));
        assert!(compile_regex(r"^[*+]$").unwrap().is_match(b"+"));
        assert!(compile_regex(r"^[]a]+$").unwrap().is_match(b"]a"));
        assert!(compile_regex(r"^[^]a]$").unwrap().is_match(b"b"));
        assert!(compile_regex(r"^[[:digit:]x]+$").unwrap().is_match(b"1x2"));
        // A `[` inside a class no longer swallows the rest of the pattern.
        assert!(
            compile_regex(r#"[\'\" ?[=<>]+|\d{2}\b"#)
                .unwrap()
                .is_match(b"12")
        );
        assert!(compile_regex(r"\$\{[^}]*}").unwrap().is_match(b"${x}"));
        assert!(matches!(
            compile_regex(r"(?=x)"),
            Err(OperatorError::Regex(_))
        ));
        assert!(matches!(
            compile_regex(r"(a)\1"),
            Err(OperatorError::Regex(_))
        ));
        let caps = Operator::parse("rx", r"(\d+)-(\d+)")
            .unwrap()
            .matches(b"x 12-34", true)
            .unwrap();
        assert_eq!(
            caps.captures,
            vec![b"12-34".to_vec(), b"12".to_vec(), b"34".to_vec()]
        );
    }

    #[test]
    fn literal_sets_of_plain_operators() {
        let lits = |name: &str, arg: &str| Operator::parse(name, arg).unwrap().required_literals();
        // `@validateByteRange` matches on a byte outside the range: those bytes.
        assert_eq!(lits("validateByteRange", "1-255"), Some(vec![vec![0]]));
        assert_eq!(lits("validateByteRange", "32-126"), None, "too many");
        assert_eq!(lits("validateByteRange", "0-255"), None, "never matches");
        assert_eq!(lits("beginsWith", "Select"), Some(vec![b"select".to_vec()]));
        assert_eq!(lits("contains", "ab"), None, "too common");
        assert_eq!(
            lits("streq", "ab"),
            Some(vec![b"ab".to_vec()]),
            "the whole value: required whatever its quality"
        );
        assert_eq!(
            lits("rx", "^(?:if|GET|get)$"),
            Some(vec![b"get".to_vec(), b"if".to_vec()])
        );
        assert_eq!(lits("rx", "^(?:if|)$"), None, "the empty string");
        // Every match of each operator contains one of its literals (case-insensitively).
        let cases: &[(&str, &str, &[&[u8]])] = &[
            ("validateByteRange", "1-255", &[b"a\0b", b"ab"]),
            (
                "containsWord",
                "select",
                &[b"1 SELECT x", b"selector", b"x select"],
            ),
            ("endsWith", "passwd", &[b"/etc/passwd", b"passwd.txt"]),
            ("streq", "admin", &[b"admin", b"ADMIN"]),
            ("rx", "^(?:if|proxy)$", &[b"if", b"proxy", b"iff", b"IF"]),
        ];
        for (name, arg, values) in cases {
            let op = Operator::parse(name, arg).unwrap();
            let set = op.required_literals().unwrap();
            for v in *values {
                let lower = v.to_ascii_lowercase();
                let has = set
                    .iter()
                    .any(|l| lower.windows(l.len()).any(|w| w == l.as_slice()));
                if op.matches(v, false).is_some() {
                    assert!(has, "@{name} {arg} on {v:?}");
                }
                assert_eq!(op.is_match(v), op.matches(v, false).is_some());
            }
        }
    }

    #[test]
    fn required_byte_prefilter_is_sound() {
        let need = required_bytes(r"(?i)<script[^>]*>").unwrap();
        assert!(need.any_in(b"x<script>"));
        assert!(!need.any_in(b"plain text"));
        assert!(required_bytes(r"a*").is_none());
        assert!(required_bytes(r"(?i)\b(?:union|select)\b").is_some());
        // The filtered operator agrees with the plain regex.
        for (pat, inputs) in [
            (r"(?i)union\s+select", &["1 UNION SELECT", "union", "x"][..]),
            (r"(?:\.\.[/\\])+", &["../x", "..\\x", "abc"][..]),
            (r"[;&|]\s*id\b", &["a; id", "idea", "|id"][..]),
        ] {
            let op = Operator::parse("rx", pat).unwrap();
            let re = compile_regex(pat).unwrap();
            for i in inputs {
                assert_eq!(
                    op.matches(i.as_bytes(), false).is_some(),
                    re.is_match(i.as_bytes()),
                    "{pat} {i}"
                );
            }
        }
    }

    #[test]
    fn phrases_and_strings() {
        assert!(m("pm", "nikto sqlmap", "Mozilla SQLMap/1.0"));
        assert!(!m("pm", "nikto sqlmap", "Mozilla"));
        assert!(m("streq", "abc", "abc"));
        assert!(m("contains", "b", "abc"));
        assert!(m("containsWord", "select", "a select b"));
        assert!(!m("containsWord", "select", "selection"));
        assert!(m("beginsWith", "ab", "abc"));
        assert!(m("endsWith", "bc", "abc"));
        assert!(m("within", "GET HEAD POST", "GET"));
        assert!(!m("within", "GET HEAD POST", "PUT"));
        assert!(!m("within", "GET", ""));
    }

    #[test]
    fn numbers_ips_validators() {
        assert!(m("gt", "5", "6"));
        assert!(!m("gt", "5", "5"));
        assert!(m("ge", "5", "5"));
        assert!(m("eq", "0", ""));
        assert!(m("lt", "10", "9x"));
        assert!(m("le", "-1", "-3"));
        assert!(m("ipMatch", "10.0.0.0/8,192.168.1.1", "10.2.3.4"));
        assert!(m("ipMatch", "::1", "::1"));
        assert!(!m("ipMatch", "10.0.0.0/8", "11.0.0.1"));
        assert!(Operator::parse("ipMatch", "nope").is_err());
        assert!(m("validateByteRange", "32-126", "a\u{1}"));
        assert!(!m("validateByteRange", "32-126", "abc"));
        assert!(m("validateUrlEncoding", "", "a%zz"));
        assert!(m("validateUrlEncoding", "", "a%2"));
        assert!(!m("validateUrlEncoding", "", "a%20"));
        assert!(
            Operator::ValidateUtf8Encoding
                .matches(&[0xff, 0xfe], false)
                .is_some()
        );
        assert!(!m("validateUtf8Encoding", "", "héllo"));
        assert!(m("unconditionalMatch", "", ""));
        assert!(matches!(
            Operator::parse("inspectFile", "x"),
            Err(OperatorError::Unsupported(_))
        ));
        assert!(matches!(
            Operator::parse("within", "%{tx.allowed_methods}"),
            Ok(Operator::Dynamic(..))
        ));
    }
}
