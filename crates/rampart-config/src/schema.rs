//! The configuration schema. Every key is documented here and in `examples/rampart.toml`
//! with its default. All tables refuse unknown keys.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{
    auth::{AuthConfig, RouteAuthConfig},
    compress::{CompressionConfig, RouteCompressionConfig},
    guard::{
        AuditConfig, BansConfig, CorsConfig, IpListsConfig, RateLimitConfig, RouteWafConfig,
        SecurityHeadersConfig, WafConfig,
    },
    hygiene::RouteHygieneConfig,
    statics::StaticOptionsConfig,
    types::{ByteSize, Secret, duration},
    upstream::{BalanceStrategy, BreakerConfig, HealthCheckConfig, OutlierConfig, RetryConfig},
};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The data-plane listeners and their limits.
    pub server: ServerConfig,
    /// The admin listener.
    pub admin: AdminConfig,
    /// Upstream pools, referenced by name from routes.
    pub upstreams: Vec<UpstreamConfig>,
    /// Routes, matched on host, path prefix and method.
    pub routes: Vec<RouteConfig>,
    /// Logging.
    pub log: LogConfig,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: TrustedProxiesConfig,
    /// The HTTP cache (global settings; per-route policy in `routes[].cache`).
    pub cache: CacheConfig,
    /// Response security headers (on by default).
    pub security_headers: SecurityHeadersConfig,
    /// Global client IP allow/deny lists.
    pub ip_lists: IpListsConfig,
    /// Automatic bans.
    pub bans: BansConfig,
    /// Security event log.
    pub audit: AuditConfig,
    /// Web application firewall.
    pub waf: WafConfig,
    /// Response compression, generated ETags, request-body decoding.
    pub compression: CompressionConfig,
    /// JWT verifiers and API keys used by `routes[].auth`.
    pub auth: AuthConfig,
}

/// `[cache]`: the shared RFC 9111 cache. On by default: it stores only what origins allow.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Turn the cache on for every route (routes may opt out). Default `true`.
    pub enabled: bool,
    /// Total memory for cached objects, counting headers, keys and bookkeeping. Default `"256MiB"`.
    pub max_size: ByteSize,
    /// Larger responses stream through uncached. Default `"8MiB"`.
    pub max_object_size: ByteSize,
    /// How long an uncacheable answer makes the key skip coalescing. Default `"10s"`.
    #[serde(with = "duration")]
    pub hit_for_pass_ttl: Duration,
    /// How long a coalesced request waits for the leader before going upstream. Default `"5s"`.
    #[serde(with = "duration")]
    pub coalesce_wait: Duration,
    /// How many requests may wait on one coalesced miss; more go upstream at once.
    /// Default `1024`.
    pub coalesce_max_waiters: usize,
    /// Client CIDRs allowed to send `PURGE <url>` on the data listeners. Default: none (the
    /// method is not special).
    pub purge_allow: Vec<IpNet>,
    /// Response headers whose values are cache tags (for purge by tag). Default:
    /// `Surrogate-Key` (space-separated) and `Cache-Tag` (comma-separated).
    pub tag_headers: Vec<TagHeaderConfig>,
    /// The gateway-targeted cache-control field (RFC 9213), obeyed above `CDN-Cache-Control`
    /// and `Cache-Control`; `""` for none. Default `"Rampart-Cache-Control"`.
    pub targeted_field: String,
    /// Forward `CDN-Cache-Control` and the targeted field downstream. Default `false`.
    pub forward_targeted: bool,
    /// Cap on heuristic freshness (10 % of the `Last-Modified` age). Default `"24h"`.
    #[serde(with = "duration")]
    pub heuristic_max: Duration,
    /// How long a stale entry with a validator is kept to be revalidated. Default `"10m"`.
    #[serde(with = "duration")]
    pub keep_for_revalidation: Duration,
    /// Stale window of soft-purged entries that have no `stale-while-revalidate` of their
    /// own. Default `"30s"`.
    #[serde(with = "duration")]
    pub soft_purge_stale: Duration,
    /// At most this many `Vary` variants per URL; the oldest goes. Default `32`.
    pub max_variants: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_size: ByteSize::mib(256),
            max_object_size: ByteSize::mib(8),
            hit_for_pass_ttl: Duration::from_secs(10),
            coalesce_wait: Duration::from_secs(5),
            coalesce_max_waiters: 1024,
            purge_allow: Vec::new(),
            tag_headers: vec![
                TagHeaderConfig {
                    name: "Surrogate-Key".into(),
                    separator: "space".into(),
                },
                TagHeaderConfig {
                    name: "Cache-Tag".into(),
                    separator: "comma".into(),
                },
            ],
            targeted_field: "Rampart-Cache-Control".into(),
            forward_targeted: false,
            heuristic_max: Duration::from_secs(24 * 3600),
            keep_for_revalidation: Duration::from_secs(600),
            soft_purge_stale: Duration::from_secs(30),
            max_variants: 32,
        }
    }
}

