//! Schema of authentication at the edge (stack layer 12): JWT verifiers and API keys declared
//! once under `[auth]`, and the per-route policy `[routes.auth]` that picks from them.
//!
//! ```toml
//! [[auth.jwt]]
//! name = "idp"
//! issuers = ["https://idp.example.com"]
//! audiences = ["api"]
//! jwks_url = "https://idp.example.com/.well-known/jwks.json"
//!
//! [[auth.api_keys]]
//! name = "partner-2026"
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//!
//! [[routes]]
//! name = "api"
//! upstream = "app"
//! [routes.auth]
//! jwt = "idp"
//! roles = ["admin"]
//! forward_claims = { sub = "x-user-id" }
//! ```

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    ConfigError,
    schema::Config,
    types::{Secret, duration},
};

/// `[auth]`: key material shared by the routes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// JWT verifiers, referenced by name from `routes[].auth.jwt`. Default: none.
    pub jwt: Vec<JwtVerifierConfig>,
    /// Named API keys, stored as SHA-256 hashes; several may be active at once (rotation).
    /// Default: none.
    pub api_keys: Vec<ApiKeyConfig>,
}

/// `[[auth.jwt]]`: one token issuer: its keys (static and / or a JWKS URL) and claim checks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtVerifierConfig {
    /// Verifier name. Required, unique.
    pub name: String,
    /// Accepted `alg` values. Default: every asymmetric one (`RS256`, `RS384`, `RS512`,
    /// `PS256`, `PS384`, `PS512`, `ES256`, `ES384`, `EdDSA`); list `HS256`/`HS384`/`HS512`
    /// explicitly to accept shared secrets.
    pub algorithms: Vec<String>,
    /// Accepted issuers (`iss`). Default: not checked.
    pub issuers: Vec<String>,
    /// Accepted audiences (`aud`). Default: not checked.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` / `nbf`. Default `"60s"`.
    #[serde(with = "duration")]
    pub leeway: Duration,
    /// Refuse tokens without `exp`. Default `true`.
    pub require_exp: bool,
    /// Verified tokens remembered (a repeat of the same token skips the signature check;
    /// `exp` / `nbf` are still checked each time). Default `4096`; `0` turns it off.
    pub cache_size: usize,
    /// Static keys. Default: none.
    pub keys: Vec<JwtKeyConfig>,
    /// A JWKS document (`http://` or `https://`), cached and refreshed in the background.
    /// Default: none.
    pub jwks_url: Option<String>,
    /// Background JWKS refresh period. Default `"5m"`.
    #[serde(with = "duration")]
    pub jwks_refresh: Duration,
    /// A token with an unknown `kid` triggers a JWKS refresh at most this often. Default `"30s"`.
    #[serde(with = "duration")]
    pub jwks_min_refresh: Duration,
    /// Timeout of one JWKS fetch. Default `"5s"`.
    #[serde(with = "duration")]
    pub jwks_timeout: Duration,
}

impl Default for JwtVerifierConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            algorithms: [
                "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
            ]
            .map(String::from)
            .to_vec(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            require_exp: true,
            cache_size: 4096,
            keys: Vec::new(),
            jwks_url: None,
            jwks_refresh: Duration::from_secs(300),
            jwks_min_refresh: Duration::from_secs(30),
            jwks_timeout: Duration::from_secs(5),
        }
    }
}

/// `[[auth.jwt.keys]]`: one static verification key: a PEM file, or a shared secret.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// Key id matched against the token's `kid`. Default: none (the key is tried for any kid).
    pub kid: Option<String>,
    /// `"rsa"` (RS*, PS*), `"ec"` (ES256/384), `"ed25519"` (EdDSA) or `"hmac"` (HS*). Required.
    #[serde(rename = "type")]
    pub kind: String,
    /// Public key file (PEM) or, for `hmac`, a file holding the secret. One of `file` /
    /// `secret` is required.
    pub file: Option<PathBuf>,
    /// HMAC secret (use `${VAR}`; at least 32 bytes). Redacted in `/config`.
    pub secret: Option<Secret>,
}

/// `[[auth.api_keys]]`: a named API key, stored as the SHA-256 of the key (compute it with
/// `printf %s "$KEY" | sha256sum`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Key name (forwarded identity, rate-limit key `api_key`, logs). Required, unique.
    pub name: String,
    /// SHA-256 of the key: 64 hex digits, optionally prefixed `sha256:`. Required.
    pub sha256: String,
}

