//! A rolling window of two counters (successes / failures, requests / retries) in
//! fixed-size time buckets. Pure: the caller passes `now`.

use std::time::Duration;

use tokio::time::Instant;

const BUCKETS: usize = 10;

/// Two counters summed over the last `window`, in [`BUCKETS`] slices.
#[derive(Debug, Clone)]
pub(crate) struct Rolling {
    origin: Instant,
    slice: Duration,
    /// Per slot: (slice number, a, b).
    slots: [(u64, u64, u64); BUCKETS],
}

impl Rolling {
    pub(crate) fn new(window: Duration, now: Instant) -> Self {
        let slice = (window / BUCKETS as u32).max(Duration::from_millis(1));
        Self {
            origin: now,
            slice,
            slots: [(u64::MAX, 0, 0); BUCKETS],
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_nanos() / self.slice.as_nanos().max(1))
            as u64
    }

    /// Add to the counters of the current slice.
    pub(crate) fn add(&mut self, now: Instant, a: u64, b: u64) {
        let e = self.epoch(now);
        let slot = &mut self.slots[(e % BUCKETS as u64) as usize];
        if slot.0 != e {
            *slot = (e, 0, 0);
        }
        slot.1 += a;
        slot.2 += b;
    }

    /// Sums over the window ending now.
    pub(crate) fn sums(&self, now: Instant) -> (u64, u64) {
        let e = self.epoch(now);
        self.slots
            .iter()
            .filter(|s| s.0 != u64::MAX && s.0 <= e && e - s.0 < BUCKETS as u64)
            .fold((0, 0), |(a, b), s| (a + s.1, b + s.2))
    }

    /// Forget everything.
    pub(crate) fn clear(&mut self) {
        self.slots = [(u64::MAX, 0, 0); BUCKETS];
    }

    /// Length of the window in seconds.
    pub(crate) fn window_secs(&self) -> f64 {
        self.slice.as_secs_f64() * BUCKETS as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_slices_fall_out_of_the_window() {
        let t0 = Instant::now();
        let mut r = Rolling::new(Duration::from_secs(10), t0);
        // (offset ms, a, b, expected sums after)
        let table: [(u64, u64, u64, (u64, u64)); 5] = [
            (0, 1, 0, (1, 0)),
            (500, 0, 2, (1, 2)),
            (5_000, 3, 0, (4, 2)),
            (10_500, 0, 0, (3, 0)), // slice 0 gone
            (30_000, 1, 1, (1, 1)), // all but the new one gone
        ];
        for (ms, a, b, want) in table {
            let now = t0 + Duration::from_millis(ms);
            r.add(now, a, b);
            assert_eq!(r.sums(now), want, "at {ms} ms");
        }
        r.clear();
        assert_eq!(r.sums(t0 + Duration::from_secs(30)), (0, 0));
    }
}
