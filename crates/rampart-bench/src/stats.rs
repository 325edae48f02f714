//! Per-worker counters and the HDR latency histogram; merged once at the end.
//!
//! Each worker thread owns one [`WorkerStats`] (no sharing, no atomics on the hot path except
//! the progress counters); the histogram records microseconds with 3 significant digits
//! between 1 µs and 1 hour, so every percentile is exact to 0.1 %.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::BenchError;
use crate::report::{ErrorKind, LatencySummary, Quantile};

/// Highest trackable latency: one hour in microseconds (larger values saturate).
const MAX_US: u64 = 3_600_000_000;
/// Timeline entries kept (seconds); later completions still count, just not in the plot.
const MAX_TIMELINE: usize = 24 * 3600;

/// A new latency histogram (µs, 3 significant digits).
pub(crate) fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, MAX_US, 3)
        .map_err(|e| BenchError::Runtime(format!("latency histogram: {e}")))
}

/// Latency to whole microseconds, at least 1 (the histogram's lowest value).
#[inline]
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Summary percentiles of a histogram (zeros when empty).
pub(crate) fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        min_us: h.min(),
        mean_us: h.mean(),
        stdev_us: h.stdev(),
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

/// The latency distribution at quantiles `1 - 10^(-k/10)` for k = 0..=50 (0 % .. 99.999 %),
/// plus the maximum: the points of a classic HDR percentile plot.
pub(crate) fn distribution(h: &Histogram<u64>) -> Vec<Quantile> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Quantile> = (0..=50)
        .map(|k| {
            let q = 1.0 - 10f64.powf(-f64::from(k) / 10.0);
            Quantile {
                quantile: q,
                latency_us: h.value_at_quantile(q),
            }
        })
        .collect();
    out.push(Quantile {
        quantile: 1.0,
        latency_us: h.max(),
    });
    out
}

/// What one worker thread measured.
#[derive(Debug)]
pub(crate) struct WorkerStats {
    pub latency: Histogram<u64>,
    /// Indexed by status code (0..1000).
    pub status: Vec<u64>,
    pub errors: [u64; ErrorKind::ALL.len()],
    pub samples: [Option<String>; ErrorKind::ALL.len()],
    /// Measured responses (any status).
    pub responses: u64,
    pub body_bytes: u64,
    pub warmup_requests: u64,
    /// Per second since the measurement start: `[responses, errors]`.
    pub timeline: Vec<[u64; 2]>,
}

impl WorkerStats {
    pub fn new() -> Result<Self, BenchError> {
        Ok(Self {
            latency: new_histogram()?,
            status: vec![0; 1000],
            errors: [0; ErrorKind::ALL.len()],
            samples: Default::default(),
            responses: 0,
            body_bytes: 0,
            warmup_requests: 0,
            timeline: Vec::new(),
        })
    }

    fn tick(&mut self, at: Duration, column: usize) {
        let sec = at.as_secs() as usize;
        if sec < MAX_TIMELINE {
            if self.timeline.len() <= sec {
                self.timeline.resize(sec + 1, [0, 0]);
            }
            self.timeline[sec][column] += 1;
        }
    }

    /// A measured response, completed `at` after the measurement start.
    #[inline]
    pub fn record_response(
        &mut self,
        at: Duration,
        latency: Duration,
        status: u16,
        body_bytes: u64,
    ) {
        self.latency.saturating_record(micros(latency));
        self.status[usize::from(status).min(999)] += 1;
        self.responses += 1;
        self.body_bytes += body_bytes;
        self.tick(at, 0);
    }

    /// A measured error; `at` is `None` for errors before the measurement start.
    pub fn record_error(
        &mut self,
        kind: ErrorKind,
        at: Option<Duration>,
        message: impl FnOnce() -> String,
    ) {
        let i = kind.index();
        self.errors[i] += 1;
        if self.samples[i].is_none() {
            self.samples[i] = Some(message());
        }
        if let Some(at) = at {
            self.tick(at, 1);
        }
    }

