//! Hit-path benchmark: a request served from the cache through the layer (lookup, variant
//! selection, freshness, response built from `Bytes` clones, `Age` and `Cache-Status`),
//! body collected.
//!
//! `cargo bench -p rampart-cache --bench hit`
#![allow(missing_docs)]

#[path = "../examples/support/origin.rs"]
mod origin;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use rampart_cache::{Cache, CacheLayer, CacheMetrics, CacheSettings};
use rampart_core::{Body, BoxError, body};
use tower::{Layer, Service, ServiceExt};

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    let origin = tower::service_fn(move |_req: Request<Body>| {
        let r = origin::hot_object(&payload);
        async move { Ok::<_, BoxError>(r) }
    });
    let cache = Cache::new(CacheSettings::default(), CacheMetrics::default());
    let svc = CacheLayer::new(cache).layer(origin.clone());
    let route = origin::route();
    let make = || {
        let mut req = Request::get("/hot/object.txt")
            .header("host", "bench.example")
            .header("accept-encoding", "gzip, br")
            .body(body::empty())
            .expect("request");
        req.extensions_mut().insert(route.clone());
        req
    };
    rt.block_on(async {
        let r = svc.clone().oneshot(make()).await.expect("miss");
        r.into_body().collect().await.expect("body");
    });
    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hit_1KiB", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut s = svc.clone();
                let r = s
                    .ready()
                    .await
                    .expect("ready")
                    .call(make())
                    .await
                    .expect("hit");
                let body = r.into_body().collect().await.expect("body").to_bytes();
                assert_eq!(body.len(), 1024);
            })
        })
    });
    // Baseline: the same request straight to the origin (no cache), to separate harness
    // cost (runtime entry, request build, body collect) from the cache's own.
    group.bench_function("origin_direct_1KiB", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut s = origin.clone();
                let r = s
                    .ready()
                    .await
                    .expect("ready")
                    .call(make())
                    .await
                    .expect("origin");
                let body = r.into_body().collect().await.expect("body").to_bytes();
                assert_eq!(body.len(), 1024);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, hit);
criterion_main!(benches);
