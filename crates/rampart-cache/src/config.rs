//! Typed, already-validated configuration: [`CacheSettings`] (global, `[cache]`) and
//! [`CachePolicy`] (per route, `[routes.cache]`). The serde schema lives in
//! `rampart-config`; see `docs/cache.md` for the keys, their human syntax and defaults.

use std::{sync::Arc, time::Duration};

use http::HeaderName;
use ipnet::IpNet;

/// Global cache settings (`[cache]`).
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Total size of the memory tier in bytes (headers + body + key + overhead).
    /// Default 256 MiB.
    pub max_size: u64,
    /// Largest object stored; larger responses stream through uncached. Default 8 MiB.
    pub max_object_size: u64,
    /// How long an uncacheable answer is remembered so requests for the key are not
    /// coalesced behind each other (hit-for-pass). Default 10 s.
    pub hit_for_pass_ttl: Duration,
    /// How long a coalesced request waits for the leader before going upstream itself.
    /// Default 5 s.
    pub coalesce_wait: Duration,
    /// How many requests may wait on one leader; more go upstream at once. Default 1024.
    pub coalesce_max_waiters: usize,
    /// The gateway-targeted cache-control field (RFC 9213), above `CDN-Cache-Control`.
    /// Default `Rampart-Cache-Control`.
    pub targeted_field: Option<HeaderName>,
    /// Forward the targeted fields (`CDN-Cache-Control` and [`Self::targeted_field`])
    /// downstream. Default false (they are removed).
    pub forward_targeted: bool,
    /// Response headers whose values are cache tags. Default `Surrogate-Key`
    /// (space-separated) and `Cache-Tag` (comma-separated).
    pub tag_headers: Vec<TagHeader>,
    /// Cap on heuristic freshness (10 % of the `Last-Modified` age). Default 24 h.
    pub heuristic_max: Duration,
    /// How long a stale entry that carries a validator (`ETag` / `Last-Modified`) is kept
    /// beyond its freshness and stale windows, to be revalidated with a conditional request.
    /// Default 10 min.
    pub keep_for_revalidation: Duration,
    /// Stale window given to soft-purged entries that have no `stale-while-revalidate` of
    /// their own. Default 30 s.
    pub soft_purge_stale: Duration,
    /// At most this many Vary variants per URL; the oldest is dropped. Default 32.
    pub max_variants: usize,
    /// Client networks allowed to use the `PURGE` method on the data listener. Empty (the
    /// default) disables the method: `PURGE` is then forwarded like any unknown method.
    pub purge_allow: Vec<IpNet>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_size: 256 * 1024 * 1024,
            max_object_size: 8 * 1024 * 1024,
            hit_for_pass_ttl: Duration::from_secs(10),
            coalesce_wait: Duration::from_secs(5),
            coalesce_max_waiters: 1024,
            targeted_field: Some(HeaderName::from_static("rampart-cache-control")),
            forward_targeted: false,
            tag_headers: vec![
                TagHeader {
                    name: HeaderName::from_static("surrogate-key"),
                    separator: TagSeparator::Space,
                },
                TagHeader {
                    name: HeaderName::from_static("cache-tag"),
                    separator: TagSeparator::Comma,
                },
            ],
            heuristic_max: Duration::from_secs(24 * 3600),
            keep_for_revalidation: Duration::from_secs(600),
            soft_purge_stale: Duration::from_secs(30),
            max_variants: 32,
            purge_allow: Vec::new(),
        }
    }
}

/// A response header carrying cache tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagHeader {
    /// Header name.
    pub name: HeaderName,
    /// How tags are separated in its value.
    pub separator: TagSeparator,
}

/// Tag separators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSeparator {
    /// Whitespace-separated (`Surrogate-Key`).
    Space,
    /// Comma-separated (`Cache-Tag`).
    Comma,
}

/// Per-route cache policy (`[routes.cache]`), stored in `RoutePolicy::extensions`.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    /// Cache on or off for the route. Default on.
    pub enabled: bool,
    /// How the primary cache key is built.
    pub key: KeyPolicy,
    /// TTL used when the origin gives no explicit freshness (opt-in). Default none.
    pub default_ttl: Option<Duration>,
    /// Cap on any freshness lifetime. Default none.
    pub ttl_max: Option<Duration>,
    /// Gateway-side `stale-while-revalidate` when the response has none. Default none.
    pub stale_while_revalidate: Option<Duration>,
    /// Gateway-side `stale-if-error` when the response has none. Default none.
    pub stale_if_error: Option<Duration>,
    /// What to do with responses carrying `Set-Cookie`. Default [`SetCookiePolicy::Pass`].
    pub set_cookie: SetCookiePolicy,
    /// Explicit opt-in overrides of origin / client directives. Default: all off.
    pub overrides: Overrides,
    /// Store a response under a path with a known extension only if its `Content-Type`
    /// matches that extension (web cache deception guard). Default off.
    pub deception_guard: bool,
    /// Give a stored response without an `ETag` a strong one (a 64-bit xxh3 hash of the
    /// body, computed once when it is stored), so hits can answer `If-None-Match`,
    /// `If-Match` and `If-Range`. Default off here; on by default in the config
    /// (`[compression].generate_etag`).
    pub generate_etag: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            key: KeyPolicy::default(),
            default_ttl: None,
            ttl_max: None,
            stale_while_revalidate: None,
            stale_if_error: None,
            set_cookie: SetCookiePolicy::Pass,
            overrides: Overrides::default(),
            deception_guard: false,
            generate_etag: false,
        }
    }
}

