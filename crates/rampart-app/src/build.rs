//! Compile a config into a [`Generation`]: everything but sockets. `rampart check` and
//! `rampart run` both go through [`build`], so they accept and refuse exactly the same configs.

use std::sync::Arc;

use http::{HeaderName, Method};
use rampart_cache::{
    Cache, CacheLayer, CacheMetrics, CachePolicy, CacheSettings, Overrides, QueryKey, TagHeader,
};
use rampart_config::{CacheConfig, Config, ConfigError, ConfigErrors};
use rampart_core::{RouteId, RoutePolicy};
use rampart_guard::{
    AuthLayer, BanSettings, CorsLayer, EventSink, GuardMetrics, HygieneLayer, IpFilterLayer,
    RateLimitLayer, SecurityHeadersLayer,
};
use rampart_http::tls::{CertSource, server_config};
use rampart_telemetry::{AccessLog, Metrics};
use rampart_upstream::{
    DispatchService, Endpoint, EndpointRegistry, PoolSettings, ReadUpstream, TlsSettings, Upstream,
    UpstreamMetrics, Upstreams,
};

use crate::{
    guard::GuardShared,
    layers::{
        client_ip::ClientIpMw, load_shed::LoadShedMw, observe::ObserveMw, rescue::RescueMw,
        route::RouteMw, sanitize::SanitizeMw,
    },
    routes::{RouteSpec, RouteTable},
    stack::{GatewayService, StackParts, build_stack},
};

/// Long-lived state shared by every generation (survives reloads).
pub struct Shared {
    /// Metric registry and core families.
    pub metrics: Arc<Metrics>,
    /// Upstream families.
    pub upstream_metrics: UpstreamMetrics,
    /// Endpoint state (breakers, health, ejections, EWMA) and pools kept across reloads.
    pub endpoints: EndpointRegistry,
    /// Access-log writer.
    pub access_log: AccessLog,
    /// The HTTP cache (its entries survive reloads; `[cache]` settings apply at start).
    pub cache: Option<Cache>,
    /// Rate-limit buckets, bans, security events.
    pub guard: GuardShared,
    /// WAF metric families.
    pub waf_metrics: Arc<rampart_waf::WafMetrics>,
    /// Compression metric families (saved bytes in `/stats`).
    pub compress_metrics: rampart_compress::CompressMetrics,
    /// Minification metric families and totals.
    pub minify_metrics: rampart_static::MinifyMetrics,
}

impl Shared {
    /// Fresh shared state writing access lines to `access_log`, with the cache `[cache]`
    /// asks for.
    pub fn new(access_log: AccessLog, cache: &CacheConfig, events: EventSink) -> Self {
        let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
        let upstream_metrics = metrics.register_with(UpstreamMetrics::register);
        let cache = cache.enabled.then(|| {
            let cache_metrics = metrics.register_with(CacheMetrics::register);
            Cache::new(cache_settings(cache), cache_metrics)
        });
        let guard_metrics = metrics.register_with(GuardMetrics::register);
        metrics
            .register_with(|r| GuardMetrics::register_audit_dropped(r, events.dropped_counter()));
        let waf_metrics = metrics.register_with(rampart_waf::WafMetrics::register);
        let compress_metrics = metrics.register_with(rampart_compress::CompressMetrics::register);
        let minify_metrics = metrics.register_with(rampart_static::MinifyMetrics::register);
        // Ban rules are (re)applied by every build; start empty.
        let guard = GuardShared::new(events, guard_metrics, BanSettings::default());
        Self {
            metrics,
            upstream_metrics,
            endpoints: EndpointRegistry::new(),
            access_log,
            cache,
            guard,
            waf_metrics,
            compress_metrics,
            minify_metrics,
        }
    }
}

