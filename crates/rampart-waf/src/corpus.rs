//! Corpus measurement shared by the test harness and `examples/corpus_rates.rs`: runs
//! `params.jsonl` and `crs-cases.jsonl` (see `shared/waf-corpus/README.md`) through an engine
//! and tallies detection / false-positive rates per attack class and per CRS family.

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;

use crate::{cli::case_to_request, config::WafPolicy, engine::Outcome};

/// Blocked / total for one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rate {
    /// Blocked count.
    pub blocked: usize,
    /// Total count.
    pub total: usize,
}

impl Rate {
    /// Blocked fraction in percent (0 when empty).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.blocked as f64 / self.total as f64
        }
    }
}

/// Results of a corpus run.
#[derive(Debug, Clone, Default)]
pub struct CorpusReport {
    /// `params.jsonl`: per kind (`sqli`, `xss`, `path-traversal`, `cmdi`, `norm`, `benign`).
    pub params: BTreeMap<String, Rate>,
    /// `crs-cases.jsonl`: agreement with the reference PL1 verdict, per family.
    pub crs_agree: BTreeMap<String, Rate>,
    /// `crs-cases.jsonl`: cases passing their `expect_ids` / `no_expect_ids`, per family.
    pub crs_ids: BTreeMap<String, Rate>,
    /// Keys of wrong verdicts (params: attack passed or benign blocked; crs: disagreement).
    pub misses: Vec<String>,
}

/// Read a JSONL file, keeping every `every`-th line (1 = all).
pub fn read_jsonl(path: &Path, every: usize) -> std::io::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(i, _)| i % every.max(1) == 0)
        .filter_map(|(_, l)| serde_json::from_str(l).ok())
        .collect())
}

/// Run params cases.
pub fn run_params(policy: &WafPolicy, cases: &[Value], report: &mut CorpusReport) {
    for c in cases {
        let kind = c
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let Some((key, req)) = case_to_request(c, &policy.limits) else {
            continue;
        };
        let v = policy.engine.inspect(&req, policy, None);
        let blocked = v.outcome != Outcome::Pass;
        let r = report.params.entry(kind.clone()).or_default();
        r.total += 1;
        if blocked {
            r.blocked += 1;
        }
        let attack = c.get("label").and_then(Value::as_str) == Some("anom");
        if blocked != attack {
            let value = c.get("value").and_then(Value::as_str).unwrap_or("");
            report.misses.push(format!(
                "{key}\t{kind}\t{}\t{:?}\t{value:?}",
                if blocked { "FP" } else { "FN" },
                v.rule_ids()
            ));
        }
    }
}

/// Run CRS cases; `ids` also scores `expect_ids` / `no_expect_ids` (meaningful for the CRS).
pub fn run_crs(policy: &WafPolicy, cases: &[Value], report: &mut CorpusReport) {
    for c in cases {
        let family = c
            .get("family")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let Some((key, req)) = case_to_request(c, &policy.limits) else {
            continue;
        };
        let v = policy.engine.inspect(&req, policy, None);
        let blocked = v.outcome != Outcome::Pass;
        let reference = c
            .pointer("/reference/blocked_at_pl/PL1")
            .and_then(Value::as_bool);
        if let Some(expected) = reference {
            let r = report.crs_agree.entry(family.clone()).or_default();
            r.total += 1;
            if blocked == expected {
                r.blocked += 1;
            } else {
                report.misses.push(format!(
                    "{key}\t{family}\t{}\t{:?}",
                    if blocked { "FP" } else { "FN" },
                    v.rule_ids()
                ));
            }
        }
        let ids = v.rule_ids();
        let list = |k: &str| -> Vec<u32> {
            c.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_u64())
                        .map(|x| x as u32)
                        .collect()
                })
                .unwrap_or_default()
        };
        let ok = list("expect_ids").iter().all(|i| ids.contains(i))
            && !list("no_expect_ids").iter().any(|i| ids.contains(i));
        let r = report.crs_ids.entry(family).or_default();
        r.total += 1;
        if ok {
            r.blocked += 1;
        }
    }
}

fn total(m: &BTreeMap<String, Rate>) -> Rate {
    m.values().fold(Rate::default(), |a, r| Rate {
        blocked: a.blocked + r.blocked,
        total: a.total + r.total,
    })
}

impl CorpusReport {
    /// Overall agreement on the CRS cases.
    pub fn crs_agree_total(&self) -> Rate {
        total(&self.crs_agree)
    }

    /// Overall `expect_ids` pass rate on the CRS cases.
    pub fn crs_ids_total(&self) -> Rate {
        total(&self.crs_ids)
    }

    /// A printable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str("params.jsonl            blocked    total   rate\n");
        for (k, r) in &self.params {
            s.push_str(&format!(
                "  {k:<20} {:>8} {:>8} {:>6.1}%\n",
                r.blocked,
                r.total,
                r.percent()
            ));
        }
        if !self.crs_agree.is_empty() {
            s.push_str(
                "crs-cases.jsonl (agreement with reference PL1 verdict / expect_ids passed)\n",
            );
            for (k, r) in &self.crs_agree {
                let ids = self.crs_ids.get(k).copied().unwrap_or_default();
                s.push_str(&format!(
                    "  {k:<44} {:>5}/{:<5} {:>6.1}%   ids {:>6.1}%\n",
                    r.blocked,
                    r.total,
                    r.percent(),
                    ids.percent()
                ));
            }
            let t = self.crs_agree_total();
            let i = self.crs_ids_total();
            s.push_str(&format!(
                "  {:<44} {:>5}/{:<5} {:>6.1}%   ids {:>6.1}%\n",
                "TOTAL",
                t.blocked,
                t.total,
                t.percent(),
                i.percent()
            ));
        }
        s
    }
}
