//! Literal prefilters: one Aho-Corasick pass over a value selects the rules worth running on it.
//!
//! For each prefiltered rule the engine derives, from the regex's syntax tree (or the `@pm`
//! phrase list), a set of literals at least one of which every match must contain. Matching
//! is ASCII case-insensitive, so the set over-approximates: a value with none of a rule's
//! literals cannot match that rule, and the rule is skipped without running its regex. A
//! rule whose regex yields no useful set (e.g. `.*`, a pattern that can match the empty
//! string, a class of letters) is never skipped.
//!
//! The literals of every prefiltered rule go into one automaton (a DFA). A value is scanned
//! once per distinct [`reduce`]d transformation chain: most chains cannot change a clean value
//! beyond ASCII case, so most rules share the scan of the raw value.

use aho_corasick::{
    AhoCorasick, AhoCorasickBuilder, Anchored, MatchKind,
    automaton::{Automaton, StateID},
};
use regex_syntax::hir::{Class, Hir, HirKind};

use crate::transform::Transform;

/// Maximum number of literals kept for one regex node.
const MAX_SET: usize = 256;
/// Maximum length of a literal built by concatenation.
const MAX_LEN: usize = 24;

/// Literals every match of `pattern` contains one of (lowercase, compared ASCII
/// case-insensitively), or `None` when no useful set exists.
pub fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    let set = need(&hir)?;
    (quality(&set) >= MIN_QUALITY).then_some(set)
}

/// How selective a literal set is: the weight of its weakest literal, where a byte weighs 2
/// when it is a letter or digit, 6 for a line break, 1 for other whitespace, 3 for punctuation common in benign text
/// (`.,-()':/_!?@+;=*&`) and 8 for any other byte (`<>|$` ...); capped at 16. Literals that
/// benign values often contain ("or", "id", ".", "(") score below [`MIN_QUALITY`].
pub fn quality(set: &[Vec<u8>]) -> u32 {
    set.iter()
        .map(|l| {
            l.iter()
                .map(|c| match c {
                    c if c.is_ascii_alphanumeric() => 2,
                    // Line breaks are rare outside bodies (headers, paths, most fields).
                    b'\n' | b'\r' => 6,
                    c if c.is_ascii_whitespace() => 1,
                    b'.' | b',' | b'-' | b'(' | b')' | b'\'' | b':' | b'/' | b'_' | b'!' | b'?'
                    | b'@' | b'+' | b';' | b'=' | b'*' | b'&' => 3,
                    _ => 8,
                })
                .sum::<u32>()
                .min(16)
        })
        .min()
        .unwrap_or(0)
}

/// The least [`quality`] worth a prefilter (three letters, two common punctuation bytes or one
/// rare byte).
pub const MIN_QUALITY: u32 = 6;

/// Bytes a class matches, folded to lowercase, when there are at most `max` of them.
fn class_bytes(c: &Class, max: usize) -> Option<Vec<u8>> {
    let mut set = [false; 256];
    match c {
        Class::Bytes(b) => {
            for r in b.ranges() {
                if usize::from(r.end() - r.start()) >= 2 * max + 2 {
                    return None;
                }
                for x in r.start()..=r.end() {
                    set[usize::from(x.to_ascii_lowercase())] = true;
                }
            }
        }
        Class::Unicode(u) => {
            for r in u.ranges() {
                let (a, z) = (u32::from(r.start()), u32::from(r.end()));
                if z > 0x7f || z - a >= 2 * max as u32 + 2 {
                    return None;
                }
                for x in a..=z {
                    let b = u8::try_from(x).ok()?;
                    set[usize::from(b.to_ascii_lowercase())] = true;
                }
            }
        }
    }
    let out: Vec<u8> = (0..=255u8).filter(|b| set[usize::from(*b)]).collect();
    (out.len() <= max).then_some(out)
}

