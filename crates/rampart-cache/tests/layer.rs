//! Layer-level tests: the cache layer over a counting origin, with tokio time paused for
//! every TTL. Each test names the RFC section it covers.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use http::StatusCode;
use rampart_cache::{CacheOutcome, CachePolicy, CacheSettings, PurgeRequest, SetCookiePolicy};
use rampart_core::{Error, ErrorKind, error::find_cause};
use support::*;
use tokio::time::advance;

fn cacheable(cc: &'static str) -> Origin {
    Origin::new(move |_, n| Ok(resp(200, &[("cache-control", cc)], &format!("body {n}"))))
}

// ---------------------------------------------------------------- §3 storing, §4 reuse

#[tokio::test(start_paused = true)]
async fn miss_then_hit_with_age_and_cache_status() {
    let h = Harness::new(cacheable("max-age=60"));
    let a = h.get("/a").await;
    assert_eq!(a.cs(), "rampart; fwd=uri-miss; fwd-status=200; stored");
    assert_eq!(a.outcome, Some(CacheOutcome::Miss));
    assert!(a.h("age").is_none());
    let b = h.get("/a").await;
    assert_eq!(b.body, "body 1");
    assert_eq!(b.cs(), "rampart; hit; ttl=60");
    assert_eq!(b.age(), 0);
    assert_eq!(b.outcome, Some(CacheOutcome::Hit));
    advance(Duration::from_secs(10)).await;
    let c = h.get("/a").await;
    assert_eq!(c.age(), 10);
    assert_eq!(c.cs(), "rampart; hit; ttl=50");
    assert_eq!(h.origin.calls(), 1);
    // Stale without validator or stale window: dropped at expiry, fetched again.
    advance(Duration::from_secs(51)).await;
    let d = h.get("/a").await;
    assert_eq!(d.body, "body 2");
    assert_eq!(d.outcome, Some(CacheOutcome::Miss));
    assert_eq!(d.cs(), "rampart; fwd=uri-miss; fwd-status=200; stored");
    assert_eq!(h.origin.calls(), 2);
    let stats = h.cache.stats();
    assert_eq!((stats.hits, stats.misses), (2, 2));
    assert_eq!(stats.entries, 1);
    assert!(stats.bytes > 6);
}

#[tokio::test(start_paused = true)]
async fn upstream_age_counts_per_4_2_3() {
    let o = Origin::new(|_, _| {
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("age", "30")],
            "x",
        ))
    });
    let h = Harness::new(o);
    h.get("/a").await;
    let b = h.get("/a").await;
    assert_eq!(b.age(), 30);
    assert_eq!(b.cs(), "rampart; hit; ttl=30");
    advance(Duration::from_secs(31)).await;
    h.get("/a").await;
    assert_eq!(h.origin.calls(), 2, "stale after 30 more seconds");
}

#[tokio::test(start_paused = true)]
async fn not_stored_per_section_3() {
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Pairs<'_>, Pairs<'_>, u16, &str)] = &[
        (
            &[],
            &[("cache-control", "no-store, max-age=60")],
            200,
            "no-store",
        ),
        (
            &[],
            &[("cache-control", "private, max-age=60")],
            200,
            "private",
        ),
        (
            &[("authorization", "Basic x")],
            &[("cache-control", "max-age=60")],
            200,
            "authorization",
        ),
        (
            &[],
            &[("cache-control", "max-age=60"), ("vary", "*")],
            200,
            "vary-star",
        ),
        (&[], &[], 200, "no-freshness"),
        (
            &[],
            &[("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")],
            302,
            "no-freshness",
        ),
        (&[], &[("cache-control", "max-age=60")], 206, "status"),
        (
            &[],
            &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
            200,
            "set-cookie",
        ),
        (&[], &[("cache-control", "no-cache")], 200, "no-cache"),
    ];
    for (i, (req_h, resp_h, status, detail)) in cases.iter().enumerate() {
        let resp_h: Vec<(String, String)> = resp_h
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let status = *status;
        let o = Origin::new(move |_, _| {
            let hv: Vec<(&str, &str)> = resp_h
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            Ok(resp(status, &hv, "x"))
        });
        let h = Harness::new(o);
        let a = h.get_h("/p", req_h).await;
        assert!(
            a.cs().ends_with(&format!("detail={detail}")),
            "case {i}: {}",
            a.cs()
        );
        let b = h.get_h("/p", req_h).await;
        assert_eq!(h.origin.calls(), 2, "case {i}: {}", b.cs());
    }
}

#[tokio::test(start_paused = true)]
async fn authorization_allowed_with_public_s_maxage_must_revalidate() {
    for cc in [
        "public, max-age=60",
        "s-maxage=60",
        "must-revalidate, max-age=60",
    ] {
        let h = Harness::new(cacheable(cc));
        let auth = [("authorization", "Bearer t")];
        h.get_h("/a", &auth).await;
        let b = h.get_h("/a", &auth).await;
        assert_eq!(b.outcome, Some(CacheOutcome::Hit), "{cc}");
        assert_eq!(h.origin.calls(), 1, "{cc}");
    }
}

