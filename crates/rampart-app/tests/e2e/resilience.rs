//! Upstream resilience: retries and their budget, failover, passive ejection, circuit
//! breakers, active health checks, balancing (hash affinity, EWMA), concurrency limit,
//! read/write split, backup pools, pool warm-up, stale content when every endpoint is down.
//!
//! Timers run on real time here (real sockets); they are kept short (100s of ms) and every
//! wait is a bounded poll. The timer logic itself (breaker cool-down, ejection backoff, budget
//! window, EWMA decay) is table-tested with explicit instants in rampart-upstream.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use rampart_testkit::{
    Fault, FaultyUpstream, TestProxy, TestUpstream,
    client::{get, request, send},
    response,
};

use crate::{admin_get, wait_until};

/// A config with one upstream `app` over `eps` (extra upstream keys in `up_extra`) and one
/// route `all`; `more` is appended (extra upstreams, route keys come first in it).
fn config(eps: &[&FaultyUpstream], up_extra: &str, route_extra: &str, more: &str) -> String {
    let list: Vec<String> = eps.iter().map(|e| format!("\"{}\"", e.url())).collect();
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[upstreams]]\nname = \"app\"\nendpoints = [{}]\n{up_extra}\n\n{more}\n\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n{route_extra}\n",
        list.join(", ")
    )
}

async fn start(toml: &str) -> TestProxy {
    TestProxy::start(toml, "").await
}

async fn upstreams(names: &[&str]) -> Vec<FaultyUpstream> {
    let mut v = Vec::new();
    for n in names {
        v.push(FaultyUpstream::start(n).await);
    }
    v
}

