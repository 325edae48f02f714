//! Compiling `[auth]` and `routes[].auth` into rampart-guard's verifiers and [`AuthPolicy`]s.
//!
//! JWKS caches are long-lived ([`JwksRegistry`], in `GuardShared`): a reload that keeps the
//! same `jwks_url` (and timings) keeps the cached keys and its background refresher; a
//! reload that drops it stops its refresher; shutdown stops them all.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use http::HeaderName;
use rampart_config::{ConfigError, JwtVerifierConfig, RouteAuthConfig, parse_api_key_source};
use rampart_guard::{
    AuthPolicy, JwtRule, OriginMatcher, TokenSource,
    auth::{
        RequiredClaim,
        apikey::{ApiKeyLookup, ApiKeySet, ApiKeySource},
        csrf::{CsrfPolicy, DoubleSubmit},
        jwks::{HttpJwksFetcher, JwksCache},
        jwt::{JwtSettings, JwtVerifier, KeyFamily, VerifyKey, parse_algorithm},
    },
};

struct JwksEntry {
    cache: Arc<JwksCache>,
    refresher: tokio::task::JoinHandle<()>,
}

/// JWKS caches by URL + timings, with their background refreshers.
#[derive(Default)]
pub struct JwksRegistry {
    entries: Mutex<HashMap<String, JwksEntry>>,
}

impl JwksRegistry {
    fn key(v: &JwtVerifierConfig, url: &str) -> String {
        format!(
            "{url} {:?} {:?} {:?}",
            v.jwks_refresh, v.jwks_min_refresh, v.jwks_timeout
        )
    }

    /// The cache for `v`'s JWKS (created, with its refresher, on first use).
    fn get(&self, v: &JwtVerifierConfig, url: &str) -> Result<Arc<JwksCache>, String> {
        let key = Self::key(v, url);
        let mut entries = self.entries.lock().map_err(|_| "jwks registry poisoned")?;
        if let Some(e) = entries.get(&key) {
            return Ok(e.cache.clone());
        }
        let fetcher = HttpJwksFetcher::new(url, v.jwks_timeout).map_err(|e| e.to_string())?;
        // The first token fetches the keys (an empty cache is an unknown kid); the
        // refresher keeps them fresh afterwards.
        let cache = JwksCache::new(Arc::new(fetcher), v.jwks_refresh, v.jwks_min_refresh);
        let refresher = cache.spawn_refresher();
        entries.insert(
            key,
            JwksEntry {
                cache: cache.clone(),
                refresher,
            },
        );
        Ok(cache)
    }

    /// Keep only the caches `config` uses (after a successful build).
    pub fn retain(&self, config: &rampart_config::Config) {
        let used: HashSet<String> = config
            .auth
            .jwt
            .iter()
            .filter_map(|v| v.jwks_url.as_deref().map(|u| Self::key(v, u)))
            .collect();
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|k, e| {
                let keep = used.contains(k);
                if !keep {
                    e.refresher.abort();
                }
                keep
            });
        }
    }

    /// JWKS caches held (one per distinct URL + timings).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// No JWKS cache held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stop every refresher (shutdown).
    pub fn stop(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            for (_, e) in entries.drain() {
                e.refresher.abort();
            }
        }
    }
}

/// The compiled `[auth]` section of one generation.
#[derive(Default)]
pub struct AuthSets {
    verifiers: HashMap<String, Arc<JwtVerifier>>,
    api_keys: Arc<ApiKeySet>,
}

/// `[auth]` -> verifiers and the API key set. Problems go to `errors` with their key path.
pub fn auth_sets(
    c: &rampart_config::AuthConfig,
    jwks: &JwksRegistry,
    errors: &mut Vec<ConfigError>,
) -> AuthSets {
    let mut out = AuthSets::default();
    for (i, v) in c.jwt.iter().enumerate() {
        let mut keys = Vec::new();
        for (j, k) in v.keys.iter().enumerate() {
            let path = |f: &str| format!("auth.jwt[{i}].keys[{j}].{f}");
            let family = match k.kind.as_str() {
                "rsa" => KeyFamily::Rsa,
                "ec" => KeyFamily::Ec,
                "ed25519" => KeyFamily::Ed,
                _ => KeyFamily::Hmac,
            };
            let key = match (&k.file, &k.secret) {
                (Some(f), _) => {
                    VerifyKey::from_file(k.kid.clone(), family, f).map_err(|e| e.to_string())
                }
                (None, Some(s)) => Ok(VerifyKey::hmac(k.kid.clone(), s.expose().as_bytes())),
                (None, None) => Err("one of file / secret is required".to_string()),
            };
            match key {
                Ok(key) => keys.push(key),
                Err(m) => errors.push(ConfigError::new(path("file"), m)),
            }
        }
        let cache = match &v.jwks_url {
            Some(url) => match jwks.get(v, url) {
                Ok(c) => Some(c),
                Err(m) => {
                    errors.push(ConfigError::new(format!("auth.jwt[{i}].jwks_url"), m));
                    None
                }
            },
            None => None,
        };
        let settings = JwtSettings {
            algorithms: v
                .algorithms
                .iter()
                .filter_map(|a| parse_algorithm(a))
                .collect(),
            issuers: v.issuers.clone(),
            audiences: v.audiences.clone(),
            leeway: v.leeway,
            require_exp: v.require_exp,
            cache_size: v.cache_size,
        };
        out.verifiers.insert(
            v.name.clone(),
            Arc::new(JwtVerifier::new(keys, cache, &settings)),
        );
    }
    let mut set = ApiKeySet::new();
    for (i, k) in c.api_keys.iter().enumerate() {
        match set.clone().with_hash(&k.name, &k.sha256) {
            Ok(s) => set = s,
            Err(e) => errors.push(ConfigError::new(
                format!("auth.api_keys[{i}].sha256"),
                e.to_string(),
            )),
        }
    }
    out.api_keys = Arc::new(set);
    out
}

