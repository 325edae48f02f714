//! Corpus harness: a deterministic sample of `shared/waf-corpus` through the built-in rules at
//! PL1, with per-class rate assertions (a little below the full-corpus figures in
//! docs/waf.md, since a sample varies). Skips, with a notice, when the corpus is absent.
//! The full table: `cargo run -p rampart-waf --release --example corpus_rates`.

use std::{path::PathBuf, sync::Arc};

use rampart_waf::{Engine, WafPolicy, corpus};

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
    assert!(agree.percent() >= 75.0, "crs agreement {agree:?}");
}
