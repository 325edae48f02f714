//! Schema of the traffic-protection features (rampart-guard): security headers, IP lists,
//! bans, per-route rate limits and CORS, and the audit log.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::types::duration;

/// `[security_headers]`: response headers added on every route (on by default). An empty
/// string turns one header off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityHeadersConfig {
    /// Add the headers at all. Default `true`.
    pub enabled: bool,
    /// `Strict-Transport-Security`, on TLS listeners only. Default `"max-age=31536000; includeSubDomains"`.
    pub hsts: String,
    /// `X-Content-Type-Options`. Default `"nosniff"`.
    pub content_type_options: String,
    /// `X-Frame-Options`. Default `"DENY"`.
    pub frame_options: String,
    /// `Referrer-Policy`. Default `"strict-origin-when-cross-origin"`.
    pub referrer_policy: String,
    /// `Permissions-Policy`. Default `"camera=(), microphone=(), geolocation=(), payment=(), usb=()"`.
    pub permissions_policy: String,
    /// `Cross-Origin-Opener-Policy`. Default `"same-origin"`.
    pub cross_origin_opener_policy: String,
    /// `Content-Security-Policy`: `""` (none), `"strict"` (preset) or a policy. Default `""`.
    pub csp: String,
    /// Replace values the upstream set (otherwise upstream values are kept). Default `false`.
    #[serde(rename = "override")]
    pub override_upstream: bool,
    /// Response headers removed. Default `["server", "x-powered-by"]`.
    pub remove: Vec<String>,
}

impl Default for SecurityHeadersConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            hsts: "max-age=31536000; includeSubDomains".into(),
            content_type_options: "nosniff".into(),
            frame_options: "DENY".into(),
            referrer_policy: "strict-origin-when-cross-origin".into(),
            permissions_policy: "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
                .into(),
            cross_origin_opener_policy: "same-origin".into(),
            csp: String::new(),
            override_upstream: false,
            remove: vec!["server".into(), "x-powered-by".into()],
        }
    }
}

/// `[ip_lists]` (global) and `routes[].ip_lists`: CIDR allow/deny lists. With an allow list,
/// only listed clients pass; the deny list wins inside an allowed range.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpListsConfig {
    /// Allowed client networks. Default: everyone.
    pub allow: Vec<IpNet>,
    /// Denied client networks. Default: none.
    pub deny: Vec<IpNet>,
}

/// `[bans]`: automatic bans (fail2ban inside the gateway).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BansConfig {
    /// Longest ban after escalation (each repeat offence doubles the ban). Default `"7d"`.
    #[serde(with = "duration")]
    pub max_ban: Duration,
    /// Offences are forgotten after this long without one. Default `"1day"`.
    #[serde(with = "duration")]
    pub escalation_reset: Duration,
    /// Ban rules.
    pub rules: Vec<BanRuleConfig>,
}

impl Default for BansConfig {
    fn default() -> Self {
        Self {
            max_ban: Duration::from_secs(7 * 86_400),
            escalation_reset: Duration::from_secs(86_400),
            rules: Vec::new(),
        }
    }
}

/// `[[bans.rules]]`: "`threshold` events of `trigger` from one IP within `window` → ban for `ban`".
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BanRuleConfig {
    /// Rule name (logs, metrics, events). Required.
    pub name: String,
    /// `"status:401"` (responses with that status), `"waf_block"` or `"rate_limited"`. Required.
    pub trigger: String,
    /// Only count events on this route. Default: every route.
    pub route: Option<String>,
    /// Events that trigger the ban. Default 5.
    pub threshold: u32,
    /// Counting window. Default `"1m"`.
    #[serde(with = "duration")]
    pub window: Duration,
    /// First ban length. Default `"15m"`.
    #[serde(with = "duration")]
    pub ban: Duration,
}

impl Default for BanRuleConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            trigger: String::new(),
            route: None,
            threshold: 5,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(900),
        }
    }
}