    /// Adds another worker's numbers to these.
    pub fn merge(&mut self, other: &WorkerStats) {
        // Both histograms have the same bounds, so `add` cannot fail; saturate defensively.
        if self.latency.add(&other.latency).is_err() {
            for v in other.latency.iter_recorded() {
                self.latency
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        for (a, b) in self.status.iter_mut().zip(&other.status) {
            *a += b;
        }
        for i in 0..self.errors.len() {
            self.errors[i] += other.errors[i];
            if self.samples[i].is_none() {
                self.samples[i].clone_from(&other.samples[i]);
            }
        }
        self.responses += other.responses;
        self.body_bytes += other.body_bytes;
        self.warmup_requests += other.warmup_requests;
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), [0, 0]);
        }
        for (a, b) in self.timeline.iter_mut().zip(&other.timeline) {
            a[0] += b[0];
            a[1] += b[1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(actual: u64, expected: u64, rel: f64) -> bool {
        (actual as f64 - expected as f64).abs() <= expected as f64 * rel
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut h = new_histogram().unwrap();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let s = summarize(&h);
        assert!(within(s.p50_us, 5_000, 0.001), "{s:?}");
        assert!(within(s.p90_us, 9_000, 0.001), "{s:?}");
        assert!(within(s.p99_us, 9_900, 0.001), "{s:?}");
        assert!(within(s.p999_us, 9_990, 0.001), "{s:?}");
        assert!(within(s.max_us, 10_000, 0.001), "{s:?}");
        assert_eq!(s.min_us, 1);
        assert!((s.mean_us - 5_000.5).abs() < 5.0, "{s:?}");
        // stdev of a discrete uniform 1..=N is sqrt((N^2-1)/12)
        assert!((s.stdev_us - 2886.75).abs() < 5.0, "{s:?}");
    }

    #[test]
    fn a_tail_shows_only_in_the_high_percentiles() {
        let mut h = new_histogram().unwrap();
        h.record_n(1_000, 990).unwrap();
        h.record_n(100_000, 10).unwrap();
        let s = summarize(&h);
        assert!(within(s.p50_us, 1_000, 0.001));
        assert!(
            within(s.p99_us, 1_000, 0.001),
            "p99 is the 990th of 1000 values: {s:?}"
        );
        assert!(within(s.p999_us, 100_000, 0.001), "{s:?}");
        assert!(within(s.max_us, 100_000, 0.001));
    }

    #[test]
    fn empty_histogram_gives_zeros() {
        let h = new_histogram().unwrap();
        assert_eq!(summarize(&h), LatencySummary::default());
        assert!(distribution(&h).is_empty());
    }

    #[test]
    fn distribution_is_monotonic_and_ends_at_max() {
        let mut h = new_histogram().unwrap();
        for v in 1..=100_000u64 {
            h.record(v * 7 % 50_000 + 1).unwrap();
        }
        let d = distribution(&h);
        assert_eq!(d.len(), 52);
        assert_eq!(d[0].quantile, 0.0);
        assert!((d[10].quantile - 0.9).abs() < 1e-12);
        assert!((d[20].quantile - 0.99).abs() < 1e-12);
        assert!(
            d.windows(2)
                .all(|w| w[0].quantile < w[1].quantile && w[0].latency_us <= w[1].latency_us)
        );
        assert_eq!(d.last().unwrap().latency_us, h.max());
    }

    #[test]
    fn merging_workers_equals_recording_everything_in_one() {
        let mut a = WorkerStats::new().unwrap();
        let mut b = WorkerStats::new().unwrap();
        let mut all = new_histogram().unwrap();
        for v in 1..=5_000u64 {
            let (w, lat) = if v % 3 == 0 {
                (&mut a, v)
            } else {
                (&mut b, v * 10)
            };
            w.record_response(
                Duration::from_millis(v),
                Duration::from_micros(lat),
                200,
                10,
            );
            all.record(lat).unwrap();
        }
        b.record_response(Duration::from_millis(1), Duration::from_micros(5), 503, 0);
        all.record(5).unwrap();
        b.record_error(ErrorKind::Reset, Some(Duration::from_millis(1)), || {
            "reset by peer".into()
        });
        a.record_error(ErrorKind::Reset, None, || "second".into());
        a.merge(&b);
        assert_eq!(a.responses, 5_001);
        assert_eq!(a.status[200], 5_000);
        assert_eq!(a.status[503], 1);
        assert_eq!(a.body_bytes, 50_000);
        assert_eq!(a.errors[ErrorKind::Reset.index()], 2);
        assert_eq!(
            a.samples[ErrorKind::Reset.index()].as_deref(),
            Some("second")
        );
        assert_eq!(summarize(&a.latency), summarize(&all));
        assert_eq!(a.timeline.iter().map(|t| t[0]).sum::<u64>(), 5_001);
        assert_eq!(a.timeline.len(), 6);
        assert_eq!(a.timeline[0][1], 1);
    }

    #[test]
    fn huge_and_zero_latencies_saturate_instead_of_failing() {
        let mut w = WorkerStats::new().unwrap();
        w.record_response(Duration::ZERO, Duration::ZERO, 200, 0);
        w.record_response(Duration::ZERO, Duration::from_secs(10 * 3600), 200, 0);
        assert_eq!(w.latency.len(), 2);
        assert_eq!(w.latency.min(), 1);
        assert!(w.latency.max() >= MAX_US);
    }
}
