//! Print detection and false-positive rates of the built-in rules (or a CRS directory given as
//! the first argument) on the whole WAF corpus.
//!
//! `cargo run -p rampart-waf --release --example corpus_rates [-- CRS_DIR [PARANOIA]]`
//! Set `WAF_MISSES=1` to list every wrong verdict, `WAF_DUMP=1` to print every CRS case's
//! outcome and matched ids, `WAF_CASE=<key>[,<key>...]` to print the
//! whole verdict (matches with targets and excerpts) of those cases only.

use std::{path::PathBuf, sync::Arc};

use rampart_waf::{Engine, WafPolicy, corpus};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/waf-corpus");
    let mut args = std::env::args().skip(1);
    let engine = match args.next() {
        Some(crs) if crs != "builtin" => Engine::crs(std::path::Path::new(&crs))?,
        _ => Engine::builtin()?,
    };
    let pl: u8 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    eprintln!("{}", engine.report());
    let policy = WafPolicy::new(Arc::new(engine)).with_paranoia(pl);
    if std::env::var_os("WAF_DUMP").is_some() {
        // Every crs-cases.jsonl case: key, outcome and matched rule ids (for id-level analysis).
        for c in corpus::read_jsonl(&dir.join("crs-cases.jsonl"), 1)? {
            if let Some((key, req)) = rampart_waf::cli::case_to_request(&c, &policy.limits) {
                let v = policy.engine.inspect(&req, &policy, None);
                println!("{key}\t{}\t{:?}", v.outcome.as_str(), v.rule_ids());
            }
        }
        return Ok(());
    }
    if let Ok(keys) = std::env::var("WAF_CASE") {
        let keys: Vec<&str> = keys.split(',').collect();
        for file in ["params.jsonl", "crs-cases.jsonl"] {
            for c in corpus::read_jsonl(&dir.join(file), 1)? {
                let Some((key, req)) = rampart_waf::cli::case_to_request(&c, &policy.limits) else {
                    continue;
                };
                if keys.contains(&key.as_str()) {
                    let v = policy.engine.inspect(&req, &policy, None);
                    println!("{key}: {} score {}", v.outcome.as_str(), v.score);
                    for m in &v.matches {
                        println!("  {} {} {:?}", m.rule_id, m.target, m.excerpt);
                    }
                    for e in req.entries() {
                        println!(
                            "    [{}:{}] {:?}",
                            e.coll,
                            e.key,
                            String::from_utf8_lossy(e.value)
                        );
                    }
                }
            }
        }
        return Ok(());
    }
    let mut report = corpus::CorpusReport::default();
    let params = corpus::read_jsonl(&dir.join("params.jsonl"), 1)?;
    let crs = corpus::read_jsonl(&dir.join("crs-cases.jsonl"), 1)?;
    let t = std::time::Instant::now();
    corpus::run_params(&policy, &params, &mut report);
    corpus::run_crs(&policy, &crs, &mut report);
    let n = params.len() + crs.len();
    print!("{}", report.table());
    println!(
        "{} requests in {:.2?} ({:.1} µs/request)",
        n,
        t.elapsed(),
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    if std::env::var_os("WAF_MISSES").is_some() {
        for m in &report.misses {
            println!("{m}");
        }
    }
    Ok(())
}
