//! Compression ratio and CPU per MB of each coding at the default levels.
//!
//! `cargo bench -p rampart-compress --bench codecs` prints, per coding and level, the time to
//! compress a 64 KiB JSON document (criterion, with throughput in MiB/s) and, before the
//! measurements, the compressed size and ratio of each.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rampart_compress::{Coding, Levels, decode, encode};

/// A 64 KiB JSON array of small objects, like an API answer.
fn json_64k() -> Vec<u8> {
    let mut s = String::from("[");
    let mut i = 0u64;
    while s.len() < 64 * 1024 - 80 {
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user {i}\",\"email\":\"user{i}@example.com\",\"score\":{},\"active\":{}}},",
            (i * 7919) % 1000,
            i.is_multiple_of(3)
        ));
        i += 1;
    }
    s.push_str("{}]");
    s.into_bytes()
}

fn codecs(c: &mut Criterion) {
    let data = json_64k();
    let mut g = c.benchmark_group("encode_64k_json");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for (name, levels) in [("stream", Levels::STREAM), ("stored", Levels::STORED)] {
        for coding in Coding::ALL {
            let level = levels.get(coding);
            let out = encode(coding, level, &data).unwrap();
            println!(
                "ratio {coding} level {level} ({name}): {} -> {} bytes = {:.3}",
                data.len(),
                out.len(),
                out.len() as f64 / data.len() as f64
            );
            g.bench_with_input(
                BenchmarkId::new(format!("{coding}-{name}"), level),
                &data,
                |b, d| b.iter(|| encode(coding, level, d).unwrap()),
            );
        }
    }
    g.finish();
    let mut g = c.benchmark_group("decode_64k_json");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for coding in Coding::ALL {
        let enc = encode(coding, Levels::STREAM.get(coding), &data).unwrap();
        g.bench_with_input(BenchmarkId::new(coding.as_str(), ""), &enc, |b, e| {
            b.iter(|| decode(coding, e, 1 << 20).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = codecs
}
criterion_main!(benches);
