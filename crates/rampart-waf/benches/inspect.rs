//! Criterion benchmark: inspection of a typical 2 KiB form POST at PL1 with the built-in rules
//! (request model extraction + rules), and a GET with a query string.
//!
//! Criterion reports means; issue 6's target is a p99, so `waf_form_post_2k_pl1` also times
//! each of its iterations alone and prints their percentiles (`p99: ...`) when criterion is
//! done with it (a percentile of single inspections, timer overhead included).

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use rampart_waf::{Engine, Limits, WafPolicy, WafRequest};

fn form_body() -> Vec<u8> {
    let fields = [
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
    ];
    let mut body = String::new();
    for (k, v) in fields {
        if !body.is_empty() {
            body.push('&');
        }
        body.push_str(k);
        body.push('=');
        body.push_str(&rampart_waf::cli::percent_encode(v.as_bytes()));
    }
    let message = "Hello, I ordered a blue jacket last week (size M) and would like to know when it will be shipped. \
        The tracking page says it is still being prepared. Could you also tell me whether I can change the delivery address to my office? \
        Thanks a lot for your help, and have a nice day. ";
    body.push_str("&message=");
    while body.len() < 2048 {
        body.push_str(&rampart_waf::cli::percent_encode(message.as_bytes()));
    }
    body.truncate(2048);
    body.into_bytes()
}

fn bench(c: &mut Criterion) {
    let policy = WafPolicy::new(Arc::new(Engine::builtin().expect("builtin rules")));
    let body = form_body();
    let headers: Vec<(&[u8], &[u8])> = vec![
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
    let limits = Limits::default();
    let post = || {
        let req = WafRequest::build(
            "POST",
            b"/contact/submit?lang=en",
            "HTTP/1.1",
            headers.iter().copied(),
            Some(black_box(&body)),
            &limits,
        );
        black_box(policy.engine.inspect(&req, &policy, None))
    };
    let mut each: Vec<Duration> = Vec::new();
    c.bench_function("waf_form_post_2k_pl1", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let t = Instant::now();
                post();
                each.push(t.elapsed());
            }
            start.elapsed()
        })
    });
    if !each.is_empty() {
        each.sort();
        let at = |q: f64| each[((each.len() - 1) as f64 * q) as usize];
        println!(
            "waf_form_post_2k_pl1 single inspections: n {} min {:?} p50 {:?} p90 {:?} p99 {:?} p99.9 {:?}",
            each.len(),
            each[0],
            at(0.5),
            at(0.9),
            at(0.99),
            at(0.999)
        );
    }
    c.bench_function("waf_get_query_pl1", |b| {
        b.iter(|| {
            let req = WafRequest::build(
                "GET",
                black_box(b"/search?q=blue+jacket&page=2&sort=price"),
                "HTTP/1.1",
                headers[..5].iter().copied(),
                None,
                &limits,
            );
            black_box(policy.engine.inspect(&req, &policy, None))
        })
    });
}

mod group {
    #![allow(missing_docs)]
    use super::*;
    criterion_group!(benches, bench);
}

criterion_main!(group::benches);
