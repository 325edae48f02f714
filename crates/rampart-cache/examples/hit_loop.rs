//! Instructions per cache hit, for callgrind: one miss fills the cache, then `N` hits of the
//! same 1 KiB object go through the layer (lookup, variant selection, freshness, response
//! rebuilt from the stored buffer, `Age`, `Cache-Status`, body collected). Run it twice under
//! valgrind with different `N` and divide the difference by the difference in hits:
//!
//! ```text
//! cargo build --profile bench -p rampart-cache --example hit_loop
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.1 target/release/examples/hit_loop 1
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.N target/release/examples/hit_loop 10001
//! ```
//!
//! `HIT_LOOP_KEYS=K` spreads the hits over `K` stored objects (default 1).

#[path = "support/origin.rs"]
mod origin;

use http::Request;
use http_body_util::BodyExt;
use rampart_cache::{Cache, CacheLayer, CacheMetrics, CacheSettings};
use rampart_core::{Body, BoxError, body};
use tower::{Layer, Service, ServiceExt};

fn main() -> Result<(), BoxError> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let keys: usize = std::env::var("HIT_LOOP_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    let origin = tower::service_fn(move |_req: Request<Body>| {
        let r = origin::hot_object(&payload);
        async move { Ok::<_, BoxError>(r) }
    });
    let cache = Cache::new(CacheSettings::default(), CacheMetrics::default());
    let svc = CacheLayer::new(cache.clone()).layer(origin);
    let route = origin::route();
    let paths: Vec<String> = (0..keys).map(|i| format!("/hot/{i}.txt")).collect();
    let make = |path: &str| -> Result<Request<Body>, BoxError> {
        let mut req = Request::get(path)
            .header("host", "bench.example")
            .header("accept-encoding", "gzip, br")
            .body(body::empty())?;
        req.extensions_mut().insert(route.clone());
        Ok(req)
    };
    rt.block_on(async {
        for p in &paths {
            let r = svc.clone().oneshot(make(p)?).await?;
            r.into_body().collect().await?;
        }
        let mut total = 0usize;
        for i in 0..n {
            let mut s = svc.clone();
            let r = s.ready().await?.call(make(&paths[i % keys])?).await?;
            total += r.into_body().collect().await?.to_bytes().len();
        }
        if total != n * 1024 || cache.stats().hits != n as u64 {
            return Err::<(), BoxError>("not every request was a hit".into());
        }
        Ok(())
    })
}
