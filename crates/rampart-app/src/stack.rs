//! The request path, composed in exactly one place (ARCHITECTURE.md §3).
//!
//! Outermost first. Each layer's comment says why it sits where it does; moving one needs a
//! test that fails under the old order (see `tests/e2e.rs`, `layer_order_*`).

use rampart_cache::CacheLayer;
use rampart_core::{BoxError, Request, Response};
use rampart_guard::{
    AuthLayer, CorsLayer, HygieneLayer, IpFilterLayer, RateLimitLayer, SecurityHeadersLayer,
};
use rampart_static::{MinifyLayer, StaticLayer};
use rampart_upstream::DispatchService;
use tower::{ServiceBuilder, util::BoxCloneSyncService};

use crate::layers::{
    MwLayer,
    client_ip::ClientIpMw,
    load_shed::LoadShedMw,
    observe::ObserveMw,
    request_id::RequestIdMw,
    rescue::RescueMw,
    route::RouteMw,
    sanitize::SanitizeMw,
    server_timing::{OriginTimingMw, ServerTimingMw},
};

/// The type-erased stack of one config generation.
pub type GatewayService = BoxCloneSyncService<Request, Response, BoxError>;

/// Everything the stack is built from (compiled by [`crate::build`]).
pub struct StackParts {
    /// Layer 2.
    pub client_ip: ClientIpMw,
    /// Layer 3.
    pub route: RouteMw,
    /// Layer 4.
    pub observe: ObserveMw,
    /// Layer 5.
    pub rescue: RescueMw,
    /// Layer 6.
    pub load_shed: LoadShedMw,
    /// Layer 7.
    pub sanitize: SanitizeMw,
    /// Layer 7b (per-route hygiene; routes without a `HygienePolicy` pass through; absent
    /// when no route has one).
    pub hygiene: Option<HygieneLayer>,
    /// Layer 8.
    pub ip_filter: IpFilterLayer,
    /// Layer 9 (absent when no route has a `CorsPolicy`).
    pub cors: Option<CorsLayer>,
    /// Layer 10 (absent when no route has a `RateLimitPolicy`).
    pub rate_limit: Option<RateLimitLayer>,
    /// Layer 11 (routes without a `WafPolicy` pass through).
    pub waf: rampart_waf::WafLayer,
    /// Layer 12 (routes without an `AuthPolicy` pass through; absent when no route has one).
    pub auth: Option<AuthLayer>,
    /// Layer 13 (absent when `[security_headers].enabled = false`).
    pub security_headers: Option<SecurityHeadersLayer>,
    /// Layer 13, `Server-Timing` (absent unless a route sets `server_timing = true`).
    pub server_timing: bool,
    /// Layer 13b (routes whose policy disables compression still get preconditions and
    /// ranges on cached answers).
    pub compress: rampart_compress::CompressLayer,
    /// Layer 14 (absent when `[cache].enabled = false`).
    pub cache: Option<CacheLayer>,
    /// Layer 14b, minification (absent unless a route sets `minify`).
    pub minify: Option<MinifyLayer>,
    /// Layer 15a, static files (absent unless a route sets `static`).
    pub static_files: Option<StaticLayer>,
    /// Layer 15.
    pub dispatch: DispatchService,
}

/// Compose the layers.
pub fn build_stack(p: StackParts) -> GatewayService {
    let svc = ServiceBuilder::new()
        // 1. Request id + trace span: outermost, so every log line and every response, error
        //    responses included, carries the id.
        .layer(MwLayer(RequestIdMw))
        // 2. Client IP: before anything that logs or decides per client; trusted-proxy walk.
        .layer(MwLayer(p.client_ip))
        // 3. Route: every layer below reads its per-route policy from the extensions.
        //    A request that matches nothing goes on without one (404 from dispatch).
        .layer(MwLayer(p.route))
        // 4. Metrics + access log: outside the rescue, so every final status is counted,
        //    including errors turned into responses below.
        .layer(MwLayer(p.observe))
        // 5. Rescue: the one place typed errors become HTTP responses; above it nothing fails.
        .layer(MwLayer(p.rescue))
        // 6. Load shed + request deadline: overload is answered 503 at once, before any
        //    per-request work; the deadline covers everything below.
        .layer(MwLayer(p.load_shed))
        // 7. Sanitize + limits: hop-by-hop strip, framing checks, URI/header/body caps, so
        //    no feature below ever sees a malformed or oversized request.
        .layer(MwLayer(p.sanitize))
        // 7b. Route hygiene: allowed methods (405 + Allow), query-parameter count, header
        //     deny/require/strip/allow rules, slow-body read timeout (408). With the limits:
        //     a malformed request for this route is refused before any client-specific work.
        .option_layer(p.hygiene)
        // 8. IP lists + bans: the cheapest rejection first; also counts statuses, WAF blocks
        //    and rate-limit refusals for the automatic ban rules.
        .layer(p.ip_filter)
        // 9. CORS: preflights are answered before rate limits and auth (a preflight carries
        //    no credentials and must not use quota).
        .option_layer(p.cors)
        // 10. Rate limit: before the WAF, so floods do not burn regex CPU.
        .option_layer(p.rate_limit)
        // 11. WAF: after the cheap refusals, before the cache, so a blocked request is never
        //     served from it.
        .layer(p.waf)
        // 12. Auth: JWT / API key / CSRF. After CORS (preflights carry no credentials),
        //     rate limits (floods of bad tokens cost no signature checks) and the WAF; before
        //     the cache, so a cached answer is never served to an unauthenticated caller.
        //     Strips incoming copies of forwarded-claim headers, then adds verified ones.
        .option_layer(p.auth)
        // 13. Response security headers: on every answer from below, hits included.
        .option_layer(p.security_headers)
        //     Server-Timing (same layer, response side): below the WAF, whose time it reports
        //     from the request extensions, above the cache, whose outcome (and the origin's
        //     time, on a miss) it reads from the response extensions.
        .option_layer(p.server_timing.then_some(MwLayer(ServerTimingMw)))
        // 13b. Representation: encoding negotiation, ETag weakening, preconditions (304/412)
        //      and Range (206/416) on cached answers, streaming compression of the others.
        //      Directly above the cache so a hit is served from the variants stored with the
        //      entry (made once, off the request path: a hit never compresses) and so that
        //      ranges and validators apply to the encoding actually sent; below the security
        //      headers so its 304/206/412 answers still get them.
        .layer(p.compress)
        // 14. Cache: a hit returns here, below every protection layer (a blocked request
        //     is never served from it) and above dispatch; misses are coalesced.
        .option_layer(p.cache)
        // 14b. Minification: below the cache, so it runs once per miss and the cache stores
        //      the minified body (a hit never minifies); above the origin, static or not.
        .option_layer(p.minify)
        //      Origin timing for Server-Timing: just above the origin, so it measures only it.
        .option_layer(p.server_timing.then_some(MwLayer(OriginTimingMw)))
        // 15a. Static files: a route with `static` is answered from its directory here, just
        //      like an upstream would answer (the cache and compression above treat it as one).
        .option_layer(p.static_files)
        // 15. Dispatch: route -> upstream pool -> pooled connection.
        .service(p.dispatch);
    BoxCloneSyncService::new(svc)
}
