//! Rate-limit decision cost: `cargo bench -p rampart-guard --bench gcra`.
//!
//! * `gcra_pure`: the arithmetic alone.
//! * `memory_store/hot_key`: one bucket hit repeatedly (lookup + update in a shard).
//! * `memory_store/ip_keys_100k`: 100 000 distinct client IPs round-robin (realistic spread,
//!   cache misses included).
//! * `memory_store/text_key`: a header/API-key style string key.

#![allow(missing_docs)]

use std::{hint::black_box, net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use rampart_guard::{
    Gcra, MemoryStore,
    ratelimit::{BucketKey, KeyValue},
};
use tokio::time::Instant;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();

    let g = Gcra::new(nz(1_000_000), Duration::from_secs(1), nz(1000));
    c.bench_function("gcra_pure", |b| {
        let mut tat = None;
        let mut now = 0u64;
        b.iter(|| {
            now += 1_000;
            let (d, t) = g.decide(black_box(tat), black_box(now), 1);
            if t.is_some() {
                tat = t;
            }
            black_box(d)
        })
    });

    let store = MemoryStore::new(1_000_000);
    let limit: Arc<str> = "api/per_ip".into();
    let hot = BucketKey::new(
        limit.clone(),
        KeyValue::Ip("203.0.113.7".parse().expect("ip")),
    );
    let now = Instant::now();
    c.bench_function("memory_store/hot_key", |b| {
        b.iter(|| black_box(store.check_at(&hot, &g, 1, now)))
    });

    let keys: Vec<BucketKey> = (0..100_000u32)
        .map(|i| {
            BucketKey::new(
                limit.clone(),
                KeyValue::Ip(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes())),
            )
        })
        .collect();
    c.bench_function("memory_store/ip_keys_100k", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(store.check_at(&keys[i], &g, 1, now))
        })
    });

    let text = BucketKey::new(limit, KeyValue::Text("key-2026-rotation-a".into()));
    c.bench_function("memory_store/text_key", |b| {
        b.iter(|| black_box(store.check_at(&text, &g, 1, now)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