fn cross(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len().saturating_mul(b.len()) > MAX_SET {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            if x.len() + y.len() > MAX_LEN {
                return None;
            }
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    Some(out)
}

/// The exact (case-folded) strings a node matches, when there are few of them.
fn exact(h: &Hir) -> Option<Vec<Vec<u8>>> {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Some(vec![Vec::new()]),
        HirKind::Literal(l) => (l.0.len() <= MAX_LEN).then(|| vec![l.0.to_ascii_lowercase()]),
        HirKind::Class(c) => class_bytes(c, 4).map(|bs| bs.into_iter().map(|b| vec![b]).collect()),
        HirKind::Capture(c) => exact(&c.sub),
        HirKind::Repetition(r) => {
            let n = r.max.filter(|m| *m == r.min && *m <= 4)?;
            let one = exact(&r.sub)?;
            let mut acc = vec![Vec::new()];
            for _ in 0..n {
                acc = cross(&acc, &one)?;
            }
            Some(acc)
        }
        HirKind::Concat(xs) => {
            let mut acc = vec![Vec::new()];
            for x in xs {
                acc = cross(&acc, &exact(x)?)?;
            }
            Some(acc)
        }
        HirKind::Alternation(xs) => {
            let mut out: Vec<Vec<u8>> = Vec::new();
            for x in xs {
                out.extend(exact(x)?);
                if out.len() > MAX_SET {
                    return None;
                }
            }
            Some(out)
        }
    }
}

/// For `y{n,m}` with n >= 1: the strings one copy of `y` can match, when `y` is finite or a
/// class of at most 32 bytes (case-folded).
fn first_copy(h: &Hir) -> Option<Vec<Vec<u8>>> {
    let HirKind::Repetition(r) = h.kind() else {
        return None;
    };
    if r.min == 0 {
        return None;
    }
    if let Some(e) = exact(&r.sub) {
        return Some(e);
    }
    match r.sub.kind() {
        HirKind::Class(c) => class_bytes(c, 32).map(|bs| bs.into_iter().map(|b| vec![b]).collect()),
        _ => None,
    }
}

/// A set of literals every match of the node contains one of.
fn need(h: &Hir) -> Option<Vec<Vec<u8>>> {
    if let Some(e) = exact(h) {
        if e.iter().all(|s| !s.is_empty()) {
            return Some(e);
        }
    }
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) | HirKind::Literal(_) => None,
        HirKind::Class(c) => class_bytes(c, 24).map(|bs| bs.into_iter().map(|b| vec![b]).collect()),
        HirKind::Capture(c) => need(&c.sub),
        HirKind::Repetition(r) => {
            if r.min == 0 {
                return None;
            }
            let one = need(&r.sub);
            // `x{n,}` with n >= 2 and a finite `x`: every match holds n copies in a row, so
            // the product of up to four copies is required (`\.{2,}` needs `..`).
            let copies = exact(&r.sub)
                .filter(|e| r.min >= 2 && e.iter().all(|s| !s.is_empty()))
                .and_then(|e| {
                    let mut acc = e.clone();
                    for _ in 1..r.min.min(4) {
                        acc = cross(&acc, &e)?;
                    }
                    Some(acc)
                });
            match (one, copies) {
                (Some(o), Some(c)) if quality(&o) >= quality(&c) => Some(o),
                (_, Some(c)) => Some(c),
                (o, None) => o,
            }
        }
        HirKind::Alternation(xs) => {
            let mut out: Vec<Vec<u8>> = Vec::new();
            for x in xs {
                out.extend(need(x)?);
                if out.len() > MAX_SET {
                    return None;
                }
            }
            Some(out)
        }
        HirKind::Concat(xs) => {
            let mut best: Option<Vec<Vec<u8>>> = None;
            let mut consider = |cand: Vec<Vec<u8>>| {
                if cand.is_empty() || cand.iter().any(Vec::is_empty) {
                    return;
                }
                let better = match &best {
                    None => true,
                    Some(b) => {
                        let (qc, qb) = (quality(&cand), quality(b));
                        qc > qb || (qc == qb && cand.len() < b.len())
                    }
                };
                if better {
                    best = Some(cand);
                }
            };
            // Runs of consecutive exact children, as one product (longer literals).
            let mut run: Option<Vec<Vec<u8>>> = None;
            for x in xs {
                match exact(x) {
                    Some(e) => {
                        run = match run.take() {
                            None => Some(e),
                            Some(r) => match cross(&r, &e) {
                                Some(p) => Some(p),
                                None => {
                                    consider(r);
                                    Some(e)
                                }
                            },
                        };
                    }
                    None => {
                        if let Some(r) = run.take() {
                            // A run followed by `y{n,}` (n >= 1): the run and the first copy
                            // of `y` are adjacent (`on[a-z]{3,}` needs `ona`..`onz`).
                            if let Some(p) = first_copy(x).and_then(|f| cross(&r, &f)) {
                                consider(p);
                            }
                            consider(r);
                        }
                        if let Some(n) = need(x) {
                            consider(n);
                        }
                    }
                }
            }
            if let Some(r) = run.take() {
                consider(r);
            }
            best
        }
    }
}

