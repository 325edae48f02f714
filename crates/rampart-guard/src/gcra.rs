//! The Generic Cell Rate Algorithm (GCRA), the pure decision.
//!
//! GCRA is a token bucket expressed as one number per key, the *theoretical arrival time*
//! (TAT): the instant at which the bucket would be full again. With emission interval
//! `T = period / rate` and a burst of `B` requests:
//!
//! ```text
//! new_tat  = max(tat, now) + T * cost
//! allow_at = new_tat - T * B
//! now < allow_at  -> reject, retry after (allow_at - now); state unchanged
//! otherwise       -> allow, tat = new_tat, remaining = floor((now + T*B - new_tat) / T)
//! ```
//!
//! It is smooth (one request every `T` once the burst is spent, no window-edge bursts) and
//! needs a single compare-and-set per decision, which is why the same state fits in one Redis
//! key updated by a small script (see [`crate::ratelimit::RateLimitStore`]).
//!
//! Time is a `u64` of nanoseconds since an arbitrary epoch chosen by the store (for the memory
//! store: its creation, on the `tokio::time` clock, so tests can pause and advance it).

use std::{num::NonZeroU32, time::Duration};

/// A compiled limit: `rate` requests per `period`, with a burst of `burst` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Nanoseconds between two requests at the sustained rate (`T`).
    interval_ns: u64,
    /// `T * B`: how far ahead of `now` the TAT may run.
    tolerance_ns: u64,
    burst: u32,
    rate: u32,
    period: Duration,
}

/// The result of one GCRA decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraDecision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Requests that could still be made right now (after this one, if allowed).
    pub remaining: u32,
    /// When rejected: how long until this request would be allowed. Zero when allowed.
    pub retry_after: Duration,
    /// How long until the bucket is full again (the quota fully restored).
    pub reset_after: Duration,
}

impl Gcra {
    /// `rate` requests per `period`, up to `burst` at once. A period shorter than a nanosecond
    /// per request is clamped to one nanosecond.
    pub fn new(rate: NonZeroU32, period: Duration, burst: NonZeroU32) -> Self {
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let interval_ns = (period_ns / u64::from(rate.get())).max(1);
        Self {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(burst.get())),
            burst: burst.get(),
            rate: rate.get(),
            period,
        }
    }

    /// The burst (`B`, the quota a fresh key starts with).
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The sustained rate's request count.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The sustained rate's period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The emission interval `T`.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// The time a full burst takes to refill (`T * B`): the `w` of `RateLimit-Policy`.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.tolerance_ns)
    }

    /// Decide one request of weight `cost` at `now`, given the stored TAT (`None` for a key
    /// never seen). Returns the decision and the TAT to store (`None` = leave state unchanged).
    pub fn decide(&self, tat: Option<u64>, now: u64, cost: u32) -> (GcraDecision, Option<u64>) {
        let tat = tat.unwrap_or(now).max(now);
        let increment = self.interval_ns.saturating_mul(u64::from(cost));
        let new_tat = tat.saturating_add(increment);
        let allow_at = new_tat.saturating_sub(self.tolerance_ns);
        if now < allow_at {
            let remaining = self.remaining_at(tat, now);
            let d = GcraDecision {
                allowed: false,
                remaining,
                retry_after: Duration::from_nanos(allow_at - now),
                reset_after: Duration::from_nanos(tat - now),
            };
            return (d, None);
        }
        let d = GcraDecision {
            allowed: true,
            remaining: self.remaining_at(new_tat, now),
            retry_after: Duration::ZERO,
            reset_after: Duration::from_nanos(new_tat - now),
        };
        (d, Some(new_tat))
    }

    fn remaining_at(&self, tat: u64, now: u64) -> u32 {
        let free = now.saturating_add(self.tolerance_ns).saturating_sub(tat);
        u32::try_from(free / self.interval_ns).unwrap_or(u32::MAX)
    }

    /// Whether a stored TAT is in the past, i.e. the key is back to a full bucket and its state
    /// can be dropped without changing any future decision (idle eviction).
    pub fn is_idle(tat: u64, now: u64) -> bool {
        tat <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_one_per_interval() {
        // 5 per minute, burst 5: five at once, then one every 12 s.
        let g = Gcra::new(nz(5), Duration::from_secs(60), nz(5));
        let mut tat = None;
        for i in 0..5 {
            let (d, t) = g.decide(tat, 0, 1);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 4 - i);
            tat = t;
        }
        let (d, t) = g.decide(tat, 0, 1);
        assert!(!d.allowed);
        assert!(t.is_none());
        assert_eq!(d.retry_after, Duration::from_secs(12));
        assert_eq!(d.reset_after, Duration::from_secs(60));
        assert_eq!(d.remaining, 0);
        // One nanosecond early: still refused, exactly 1 ns to wait.
        let (d, _) = g.decide(tat, 12 * S - 1, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_nanos(1));
        // Exactly on time: allowed, and the next is 12 s later again.
        let (d, t) = g.decide(tat, 12 * S, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let (d, _) = g.decide(t, 12 * S, 1);
        assert_eq!(d.retry_after, Duration::from_secs(12));
    }

    #[test]
    fn no_window_edge_burst() {
        // A fixed window would allow 2x the rate around a window boundary; GCRA does not.
        let g = Gcra::new(nz(10), Duration::from_secs(1), nz(10));
        let mut tat = None;
        let mut allowed = 0;
        // 100 attempts spread over 1.5 s, every 15 ms.
        for i in 0..100u64 {
            let (d, t) = g.decide(tat, i * 15_000_000, 1);
            if d.allowed {
                allowed += 1;
                tat = t;
            }
        }
        // At most burst + 1.485 s * 10/s = 10 + 14.
        assert!(allowed <= 24, "{allowed}");
        assert!(allowed >= 23, "{allowed}");
    }

    #[test]
    fn idle_key_is_full_again() {
        let g = Gcra::new(nz(2), Duration::from_secs(1), nz(2));
        let (_, t) = g.decide(None, 0, 1);
        let (_, t) = g.decide(t, 0, 1);
        let tat = t.unwrap();
        assert!(!Gcra::is_idle(tat, S - 1));
        assert!(Gcra::is_idle(tat, S));
        let (d, _) = g.decide(Some(tat), S, 1);
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn cost_larger_than_burst_never_passes() {
        let g = Gcra::new(nz(1), Duration::from_secs(1), nz(3));
        let (d, _) = g.decide(None, 0, 4);
        assert!(!d.allowed);
        let (d, _) = g.decide(None, 0, 3);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn burst_smaller_than_rate() {
        // 1000/s with burst 1: strictly one per millisecond.
        let g = Gcra::new(nz(1000), Duration::from_secs(1), nz(1));
        let (d, t) = g.decide(None, 0, 1);
        assert!(d.allowed);
        let (d, _) = g.decide(t, 999_999, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_nanos(1));
        assert_eq!(g.window(), Duration::from_millis(1));
    }
}