#[tokio::test(start_paused = true)]
async fn private_qualified_strips_fields_and_hop_by_hop_not_stored() {
    let o = Origin::new(|_, _| {
        Ok(resp(
            200,
            &[
                ("cache-control", "max-age=60, private=\"x-user\""),
                ("x-user", "alice"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("x-keep", "k"),
            ],
            "x",
        ))
    });
    let h = Harness::new(o);
    let a = h.get("/a").await;
    assert_eq!(
        a.h("x-user"),
        Some("alice"),
        "first client gets the origin's response"
    );
    let b = h.get("/a").await;
    assert_eq!(b.outcome, Some(CacheOutcome::Hit));
    assert!(b.h("x-user").is_none());
    assert!(b.h("x-hop").is_none());
    assert!(b.h("connection").is_none());
    assert_eq!(b.h("x-keep"), Some("k"));
}

#[tokio::test(start_paused = true)]
async fn heuristic_freshness_for_heuristically_cacheable_only() {
    let lm = http_date(SystemTime::now() - Duration::from_secs(100_000));
    let lm2 = lm.clone();
    let h = Harness::new(Origin::new(move |_, _| {
        Ok(resp(200, &[("last-modified", lm2.as_str())], "x"))
    }));
    h.get("/a").await;
    let b = h.get("/a").await;
    assert_eq!(b.outcome, Some(CacheOutcome::Hit));
    // 10% of 100000 s = 10000 s.
    advance(Duration::from_secs(9_990)).await;
    assert_eq!(h.get("/a").await.outcome, Some(CacheOutcome::Hit));
    advance(Duration::from_secs(20)).await;
    assert_ne!(h.get("/a").await.outcome, Some(CacheOutcome::Hit));
}

#[tokio::test(start_paused = true)]
async fn invalid_freshness_is_stale_and_revalidated() {
    let o = Origin::new(|p, _| {
        if p.headers.contains_key("if-none-match") {
            return Ok(resp(
                304,
                &[("etag", "\"v1\""), ("cache-control", "max-age=abc")],
                "",
            ));
        }
        Ok(resp(
            200,
            &[("cache-control", "max-age=abc"), ("etag", "\"v1\"")],
            "x",
        ))
    });
    let h = Harness::new(o);
    h.get("/a").await;
    let b = h.get("/a").await;
    assert_eq!(b.outcome, Some(CacheOutcome::Revalidated));
    assert_eq!(h.origin.last().headers["if-none-match"], "\"v1\"");
}

#[tokio::test(start_paused = true)]
async fn default_ttl_and_ttl_cap_are_route_policy() {
    let policy = CachePolicy {
        default_ttl: Some(Duration::from_secs(30)),
        ttl_max: Some(Duration::from_secs(40)),
        ..CachePolicy::default()
    };
    let o = Origin::new(|p, _| {
        if p.uri.path() == "/long" {
            Ok(resp(200, &[("cache-control", "max-age=3600")], "x"))
        } else {
            Ok(resp(200, &[], "x"))
        }
    });
    let h = Harness::with(o, CacheSettings::default(), policy);
    h.get("/plain").await;
    assert_eq!(h.get("/plain").await.cs(), "rampart; hit; ttl=30");
    h.get("/long").await;
    assert_eq!(h.get("/long").await.cs(), "rampart; hit; ttl=40");
}

// ---------------------------------------------------------------- request directives

#[tokio::test(start_paused = true)]
async fn request_directives() {
    let o = Origin::new(|_, n| {
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("etag", "\"e\"")],
            &format!("b{n}"),
        ))
    });
    let h = Harness::new(o);
    h.get("/a").await;
    advance(Duration::from_secs(10)).await;

    // no-cache: validated (fwd=request); origin answers 200 (it ignores conditionals).
    let r = h.get_h("/a", &[("cache-control", "no-cache")]).await;
    assert!(r.cs().contains("fwd=request"), "{}", r.cs());
    assert_eq!(h.origin.last().headers["if-none-match"], "\"e\"");
    assert_eq!(h.origin.calls(), 2);

    // Pragma: no-cache without Cache-Control behaves like no-cache ...
    h.get_h("/a", &[("pragma", "no-cache")]).await;
    assert_eq!(h.origin.calls(), 3);
    // ... but not when Cache-Control is present.
    let r = h
        .get_h(
            "/a",
            &[("pragma", "no-cache"), ("cache-control", "max-stale")],
        )
        .await;
    assert_eq!(r.outcome, Some(CacheOutcome::Hit));

    advance(Duration::from_secs(10)).await;
    // max-age=5 with age 10: validate.
    let r = h.get_h("/a", &[("cache-control", "max-age=5")]).await;
    assert!(r.cs().contains("fwd=request"), "{}", r.cs());
    assert_eq!(h.origin.calls(), 4);

    advance(Duration::from_secs(30)).await;
    // min-fresh=40 with 30 s left: validate; min-fresh=20: hit.
    let r = h.get_h("/a", &[("cache-control", "min-fresh=20")]).await;
    assert_eq!(r.outcome, Some(CacheOutcome::Hit));
    let r = h.get_h("/a", &[("cache-control", "min-fresh=40")]).await;
    assert!(r.cs().contains("fwd=request"));
    assert_eq!(h.origin.calls(), 5);

    // max-stale: stale served.
    advance(Duration::from_secs(70)).await;
    let r = h.get_h("/a", &[("cache-control", "max-stale=20")]).await;
    assert_eq!(r.outcome, Some(CacheOutcome::Stale), "{}", r.cs());
    assert!(r.cs().contains("ttl=-10"), "{}", r.cs());
    let r = h.get_h("/a", &[("cache-control", "max-stale")]).await;
    assert_eq!(r.outcome, Some(CacheOutcome::Stale));
    assert_eq!(h.origin.calls(), 5);

    // no-store: bypass.
    let r = h.get_h("/a", &[("cache-control", "no-store")]).await;
    assert_eq!(r.outcome, Some(CacheOutcome::Bypass));
    assert_eq!(
        r.cs(),
        "rampart; fwd=request; fwd-status=200; detail=no-store"
    );
}

#[tokio::test(start_paused = true)]
async fn only_if_cached_gives_not_cached_on_miss() {
    let h = Harness::new(cacheable("max-age=60"));
    let err = h
        .call(h.req("GET", "/a", &[("cache-control", "only-if-cached")]))
        .await
        .unwrap_err();
    let e = find_cause::<Error>(err.as_ref()).unwrap();
    assert_eq!(*e.kind(), ErrorKind::NotCached);
    assert_eq!(h.origin.calls(), 0);
    h.get("/a").await;
    let r = h
        .call(h.req("GET", "/a", &[("cache-control", "only-if-cached")]))
        .await
        .unwrap();
    assert_eq!(r.outcome, Some(CacheOutcome::Hit));
    advance(Duration::from_secs(61)).await;
    assert!(
        h.call(h.req("GET", "/a", &[("cache-control", "only-if-cached")]))
            .await
            .is_err(),
        "stale and would need validation"
    );
}

