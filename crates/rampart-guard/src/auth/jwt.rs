//! JWT verification: static keys (PEM files, secrets) and JWKS, `exp`/`nbf` with leeway,
//! `iss`, `aud`.
//!
//! Built on `jsonwebtoken` 9 (ring backend, shared with rustls: no aws-lc, no cmake).
//! Supported: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA (Ed25519).
//! The token's `alg` must be in the configured list *and* match the key's family, so an RSA
//! public key can never be used as an HMAC secret (the classic algorithm-confusion attack).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind as JwtErrorKind};

use super::jwks::JwksCache;

/// Key families; a token's `alg` must match its key's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// HS*.
    Hmac,
    /// RS* and PS*.
    Rsa,
    /// ES256, ES384.
    Ec,
    /// EdDSA.
    Ed,
}

impl KeyFamily {
    /// The family of an algorithm.
    pub fn of(alg: Algorithm) -> Self {
        use Algorithm::*;
        match alg {
            HS256 | HS384 | HS512 => Self::Hmac,
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Self::Rsa,
            ES256 | ES384 => Self::Ec,
            EdDSA => Self::Ed,
        }
    }
}

/// A verification key.
#[derive(Clone)]
pub struct VerifyKey {
    /// Key id (`kid`), if any.
    pub kid: Option<String>,
    /// Family of the key.
    pub family: KeyFamily,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

/// A key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("jwt key{}: {source}", kid.as_ref().map(|k| format!(" {k:?}")).unwrap_or_default())]
pub struct KeyError {
    kid: Option<String>,
    #[source]
    source: jsonwebtoken::errors::Error,
}

impl VerifyKey {
    /// An HMAC secret (HS*). Give at least 32 random bytes.
    pub fn hmac(kid: Option<String>, secret: &[u8]) -> Self {
        Self {
            kid,
            family: KeyFamily::Hmac,
            key: DecodingKey::from_secret(secret),
        }
    }