/// Every string `pattern` can match, when it is anchored at both ends (`^...$`, not in
/// multi-line mode) and its language is finite and small (at most 256 strings of at most 64
/// bytes): exact bytes, sorted. Such a regex matches a value exactly when the value is one of
/// them, and then the match is the whole value.
pub fn exact_language(pattern: &str) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::Look;
    // Cheap test first: most patterns are not anchored at both ends.
    if !(pattern.starts_with('^') || pattern.starts_with("(?")) || !pattern.ends_with('$') {
        return None;
    }
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    let HirKind::Concat(xs) = hir.kind() else {
        return None;
    };
    let (first, rest) = xs.split_first()?;
    let (last, middle) = rest.split_last()?;
    if !matches!(first.kind(), HirKind::Look(Look::Start))
        || !matches!(last.kind(), HirKind::Look(Look::End))
    {
        return None;
    }
    let mut acc = vec![Vec::new()];
    for x in middle {
        acc = cross_exact(&acc, &language(x)?)?;
    }
    acc.sort();
    acc.dedup();
    Some(acc)
}

/// The strings a node matches (exact bytes), when few and finite; no anchors inside.
fn language(h: &Hir) -> Option<Vec<Vec<u8>>> {
    const MAX: usize = 256;
    match h.kind() {
        HirKind::Empty => Some(vec![Vec::new()]),
        HirKind::Look(_) => None,
        HirKind::Literal(l) => Some(vec![l.0.to_vec()]),
        HirKind::Class(Class::Bytes(b)) => {
            let n: usize = b
                .ranges()
                .iter()
                .map(|r| usize::from(r.end() - r.start()) + 1)
                .sum();
            (n <= 16).then(|| {
                b.ranges()
                    .iter()
                    .flat_map(|r| (r.start()..=r.end()).map(|c| vec![c]))
                    .collect()
            })
        }
        HirKind::Class(Class::Unicode(u)) => {
            let mut out = Vec::new();
            for r in u.ranges() {
                let (a, z) = (u32::from(r.start()), u32::from(r.end()));
                if z > 0x7f || out.len() + (z - a) as usize >= 16 {
                    return None;
                }
                out.extend(
                    (a..=z)
                        .filter_map(|c| u8::try_from(c).ok())
                        .map(|c| vec![c]),
                );
            }
            Some(out)
        }
        HirKind::Capture(c) => language(&c.sub),
        HirKind::Repetition(r) => {
            let max = r.max.filter(|m| *m <= 4)?;
            let one = language(&r.sub)?;
            let mut out = Vec::new();
            let mut acc = vec![Vec::new()];
            for n in 0..=max {
                if n >= r.min {
                    out.extend(acc.iter().cloned());
                }
                if n < max {
                    acc = cross_exact(&acc, &one)?;
                }
            }
            (out.len() <= MAX).then_some(out)
        }
        HirKind::Concat(xs) => {
            let mut acc = vec![Vec::new()];
            for x in xs {
                acc = cross_exact(&acc, &language(x)?)?;
            }
            Some(acc)
        }
        HirKind::Alternation(xs) => {
            let mut out = Vec::new();
            for x in xs {
                out.extend(language(x)?);
                if out.len() > MAX {
                    return None;
                }
            }
            Some(out)
        }
    }
}

