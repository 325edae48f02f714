//! Time the built-in rules on a 2 KiB form POST: min / p50 / p99 of whole inspections and the
//! slowest single rules (tuning aid). `LOOPS=N` sets the number of inspections, `BODY=N` the
//! body size, `REQ=get` inspects a plain GET instead (a cache hit's request with three
//! headers), `REQ=wrk` the GET `bench/callgrind-proxy.sh` sends (Host only), `RULES=0` skips
//! the per-rule timings (for `valgrind --tool=callgrind`), `BUILD=1` builds the request view
//! (`WafRequest::build`, as the layer does per request) in each loop too.

use std::sync::Arc;

use rampart_waf::{Engine, Limits, WafPolicy, WafRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = WafPolicy::new(Arc::new(Engine::builtin()?));
    if std::env::var("PREFILTER").is_ok() {
        print!("{}", policy.engine.prefilter_report());
        return Ok(());
    }
    let mut body =
        String::from("first_name=Alice&last_name=O%27Connor&email=alice%40example.com&message=");
    let target: usize = std::env::var("BODY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    while body.len() < target {
        body.push_str(
            "Hello%2C+I+ordered+a+blue+jacket+last+week+%28size+M%29+and+would+like+to+know.+",
        );
    }
    let headers: Vec<(&[u8], &[u8])> = vec![
        (b"host", b"shop.example.com"),
        (
            b"user-agent",
            b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0",
        ),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"cookie", b"session=abc; theme=dark"),
    ];
    let get_headers: Vec<(&[u8], &[u8])> = vec![
        (b"host", b"127.0.0.1:8080"),
        (b"user-agent", b"rampart-bench/0.1"),
        (b"accept", b"*/*"),
    ];
    // What wrk sends through bench/callgrind-proxy.sh: the Host header only.
    let wrk_headers: Vec<(&[u8], &[u8])> = vec![(b"host", b"127.0.0.1:18300")];
    // Read once: with `BUILD=1` the loop should time the request view, not `getenv`.
    let req_kind = std::env::var("REQ").unwrap_or_default();
    let make = || {
        if req_kind == "get" {
            WafRequest::build(
                "GET",
                b"/1k.json",
                "HTTP/1.1",
                get_headers.iter().copied(),
                None,
                &Limits::default(),
            )
        } else if req_kind == "wrk" {
            WafRequest::build(
                "GET",
                b"/static/1k.json",
                "HTTP/1.1",
                wrk_headers.iter().copied(),
                None,
                &Limits::default(),
            )
        } else {
            WafRequest::build(
                "POST",
                b"/contact?lang=en",
                "HTTP/1.1",
                headers.iter().copied(),
                Some(body.as_bytes()),
                &Limits::default(),
            )
        }
    };
    let req = make();
    let build = std::env::var("BUILD").is_ok_and(|b| b == "1");
    for _ in 0..3 {
        let _ = policy.engine.inspect(&req, &policy, None);
    }
    let n: u32 = std::env::var("LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let t = std::time::Instant::now();
    let mut times = Vec::new();
    for _ in 1..n {
        let t1 = std::time::Instant::now();
        if build {
            let req = make();
            let _ = policy.engine.inspect(&req, &policy, None);
        } else {
            let _ = policy.engine.inspect(&req, &policy, None);
        }
        times.push(t1.elapsed());
    }
    times.sort();
    if !times.is_empty() {
        println!(
            "min {:?} p50 {:?} p99 {:?}",
            times[0],
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
    }
    let v = policy.engine.inspect(&req, &policy, None);
    println!("mean {:?} per request {:?}", t.elapsed() / n, v.matches);
    if std::env::var("RULES").is_ok_and(|r| r == "0") {
        return Ok(());
    }
    let all = policy.engine.rule_timings(&req, &policy);
    println!(
        "sum {:?}",
        all.iter().map(|x| x.1).sum::<std::time::Duration>()
    );
    for (id, d) in all.iter().take(15) {
        println!("{id}\t{d:?}");
    }
    Ok(())
}
