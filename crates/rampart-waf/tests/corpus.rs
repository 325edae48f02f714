//! Corpus harness: a deterministic sample of `shared/waf-corpus` through the built-in rules at
//! PL1, with per-class rate assertions (a little below the full-corpus figures in
//! docs/waf.md, since a sample varies). Skips, with a notice, when the corpus is absent.
//! The full table: `cargo run -p rampart-waf --release --example corpus_rates`.

use std::{path::PathBuf, sync::Arc};

use rampart_waf::{Engine, Verdict, WafPolicy, cli::case_to_request, corpus};

fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/waf-corpus");
    if dir.join("params.jsonl").is_file() && dir.join("crs-cases.jsonl").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "notice: WAF corpus not found at {}, skipping",
            dir.display()
        );
        None
    }
}

#[test]
fn builtin_rules_meet_targets_on_a_corpus_sample() {
    let Some(dir) = corpus_dir() else { return };
    let policy = WafPolicy::new(Arc::new(Engine::builtin().expect("builtin rules")));
    let mut report = corpus::CorpusReport::default();
    let params = corpus::read_jsonl(&dir.join("params.jsonl"), 7).expect("params");
    let crs = corpus::read_jsonl(&dir.join("crs-cases.jsonl"), 3).expect("crs cases");
    corpus::run_params(&policy, &params, &mut report);
    corpus::run_crs(&policy, &crs, &mut report);
    println!("{}", report.table());
    let rate = |k: &str| report.params.get(k).copied().unwrap_or_default();
    assert!(rate("sqli").total > 1000, "sample too small");
    assert!(rate("sqli").percent() >= 98.5, "sqli {:?}", rate("sqli"));
    assert!(rate("xss").percent() >= 95.0, "xss {:?}", rate("xss"));
    assert!(
        rate("path-traversal").percent() >= 80.0,
        "pt {:?}",
        rate("path-traversal")
    );
    assert!(rate("cmdi").percent() >= 70.0, "cmdi {:?}", rate("cmdi"));
    assert_eq!(rate("norm").blocked, 0, "benign form values blocked");
    assert!(
        rate("benign").percent() <= 10.0,
        "historic FPs {:?}",
        rate("benign")
    );
    let agree = report.crs_agree_total();
    assert!(agree.percent() >= 96.0, "crs agreement {agree:?}");
}

/// What a verdict says, for comparing two engines: outcome, score and every (rule, target).
fn summary(v: &Verdict) -> (String, u32, Vec<(u32, String)>) {
    (
        v.outcome.as_str().to_string(),
        v.score,
        v.matches
            .iter()
            .map(|m| (m.rule_id, m.target.clone()))
            .collect(),
    )
}

/// Runs every case through `on` and `off` (same rules, prefilters off) and returns how many
/// cases had at least one match; panics on the first case whose verdicts differ.
fn compare(on: &WafPolicy, off: &WafPolicy, cases: &[serde_json::Value]) -> usize {
    let mut matched = 0;
    for c in cases {
        let Some((key, req)) = case_to_request(c, &on.limits) else {
            continue;
        };
        let a = summary(&on.engine.inspect(&req, on, None));
        let b = summary(&off.engine.inspect(&req, off, None));
        assert_eq!(a, b, "{key}: prefilters on (left) and off (right) disagree");
        if !a.2.is_empty() {
            matched += 1;
        }
    }
    matched
}

/// Builds the rules twice (prefilters on and off), compares them at PL4 on `cases` and
/// returns how many cases matched a rule.
fn compare_at_pl4(name: &str, cases: &[serde_json::Value], build: impl Fn() -> Engine) -> usize {
    let t = std::time::Instant::now();
    let on = WafPolicy::new(Arc::new(build())).with_paranoia(4);
    let off = WafPolicy::new(Arc::new(build().with_prefilters(false))).with_paranoia(4);
    let matched = compare(&on, &off, cases);
    println!(
        "{name} PL4: {} cases, {matched} with matches, {:?}",
        cases.len(),
        t.elapsed()
    );
    matched
}

/// The literal prefilter and the collection-presence skip only save work: on the corpus
/// sample every verdict, score and matched (rule, target) is the same with them off. Runs the
/// built-in rules at PL4 (every rule runs, so every prefilter is exercised) and PL1, and
/// Debian's CRS when installed.
#[test]
fn prefilters_do_not_change_verdicts() {
    let Some(dir) = corpus_dir() else { return };
    let params = corpus::read_jsonl(&dir.join("params.jsonl"), 5).expect("params");
    let crs = corpus::read_jsonl(&dir.join("crs-cases.jsonl"), 1).expect("crs cases");
    let mut cases = params;
    cases.extend(crs);
    let matched = compare_at_pl4("built-in", &cases, || {
        Engine::builtin().expect("builtin rules")
    });
    // The comparison means something only if many cases match rules.
    assert!(matched > 3000, "only {matched} cases matched");
}

/// The same with Debian's CRS 3.3.4 (chains, `skipAfter`, `ctl`, `TX` rules), on a smaller
/// sample of `params.jsonl` (the CRS runs about six times slower than the built-in rules).
#[test]
fn prefilters_do_not_change_crs_verdicts() {
    let Some(dir) = corpus_dir() else { return };
    let crs_dir = std::path::Path::new("/usr/share/modsecurity-crs");
    if !crs_dir.join("rules").is_dir() {
        eprintln!(
            "notice: OWASP CRS not installed at {}, skipping",
            crs_dir.display()
        );
        return;
    }
    let mut cases = corpus::read_jsonl(&dir.join("params.jsonl"), 40).expect("params");
    cases.extend(corpus::read_jsonl(&dir.join("crs-cases.jsonl"), 1).expect("crs cases"));
    let matched = compare_at_pl4("CRS", &cases, || Engine::crs(crs_dir).expect("crs"));
    assert!(matched > 2000, "CRS: only {matched} cases matched");
}
