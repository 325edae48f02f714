//! The benchmark result (the `--json` schema) and its text rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Kinds of failed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// TCP connect, TLS handshake or HTTP/2 handshake failed.
    Connect,
    /// No complete response within `--timeout`.
    Timeout,
    /// The connection was reset or closed mid-request.
    Reset,
    /// A response failed a scenario `expect` check.
    Assertion,
    /// Any other protocol error (malformed response, HTTP/2 stream error, ...).
    Other,
}

impl ErrorKind {
    /// All kinds, in report order.
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Assertion,
        ErrorKind::Other,
    ];

    /// Position in [`ErrorKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Lowercase name, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Assertion => "assertion",
            ErrorKind::Other => "other",
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatencySummary {
    /// Fastest response.
    pub min_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Standard deviation.
    pub stdev_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest response.
    pub max_us: u64,
}

/// One point of the latency distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    /// Quantile in 0..=1 (0.99 = p99).
    pub quantile: f64,
    /// Latency at that quantile, µs.
    pub latency_us: u64,
}

/// Responses and errors completed in one second of the measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the measurement start (this point covers `second..second+1`).
    pub second: u64,
    /// Responses completed in that second.
    pub responses: u64,
    /// Errors in that second.
    pub errors: u64,
}

/// Error counts per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorCounts {
    /// Connect / TLS / handshake failures (not requests: no request was sent).
    pub connect: u64,
    /// Requests without a complete response within `--timeout`.
    pub timeout: u64,
    /// Connections reset or closed mid-request.
    pub reset: u64,
    /// Responses failing an `expect` check (also counted as responses).
    pub assertion: u64,
    /// Other protocol errors.
    pub other: u64,
}

impl ErrorCounts {
    /// Sum of all kinds.
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.reset + self.assertion + self.other
    }

    /// The count for one kind.
    pub fn get(&self, kind: ErrorKind) -> u64 {
        match kind {
            ErrorKind::Connect => self.connect,
            ErrorKind::Timeout => self.timeout,
            ErrorKind::Reset => self.reset,
            ErrorKind::Assertion => self.assertion,
            ErrorKind::Other => self.other,
        }
    }
}

/// The settings a result was produced with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `METHOD url (weight w)` per request kind.
    pub targets: Vec<String>,
    /// `closed` or `open`.
    pub model: String,
    /// Open model: target arrival rate, req/s.
    pub rate: Option<f64>,
    /// Connections.
    pub connections: u32,
    /// Streams per connection (HTTP/2).
    pub streams: u32,
    /// Worker threads.
    pub threads: u32,
    /// `HTTP/1.1` or `HTTP/2`.
    pub protocol: String,
    /// The client implementation: `built-in` (HTTP/1.1 codec) or `hyper`.
    pub client: String,
    /// `-d`, seconds.
    pub duration_s: Option<f64>,
    /// `-n`.
    pub requests: Option<u64>,
    /// `--warmup`, seconds.
    pub warmup_s: f64,
}

/// The full result of a run: what `--json` writes and `--baseline` reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchResult {
    /// Always `rampart-bench`.
    pub tool: String,
    /// Schema version (1).
    pub schema: u32,
    /// How the run was configured.
    pub settings: Settings,
    /// Measured wall time, seconds: from the end of the warm-up to the end of `-d`, or to the
    /// last response of a `-n` run.
    pub elapsed_s: f64,
    /// Requests sent and finished (responses + timeout/reset/other errors).
    pub requests: u64,
    /// Responses received (any status, including failed assertions).
    pub responses: u64,
    /// Throughput: responses per second.
    pub rps: f64,
    /// Response body bytes received.
    pub body_bytes: u64,
    /// Body bytes per second.
    pub body_bytes_per_s: f64,
    /// Latency percentiles (open model: from each request's intended start).
    pub latency: LatencySummary,
    /// The latency distribution (HDR percentile plot points).
    pub latency_distribution: Vec<Quantile>,
    /// Responses per status code.
    pub status_codes: BTreeMap<String, u64>,
    /// Errors per kind.
    pub errors: ErrorCounts,
    /// The first error message seen per kind.
    pub error_samples: BTreeMap<String, String>,
    /// Requests completed during the warm-up (not in any other number).
    pub warmup_requests: u64,
    /// Throughput over time, one point per second.
    pub timeline: Vec<TimelinePoint>,
}

/// `850us`, `1.23ms`, `2.50s`.
pub fn fmt_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0}us")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1_000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// `512 B`, `1.50 KiB`, `3.20 MiB`, `1.01 GiB`.
pub fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", UNITS[0])
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

