//! Memory of 100k cached 1 KiB objects vs their payload.
//!
//! Fills the cache through the layer (a miss per object, as in production) from an origin
//! answering 1024-byte bodies with five typical headers, then reports the process RSS growth
//! and the bytes the cache charges itself, against two payloads: the bodies alone (100 000 x
//! 1024 bytes) and the bodies plus the stored header fields (names + values as sent). Linux
//! only (reads /proc/self/statm).
//!
//! `cargo run -p rampart-cache --example memory`

use std::sync::Arc;

use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use rampart_cache::{Cache, CacheLayer, CacheMetrics, CachePolicy, CacheSettings, MemoryStore};
use rampart_core::{Body, BoxError, RouteId, RoutePolicy, body};
use tower::{Layer, Service, ServiceExt};

const N: usize = 100_000;
const SIZE: usize = 1024;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The origin's response headers for `path`.
fn origin_headers(path: &str) -> Result<HeaderMap, BoxError> {
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/octet-stream".parse()?);
    h.insert("cache-control", "public, max-age=3600".parse()?);
    h.insert("content-length", SIZE.into());
    h.insert("etag", format!("\"{}\"", path.len()).parse()?);
    h.insert(
        "date",
        httpdate::fmt_http_date(std::time::SystemTime::now()).parse()?,
    );
    Ok(h)
}

fn main() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    rt.block_on(async {
        let payload = bytes::Bytes::from(vec![b'x'; SIZE]);
        let origin = tower::service_fn(move |req: Request<Body>| {
            let payload = payload.clone();
            async move {
                let mut r = Response::new(body::full(payload));
                *r.headers_mut() = origin_headers(req.uri().path())?;
                Ok::<_, BoxError>(r)
            }
        });
        let settings = CacheSettings {
            max_size: 1 << 30,
            ..CacheSettings::default()
        };
        // The store `Cache::new` would build, kept at hand for its usage breakdown.
        let store = MemoryStore::new(
            settings.max_size,
            settings.max_variants,
            CacheMetrics::default(),
        );
        let cache = Cache::with_store(settings, CacheMetrics::default(), Arc::new(store.clone()));
        let mut svc = CacheLayer::new(cache.clone()).layer(origin);
        let mut route = RoutePolicy::new(RouteId(0), "mem", None);
        route.extensions.insert(CachePolicy::default());
        let route = Arc::new(route);

        let before = rss_bytes();
        let mut header_bytes = 0usize;
        for i in 0..N {
            let path = format!("/obj/{i:06}");
            header_bytes += origin_headers(&path)?
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len())
                .sum::<usize>();
            let mut req = Request::get(format!("http://bench.example{path}")).body(body::empty())?;
            req.extensions_mut().insert(route.clone());
            let resp = svc.ready().await?.call(req).await?;
            resp.into_body().collect().await?;
        }
        let after = rss_bytes();
        let stats = cache.stats();
        let bodies = (N * SIZE) as f64;
        let with_headers = bodies + header_bytes as f64;
        let mib = |b: f64| b / 1048576.0;
        let growth = after.saturating_sub(before) as f64;
        println!("objects stored:          {}", stats.entries);
        println!("payload, bodies:         {:.1} MiB", mib(bodies));
        println!("payload, headers + body: {:.1} MiB", mib(with_headers));
        for (what, b) in [
            ("cache-charged bytes:    ", stats.bytes as f64),
            ("process RSS growth:     ", growth),
        ] {
            println!(
                "{what} {:.1} MiB ({:.3}x bodies, {:.3}x headers + body)",
                mib(b),
                b / bodies,
                b / with_headers
            );
        }
        let u = store.usage();
        let per = |b: u64| b as f64 / u.objects.max(1) as f64;
        println!(
            "per object:              {:.0} B encoded object, {:.1} B segments beyond it, \
             {:.1} B index, {:.1} B purge indexes, {:.1} B other",
            per(u.object_bytes),
            per(u.segment_bytes.saturating_sub(u.object_bytes)),
            per(u.index_bytes),
            per(u.purge_index_bytes),
            per(u.other_bytes),
        );
        let (shards, seg) = store.layout();
        println!(
            "layout:                  {shards} shards, {} KiB segments",
            seg >> 10
        );
        Ok(())
    })
}