/// Every `a` followed by every `b`, when at most 256 strings of at most 64 bytes.
fn cross_exact(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len().saturating_mul(b.len()) > 256 {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            if x.len() + y.len() > 64 {
                return None;
            }
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    Some(out)
}

/// The part of `chain` that matters for a case-insensitive literal scan of a value with these
/// [`crate::transform::features`]: leading transformations that cannot change the value are
/// dropped; then, when every remaining one commutes with ASCII case folding, the case
/// transformations are dropped too. Scanning `reduce(chain)(v)` ASCII case-insensitively finds
/// the same literals as scanning `chain(v)`.
pub fn reduce(chain: &[Transform], features: u32) -> Vec<Transform> {
    reduce_tail(chain, reduce_start(chain, features))
}

/// Where [`reduce`] starts keeping transformations: the leading ones before this index
/// cannot change the value (or only its case, with everything after them case-free).
pub fn reduce_start(chain: &[Transform], features: u32) -> usize {
    chain
        .iter()
        .enumerate()
        .position(|(i, t)| {
            !(t.is_noop_given(features)
                || (t.only_case_given(features) && chain[i + 1..].iter().all(|u| case_free(*u))))
        })
        .unwrap_or(chain.len())
}

/// [`reduce_start`] for one chain, precomputed as two feature masks per position: a
/// transformation stops the drop when the value has a bit of its no-op mask and a bit of its
/// case mask (or [`crate::transform::F_ALWAYS`] when what follows it is not case-free).
#[derive(Debug, Clone)]
pub struct ChainStops(Vec<(u32, u32)>);

impl ChainStops {
    /// Precompute for `chain`.
    pub fn new(chain: &[Transform]) -> Self {
        Self(
            chain
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let case = if chain[i + 1..].iter().all(|u| case_free(*u)) {
                        t.case_mask()
                    } else {
                        crate::transform::F_ALWAYS
                    };
                    (t.noop_mask(), case)
                })
                .collect(),
        )
    }

    /// The same as [`reduce_start`]`(chain, features)`.
    pub fn start(&self, features: u32) -> usize {
        let f = features | crate::transform::F_ALWAYS;
        self.0
            .iter()
            .position(|(noop, case)| f & noop != 0 && f & case != 0)
            .unwrap_or(self.0.len())
    }
}

/// [`reduce`]'s result from its start index (it depends on the features only through it):
/// the tail, without its case transformations when every one of them commutes with case
/// folding.
pub fn reduce_tail(chain: &[Transform], start: usize) -> Vec<Transform> {
    let tail = chain.get(start..).unwrap_or(&[]);
    if tail.iter().all(|t| case_free(*t)) {
        tail.iter()
            .copied()
            .filter(|t| !matches!(t, Transform::Lowercase | Transform::Uppercase))
            .collect()
    } else {
        tail.to_vec()
    }
}

/// Transformations whose output, ASCII case folded, does not depend on the input's case.
fn case_free(t: Transform) -> bool {
    use Transform::*;
    matches!(
        t,
        Lowercase
            | Uppercase
            | RemoveWhitespace
            | CompressWhitespace
            | RemoveNulls
            | ReplaceNulls
            | Trim
            | TrimLeft
            | TrimRight
            | RemoveComments
            | ReplaceComments
            | RemoveCommentsChar
            | NormalisePath
            | NormalisePathWin
            | CmdLine
            | ShellNormalise
    )
}

/// An automaton over the literals of several rules; pattern `i` belongs to rule slot
/// `owner[i]`.
#[derive(Debug)]
pub struct SlotMatcher {
    scanner: Scanner,
    owner: Vec<u16>,
}

#[derive(Debug)]
enum Scanner {
    /// Walked byte by byte (no per-call search setup: most values are short).
    Dfa(Box<aho_corasick::dfa::DFA>, StateID),
    /// Past a few thousand literals a DFA grows large: the library's choice, overlapping
    /// search.
    Other(AhoCorasick),
}