/// The human-readable summary printed on stdout.
pub fn render_text(r: &BenchResult) -> String {
    let s = &r.settings;
    let mut o = String::new();
    let what = match (s.requests, s.duration_s) {
        (Some(n), _) => format!("{n} requests"),
        (None, Some(d)) => format!("{d}s"),
        (None, None) => String::new(),
    };
    let model = match s.rate {
        Some(rate) => format!("open model at {rate} req/s"),
        None => "closed model".to_owned(),
    };
    let streams = if s.streams > 1 {
        format!(" x {} streams", s.streams)
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "rampart bench: {what}{}, {model}, {} connections{streams}, {} threads, {}{}",
        if s.warmup_s > 0.0 {
            format!(" after {}s warm-up", s.warmup_s)
        } else {
            String::new()
        },
        s.connections,
        s.threads,
        s.protocol,
        if s.client.is_empty() {
            String::new()
        } else {
            format!(" ({} client)", s.client)
        }
    );
    for t in &s.targets {
        let _ = writeln!(o, "  {t}");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "  Requests      {} sent, {} responses in {:.2}s = {:.2} req/s",
        r.requests, r.responses, r.elapsed_s, r.rps
    );
    if let Some(rate) = s.rate
        && rate > 0.0
    {
        let _ = writeln!(
            o,
            "  Target rate   {rate:.2} req/s (achieved {:.1}%)",
            100.0 * r.rps / rate
        );
    }
    let _ = writeln!(
        o,
        "  Transfer      {} body, {}/s",
        fmt_bytes(r.body_bytes as f64),
        fmt_bytes(r.body_bytes_per_s)
    );
    let l = &r.latency;
    let _ = writeln!(
        o,
        "  Latency       min {}  mean {}  stdev {}",
        fmt_us(l.min_us as f64),
        fmt_us(l.mean_us),
        fmt_us(l.stdev_us)
    );
    let _ = writeln!(
        o,
        "                p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        fmt_us(l.p50_us as f64),
        fmt_us(l.p90_us as f64),
        fmt_us(l.p99_us as f64),
        fmt_us(l.p999_us as f64),
        fmt_us(l.max_us as f64)
    );
    let codes: Vec<String> = r
        .status_codes
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(
        o,
        "  Status codes  {}",
        if codes.is_empty() {
            "none".to_owned()
        } else {
            codes.join(", ")
        }
    );
    let e = &r.errors;
    let _ = writeln!(
        o,
        "  Errors        {} (connect {}, timeout {}, reset {}, assertion {}, other {})",
        e.total(),
        e.connect,
        e.timeout,
        e.reset,
        e.assertion,
        e.other
    );
    for (kind, msg) in &r.error_samples {
        let _ = writeln!(o, "                first {kind}: {msg}");
    }
    if r.warmup_requests > 0 {
        let _ = writeln!(
            o,
            "  Warm-up       {} requests (excluded)",
            r.warmup_requests
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_us(850.0), "850us");
        assert_eq!(fmt_us(1234.0), "1.23ms");
        assert_eq!(fmt_us(2_500_000.0), "2.50s");
        assert_eq!(fmt_bytes(512.0), "512 B");
        assert_eq!(fmt_bytes(1536.0), "1.50 KiB");
        assert_eq!(fmt_bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.00 GiB");
    }

    #[test]
    fn json_round_trips_and_tolerates_missing_fields() {
        let mut r = BenchResult {
            tool: "rampart-bench".into(),
            schema: 1,
            rps: 1234.5,
            ..Default::default()
        };
        r.latency.p99_us = 900;
        r.errors.reset = 2;
        r.status_codes.insert("200".into(), 10);
        let j = serde_json::to_string(&r).unwrap();
        let back: BenchResult = serde_json::from_str(&j).unwrap();
        assert_eq!(back, r);
        let minimal: BenchResult =
            serde_json::from_str(r#"{"rps": 10.0, "latency": {"p99_us": 5}}"#).unwrap();
        assert_eq!(minimal.rps, 10.0);
        assert_eq!(minimal.latency.p99_us, 5);
    }

    #[test]
    fn text_mentions_the_key_numbers() {
        let mut r = BenchResult {
            responses: 10,
            requests: 10,
            rps: 5.0,
            elapsed_s: 2.0,
            ..Default::default()
        };
        r.status_codes.insert("200".into(), 10);
        r.error_samples
            .insert("reset".into(), "connection reset".into());
        let t = render_text(&r);
        assert!(
            t.contains("5.00 req/s") && t.contains("200: 10") && t.contains("first reset"),
            "{t}"
        );
    }
}
