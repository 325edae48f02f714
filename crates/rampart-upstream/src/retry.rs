//! Retry policy, pure parts: which requests may be retried, which outcomes are retryable,
//! and the backoff (exponential with full jitter).

use std::time::Duration;

use http::{Method, StatusCode};
use rampart_core::ErrorKind;

/// Retry settings (from `[upstreams.retry]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Tries per request, the first included.
    pub max_attempts: u32,
    /// Retried response statuses.
    pub statuses: Vec<u16>,
    /// Backoff base.
    pub backoff_base: Duration,
    /// Backoff cap.
    pub backoff_max: Duration,
    /// Retry budget ratio.
    pub budget_ratio: f64,
    /// Retry budget floor per second.
    pub budget_min_per_second: u32,
    /// Largest buffered (replayable) request body.
    pub max_replay_body: u64,
    /// Retry non-idempotent requests carrying `Idempotency-Key`.
    pub idempotency_key: bool,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            statuses: vec![502, 503, 504],
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(250),
            budget_ratio: 0.2,
            budget_min_per_second: 5,
            max_replay_body: 64 * 1024,
            idempotency_key: false,
        }
    }
}

/// Why a try is retried: the `reason` label of `rampart_upstream_retries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Could not connect.
    Connect,
    /// The connection failed before any response byte.
    Reset,
    /// No response head in time (per try).
    Timeout,
    /// A retryable status.
    Status,
}

impl Reason {
    pub(crate) const ALL: [Reason; 4] = [Self::Connect, Self::Reset, Self::Timeout, Self::Status];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect_error",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::Status => "status",
        }
    }
}

/// May this request be sent more than once? Idempotent methods (RFC 9110 §9.2.2), or any
/// method with `Idempotency-Key` when allowed.
pub(crate) fn may_retry(s: &RetrySettings, method: &Method, headers: &http::HeaderMap) -> bool {
    if s.max_attempts < 2 {
        return false;
    }
    let idempotent = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    idempotent || (s.idempotency_key && headers.contains_key("idempotency-key"))
}

/// The retry reason of a status, if it is one of the retried statuses.
pub(crate) fn status_reason(s: &RetrySettings, status: StatusCode) -> Option<Reason> {
    s.statuses
        .contains(&status.as_u16())
        .then_some(Reason::Status)
}

/// The retry reason of an error kind (connect errors, resets before a response, per-try
/// timeouts); anything else (our own body errors, overload) is not retried.
pub(crate) fn error_reason(kind: &ErrorKind) -> Option<Reason> {
    match kind {
        ErrorKind::UpstreamConnect => Some(Reason::Connect),
        ErrorKind::UpstreamProtocol => Some(Reason::Reset),
        ErrorKind::GatewayTimeout => Some(Reason::Timeout),
        _ => None,
    }
}

/// Backoff before retry `n` (1-based): uniform in `[0, min(max, base × 2^(n-1))]`, `r` being
/// a uniform random number.
pub(crate) fn backoff(s: &RetrySettings, n: u32, r: u64) -> Duration {
    let exp = s
        .backoff_base
        .saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(s.backoff_max);
    exp.mul_f64(r as f64 / u64::MAX as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_may_retry() {
        let s = RetrySettings::default();
        let with_key = {
            let mut h = http::HeaderMap::new();
            h.insert("idempotency-key", "k1".parse().unwrap());
            h
        };
        let none = http::HeaderMap::new();
        let table = [
            (Method::GET, &none, false, true),
            (Method::HEAD, &none, false, true),
            (Method::PUT, &none, false, true),
            (Method::DELETE, &none, false, true),
            (Method::POST, &none, false, false),
            (Method::PATCH, &none, false, false),
            (Method::POST, &with_key, false, false),
            (Method::POST, &with_key, true, true),
        ];
        for (m, h, key_ok, want) in table {
            let s = RetrySettings {
                idempotency_key: key_ok,
                ..s.clone()
            };
            assert_eq!(may_retry(&s, &m, h), want, "{m} key_ok={key_ok}");
        }
        let one = RetrySettings {
            max_attempts: 1,
            ..s
        };
        assert!(!may_retry(&one, &Method::GET, &none));
    }

    #[test]
    fn reasons() {
        let s = RetrySettings::default();
        assert_eq!(
            status_reason(&s, StatusCode::BAD_GATEWAY),
            Some(Reason::Status)
        );
        assert_eq!(status_reason(&s, StatusCode::INTERNAL_SERVER_ERROR), None);
        assert_eq!(status_reason(&s, StatusCode::OK), None);
        assert_eq!(
            error_reason(&ErrorKind::UpstreamConnect),
            Some(Reason::Connect)
        );
        assert_eq!(
            error_reason(&ErrorKind::UpstreamProtocol),
            Some(Reason::Reset)
        );
        assert_eq!(
            error_reason(&ErrorKind::GatewayTimeout),
            Some(Reason::Timeout)
        );
        assert_eq!(error_reason(&ErrorKind::Overloaded), None);
        assert_eq!(error_reason(&ErrorKind::PayloadTooLarge), None);
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let s = RetrySettings {
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ..RetrySettings::default()
        };
        // (n, r, expected)
        let table = [
            (1, u64::MAX, 10),
            (2, u64::MAX, 20),
            (3, u64::MAX, 40),
            (4, u64::MAX, 50),
            (30, u64::MAX, 50),
            (3, 0, 0),
            (3, u64::MAX / 2, 20),
        ];
        for (n, r, ms) in table {
            let d = backoff(&s, n, r).as_millis();
            assert!(d.abs_diff(ms) <= 1, "n {n}: {d} ms, want {ms}");
        }
    }
}