impl SlotMatcher {
    /// Build from `(slot, literals)` pairs; `None` when there is no literal.
    pub fn build(rules: &[(u16, &[Vec<u8>])]) -> Option<Self> {
        let mut pats: Vec<&[u8]> = Vec::new();
        let mut owner = Vec::new();
        for (slot, lits) in rules {
            for l in lits.iter() {
                pats.push(l);
                owner.push(*slot);
            }
        }
        if pats.is_empty() {
            return None;
        }
        let scanner = if pats.len() <= 4000 {
            let dfa = aho_corasick::dfa::Builder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(&pats)
                .ok()?;
            let start = dfa.start_state(Anchored::No).ok()?;
            Scanner::Dfa(Box::new(dfa), start)
        } else {
            Scanner::Other(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(pats)
                    .ok()?,
            )
        };
        Some(Self { scanner, owner })
    }

    /// Set the bit of every slot with a literal in `v`.
    pub fn scan(&self, v: &[u8], bits: &mut [u64]) {
        let mut set = |pattern: usize| {
            let slot = usize::from(self.owner[pattern]);
            if let Some(w) = bits.get_mut(slot / 64) {
                *w |= 1 << (slot % 64);
            }
        };
        match &self.scanner {
            Scanner::Dfa(dfa, start) => {
                // Standard semantics: a match state holds every literal ending here
                // (overlapping ones included).
                let mut sid = *start;
                for &b in v {
                    sid = dfa.next_state(Anchored::No, sid, b);
                    if dfa.is_special(sid) {
                        if dfa.is_match(sid) {
                            for k in 0..dfa.match_len(sid) {
                                set(dfa.match_pattern(sid, k).as_usize());
                            }
                        } else if dfa.is_dead(sid) {
                            break;
                        }
                    }
                }
            }
            Scanner::Other(ac) => {
                for m in ac.find_overlapping_iter(v) {
                    set(m.pattern().as_usize());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_keeps_what_can_change_the_value() {
        use Transform::*;
        let f = crate::transform::features(b"Hello World");
        assert_eq!(reduce(&[UrlDecodeUni, Lowercase], f), vec![]);
        assert_eq!(
            reduce(&[UrlDecodeUni, Lowercase, RemoveWhitespace], f),
            vec![RemoveWhitespace]
        );
        assert_eq!(
            reduce(
                &[
                    UrlDecodeUni,
                    HtmlEntityDecode,
                    RemoveNulls,
                    RemoveWhitespace
                ],
                f
            ),
            vec![RemoveWhitespace]
        );
        assert_eq!(
            reduce(&[UrlDecodeUni, ShellNormalise], f),
            vec![],
            "no quote, backslash or $: shellNormalise only lowercases"
        );
        let q = crate::transform::features(b"w'h'oami");
        assert_eq!(
            reduce(&[UrlDecodeUni, ShellNormalise], q),
            vec![ShellNormalise]
        );
        let g = crate::transform::features(b"A%41");
        assert_eq!(
            reduce(&[Lowercase, UrlDecodeUni], g),
            vec![Lowercase, UrlDecodeUni],
            "a decoder after a case change is kept with it"
        );
    }

    fn lits(p: &str) -> Option<Vec<String>> {
        required_literals(p).map(|s| {
            s.into_iter()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .collect()
        })
    }

    #[test]
    fn extracts_useful_literals() {
        assert_eq!(
            lits(r"(?i)\bunion\s+select\b"),
            Some(vec!["select".to_string()])
        );
        assert_eq!(lits(r"(?i)\b(?:or|and)\b"), None, "too common");
        assert_eq!(lits(r"\("), None, "too common");
        assert!(lits(r"<").is_some());
        let s = lits(r"(?i)(?:sleep|benchmark)\s*\(").unwrap();
        assert!(
            s.contains(&"(".to_string()) || s.contains(&"sleep".to_string()),
            "{s:?}"
        );
        assert_eq!(lits(r"a*"), None);
        assert_eq!(lits(r".*"), None);
        assert_eq!(lits(r"[a-z]+"), None);
        assert_eq!(lits(r"^(?:GET|HEAD)$").map(|v| v.len()), Some(2));
        assert!(lits(r"<script[^>]*>").is_some());
        // n >= 2 copies of a finite piece in a row: their product.
        assert_eq!(lits(r"\.{2,}/"), Some(vec!["..".to_string()]));
        assert_eq!(
            lits(r"(?:\.|0x2e){2,}").map(|v| v.len()),
            Some(4),
            "'..' '.0x2e' '0x2e.' '0x2e0x2e'"
        );
        assert_eq!(lits(r"a{2,}"), None, "'aa' is still too common");
        // Line breaks are selective enough.
        assert_eq!(
            lits(r"[\n\r]"),
            Some(vec!["\n".to_string(), "\r".to_string()])
        );
        assert_eq!(lits(r"\s"), None);
        // A literal followed by a repeated class: the literal and one byte of it.
        assert_eq!(
            lits(r"(?i)\son[a-z]{3,}").map(|v| v.len()),
            Some(26),
            "ona .. onz"
        );
    }

    #[test]
    fn slot_matcher_finds_overlapping_and_nested_literals() {
        let lits: Vec<Vec<Vec<u8>>> = vec![
            vec![b"abc".to_vec()],
            vec![b"bc".to_vec()],
            vec![b"c".to_vec(), b"zz".to_vec()],
            vec![b"xabcx".to_vec()],
            vec![b"abd".to_vec()],
            vec![b"cxa".to_vec()],
        ];
        let rules: Vec<(u16, &[Vec<u8>])> = lits
            .iter()
            .enumerate()
            .map(|(i, l)| (u16::try_from(i * 13).unwrap(), l.as_slice()))
            .collect();
        let m = SlotMatcher::build(&rules).unwrap();
        let hits = |v: &[u8]| {
            let mut bits = [0u64; 2];
            m.scan(v, &mut bits);
            (0..6)
                .filter(|i| bits[i * 13 / 64] & (1 << (i * 13 % 64)) != 0)
                .collect::<Vec<_>>()
        };
        assert_eq!(hits(b"XABCX"), [0, 1, 2, 3]);
        assert_eq!(hits(b"abcxabd"), [0, 1, 2, 4, 5]);
        assert_eq!(hits(b"zz"), [2]);
        assert_eq!(hits(b"ab"), Vec::<usize>::new());
        assert_eq!(hits(b""), Vec::<usize>::new());
    }

    #[test]
    fn chain_stops_agree_with_reduce_start() {
        use Transform::*;
        let chains: &[&[Transform]] = &[
            &[],
            &[UrlDecodeUni, Lowercase],
            &[UrlDecodeUni, Lowercase, RemoveWhitespace],
            &[Lowercase, UrlDecodeUni],
            &[UrlDecodeUni, ShellNormalise],
            &[ShellNormalise, Base64Decode],
            &[
                Utf8ToUnicode,
                UrlDecodeUni,
                HtmlEntityDecode,
                JsDecode,
                CssDecode,
                RemoveNulls,
            ],
            &[UrlDecodeUni, ReplaceComments],
            &[NormalisePathWin, Lowercase],
            &[Length],
        ];
        let values: &[&[u8]] = &[
            b"", b"abc", b"ABC", b"a%41", b"w'h'o", b"a b", b"x\\y", b"0x41", b"a&amp;", b"\0",
            b"\xe9", b"/*x*/", b"$IFS", b"a+b", b"#-<", b"A'B\"C",
        ];
        for c in chains {
            let stops = ChainStops::new(c);
            for v in values {
                let f = crate::transform::features(v);
                assert_eq!(stops.start(f), reduce_start(c, f), "{c:?} on {v:?}");
            }
            for bit in 0..16 {
                let f = 1u32 << bit;
                assert_eq!(stops.start(f), reduce_start(c, f), "{c:?} on bit {bit}");
            }
        }
    }

    #[test]
    fn exact_languages_of_anchored_regexes() {
        let lang = |p: &str| {
            let re = crate::operator::compile_regex(p).unwrap();
            exact_language(re.as_str()).map(|v| {
                v.into_iter()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(lang(r"^(?:GET|HEAD)$").unwrap(), ["GET", "HEAD"]);
        assert_eq!(lang(r"^$").unwrap(), [""]);
        assert_eq!(
            lang(r"^HTTP/(?:1\.[01]|2(?:\.0)?)$").unwrap(),
            ["HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/2.0"]
        );
        assert_eq!(lang(r"^(?i)ab$").unwrap(), ["AB", "Ab", "aB", "ab"]);
        assert_eq!(lang(r"^(?:GET|HEAD)"), None, "not anchored at the end");
        assert_eq!(lang(r"(?m)^a$"), None, "multi-line anchors");
        assert_eq!(lang(r"^a+$"), None, "infinite");
        assert_eq!(lang(r"^\d{1,8}$"), None, "too many strings");
        // The regex matches a value exactly when the value is in the set.
        let pats = [
            r"^(?:GET|HEAD|POST)$",
            r"^HTTP/(?:1\.[01]|2(?:\.0)?|3(?:\.0)?)$",
            r"^(?i)chunked$",
            r"^0?$",
            r"^(?:proxy|if|x-http-method)$",
        ];
        let inputs: &[&[u8]] = &[
            b"",
            b"0",
            b"00",
            b"GET",
            b"get",
            b"GET ",
            b" GET",
            b"POST",
            b"HTTP/1.1",
            b"HTTP/1.2",
            b"HTTP/2",
            b"HTTP/3.0",
            b"HTTP/3.",
            b"chunked",
            b"CHUNKED",
            b"chunked\n",
            b"if",
            b"iff",
            b"proxy",
            b"x-http-method",
            b"GET\nHEAD",
        ];
        for p in pats {
            let re = crate::operator::compile_regex(p).unwrap();
            let set = exact_language(re.as_str()).expect(p);
            for i in inputs {
                let inside = set.iter().any(|s| s.as_slice() == *i);
                assert_eq!(
                    re.is_match(i),
                    inside,
                    "{p} on {:?}",
                    String::from_utf8_lossy(i)
                );
                if inside {
                    assert_eq!(
                        re.find(i).map(|m| m.as_bytes()),
                        Some(*i),
                        "the whole value"
                    );
                }
            }
        }
    }

    #[test]
    fn prefilter_is_sound_on_samples() {
        let pats = [
            r"(?i)\bunion\b(?:\s|/\*.*?\*/)*(?:all|distinct|select)\b",
            r"(?i)(?:[;&|`]|\$\(|\|\||&&)\s*(?:id|whoami|cat)\b",
            r"(?:^|[\\/])\.\.[\\/]",
            r"(?i)<\?(?:php\b|=|[\s\n]|$)",
            r"(?i)java\.lang\.(?:runtime|processbuilder)",
            r"\xac\xed\x00\x05|rO0AB",
            r"(?:^|[\\/;]|0x2f|0x5c)(?:\.|0x2e){2,}(?:[\\/;]|0x2f|0x5c)",
            r"(?:[\\/]\.){3,}[\\/]|(?:\.\.[\\/]{2,}){2}",
            r"[\n\r]+\s*(?:location|host)\s*:",
            r"(?i)[\s\x22'`;/0-9=]on[a-z]{3,}\s*=",
        ];
        let inputs: &[&[u8]] = &[
            b"1 UNION/**/SELECT x",
            b"a; ID",
            b"..\\x",
            b"<?PHP echo",
            b"JAVA.LANG.Runtime",
            b"\xac\xed\x00\x05xx",
            b"xrO0ABc",
            b"a/0x2e../b",
            b"x;..0X2E;",
            b"/./././",
            b"..//..//",
            b"x\r\n Host: y",
            b"<img src=x ONERROR=alert(1)>",
            b"/onload =x",
            b"hello world",
        ];
        for p in pats {
            let re = crate::operator::compile_regex(p).unwrap();
            let Some(set) = required_literals(re.as_str()) else {
                continue; // no selective literal: the rule always runs
            };
            let m = SlotMatcher::build(&[(0, &set)]).unwrap();
            for i in inputs {
                let mut bits = [0u64; 1];
                m.scan(i, &mut bits);
                if re.is_match(i) {
                    assert_eq!(
                        bits[0],
                        1,
                        "{p} on {:?}: literals {set:?}",
                        String::from_utf8_lossy(i)
                    );
                }
            }
        }
    }
}
