//! API-key check cost: `cargo bench -p rampart-guard --bench apikey`.
//!
//! * `api_key/verify_1`, `api_key/verify_10`: SHA-256 of the presented key and a
//!   constant-time compare with every configured hash (1 and 10 keys). This is the part that
//!   valgrind overstates: it hides SHA-NI, so under callgrind `sha2` runs its software path.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rampart_guard::auth::apikey::ApiKeySet;

fn bench(c: &mut Criterion) {
    let one = ApiKeySet::new().with_plain("bench", b"bench-key-0123456789abcdef");
    let ten = (0..10).fold(ApiKeySet::new(), |s, i| {
        s.with_plain(&format!("k{i}"), format!("bench-key-{i:016}").as_bytes())
    });
    let presented: &[u8] = b"bench-key-0123456789abcdef";
    c.bench_function("api_key/verify_1", |b| {
        b.iter(|| black_box(one.verify(black_box(presented)).is_some()))
    });
    c.bench_function("api_key/verify_10", |b| {
        b.iter(|| black_box(ten.verify(black_box(presented)).is_some()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