#[tokio::test(start_paused = true)]
async fn client_conditionals_answered_from_cache() {
    let o = Origin::new(|_, _| {
        Ok(resp(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "W/\"v1\""),
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
            "hello",
        ))
    });
    let h = Harness::new(o);
    let a = h.get_h("/a", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(a.status, StatusCode::OK, "miss: full response");
    assert!(
        h.origin.last().headers.get("if-none-match").is_none(),
        "stripped upstream"
    );
    let b = h.get_h("/a", &[("if-none-match", "\"x\", W/\"v1\"")]).await;
    assert_eq!(b.status, StatusCode::NOT_MODIFIED);
    assert!(b.body.is_empty());
    assert_eq!(b.h("etag"), Some("W/\"v1\""));
    let c = h
        .get_h(
            "/a",
            &[("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT")],
        )
        .await;
    assert_eq!(c.status, StatusCode::NOT_MODIFIED);
    let d = h
        .get_h(
            "/a",
            &[("if-modified-since", "Sun, 31 Dec 2023 00:00:00 GMT")],
        )
        .await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(h.origin.calls(), 1);
}

// ---------------------------------------------------------------- §4.3 validation

#[tokio::test(start_paused = true)]
async fn not_modified_updates_stored_headers_and_freshness() {
    let o = Origin::new(|p, _| {
        if p.headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            return Ok(resp(
                304,
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=100"),
                    ("x-new", "n"),
                    ("content-length", "0"),
                ],
                "",
            ));
        }
        Ok(resp(
            200,
            &[
                ("cache-control", "max-age=10"),
                ("etag", "\"v1\""),
                ("x-old", "o"),
            ],
            "hello",
        ))
    });
    let h = Harness::new(o);
    h.get("/a").await;
    advance(Duration::from_secs(11)).await;
    let r = h.get("/a").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "hello");
    assert_eq!(r.outcome, Some(CacheOutcome::Revalidated));
    assert_eq!(r.cs(), "rampart; fwd=stale; fwd-status=304; ttl=100");
    assert_eq!(r.h("x-new"), Some("n"));
    assert_eq!(r.h("x-old"), Some("o"));
    assert_eq!(
        r.h("content-length"),
        Some("5"),
        "content-length not updated"
    );
    assert_eq!(h.origin.calls(), 2);
    advance(Duration::from_secs(90)).await;
    let r = h.get("/a").await;
    assert_eq!(
        r.outcome,
        Some(CacheOutcome::Hit),
        "freshness reset by the 304"
    );
    assert_eq!(h.origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn last_modified_validator_and_must_revalidate() {
    let lm = "Mon, 01 Jan 2024 00:00:00 GMT";
    let o = Origin::new(move |p, n| {
        if n >= 3 {
            return Err(Box::new(Error::new(ErrorKind::UpstreamConnect)));
        }
        if p.headers.get("if-modified-since").is_some_and(|v| v == lm) {
            return Ok(resp(304, &[], ""));
        }
        Ok(resp(
            200,
            &[
                (
                    "cache-control",
                    "max-age=10, must-revalidate, stale-if-error=600",
                ),
                ("last-modified", lm),
            ],
            "x",
        ))
    });
    let h = Harness::new(o);
    h.get("/a").await;
    advance(Duration::from_secs(11)).await;
    assert_eq!(h.get("/a").await.outcome, Some(CacheOutcome::Revalidated));
    advance(Duration::from_secs(11)).await;
    // must-revalidate beats stale-if-error: the error passes up.
    let err = h.call(h.req("GET", "/a", &[])).await.unwrap_err();
    assert_eq!(
        *find_cause::<Error>(err.as_ref()).unwrap().kind(),
        ErrorKind::UpstreamConnect
    );
}

#[tokio::test(start_paused = true)]
async fn no_cache_response_is_validated_every_time() {
    let o = Origin::new(|p, _| {
        if p.headers.contains_key("if-none-match") {
            return Ok(resp(304, &[("etag", "\"a\"")], ""));
        }
        Ok(resp(
            200,
            &[("cache-control", "no-cache"), ("etag", "\"a\"")],
            "x",
        ))
    });
    let h = Harness::new(o);
    h.get("/a").await;
    for i in 0..3 {
        let r = h.get("/a").await;
        assert_eq!(r.outcome, Some(CacheOutcome::Revalidated), "{i}");
        assert_eq!(r.body, "x");
    }
    assert_eq!(h.origin.calls(), 4);

    // ignore_no_cache opt-in: reused without validation.
    let policy = CachePolicy {
        overrides: rampart_cache::Overrides {
            ignore_no_cache: true,
            ..Default::default()
        },
        default_ttl: Some(Duration::from_secs(60)),
        ..CachePolicy::default()
    };
    let o = Origin::new(|_, _| {
        Ok(resp(
            200,
            &[("cache-control", "no-cache, max-age=60"), ("etag", "\"a\"")],
            "x",
        ))
    });
    let h = Harness::with(o, CacheSettings::default(), policy);
    h.get("/a").await;
    assert_eq!(h.get("/a").await.outcome, Some(CacheOutcome::Hit));
}

#[tokio::test(start_paused = true)]
async fn head_served_from_get_and_head_updates_stored_get() {
    let o = Origin::new(|p, n| {
        let cc = if p.method == http::Method::HEAD {
            "max-age=100"
        } else {
            "max-age=10"
        };
        let mut r = resp(
            200,
            &[
                ("cache-control", cc),
                ("etag", "\"v\""),
                ("x-n", &n.to_string()),
            ],
            "hello",
        );
        if p.method == http::Method::HEAD {
            *r.body_mut() = rampart_core::body::empty();
        }
        Ok(r)
    });
    let h = Harness::new(o);
    // HEAD miss: forwarded, not stored.
    let r = h.call(h.req("HEAD", "/a", &[])).await.unwrap();
    assert_eq!(r.outcome, Some(CacheOutcome::Miss));
    h.get("/a").await;
    let r = h.call(h.req("HEAD", "/a", &[])).await.unwrap();
    assert_eq!(r.outcome, Some(CacheOutcome::Hit));
    assert!(r.body.is_empty());
    assert_eq!(h.origin.calls(), 2);
    advance(Duration::from_secs(11)).await;
    // Stale: HEAD goes upstream; its 200 matches the stored validator and updates it.
    let r = h.call(h.req("HEAD", "/a", &[])).await.unwrap();
    assert_eq!(r.outcome, Some(CacheOutcome::Revalidated), "{}", r.cs());
    assert!(r.body.is_empty());
    let g = h.get("/a").await;
    assert_eq!(g.outcome, Some(CacheOutcome::Hit));
    assert_eq!(g.body, "hello");
    assert_eq!(g.h("x-n"), Some("3"), "headers from the HEAD response");
    assert_eq!(g.h("cache-control"), Some("max-age=100"));
}

// ---------------------------------------------------------------- §4.1 Vary

#[tokio::test(start_paused = true)]
async fn vary_variants_with_normalisation() {
    let o = Origin::new(|p, n| {
        let ae = p
            .headers
            .get("accept-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
            &format!("{n}:{}", ae.unwrap_or_default()),
        ))
    });
    let h = Harness::new(o);
    let a = h.get_h("/v", &[("accept-encoding", "gzip, br")]).await;
    assert!(a.cs().contains("uri-miss"));
    let b = h.get_h("/v", &[("accept-encoding", "br,gzip;q=0.9")]).await;
    assert_eq!(b.outcome, Some(CacheOutcome::Hit));
    assert_eq!(b.body, "1:gzip, br");
    let c = h.get_h("/v", &[("accept-encoding", "identity")]).await;
    assert!(c.cs().contains("fwd=vary-miss"), "{}", c.cs());
    let d = h.get("/v").await;
    assert!(
        d.cs().contains("fwd=vary-miss"),
        "absent header is its own variant"
    );
    assert_eq!(
        h.get_h("/v", &[("accept-encoding", "identity")]).await.body,
        "2:identity"
    );
    assert_eq!(h.origin.calls(), 3);
    assert_eq!(h.cache.stats().entries, 3);
    // Purge by URL removes every variant.
    let out = h
        .cache
        .purge(PurgeRequest {
            urls: Some(vec!["http://example.com/v".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(out.purged, 3);
}

#[tokio::test(start_paused = true)]
async fn vary_star_never_served_from_cache() {
    let h = Harness::new(Origin::new(|_, _| {
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("vary", "*")],
            "x",
        ))
    }));
    h.get("/a").await;
    h.get("/a").await;
    assert_eq!(h.origin.calls(), 2);
}

// ---------------------------------------------------------------- §4.4 invalidation

#[tokio::test(start_paused = true)]
async fn unsafe_methods_invalidate_target_and_same_origin_locations() {
    let o = Origin::new(|p, n| {
        if p.method == http::Method::GET {
            return Ok(resp(
                200,
                &[("cache-control", "max-age=600")],
                &format!("{n}"),
            ));
        }
        if p.uri.path() == "/fail" {
            return Ok(resp(500, &[], ""));
        }
        Ok(resp(
            201,
            &[
                ("location", "/b"),
                ("content-location", "http://other.example/c"),
            ],
            "",
        ))
    });
    let h = Harness::new(o);
    for p in ["/a", "/b", "/c", "/fail"] {
        h.get(p).await;
    }
    assert_eq!(h.origin.calls(), 4);
    for m in ["POST", "PUT", "DELETE", "PATCH", "FOOBAR"] {
        let r = h.call(h.req(m, "/a", &[])).await.unwrap();
        assert!(r.cs().starts_with("rampart; fwd=method"), "{m}: {}", r.cs());
        assert_eq!(r.outcome, Some(CacheOutcome::Pass));
    }
    let before = h.origin.calls();
    h.get("/a").await; // invalidated: miss
    h.get("/b").await; // Location, same origin: miss
    h.get("/c").await; // other origin: still a hit
    assert_eq!(h.origin.calls(), before + 2);
    // A failed unsafe request invalidates nothing.
    h.call(h.req("POST", "/fail", &[])).await.unwrap();
    let before = h.origin.calls();
    assert_eq!(h.get("/fail").await.outcome, Some(CacheOutcome::Hit));
    assert_eq!(h.origin.calls(), before);
}

// ---------------------------------------------------------------- RFC 9213 targeted fields

#[tokio::test(start_paused = true)]
async fn targeted_fields_take_precedence_and_are_stripped() {
    let o = Origin::new(|p, _| {
        let mut hs = vec![
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ];
        if p.uri.path() == "/t" {
            hs.push(("rampart-cache-control", "max-age=5"));
        }
        Ok(resp(200, &hs, "x"))
    });
    let h = Harness::new(o);
    let a = h.get("/a").await;
    assert!(a.h("cdn-cache-control").is_none());
    assert_eq!(a.h("cache-control"), Some("no-store"));
    assert_eq!(h.get("/a").await.cs(), "rampart; hit; ttl=60");
    h.get("/t").await;
    let t = h.get("/t").await;
    assert_eq!(t.cs(), "rampart; hit; ttl=5");
    assert!(t.h("rampart-cache-control").is_none());

    let settings = CacheSettings {
        forward_targeted: true,
        ..CacheSettings::default()
    };
    let h = Harness::with(
        Origin::new(|_, _| Ok(resp(200, &[("cdn-cache-control", "max-age=60")], "x"))),
        settings,
        CachePolicy::default(),
    );
    assert_eq!(h.get("/a").await.h("cdn-cache-control"), Some("max-age=60"));
}

// ---------------------------------------------------------------- RFC 5861

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let o = Origin::new(|_, n| {
        let cc = if n == 1 {
            "max-age=1, stale-while-revalidate=30"
        } else {
            "max-age=60, stale-while-revalidate=30"
        };
        Ok(resp(
            200,
            &[("cache-control", cc), ("etag", "\"e\"")],
            &format!("v{n}"),
        ))
    });
    let h = Harness::new(o);
    h.get("/a").await;
    advance(Duration::from_secs(2)).await;
    h.origin.set_delay(Duration::from_secs(5));
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let r = h.get("/a").await;
        assert_eq!(r.body, "v1");
        assert!(
            r.cs().contains("detail=stale-while-revalidate"),
            "{}",
            r.cs()
        );
        outcomes.push(r.outcome);
        settle().await;
    }
    assert_eq!(outcomes, vec![Some(CacheOutcome::Stale); 3]);
    assert_eq!(h.origin.calls(), 2, "one background refresh");
    advance(Duration::from_secs(5)).await;
    settle().await;
    let r = h.get("/a").await;
    assert_eq!(r.outcome, Some(CacheOutcome::Hit));
    assert_eq!(r.body, "v2");
    // The refresh took 5 s: that delay counts into its age (§4.2.3), 55 s left. Past
    // freshness and the window: a synchronous conditional fetch.
    advance(Duration::from_secs(90)).await;
    h.origin.set_delay(Duration::ZERO);
    let r = h.get("/a").await;
    assert_eq!(r.outcome, Some(CacheOutcome::Expired), "{}", r.cs());
    assert_eq!(r.body, "v3");
    assert!(h.origin.last().headers.contains_key("if-none-match"));
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_on_5xx_and_connect_errors() {
    let o = Origin::new(|_, n| {
        Ok(resp(
            200,
            &[("cache-control", "max-age=1, stale-if-error=60")],
            &format!("v{n}"),
        ))
    });
    let h = Harness::new(o);
    h.get("/a").await;
    advance(Duration::from_secs(2)).await;
    for status in [500u16, 502, 503, 504] {
        h.origin.set(move |_, _| Ok(resp(status, &[], "down")));
        let r = h.get("/a").await;
        assert_eq!(r.status, StatusCode::OK, "{status}");
        assert_eq!(r.body, "v1");
        assert_eq!(r.outcome, Some(CacheOutcome::Stale));
        assert!(
            r.cs().contains(&format!("fwd-status={status}")),
            "{}",
            r.cs()
        );
        assert!(r.cs().ends_with("detail=stale-if-error"));
    }
    h.origin
        .set(|_, _| Err(Box::new(Error::new(ErrorKind::UpstreamConnect))));
    assert_eq!(h.get("/a").await.body, "v1");
    h.origin
        .set(|_, _| Err(Box::new(Error::new(ErrorKind::GatewayTimeout))));
    assert_eq!(h.get("/a").await.body, "v1");
    // 404 is not an error for stale-if-error.
    h.origin.set(|_, _| Ok(resp(404, &[], "nf")));
    assert_eq!(h.get("/a").await.status, StatusCode::NOT_FOUND);
    // Outside the window the error goes through.
    let h = Harness::new(Origin::new(|_, _| {
        Ok(resp(
            200,
            &[("cache-control", "max-age=1, stale-if-error=60")],
            "v",
        ))
    }));
    h.get("/a").await;
    advance(Duration::from_secs(62)).await;
    h.origin.set(|_, _| Ok(resp(503, &[], "down")));
    assert_eq!(h.get("/a").await.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_keeps_a_response_with_no_freshness_and_no_validator() {
    // `max-age=0, stale-if-error=60`, no ETag / Last-Modified: useless fresh, but the origin
    // asks for it to be served if it later fails (RFC 5861 §4).
    let h = Harness::new(Origin::new(|_, n| {
        Ok(resp(
            200,
            &[("cache-control", "max-age=0, stale-if-error=60")],
            &format!("v{n}"),
        ))
    }));
    let r = h.get("/a").await;
    assert!(r.cs().contains("stored"), "{}", r.cs());
    // Always stale, nothing to validate with: every request goes to the origin in full.
    let r = h.get("/a").await;
    assert_eq!(r.body, "v2");
    assert!(!h.origin.last().headers.contains_key("if-none-match"));
    assert!(!h.origin.last().headers.contains_key("if-modified-since"));
    h.origin.set(|_, _| Ok(resp(503, &[], "down")));
    let r = h.get("/a").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "v2");
    assert!(r.cs().ends_with("detail=stale-if-error"), "{}", r.cs());
    // Past the window the failure goes through.
    advance(Duration::from_secs(61)).await;
    assert_eq!(h.get("/a").await.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn gateway_side_stale_defaults_per_route() {
    let policy = CachePolicy {
        stale_if_error: Some(Duration::from_secs(60)),
        stale_while_revalidate: Some(Duration::from_secs(10)),
        ..CachePolicy::default()
    };
    let h = Harness::with(cacheable("max-age=1"), CacheSettings::default(), policy);
    h.get("/a").await;
    advance(Duration::from_secs(2)).await;
    assert_eq!(h.get("/a").await.outcome, Some(CacheOutcome::Stale));
    settle().await;
    assert_eq!(h.origin.calls(), 2);
    advance(Duration::from_secs(20)).await;
    h.origin
        .set(|_, _| Err(Box::new(Error::new(ErrorKind::UpstreamConnect))));
    let r = h.get("/a").await;
    assert_eq!(r.outcome, Some(CacheOutcome::Stale));
    assert!(r.cs().contains("stale-if-error"));
}

// ---------------------------------------------------------------- coalescing

#[tokio::test(start_paused = true)]
async fn hundred_concurrent_misses_send_one_request() {
    let h = Harness::new(cacheable("max-age=60"));
    h.origin.set_delay(Duration::from_millis(100));
    let futs = (0..100).map(|_| h.get("/hot"));
    let results = futures_util::future::join_all(futs).await;
    assert_eq!(h.origin.calls(), 1);
    assert!(
        results
            .iter()
            .all(|r| r.status == StatusCode::OK && r.body == "body 1")
    );
    let collapsed = results
        .iter()
        .filter(|r| r.cs().contains("collapsed"))
        .count();
    assert_eq!(collapsed, 99);
    assert_eq!(h.cache.metrics().coalesced.get(), 99);
}

#[tokio::test(start_paused = true)]
async fn waiting_is_bounded_in_count_and_time() {
    let settings = CacheSettings {
        coalesce_max_waiters: 3,
        coalesce_wait: Duration::from_secs(1),
        ..CacheSettings::default()
    };
    let h = Harness::with(cacheable("max-age=60"), settings, CachePolicy::default());
    h.origin.set_delay(Duration::from_secs(10));
    let futs = (0..10).map(|_| h.get("/slow"));
    futures_util::future::join_all(futs).await;
    // 1 leader + 6 over the waiting-list bound + 3 waiters that gave up after 1 s.
    assert_eq!(h.origin.calls(), 10);
    assert!(h.origin.max_inflight.load(Ordering::SeqCst) >= 7);
}

#[tokio::test(start_paused = true)]
async fn hit_for_pass_does_not_serialise() {
    let h = Harness::new(cacheable("no-store"));
    let r = h.get("/u").await;
    assert!(r.cs().ends_with("detail=no-store"));
    h.origin.set_delay(Duration::from_millis(100));
    let futs = (0..5).map(|_| h.get("/u"));
    let results = futures_util::future::join_all(futs).await;
    assert_eq!(h.origin.calls(), 6);
    assert_eq!(
        h.origin.max_inflight.load(Ordering::SeqCst),
        5,
        "not serialised"
    );
    for r in &results {
        assert_eq!(r.outcome, Some(CacheOutcome::Pass));
        assert_eq!(
            r.cs(),
            "rampart; fwd=bypass; fwd-status=200; detail=hit-for-pass"
        );
    }
    // After the hit-for-pass TTL, a cacheable answer is stored again.
    advance(Duration::from_secs(11)).await;
    h.origin.set_delay(Duration::ZERO);
    h.origin
        .set(|_, _| Ok(resp(200, &[("cache-control", "max-age=60")], "ok")));
    h.get("/u").await;
    assert_eq!(h.get("/u").await.outcome, Some(CacheOutcome::Hit));
}

#[tokio::test(start_paused = true)]
async fn hit_for_pass_stores_when_cacheable_again() {
    let h = Harness::new(cacheable("no-store"));
    h.get("/u").await;
    h.origin
        .set(|_, _| Ok(resp(200, &[("cache-control", "max-age=60")], "ok")));
    let r = h.get("/u").await;
    assert_eq!(r.outcome, Some(CacheOutcome::Pass));
    assert!(r.cs().contains("stored"), "{}", r.cs());
    assert_eq!(h.get("/u").await.outcome, Some(CacheOutcome::Hit));
}

// ---------------------------------------------------------------- storage limits

#[tokio::test(start_paused = true)]
async fn oversized_objects_stream_through_uncached() {
    let settings = CacheSettings {
        max_object_size: 1024,
        ..CacheSettings::default()
    };
    let big = "x".repeat(2048);
    let big2 = big.clone();
    let o = Origin::new(move |p, _| {
        if p.uri.path() == "/chunked" {
            // No Content-Length: discovered while streaming.
            let chunks: Vec<Result<http_body::Frame<bytes::Bytes>, rampart_core::BoxError>> = (0
                ..4)
                .map(|_| Ok(http_body::Frame::data(bytes::Bytes::from(vec![b'y'; 512]))))
                .collect();
            let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
            let mut r = http::Response::new(rampart_core::body::boxed(body));
            r.headers_mut().insert(
                "cache-control",
                http::HeaderValue::from_static("max-age=60"),
            );
            return Ok(r);
        }
        Ok(resp(200, &[("cache-control", "max-age=60")], &big2))
    });
    let h = Harness::with(o, settings, CachePolicy::default());
    let a = h.get("/big").await;
    assert_eq!(a.body.len(), 2048);
    assert!(a.cs().ends_with("detail=too-large"), "{}", a.cs());
    let a = h.get("/chunked").await;
    assert_eq!(a.body.len(), 2048, "streamed in full, not truncated");
    assert!(
        a.cs().contains("stored"),
        "decided before the size was known"
    );
    let b = h.get("/chunked").await;
    assert_eq!(b.body.len(), 2048);
    assert_eq!(
        b.outcome,
        Some(CacheOutcome::Pass),
        "abandoned: hit-for-pass"
    );
    assert_eq!(h.cache.stats().entries, 0);
}

#[tokio::test(start_paused = true)]
async fn incomplete_bodies_are_never_stored() {
    let o = Origin::new(|_, _| {
        let chunks: Vec<Result<http_body::Frame<bytes::Bytes>, rampart_core::BoxError>> = vec![
            Ok(http_body::Frame::data(bytes::Bytes::from_static(b"part"))),
            Err("upstream reset".into()),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let mut r = http::Response::new(rampart_core::body::boxed(body));
        r.headers_mut().insert(
            "cache-control",
            http::HeaderValue::from_static("max-age=60"),
        );
        Ok(r)
    });
    let h = Harness::new(o);
    assert!(h.call(h.req("GET", "/a", &[])).await.is_err());
    assert!(h.call(h.req("GET", "/a", &[])).await.is_err());
    assert_eq!(h.origin.calls(), 2);
    // Content-Length mismatch: short body.
    let h = Harness::new(Origin::new(|_, _| {
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("content-length", "10")],
            "short",
        ))
    }));
    h.get("/a").await;
    h.get("/a").await;
    assert_eq!(h.origin.calls(), 2);
}

// ---------------------------------------------------------------- policy

#[tokio::test(start_paused = true)]
async fn set_cookie_policies() {
    let o = || {
        Origin::new(|_, _| {
            Ok(resp(
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "sid=1")],
                "x",
            ))
        })
    };
    let h = Harness::new(o());
    h.get("/a").await;
    h.get("/a").await;
    assert_eq!(h.origin.calls(), 2, "default: not stored");
    let policy = CachePolicy {
        set_cookie: SetCookiePolicy::Strip,
        ..CachePolicy::default()
    };
    let h = Harness::with(o(), CacheSettings::default(), policy);
    assert_eq!(h.get("/a").await.h("set-cookie"), Some("sid=1"));
    let b = h.get("/a").await;
    assert_eq!(b.outcome, Some(CacheOutcome::Hit));
    assert!(b.h("set-cookie").is_none());
}