/// `[cache]` as the cache crate's settings. Names were checked by validation; a name that
/// still does not parse is left out rather than failing the start.
fn cache_settings(c: &CacheConfig) -> CacheSettings {
    let header = |n: &str| HeaderName::from_bytes(n.as_bytes()).ok();
    CacheSettings {
        max_size: c.max_size.bytes(),
        max_object_size: c.max_object_size.bytes(),
        hit_for_pass_ttl: c.hit_for_pass_ttl,
        coalesce_wait: c.coalesce_wait,
        coalesce_max_waiters: c.coalesce_max_waiters,
        targeted_field: header(&c.targeted_field),
        forward_targeted: c.forward_targeted,
        tag_headers: c
            .tag_headers
            .iter()
            .filter_map(|t| {
                Some(TagHeader {
                    name: header(&t.name)?,
                    separator: t.separator.parse().ok()?,
                })
            })
            .collect(),
        heuristic_max: c.heuristic_max,
        keep_for_revalidation: c.keep_for_revalidation,
        soft_purge_stale: c.soft_purge_stale,
        max_variants: c.max_variants,
        purge_allow: c.purge_allow.clone(),
    }
}

fn cache_policy(r: &rampart_config::RouteCacheConfig) -> Result<CachePolicy, String> {
    let mut p = CachePolicy {
        enabled: r.enabled,
        default_ttl: r.default_ttl,
        ttl_max: r.ttl_max,
        stale_while_revalidate: r.stale_while_revalidate,
        stale_if_error: r.stale_if_error,
        deception_guard: r.deception_guard,
        overrides: Overrides {
            ignore_no_cache: r.ignore_no_cache,
            ignore_no_store: r.ignore_no_store,
            ignore_private: r.ignore_private,
            ignore_request_no_cache: r.ignore_request_no_cache,
        },
        ..CachePolicy::default()
    };
    p.set_cookie = r
        .set_cookie
        .parse()
        .map_err(|e: rampart_cache::config::ParseConfigError| e.to_string())?;
    let params = || {
        r.query_params
            .iter()
            .map(|n| Arc::from(n.as_str()))
            .collect()
    };
    p.key.query = match r.query.as_str() {
        "allow" => QueryKey::Allow(params()),
        "deny" => QueryKey::Deny(params()),
        mode => QueryKey::from_mode(mode).map_err(|e| e.to_string())?,
    };
    p.key.scheme = r.key_scheme;
    p.key.host = r.key_host;
    p.key.headers = r
        .key_headers
        .iter()
        .map(|h| HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("invalid header {h:?}")))
        .collect::<Result<_, _>>()?;
    p.key.cookies = r
        .key_cookies
        .iter()
        .map(|c| Arc::from(c.as_str()))
        .collect();
    Ok(p)
}

/// An access log that writes nothing (for `check` and tests).
pub fn access_log_off() -> AccessLog {
    AccessLog::off()
}

/// An event sink that drops everything (for `check`).
pub fn events_off() -> EventSink {
    EventSink::disabled()
}

