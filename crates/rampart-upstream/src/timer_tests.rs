//! Timer behaviour under tokio's paused clock: breaker cool-down and window, ejection times,
//! retry-budget refill, retry backoff, slow start and active health checks, each driven by
//! `tokio::time::advance` through the real request path (`Upstream::send`, the health-check
//! tasks) against loopback origins (`rampart_testkit::TestUpstream`). The production code
//! reads `tokio::time::Instant::now()`, which is the paused clock here.
//!
//! Real sockets and a paused clock: when the runtime idles with time paused, tokio jumps the
//! clock to the next timer, and waiting on a socket counts as idle, so a connect or response
//! timeout would fire while loopback I/O is still in flight. [`ClockHold`] turns the jump off
//! (a running `spawn_blocking` task inhibits auto-advance, as `tokio::time::pause`
//! documents): I/O then takes no virtual time and the clock moves only by `advance`, so the
//! tests state exact instants ("still open 1 ms before the cool-down ends"). Waiting for I/O
//! is by condition ([`wait_until`]), never by a wall-clock sleep; a task woken by an expired
//! timer runs within [`settle`] (a few yields: deterministic on the current-thread runtime).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU16, Ordering},
    },
    time::Duration,
};

use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use rampart_core::{ErrorKind, body};
use rampart_testkit::TestUpstream;
use tokio::time::{Instant, advance};

use crate::{
    BreakerSettings, BreakerState, Endpoint, EndpointRegistry, EndpointSnapshot, HealthSettings,
    OutlierSettings, PoolSettings, ResilienceSettings, RetrySettings, Strategy, Upstream,
    UpstreamMetrics, Upstreams, metrics::RetryLabels,
};

const MS: Duration = Duration::from_millis(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// While this lives the paused clock does not auto-advance (see the module doc).
struct ClockHold {
    _release: std::sync::mpsc::Sender<()>,
}

impl ClockHold {
    fn new() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // The blocking task returns once the sender is dropped with the hold.
        drop(tokio::task::spawn_blocking(move || rx.recv()));
        Self { _release: tx }
    }
}

/// Let every task woken so far run, including one woken by a timer that `advance` just
/// expired. No wall-clock wait.
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// `advance`, then [`settle`].
async fn step(d: Duration) {
    advance(d).await;
    settle().await;
}

/// Yield (so loopback I/O progresses) until `cond` holds; the paused clock does not move.
/// Gives up after 10 s of real time so a broken test fails instead of hanging.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < give_up,
            "gave up waiting for {what}"
        );
        tokio::task::yield_now().await;
    }
}

/// A loopback origin answering a switchable status (or never), recording the paused-clock
/// instant at which each request arrived.
struct Origin {
    up: TestUpstream,
    status: Arc<AtomicU16>,
    hang: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Instant>>>,
}

impl Origin {
    async fn start(status: u16) -> Self {
        let status = Arc::new(AtomicU16::new(status));
        let hang = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, h, l) = (status.clone(), hang.clone(), seen.clone());
        let up = TestUpstream::start(move |_| {
            l.lock().unwrap().push(Instant::now());
            let (status, hang) = (s.load(Ordering::SeqCst), h.load(Ordering::SeqCst));
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                rampart_testkit::response(status, "", &[])
            }
        })
        .await;
        Self {
            up,
            status,
            hang,
            seen,
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::parse(&self.up.url()).unwrap()
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn seen(&self) -> Vec<Instant> {
        self.seen.lock().unwrap().clone()
    }
}

/// Settings with every mechanism off but the ones a test turns on.
fn quiet() -> ResilienceSettings {
    ResilienceSettings {
        outlier: OutlierSettings {
            consecutive: 0,
            ..OutlierSettings::default()
        },
        breaker: BreakerSettings {
            enabled: false,
            ..BreakerSettings::default()
        },
        retry: RetrySettings {
            max_attempts: 1,
            ..RetrySettings::default()
        },
        ..ResilienceSettings::default()
    }
}

fn upstream(origins: &[&Origin], rs: ResilienceSettings) -> Upstream {
    upstream_with(
        origins,
        rs,
        &UpstreamMetrics::register(&mut Registry::default()),
    )
}