#[tokio::test(start_paused = true)]
async fn deception_guard() {
    let policy = CachePolicy {
        deception_guard: true,
        ..CachePolicy::default()
    };
    let o = Origin::new(|p, _| {
        let ct = if p.uri.path().starts_with("/account") {
            "text/html"
        } else {
            "text/css"
        };
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("content-type", ct)],
            "x",
        ))
    });
    let h = Harness::with(o, CacheSettings::default(), policy);
    let a = h.get("/account/profile.css").await;
    assert!(
        a.cs().ends_with("detail=content-type-mismatch"),
        "{}",
        a.cs()
    );
    h.get("/account/profile.css").await;
    assert_eq!(h.origin.calls(), 2);
    h.get("/site.css").await;
    assert_eq!(h.get("/site.css").await.outcome, Some(CacheOutcome::Hit));
}

#[tokio::test(start_paused = true)]
async fn key_policy_sorted_query() {
    let policy = CachePolicy {
        key: rampart_cache::KeyPolicy {
            query: rampart_cache::QueryKey::Sorted,
            ..Default::default()
        },
        ..CachePolicy::default()
    };
    let h = Harness::with(cacheable("max-age=60"), CacheSettings::default(), policy);
    h.get("/q?b=2&a=1").await;
    assert_eq!(h.get("/q?a=1&b=2").await.outcome, Some(CacheOutcome::Hit));
    assert_ne!(h.get("/q?a=1").await.outcome, Some(CacheOutcome::Hit));
}