/// One compiled config: the stack and what it was built from.
pub struct Generation {
    /// The request path.
    pub service: GatewayService,
    /// The config it came from.
    pub config: Arc<Config>,
    /// Upstream pools.
    pub upstreams: Upstreams,
    /// TLS server config for the TLS listeners, if any.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Compile `config`. Every problem is reported, with its key path.
pub fn build(config: &Config, shared: &Shared) -> Result<Generation, ConfigErrors> {
    let mut errors = Vec::new();
    let s = &config.server;

    // Upstreams.
    let mut upstreams = Vec::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        let mut endpoints = Vec::new();
        for (j, e) in u.endpoints.iter().enumerate() {
            match Endpoint::parse(e) {
                Ok(ep) => endpoints.push(ep),
                Err(m) => errors.push(ConfigError::new(
                    format!("upstreams[{i}].endpoints[{j}]"),
                    m,
                )),
            }
        }
        let any_https = u.endpoints.iter().any(|e| e.starts_with("https://"));
        let tls = if any_https {
            match TlsSettings::new(u.ca_file.as_deref(), u.tls_server_name.clone(), u.http2) {
                Ok(t) => Some(t),
                Err(m) => {
                    errors.push(ConfigError::new(format!("upstreams[{i}].ca_file"), m));
                    None
                }
            }
        } else {
            None
        };
        let settings = PoolSettings {
            connect_timeout: u.connect_timeout,
            response_timeout: u.response_timeout,
            max_idle_per_endpoint: u.max_idle_per_endpoint,
            idle_timeout: u.idle_timeout,
            max_lifetime: u.max_lifetime,
            tcp_keepalive: (!u.tcp_keepalive.is_zero()).then_some(u.tcp_keepalive),
            http2: u.http2,
            max_connections: u.max_connections_per_endpoint,
            pool_wait: u.pool_wait,
        };
        let resilience = crate::resilience::settings(i, u, &mut errors);
        upstreams.push(Upstream::build(
            &u.name,
            endpoints,
            settings,
            tls,
            resilience,
            &shared.upstream_metrics,
            &shared.endpoints,
        ));
    }

    // The WAF engine of this generation (rules are re-read on reload).
    let waf = crate::guard::waf_engine(&config.waf, &mut errors);

    // JWT verifiers and API keys, referenced by routes.
    let auth = crate::auth::auth_sets(&config.auth, &shared.guard.jwks, &mut errors);

    // Routes.
    let mut specs = Vec::new();
    for (i, r) in config.routes.iter().enumerate() {
        // A static route has no upstream (validation refuses both).
        let upstream = r.static_dir.is_none().then(|| r.upstream.as_str().into());
        let mut policy = RoutePolicy::new(RouteId(i as u32), r.name.as_str(), upstream);
        policy.max_request_body = r.max_request_body.unwrap_or(s.max_request_body).bytes();
        if let Some(read) = &r.read_upstream {
            policy.extensions.insert(ReadUpstream(read.as_str().into()));
        }
        policy.extensions.insert(shared.metrics.route(&r.name));
        crate::guard::route_policies(i, r, &shared.guard, &auth, &mut policy, &mut errors);
        crate::statics::route_policies(i, r, config, &mut policy, &mut errors);
        if let Some(engine) = &waf
            && r.waf.enabled
        {
            policy.extensions.insert(crate::guard::waf_policy(
                engine,
                &config.waf,
                i,
                &r.waf,
                &mut errors,
            ));
        }
        policy
            .extensions
            .insert(crate::compress::route_policy(&config.compression, r));
        if shared.cache.is_some() && r.cache.enabled {
            match cache_policy(&r.cache) {
                Ok(mut p) => {
                    p.generate_etag = crate::compress::generate_etag(&config.compression, r);
                    policy.extensions.insert(p);
                }
                Err(m) => errors.push(ConfigError::new(format!("routes[{i}].cache"), m)),
            }
        }
        let mut methods = Vec::new();
        for (j, m) in r.methods.iter().enumerate() {
            match Method::from_bytes(m.as_bytes()) {
                Ok(m) => methods.push(m),
                Err(e) => errors.push(ConfigError::new(
                    format!("routes[{i}].methods[{j}]"),
                    e.to_string(),
                )),
            }
        }
        specs.push(RouteSpec {
            host: r.host.clone(),
            prefix: r.path.clone(),
            methods,
            policy: Arc::new(policy),
        });
    }

    // TLS listeners.
    let tls = match &s.tls {
        Some(t) if !t.certificates.is_empty() => {
            let sources: Vec<_> = t
                .certificates
                .iter()
                .map(|c| CertSource {
                    cert: &c.cert,
                    key: &c.key,
                    server_names: &c.server_names,
                })
                .collect();
            match server_config(&sources, s.http2) {
                Ok(c) => Some(c),
                Err(e) => {
                    errors.push(ConfigError::new("server.tls.certificates", e.to_string()));
                    None
                }
            }
        }
        _ => None,
    };

