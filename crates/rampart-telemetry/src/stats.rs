//! Per-route counters and latency percentiles for `GET /stats`.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use serde::Serialize;

const BUCKETS: usize = 64;
/// Lower bound of bucket 1 in microseconds; each bucket is ×1.25 the previous one, so 64
/// buckets cover 50 µs .. ~80 s with ≤ 25 % relative error.
const BASE_US: f64 = 50.0;
const GROWTH: f64 = 1.25;

/// A fixed-bucket, lock-free latency histogram (log scale).
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

fn upper_bound_us(i: usize) -> f64 {
    BASE_US * GROWTH.powi(i as i32)
}

impl LatencyHistogram {
    /// Record one observation.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros() as f64;
        let idx = if us <= BASE_US {
            0
        } else {
            ((us / BASE_US).ln() / GROWTH.ln()).ceil() as usize
        };
        self.buckets[idx.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0..=1) in milliseconds, interpolated within its bucket; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut seen = 0u64;
        for (i, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (seen + c) as f64 >= rank {
                let lo = if i == 0 { 0.0 } else { upper_bound_us(i - 1) };
                let hi = upper_bound_us(i);
                let frac = (rank - seen as f64) / c as f64;
                return (lo + (hi - lo) * frac) / 1000.0;
            }
            seen += c;
        }
        upper_bound_us(BUCKETS - 1) / 1000.0
    }

    /// Mean in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum_us.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
        }
    }
}

/// Counters of one route.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Responses by status class: index 0 = 1xx … 4 = 5xx.
    pub classes: [AtomicU64; 5],
    /// Latency to the end of the response.
    pub latency: LatencyHistogram,
}

impl RouteStats {
    /// Record a finished request.
    pub fn record(&self, status: u16, d: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
        self.latency.record(d);
    }

    /// A serialisable snapshot.
    pub fn snapshot(&self) -> StatsSnapshot {
        let c: Vec<u64> = self
            .classes
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        StatsSnapshot {
            requests: c.iter().sum(),
            status: StatusClasses {
                c1xx: c[0],
                c2xx: c[1],
                c3xx: c[2],
                c4xx: c[3],
                c5xx: c[4],
            },
            latency_ms: Percentiles {
                p50: round3(self.latency.quantile_ms(0.50)),
                p90: round3(self.latency.quantile_ms(0.90)),
                p99: round3(self.latency.quantile_ms(0.99)),
                p999: round3(self.latency.quantile_ms(0.999)),
                mean: round3(self.latency.mean_ms()),
            },
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `/stats` entry of one route.
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    /// Finished requests.
    pub requests: u64,
    /// By status class.
    pub status: StatusClasses,
    /// Latency percentiles in milliseconds.
    pub latency_ms: Percentiles,
}

/// Responses by status class.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct StatusClasses {
    #[serde(rename = "1xx")]
    pub c1xx: u64,
    #[serde(rename = "2xx")]
    pub c2xx: u64,
    #[serde(rename = "3xx")]
    pub c3xx: u64,
    #[serde(rename = "4xx")]
    pub c4xx: u64,
    #[serde(rename = "5xx")]
    pub c5xx: u64,
}

/// Latency percentiles (ms).
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub mean: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_bucket_error() {
        let h = LatencyHistogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        for (q, want) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = h.quantile_ms(q);
            assert!(
                (got - want).abs() / want < 0.25,
                "q{q}: got {got}, want ~{want}"
            );
        }
        assert!((h.mean_ms() - 500.5).abs() < 0.01);
    }

    #[test]
    fn empty_histogram_is_zero_and_classes_count() {
        let s = RouteStats::default();
        assert_eq!(s.latency.quantile_ms(0.99), 0.0);
        s.record(200, Duration::from_millis(3));
        s.record(503, Duration::from_millis(3));
        s.record(404, Duration::from_millis(3));
        let snap = s.snapshot();
        assert_eq!(snap.requests, 3);
        assert_eq!(
            (snap.status.c2xx, snap.status.c4xx, snap.status.c5xx),
            (1, 1, 1)
        );
    }
}
