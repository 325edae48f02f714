//! Peak-EWMA latency (as in Finagle and linkerd): a sample above the estimate replaces it at
//! once (peak), one below pulls it down with weight `1 - e^(-dt/tau)`; with no samples the
//! estimate decays toward zero so an avoided endpoint is tried again. Pure: the caller
//! passes `now`.

use std::time::Duration;

use tokio::time::Instant;

/// Decay constant.
pub(crate) const TAU: Duration = Duration::from_secs(10);

/// Latency estimate in seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeakEwma {
    estimate: f64,
    stamp: Instant,
}

impl PeakEwma {
    /// Start with `initial` seconds (a guess before the first sample).
    pub(crate) fn new(initial: f64, now: Instant) -> Self {
        Self {
            estimate: initial,
            stamp: now,
        }
    }

    fn decay(&self, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.stamp).as_secs_f64();
        (-dt / TAU.as_secs_f64()).exp()
    }

    /// Add a sample (seconds).
    pub(crate) fn observe(&mut self, sample: f64, now: Instant) {
        if sample > self.estimate {
            self.estimate = sample;
        } else {
            let w = self.decay(now);
            self.estimate = self.estimate * w + sample * (1.0 - w);
        }
        self.stamp = now;
    }

    /// The estimate as of `now`, decayed toward zero since the last sample.
    pub(crate) fn get(&self, now: Instant) -> f64 {
        self.estimate * self.decay(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_then_decay() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(0.001, t0);
        // (ms offset, sample s, expected range after)
        let table: [(u64, f64, (f64, f64)); 4] = [
            (0, 0.100, (0.100, 0.100)),     // a peak replaces the estimate
            (0, 0.010, (0.100, 0.100)),     // dt = 0: no weight for the lower sample
            (10_000, 0.010, (0.04, 0.045)), // one tau: 0.1/e + 0.01(1 - 1/e)
            (10_000, 0.200, (0.200, 0.200)),
        ];
        let mut at = t0;
        for (ms, s, (lo, hi)) in table {
            at += Duration::from_millis(ms);
            e.observe(s, at);
            let v = e.get(at);
            assert!(v >= lo - 1e-9 && v <= hi + 1e-9, "{v} not in {lo}..{hi}");
        }
        // Without samples it fades: an avoided endpoint gets tried again.
        assert!(e.get(at + Duration::from_secs(60)) < 0.001);
    }
}