/// `[routes.auth]`: what a route requires. With `jwt` and / or `api_key` set, requests without
/// valid credentials get 401; with only `csrf`, just the CSRF guard runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteAuthConfig {
    /// Name of an `[[auth.jwt]]` verifier. Default: JWTs not accepted.
    pub jwt: Option<String>,
    /// Read the JWT from this cookie instead of `Authorization: Bearer`. Default: none.
    pub token_cookie: Option<String>,
    /// Where API keys are read: `"header:<name>"` or `"query:<param>"`. Default: API keys not
    /// accepted.
    pub api_key: Option<String>,
    /// Only these `[[auth.api_keys]]` names are accepted here. Default: any.
    pub api_key_names: Vec<String>,
    /// Claims the token must carry: `"claim"` (present) or `"claim=value"` (equal, or
    /// contained in an array / space-separated claim); dotted paths reach nested claims.
    /// 403 otherwise. Default: none.
    pub required_claims: Vec<String>,
    /// Claim holding the caller's roles (array or space-separated string). Default `"roles"`.
    pub roles_claim: String,
    /// Roles the caller must all have (403 otherwise). Default: none.
    pub roles: Vec<String>,
    /// Verified claims forwarded upstream: claim -> header name. Incoming copies of these
    /// headers are always removed. Default: none.
    pub forward_claims: BTreeMap<String, String>,
    /// Realm in `WWW-Authenticate`. Default `"rampart"`.
    pub realm: String,
    /// CSRF guard for cookie-authenticated unsafe requests. Default: off.
    pub csrf: Option<CsrfConfig>,
}

impl Default for RouteAuthConfig {
    fn default() -> Self {
        Self {
            jwt: None,
            token_cookie: None,
            api_key: None,
            api_key_names: Vec::new(),
            required_claims: Vec::new(),
            roles_claim: "roles".into(),
            roles: Vec::new(),
            forward_claims: BTreeMap::new(),
            realm: "rampart".into(),
            csrf: None,
        }
    }
}

/// `[routes.auth.csrf]`: unsafe requests carrying a cookie must come from an allowed origin
/// (`Origin`, else `Referer`; the request's own host always counts) or carry a double-submit
/// token.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsrfConfig {
    /// Allowed origins, in the CORS syntax (exact, `https://*.example.com`, `/regex/`).
    /// Default: only the request's own host.
    pub origins: Vec<String>,
    /// Only requests carrying this cookie are checked. Default: any cookie.
    pub session_cookie: Option<String>,
    /// Double-submit token cookie; the request passes when `token_header` equals it.
    /// Default: none.
    pub token_cookie: Option<String>,
    /// Header carrying the double-submit token. Default `"x-csrf-token"` (when
    /// `token_cookie` is set).
    pub token_header: Option<String>,
}

