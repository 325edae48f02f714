//! Passive outlier detection: `consecutive` failures in a row (5xx, connect errors,
//! timeouts) eject an endpoint for `base × n` (n = ejections in a row, capped at `max`). An
//! endpoint that serves without failure for `max` after its return starts over at n = 0.
//! Pure: the caller passes `now` and whether the pool may lose one more endpoint.

use std::time::Duration;

use tokio::time::Instant;

/// Ejection settings (from `[upstreams.outlier]`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierSettings {
    /// Failures in a row that eject; 0 = off.
    pub consecutive: u32,
    /// First ejection time.
    pub base: Duration,
    /// Longest ejection.
    pub max: Duration,
    /// Largest share of a pool ejected at once (percent).
    pub max_percent: u8,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        Self {
            consecutive: 5,
            base: Duration::from_secs(30),
            max: Duration::from_secs(300),
            max_percent: 50,
        }
    }
}

impl OutlierSettings {
    /// How many endpoints of a pool of `n` may be ejected at once (at least one).
    pub(crate) fn max_ejected(&self, n: usize) -> usize {
        (n * usize::from(self.max_percent) / 100).max(1)
    }
}

/// One endpoint's ejection state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outlier {
    failures: u32,
    until: Option<Instant>,
    ejections: u32,
}

impl Outlier {
    /// Ejected at `now`?
    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// When the current (or last) ejection ends.
    pub(crate) fn until(&self) -> Option<Instant> {
        self.until
    }

    /// Record an outcome; returns the ejection time when this outcome ejects the endpoint.
    /// `may_eject` says whether the pool is below its ejection cap.
    pub(crate) fn record(
        &mut self,
        s: &OutlierSettings,
        now: Instant,
        failure: bool,
        may_eject: bool,
    ) -> Option<Duration> {
        if s.consecutive == 0 || self.is_ejected(now) {
            return None;
        }
        if !failure {
            self.failures = 0;
            if let Some(u) = self.until
                && now >= u + s.max
            {
                self.ejections = 0;
                self.until = None;
            }
            return None;
        }
        self.failures += 1;
        if self.failures < s.consecutive || !may_eject {
            return None;
        }
        self.ejections = self.ejections.saturating_add(1);
        let d = s.base.saturating_mul(self.ejections).min(s.max);
        self.until = Some(now + d);
        self.failures = 0;
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejection_table() {
        let s = OutlierSettings {
            consecutive: 3,
            base: Duration::from_secs(10),
            max: Duration::from_secs(25),
            max_percent: 50,
        };
        let t0 = Instant::now();
        let mut o = Outlier::default();
        // (s offset, failure, may_eject, expect ejection of, ejected after)
        let table: &[(u64, bool, bool, Option<u64>, bool)] = &[
            (0, true, true, None, false),
            (0, true, true, None, false),
            (0, false, true, None, false), // reset the streak
            (1, true, true, None, false),
            (1, true, true, None, false),
            (1, true, false, None, false),   // the pool is at its cap
            (1, true, true, Some(10), true), // 4th in a row, cap free: 10 s
            (5, true, true, None, true),     // ignored while ejected
            (11, true, true, None, false),   // back; streak starts over
            (11, true, true, None, false),
            (11, true, true, Some(20), true), // second ejection: 2 × base
            (31, true, true, None, false),
            (31, true, true, None, false),
            (31, true, true, Some(25), true), // third: capped at max
            (56, false, true, None, false),   // back, not yet max since return
            (81, false, true, None, false),   // 25 s clean: multiplier resets
            (81, true, true, None, false),
            (81, true, true, None, false),
            (81, true, true, Some(10), true),
        ];
        for (i, &(sec, fail, may, want, ejected)) in table.iter().enumerate() {
            let now = t0 + Duration::from_secs(sec);
            let got = o.record(&s, now, fail, may);
            assert_eq!(got, want.map(Duration::from_secs), "step {i}");
            assert_eq!(o.is_ejected(now), ejected, "step {i}");
        }
    }

    #[test]
    fn max_ejected_is_at_least_one() {
        let s = OutlierSettings::default();
        assert_eq!(s.max_ejected(1), 1);
        assert_eq!(s.max_ejected(3), 1);
        assert_eq!(s.max_ejected(4), 2);
        let s = OutlierSettings {
            max_percent: 100,
            ..s
        };
        assert_eq!(s.max_ejected(3), 3);
    }
}