/// `[[routes.rate_limits]]`: one GCRA limit on a route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Limit name (headers, metrics, events). Required.
    pub name: String,
    /// `"<count>/<period>"`, e.g. `"5/1m"`, `"1000/1s"`. Required.
    pub rate: String,
    /// Burst allowance. Default: the rate's count.
    pub burst: Option<u32>,
    /// Key: `ip`, `ip_prefix`, `route`, `header:<name>`, `cookie:<name>`. Default `"ip"`.
    pub key: String,
    /// Prefix lengths for `ip_prefix`. Defaults 24 and 64.
    pub prefix_v4: u8,
    /// See `prefix_v4`.
    pub prefix_v6: u8,
    /// Count and log refusals without refusing. Default `false`.
    pub dry_run: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            rate: String::new(),
            burst: None,
            key: "ip".into(),
            prefix_v4: 24,
            prefix_v6: 64,
            dry_run: false,
        }
    }
}

/// `[routes.cors]`: CORS for a route (off unless present).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins: exact (`https://app.example.com`), `https://*.example.com`, `*`, or
    /// a regex in slashes (`/^https://[a-z]+\.example\.com$/`). Required.
    pub origins: Vec<String>,
    /// Allowed methods. Default `["GET", "HEAD", "POST"]`.
    pub methods: Vec<String>,
    /// Allowed request headers. Default: none beyond the CORS-safelisted ones.
    pub headers: Vec<String>,
    /// Response headers exposed to scripts. Default: none.
    pub expose_headers: Vec<String>,
    /// Allow credentials (never with `*`). Default `false`.
    pub credentials: bool,
    /// Preflight cache lifetime. Default `"10m"`.
    #[serde(with = "duration::option")]
    pub max_age: Option<Duration>,
}

/// `[audit]`: security events (blocks, rate-limit refusals, bans, admin actions) as JSON lines.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// `"stdout"`, `"off"` or a file path. Default `"stdout"`.
    pub path: String,
    /// Events queued for the writer; past it events are dropped and counted. Default 10000.
    pub queue: usize,
    /// A file log is rotated (`audit.jsonl` -> `audit.jsonl.1` -> ...) when it would grow
    /// past this size; `"0B"` never rotates. Default `"100MiB"`.
    pub max_size: crate::ByteSize,
    /// Rotated files kept (the oldest is deleted). Default 5.
    pub keep: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: "stdout".into(),
            queue: 10_000,
            max_size: crate::ByteSize::mib(100),
            keep: 5,
        }
    }
}

/// `[waf]`: the web application firewall (on by default: built-in rules, paranoia 1, block).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WafConfig {
    /// Inspect requests at all. Default `true`.
    pub enabled: bool,
    /// `"block"` (403 at the threshold) or `"detect"` (log only). Default `"block"`.
    pub mode: String,
    /// Paranoia level 1-4: which rules run. Default 1.
    pub paranoia: u8,
    /// Inbound anomaly score that blocks. Default 5.
    pub threshold: u32,
    /// Load the embedded Rampart rule set. Default `true`.
    pub builtin_rules: bool,
    /// A directory with the OWASP Core Rule Set (`rules/*.conf`), loaded instead of the
    /// built-in rules (e.g. `/usr/share/modsecurity-crs`). Default: none.
    pub crs_path: Option<std::path::PathBuf>,
    /// Request bodies are inspected up to this size. Default `"128KiB"`.
    pub body_limit: crate::ByteSize,
    /// Past `body_limit`: `"inspect_prefix"` or `"reject"` (413). Default `"inspect_prefix"`.
    pub body_limit_action: String,
    /// `[[waf.exclusions]]`: rules, targets or clients left alone on every route. Default:
    /// none.
    pub exclusions: Vec<crate::waf::WafExclusionConfig>,
}

impl Default for WafConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mode: "block".into(),
            paranoia: 1,
            threshold: 5,
            builtin_rules: true,
            crs_path: None,
            body_limit: crate::ByteSize::kib(128),
            body_limit_action: "inspect_prefix".into(),
            exclusions: Vec::new(),
        }
    }
}

/// `[routes.waf]`: per-route WAF overrides (unset keys take the `[waf]` values).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteWafConfig {
    /// Inspect this route. Default `true`.
    pub enabled: bool,
    /// `"block"` or `"detect"`.
    pub mode: Option<String>,
    /// Paranoia level 1-4.
    pub paranoia: Option<u8>,
    /// Blocking score.
    pub threshold: Option<u32>,
    /// `[[routes.waf.exclusions]]`: added after the global ones. Default: none.
    pub exclusions: Vec<crate::waf::WafExclusionConfig>,
}

impl Default for RouteWafConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mode: None,
            paranoia: None,
            threshold: None,
            exclusions: Vec::new(),
        }
    }
}
