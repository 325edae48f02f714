//! Time the built-in rules on a 2 KiB form POST: min / p50 / p99 of whole inspections and the
//! slowest single rules (tuning aid). `LOOPS=N` sets the number of inspections, `BODY=N` the
//! body size, `REQ=get` inspects a plain GET instead (a cache hit's request with three
//! headers), `REQ=wrk` the GET `bench/callgrind-proxy.sh` sends (Host only), `REQ=form` the
//! criterion bench's 2 KiB form POST (12 fields, 9 browser headers), `RULES=0` skips
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
    // The criterion bench's form (benches/inspect.rs): 12 fields and a message, 2 KiB, and a
    // browser's 9 headers.
    let mut form = String::new();
    for (k, v) in [
        ("first_name", "Alice"),
        ("last_name", "O'Connor"),
        ("email", "alice.oconnor@example.com"),
        ("phone", "+33 6 12 34 56 78"),
        ("street", "12 rue de la Paix"),
        ("city", "Paris"),
        ("zip", "75002"),
        ("country", "FR"),
        ("company", "Example & Sons Ltd."),
        ("subject", "Question about my order #12345"),
        ("newsletter", "on"),
        ("csrf_token", "c2VjcmV0LXRva2VuLXZhbHVlLTEyMzQ1Njc4OTA"),
    ] {
        if !form.is_empty() {
            form.push('&');
        }
        form.push_str(k);
        form.push('=');
        form.push_str(&rampart_waf::cli::percent_encode(v.as_bytes()));
    }
    form.push_str("&message=");
    while form.len() < 2048 {
        form.push_str(&rampart_waf::cli::percent_encode(
            "Hello, I ordered a blue jacket last week (size M) and would like to know when it will be shipped. \
            The tracking page says it is still being prepared. Could you also tell me whether I can change the delivery address to my office? \
            Thanks a lot for your help, and have a nice day. "
                .as_bytes(),
        ));
    }
    form.truncate(2048);
    let form_headers: Vec<(&[u8], &[u8])> = vec![
        (b"host", b"shop.example.com"),
        (
            b"user-agent",
            b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
        ),
        (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        (b"accept-language", b"en-GB,en;q=0.9,fr;q=0.8"),
        (b"accept-encoding", b"gzip, deflate, br"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", b"2048"),
        (b"cookie", b"session=abc123def456; theme=dark; _ga=GA1.2.1234567890.1234567890"),
        (b"referer", b"https://shop.example.com/contact"),
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
        } else if req_kind == "form" {
            WafRequest::build(
                "POST",
                b"/contact/submit?lang=en",
                "HTTP/1.1",
                form_headers.iter().copied(),
                Some(form.as_bytes()),
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