/// `[[cache.tag_headers]]`: a response header whose value lists cache tags.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TagHeaderConfig {
    /// The header name, e.g. `"Surrogate-Key"`.
    pub name: String,
    /// How its tags are separated: `"space"` or `"comma"`.
    pub separator: String,
}

/// `[routes.cache]`: the cache policy of one route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteCacheConfig {
    /// Cache this route. Default `true` (when `[cache].enabled`).
    pub enabled: bool,
    /// Query string in the key: `"all"` (as sent), `"sorted"`, `"ignore"`, `"allow"` (only
    /// the parameters in `query_params`, sorted) or `"deny"` (all but those, sorted).
    /// Default `"all"`.
    pub query: String,
    /// Parameter names for `query = "allow"` / `"deny"`. Default `[]`.
    pub query_params: Vec<String>,
    /// Include the scheme in the key. Default `true`.
    pub key_scheme: bool,
    /// Include the host in the key. Default `true`.
    pub key_host: bool,
    /// Request headers whose values are added to the key (e.g. `["Accept-Language"]`).
    /// Default `[]`.
    pub key_headers: Vec<String>,
    /// Cookies whose values are added to the key. Default `[]`.
    pub key_cookies: Vec<String>,
    /// Freshness for responses that carry none (opt-in, off by the RFC). Default: none.
    #[serde(with = "duration::option")]
    pub default_ttl: Option<Duration>,
    /// Cap on any freshness lifetime. Default: none.
    #[serde(with = "duration::option")]
    pub ttl_max: Option<Duration>,
    /// Gateway-side stale-while-revalidate window when the origin gives none. Default: none.
    #[serde(with = "duration::option")]
    pub stale_while_revalidate: Option<Duration>,
    /// Gateway-side stale-if-error window when the origin gives none. Default: none.
    #[serde(with = "duration::option")]
    pub stale_if_error: Option<Duration>,
    /// Responses with `Set-Cookie`: `"pass"` (not stored), `"strip"` (stored without it),
    /// `"store"`. Default `"pass"`.
    pub set_cookie: String,
    /// Store only when `Content-Type` matches the path's extension (cache deception guard).
    /// Default `false`.
    pub deception_guard: bool,
    /// Opt-in: reuse responses marked `no-cache` without revalidating while fresh.
    /// Default `false`.
    pub ignore_no_cache: bool,
    /// Opt-in: store responses marked `no-store`. Default `false`.
    pub ignore_no_store: bool,
    /// Opt-in: store responses marked `private`. Default `false`.
    pub ignore_private: bool,
    /// Opt-in: ignore the request's `no-cache` / `Pragma: no-cache` / `max-age=0` (reload
    /// storms). Default `false`.
    pub ignore_request_no_cache: bool,
}

impl Default for RouteCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            query: "all".into(),
            default_ttl: None,
            ttl_max: None,
            stale_while_revalidate: None,
            stale_if_error: None,
            set_cookie: "pass".into(),
            deception_guard: false,
            query_params: Vec::new(),
            key_scheme: true,
            key_host: true,
            key_headers: Vec::new(),
            key_cookies: Vec::new(),
            ignore_no_cache: false,
            ignore_no_store: false,
            ignore_private: false,
            ignore_request_no_cache: false,
        }
    }
}

/// `[server]`: listeners and limits of the data plane.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Plain-text listen addresses. Default `["0.0.0.0:8080"]`.
    pub listen: Vec<SocketAddr>,
    /// Serve HTTP/2 (h2c prior knowledge on plain listeners, ALPN `h2` on TLS). Default `true`.
    pub http2: bool,
    /// TLS listeners and certificates. Default: none.
    pub tls: Option<TlsConfig>,
    /// Maximum open client connections; excess connections are closed at once. Default 10000.
    pub max_connections: usize,
    /// Maximum requests in flight; excess requests get 503 at once. Default 10000.
    pub max_concurrent_requests: usize,
    /// Time allowed for a client to send a complete request head (slowloris guard). Default `"10s"`.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// Idle keep-alive connections are closed after this long. Default `"60s"`.
    #[serde(with = "duration")]
    pub keepalive_timeout: Duration,
    /// Whole-request deadline, up to the response head; past it the client gets 504. Default `"60s"`.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish. Default `"30s"`.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
    /// Maximum total size of the request head (431 above). Default `"64KiB"`.
    pub max_header_bytes: ByteSize,
    /// Maximum number of request header fields (431 above). Default 100.
    pub max_headers: usize,
    /// Maximum length of the request target (414 above). Default `"8KiB"`.
    pub max_uri_length: ByteSize,
    /// Maximum request body (413 above); routes may override. Default `"10MiB"`.
    pub max_request_body: ByteSize,
    /// Pseudonym used in the `Via` header. Default `"rampart"`.
    pub via: String,
    /// Connection threads (thread per core): each serves its connections, their requests
    /// and the upstream connections they open on one thread. 0 = one per CPU. Default 0.
    pub workers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 8080))],
            http2: true,
            tls: None,
            max_connections: 10_000,
            max_concurrent_requests: 10_000,
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            max_header_bytes: ByteSize::kib(64),
            max_headers: 100,
            max_uri_length: ByteSize::kib(8),
            max_request_body: ByteSize::mib(10),
            via: "rampart".into(),
            workers: 0,
        }
    }
}

