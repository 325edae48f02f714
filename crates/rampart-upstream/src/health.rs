//! Active health checks: one background task per endpoint sends the configured request every
//! `interval` (+ up to `jitter`), and after `unhealthy_threshold` failures in a row (a status
//! outside `expected`, an error, or no answer within `timeout`) marks the endpoint unhealthy;
//! `healthy_threshold` passes in a row bring it back (and restart its slow-start ramp).
//!
//! The verdict is published in the endpoint's state (an atomic flag the request path only
//! reads). A task stops when the upstream generation that started it is dropped; state is
//! shared with the next generation through the registry, so a reload does not reset it.

use std::{
    sync::{Arc, Weak, atomic::Ordering},
    time::Duration,
};

use http::{HeaderValue, Method, header};
use http_body_util::BodyExt;
use rampart_core::body;
use tokio::time::Instant;

use crate::{pool::EndpointPool, state::EndpointState, upstream::Upstream};

/// Active check settings (from `[upstreams.health_check]`).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    /// Request method.
    pub method: Method,
    /// Request path (and query).
    pub path: String,
    /// `Host` header (default: the endpoint's `host:port`).
    pub host: Option<String>,
    /// Healthy status ranges (inclusive).
    pub expected: Vec<(u16, u16)>,
    /// Time between checks.
    pub interval: Duration,
    /// Check deadline.
    pub timeout: Duration,
    /// Random extra delay per interval, at most this.
    pub jitter: Duration,
    /// Passes in a row to become healthy.
    pub healthy_threshold: u32,
    /// Failures in a row to become unhealthy.
    pub unhealthy_threshold: u32,
}

/// Apply one check result to the state; returns `Some(healthy)` on a transition. Pure
/// except for the state it updates.
pub(crate) fn apply(
    s: &HealthSettings,
    state: &EndpointState,
    passed: bool,
    now: Instant,
) -> Option<bool> {
    let mut st = state.lock()?;
    let healthy = state.check_ok();
    if passed {
        st.streak = (st.streak.0.saturating_add(1), 0);
        if !healthy && st.streak.0 >= s.healthy_threshold {
            state.check_failed.store(false, Ordering::Relaxed);
            st.returned_at = Some(now);
            return Some(true);
        }
    } else {
        st.streak = (0, st.streak.1.saturating_add(1));
        if healthy && st.streak.1 >= s.unhealthy_threshold {
            state.check_failed.store(true, Ordering::Relaxed);
            return Some(false);
        }
    }
    None
}

/// A boxed `Send` future (spelled out so the spawned checker's future is provably `Send`).
type CheckFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;

/// Send one check to `pool`: did it pass?
fn check<'a>(s: &'a HealthSettings, pool: &'a Arc<EndpointPool>, http2: bool) -> CheckFuture<'a> {
    Box::pin(check_inner(s, pool, http2))
}

async fn check_inner(s: &HealthSettings, pool: &Arc<EndpointPool>, http2: bool) -> bool {
    let ep = &pool.ep;
    let uri = if http2 {
        let scheme = if ep.https { "https" } else { "http" };
        format!("{scheme}://{}{}", ep.authority, s.path)
    } else {
        s.path.clone()
    };
    let host = s.host.as_deref().unwrap_or(ep.authority.as_str());
    let Ok(mut req) = http::Request::builder()
        .method(s.method.clone())
        .uri(uri)
        .version(if http2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        })
        .body(body::empty())
    else {
        return false;
    };
    if !http2 && let Ok(h) = HeaderValue::from_str(host) {
        req.headers_mut().insert(header::HOST, h);
    }
    req.headers_mut().insert(
        header::USER_AGENT,
        HeaderValue::from_static("rampart-health-check"),
    );
    let fut = async {
        let resp = pool.send(req).await.ok()?;
        let status = resp.status().as_u16();
        // Read (up to 64 KiB of) the body so the connection can be reused.
        let mut b = resp.into_body();
        let mut n = 0;
        while n < 64 * 1024 {
            match b.frame().await {
                Some(Ok(f)) => n += f.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
        Some(status)
    };
    match tokio::time::timeout(s.timeout, fut).await {
        Ok(Some(status)) => s
            .expected
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status)),
        _ => false,
    }
}

fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    max.mul_f64(rand::random::<f64>())
}

/// Start one checker task per endpoint of `upstream` (when checks are configured).
pub(crate) fn spawn(upstream: &Arc<Upstream>, http2: bool) {
    let Some(s) = upstream.settings().health.clone() else {
        return;
    };
    let s = Arc::new(s);
    for i in 0..upstream.eps().len() {
        let weak: Weak<Upstream> = Arc::downgrade(upstream);
        let s = s.clone();
        tokio::spawn(async move {
            // Spread the first checks of a pool over the jitter window.
            tokio::time::sleep(jitter(s.jitter)).await;
            loop {
                let Some((pool, state, name)) = weak.upgrade().and_then(|u| {
                    u.eps()
                        .get(i)
                        .map(|e| (e.pool.clone(), e.state.clone(), u.name().to_string()))
                }) else {
                    return;
                };
                let passed = check(&s, &pool, http2).await;
                match apply(&s, &state, passed, Instant::now()) {
                    Some(true) => {
                        tracing::info!(upstream = %name, endpoint = %pool.ep.label, "endpoint passed its health checks: healthy");
                    }
                    Some(false) => {
                        tracing::warn!(upstream = %name, endpoint = %pool.ep.label, "endpoint failed its health checks: unhealthy");
                    }
                    None => {}
                }
                drop((pool, state));
                tokio::time::sleep(s.interval + jitter(s.jitter)).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{breaker::BreakerSettings, state::EndpointRegistry};

    #[test]
    fn thresholds_table() {
        let s = HealthSettings {
            method: Method::GET,
            path: "/h".into(),
            host: None,
            expected: vec![(200, 299)],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            jitter: Duration::ZERO,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        };
        let reg = EndpointRegistry::new();
        let st = reg.state("u", "e", &BreakerSettings::default());
        let now = Instant::now();
        // (check passed, transition, healthy after)
        let table = [
            (false, None, true),
            (false, None, true),
            (true, None, true), // streak broken
            (false, None, true),
            (false, None, true),
            (false, Some(false), false),
            (false, None, false),
            (true, None, false),
            (true, Some(true), true),
            (true, None, true),
        ];
        for (i, (passed, want, healthy)) in table.into_iter().enumerate() {
            assert_eq!(apply(&s, &st, passed, now), want, "step {i}");
            assert_eq!(st.check_ok(), healthy, "step {i}");
        }
    }
}
