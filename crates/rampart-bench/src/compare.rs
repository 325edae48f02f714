//! `--baseline FILE --max-regression P`: compares a run with a previous `--json` result.
//!
//! A regression is throughput (`rps`) falling by more than `P` or p99 latency rising by more
//! than `P`, both relative to the baseline. Improvements never fail.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::BenchError;
use crate::report::{BenchResult, fmt_us};

/// One compared metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// `throughput` or `p99`.
    pub metric: &'static str,
    /// Baseline value (req/s or µs).
    pub baseline: f64,
    /// Current value.
    pub current: f64,
    /// Relative change, `(current - baseline) / baseline` (0 when the baseline is 0).
    pub change: f64,
    /// Whether this change is a regression beyond the threshold.
    pub regressed: bool,
}

/// The comparison of a run with its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Throughput and p99 deltas.
    pub deltas: Vec<Delta>,
    /// Threshold as a fraction (0.10 = 10 %).
    pub max_regression: f64,
}

impl Comparison {
    /// Whether any metric regressed beyond the threshold.
    pub fn regressed(&self) -> bool {
        self.deltas.iter().any(|d| d.regressed)
    }

    /// The deltas as printed after the summary.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "  Baseline      (max regression {:.1}%)",
            self.max_regression * 100.0
        );
        for d in &self.deltas {
            let (b, c) = if d.metric == "throughput" {
                (
                    format!("{:.2} req/s", d.baseline),
                    format!("{:.2} req/s", d.current),
                )
            } else {
                (fmt_us(d.baseline), fmt_us(d.current))
            };
            let _ = writeln!(
                o,
                "                {:<10} {b} -> {c} ({:+.1}%){}",
                d.metric,
                d.change * 100.0,
                if d.regressed { "  REGRESSION" } else { "" }
            );
        }
        o.push_str(if self.regressed() {
            "  Result        regression beyond the threshold\n"
        } else {
            "  Result        within the threshold\n"
        });
        o
    }
}

fn change(baseline: f64, current: f64) -> f64 {
    if baseline > 0.0 {
        (current - baseline) / baseline
    } else {
        0.0
    }
}

/// Compares `current` with `baseline`; `max_regression` is a fraction (0.10 = 10 %).
pub fn compare(baseline: &BenchResult, current: &BenchResult, max_regression: f64) -> Comparison {
    // A tiny epsilon so that "exactly at the threshold" is not a regression despite float noise.
    const EPS: f64 = 1e-9;
    let rps = change(baseline.rps, current.rps);
    let p99_base = baseline.latency.p99_us as f64;
    let p99_now = current.latency.p99_us as f64;
    let p99 = change(p99_base, p99_now);
    Comparison {
        deltas: vec![
            Delta {
                metric: "throughput",
                baseline: baseline.rps,
                current: current.rps,
                change: rps,
                regressed: baseline.rps > 0.0 && -rps > max_regression + EPS,
            },
            Delta {
                metric: "p99",
                baseline: p99_base,
                current: p99_now,
                change: p99,
                regressed: p99_base > 0.0 && p99 > max_regression + EPS,
            },
        ],
        max_regression,
    }
}

/// Reads a baseline written by `--json`.
pub fn load(path: &Path) -> Result<BenchResult, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    let r: BenchResult = serde_json::from_str(&text).map_err(|e| BenchError::Baseline {
        path: path.to_owned(),
        reason: format!("not a rampart bench --json result: {e}"),
    })?;
    if r.rps <= 0.0 && r.latency.p99_us == 0 {
        return Err(BenchError::Baseline {
            path: path.to_owned(),
            reason: "it has neither throughput (rps) nor a p99 latency to compare with".to_owned(),
        });
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rps: f64, p99: u64) -> BenchResult {
        let mut r = BenchResult {
            rps,
            ..Default::default()
        };
        r.latency.p99_us = p99;
        r
    }

    #[test]
    fn thresholds_in_both_directions() {
        let base = result(1000.0, 1000);
        let cases = [
            // (rps, p99, regressed?)
            (1000.0, 1000, false),
            (950.0, 1050, false), // 5% worse on both: inside 10%
            (900.0, 1100, false), // exactly 10%: not beyond
            (899.0, 1000, true),  // throughput fell 10.1%
            (1000.0, 1101, true), // p99 rose 10.1%
            (2000.0, 500, false), // big improvements never fail
            (5000.0, 1200, true), // faster but p99 regressed
            (500.0, 100, true),   // lower latency but throughput halved
        ];
        for (rps, p99, want) in cases {
            let c = compare(&base, &result(rps, p99), 0.10);
            assert_eq!(c.regressed(), want, "rps {rps} p99 {p99}: {c:?}");
        }
    }

    #[test]
    fn deltas_are_signed_relative_changes() {
        let c = compare(&result(1000.0, 2000), &result(1100.0, 1000), 0.05);
        assert!((c.deltas[0].change - 0.10).abs() < 1e-12);
        assert!((c.deltas[1].change + 0.50).abs() < 1e-12);
        let text = c.render();
        assert!(
            text.contains("+10.0%") && text.contains("-50.0%") && text.contains("within"),
            "{text}"
        );
        let bad = compare(&result(1000.0, 1000), &result(500.0, 1000), 0.05);
        assert!(bad.render().contains("REGRESSION"));
    }

    #[test]
    fn zero_threshold_and_empty_baseline_metrics() {
        assert!(compare(&result(1000.0, 1000), &result(999.0, 1000), 0.0).regressed());
        assert!(!compare(&result(1000.0, 1000), &result(1000.0, 1000), 0.0).regressed());
        // A baseline without p99 only checks throughput and vice versa.
        assert!(!compare(&result(1000.0, 0), &result(1000.0, 99999), 0.1).regressed());
        assert!(!compare(&result(0.0, 1000), &result(1.0, 1000), 0.1).regressed());
    }

    #[test]
    fn load_rejects_garbage_and_empty_results() {
        let dir = std::env::temp_dir().join(format!("rampart-bench-cmp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("b.json");
        std::fs::write(&f, "not json").unwrap();
        assert!(
            load(&f)
                .unwrap_err()
                .to_string()
                .contains("not a rampart bench --json result")
        );
        std::fs::write(&f, "{}").unwrap();
        assert!(
            load(&f)
                .unwrap_err()
                .to_string()
                .contains("neither throughput")
        );
        std::fs::write(&f, serde_json::to_string(&result(10.0, 5)).unwrap()).unwrap();
        assert_eq!(load(&f).unwrap().rps, 10.0);
        assert!(
            load(&dir.join("missing.json"))
                .unwrap_err()
                .to_string()
                .starts_with("reading")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
