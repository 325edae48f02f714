//! The per-endpoint circuit breaker state machine. Pure: the caller passes `now`.
//!
//! closed → open when, over a rolling window with at least `min_requests` outcomes, the
//! failure share reaches `failure_rate`; open → half-open after `cool_down`; half-open lets
//! `probes` requests through: all succeed → closed, any fails → open again.

use std::time::Duration;

use tokio::time::Instant;

use crate::window::Rolling;

/// Breaker settings (from `[upstreams.breaker]`).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Use the breaker at all.
    pub enabled: bool,
    /// Failure share that opens it.
    pub failure_rate: f64,
    /// Outcomes in the window before the rate is judged.
    pub min_requests: u32,
    /// Rolling window.
    pub window: Duration,
    /// Open time before probing.
    pub cool_down: Duration,
    /// Probes allowed half-open.
    pub probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(10),
            probes: 3,
        }
    }
}

/// Breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// Traffic refused until the cool-down ends.
    Open,
    /// A few probes decide.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open`, `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// One endpoint's breaker.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    state: BreakerState,
    since: Instant,
    outcomes: Rolling,
    probes_sent: u32,
    probes_ok: u32,
}

impl Breaker {
    pub(crate) fn new(s: &BreakerSettings, now: Instant) -> Self {
        Self {
            state: BreakerState::Closed,
            since: now,
            outcomes: Rolling::new(s.window, now),
            probes_sent: 0,
            probes_ok: 0,
        }
    }

    /// The state as of `now` (open turns half-open once the cool-down is over).
    pub(crate) fn state(&self, s: &BreakerSettings, now: Instant) -> BreakerState {
        match self.state {
            BreakerState::Open if now >= self.since + s.cool_down => BreakerState::HalfOpen,
            st => st,
        }
    }

    /// Could a request go through now (without taking a probe slot)?
    pub(crate) fn available(&self, s: &BreakerSettings, now: Instant) -> bool {
        if !s.enabled {
            return true;
        }
        match self.state(s, now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                self.state == BreakerState::Open
                    || self.probes_sent < s.probes
                    || self.stale(s, now)
            }
        }
    }

    /// Probes that never reported (cancelled requests) must not wedge half-open forever.
    fn stale(&self, s: &BreakerSettings, now: Instant) -> bool {
        self.state == BreakerState::HalfOpen && now >= self.since + s.cool_down
    }

    /// Take permission for one request; half-open this uses a probe slot.
    pub(crate) fn acquire(&mut self, s: &BreakerSettings, now: Instant) -> bool {
        if !s.enabled {
            return true;
        }
        match self.state(s, now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                if self.state == BreakerState::Open || self.stale(s, now) {
                    self.state = BreakerState::HalfOpen;
                    self.since = now;
                    self.probes_sent = 0;
                    self.probes_ok = 0;
                }
                if self.probes_sent < s.probes {
                    self.probes_sent += 1;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Record an outcome; returns the new state when it changed.
    pub(crate) fn record(
        &mut self,
        s: &BreakerSettings,
        now: Instant,
        ok: bool,
    ) -> Option<BreakerState> {
        if !s.enabled {
            return None;
        }
        match self.state(s, now) {
            BreakerState::Closed => {
                self.outcomes.add(now, u64::from(ok), u64::from(!ok));
                let (good, bad) = self.outcomes.sums(now);
                let total = good + bad;
                if !ok
                    && total >= u64::from(s.min_requests)
                    && bad as f64 >= s.failure_rate * total as f64
                {
                    self.open(now);
                    return Some(BreakerState::Open);
                }
                None
            }
            BreakerState::Open => None,
            BreakerState::HalfOpen => {
                if self.state != BreakerState::HalfOpen {
                    // An outcome of a request admitted before the breaker opened.
                    return None;
                }
                if ok {
                    self.probes_ok += 1;
                    if self.probes_ok >= s.probes {
                        self.state = BreakerState::Closed;
                        self.since = now;
                        self.outcomes.clear();
                        return Some(BreakerState::Closed);
                    }
                    None
                } else {
                    self.open(now);
                    Some(BreakerState::Open)
                }
            }
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = BreakerState::Open;
        self.since = now;
        self.probes_sent = 0;
        self.probes_ok = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            enabled: true,
            failure_rate: 0.5,
            min_requests: 4,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
            probes: 2,
        }
    }

    /// Steps: (ms since start, action, expected state after). Actions: 'o' ok, 'f' fail,
    /// 'a' acquire granted, 'r' acquire refused.
    #[test]
    fn state_machine_table() {
        let s = settings();
        let t0 = Instant::now();
        let mut b = Breaker::new(&s, t0);
        use BreakerState::*;
        let steps: &[(u64, char, BreakerState)] = &[
            (0, 'f', Closed),       // 1 failure, below min_requests
            (10, 'o', Closed),      // 1/2
            (20, 'f', Closed),      // 2/3, still below min 4
            (30, 'o', Closed),      // 2/4 but the last was ok: judged on failures only
            (40, 'f', Open),        // 3/5 >= 50% -> open
            (1_000, 'r', Open),     // refused during the cool-down
            (5_040, 'a', HalfOpen), // cool-down over: probe 1
            (5_041, 'a', HalfOpen), // probe 2
            (5_042, 'r', HalfOpen), // no third probe
            (5_050, 'o', HalfOpen),
            (5_060, 'f', Open), // a probe failed: open again
            (6_000, 'r', Open),
            (10_060, 'a', HalfOpen),
            (10_061, 'a', HalfOpen),
            (10_070, 'o', HalfOpen),
            (10_080, 'o', Closed), // both probes ok: closed, window cleared
            (10_090, 'f', Closed), // 1 failure in a fresh window
        ];
        for &(ms, act, want) in steps {
            let now = t0 + Duration::from_millis(ms);
            match act {
                'o' => {
                    b.record(&s, now, true);
                }
                'f' => {
                    b.record(&s, now, false);
                }
                'a' => assert!(b.acquire(&s, now), "acquire at {ms}"),
                'r' => assert!(!b.acquire(&s, now), "refuse at {ms}"),
                _ => unreachable!(),
            }
            assert_eq!(b.state(&s, now), want, "after {act} at {ms} ms");
        }
    }

    #[test]
    fn disabled_breaker_never_opens() {
        let s = BreakerSettings {
            enabled: false,
            ..settings()
        };
        let t0 = Instant::now();
        let mut b = Breaker::new(&s, t0);
        for _ in 0..100 {
            b.record(&s, t0, false);
        }
        assert!(b.acquire(&s, t0));
        assert!(b.available(&s, t0));
    }

    #[test]
    fn old_failures_leave_the_window() {
        let s = settings();
        let t0 = Instant::now();
        let mut b = Breaker::new(&s, t0);
        for _ in 0..3 {
            b.record(&s, t0, false);
        }
        // 11 s later the three failures are gone: one more is not enough.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(b.record(&s, later, false), None);
        assert_eq!(b.state(&s, later), BreakerState::Closed);
    }
}
