//! Compiling the traffic-protection config into rampart-guard's engines and policies.
//!
//! Process-wide (survive reloads, in [`GuardShared`]): the rate-limit buckets, the ban list,
//! the security event sink. Per generation: the global IP lists, the security headers policy
//! and each route's `IpFilterPolicy` / `RateLimitPolicy` / `CorsPolicy`.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use rampart_config::{BansConfig, ConfigError, IpListsConfig, RouteConfig, SecurityHeadersConfig};
use rampart_core::RoutePolicy;
use rampart_guard::{
    BanList, BanRule, BanSettings, CorsPolicy, CorsSettings, EventSink, Gcra, GuardMetrics,
    IpAccessList, IpFilterPolicy, SecurityHeadersPolicy, SecurityHeadersSettings,
    ratelimit::{KeySource, MemoryStore, RateLimit, RateLimitPolicy, parse_rate},
};

/// Long-lived protection state.
pub struct GuardShared {
    /// Security events (to the audit writer).
    pub events: EventSink,
    /// Rate-limit buckets.
    pub store: Arc<MemoryStore>,
    /// Bans.
    pub bans: Arc<BanList>,
    /// Metric families.
    pub metrics: GuardMetrics,
}

impl GuardShared {
    /// Create the engines (ban rules come from `bans`, validated by [`ban_settings`]).
    pub fn new(events: EventSink, metrics: GuardMetrics, bans: BanSettings) -> Self {
        let store = Arc::new(MemoryStore::new(1_000_000));
        store.spawn_sweeper(Duration::from_secs(10));
        let bans = Arc::new(BanList::new(bans, Some(metrics.clone()), events.clone()));
        bans.spawn_sweeper(Duration::from_secs(10));
        Self {
            events,
            store,
            bans,
            metrics,
        }
    }
}

/// `[bans]` -> ban settings.
pub fn ban_settings(c: &BansConfig, errors: &mut Vec<ConfigError>) -> BanSettings {
    let mut rules = Vec::new();
    for (i, r) in c.rules.iter().enumerate() {
        let path = |k: &str| format!("bans.rules[{i}].{k}");
        if r.name.is_empty() {
            errors.push(ConfigError::new(path("name"), "is required"));
            continue;
        }
        let trigger = match r.trigger.parse::<rampart_guard::BanTrigger>() {
            Ok(t) => t,
            Err(e) => {
                errors.push(ConfigError::new(path("trigger"), e.to_string()));
                continue;
            }
        };
        if r.threshold == 0 {
            errors.push(ConfigError::new(path("threshold"), "must be at least 1"));
            continue;
        }
        rules.push(BanRule {
            name: r.name.as_str().into(),
            trigger,
            route: r.route.as_deref().map(Into::into),
            threshold: r.threshold,
            window: r.window,
            ban: r.ban,
        });
    }
    BanSettings {
        rules,
        max_ban: c.max_ban,
        escalation_reset: c.escalation_reset,
        ..BanSettings::default()
    }
}

/// `[security_headers]` -> policy (`None` when disabled).
pub fn headers_policy(
    c: &SecurityHeadersConfig,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<SecurityHeadersPolicy>> {
    if !c.enabled {
        return None;
    }
    let opt = |s: &String| (!s.is_empty()).then(|| s.clone());
    let settings = SecurityHeadersSettings {
        hsts: opt(&c.hsts),
        content_type_options: opt(&c.content_type_options),
        frame_options: opt(&c.frame_options),
        referrer_policy: opt(&c.referrer_policy),
        permissions_policy: opt(&c.permissions_policy),
        coop: opt(&c.cross_origin_opener_policy),
        csp: opt(&c.csp),
        override_upstream: c.override_upstream,
        remove: c.remove.clone(),
    };
    match SecurityHeadersPolicy::from_settings(&settings) {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            errors.push(ConfigError::new(
                format!("security_headers.{}", e.key),
                e.to_string(),
            ));
            None
        }
    }
}

/// IP lists -> access list.
pub fn access_list(c: &IpListsConfig) -> IpAccessList {
    IpAccessList::new(c.allow.iter().copied(), c.deny.iter().copied())
}

/// Put the route's protection policies into its `RoutePolicy`.
pub fn route_policies(
    i: usize,
    r: &RouteConfig,
    g: &GuardShared,
    policy: &mut RoutePolicy,
    errors: &mut Vec<ConfigError>,
) {
    if !r.ip_lists.allow.is_empty() || !r.ip_lists.deny.is_empty() {
        policy.extensions.insert(IpFilterPolicy {
            list: access_list(&r.ip_lists),
        });
    }
    let mut limits = Vec::new();
    for (j, l) in r.rate_limits.iter().enumerate() {
        let path = |k: &str| format!("routes[{i}].rate_limits[{j}].{k}");
        let (count, period) = match parse_rate(&l.rate) {
            Ok(x) => x,
            Err(e) => {
                errors.push(ConfigError::new(path("rate"), e.to_string()));
                continue;
            }
        };
        let burst = match l.burst {
            None => count,
            Some(b) => match NonZeroU32::new(b) {
                Some(b) => b,
                None => {
                    errors.push(ConfigError::new(path("burst"), "must be at least 1"));
                    continue;
                }
            },
        };
        let key = match KeySource::parse(&l.key, l.prefix_v4, l.prefix_v6, None) {
            Ok(k) => k,
            Err(e) => {
                errors.push(ConfigError::new(path("key"), e.to_string()));
                continue;
            }
        };
        match RateLimit::new(&r.name, &l.name, Gcra::new(count, period, burst), key) {
            Ok(limit) => limits.push(
                limit
                    .dry_run(l.dry_run)
                    .with_counters(g.metrics.limit_counters(&r.name, &l.name)),
            ),
            Err(e) => errors.push(ConfigError::new(path("name"), e.to_string())),
        }
    }
    if !limits.is_empty() {
        policy.extensions.insert(RateLimitPolicy::new(limits));
    }
    if let Some(c) = &r.cors {
        let settings = CorsSettings {
            origins: c.origins.clone(),
            methods: c.methods.clone(),
            headers: c.headers.clone(),
            expose_headers: c.expose_headers.clone(),
            credentials: c.credentials,
            max_age: c.max_age,
        };
        match CorsPolicy::new(&settings) {
            Ok(p) => {
                policy.extensions.insert(p);
            }
            Err(e) => errors.push(ConfigError::new(format!("routes[{i}].cors"), e.to_string())),
        }
    }
}
