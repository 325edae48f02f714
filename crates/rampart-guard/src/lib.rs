//! Traffic protection for the Rampart gateway: IP allow/deny lists, automatic and manual bans,
//! GCRA rate limits, request hygiene, response security headers, CORS, and authentication at
//! the edge (JWT, API keys, CSRF), with security events for the audit log and Prometheus
//! metrics.
//!
//! # Where it sits (ARCHITECTURE.md §3)
//!
//! | layer | type | answers |
//! |---|---|---|
//! | 7 (with limits) | [`HygieneLayer`] | 405 + `Allow`, 400, 413, 408 |
//! | 8 ip filter + bans | [`IpFilterLayer`] | 403 (ban status configurable); feeds [`BanList`] rules on the way out |
//! | 9 cors | [`CorsLayer`] | preflight 204 / 403, CORS response headers |
//! | 10 rate limit | [`RateLimitLayer`] | 429 + `Retry-After` + `RateLimit-Policy` / `RateLimit` |
//! | 12 auth | [`AuthLayer`] | 401 + `WWW-Authenticate`, 403 (roles, CSRF) |
//! | 13 response headers | [`SecurityHeadersLayer`] | security headers on the way out |
//!
//! Every layer reads its per-route policy from the request's `Arc<RoutePolicy>`
//! (`policy.get::<CorsPolicy>()`, ...), falls back to a global default given at construction,
//! and reads the client address from [`rampart_core::ClientIp`]. Refusals are typed
//! [`rampart_core::Error`]s; the rescue layer (5) turns them into responses.
//!
//! # Config it takes
//!
//! Typed, already-validated values (`Duration`, `IpNet`, compiled regexes, `Gcra`), built by
//! `rampart-config` from the keys documented in `docs/guard.md`: `[ip_lists]`, `[bans]`,
//! `[security_headers]`, and per route `[routes.ip_lists]`, `[[routes.rate_limits]]`,
//! `[routes.hygiene]`, `[routes.cors]`, `[routes.auth]`, `[routes.security_headers]`.
//!
//! # Long-lived state
//!
//! [`MemoryStore`] (rate-limit buckets), [`BanList`] and [`auth::jwks::JwksCache`] outlive a
//! config: create them once and hand them to each new stack on reload.

pub mod auth;
pub mod bans;
pub mod cors;
pub mod events;
pub mod future;
pub mod gcra;
pub mod headers;
pub mod hygiene;
pub mod ipfilter;
pub mod ipset;
pub mod metrics;
pub mod ratelimit;

pub use auth::{AuthLayer, AuthPolicy, Identity, JwtRule, TokenSource};
pub use bans::{BanInfo, BanList, BanRule, BanSettings, BanTrigger};
pub use cors::{CorsLayer, CorsPolicy, CorsSettings, OriginMatcher};
pub use events::{EventSink, SecurityEvent, SecurityEventKind};
pub use gcra::{Gcra, GcraDecision};
pub use headers::{SecurityHeadersLayer, SecurityHeadersPolicy, SecurityHeadersSettings};
pub use hygiene::{HygieneLayer, HygienePolicy};
pub use ipfilter::{IpFilterLayer, IpFilterPolicy};
pub use ipset::{IpAccessList, IpSet};
pub use metrics::GuardMetrics;
pub use ratelimit::{
    KeySource, MemoryStore, RateLimit, RateLimitLayer, RateLimitPolicy, RateLimitStore,
};

/// A reference id for a 403: `<prefix>-<request id>` (or a fresh id when the request has none),
/// shown to the client and written to the audit event so support can find the decision.
pub(crate) fn reference<B>(req: &http::Request<B>, prefix: &str) -> String {
    let id = req
        .extensions()
        .get::<rampart_core::RequestId>()
        .cloned()
        .unwrap_or_else(rampart_core::RequestId::generate);
    format!("{prefix}-{id}")
}
