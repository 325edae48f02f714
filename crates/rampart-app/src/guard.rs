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
    HygienePolicy, IpAccessList, IpFilterPolicy, SecurityHeadersPolicy, SecurityHeadersSettings,
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
    /// JWKS caches and their refreshers (survive reloads that keep the URL).
    pub jwks: crate::auth::JwksRegistry,
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
            jwks: crate::auth::JwksRegistry::default(),
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
    auth: &crate::auth::AuthSets,
    policy: &mut RoutePolicy,
    errors: &mut Vec<ConfigError>,
) {
    let lookup = r
        .auth
        .as_ref()
        .and_then(|a| crate::auth::api_key_lookup(a, auth));
    if let Some(a) = &r.auth {
        policy
            .extensions
            .insert(crate::auth::route_auth(i, a, auth, lookup.as_ref(), errors));
    }
    if let Some(h) = hygiene_policy(i, &r.hygiene, errors) {
        policy.extensions.insert(h);
    }
    if !r.ip_lists.allow.is_empty() || !r.ip_lists.deny.is_empty() {
        policy.extensions.insert(IpFilterPolicy {
            list: access_list(&r.ip_lists),
        });
    }
    let jwt = r
        .auth
        .as_ref()
        .and_then(|a| crate::auth::route_jwt_verifier(a, auth));
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
        let key = match KeySource::parse(&l.key, l.prefix_v4, l.prefix_v6, lookup.clone()) {
            Ok(k) => k.with_jwt_verifier(jwt.clone()),
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

/// Sends WAF matches to the audit log as security events.
pub struct WafAudit(pub EventSink);

impl rampart_waf::WafEventSink for WafAudit {
    fn record(&self, ev: rampart_waf::WafEvent) {
        let kind = match ev.outcome {
            rampart_waf::Outcome::Block => rampart_guard::SecurityEventKind::WafBlocked,
            rampart_waf::Outcome::Detect => rampart_guard::SecurityEventKind::WafDetected,
            rampart_waf::Outcome::Pass => return,
        };
        let rules: Vec<String> = ev.matches.iter().map(|m| m.rule_id.to_string()).collect();
        let details: Vec<String> = ev
            .matches
            .iter()
            .map(|m| format!("{} {} {:?}", m.rule_id, m.target, m.excerpt))
            .collect();
        self.0.emit(rampart_guard::SecurityEvent {
            kind,
            time: std::time::SystemTime::now(),
            request_id: Some(ev.reference.clone()),
            client_ip: ev.client,
            route: Some(ev.route.clone()),
            rule: Some(rules.join(",")),
            reference: Some(ev.reference),
            details: format!(
                "{} {} score={} matches: {}",
                ev.method,
                ev.path,
                ev.score,
                details.join("; ")
            ),
        });
    }
}

/// `[waf]` -> the rule engine of this generation (`None` when off).
pub fn waf_engine(
    c: &rampart_config::WafConfig,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<rampart_waf::Engine>> {
    if !c.enabled {
        return None;
    }
    let settings = rampart_waf::WafSettings {
        enabled: true,
        builtin_rules: c.builtin_rules,
        crs_path: c.crs_path.clone(),
        ..rampart_waf::WafSettings::default()
    };
    match rampart_waf::build_engine(&settings) {
        Ok(e) => {
            tracing::debug!(report = %e.report(), "waf rules loaded");
            Some(Arc::new(e))
        }
        Err(e) => {
            let key = if c.crs_path.is_some() {
                "waf.crs_path"
            } else {
                "waf"
            };
            errors.push(ConfigError::new(key, e.to_string()));
            None
        }
    }
}

/// The WAF policy of route `i`: its overrides over `[waf]`, the global exclusions then the
/// route's (a target that names no known collection is reported with its key path).
pub fn waf_policy(
    engine: &Arc<rampart_waf::Engine>,
    g: &rampart_config::WafConfig,
    i: usize,
    r: &rampart_config::RouteWafConfig,
    errors: &mut Vec<ConfigError>,
) -> rampart_waf::WafPolicy {
    let mode = match r.mode.as_deref().unwrap_or(&g.mode) {
        "detect" => rampart_waf::Mode::Detect,
        _ => rampart_waf::Mode::Block,
    };
    let mut p = rampart_waf::WafPolicy::new(engine.clone())
        .with_mode(mode)
        .with_paranoia(r.paranoia.unwrap_or(g.paranoia))
        .with_threshold(r.threshold.unwrap_or(g.threshold));
    p.body_limit = g.body_limit.as_usize();
    if g.body_limit_action == "reject" {
        p.body_limit_action = rampart_waf::BodyLimitAction::Reject;
    }
    let global = g
        .exclusions
        .iter()
        .enumerate()
        .map(|(j, e)| (format!("waf.exclusions[{j}]"), e));
    let route = r
        .exclusions
        .iter()
        .enumerate()
        .map(|(j, e)| (format!("routes[{i}].waf.exclusions[{j}]"), e));
    for (path, e) in global.chain(route) {
        match waf_exclusion(e) {
            Ok(x) => p.exclusions.push(x),
            Err(m) => errors.push(ConfigError::new(format!("{path}.target"), m)),
        }
    }
    p
}

/// `routes[i].hygiene` -> policy (`None` when nothing is set).
pub fn hygiene_policy(
    i: usize,
    c: &rampart_config::RouteHygieneConfig,
    errors: &mut Vec<ConfigError>,
) -> Option<HygienePolicy> {
    let mut headers = |key: &str, list: &[String]| -> Vec<http::HeaderName> {
        list.iter()
            .enumerate()
            .filter_map(|(j, h)| match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(h) => Some(h),
                Err(_) => {
                    errors.push(ConfigError::new(
                        format!("routes[{i}].hygiene.{key}[{j}]"),
                        format!("{h:?} is not a valid header name"),
                    ));
                    None
                }
            })
            .collect()
    };
    let p = HygienePolicy {
        methods: (!c.allowed_methods.is_empty()).then(|| {
            c.allowed_methods
                .iter()
                .filter_map(|m| http::Method::from_bytes(m.as_bytes()).ok())
                .collect()
        }),
        max_query_params: c.max_query_params,
        deny_headers: headers("deny_headers", &c.deny_headers),
        require_headers: headers("require_headers", &c.require_headers),
        strip_headers: headers("strip_headers", &c.strip_headers),
        allow_headers: c
            .allow_headers
            .as_ref()
            .map(|a| headers("allow_headers", a).into_iter().collect()),
        max_body: None,
        body_read_timeout: c.body_read_timeout,
    };
    let any = p.methods.is_some()
        || p.max_query_params.is_some()
        || !p.deny_headers.is_empty()
        || !p.require_headers.is_empty()
        || !p.strip_headers.is_empty()
        || p.allow_headers.is_some()
        || p.body_read_timeout.is_some();
    any.then_some(p)
}

/// One `[[waf.exclusions]]` entry (id ranges are checked by the config validation).
fn waf_exclusion(e: &rampart_config::WafExclusionConfig) -> Result<rampart_waf::Exclusion, String> {
    let target = match &e.target {
        Some(t) => Some(rampart_waf::TargetSpec::parse(t).map_err(|e| e.0)?),
        None => None,
    };
    Ok(rampart_waf::Exclusion {
        rule_ids: e
            .rule_ids
            .iter()
            .filter_map(|id| id.range().ok())
            .map(|(from, to)| rampart_waf::IdRange { from, to })
            .collect(),
        target,
        clients: e.clients.clone(),
    })
}
