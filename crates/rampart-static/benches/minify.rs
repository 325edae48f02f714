//! Minifier throughput and size reduction on ~64 KiB of typical unminified sources.
//!
//! `cargo bench -p rampart-static --bench minify`
//! (the saved fraction of each kind is printed once before the timings)
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_static::{MinifyKind, minify::minify};

fn repeat(unit: &str, size: usize) -> String {
    let mut s = String::with_capacity(size + unit.len());
    while s.len() < size {
        s.push_str(unit);
    }
    s
}

fn sources() -> Vec<(MinifyKind, Vec<u8>)> {
    let n = 64 * 1024;
    let js = repeat(
        "/**\n * Adds two numbers.\n * @param {number} first\n */\nfunction add(first, second) {\n    // the sum\n    const total = first + second;\n    if (total > 10) {\n        console.log(`big: ${total}`, 'quoted  text');\n    }\n    return total;\n}\n\n",
        n,
    );
    let css = repeat(
        "/* card component */\n.card .title {\n    color: #333333;\n    margin: 0 auto;\n    padding: 4px 8px;\n}\n\n@media (max-width: 600px) {\n    .card { width: calc(100% - 2rem); }\n}\n\n",
        n,
    );
    let body = repeat(
        "    <div class=\"card\">\n        <!-- item -->\n        <h2 class=\"title\">  Title  </h2>\n        <p>\n            Some   text   here.\n        </p>\n    </div>\n",
        n - 200,
    );
    let html = format!(
        "<!doctype html>\n<html>\n  <head>\n    <style>\n      p {{ color: red; }}\n    </style>\n  </head>\n  <body>\n{body}  </body>\n</html>\n"
    );
    let json = format!(
        "[\n{}  {{ \"id\": 0 }}\n]\n",
        repeat(
            "  {\n    \"id\": 12345,\n    \"name\": \"a name with  spaces\",\n    \"tags\": [ \"x\", \"y\" ],\n    \"active\": true\n  },\n",
            n
        )
    );
    vec![
        (MinifyKind::Html, html.into_bytes()),
        (MinifyKind::Css, css.into_bytes()),
        (MinifyKind::Js, js.into_bytes()),
        (MinifyKind::Json, json.into_bytes()),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("minify");
    for (kind, src) in sources() {
        let out = minify(kind, &src).expect("minifies");
        println!(
            "{}: {} -> {} bytes ({:.1}% saved)",
            kind.as_str(),
            src.len(),
            out.len(),
            100.0 * (src.len() - out.len()) as f64 / src.len() as f64
        );
        g.throughput(Throughput::Bytes(src.len() as u64));
        g.bench_function(kind.as_str(), |b| b.iter(|| minify(kind, &src)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