/// What to do with a response that carries `Set-Cookie`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetCookiePolicy {
    /// Do not store it (default).
    #[default]
    Pass,
    /// Store it without its `Set-Cookie` fields (the first client still gets them).
    Strip,
    /// Store it with `Set-Cookie` (dangerous: every client gets the cookie).
    Store,
}

/// Opt-in overrides. Each one departs from RFC 9111 and is off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overrides {
    /// Ignore the response's unqualified `no-cache` (reuse without validation while fresh).
    pub ignore_no_cache: bool,
    /// Ignore the response's `no-store`.
    pub ignore_no_store: bool,
    /// Ignore the response's unqualified `private`.
    pub ignore_private: bool,
    /// Ignore the request's `no-cache` / `Pragma: no-cache` and `max-age=0` (reload storms).
    pub ignore_request_no_cache: bool,
}

/// How the primary cache key is composed.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    /// Include the scheme. Default true.
    pub scheme: bool,
    /// Include the host (lowercased, default port dropped). Default true.
    pub host: bool,
    /// How the query string is handled. Default [`QueryKey::All`].
    pub query: QueryKey,
    /// Request headers whose (whitespace-folded) values are appended to the key.
    pub headers: Vec<HeaderName>,
    /// Cookies whose values are appended to the key.
    pub cookies: Vec<Arc<str>>,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            scheme: true,
            host: true,
            query: QueryKey::All,
            headers: Vec::new(),
            cookies: Vec::new(),
        }
    }
}

/// Query-string handling in the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKey {
    /// Keep the query exactly as sent.
    All,
    /// Sort the parameters (by name, then value) so their order does not matter.
    Sorted,
    /// Keep only these parameters (sorted).
    Allow(Vec<Arc<str>>),
    /// Drop these parameters, keep the rest (sorted).
    Deny(Vec<Arc<str>>),
    /// Ignore the query entirely.
    Ignore,
}

/// A config word that is not one of the allowed values (for the config crate's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?}, expected one of: {expected}")]
pub struct ParseConfigError {
    /// What was given.
    pub value: String,
    /// The allowed values.
    pub expected: &'static str,
}

impl std::str::FromStr for SetCookiePolicy {
    type Err = ParseConfigError;

    /// `"pass"`, `"strip"` or `"store"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pass" => Ok(Self::Pass),
            "strip" => Ok(Self::Strip),
            "store" => Ok(Self::Store),
            _ => Err(ParseConfigError {
                value: s.to_owned(),
                expected: "pass, strip, store",
            }),
        }
    }
}

impl std::str::FromStr for TagSeparator {
    type Err = ParseConfigError;

    /// `"space"` or `"comma"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "space" => Ok(Self::Space),
            "comma" => Ok(Self::Comma),
            _ => Err(ParseConfigError {
                value: s.to_owned(),
                expected: "space, comma",
            }),
        }
    }
}

impl QueryKey {
    /// The simple modes by name: `"all"`, `"sorted"`, `"ignore"` (allow/deny lists are built
    /// with [`QueryKey::Allow`] / [`QueryKey::Deny`]).
    pub fn from_mode(s: &str) -> Result<Self, ParseConfigError> {
        match s {
            "all" => Ok(Self::All),
            "sorted" => Ok(Self::Sorted),
            "ignore" => Ok(Self::Ignore),
            _ => Err(ParseConfigError {
                value: s.to_owned(),
                expected: "all, sorted, ignore",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_words_parse() {
        assert_eq!(
            "strip".parse::<SetCookiePolicy>(),
            Ok(SetCookiePolicy::Strip)
        );
        assert!("Strip".parse::<SetCookiePolicy>().is_err());
        assert_eq!("comma".parse::<TagSeparator>(), Ok(TagSeparator::Comma));
        assert_eq!(QueryKey::from_mode("sorted"), Ok(QueryKey::Sorted));
        let e = QueryKey::from_mode("x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value \"x\", expected one of: all, sorted, ignore"
        );
        let s = CacheSettings::default();
        assert_eq!(s.max_size, 256 * 1024 * 1024);
        assert_eq!(s.max_object_size, 8 * 1024 * 1024);
        let p = CachePolicy::default();
        assert!(p.enabled && p.default_ttl.is_none() && !p.deception_guard);
        assert_eq!(p.set_cookie, SetCookiePolicy::Pass);
    }
}