/// `[server.tls]`: TLS listeners.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// TLS listen addresses, e.g. `["0.0.0.0:8443"]`. Required when `[server.tls]` is present.
    pub listen: Vec<SocketAddr>,
    /// Certificates; the first is the default, the others are chosen by SNI.
    pub certificates: Vec<CertificateConfig>,
}

/// `[[server.tls.certificates]]`: one certificate chain and key.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM file with the certificate chain, leaf first. Required.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1). Required.
    pub key: PathBuf,
    /// SNI names this certificate answers (`*.example.com` allowed). Default: the names in the
    /// certificate's subjectAltName.
    pub server_names: Vec<String>,
}

/// `[admin]`: the admin listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Run the admin listener. Default `true`.
    pub enabled: bool,
    /// Address. Default `"127.0.0.1:9901"`. A non-loopback address requires `token`.
    pub listen: SocketAddr,
    /// Bearer token for mutating endpoints. Default: generated at start and written to
    /// `token_file`.
    pub token: Option<Secret>,
    /// Where a generated token is written (mode 0600). Default
    /// `$XDG_RUNTIME_DIR/rampart/admin.token`, else `$HOME/.rampart/admin.token`.
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
            token: None,
            token_file: None,
        }
    }
}

/// `[[upstreams]]`: a named pool of endpoints and its connection-pool settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Name routes refer to. Required, unique.
    pub name: String,
    /// Endpoint base URLs, `http://host:port` or `https://host:port`. Required, at least one.
    pub endpoints: Vec<String>,
    /// TCP (and TLS) connect timeout; on expiry the client gets 504. Default `"2s"`.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Time to wait for the upstream's response head (504 after). Default `"30s"`.
    #[serde(with = "duration")]
    pub response_timeout: Duration,
    /// Idle connections kept per endpoint. Default 64.
    pub max_idle_per_endpoint: usize,
    /// Idle pooled connections are closed after this long. Default `"60s"`.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Connections are not reused after this age. Default `"10m"`.
    #[serde(with = "duration")]
    pub max_lifetime: Duration,
    /// TCP keepalive probe interval; `"0s"` turns it off. Default `"30s"`.
    #[serde(with = "duration")]
    pub tcp_keepalive: Duration,
    /// Speak HTTP/2 to the endpoints (ALPN on https, prior knowledge on http). Default `false`.
    pub http2: bool,
    /// PEM bundle of CAs to trust for https endpoints instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// SNI / verification name for https endpoints. Default: the endpoint's host.
    pub tls_server_name: Option<String>,
    /// Endpoint selection: `round_robin`, `weighted_round_robin`, `least_requests`, `ewma`,
    /// `random` or `hash`. Default `"round_robin"`.
    pub balance: BalanceStrategy,
    /// Key of `balance = "hash"`: `client_ip`, `path`, `header:NAME`, `cookie:NAME`.
    /// Default `"client_ip"`.
    pub hash_on: String,
    /// Endpoint weights, in `endpoints` order. Default: all 1.
    pub weights: Vec<u32>,
    /// An endpoint that just became healthy ramps its weight up over this window; `"0s"` is
    /// off. Default `"0s"`.
    #[serde(with = "duration")]
    pub slow_start: Duration,
    /// Upstream used only while this one has no available endpoint. Default: none.
    pub backup: Option<String>,
    /// Requests in flight to this upstream at most; more are answered 503 at once; 0 is no
    /// limit. Default 0.
    pub max_concurrent_requests: usize,
    /// Deadline of the whole request across retries and backoff (504 after); `"0s"` is none
    /// (then `server.request_timeout` applies). Default `"0s"`.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Connections per endpoint kept open and idle ahead of demand. Default 0.
    pub min_idle_per_endpoint: usize,
    /// Connections per endpoint at most (idle + in use); 0 is no limit. Default 0.
    pub max_connections_per_endpoint: usize,
    /// With `max_connections_per_endpoint` reached, wait this long for a free connection
    /// (then 503). Default `"1s"`.
    #[serde(with = "duration")]
    pub pool_wait: Duration,
    /// Active health checks.
    pub health_check: HealthCheckConfig,
    /// Passive outlier ejection.
    pub outlier: OutlierConfig,
    /// Per-endpoint circuit breaker.
    pub breaker: BreakerConfig,
    /// Retries.
    pub retry: RetryConfig,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            endpoints: Vec::new(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(30),
            max_idle_per_endpoint: 64,
            idle_timeout: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(600),
            tcp_keepalive: Duration::from_secs(30),
            http2: false,
            ca_file: None,
            tls_server_name: None,
            balance: BalanceStrategy::default(),
            hash_on: "client_ip".into(),
            weights: Vec::new(),
            slow_start: Duration::ZERO,
            backup: None,
            max_concurrent_requests: 0,
            request_timeout: Duration::ZERO,
            min_idle_per_endpoint: 0,
            max_connections_per_endpoint: 0,
            pool_wait: Duration::from_secs(1),
            health_check: HealthCheckConfig::default(),
            outlier: OutlierConfig::default(),
            breaker: BreakerConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

impl UpstreamConfig {
    /// An upstream with default pool settings.
    pub fn new(name: impl Into<String>, endpoints: Vec<String>) -> Self {
        Self {
            name: name.into(),
            endpoints,
            ..Self::default()
        }
    }
}

/// `[[routes]]`: which requests go where, and with which policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Route name: metric label and log field. Required, unique.
    pub name: String,
    /// Host to match: exact (`api.example.com`) or one wildcard label (`*.example.com`).
    /// Default: any host.
    pub host: Option<String>,
    /// Path prefix, matched on segment boundaries (`/api` matches `/api` and `/api/x`, not
    /// `/apix`). The longest matching prefix wins. Default `"/"`.
    pub path: String,
    /// Methods this route matches. Default: all.
    pub methods: Vec<String>,
    /// Upstream pool name. Required unless `static` is set.
    pub upstream: String,
    /// Serve this directory instead of an upstream (then `upstream` must be empty).
    /// Default: none.
    #[serde(rename = "static")]
    pub static_dir: Option<PathBuf>,
    /// How the `static` directory is served.
    pub static_options: StaticOptionsConfig,
    /// Minify responses of these kinds (`"html"`, `"css"`, `"js"`, `"json"`) once, before
    /// the cache stores them. Default `[]`.
    pub minify: Vec<String>,
    /// Add `Server-Timing` (cache outcome, upstream and WAF time) to responses. Default `false`.
    pub server_timing: bool,
    /// Read/write split: safe methods (GET, HEAD, OPTIONS) go to this upstream (replicas)
    /// while it has an available endpoint, everything else to `upstream`. Default: none.
    pub read_upstream: Option<String>,
    /// Per-route override of `server.max_request_body`.
    pub max_request_body: Option<ByteSize>,
    /// Cache policy of this route.
    pub cache: RouteCacheConfig,
    /// Route-specific client IP lists (checked after the global ones).
    pub ip_lists: IpListsConfig,
    /// Rate limits of this route (all must pass).
    pub rate_limits: Vec<RateLimitConfig>,
    /// CORS policy of this route (off when absent).
    pub cors: Option<CorsConfig>,
    /// WAF overrides of this route.
    pub waf: RouteWafConfig,
    /// Compression overrides of this route.
    pub compression: RouteCompressionConfig,
    /// Authentication required on this route (off when absent).
    pub auth: Option<RouteAuthConfig>,
    /// Request hygiene of this route.
    pub hygiene: RouteHygieneConfig,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            host: None,
            path: "/".into(),
            methods: Vec::new(),
            upstream: String::new(),
            static_dir: None,
            static_options: StaticOptionsConfig::default(),
            minify: Vec::new(),
            server_timing: false,
            read_upstream: None,
            max_request_body: None,
            cache: RouteCacheConfig::default(),
            ip_lists: IpListsConfig::default(),
            rate_limits: Vec::new(),
            cors: None,
            waf: RouteWafConfig::default(),
            compression: RouteCompressionConfig::default(),
            auth: None,
            hygiene: RouteHygieneConfig::default(),
        }
    }
}

/// `[log]`: process log and access log.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Filter in `RUST_LOG` syntax (`RUST_LOG` wins when set). Default `"info"`.
    pub level: String,
    /// `"auto"` (text on a terminal, JSON otherwise), `"text"` or `"json"`. Default `"auto"`.
    pub format: LogFormat,
    /// Access log destination: `"stdout"`, `"off"` or a file path. Default `"stdout"`.
    pub access_log: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Auto,
            access_log: "stdout".into(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[trusted_proxies]`: peers allowed to set `X-Forwarded-For` / `Forwarded`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustedProxiesConfig {
    /// CIDRs of trusted proxies. Default: none (forwarding headers from clients are ignored
    /// for the client IP).
    pub cidrs: Vec<IpNet>,
}