#[tokio::test(start_paused = true)]
async fn no_policy_or_disabled_passes_through_untouched() {
    let h = Harness::with(
        cacheable("max-age=60"),
        CacheSettings::default(),
        CachePolicy {
            enabled: false,
            ..CachePolicy::default()
        },
    );
    let a = h.get("/a").await;
    assert!(a.h("cache-status").is_none());
    h.get("/a").await;
    assert_eq!(h.origin.calls(), 2);
    let mut req = h.req("GET", "/a", &[]);
    req.extensions_mut().clear();
    let r = h.call(req).await.unwrap();
    assert!(r.outcome.is_none());
}

// ---------------------------------------------------------------- purge

async fn populate(h: &Harness) {
    for p in ["/static/a.css", "/static/b.js", "/api/x", "/api/y"] {
        h.get(p).await;
    }
}

fn tagged() -> Origin {
    Origin::new(|p, n| {
        let path = p.uri.path();
        let sk = if path.starts_with("/static") {
            "static  site"
        } else {
            "api site"
        };
        let ct = if path.ends_with("x") {
            "item-1, item-2 ,item-1"
        } else {
            "other"
        };
        Ok(resp(
            200,
            &[
                ("cache-control", "max-age=600"),
                ("surrogate-key", sk),
                ("cache-tag", ct),
            ],
            &format!("{n}"),
        ))
    })
}