    let bans = crate::guard::ban_settings(&config.bans, &mut errors);
    let headers = crate::guard::headers_policy(&config.security_headers, &mut errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    // Only a config that builds completely changes the shared ban rules and drops the JWKS
    // caches it no longer uses.
    shared.guard.bans.set_settings(bans);
    shared.guard.jwks.retain(config);
    let g = &shared.guard;
    let upstreams = Upstreams::new(upstreams);
    let needs = crate::statics::Needs::of(config);
    // A per-route layer no route uses is left out of the stack: it would only look up an
    // absent policy on every request. (A reload builds a new stack, so this follows config.)
    let any_route = |has: fn(&RoutePolicy) -> bool| specs.iter().any(|s| has(&s.policy));
    let (any_hygiene, any_cors, any_auth, any_rate_limit) = (
        any_route(|p| p.get::<rampart_guard::HygienePolicy>().is_some()),
        any_route(|p| p.get::<rampart_guard::CorsPolicy>().is_some()),
        any_route(|p| p.get::<rampart_guard::AuthPolicy>().is_some()),
        any_route(|p| {
            p.get::<rampart_guard::ratelimit::RateLimitPolicy>()
                .is_some()
        }),
    );
    let service = build_stack(StackParts {
        client_ip: ClientIpMw::new(config.trusted_proxies.cidrs.clone()),
        route: RouteMw::new(Arc::new(RouteTable::new(specs))),
        observe: ObserveMw::new(&shared.metrics, shared.access_log.clone()),
        rescue: RescueMw::new(headers.clone()),
        load_shed: LoadShedMw::new(s.max_concurrent_requests, s.request_timeout),
        sanitize: SanitizeMw::new(
            s.max_uri_length.as_usize(),
            s.max_headers,
            s.max_header_bytes.as_usize(),
            s.max_request_body.bytes(),
        ),
        ip_filter: IpFilterLayer::new(
            Arc::new(crate::guard::access_list(&config.ip_lists)),
            g.bans.clone(),
            g.events.clone(),
        )
        .waf_classifier(Arc::new(|e| {
            // Layers 9-12 refuse with 429/401/403; a 403 from below the ban layer is a WAF
            // block unless its reference id comes from auth (`forbidden-…`, `csrf-…`).
            match rampart_core::rescue::classify(e).0 {
                rampart_core::ErrorKind::Forbidden { reference } => {
                    !(reference.starts_with("forbidden-") || reference.starts_with("csrf-"))
                }
                _ => false,
            }
        })),
        waf: rampart_waf::WafLayer::new()
            .with_metrics(shared.waf_metrics.clone())
            .with_sink(Arc::new(crate::guard::WafAudit(g.events.clone()))),
        hygiene: any_hygiene.then(|| HygieneLayer::new(None, g.events.clone())),
        cors: any_cors.then(|| CorsLayer::new(None, g.events.clone())),
        auth: any_auth.then(|| AuthLayer::new(g.events.clone(), Some(g.metrics.clone()))),
        rate_limit: any_rate_limit
            .then(|| RateLimitLayer::new(g.store.clone(), None, g.events.clone())),
        security_headers: headers.map(SecurityHeadersLayer::new),
        compress: rampart_compress::CompressLayer::new(shared.compress_metrics.clone()),
        cache: shared.cache.clone().map(CacheLayer::new),
        server_timing: needs.server_timing,
        minify: needs
            .minify
            .then(|| rampart_static::MinifyLayer::new(shared.minify_metrics.clone())),
        static_files: needs.static_files.then(rampart_static::StaticLayer::new),
        dispatch: DispatchService::new(
            upstreams.clone(),
            s.via.clone(),
            config.trusted_proxies.cidrs.clone(),
        ),
    });
    Ok(Generation {
        service,
        config: Arc::new(config.clone()),
        upstreams,
        tls,
    })
}