fn upstream_with(origins: &[&Origin], rs: ResilienceSettings, m: &UpstreamMetrics) -> Upstream {
    upstream_in(origins, rs, m, &EndpointRegistry::new())
}

/// An upstream whose endpoint state comes from `registry` (as a config reload builds one).
fn upstream_in(
    origins: &[&Origin],
    rs: ResilienceSettings,
    m: &UpstreamMetrics,
    registry: &EndpointRegistry,
) -> Upstream {
    Upstream::build(
        "u",
        origins.iter().map(|o| o.endpoint()).collect(),
        PoolSettings::default(),
        None,
        rs,
        m,
        registry,
    )
}

/// One GET through the upstream: the status, or the kind of error it failed with.
async fn get(u: &Upstream) -> Result<u16, ErrorKind> {
    let req = http::Request::get("/").body(body::empty()).unwrap();
    match u.send(req).await {
        Ok((resp, _)) => {
            let status = resp.status().as_u16();
            // Read to the end so the connection goes back to the pool.
            let _ = resp.into_body().collect().await;
            Ok(status)
        }
        Err(e) => Err(rampart_core::rescue::classify(e.as_ref()).0),
    }
}

fn snap(u: &Upstream, i: usize) -> EndpointSnapshot {
    u.snapshot().swap_remove(i)
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_half_opens_after_the_cool_down_and_closes() {
    let _hold = ClockHold::new();
    let o = Origin::start(500).await;
    let u = upstream(
        &[&o],
        ResilienceSettings {
            breaker: BreakerSettings {
                enabled: true,
                failure_rate: 0.5,
                min_requests: 4,
                window: secs(10),
                cool_down: secs(5),
                probes: 2,
            },
            ..quiet()
        },
    );
    let state = |u: &Upstream| snap(u, 0).breaker;

    // closed -> open: four failures in the window.
    for _ in 0..4 {
        assert_eq!(state(&u), BreakerState::Closed);
        assert_eq!(get(&u).await, Ok(500));
    }
    assert_eq!(state(&u), BreakerState::Open);
    assert!(!snap(&u, 0).available);
    assert_eq!(get(&u).await, Err(ErrorKind::CircuitOpen));

    // Still open 1 ms before the cool-down ends: refused without reaching the origin.
    step(secs(5) - MS).await;
    assert_eq!(state(&u), BreakerState::Open);
    assert_eq!(get(&u).await, Err(ErrorKind::CircuitOpen));
    assert_eq!(o.hits(), 4);

    // open -> half-open when it ends; two good probes close it.
    step(MS).await;
    assert_eq!(state(&u), BreakerState::HalfOpen);
    o.set(200);
    assert_eq!(get(&u).await, Ok(200));
    assert_eq!(state(&u), BreakerState::HalfOpen, "one probe of two");
    assert_eq!(get(&u).await, Ok(200));
    assert_eq!(state(&u), BreakerState::Closed);
    assert_eq!(o.hits(), 6);

    // Open again; a failed probe re-opens it and restarts the cool-down from the probe.
    o.set(500);
    for _ in 0..4 {
        assert_eq!(get(&u).await, Ok(500));
    }
    assert_eq!(state(&u), BreakerState::Open);
    step(secs(5)).await;
    assert_eq!(state(&u), BreakerState::HalfOpen);
    assert_eq!(get(&u).await, Ok(500), "the probe fails");
    assert_eq!(state(&u), BreakerState::Open);
    step(secs(5) - MS).await;
    assert_eq!(
        state(&u),
        BreakerState::Open,
        "cool-down counts from the failed probe"
    );
    assert_eq!(get(&u).await, Err(ErrorKind::CircuitOpen));
    step(MS).await;
    assert_eq!(state(&u), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn breaker_window_forgets_failures_older_than_the_window() {
    let _hold = ClockHold::new();
    let o = Origin::start(500).await;
    let rs = ResilienceSettings {
        breaker: BreakerSettings {
            enabled: true,
            failure_rate: 0.5,
            min_requests: 4,
            window: secs(10),
            cool_down: secs(5),
            probes: 1,
        },
        ..quiet()
    };
    // Two upstreams (own registries, so own breakers), both built now.
    let (early, late) = (upstream(&[&o], rs.clone()), upstream(&[&o], rs));
    for u in [&early, &late] {
        for _ in 0..3 {
            assert_eq!(get(u).await, Ok(500));
        }
    }
    // 1 ms before the window has passed the three failures still count: a fourth opens it.
    step(secs(10) - MS).await;
    assert_eq!(get(&early).await, Ok(500));
    assert_eq!(snap(&early, 0).breaker, BreakerState::Open);
    // Once it has passed they are gone: one failure is below `min_requests`.
    step(MS).await;
    assert_eq!(get(&late).await, Ok(500));
    assert_eq!(snap(&late, 0).breaker, BreakerState::Closed);
}

/// Round robin until the first endpoint (`a`) is ejected; returns the ejection time (s).
async fn eject_first(u: &Upstream, a: &Origin) -> f64 {
    let before = a.hits();
    for _ in 0..8 {
        if snap(u, 0).ejected {
            break;
        }
        get(u).await.unwrap();
    }
    assert!(snap(u, 0).ejected, "not ejected");
    assert_eq!(a.hits() - before, 2, "two failures in a row eject");
    snap(u, 0).ejected_for_secs
}

/// While the first endpoint (`a`) is ejected, traffic goes to the second only.
async fn only_second(u: &Upstream, a: &Origin) {
    let before = a.hits();
    for _ in 0..4 {
        assert_eq!(get(u).await, Ok(200));
    }
    assert_eq!(a.hits(), before, "an ejected endpoint got traffic");
}

/// Round robin until the first endpoint (`a`) has answered one more request.
async fn first_serves_one(u: &Upstream, a: &Origin) {
    let served = a.hits();
    while a.hits() == served {
        assert_eq!(get(u).await, Ok(200));
    }
}

/// Eject the first endpoint and check it stays out for exactly `len` (no traffic, still
/// ejected 1 ms before the end) and is back at the end.
async fn eject_for(u: &Upstream, a: &Origin, len: Duration) {
    assert_eq!(eject_first(u, a).await, len.as_secs_f64());
    only_second(u, a).await;
    step(len - MS).await;
    assert!(snap(u, 0).ejected, "1 ms before the end of {len:?}");
    only_second(u, a).await;
    step(MS).await;
    assert!(!snap(u, 0).ejected, "still out at the end of {len:?}");
}

#[tokio::test(start_paused = true)]
async fn outlier_ejection_lasts_base_then_longer_then_resets() {
    let _hold = ClockHold::new();
    let (a, b) = (Origin::start(500).await, Origin::start(200).await);
    let u = upstream(
        &[&a, &b],
        ResilienceSettings {
            outlier: OutlierSettings {
                consecutive: 2,
                base: secs(10),
                max: secs(25),
                max_percent: 50,
            },
            ..quiet()
        },
    );
    // First ejection: base; second in a row: 2 × base; third: capped at max.
    for (n, len) in [(1, 10), (2, 20), (3, 25)] {
        eject_for(&u, &a, secs(len)).await;
        assert!(snap(&u, 0).available, "back after ejection {n}");
    }

    // Serving well for less than `max` after the return keeps the count: capped again.
    a.set(200);
    step(secs(25) - MS).await;
    first_serves_one(&u, &a).await;
    a.set(500);
    eject_for(&u, &a, secs(25)).await;

    // Serving well for `max` after the return starts over at base.
    a.set(200);
    step(secs(25)).await;
    first_serves_one(&u, &a).await;
    a.set(500);
    eject_for(&u, &a, secs(10)).await;
}

/// Was this request retried (two tries at the origin)?
async fn retried(u: &Upstream, o: &Origin) -> bool {
    let before = o.hits();
    assert_eq!(get(u).await, Ok(503));
    match o.hits() - before {
        1 => false,
        2 => true,
        n => panic!("{n} tries"),
    }
}

#[tokio::test(start_paused = true)]
async fn retry_budget_refills_as_its_window_moves() {
    let _hold = ClockHold::new();
    let o = Origin::start(503).await;
    // Floor only: 1 retry per second over the 10 s window = 10 retries in any window.
    let metrics = UpstreamMetrics::register(&mut Registry::default());
    let u = upstream_with(
        &[&o],
        ResilienceSettings {
            retry: RetrySettings {
                max_attempts: 2,
                backoff_base: Duration::ZERO,
                budget_ratio: 0.0,
                budget_min_per_second: 1,
                ..RetrySettings::default()
            },
            ..quiet()
        },
        &metrics,
    );
    // (clock step, retries granted, then one refused); instants from t0 = the build.
    let table = [
        (Duration::ZERO, 6, false),
        (secs(5), 4, true),      // t0 + 5 s: 6 + 4 spent
        (secs(5) - MS, 0, true), // 1 ms before second 0 leaves the window
        (MS, 6, true),           // t0 + 10 s: the six of second 0 are back
        (secs(5) - MS, 0, true), // 1 ms before second 5 leaves
        (MS, 4, true),           // t0 + 15 s: the four of second 5 are back
    ];
    for (i, (by, granted, then_refused)) in table.into_iter().enumerate() {
        step(by).await;
        for _ in 0..granted {
            assert!(retried(&u, &o).await, "step {i}: retry refused");
        }
        if then_refused {
            assert!(!retried(&u, &o).await, "step {i}: retry over the budget");
        }
    }
    let refused = metrics.retries.get_or_create(&RetryLabels {
        upstream: "u".into(),
        reason: "budget_exhausted",
    });
    assert_eq!(refused.get(), 5);
}

#[tokio::test(start_paused = true)]
async fn retries_sleep_a_jittered_backoff_within_the_cap() {
    let _hold = ClockHold::new();
    let o = Origin::start(503).await;
    let u = Arc::new(upstream(
        &[&o],
        ResilienceSettings {
            retry: RetrySettings {
                max_attempts: 4,
                backoff_base: Duration::from_millis(100),
                backoff_max: Duration::from_millis(250),
                budget_min_per_second: 100,
                ..RetrySettings::default()
            },
            ..quiet()
        },
    ));
    let inflight = |u: &Upstream| u.eps()[0].state.inflight.load(Ordering::SeqCst);
    // Backoff caps before retries 1, 2, 3: min(max, base × 2^(n-1)).
    let caps = [100, 200, 250];
    let mut waits = Vec::new();
    for request in 0..4 {
        o.set(503);
        let start = Instant::now();
        let sender = u.clone();
        let task = tokio::spawn(async move { get(&sender).await });
        for (n, cap) in caps.into_iter().enumerate() {
            let tries = request * 4 + n + 1;
            wait_until("a try's answer", || o.hits() >= tries && inflight(&u) == 0).await;
            if n == caps.len() - 1 {
                o.set(200);
            }
            // The answer is in and no try is in flight: the request sleeps, and nothing
            // happens until the clock moves.
            let failed_at = Instant::now();
            settle().await;
            assert_eq!(
                (o.hits(), inflight(&u)),
                (tries, 0),
                "retried without a pause"
            );
            let mut waited = 0;
            while o.hits() == tries && inflight(&u) == 0 {
                assert!(waited < cap, "retry {} not sent within {cap} ms", n + 1);
                step(MS).await;
                waited += 1;
            }
            wait_until("the retry at the origin", || o.hits() == tries + 1).await;
            assert_eq!(o.seen()[tries], failed_at + Duration::from_millis(waited));
            waits.push(waited);
        }
        assert_eq!(task.await.unwrap(), Ok(200));
        let per = &waits[waits.len() - 3..];
        assert_eq!(
            Instant::now() - start,
            Duration::from_millis(per.iter().sum()),
            "the request took its backoffs"
        );
    }
    // Full jitter: twelve pauses drawn from [0, cap] are not all the same.
    assert!(waits.iter().any(|w| *w != waits[0]), "no jitter: {waits:?}");
}

/// How many of `n` requests went to `a`.
async fn share(u: &Upstream, a: &Origin, n: usize) -> usize {
    let before = a.hits();
    for _ in 0..n {
        assert_eq!(get(u).await, Ok(200));
    }
    a.hits() - before
}

/// Weighted round robin, 10 s slow start, ejection after one failure for 5 s.
fn slow_start_settings() -> ResilienceSettings {
    ResilienceSettings {
        strategy: Strategy::WeightedRoundRobin,
        slow_start: secs(10),
        outlier: OutlierSettings {
            consecutive: 1,
            base: secs(5),
            max: secs(60),
            max_percent: 50,
        },
        ..quiet()
    }
}

#[tokio::test(start_paused = true)]
async fn slow_start_ramps_a_returning_endpoint_over_the_window() {
    let _hold = ClockHold::new();
    let (a, b) = (Origin::start(500).await, Origin::start(200).await);
    let u = upstream(&[&a, &b], slow_start_settings());
    // No ramp from creation: the endpoints take full weight at once (a fails its first
    // request and is ejected at t0).
    while !snap(&u, 0).ejected {
        get(&u).await.unwrap();
    }
    a.set(200);
    step(secs(5)).await;
    assert!(snap(&u, 0).available);
    // Back at 10 % weight: 10 : 100 (without slow start it would be half).
    let got = share(&u, &a, 110).await;
    assert!((8..=12).contains(&got), "at return: {got} of 110");
    // Half way through the window: 50 : 100.
    step(secs(5)).await;
    let got = share(&u, &a, 150).await;
    assert!((47..=53).contains(&got), "at 5 s: {got} of 150");
    // At the end: equal.
    step(secs(5)).await;
    let got = share(&u, &a, 100).await;
    assert!((48..=52).contains(&got), "at 10 s: {got} of 100");
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_added_by_a_reload_takes_full_weight_while_a_returning_one_ramps() {
    let _hold = ClockHold::new();
    let (a, b, c) = (
        Origin::start(500).await,
        Origin::start(200).await,
        Origin::start(200).await,
    );
    let m = UpstreamMetrics::register(&mut Registry::default());
    let registry = EndpointRegistry::new();
    let old = upstream_in(&[&a, &b], slow_start_settings(), &m, &registry);
    // Long past any window counted from creation.
    step(secs(60)).await;
    while !snap(&old, 0).ejected {
        get(&old).await.unwrap();
    }
    a.set(200);
    step(secs(5)).await;
    assert!(snap(&old, 0).available);

    // The reload: a and b keep their state through the registry, c is new.
    let u = upstream_in(&[&a, &b, &c], slow_start_settings(), &m, &registry);
    drop(old);
    let before = (a.hits(), b.hits(), c.hits());
    for _ in 0..210 {
        assert_eq!(get(&u).await, Ok(200));
    }
    let got = (
        a.hits() - before.0,
        b.hits() - before.1,
        c.hits() - before.2,
    );
    // 10 : 100 : 100: a just returned from ejection ramps, c (no history) has all its weight
    // at once, as much as b. With a ramp from creation c would get 10 as well.
    assert!((8..=12).contains(&got.0), "a, just returned: {got:?}");
    assert!((95..=105).contains(&got.2), "c, new: {got:?}");
    assert!((95..=105).contains(&got.1), "b: {got:?}");
}

#[tokio::test(start_paused = true)]
async fn slow_start_ramps_an_endpoint_whose_breaker_closed_again() {
    let _hold = ClockHold::new();
    let (a, b) = (Origin::start(200).await, Origin::start(200).await);
    let u = upstream(
        &[&a, &b],
        ResilienceSettings {
            strategy: Strategy::WeightedRoundRobin,
            slow_start: secs(10),
            breaker: BreakerSettings {
                enabled: true,
                failure_rate: 0.5,
                min_requests: 2,
                window: secs(10),
                cool_down: secs(5),
                probes: 1,
            },
            ..quiet()
        },
    );
    // A new endpoint: no ramp (equal shares from the first request).
    let got = share(&u, &a, 100).await;
    assert!((48..=52).contains(&got), "at creation: {got} of 100");
    a.set(500);
    while snap(&u, 0).breaker != BreakerState::Open {
        get(&u).await.unwrap();
    }
    a.set(200);
    step(secs(5)).await;
    while snap(&u, 0).breaker != BreakerState::Closed {
        assert_eq!(get(&u).await, Ok(200));
    }
    // Closed again: back at 10 % weight, 10 : 100.
    let got = share(&u, &a, 110).await;
    assert!((8..=12).contains(&got), "after closing: {got} of 110");
    // At the end of the window: equal.
    step(secs(10)).await;
    let got = share(&u, &a, 100).await;
    assert!((48..=52).contains(&got), "at 10 s: {got} of 100");
}

fn health(interval: Duration, healthy: u32, unhealthy: u32) -> HealthSettings {
    HealthSettings {
        method: http::Method::GET,
        path: "/health".into(),
        host: None,
        expected: vec![(200, 299)],
        interval,
        timeout: secs(1),
        jitter: Duration::ZERO,
        healthy_threshold: healthy,
        unhealthy_threshold: unhealthy,
    }
}

/// Start the health checkers of one upstream; returns it.
fn checked(o: &Origin, h: HealthSettings) -> (Upstreams, Arc<Upstream>) {
    let ups = Upstreams::new(vec![upstream(
        &[o],
        ResilienceSettings {
            health: Some(h),
            ..quiet()
        },
    )]);
    let u = ups.get("u").unwrap().clone();
    ups.spawn_reaper(secs(3600));
    (ups, u)
}

/// (passes, failures) in a row, as the checker last recorded them.
fn streak(u: &Upstream) -> (u32, u32) {
    u.eps()[0].state.lock().unwrap().streak
}

/// A check is under way (the checker holds the pool from wake-up to verdict).
fn checking(u: &Upstream) -> bool {
    Arc::strong_count(&u.eps()[0].pool) > 1
}

#[tokio::test(start_paused = true)]
async fn health_checks_flip_the_endpoint_at_the_interval() {
    let _hold = ClockHold::new();
    let o = Origin::start(200).await;
    let t0 = Instant::now();
    let (_ups, u) = checked(&o, health(secs(10), 2, 2));
    let at = |k: u32| t0 + secs(10) * k;

    wait_until("check 1", || streak(&u) == (1, 0)).await;
    assert_eq!(o.seen(), [at(0)]);

    // Nothing before the interval is over.
    o.set(503);
    step(secs(10) - MS).await;
    assert!(
        !checking(&u) && o.hits() == 1,
        "checked before the interval"
    );
    step(MS).await;
    wait_until("check 2", || streak(&u) == (0, 1)).await;
    assert_eq!(o.seen()[1], at(1));
    assert!(snap(&u, 0).check_ok, "one failure of two");
    assert_eq!(get(&u).await, Ok(503), "still takes traffic");

    // The second failure in a row flips it, exactly one interval later.
    step(secs(10) - MS).await;
    assert!(!checking(&u) && snap(&u, 0).check_ok);
    step(MS).await;
    wait_until("check 3", || streak(&u) == (0, 2)).await;
    assert_eq!(o.seen()[3], at(2), "requests: {:?}", o.seen());
    let s = snap(&u, 0);
    assert!(!s.check_ok && !s.available);
    assert_eq!(get(&u).await, Err(ErrorKind::NoHealthyEndpoints));

    // Two passes bring it back (and restart its slow-start ramp from then).
    o.set(200);
    step(secs(10)).await;
    wait_until("check 4", || streak(&u) == (1, 0)).await;
    assert!(!snap(&u, 0).check_ok, "one pass of two");
    step(secs(10) - MS).await;
    assert!(!checking(&u) && !snap(&u, 0).check_ok);
    step(MS).await;
    wait_until("check 5", || streak(&u) == (2, 0)).await;
    assert!(snap(&u, 0).available);
    assert_eq!(u.eps()[0].state.lock().unwrap().returned_at, Some(at(4)));
    assert_eq!(o.seen()[4..], [at(3), at(4)]);
    assert_eq!(get(&u).await, Ok(200));
}

#[tokio::test(start_paused = true)]
async fn health_check_without_answer_fails_at_its_timeout() {
    let _hold = ClockHold::new();
    let o = Origin::start(200).await;
    o.hang.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let (_ups, u) = checked(&o, health(secs(10), 1, 1));

    wait_until("check 1 at the origin", || o.hits() == 1).await;
    // No answer: the check waits for its 1 s timeout, not a moment less.
    step(secs(1) - MS).await;
    assert!(checking(&u) && streak(&u) == (0, 0), "gave up early");
    step(MS).await;
    wait_until("the timeout", || streak(&u) == (0, 1)).await;
    assert!(!snap(&u, 0).check_ok);

    // The next check starts one interval after this one ended.
    o.hang.store(false, Ordering::SeqCst);
    step(secs(10) - MS).await;
    assert!(!checking(&u) && o.hits() == 1);
    step(MS).await;
    wait_until("check 2", || streak(&u) == (1, 0)).await;
    assert_eq!(o.seen()[1], t0 + secs(11));
    assert!(snap(&u, 0).check_ok);
}