    /// A public key in PEM: RSA (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`), EC (P-256 /
    /// P-384) or Ed25519, for `family`.
    pub fn from_pem(kid: Option<String>, family: KeyFamily, pem: &[u8]) -> Result<Self, KeyError> {
        let key = match family {
            KeyFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            KeyFamily::Ec => DecodingKey::from_ec_pem(pem),
            KeyFamily::Ed => DecodingKey::from_ed_pem(pem),
            KeyFamily::Hmac => Ok(DecodingKey::from_secret(pem)),
        }
        .map_err(|source| KeyError {
            kid: kid.clone(),
            source,
        })?;
        Ok(Self { kid, family, key })
    }
}

impl VerifyKey {
    /// Load a key from a file: PEM for RSA / EC / Ed25519, raw bytes for an HMAC secret.
    pub fn from_file(
        kid: Option<String>,
        family: KeyFamily,
        path: &std::path::Path,
    ) -> Result<Self, KeyFileError> {
        let bytes = std::fs::read(path).map_err(|source| KeyFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        match family {
            KeyFamily::Hmac => Ok(Self::hmac(kid, bytes.trim_ascii())),
            _ => Self::from_pem(kid, family, &bytes).map_err(|source| KeyFileError::Key {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// A key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("jwt key file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a key of the expected family.
    #[error("jwt key file {path}: {source}")]
    Key {
        /// The path.
        path: String,
        /// The key error.
        #[source]
        source: KeyError,
    },
}

/// Why a token was refused (also the `reason` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts, bad JSON, or too long.
    #[error("malformed token")]
    Malformed,
    /// `alg` not in the allowed list (or `none`).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No key with this `kid` (after one JWKS refresh).
    #[error("unknown key id")]
    UnknownKey,
    /// No key verified the signature.
    #[error("bad signature")]
    BadSignature,
    /// `exp` in the past (beyond leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` in the future (beyond leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` not accepted.
    #[error("issuer not accepted")]
    BadIssuer,
    /// `aud` not accepted.
    #[error("audience not accepted")]
    BadAudience,
    /// A required registered claim (`exp`) is missing.
    #[error("required claim missing")]
    MissingClaim,
}

impl JwtError {
    /// Metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm",
            Self::UnknownKey => "unknown_kid",
            Self::BadSignature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadIssuer => "issuer",
            Self::BadAudience => "audience",
            Self::MissingClaim => "missing_claim",
        }
    }
}

fn map_err(e: &jsonwebtoken::errors::Error) -> JwtError {
    match e.kind() {
        JwtErrorKind::InvalidSignature => JwtError::BadSignature,
        JwtErrorKind::ExpiredSignature => JwtError::Expired,
        JwtErrorKind::ImmatureSignature => JwtError::NotYetValid,
        JwtErrorKind::InvalidIssuer => JwtError::BadIssuer,
        JwtErrorKind::InvalidAudience => JwtError::BadAudience,
        JwtErrorKind::MissingRequiredClaim(_) => JwtError::MissingClaim,
        JwtErrorKind::InvalidAlgorithm | JwtErrorKind::MissingAlgorithm => {
            JwtError::AlgorithmNotAllowed
        }
        // Key/format problems with a given key: treat as "this key does not verify".
        JwtErrorKind::InvalidEcdsaKey
        | JwtErrorKind::InvalidRsaKey(_)
        | JwtErrorKind::InvalidKeyFormat
        | JwtErrorKind::Crypto(_) => JwtError::BadSignature,
        _ => JwtError::Malformed,
    }
}

/// Claim checks shared by every route using a verifier.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Accepted algorithms (default: all asymmetric ones; add HS* explicitly when using
    /// secrets).
    pub algorithms: Vec<Algorithm>,
    /// Accepted issuers (`iss`); empty = not checked.
    pub issuers: Vec<String>,
    /// Accepted audiences (`aud`); empty = not checked.
    pub audiences: Vec<String>,
    /// Clock skew allowed for `exp` / `nbf` (default 60 s).
    pub leeway: Duration,
    /// Require an `exp` claim (default true).
    pub require_exp: bool,
    /// Verified tokens remembered, so a client sending the same token again skips the
    /// signature check and the JSON parse (default 4096; 0 = off). See [`JwtVerifier`].
    pub cache_size: usize,
}

impl Default for JwtSettings {
    fn default() -> Self {
        use Algorithm::*;
        Self {
            algorithms: vec![
                RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
            ],
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            require_exp: true,
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

/// Maximum token length accepted (bytes); longer tokens are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Default [`JwtSettings::cache_size`].
pub const DEFAULT_CACHE_SIZE: usize = 4096;

/// Tokens longer than this are verified every time, never remembered (bounds the cache's
/// memory: at most `cache_size` x this, plus the claims).
const MAX_CACHED_TOKEN_LEN: usize = 2048;

/// Verifies tokens against static keys and, optionally, a JWKS.
///
/// A verified token is remembered with its claims (a bounded cache: `cache_size` tokens in
/// 16 shards, an arbitrary entry evicted when a shard is full), so the common case, a client
/// sending the same token on every request, costs one hash lookup instead of a signature
/// check and two JSON parses. Only the time-dependent checks are repeated on a hit: `exp`
/// and `nbf` against the current time with the leeway; an entry that fails them is dropped
/// and the token verified afresh (which gives the precise error). Everything else (signature,
/// `alg`, `iss`, `aud`, required claims) depends on the token and the keys only. A token
/// verified with a JWKS key is trusted from the cache only while the key set it was verified
/// with is still the current one, so a key removed from the JWKS stops verifying at once.
pub struct JwtVerifier {
    keys: Vec<VerifyKey>,
    jwks: Option<Arc<JwksCache>>,
    validations: Vec<(Algorithm, Validation)>,
    leeway: u64,
    cache: Option<TokenCache>,
}

/// A verified token in the cache.
struct Verified {
    claims: Arc<serde_json::Value>,
    exp: Option<u64>,
    nbf: Option<u64>,
    /// The JWKS key set that verified it; `None` for a static key.
    jwks_keys: Option<Arc<Vec<VerifyKey>>>,
}

/// Sharded map token -> verified claims (hashbrown with a randomly seeded hasher, so
/// crafted tokens cannot aim at one hash chain).
struct TokenCache {
    shards: Box<[Shard]>,
    per_shard: usize,
}

type Shard = Mutex<hashbrown::HashMap<Box<str>, Verified>>;

const TOKEN_CACHE_SHARDS: usize = 16;

impl TokenCache {
    fn new(size: usize) -> Option<Self> {
        (size > 0).then(|| Self {
            shards: (0..TOKEN_CACHE_SHARDS)
                .map(|_| Mutex::new(hashbrown::HashMap::new()))
                .collect(),
            per_shard: size.div_ceil(TOKEN_CACHE_SHARDS),
        })
    }

    fn shard(&self, token: &str) -> &Shard {
        // The last characters are the signature: spread well for honest tokens; a client
        // choosing them only chooses which lock it shares.
        let b = token.as_bytes();
        let x = b
            .iter()
            .rev()
            .take(4)
            .fold(0usize, |a, &c| a * 31 + c as usize);
        &self.shards[x % self.shards.len()]
    }

    /// The claims of `token` if it is cached and still valid at `now` (Unix seconds);
    /// `jwks_now` gives the current JWKS key set (asked only for JWKS-verified entries).
    fn get(
        &self,
        token: &str,
        now: u64,
        leeway: u64,
        jwks_now: impl FnOnce() -> Option<Arc<Vec<VerifyKey>>>,
    ) -> Option<Arc<serde_json::Value>> {
        let mut map = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        let v = map.get(token)?;
        let fresh = v.exp.is_none_or(|exp| exp.saturating_add(leeway) >= now)
            && v.nbf.is_none_or(|nbf| nbf <= now.saturating_add(leeway))
            && match &v.jwks_keys {
                None => true,
                Some(was) => jwks_now().is_some_and(|cur| Arc::ptr_eq(was, &cur)),
            };
        if fresh {
            Some(v.claims.clone())
        } else {
            map.remove(token);
            None
        }
    }

    fn put(
        &self,
        token: &str,
        claims: &Arc<serde_json::Value>,
        jwks_keys: Option<Arc<Vec<VerifyKey>>>,
    ) {
        if token.len() > MAX_CACHED_TOKEN_LEN {
            return;
        }
        let time = |name: &str| match claims.get(name) {
            None => Some(None),
            Some(v) => v.as_u64().map(Some),
        };
        // A time claim we cannot read as whole seconds: verify such tokens every time.
        let (Some(exp), Some(nbf)) = (time("exp"), time("nbf")) else {
            return;
        };
        let mut map = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.per_shard
            && !map.contains_key(token)
            && let Some(k) = map.keys().next().cloned()
        {
            map.remove(&k);
        }
        map.insert(
            token.into(),
            Verified {
                claims: claims.clone(),
                exp,
                nbf,
                jwks_keys,
            },
        );
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys)
            .field("jwks", &self.jwks.is_some())
            .field(
                "algorithms",
                &self.validations.iter().map(|v| v.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier with static `keys`, an optional JWKS cache and claim `settings`.
    pub fn new(keys: Vec<VerifyKey>, jwks: Option<Arc<JwksCache>>, settings: &JwtSettings) -> Self {
        let validations = settings
            .algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = settings.leeway.as_secs();
                v.validate_exp = true;
                v.validate_nbf = true;
                if settings.require_exp {
                    v.set_required_spec_claims(&["exp"]);
                } else {
                    v.set_required_spec_claims::<&str>(&[]);
                }
                if !settings.issuers.is_empty() {
                    v.set_issuer(&settings.issuers);
                }
                if settings.audiences.is_empty() {
                    v.validate_aud = false;
                } else {
                    v.set_audience(&settings.audiences);
                }
                (alg, v)
            })
            .collect();
        Self {
            keys,
            jwks,
            validations,
            leeway: settings.leeway.as_secs(),
            cache: TokenCache::new(settings.cache_size),
        }
    }

    /// Verify `token` and return its claims.
    pub async fn verify(&self, token: &str) -> Result<Arc<serde_json::Value>, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let Some(cache) = &self.cache else {
            return self.verify_uncached(token).await.map(|(c, _)| Arc::new(c));
        };
        let jwks_now = || self.jwks.as_ref().map(|j| j.keys());
        if let Some(claims) = cache.get(token, unix_now(), self.leeway, jwks_now) {
            return Ok(claims);
        }
        let (claims, jwks_keys) = self.verify_uncached(token).await?;
        let claims = Arc::new(claims);
        cache.put(token, &claims, jwks_keys);
        Ok(claims)
    }

    /// The claims of `token` if this verifier has verified it before and it is still within
    /// `exp` / `nbf`: a cache lookup only, never a signature check (`None` otherwise).
    pub fn cached_claims(&self, token: &str) -> Option<Arc<serde_json::Value>> {
        let jwks_now = || self.jwks.as_ref().map(|j| j.keys());
        self.cache
            .as_ref()?
            .get(token, unix_now(), self.leeway, jwks_now)
    }

    /// Verify with the keys; also says which JWKS key set verified it (`None`: a static key).
    async fn verify_uncached(
        &self,
        token: &str,
    ) -> Result<(serde_json::Value, Option<Arc<Vec<VerifyKey>>>), JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let validation = self
            .validations
            .iter()
            .find(|(a, _)| *a == header.alg)
            .map(|(_, v)| v)
            .ok_or(JwtError::AlgorithmNotAllowed)?;
        let family = KeyFamily::of(header.alg);
        let kid = header.kid.as_deref();

        let statics = self.keys.iter().filter(|k| matches_key(k, family, kid));
        if let Some(r) = try_keys(statics, token, validation) {
            return r.map(|c| (c, None));
        }
        let Some(jwks) = &self.jwks else {
            return Err(if kid.is_some() {
                JwtError::UnknownKey
            } else {
                JwtError::BadSignature
            });
        };
        let keys = jwks.keys();
        if let Some(r) = try_keys(
            keys.iter().filter(|k| matches_key(k, family, kid)),
            token,
            validation,
        ) {
            return r.map(|c| (c, Some(keys)));
        }
        // Unknown kid (or no key of this family): one rate-limited refresh, then retry.
        if jwks.refresh_for_unknown_kid().await {
            let keys = jwks.keys();
            if let Some(r) = try_keys(
                keys.iter().filter(|k| matches_key(k, family, kid)),
                token,
                validation,
            ) {
                return r.map(|c| (c, Some(keys)));
            }
        }
        Err(JwtError::UnknownKey)
    }
}

fn matches_key(k: &VerifyKey, family: KeyFamily, kid: Option<&str>) -> bool {
    k.family == family
        && match (kid, k.kid.as_deref()) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => true, // a key without kid verifies any kid
            (None, _) => true,
        }
}

/// Try keys in order; `None` if there was no candidate at all.
fn try_keys<'a>(
    keys: impl Iterator<Item = &'a VerifyKey>,
    token: &str,
    validation: &Validation,
) -> Option<Result<serde_json::Value, JwtError>> {
    let mut last = None;
    for k in keys {
        match jsonwebtoken::decode::<serde_json::Value>(token, &k.key, validation) {
            Ok(data) => return Some(Ok(data.claims)),
            Err(e) => {
                let e = map_err(&e);
                if e != JwtError::BadSignature {
                    // Signature was fine (claims are checked after it): a definite answer.
                    return Some(Err(e));
                }
                last = Some(Err(e));
            }
        }
    }
    last
}

/// Decode a token's payload *without verifying it* (for rate-limit keys only).
pub fn peek_claim(token: &str) -> Option<serde_json::Value> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let _header = parts.next()?;
    let payload = parts.next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The claim at a dotted `path` (`"sub"`, `"realm_access.roles"`). A top-level claim whose name
/// itself contains dots (`"https://example.com/roles"`) is found first.
pub fn claim_at<'a>(claims: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut cur = claims;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// An algorithm name from config (`"RS256"`, `"EdDSA"`, ...).
pub fn parse_algorithm(s: &str) -> Option<Algorithm> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: serde_json::Value) -> Arc<serde_json::Value> {
        Arc::new(v)
    }

    #[test]
    fn cache_checks_exp_and_nbf_on_every_hit() {
        let c = TokenCache::new(64).unwrap();
        let a = claims(serde_json::json!({"sub": "a", "exp": 1000, "nbf": 500}));
        c.put("tok.a.sig1", &a, None);
        let got = c.get("tok.a.sig1", 1000, 0, || None).unwrap();
        assert!(Arc::ptr_eq(&got, &a), "a hit returns the cached claims");
        assert!(
            c.get("tok.a.sig1", 1030, 30, || None).is_some(),
            "leeway counts"
        );
        assert!(
            c.get("tok.a.sig1", 499, 0, || None).is_none(),
            "before nbf: refused"
        );
        // ...and the refused entry was dropped.
        assert!(c.get("tok.a.sig1", 600, 0, || None).is_none());
        c.put("tok.a.sig1", &a, None);
        assert!(
            c.get("tok.a.sig1", 1001, 0, || None).is_none(),
            "after exp: refused"
        );
        assert!(
            c.get("tok.a.sig1", 900, 0, || None).is_none(),
            "expired entry dropped"
        );
        assert!(c.get("other", 900, 0, || None).is_none());
    }

    #[test]
    fn cache_skips_unreadable_times_and_long_tokens() {
        let c = TokenCache::new(64).unwrap();
        c.put("t1", &claims(serde_json::json!({"exp": 1.5e9})), None);
        c.put("t2", &claims(serde_json::json!({"exp": "soon"})), None);
        let long = "x".repeat(MAX_CACHED_TOKEN_LEN + 1);
        c.put(&long, &claims(serde_json::json!({"sub": "a"})), None);
        c.put("t3", &claims(serde_json::json!({"sub": "no exp"})), None);
        assert!(c.get("t1", 0, 0, || None).is_none());
        assert!(c.get("t2", 0, 0, || None).is_none());
        assert!(c.get(&long, 0, 0, || None).is_none());
        assert!(c.get("t3", u64::MAX, 0, || None).is_some());
    }

    #[test]
    fn cache_trusts_jwks_entries_only_under_the_same_key_set() {
        let c = TokenCache::new(64).unwrap();
        let set1: Arc<Vec<VerifyKey>> = Arc::new(Vec::new());
        let set2: Arc<Vec<VerifyKey>> = Arc::new(Vec::new());
        c.put(
            "t",
            &claims(serde_json::json!({"exp": 10})),
            Some(set1.clone()),
        );
        assert!(c.get("t", 0, 0, || Some(set1.clone())).is_some());
        assert!(
            c.get("t", 0, 0, || Some(set2.clone())).is_none(),
            "key set rotated"
        );
        assert!(
            c.get("t", 0, 0, || Some(set1.clone())).is_none(),
            "and dropped"
        );
        c.put(
            "t",
            &claims(serde_json::json!({"exp": 10})),
            Some(set1.clone()),
        );
        assert!(c.get("t", 0, 0, || None).is_none(), "no JWKS any more");
    }

    #[test]
    fn cache_is_bounded() {
        assert!(TokenCache::new(0).is_none());
        let c = TokenCache::new(32).unwrap();
        let x = claims(serde_json::json!({"exp": 10}));
        for i in 0..10_000 {
            c.put(&format!("token-{i}"), &x, None);
        }
        let total: usize = c.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= 32, "{total} entries for a cache of 32");
        assert!(total >= 16, "{total}: the shards fill up");
        assert!(
            c.get("token-9999", 0, 0, || None).is_some(),
            "the newest is kept"
        );
    }
}