/// The JWT algorithm names accepted in `algorithms`.
pub const JWT_ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// Where a route reads API keys: `header:<name>` or `query:<param>`.
pub fn parse_api_key_source(s: &str) -> Result<(&str, &str), String> {
    match s.split_once(':') {
        Some((k @ ("header" | "query"), v)) if !v.is_empty() => Ok((k, v)),
        _ => Err(format!(
            "{s:?}: expected \"header:<name>\" or \"query:<param>\""
        )),
    }
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Semantic checks of `[auth]` and every `routes[].auth`.
pub fn validate(c: &Config, errs: &mut Vec<ConfigError>) {
    let mut err = |path: String, msg: String| errs.push(ConfigError::new(path, msg));
    let mut names = std::collections::HashSet::new();
    for (i, v) in c.auth.jwt.iter().enumerate() {
        let p = |k: &str| format!("auth.jwt[{i}].{k}");
        if v.name.is_empty() {
            err(p("name"), "is required".into());
        } else if !names.insert(v.name.as_str()) {
            err(p("name"), format!("duplicate verifier name {:?}", v.name));
        }
        if v.algorithms.is_empty() {
            err(p("algorithms"), "needs at least one algorithm".into());
        }
        for (j, a) in v.algorithms.iter().enumerate() {
            if !JWT_ALGORITHMS.contains(&a.as_str()) {
                err(
                    format!("auth.jwt[{i}].algorithms[{j}]"),
                    format!(
                        "unknown algorithm {a:?} (one of {})",
                        JWT_ALGORITHMS.join(", ")
                    ),
                );
            }
        }
        if v.keys.is_empty() && v.jwks_url.is_none() {
            err(
                p("keys"),
                "a verifier needs static keys or a jwks_url".into(),
            );
        }
        if let Some(u) = &v.jwks_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            err(
                p("jwks_url"),
                format!("{u:?}: must be an http:// or https:// url"),
            );
        }
        if v.jwks_refresh.is_zero() {
            err(p("jwks_refresh"), "must be greater than 0".into());
        }
        if v.jwks_timeout.is_zero() {
            err(p("jwks_timeout"), "must be greater than 0".into());
        }
        for (j, k) in v.keys.iter().enumerate() {
            let kp = |f: &str| format!("auth.jwt[{i}].keys[{j}].{f}");
            if !matches!(k.kind.as_str(), "rsa" | "ec" | "ed25519" | "hmac") {
                err(
                    kp("type"),
                    format!(
                        "{:?}: expected \"rsa\", \"ec\", \"ed25519\" or \"hmac\"",
                        k.kind
                    ),
                );
            }
            match (&k.file, &k.secret) {
                (None, None) => err(kp("file"), "one of file / secret is required".into()),
                (Some(_), Some(_)) => err(kp("secret"), "give file or secret, not both".into()),
                (None, Some(s)) => {
                    if k.kind != "hmac" {
                        err(kp("secret"), "only hmac keys take a secret".into());
                    } else if s.expose().len() < 32 {
                        err(
                            kp("secret"),
                            "an hmac secret needs at least 32 bytes".into(),
                        );
                    }
                }
                (Some(_), None) => {}
            }
        }
    }
    let mut key_names = std::collections::HashSet::new();
    for (i, k) in c.auth.api_keys.iter().enumerate() {
        let p = |f: &str| format!("auth.api_keys[{i}].{f}");
        if k.name.is_empty() {
            err(p("name"), "is required".into());
        } else if !key_names.insert(k.name.as_str()) {
            err(p("name"), format!("duplicate api key name {:?}", k.name));
        }
        let hex = k.sha256.strip_prefix("sha256:").unwrap_or(&k.sha256);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            err(
                p("sha256"),
                "must be 64 hex digits (the SHA-256 of the key, optionally \"sha256:\"-prefixed)"
                    .into(),
            );
        }
    }
    for (i, r) in c.routes.iter().enumerate() {
        let Some(a) = &r.auth else { continue };
        let p = |f: &str| format!("routes[{i}].auth.{f}");
        if let Some(j) = &a.jwt
            && !names.contains(j.as_str())
        {
            err(
                p("jwt"),
                format!("unknown jwt verifier {j:?} (see [[auth.jwt]])"),
            );
        }
        match &a.api_key {
            Some(s) => {
                if let Err(m) = parse_api_key_source(s) {
                    err(p("api_key"), m);
                } else if let Ok(("header", h)) = parse_api_key_source(s)
                    && !is_header_name(h)
                {
                    err(p("api_key"), format!("{h:?} is not a valid header name"));
                }
                if c.auth.api_keys.is_empty() {
                    err(p("api_key"), "no keys in [[auth.api_keys]]".into());
                }
            }
            None if !a.api_key_names.is_empty() => {
                err(
                    p("api_key_names"),
                    "needs api_key (where keys are read)".into(),
                );
            }
            None => {}
        }
        for (j, n) in a.api_key_names.iter().enumerate() {
            if !key_names.contains(n.as_str()) {
                err(
                    format!("routes[{i}].auth.api_key_names[{j}]"),
                    format!("unknown api key {n:?}"),
                );
            }
        }
        if a.jwt.is_none()
            && (!a.roles.is_empty()
                || !a.required_claims.is_empty()
                || !a.forward_claims.is_empty())
        {
            err(
                p("jwt"),
                "roles, required_claims and forward_claims need a jwt verifier".into(),
            );
        }
        for (claim, h) in &a.forward_claims {
            if !is_header_name(h) {
                err(
                    format!("routes[{i}].auth.forward_claims.{claim}"),
                    format!("{h:?} is not a valid header name"),
                );
            }
        }
        if let Some(cs) = &a.csrf
            && let Some(h) = &cs.token_header
            && !is_header_name(h)
        {
            err(
                p("csrf.token_header"),
                format!("{h:?} is not a valid header name"),
            );
        }
    }
}
