//! Layer-level tests: IP filter + bans, rate limits, CORS, security headers, hygiene.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::{collections::HashSet, num::NonZeroU32, sync::Arc, time::Duration};

use common::{call, header, inner, req, route};
use http::{HeaderName, Method, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use rampart_core::{ConnInfo, body};
use rampart_guard::{
    BanList, BanRule, BanSettings, BanTrigger, CorsLayer, CorsPolicy, CorsSettings, EventSink,
    Gcra, GuardMetrics, HygieneLayer, HygienePolicy, IpAccessList, IpFilterLayer, IpFilterPolicy,
    KeySource, MemoryStore, RateLimit, RateLimitLayer, RateLimitPolicy, SecurityEventKind,
    SecurityHeadersLayer, SecurityHeadersPolicy, SecurityHeadersSettings,
};
use tower::Layer;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

// ---------------------------------------------------------------- ip filter + bans

fn login_bans(metrics: Option<GuardMetrics>, events: EventSink) -> Arc<BanList> {
    Arc::new(BanList::new(
        BanSettings {
            rules: vec![
                BanRule {
                    name: "login_bruteforce".into(),
                    trigger: BanTrigger::Status(401),
                    route: Some("login".into()),
                    threshold: 5,
                    window: Duration::from_secs(60),
                    ban: Duration::from_secs(900),
                },
                BanRule {
                    name: "flood".into(),
                    trigger: BanTrigger::RateLimited,
                    route: None,
                    threshold: 3,
                    window: Duration::from_secs(10),
                    ban: Duration::from_secs(60),
                },
            ],
            max_ban: Duration::from_secs(3600),
            ..Default::default()
        },
        metrics,
        events,
    ))
}

#[tokio::test(start_paused = true)]
async fn brute_force_is_banned_then_released_and_escalated() {
    let mut reg = Registry::default();
    let metrics = GuardMetrics::register(&mut reg);
    let (events, mut rx) = EventSink::channel(100);
    let bans = login_bans(Some(metrics.clone()), events.clone());
    let mut svc = IpFilterLayer::new(Arc::default(), bans.clone(), events).layer(inner());
    let login = route::<()>("login", None);
    let attacker = "198.51.100.23";

    for round in 0..2u32 {
        for i in 0..5 {
            let r = call(
                &mut svc,
                req("POST", "/login", attacker, &login, &[("x-status", "401")]),
            )
            .await;
            assert_eq!(r.status(), 401, "round {round} attempt {i}");
        }
        // Banned now: 403 before the inner service runs (it would answer 200).
        let r = call(&mut svc, req("GET", "/login", attacker, &login, &[])).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("\"reference\":\"ban-"));
        // Others are unaffected.
        let r = call(&mut svc, req("GET", "/login", "198.51.100.24", &login, &[])).await;
        assert_eq!(r.status(), 200);

        let ban_secs = 900u64 << round; // 15 min, then 30 min (escalation)
        assert_eq!(bans.list()[0].remaining_secs, ban_secs);
        tokio::time::advance(Duration::from_secs(ban_secs - 1)).await;
        let r = call(&mut svc, req("GET", "/login", attacker, &login, &[])).await;
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "still banned 1 s before the end"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let r = call(&mut svc, req("GET", "/login", attacker, &login, &[])).await;
        assert_eq!(r.status(), 200, "released after the ban");
    }

    let mut kinds = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        kinds.push(ev.kind);
    }
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == SecurityEventKind::BanCreated)
            .count(),
        2
    );
    assert!(kinds.contains(&SecurityEventKind::BannedRequest));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
    assert!(
        out.contains("rampart_bans_total{reason=\"login_bruteforce\"} 2"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limit_rejections_feed_ban_rules() {
    let bans = login_bans(None, EventSink::disabled());
    let store = Arc::new(MemoryStore::new(10_000));
    let limit = RateLimit::new(
        "api",
        "per_ip",
        Gcra::new(nz(1), Duration::from_secs(60), nz(1)),
        KeySource::Ip,
    )
    .unwrap();
    let api = route("api", Some(RateLimitPolicy::new(vec![limit])));
    // ip filter (8) outside rate limit (10), as in the stack.
    let stack = IpFilterLayer::new(Arc::default(), bans.clone(), EventSink::disabled())
        .layer(RateLimitLayer::new(store, None, EventSink::disabled()).layer(inner()));
    let mut svc = stack;
    assert_eq!(
        call(&mut svc, req("GET", "/", "192.0.2.5", &api, &[]))
            .await
            .status(),
        200
    );
    for _ in 0..3 {
        assert_eq!(
            call(&mut svc, req("GET", "/", "192.0.2.5", &api, &[]))
                .await
                .status(),
            429
        );
    }
    assert_eq!(
        call(&mut svc, req("GET", "/", "192.0.2.5", &api, &[]))
            .await
            .status(),
        403
    );
    assert_eq!(bans.list()[0].rule.as_deref(), Some("flood"));
}

#[tokio::test]
async fn ip_lists_global_and_per_route() {
    let global = Arc::new(IpAccessList::new(
        vec![],
        vec!["203.0.113.0/24".parse().unwrap()],
    ));
    let admin = route(
        "admin",
        Some(IpFilterPolicy {
            list: IpAccessList::new(
                vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
                vec![],
            ),
        }),
    );
    let public = route::<()>("public", None);
    let bans = Arc::new(BanList::new(
        BanSettings::default(),
        None,
        EventSink::disabled(),
    ));
    let mut svc = IpFilterLayer::new(global, bans, EventSink::disabled()).layer(inner());
    let cases = [
        (&admin, "10.1.2.3", 200),
        (&admin, "fd12::1", 200),
        (&admin, "192.0.2.1", 403),
        (&admin, "203.0.113.5", 403), // global deny wins
        (&public, "192.0.2.1", 200),
        (&public, "203.0.113.5", 403),
        (&public, "::ffff:203.0.113.5", 403),
    ];
    for (r, ip, want) in cases {
        let got = call(&mut svc, req("GET", "/", ip, r, &[])).await.status();
        assert_eq!(got.as_u16(), want, "{} {ip}", r.name);
    }
}

#[tokio::test]
async fn ban_status_is_configurable() {
    let bans = Arc::new(BanList::new(
        BanSettings::default(),
        None,
        EventSink::disabled(),
    ));
    bans.ban(
        "192.0.2.9".parse().unwrap(),
        Duration::from_secs(60),
        "test",
    );
    let mut svc = IpFilterLayer::new(Arc::default(), bans, EventSink::disabled())
        .ban_status(StatusCode::TOO_MANY_REQUESTS)
        .layer(inner());
    let r = route::<()>("r", None);
    assert_eq!(
        call(&mut svc, req("GET", "/", "192.0.2.9", &r, &[]))
            .await
            .status(),
        429
    );
}

// ---------------------------------------------------------------- rate limits

#[tokio::test(start_paused = true)]
async fn rate_limit_429_headers_and_exact_gcra_timing() {
    let mut reg = Registry::default();
    let metrics = GuardMetrics::register(&mut reg);
    let (events, mut rx) = EventSink::channel(100);
    let store = Arc::new(MemoryStore::new(10_000));
    // login: 5 per minute per IP (burst 5) -> one every 12 s after the burst.
    let limit = RateLimit::new(
        "login",
        "per_ip",
        Gcra::new(nz(5), Duration::from_secs(60), nz(5)),
        KeySource::Ip,
    )
    .unwrap()
    .with_counters(metrics.limit_counters("login", "per_ip"));
    let login = route("login", Some(RateLimitPolicy::new(vec![limit])));
    let mut svc = RateLimitLayer::new(store, None, events).layer(inner());

    for i in 0..5u32 {
        let r = call(&mut svc, req("POST", "/login", "192.0.2.1", &login, &[])).await;
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(header(&r, "ratelimit-policy"), Some("\"per_ip\";q=5;w=60"));
        let want = format!("\"per_ip\";r={};t={}", 4 - i, 12 * (i + 1));
        assert_eq!(header(&r, "ratelimit"), Some(want.as_str()));
    }
    let r = call(&mut svc, req("POST", "/login", "192.0.2.1", &login, &[])).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "retry-after"), Some("12"));
    assert_eq!(header(&r, "ratelimit-policy"), Some("\"per_ip\";q=5;w=60"));
    assert_eq!(header(&r, "ratelimit"), Some("\"per_ip\";r=0;t=60"));
    assert_eq!(r.headers().get_all("retry-after").iter().count(), 1);

    // Another client is not affected.
    let r = call(&mut svc, req("POST", "/login", "192.0.2.2", &login, &[])).await;
    assert_eq!(r.status(), 200);

    // Exact timing: refused 1 ms before the emission interval, allowed on it.
    tokio::time::advance(Duration::from_millis(11_999)).await;
    let r = call(&mut svc, req("POST", "/login", "192.0.2.1", &login, &[])).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("1"));
    tokio::time::advance(Duration::from_millis(1)).await;
    let r = call(&mut svc, req("POST", "/login", "192.0.2.1", &login, &[])).await;
    assert_eq!(r.status(), 200);
    let r = call(&mut svc, req("POST", "/login", "192.0.2.1", &login, &[])).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("12"));

    assert_eq!(rx.try_recv().unwrap().kind, SecurityEventKind::RateLimited);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
    assert!(out.contains("rampart_ratelimit_decisions_total{route=\"login\",limit=\"per_ip\",decision=\"rejected\"} 3"), "{out}");
    assert!(out.contains("rampart_ratelimit_decisions_total{route=\"login\",limit=\"per_ip\",decision=\"allowed\"} 7"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn several_limits_and_keys() {
    let store = Arc::new(MemoryStore::new(10_000));
    let per_key = RateLimit::new(
        "api",
        "per_key",
        Gcra::new(nz(2), Duration::from_secs(60), nz(2)),
        KeySource::Header(HeaderName::from_static("x-api-key")),
    )
    .unwrap();
    let overall = RateLimit::new(
        "api",
        "overall",
        Gcra::new(nz(3), Duration::from_secs(1), nz(3)),
        KeySource::Route,
    )
    .unwrap();
    let api = route("api", Some(RateLimitPolicy::new(vec![per_key, overall])));
    let mut svc = RateLimitLayer::new(store, None, EventSink::disabled()).layer(inner());
    let k = |key: &'static str| [("x-api-key", key)];
    assert_eq!(
        call(&mut svc, req("GET", "/", "192.0.2.1", &api, &k("a")))
            .await
            .status(),
        200
    );
    let r = call(&mut svc, req("GET", "/", "192.0.2.1", &api, &k("a"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "ratelimit-policy"),
        Some("\"per_key\";q=2;w=60, \"overall\";q=3;w=1")
    );
    // Key "a" is out; key "b" still has quota.
    let r = call(&mut svc, req("GET", "/", "192.0.2.1", &api, &k("a"))).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("30"));
    // Route-wide limit: 3/s is now spent by the three requests above.
    let r = call(&mut svc, req("GET", "/", "192.0.2.1", &api, &k("b"))).await;
    assert_eq!(r.status(), 429);
    tokio::time::advance(Duration::from_millis(334)).await;
    // No key header: the per-key limit does not apply, route-wide does.
    let r = call(&mut svc, req("GET", "/", "192.0.2.1", &api, &[])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "ratelimit-policy"), Some("\"overall\";q=3;w=1"));
}

#[tokio::test(start_paused = true)]
async fn dry_run_only_counts() {
    let (events, mut rx) = EventSink::channel(10);
    let store = Arc::new(MemoryStore::new(10_000));
    let limit = RateLimit::new(
        "r",
        "trial",
        Gcra::new(nz(1), Duration::from_secs(60), nz(1)),
        KeySource::Ip,
    )
    .unwrap()
    .dry_run(true);
    let r = route("r", Some(RateLimitPolicy::new(vec![limit])));
    let mut svc = RateLimitLayer::new(store, None, events).layer(inner());
    for _ in 0..3 {
        assert_eq!(
            call(&mut svc, req("GET", "/", "192.0.2.1", &r, &[]))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        rx.try_recv().unwrap().kind,
        SecurityEventKind::RateLimitDryRun
    );
    assert_eq!(
        rx.try_recv().unwrap().kind,
        SecurityEventKind::RateLimitDryRun
    );
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn default_policy_applies_to_routes_without_one() {
    let store = Arc::new(MemoryStore::new(10_000));
    let limit = RateLimit::new(
        "*",
        "global",
        Gcra::new(nz(1), Duration::from_secs(60), nz(1)),
        KeySource::IpPrefix { v4: 24, v6: 64 },
    )
    .unwrap();
    let default = Arc::new(RateLimitPolicy::new(vec![limit]));
    let plain = route::<()>("plain", None);
    let mut svc = RateLimitLayer::new(store, Some(default), EventSink::disabled()).layer(inner());
    assert_eq!(
        call(&mut svc, req("GET", "/", "192.0.2.1", &plain, &[]))
            .await
            .status(),
        200
    );
    // Same /24: same bucket.
    assert_eq!(
        call(&mut svc, req("GET", "/", "192.0.2.200", &plain, &[]))
            .await
            .status(),
        429
    );
    assert_eq!(
        call(&mut svc, req("GET", "/", "192.0.3.1", &plain, &[]))
            .await
            .status(),
        200
    );
}

// ---------------------------------------------------------------- cors

fn cors_policy(credentials: bool) -> CorsPolicy {
    CorsPolicy::new(&CorsSettings {
        origins: vec![
            "https://app.example.com".into(),
            "https://*.example.org".into(),
        ],
        methods: vec!["GET".into(), "POST".into(), "PUT".into()],
        headers: vec!["Content-Type".into(), "X-Request-Id".into()],
        expose_headers: vec!["X-Total".into()],
        credentials,
        max_age: Some(Duration::from_secs(600)),
    })
    .unwrap()
}

#[tokio::test]
async fn cors_preflight_answered_by_gateway() {
    let api = route("api", Some(cors_policy(true)));
    // The inner service would answer 401 (auth): the preflight must never reach it.
    let mut svc = CorsLayer::new(None, EventSink::disabled()).layer(inner());
    let pre = |origin: &'static str, method: &'static str, hdrs: &'static str| {
        req(
            "OPTIONS",
            "/things",
            "192.0.2.1",
            &api,
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                ("access-control-request-headers", hdrs),
                ("x-status", "401"),
            ],
        )
    };
    let r = call(
        &mut svc,
        pre(
            "https://app.example.com",
            "PUT",
            "content-type, x-request-id",
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&r, "access-control-allow-methods"),
        Some("GET, POST, PUT")
    );
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("content-type, x-request-id")
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&r, "access-control-max-age"), Some("600"));
    let vary: Vec<_> = r
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(vary.iter().any(|v| v == "Origin"), "{vary:?}");

    let r = call(&mut svc, pre("https://a.b.example.org", "GET", "")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for (origin, method, hdrs) in [
        ("https://evil.example", "GET", ""),
        ("https://app.example.com", "DELETE", ""),
        ("https://app.example.com", "GET", "x-secret"),
    ] {
        let r = call(&mut svc, pre(origin, method, hdrs)).await;
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "{origin} {method} {hdrs}"
        );
        assert!(r.headers().get("access-control-allow-origin").is_none());
    }
}