#[tokio::test(start_paused = true)]
async fn purge_by_url_prefix_tag_and_all() {
    let h = Harness::new(tagged());
    populate(&h).await;
    let purge = |r: PurgeRequest| {
        let c = h.cache.clone();
        async move { c.purge(r).await.unwrap().purged }
    };
    assert_eq!(
        purge(PurgeRequest {
            urls: Some(vec!["http://example.com/api/y".into()]),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        purge(PurgeRequest {
            prefix: Some("http://example.com/static/".into()),
            ..Default::default()
        })
        .await,
        2
    );
    populate(&h).await;
    assert_eq!(
        purge(PurgeRequest {
            prefix: Some("/static/".into()),
            ..Default::default()
        })
        .await,
        2
    );
    populate(&h).await;
    assert_eq!(
        purge(PurgeRequest {
            tags: Some(vec!["item-2".into()]),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        purge(PurgeRequest {
            tags: Some(vec![" site ".into()]),
            ..Default::default()
        })
        .await,
        3
    );
    populate(&h).await;
    assert_eq!(
        purge(PurgeRequest {
            all: true,
            ..Default::default()
        })
        .await,
        4
    );
    let calls = h.origin.calls();
    populate(&h).await;
    assert_eq!(h.origin.calls(), calls + 4, "all gone");
    assert!(h.cache.purge(PurgeRequest::default()).await.is_err());
    assert!(
        h.cache
            .purge(PurgeRequest {
                urls: Some(vec!["/relative".into()]),
                ..Default::default()
            })
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn soft_purge_serves_stale_while_revalidating() {
    let h = Harness::new(Origin::new(|p, n| {
        if p.headers.contains_key("if-none-match") {
            return Ok(resp(
                304,
                &[("etag", "\"e\""), ("cache-control", "max-age=600")],
                "",
            ));
        }
        Ok(resp(
            200,
            &[("cache-control", "max-age=600"), ("etag", "\"e\"")],
            &format!("{n}"),
        ))
    }));
    h.get("/a").await;
    let out = h
        .cache
        .purge(PurgeRequest {
            urls: Some(vec!["http://example.com/a".into()]),
            soft: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(out.purged, 1);
    let r = h.get("/a").await;
    assert_eq!(r.outcome, Some(CacheOutcome::Stale), "{}", r.cs());
    assert_eq!(r.body, "1");
    settle().await;
    assert_eq!(h.origin.calls(), 2, "background revalidation");
    assert!(h.origin.last().headers.contains_key("if-none-match"));
    assert_eq!(h.get("/a").await.outcome, Some(CacheOutcome::Hit));
}

#[tokio::test(start_paused = true)]
async fn purge_method_from_allowed_networks_only() {
    let settings = CacheSettings {
        purge_allow: vec!["10.0.0.0/8".parse().unwrap()],
        ..CacheSettings::default()
    };
    let h = Harness::with(cacheable("max-age=60"), settings, CachePolicy::default());
    h.get("/a").await;
    let mut req = h.req("PURGE", "/a", &[]);
    req.extensions_mut()
        .insert(rampart_core::ClientIp("192.0.2.1".parse().unwrap()));
    let err = h.call(req).await.unwrap_err();
    assert!(matches!(
        find_cause::<Error>(err.as_ref()).unwrap().kind(),
        ErrorKind::Forbidden { .. }
    ));
    let mut req = h.req("PURGE", "/a", &[]);
    req.extensions_mut()
        .insert(rampart_core::ClientIp("10.1.2.3".parse().unwrap()));
    let r = h.call(req).await.unwrap();
    assert_eq!(r.body, "{\"purged\":1}\n");
    assert_eq!(h.origin.calls(), 1, "PURGE never forwarded");
    h.get("/a").await;
    assert_eq!(h.origin.calls(), 2);
}

// ---------------------------------------------------------------- metrics

#[tokio::test(start_paused = true)]
async fn metrics_count_outcomes_by_route() {
    let mut reg = prometheus_client::registry::Registry::default();
    let metrics = rampart_cache::CacheMetrics::register(&mut reg);
    let cache = rampart_cache::Cache::new(CacheSettings::default(), metrics);
    let origin = cacheable("max-age=60");
    let calls = Arc::new(AtomicUsize::new(0));
    let _ = calls;
    use tower::{Layer, Service, ServiceExt};
    let mut svc = rampart_cache::CacheLayer::new(cache.clone()).layer(origin.service());
    let route = route(CachePolicy::default());
    for _ in 0..3 {
        let mut req = http::Request::get("http://example.com/m")
            .body(rampart_core::body::empty())
            .unwrap();
        req.extensions_mut().insert(route.clone());
        let r = svc.ready().await.unwrap().call(req).await.unwrap();
        http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap();
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
    assert!(
        out.contains("rampart_cache_requests_total{route=\"test\",result=\"hit\"} 2"),
        "{out}"
    );
    assert!(out.contains("rampart_cache_requests_total{route=\"test\",result=\"miss\"} 1"));
    assert!(out.contains("rampart_cache_entries 1"));
    let s = cache.stats();
    assert!((s.hit_ratio() - 2.0 / 3.0).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn s_maxage_with_explicit_swr_serves_stale_but_plain_s_maxage_does_not() {
    let h = Harness::new(cacheable("s-maxage=1, stale-while-revalidate=30"));
    h.get("/a").await;
    advance(Duration::from_secs(2)).await;
    assert_eq!(h.get("/a").await.outcome, Some(CacheOutcome::Stale));
    let h = Harness::new(cacheable("s-maxage=1"));
    h.get("/a").await;
    advance(Duration::from_secs(2)).await;
    let r = h.get_h("/a", &[("cache-control", "max-stale")]).await;
    assert_ne!(
        r.outcome,
        Some(CacheOutcome::Stale),
        "s-maxage implies proxy-revalidate"
    );
}

#[tokio::test(start_paused = true)]
async fn upgrades_bypass_the_cache() {
    let h = Harness::new(cacheable("max-age=60"));
    for _ in 0..2 {
        let r = h
            .call(h.req(
                "GET",
                "/ws",
                &[("upgrade", "websocket"), ("connection", "upgrade")],
            ))
            .await
            .unwrap();
        assert_eq!(r.outcome, Some(CacheOutcome::Bypass));
    }
    assert_eq!(h.origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn date_added_when_missing_and_cache_status_appended() {
    let h = Harness::new(Origin::new(|_, _| {
        Ok(resp(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("cache-status", "origin-cdn; fwd=miss"),
            ],
            "x",
        ))
    }));
    let a = h.get("/a").await;
    assert!(a.h("date").is_some(), "Date added (RFC 9110 §6.6.1)");
    let statuses: Vec<_> = a.headers.get_all("cache-status").iter().collect();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[1], "rampart; fwd=uri-miss; fwd-status=200; stored");
    let b = h.get("/a").await;
    assert_eq!(b.h("date"), a.h("date"), "stored Date served");
    let last = b
        .headers
        .get_all("cache-status")
        .iter()
        .next_back()
        .unwrap();
    assert_eq!(last, "rampart; hit; ttl=60");
}

#[tokio::test(start_paused = true)]
async fn purge_url_helper_removes_every_variant() {
    let h = Harness::new(Origin::new(|_, _| {
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept-language")],
            "x",
        ))
    }));
    h.get_h("/a?x=1", &[("accept-language", "en")]).await;
    h.get_h("/a?x=1", &[("accept-language", "fr")]).await;
    let out = h
        .cache
        .purge_url("http://example.com/a?x=1", false)
        .await
        .unwrap();
    assert_eq!(out.purged, 2);
    assert_eq!(h.cache.stats().entries, 0);
}

/// Real threads, no paused clock: 100 concurrent misses held at the origin until all 99
/// followers are waiting, then released; the origin must still see exactly one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_under_real_concurrency() {
    use tower::{Service, ServiceExt};
    let h = Harness::new(cacheable("max-age=60"));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *h.origin.gate.lock().unwrap() = Some(gate.clone());
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let mut svc = h.svc.clone();
        let req = h.req("GET", "/race", &[]);
        tasks.push(tokio::spawn(async move {
            let r = svc.ready().await.unwrap().call(req).await.unwrap();
            http_body_util::BodyExt::collect(r.into_body())
                .await
                .unwrap()
                .to_bytes()
        }));
    }
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while h.cache.metrics().coalesced.get() < 99 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "followers did not queue");
    gate.add_permits(1);
    for t in tasks {
        assert_eq!(t.await.unwrap(), "body 1");
    }
    assert_eq!(h.origin.calls(), 1);
}