/// One metric sample's value from `/metrics` (0 when absent).
async fn metric(px: &TestProxy, name_and_labels: &str) -> f64 {
    let (_, text) = admin_get(px, "/metrics").await;
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `/stats` upstream endpoint entries of `app`, by endpoint.
async fn endpoint_stats(px: &TestProxy, upstream: &str) -> HashMap<String, serde_json::Value> {
    let (_, text) = admin_get(px, "/stats").await;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["upstreams"][upstream]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["endpoint"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn label(up: &FaultyUpstream) -> String {
    up.addr.to_string()
}

/// Poll the admin API until `f` holds (bounded like `wait_until`).
async fn wait_stats(
    px: &TestProxy,
    upstream: &str,
    f: impl Fn(&HashMap<String, serde_json::Value>) -> bool,
) {
    for _ in 0..500 {
        if f(&endpoint_stats(px, upstream).await) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("stats condition not reached within 5 s");
}

const NO_EJECT: &str =
    "[upstreams.outlier]\nconsecutive_failures = 0\n[upstreams.breaker]\nenabled = false\n";

#[tokio::test]
async fn endpoint_killed_mid_run_gives_no_client_errors() {
    let ups = upstreams(&["a", "b", "c"]).await;
    let refs: Vec<_> = ups.iter().collect();
    let px = start(&config(&refs, "", "", "")).await;
    for _ in 0..9 {
        assert_eq!(get(px.addr(), "/x").await.status(), 200);
    }
    ups[1].stop();
    for i in 0..30 {
        let r = get(px.addr(), "/x").await;
        assert_eq!(r.status(), 200, "request {i} after the kill");
        assert_ne!(r.body(), "b");
    }
    // b failed (connect errors), then was ejected; the failures were retried elsewhere.
    assert!(
        metric(
            &px,
            "rampart_upstream_retries_total{upstream=\"app\",reason=\"connect_error\"}"
        )
        .await
            >= 1.0
    );
    ups[1].restart().await;
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn post_is_never_retried_get_is_on_another_endpoint() {
    let ups = upstreams(&["a", "b"]).await;
    for u in &ups {
        u.set(Fault::Status(503));
    }
    let refs: Vec<_> = ups.iter().collect();
    let px = start(&config(&refs, NO_EJECT, "", "")).await;
    let r = send(px.addr(), request("POST", "/p", &[], "payload")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(ups[0].count() + ups[1].count(), 1, "POST sent once");
    let r = get(px.addr(), "/g").await;
    assert_eq!(r.status(), 503, "the last answer is passed on");
    assert_eq!(ups[0].count() + ups[1].count(), 4, "GET tried 3 times");
    assert!(
        ups[0].count() >= 2 && ups[1].count() >= 2,
        "tries alternate endpoints"
    );
    // A reset (connection closed without an answer) is retried for GET too.
    ups[0].set(Fault::Reset);
    ups[1].set(Fault::Ok);
    for _ in 0..4 {
        assert_eq!(get(px.addr(), "/r").await.status(), 200);
    }
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn idempotency_key_makes_post_retryable_when_allowed() {
    let ups = upstreams(&["a", "b"]).await;
    ups[0].set(Fault::Status(502));
    let refs: Vec<_> = ups.iter().collect();
    let extra = format!("{NO_EJECT}[upstreams.retry]\nidempotency_key = true\n");
    let px = start(&config(&refs, &extra, "", "")).await;
    for _ in 0..4 {
        let r = send(
            px.addr(),
            request("POST", "/p", &[("idempotency-key", "k-1")], "body"),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), "b");
    }
    // Without the key a POST to a is not retried.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            send(px.addr(), request("POST", "/p", &[], "body"))
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(statuses.contains(&502), "{statuses:?}");
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn retry_budget_caps_retries() {
    let ups = upstreams(&["a", "b"]).await;
    for u in &ups {
        u.set(Fault::Status(503));
    }
    let refs: Vec<_> = ups.iter().collect();
    // No ratio, a floor of 1 retry/s over the 10 s window: 10 retries at most.
    let extra = format!(
        "{NO_EJECT}[upstreams.retry]\nmax_attempts = 2\nbudget_ratio = 0.0\nbudget_min_per_second = 1\nbackoff_base = \"1ms\"\nbackoff_max = \"1ms\"\n"
    );
    let px = start(&config(&refs, &extra, "", "")).await;
    for _ in 0..30 {
        assert_eq!(get(px.addr(), "/x").await.status(), 503);
    }
    let sent = ups[0].count() + ups[1].count();
    assert_eq!(sent, 40, "30 requests + 10 budgeted retries");
    assert_eq!(
        metric(
            &px,
            "rampart_upstream_retries_total{upstream=\"app\",reason=\"status\"}"
        )
        .await,
        10.0
    );
    assert_eq!(
        metric(
            &px,
            "rampart_upstream_retries_total{upstream=\"app\",reason=\"budget_exhausted\"}"
        )
        .await,
        20.0
    );
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn breaker_opens_and_recovers_through_half_open() {
    let ups = upstreams(&["a"]).await;
    let a = &ups[0];
    a.set(Fault::Status(500));
    let extra = "[upstreams.outlier]\nconsecutive_failures = 0\n[upstreams.breaker]\nmin_requests = 4\nfailure_rate = 0.5\ncool_down = \"300ms\"\nhalf_open_probes = 2\n";
    let px = start(&config(&[a], extra, "", "")).await;
    for _ in 0..4 {
        assert_eq!(get(px.addr(), "/x").await.status(), 500);
    }
    // Open: refused at once, the endpoint sees nothing.
    let r = get(px.addr(), "/x").await;
    assert_eq!(r.status(), 503);
    assert_eq!(a.count(), 4);
    assert_eq!(admin_get(&px, "/readyz").await.0, 503);
    let open = format!(
        "rampart_upstream_breaker_state{{upstream=\"app\",endpoint=\"{}\",state=\"open\"}}",
        label(a)
    );
    assert_eq!(metric(&px, &open).await, 1.0);
    // Half-open after the cool-down; a failing probe opens it again.
    wait_stats(&px, "app", |s| s[&label(a)]["breaker"] == "half_open").await;
    assert_eq!(get(px.addr(), "/x").await.status(), 500);
    assert_eq!(get(px.addr(), "/x").await.status(), 503);
    assert_eq!(a.count(), 5);
    // Recovered backend: two good probes close it.
    a.set(Fault::Ok);
    wait_stats(&px, "app", |s| s[&label(a)]["breaker"] == "half_open").await;
    assert_eq!(get(px.addr(), "/x").await.status(), 200);
    assert_eq!(get(px.addr(), "/x").await.status(), 200);
    let s = endpoint_stats(&px, "app").await;
    assert_eq!(s[&label(a)]["breaker"], "closed");
    assert_eq!(admin_get(&px, "/readyz").await.0, 200);
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn outlier_is_ejected_then_returns() {
    let ups = upstreams(&["a", "b"]).await;
    ups[0].set(Fault::Status(500));
    let refs: Vec<_> = ups.iter().collect();
    let extra = "[upstreams.outlier]\nconsecutive_failures = 3\nbase_ejection_time = \"300ms\"\n[upstreams.breaker]\nenabled = false\n";
    let px = start(&config(&refs, extra, "", "")).await;
    let mut fails = 0;
    for _ in 0..6 {
        if get(px.addr(), "/x").await.status() == 500 {
            fails += 1;
        }
    }
    assert_eq!(
        fails, 3,
        "round robin: a failed 3 times in a row, then was ejected"
    );
    let a_seen = ups[0].count();
    for _ in 0..6 {
        let r = get(px.addr(), "/x").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), "b");
    }
    assert_eq!(ups[0].count(), a_seen, "no traffic while ejected");
    let ej = format!(
        "rampart_upstream_ejections_total{{upstream=\"app\",endpoint=\"{}\"}}",
        label(&ups[0])
    );
    assert_eq!(metric(&px, &ej).await, 1.0);
    let (code, body) = admin_get(&px, "/readyz").await;
    assert_eq!(code, 200, "one of two still up");
    assert!(
        body.contains("degraded") && body.contains("ejected"),
        "{body}"
    );
    // It comes back after the ejection time.
    ups[0].set(Fault::Ok);
    wait_stats(&px, "app", |s| s[&label(&ups[0])]["available"] == true).await;
    let mut bodies = Vec::new();
    for _ in 0..4 {
        bodies.push(get(px.addr(), "/x").await.into_body());
    }
    assert!(bodies.iter().any(|b| b == "a"), "a serves again");
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn health_checks_flip_endpoint_state() {
    let ups = upstreams(&["a", "b"]).await;
    let refs: Vec<_> = ups.iter().collect();
    let extra = "[upstreams.health_check]\npath = \"/healthz\"\ninterval = \"50ms\"\njitter = \"10ms\"\ntimeout = \"500ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n";
    let px = start(&config(&refs, extra, "", "")).await;
    wait_until(|| ups[0].paths().iter().filter(|p| *p == "/healthz").count() >= 2).await;
    ups[0].set(Fault::Status(503));
    wait_stats(&px, "app", |s| {
        s[&label(&ups[0])]["health_check_ok"] == false
    })
    .await;
    let healthy = format!(
        "rampart_upstream_endpoint_healthy{{upstream=\"app\",endpoint=\"{}\"}}",
        label(&ups[0])
    );
    assert_eq!(metric(&px, &healthy).await, 0.0);
    let (_, body) = admin_get(&px, "/readyz").await;
    assert!(body.contains("failing health checks"), "{body}");
    let served = |u: &FaultyUpstream| u.paths().iter().filter(|p| *p == "/x").count();
    let before = served(&ups[0]);
    for _ in 0..6 {
        let r = get(px.addr(), "/x").await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        served(&ups[0]),
        before,
        "no traffic to an unhealthy endpoint"
    );
    ups[0].set(Fault::Ok);
    wait_stats(&px, "app", |s| {
        s[&label(&ups[0])]["health_check_ok"] == true
    })
    .await;
    assert_eq!(metric(&px, &healthy).await, 1.0);
    for _ in 0..4 {
        get(px.addr(), "/x").await;
    }
    assert!(served(&ups[0]) > before, "healthy again, traffic returns");
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn hash_affinity_survives_an_endpoint_removal() {
    let ups = upstreams(&["a", "b", "c", "d"]).await;
    let refs: Vec<_> = ups.iter().collect();
    let extra = "balance = \"hash\"\nhash_on = \"header:x-user\"\n[upstreams.outlier]\nconsecutive_failures = 1\nbase_ejection_time = \"1m\"\nmax_ejection_percent = 25\n";
    let px = start(&config(&refs, extra, "", "")).await;
    let users: Vec<String> = (0..80).map(|i| format!("user-{i}")).collect();
    let mut before = HashMap::new();
    for u in &users {
        let r = send(px.addr(), request("GET", "/x", &[("x-user", u)], "")).await;
        assert_eq!(r.status(), 200);
        before.insert(u.clone(), r.into_body());
    }
    // Same key, same endpoint.
    for u in users.iter().take(10) {
        let r = send(px.addr(), request("GET", "/x", &[("x-user", u)], "")).await;
        assert_eq!(r.body(), &before[u]);
    }
    let on_d = before.values().filter(|b| *b == "d").count();
    assert!(on_d > 5, "d owns a share of the keys ({on_d})");
    ups[3].stop();
    let mut moved = 0;
    for u in &users {
        let r = send(px.addr(), request("GET", "/x", &[("x-user", u)], "")).await;
        assert_eq!(
            r.status(),
            200,
            "retried to the next endpoint in hash order"
        );
        if r.body() != &before[u] {
            moved += 1;
            assert_eq!(before[u], "d", "only d's keys move");
        }
    }
    assert_eq!(moved, on_d);
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn ewma_steers_traffic_away_from_a_slow_endpoint() {
    let ups = upstreams(&["a", "b", "slow"]).await;
    ups[2].set(Fault::Slow(std::time::Duration::from_millis(100)));
    let refs: Vec<_> = ups.iter().collect();
    let px = start(&config(&refs, "balance = \"ewma\"", "", "")).await;
    for _ in 0..60 {
        assert_eq!(get(px.addr(), "/x").await.status(), 200);
    }
    let slow = ups[2].count();
    assert!(
        slow <= 6,
        "the slow endpoint got {slow} of 60 (round robin would give 20)"
    );
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn every_endpoint_down_serves_stale_from_the_cache() {
    let down = Arc::new(AtomicBool::new(false));
    let d = down.clone();
    let up = TestUpstream::start(move |_| {
        let d = d.clone();
        async move {
            if d.load(Ordering::SeqCst) {
                response(500, "broken", &[])
            } else {
                response(
                    200,
                    "fresh",
                    &[
                        ("cache-control", "max-age=0, stale-if-error=600"),
                        ("etag", "\"v1\""),
                    ],
                )
            }
        }
    })
    .await;
    let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\n[cache]\nenabled = true\n[[upstreams]]\nname = \"app\"\nendpoints = [\"{upstream}\"]\n[upstreams.outlier]\nconsecutive_failures = 1\n[upstreams.retry]\nmax_attempts = 1\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n[routes.cache]\nenabled = true\n";
    let px = TestProxy::start(toml, &up.url()).await;
    let first = get(px.addr(), "/page").await;
    assert!(
        first.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("stored")
    );
    assert_eq!(first.into_body(), "fresh");
    // The only endpoint fails once on another path and is ejected.
    down.store(true, Ordering::SeqCst);
    assert_eq!(get(px.addr(), "/other").await.status(), 500);
    let seen = up.count();
    // Dispatch answers 503 at once; the cache turns it into the stale copy.
    let r = get(px.addr(), "/page").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), "fresh");
    assert_eq!(up.count(), seen, "no request reached the ejected endpoint");
    assert_eq!(get(px.addr(), "/other").await.status(), 503);
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn concurrency_limit_answers_503_at_once() {
    let ups = upstreams(&["a"]).await;
    ups[0].set(Fault::Hang);
    let extra = "max_concurrent_requests = 1\nresponse_timeout = \"10s\"\n";
    let px = start(&config(&[&ups[0]], extra, "", "")).await;
    let addr = px.addr();
    let hung = tokio::spawn(async move { get(addr, "/slow").await });
    wait_until(|| ups[0].count() == 1).await;
    let r = get(px.addr(), "/x").await;
    assert_eq!(r.status(), 503);
    assert_eq!(ups[0].count(), 1);
    assert_eq!(
        metric(&px, "rampart_upstream_overloaded_total{upstream=\"app\"}").await,
        1.0
    );
    hung.abort();
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn whole_request_timeout_is_504() {
    let ups = upstreams(&["a", "b"]).await;
    for u in &ups {
        u.set(Fault::Hang);
    }
    let refs: Vec<_> = ups.iter().collect();
    let extra = format!("request_timeout = \"300ms\"\nresponse_timeout = \"200ms\"\n{NO_EJECT}");
    let px = start(&config(&refs, &extra, "", "")).await;
    let r = get(px.addr(), "/x").await;
    assert_eq!(r.status(), 504);
    // The first try timed out per try and a second one started before the deadline.
    assert_eq!(ups[0].count() + ups[1].count(), 2);
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn backup_pool_takes_over_when_the_primary_is_down() {
    let ups = upstreams(&["primary", "backup"]).await;
    ups[0].stop();
    let more = format!(
        "[[upstreams]]\nname = \"spare\"\nendpoints = [\"{}\"]\n",
        ups[1].url()
    );
    let extra = "backup = \"spare\"\n[upstreams.outlier]\nconsecutive_failures = 1\nbase_ejection_time = \"300ms\"\n[upstreams.retry]\nmax_attempts = 1\n";
    let px = start(&config(&[&ups[0]], extra, "", &more)).await;
    assert_eq!(
        get(px.addr(), "/x").await.status(),
        502,
        "primary unreachable, ejected"
    );
    for _ in 0..3 {
        let r = get(px.addr(), "/x").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), "backup");
    }
    // The primary comes back: traffic returns to it once its ejection ends.
    ups[0].restart().await;
    wait_stats(&px, "app", |s| s[&label(&ups[0])]["available"] == true).await;
    assert_eq!(get(px.addr(), "/x").await.into_body(), "primary");
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn read_write_split_with_fallback_to_primary() {
    let ups = upstreams(&["primary", "replica"]).await;
    let more = format!(
        "[[upstreams]]\nname = \"replicas\"\nendpoints = [\"{}\"]\n[upstreams.outlier]\nconsecutive_failures = 1\nbase_ejection_time = \"1m\"\n[upstreams.retry]\nmax_attempts = 1\n",
        ups[1].url()
    );
    let px = start(&config(
        &[&ups[0]],
        "",
        "read_upstream = \"replicas\"",
        &more,
    ))
    .await;
    assert_eq!(get(px.addr(), "/r").await.into_body(), "replica");
    let r = send(px.addr(), request("HEAD", "/r", &[], "")).await;
    assert_eq!(r.headers()["x-upstream"], "replica");
    assert_eq!(
        send(px.addr(), request("POST", "/w", &[], "x"))
            .await
            .into_body(),
        "primary"
    );
    assert_eq!(
        send(px.addr(), request("DELETE", "/w", &[], ""))
            .await
            .into_body(),
        "primary"
    );
    // No healthy replica: reads go to the primary.
    ups[1].stop();
    assert_eq!(
        get(px.addr(), "/r").await.status(),
        502,
        "replica fails and is ejected"
    );
    assert_eq!(get(px.addr(), "/r").await.into_body(), "primary");
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn pool_keeps_min_idle_connections_warm() {
    let ups = upstreams(&["a"]).await;
    let extra = "min_idle_per_endpoint = 3\nidle_timeout = \"2s\"\n";
    let px = start(&config(&[&ups[0]], extra, "", "")).await;
    for _ in 0..500 {
        if metric(
            &px,
            "rampart_upstream_pool_connections{upstream=\"app\",state=\"idle\"}",
        )
        .await
            >= 3.0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        metric(
            &px,
            "rampart_upstream_pool_connections{upstream=\"app\",state=\"idle\"}"
        )
        .await,
        3.0,
        "three connections opened before any request"
    );
    assert_eq!(ups[0].count(), 0);
    assert_eq!(get(px.addr(), "/x").await.status(), 200);
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn endpoint_state_survives_a_reload() {
    let ups = upstreams(&["a", "b"]).await;
    ups[0].set(Fault::Status(500));
    let refs: Vec<_> = ups.iter().collect();
    let dir = std::env::temp_dir().join(format!("rampart-e2e-resil-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rampart.toml");
    let write = |extra: &str| {
        let up = format!(
            "[upstreams.outlier]\nconsecutive_failures = 1\nbase_ejection_time = \"1m\"\n{extra}"
        );
        let text = TestProxy::config_text(&config(&refs, &up, "", ""), "");
        std::fs::write(&path, text).unwrap();
    };
    write("");
    let app = crate::start_from_file(&path).await;
    let addr = app.listen_addrs()[0];
    let mut saw_500 = false;
    for _ in 0..2 {
        saw_500 |= get(addr, "/x").await.status() == 500;
    }
    assert!(saw_500, "a failed once and was ejected");
    // A reload that keeps the endpoints (and changes another key) keeps the ejection.
    write("[upstreams.retry]\nmax_attempts = 2\n");
    let token = app.admin_token().unwrap().to_string();
    let r = send(
        app.admin_addr().unwrap(),
        request(
            "POST",
            "/reload",
            &[("authorization", &format!("Bearer {token}"))],
            "",
        ),
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    let seen = ups[0].count();
    for _ in 0..6 {
        let r = get(addr, "/x").await;
        assert_eq!(r.body(), "b");
    }
    assert_eq!(ups[0].count(), seen, "still ejected after the reload");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(app.shutdown().await);
}