#[tokio::test]
async fn cors_actual_requests_and_vary() {
    let api = route("api", Some(cors_policy(false)));
    let mut svc = CorsLayer::new(None, EventSink::disabled()).layer(inner());
    let r = call(
        &mut svc,
        req(
            "GET",
            "/",
            "192.0.2.1",
            &api,
            &[("origin", "https://app.example.com")],
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(header(&r, "access-control-expose-headers"), Some("X-Total"));
    assert!(
        r.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    assert_eq!(header(&r, "vary"), Some("Origin"));
    // Disallowed origin: no CORS headers, but still Vary so caches keep them apart.
    let r = call(
        &mut svc,
        req(
            "GET",
            "/",
            "192.0.2.1",
            &api,
            &[("origin", "https://evil.example")],
        ),
    )
    .await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_eq!(header(&r, "vary"), Some("Origin"));
    // No Origin at all: Vary too.
    let r = call(&mut svc, req("GET", "/", "192.0.2.1", &api, &[])).await;
    assert_eq!(header(&r, "vary"), Some("Origin"));

    // `*` without credentials: a constant `*`, no Vary needed.
    let any = CorsPolicy::new(&CorsSettings {
        origins: vec!["*".into()],
        ..Default::default()
    })
    .unwrap();
    let open = route("open", Some(any));
    let r = call(
        &mut svc,
        req(
            "GET",
            "/",
            "192.0.2.1",
            &open,
            &[("origin", "https://x.test")],
        ),
    )
    .await;
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    assert!(r.headers().get("vary").is_none());
}

// ---------------------------------------------------------------- security headers

fn with_conn(
    mut r: http::Request<rampart_core::Body>,
    tls: bool,
) -> http::Request<rampart_core::Body> {
    r.extensions_mut().insert(ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        local: "127.0.0.1:2".parse().unwrap(),
        tls,
    });
    r
}

#[tokio::test]
async fn security_headers_defaults() {
    let plain = route::<()>("r", None);
    let mut svc = SecurityHeadersLayer::new(Arc::default()).layer(inner());
    let r = call(
        &mut svc,
        with_conn(req("GET", "/", "192.0.2.1", &plain, &[]), true),
    )
    .await;
    assert_eq!(
        header(&r, "strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&r, "x-frame-options"), Some("DENY"));
    assert_eq!(
        header(&r, "referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert!(header(&r, "permissions-policy").is_some());
    assert_eq!(
        header(&r, "cross-origin-opener-policy"),
        Some("same-origin")
    );
    assert!(header(&r, "content-security-policy").is_none());
    assert!(header(&r, "server").is_none());
    // No HSTS on plain-text listeners.
    let r = call(
        &mut svc,
        with_conn(req("GET", "/", "192.0.2.1", &plain, &[]), false),
    )
    .await;
    assert!(header(&r, "strict-transport-security").is_none());
}

#[tokio::test]
async fn security_headers_upstream_kept_unless_override() {
    let upstream = tower::service_fn(|_req: http::Request<rampart_core::Body>| async {
        let mut resp = http::Response::new(body::empty());
        resp.headers_mut()
            .insert("x-frame-options", "SAMEORIGIN".parse().unwrap());
        resp.headers_mut()
            .insert("x-powered-by", "php".parse().unwrap());
        Ok::<_, rampart_core::BoxError>(resp)
    });
    let strict = SecurityHeadersPolicy::from_settings(&SecurityHeadersSettings {
        csp: Some("strict".into()),
        override_upstream: true,
        ..Default::default()
    })
    .unwrap();
    let plain = route::<()>("r", None);
    let strict_route = route("s", Some(strict));
    let mut svc = SecurityHeadersLayer::new(Arc::default()).layer(upstream);
    let r = call(&mut svc, req("GET", "/", "192.0.2.1", &plain, &[])).await;
    assert_eq!(header(&r, "x-frame-options"), Some("SAMEORIGIN"));
    assert!(header(&r, "x-powered-by").is_none());
    let r = call(&mut svc, req("GET", "/", "192.0.2.1", &strict_route, &[])).await;
    assert_eq!(header(&r, "x-frame-options"), Some("DENY"));
    assert!(
        header(&r, "content-security-policy")
            .unwrap()
            .starts_with("default-src 'self'")
    );
}

// ---------------------------------------------------------------- hygiene

#[tokio::test]
async fn hygiene_methods_query_headers() {
    let policy = HygienePolicy {
        methods: Some(HashSet::from([Method::GET, Method::POST])),
        max_query_params: Some(2),
        deny_headers: vec![HeaderName::from_static("x-debug")],
        require_headers: vec![],
        strip_headers: vec![HeaderName::from_static("x-user-id")],
        allow_headers: None,
        max_body: Some(10),
        body_read_timeout: None,
    };
    let r = route("r", Some(policy));
    let mut svc = HygieneLayer::new(None, EventSink::disabled()).layer(inner());
    let resp = call(&mut svc, req("DELETE", "/", "192.0.2.1", &r, &[])).await;
    assert_eq!(resp.status(), 405);
    assert_eq!(header(&resp, "allow"), Some("GET, HEAD, POST"));
    assert_eq!(
        call(&mut svc, req("HEAD", "/", "192.0.2.1", &r, &[]))
            .await
            .status(),
        200
    );
    assert_eq!(
        call(&mut svc, req("GET", "/?a=1&b=2", "192.0.2.1", &r, &[]))
            .await
            .status(),
        200
    );
    assert_eq!(
        call(&mut svc, req("GET", "/?a=1&b=2&c", "192.0.2.1", &r, &[]))
            .await
            .status(),
        400
    );
    assert_eq!(
        call(
            &mut svc,
            req("GET", "/", "192.0.2.1", &r, &[("x-debug", "1")])
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        call(
            &mut svc,
            req("POST", "/", "192.0.2.1", &r, &[("content-length", "11")])
        )
        .await
        .status(),
        413
    );
    let resp = call(
        &mut svc,
        req("GET", "/", "192.0.2.1", &r, &[("x-user-id", "admin")]),
    )
    .await;
    assert!(header(&resp, "x-seen-x-user-id").is_none(), "stripped");

    // Allow list: everything else is removed.
    let only = route(
        "only",
        Some(HygienePolicy {
            allow_headers: Some(HashSet::from([HeaderName::from_static("x-user-name")])),
            ..Default::default()
        }),
    );
    let resp = call(
        &mut svc,
        req(
            "GET",
            "/",
            "192.0.2.1",
            &only,
            &[("x-user-name", "a"), ("x-user-role", "b")],
        ),
    )
    .await;
    assert_eq!(header(&resp, "x-seen-x-user-name"), Some("a"));
    assert!(header(&resp, "x-seen-x-user-role").is_none());
}

#[tokio::test(start_paused = true)]
async fn hygiene_slow_body_times_out_and_big_body_is_cut() {
    use tower::{Service, ServiceExt};
    let policy = HygienePolicy {
        max_body: Some(8),
        body_read_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let r = route("r", Some(policy));
    // Inner service that reads the whole body and reports the error kind.
    let reader = tower::service_fn(|req: http::Request<rampart_core::Body>| async move {
        req.into_body().collect().await?;
        Ok::<_, rampart_core::BoxError>(http::Response::new(body::empty()))
    });
    let mut svc = HygieneLayer::new(None, EventSink::disabled()).layer(reader);

    // A body that sends 3 bytes then stalls forever.
    let (tx, body_rx) = tokio::sync::mpsc::channel::<
        Result<http_body::Frame<bytes::Bytes>, rampart_core::BoxError>,
    >(4);
    let stream = http_body_util::StreamBody::new(tokio_stream_from(body_rx));
    let mut request = req("POST", "/", "192.0.2.1", &r, &[]);
    *request.body_mut() = rampart_core::body::boxed(stream);
    tx.send(Ok(http_body::Frame::data(bytes::Bytes::from_static(
        b"abc",
    ))))
    .await
    .unwrap();
    let fut = svc.ready().await.unwrap().call(request);
    let err = fut.await.unwrap_err();
    let (kind, _) = rampart_core::rescue::classify(err.as_ref());
    assert_eq!(kind.status(), 408);

    let mut big = req("POST", "/", "192.0.2.1", &r, &[]);
    *big.body_mut() = body::full("0123456789");
    let err = svc.ready().await.unwrap().call(big).await.unwrap_err();
    assert_eq!(rampart_core::rescue::classify(err.as_ref()).0.status(), 413);
}

/// Adapt an mpsc receiver into a `Stream` without pulling in tokio-stream.
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

// ---------------------------------------------------------------- waf blocks and layer order

/// A stand-in for the WAF crate's typed block error.
#[derive(Debug, thiserror::Error)]
#[error("waf blocked")]
struct WafBlocked;

#[tokio::test(start_paused = true)]
async fn waf_blocks_feed_ban_rules_through_the_classifier() {
    let bans = Arc::new(BanList::new(
        BanSettings {
            rules: vec![BanRule {
                name: "waf_repeat".into(),
                trigger: "waf_block".parse().unwrap(),
                route: None,
                threshold: 3,
                window: Duration::from_secs(60),
                ban: Duration::from_secs(600),
            }],
            ..Default::default()
        },
        None,
        EventSink::disabled(),
    ));
    // The "WAF": blocks requests carrying `x-attack`, as a typed error wrapped in a 403.
    let waf = tower::service_fn(|req: http::Request<rampart_core::Body>| async move {
        if req.headers().contains_key("x-attack") {
            let err = rampart_core::Error::new(rampart_core::ErrorKind::Forbidden {
                reference: "waf-1".into(),
            })
            .with_source(WafBlocked);
            return Err(Box::new(err) as rampart_core::BoxError);
        }
        Ok(http::Response::new(body::empty()))
    });
    let classifier: rampart_guard::ipfilter::WafClassifier =
        Arc::new(rampart_core::error::is_caused_by::<WafBlocked>);
    let mut svc = IpFilterLayer::new(Arc::default(), bans.clone(), EventSink::disabled())
        .waf_classifier(classifier)
        .layer(waf);
    let r = route::<()>("r", None);
    for _ in 0..3 {
        let resp = call(
            &mut svc,
            req("GET", "/", "192.0.2.66", &r, &[("x-attack", "1")]),
        )
        .await;
        assert_eq!(resp.status(), 403);
    }
    // Now banned even for a clean request.
    assert_eq!(
        call(&mut svc, req("GET", "/", "192.0.2.66", &r, &[]))
            .await
            .status(),
        403
    );
    assert_eq!(bans.list()[0].rule.as_deref(), Some("waf_repeat"));
    // Other clients are unaffected.
    assert_eq!(
        call(&mut svc, req("GET", "/", "192.0.2.67", &r, &[]))
            .await
            .status(),
        200
    );
}

#[tokio::test(start_paused = true)]
async fn preflight_is_answered_before_rate_limits_and_auth() {
    // Stack order 9 (cors) > 10 (rate limit) > 12 (auth): preflights never consume quota and
    // never need credentials.
    let limit = RateLimit::new(
        "api",
        "per_ip",
        Gcra::new(nz(1), Duration::from_secs(60), nz(1)),
        KeySource::Ip,
    )
    .unwrap();
    let mut policy = rampart_core::RoutePolicy::new(rampart_core::RouteId(0), "api", None);
    policy.extensions.insert(cors_policy(true));
    policy.extensions.insert(RateLimitPolicy::new(vec![limit]));
    policy.extensions.insert(rampart_guard::AuthPolicy {
        api_key: Some(rampart_guard::auth::apikey::ApiKeyLookup {
            keys: Arc::new(
                rampart_guard::auth::apikey::ApiKeySet::new().with_plain("k", b"secret"),
            ),
            source: rampart_guard::auth::apikey::ApiKeySource::Header(HeaderName::from_static(
                "x-api-key",
            )),
        }),
        ..Default::default()
    });
    let api = Arc::new(policy);
    let stack = CorsLayer::new(None, EventSink::disabled()).layer(
        RateLimitLayer::new(Arc::new(MemoryStore::new(100)), None, EventSink::disabled())
            .layer(rampart_guard::AuthLayer::default().layer(inner())),
    );
    let mut svc = stack;
    for _ in 0..5 {
        let r = call(
            &mut svc,
            req(
                "OPTIONS",
                "/",
                "192.0.2.1",
                &api,
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "POST"),
                ],
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    // The real request still has its full quota, and needs the key.
    let ok = call(
        &mut svc,
        req(
            "POST",
            "/",
            "192.0.2.1",
            &api,
            &[
                ("x-api-key", "secret"),
                ("origin", "https://app.example.com"),
            ],
        ),
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        header(&ok, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let limited = call(
        &mut svc,
        req("POST", "/", "192.0.2.1", &api, &[("x-api-key", "secret")]),
    )
    .await;
    assert_eq!(limited.status(), 429);
}