fn header_name(s: &str, path: String, errors: &mut Vec<ConfigError>) -> Option<HeaderName> {
    match HeaderName::from_bytes(s.as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            errors.push(ConfigError::new(
                path,
                format!("{s:?} is not a valid header name"),
            ));
            None
        }
    }
}

/// The API-key lookup of a route (also used by its `api_key` rate-limit keys).
pub fn api_key_lookup(r: &RouteAuthConfig, sets: &AuthSets) -> Option<Arc<ApiKeyLookup>> {
    let (kind, name) = parse_api_key_source(r.api_key.as_deref()?).ok()?;
    let source = if kind == "header" {
        ApiKeySource::Header(HeaderName::from_bytes(name.as_bytes()).ok()?)
    } else {
        ApiKeySource::Query(name.to_owned())
    };
    Some(Arc::new(ApiKeyLookup {
        keys: sets.api_keys.clone(),
        source,
    }))
}

/// The JWT verifier a route's auth names, if any (rate limits keyed on a claim read verified
/// tokens from its cache).
pub fn route_jwt_verifier(r: &RouteAuthConfig, sets: &AuthSets) -> Option<Arc<JwtVerifier>> {
    sets.verifiers.get(r.jwt.as_deref()?).cloned()
}

/// `routes[i].auth` -> the route's [`AuthPolicy`].
pub fn route_auth(
    i: usize,
    r: &RouteAuthConfig,
    sets: &AuthSets,
    lookup: Option<&Arc<ApiKeyLookup>>,
    errors: &mut Vec<ConfigError>,
) -> AuthPolicy {
    let path = |f: &str| format!("routes[{i}].auth.{f}");
    let jwt = r.jwt.as_ref().and_then(|name| {
        let Some(verifier) = sets.verifiers.get(name) else {
            errors.push(ConfigError::new(
                path("jwt"),
                format!("unknown jwt verifier {name:?}"),
            ));
            return None;
        };
        let mut rule = JwtRule::new(verifier.clone());
        if let Some(c) = &r.token_cookie {
            rule.source = TokenSource::Cookie(c.clone());
        }
        rule.roles_claim = r.roles_claim.clone();
        rule.required_roles = r.roles.clone();
        rule.required_claims = r
            .required_claims
            .iter()
            .map(|rc| match rc.split_once('=') {
                None => RequiredClaim {
                    claim: rc.clone(),
                    value: None,
                },
                Some((claim, v)) => RequiredClaim {
                    claim: claim.to_owned(),
                    // `true`, `42` compare as JSON; anything else as a string.
                    value: Some(
                        serde_json::from_str::<serde_json::Value>(v)
                            .ok()
                            .filter(|j| !j.is_object() && !j.is_array())
                            .unwrap_or_else(|| serde_json::Value::String(v.to_owned())),
                    ),
                },
            })
            .collect();
        for (claim, h) in &r.forward_claims {
            if let Some(h) = header_name(
                h,
                format!("routes[{i}].auth.forward_claims.{claim}"),
                errors,
            ) {
                rule.forward.push((claim.clone(), h));
            }
        }
        Some(rule)
    });
    let csrf = r.csrf.as_ref().and_then(|c| {
        let origins = match OriginMatcher::new(&c.origins) {
            Ok(o) => o,
            Err(e) => {
                errors.push(ConfigError::new(path("csrf.origins"), e.to_string()));
                return None;
            }
        };
        let double_submit = match &c.token_cookie {
            Some(cookie) => {
                let h = c.token_header.as_deref().unwrap_or("x-csrf-token");
                Some(DoubleSubmit {
                    cookie: cookie.clone(),
                    header: header_name(h, path("csrf.token_header"), errors)?,
                })
            }
            None => None,
        };
        Some(CsrfPolicy {
            origins,
            double_submit,
            session_cookie: c.session_cookie.clone(),
        })
    });
    AuthPolicy {
        jwt,
        api_key: lookup.map(|l| (**l).clone()),
        api_key_names: (!r.api_key_names.is_empty()).then(|| r.api_key_names.clone()),
        csrf,
        realm: r.realm.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn jwks_caches_survive_reloads_that_keep_them_and_stop_otherwise() {
        let reg = JwksRegistry::default();
        let url = "http://127.0.0.1:9/jwks.json";
        let v = JwtVerifierConfig {
            name: "idp".into(),
            jwks_url: Some(url.into()),
            ..Default::default()
        };
        let a = reg.get(&v, url).unwrap();
        let b = reg.get(&v, url).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same url and timings: one cache");
        let mut config = rampart_config::Config::default();
        config.auth.jwt.push(v.clone());
        reg.retain(&config);
        assert_eq!(reg.len(), 1, "a reload that keeps the url keeps the cache");
        assert!(Arc::ptr_eq(&a, &reg.get(&v, url).unwrap()));
        let faster = JwtVerifierConfig {
            jwks_refresh: std::time::Duration::from_secs(10),
            ..v.clone()
        };
        let c = reg.get(&faster, url).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "new timings: a new cache");
        config.auth.jwt = vec![faster];
        reg.retain(&config);
        assert_eq!(reg.len(), 1, "the old timings' refresher is stopped");
        reg.stop();
        assert!(reg.is_empty());
    }
}
