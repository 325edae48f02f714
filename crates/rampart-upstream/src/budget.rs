//! The retry budget: retries may add at most `ratio` of the requests seen over the last
//! 10 s, plus `min_per_second` (so a quiet upstream can still retry). A failing backend
//! therefore sees at most (1 + ratio)× its normal load, never a retry storm. Pure: the caller
//! passes `now`.

use std::time::Duration;

use tokio::time::Instant;

use crate::window::Rolling;

/// Budget window.
const WINDOW: Duration = Duration::from_secs(10);

/// Per-upstream retry budget.
#[derive(Debug, Clone)]
pub(crate) struct RetryBudget {
    ratio: f64,
    min_per_second: u32,
    /// (requests, retries)
    counts: Rolling,
}

impl RetryBudget {
    pub(crate) fn new(ratio: f64, min_per_second: u32, now: Instant) -> Self {
        Self {
            ratio,
            min_per_second,
            counts: Rolling::new(WINDOW, now),
        }
    }

    /// Count a first attempt.
    pub(crate) fn request(&mut self, now: Instant) {
        self.counts.add(now, 1, 0);
    }

    /// Take a retry from the budget, if there is one left.
    pub(crate) fn try_retry(&mut self, now: Instant) -> bool {
        let (requests, retries) = self.counts.sums(now);
        let allowed = self.ratio * requests as f64
            + f64::from(self.min_per_second) * self.counts.window_secs();
        if (retries as f64) < allowed {
            self.counts.add(now, 0, 1);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_table() {
        // (ratio, min/s, requests, retries wanted, retries granted)
        let table = [
            (0.2, 0, 100, 50, 20),
            (0.2, 0, 10, 5, 2),
            (0.0, 1, 1000, 50, 10), // the floor: 1/s over 10 s
            (0.5, 1, 20, 100, 20),  // 10 + 10
            (1.0, 0, 0, 3, 0),
        ];
        for (ratio, min, reqs, want, granted) in table {
            let t0 = Instant::now();
            let mut b = RetryBudget::new(ratio, min, t0);
            for _ in 0..reqs {
                b.request(t0);
            }
            let got = (0..want).filter(|_| b.try_retry(t0)).count();
            assert_eq!(got, granted, "ratio {ratio} min {min} requests {reqs}");
        }
    }

    #[test]
    fn budget_refills_as_the_window_moves() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(0.1, 0, t0);
        for _ in 0..10 {
            b.request(t0);
        }
        assert!(b.try_retry(t0));
        assert!(!b.try_retry(t0));
        let later = t0 + Duration::from_secs(11);
        assert!(!b.try_retry(later), "no requests in the new window");
        for _ in 0..10 {
            b.request(later);
        }
        assert!(b.try_retry(later));
    }
}
