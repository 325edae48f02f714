//! Resilience measurements (docs/performance.md, "Upstream resilience"); run through
//! `bench/resilience.sh`. Everything on 127.0.0.1, bounded to a few seconds per scenario.
//!
//! 1. `kill`: three endpoints, closed-loop GET load; one endpoint is stopped a third of the way
//!    in. Prints the client-visible errors with the default resilience settings and with
//!    retries and ejection off.
//! 2. `slow`: three endpoints, one answering 10× slower (`SLOW_MS` vs `FAST_MS`); prints the
//!    share of requests the slow one receives under `round_robin` and `ewma`.
//!
//! Environment: `DURATION_S` (default 6), `CONCURRENCY` (default 16), `FAST_MS` (default 2),
//! `SLOW_MS` (default 20).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rampart_testkit::{Fault, FaultyUpstream, TestProxy};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(eps: &[&FaultyUpstream], extra: &str) -> String {
    let list: Vec<String> = eps.iter().map(|e| format!("\"{}\"", e.url())).collect();
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[cache]\nenabled = false\n[waf]\nenabled = false\n\n[[upstreams]]\nname = \"app\"\nendpoints = [{}]\n{extra}\n\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n",
        list.join(", ")
    )
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    bad_status: AtomicU64,
    errors: AtomicU64,
}

/// `conc` keep-alive clients sending GET / for `dur`; `at_third` runs a third of the way in.
async fn load(
    addr: std::net::SocketAddr,
    conc: u64,
    dur: Duration,
    at_third: impl FnOnce(),
) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (counts, stop) = (counts.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> = None;
            while !stop.load(Ordering::Relaxed) {
                if conn.as_ref().is_none_or(|c| c.is_closed()) {
                    let Ok(s) = tokio::net::TcpStream::connect(addr).await else {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let (tx, c) =
                        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
                            .await
                            .unwrap();
                    tokio::spawn(c);
                    conn = Some(tx);
                }
                let tx = conn.as_mut().unwrap();
                if tx.ready().await.is_err() {
                    conn = None;
                    continue;
                }
                let req = http::Request::get("/x")
                    .header("host", "bench.local")
                    .body(Empty::new())
                    .unwrap();
                match tokio::time::timeout(Duration::from_secs(5), tx.send_request(req)).await {
                    Ok(Ok(resp)) => {
                        let ok = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        if ok {
                            counts.ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            counts.bad_status.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(dur / 3).await;
    at_third();
    tokio::time::sleep(dur - dur / 3).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    counts
}

#[tokio::main]
async fn main() {
    let dur = Duration::from_secs(env("DURATION_S", 6));
    let conc = env("CONCURRENCY", 16);
    let fast = Duration::from_millis(env("FAST_MS", 2));
    let slow = Duration::from_millis(env("SLOW_MS", 20));

    println!("## kill one of three endpoints a third of the way in ({conc} clients, {dur:?})\n");
    println!("| settings | requests | 2xx | non-2xx | transport errors |");
    println!("|---|---|---|---|---|");
    let variants = [
        ("defaults (retries 3, budget 20%, ejection after 5)", ""),
        (
            "retries off, ejection off, breaker off",
            "[upstreams.retry]\nmax_attempts = 1\n[upstreams.outlier]\nconsecutive_failures = 0\n[upstreams.breaker]\nenabled = false\n",
        ),
    ];
    for (name, extra) in variants {
        let ups = [
            FaultyUpstream::start("a").await,
            FaultyUpstream::start("b").await,
            FaultyUpstream::start("c").await,
        ];
        let refs: Vec<_> = ups.iter().collect();
        let px = TestProxy::start(&config(&refs, extra), "").await;
        let c = load(px.addr(), conc, dur, || ups[1].stop()).await;
        let (ok, bad, err) = (
            c.ok.load(Ordering::Relaxed),
            c.bad_status.load(Ordering::Relaxed),
            c.errors.load(Ordering::Relaxed),
        );
        println!("| {name} | {} | {ok} | {bad} | {err} |", ok + bad + err);
        px.shutdown().await;
    }

    println!(
        "\n## one endpoint 10x slower ({} ms vs {} ms), {conc} clients, {dur:?}\n",
        slow.as_millis(),
        fast.as_millis()
    );
    println!("| balance | requests | slow endpoint's share | fast endpoints |");
    println!("|---|---|---|---|");
    for balance in ["round_robin", "least_requests", "ewma"] {
        let ups = [
            FaultyUpstream::start("a").await,
            FaultyUpstream::start("b").await,
            FaultyUpstream::start("slow").await,
        ];
        ups[0].set(Fault::Slow(fast));
        ups[1].set(Fault::Slow(fast));
        ups[2].set(Fault::Slow(slow));
        let refs: Vec<_> = ups.iter().collect();
        let px = TestProxy::start(&config(&refs, &format!("balance = \"{balance}\"")), "").await;
        let c = load(px.addr(), conc, dur, || {}).await;
        let total = c.ok.load(Ordering::Relaxed);
        let (a, b, s) = (ups[0].count(), ups[1].count(), ups[2].count());
        let share = 100.0 * s as f64 / (a + b + s).max(1) as f64;
        println!("| {balance} | {total} | {share:.1} % ({s}) | {a} + {b} |");
        px.shutdown().await;
    }
}
