//! Rate limits: keys, the bucket store, the per-route policy and the layer (stack layer 10).
//!
//! A route has any number of [`RateLimit`]s (e.g. `login`: 5/min per IP; `api`: 60/min per
//! API key and 1000/s for the whole route). Each limit extracts a key from the request
//! ([`KeySource`]), asks the [`RateLimitStore`] for a [GCRA](crate::gcra) decision, and the
//! request is refused with 429 if any enforcing limit refuses. Limits in dry-run mode only
//! count, log and emit an audit event.
//!
//! ## Headers
//!
//! Refusals carry `Retry-After` (set by the rescue layer from
//! [`ErrorKind::RateLimited`]) and the `RateLimit-Policy` / `RateLimit` fields of
//! **draft-ietf-httpapi-ratelimit-headers-10** (structured-field lists, one item per limit):
//!
//! ```text
//! RateLimit-Policy: "per_ip";q=5;w=60
//! RateLimit: "per_ip";r=0;t=60
//! ```
//!
//! `q` is the burst (the quota a fresh key has), `w` the seconds a full burst takes to refill,
//! `r` the requests left now, `t` the seconds until the quota is fully restored (GCRA refills
//! continuously; the exact wait for the *next* request is `Retry-After`). Allowed responses
//! carry the same fields when [`RateLimitPolicy::headers_on_success`] is set.
//!
//! ## Store
//!
//! [`MemoryStore`] keeps one `u64` (the TAT) per key in 64 shards of `Mutex<HashTable>`
//! (hashbrown, foldhash with a per-store random seed; the key is hashed once): a
//! decision locks one shard for a hash lookup and an add, never across an await, so contention
//! is spread and the critical section is tens of nanoseconds. A plain sharded map was chosen
//! over a concurrent-map crate because eviction needs a whole-shard view (drop keys whose TAT
//! is in the past, which by GCRA's definition are indistinguishable from new keys) and a
//! `Mutex<HashTable>` makes that trivial and bounded. Each shard holds at most
//! `max_keys / 64` keys; when full it first drops idle keys (at most once per second per
//! shard), then evicts the least-constrained of a small sample, so memory stays bounded under a
//! flood of millions of distinct keys (an evicted active key simply starts with a full bucket).
//!
//! The [`RateLimitStore`] trait returns a future, so a Redis store (one key per bucket holding
//! the TAT, updated by a Lua script with the same [`Gcra::decide`] arithmetic on the server's
//! clock) can replace the memory store without changing the layer.

use std::{
    borrow::Cow,
    future::{Future, Ready, ready},
    hash::{BuildHasher, Hash},
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use hashbrown::{DefaultHashBuilder, HashTable};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use ipnet::IpNet;
use rampart_core::{BoxError, ClientIp, Error, ErrorKind, RoutePolicy};
use tokio::time::Instant;

use crate::{
    auth::{
        Identity,
        apikey::{ApiKeyLookup, ApiKeyVerdict},
        jwt::{JwtVerifier, peek_claim},
    },
    events::{EventSink, SecurityEvent, SecurityEventKind},
    future::{After, GuardFuture},
    gcra::{Gcra, GcraDecision},
    metrics::LimitCounters,
};

/// `RateLimit-Policy` header name.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` header name.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// What a limit counts by.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The client IP ([`ClientIp`]).
    Ip,
    /// The client IP's network: IPv4 addresses truncated to `v4` bits, IPv6 to `v6` bits
    /// (e.g. `/24` and `/64`), so one host cannot dodge by rotating addresses of its block.
    IpPrefix {
        /// IPv4 prefix length (0..=32).
        v4: u8,
        /// IPv6 prefix length (0..=128).
        v6: u8,
    },
    /// The whole route (one bucket).
    Route,
    /// The value of a request header.
    Header(HeaderName),
    /// The value of a cookie.
    Cookie(String),
    /// A JWT claim (top-level name or dotted path). Taken from the verified [`Identity`] if an
    /// auth layer ran earlier, otherwise read (unverified) from the bearer token: rate limiting
    /// runs before auth (layer 10 < 12), and a forged claim only buys a bucket whose requests
    /// then fail authentication. With the route's verifier attached
    /// ([`KeySource::with_jwt_verifier`]), a token it has verified before is read from its
    /// cache instead of being decoded again.
    JwtClaim(String, Option<Arc<JwtVerifier>>),
    /// The name of the API key presented. Taken from the [`Identity`] if present, otherwise
    /// looked up (hash + constant-time compare) in the route's key set; unknown keys share
    /// the bucket `"unknown"`.
    ApiKeyName(Arc<ApiKeyLookup>),
}

/// A config string could not be parsed (rate, key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?}: {expected}")]
pub struct ParseError {
    /// What was parsed (`rate`, `key`, `trigger`).
    pub what: &'static str,
    /// The input.
    pub value: String,
    /// What would have been accepted.
    pub expected: &'static str,
}

/// Parse a rate such as `"5/1m"`, `"1000/s"`, `"60/min"`, `"10/250ms"` into (count, period).
/// Units: `ms`, `s`/`sec`, `m`/`min`, `h`/`hour`, `d`/`day`, with an optional leading number.
pub fn parse_rate(s: &str) -> Result<(NonZeroU32, Duration), ParseError> {
    let err = || ParseError {
        what: "rate",
        value: s.to_owned(),
        expected: "\"N/period\", e.g. \"5/1m\", \"1000/s\", \"60/min\"",
    };
    let (n, per) = s.split_once('/').ok_or_else(err)?;
    let n: NonZeroU32 = n.trim().parse().map_err(|_| err())?;
    let per = per.trim();
    let split = per.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = per.split_at(split);
    let num: u64 = if num.is_empty() {
        1
    } else {
        num.parse().map_err(|_| err())?
    };
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" | "sec" | "second" => 1000,
        "m" | "min" | "minute" => 60_000,
        "h" | "hour" => 3_600_000,
        "d" | "day" => 86_400_000,
        _ => return Err(err()),
    };
    let ms = num
        .checked_mul(unit_ms)
        .filter(|ms| *ms > 0)
        .ok_or_else(err)?;
    Ok((n, Duration::from_millis(ms)))
}

impl KeySource {
    /// Parse a key spec: `ip`, `ip_prefix` (with the given prefix lengths), `route`,
    /// `header:<name>`, `cookie:<name>`, `jwt_claim:<path>`, `api_key` (needs the route's
    /// key set in `api_keys`).
    pub fn parse(
        s: &str,
        prefix_v4: u8,
        prefix_v6: u8,
        api_keys: Option<Arc<ApiKeyLookup>>,
    ) -> Result<Self, ParseError> {
        let err = |expected| ParseError {
            what: "key",
            value: s.to_owned(),
            expected,
        };
        const KINDS: &str =
            "ip, ip_prefix, route, header:<name>, cookie:<name>, jwt_claim:<path> or api_key";
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match (kind, arg) {
            ("ip", "") => Ok(Self::Ip),
            ("ip_prefix", "") => {
                if prefix_v4 > 32 || prefix_v6 > 128 {
                    return Err(err("prefix lengths within 0..=32 (v4) and 0..=128 (v6)"));
                }
                Ok(Self::IpPrefix {
                    v4: prefix_v4,
                    v6: prefix_v6,
                })
            }
            ("route", "") => Ok(Self::Route),
            ("header", name) if !name.is_empty() => HeaderName::from_bytes(name.as_bytes())
                .map(Self::Header)
                .map_err(|_| err("a valid header name")),
            ("cookie", name) if !name.is_empty() => Ok(Self::Cookie(name.to_owned())),
            ("jwt_claim", path) if !path.is_empty() => Ok(Self::JwtClaim(path.to_owned(), None)),
            ("api_key", "") => api_keys
                .map(Self::ApiKeyName)
                .ok_or_else(|| err("an api_key key needs the route's auth.api_keys")),
            _ => Err(err(KINDS)),
        }
    }

    /// Attach the route's JWT verifier to a `jwt_claim` key (no effect on other kinds), so
    /// tokens it has already verified are not decoded again here.
    pub fn with_jwt_verifier(self, verifier: Option<Arc<JwtVerifier>>) -> Self {
        match self {
            Self::JwtClaim(claim, _) => Self::JwtClaim(claim, verifier),
            other => other,
        }
    }

    /// A short label for logs (`ip`, `ip_prefix`, `route`, `header`, `cookie`, `jwt_claim`,
    /// `api_key`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::IpPrefix { .. } => "ip_prefix",
            Self::Route => "route",
            Self::Header(_) => "header",
            Self::Cookie(_) => "cookie",
            Self::JwtClaim(..) => "jwt_claim",
            Self::ApiKeyName(_) => "api_key",
        }
    }

    /// Extract the key value from a request. `None` when the request has no such key (no
    /// header, no cookie...): the limit does not apply to it. Borrows from the request where
    /// it can (a header or cookie value, a key name), so a decision allocates nothing.
    pub fn extract<'a, B>(&'a self, req: &'a http::Request<B>) -> Option<KeyValue<'a>> {
        self.extract_sharing(req, &mut None)
    }

    /// [`KeySource::extract`]; an `api_key` source that had to hash the presented key leaves
    /// the verdict in `share`, for the caller to put into the request's extensions (the auth
    /// layer then reuses it).
    fn extract_sharing<'a, B>(
        &'a self,
        req: &'a http::Request<B>,
        share: &mut Option<ApiKeyVerdict>,
    ) -> Option<KeyValue<'a>> {
        match self {
            Self::Ip => req
                .extensions()
                .get::<ClientIp>()
                .map(|c| KeyValue::Ip(c.0.to_canonical())),
            Self::IpPrefix { v4, v6 } => {
                let ip = req.extensions().get::<ClientIp>()?.0.to_canonical();
                let len = if ip.is_ipv4() { *v4 } else { *v6 };
                IpNet::new(ip, len).ok().map(|n| KeyValue::Net(n.trunc()))
            }
            Self::Route => Some(KeyValue::Whole),
            Self::Header(name) => req
                .headers()
                .get(name)
                .map(|v| KeyValue::Text(String::from_utf8_lossy(v.as_bytes()))),
            Self::Cookie(name) => {
                cookie_value(req.headers(), name).map(|v| KeyValue::Text(Cow::Borrowed(v)))
            }
            Self::JwtClaim(claim, verifier) => {
                if let Some(Identity::Jwt(claims)) = req.extensions().get::<Identity>() {
                    return claim_string(claims, claim).map(|s| KeyValue::Text(s.into()));
                }
                let token = bearer_token(req.headers())?;
                if let Some(claims) = verifier.as_ref().and_then(|v| v.cached_claims(token)) {
                    return claim_string(&claims, claim).map(|s| KeyValue::Text(s.into()));
                }
                let claims = peek_claim(token)?;
                claim_string(&claims, claim).map(|s| KeyValue::Text(s.into()))
            }
            Self::ApiKeyName(lookup) => {
                if let Some(Identity::ApiKey(name)) = req.extensions().get::<Identity>() {
                    return Some(KeyValue::Text(Cow::Borrowed(name)));
                }
                let name = match lookup.shared(req) {
                    Some(name) => name,
                    None => {
                        let (presented, raw) = lookup.source.extract_raw(req)?;
                        let name = lookup.keys.verify(presented.as_bytes());
                        *share = raw.and_then(|raw| lookup.verdict_from(raw, name));
                        name
                    }
                };
                // Unknown keys share one bucket.
                Some(KeyValue::Text(Cow::Borrowed(name.map_or("unknown", |n| n))))
            }
        }
    }
}

/// Value of the `Authorization: Bearer` token, if any.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The value of cookie `name` across all `Cookie` headers.
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// A claim as a string: strings as-is, numbers and booleans formatted, dotted paths followed.
pub(crate) fn claim_string(claims: &serde_json::Value, path: &str) -> Option<String> {
    let v = crate::auth::jwt::claim_at(claims, path)?;
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An extracted key value. Borrowed from the request (or the limit) while a decision is made;
/// owned ([`KeyValue::into_owned`]) in a stored bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValue<'a> {
    /// One address.
    Ip(IpAddr),
    /// A network (IP prefix).
    Net(IpNet),
    /// Route-wide.
    Whole,
    /// A header, cookie, claim or key name (header bytes that are not UTF-8 are replaced
    /// lossily).
    Text(Cow<'a, str>),
}

impl KeyValue<'_> {
    /// The same value, owning its text.
    pub fn into_owned(self) -> KeyValue<'static> {
        match self {
            Self::Ip(ip) => KeyValue::Ip(ip),
            Self::Net(n) => KeyValue::Net(n),
            Self::Whole => KeyValue::Whole,
            Self::Text(t) => KeyValue::Text(Cow::Owned(t.into_owned())),
        }
    }
}

/// The identity of one bucket: the limit's stable id (`route/limit`) and the key value. A
/// lookup borrows both; a stored bucket owns them (`BucketKey<'static>`). Borrowed and owned
/// keys hash and compare alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey<'a> {
    /// `route/limit`, stable across reloads so buckets survive them.
    pub limit: Cow<'a, Arc<str>>,
    /// The extracted value.
    pub value: KeyValue<'a>,
}

impl<'a> BucketKey<'a> {
    /// A key for limit id `limit` (owned: an `Arc` clone, no copy of the text).
    pub fn new(limit: Arc<str>, value: KeyValue<'a>) -> Self {
        Self {
            limit: Cow::Owned(limit),
            value,
        }
    }

    /// The same key, owning everything (what a store keeps).
    pub fn into_owned(self) -> BucketKey<'static> {
        BucketKey {
            limit: Cow::Owned(self.limit.into_owned()),
            value: self.value.into_owned(),
        }
    }
}

/// A store failure (only remote stores can fail; the memory store never does).
#[derive(Debug, thiserror::Error)]
#[error("rate-limit store: {0}")]
pub struct StoreError(#[source] pub BoxError);

/// Where buckets live. The memory store answers at once ([`RateLimitStore::check_now`]); a
/// Redis store would answer through [`RateLimitStore::check`]'s future, running the same GCRA
/// arithmetic in a script on the server.
pub trait RateLimitStore: Send + Sync + 'static {
    /// The future of one decision.
    type Future: Future<Output = Result<GcraDecision, StoreError>> + Send + 'static;

    /// Decide one request of weight `cost` against bucket `key` with limit `gcra`, updating the
    /// bucket when allowed.
    fn check(&self, key: BucketKey<'static>, gcra: &Gcra, cost: u32) -> Self::Future;

    /// The same decision made at once, on a borrowed key, by a store that can (an in-process
    /// one): the layer then needs neither an owned key nor a future. `None` (the default) =
    /// use [`RateLimitStore::check`]. A store answers either every call or none.
    fn check_now(&self, key: &BucketKey<'_>, gcra: &Gcra, cost: u32) -> Option<GcraDecision> {
        let _ = (key, gcra, cost);
        None
    }
}

const SHARDS: usize = 64;
const SAMPLE: usize = 8;

struct Shard {
    table: HashTable<(BucketKey<'static>, u64)>,
    next_sweep: u64,
}

/// In-process bucket store: sharded, bounded, idle keys evicted. Clone the `Arc` to share it
/// between configs (it outlives reloads).
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: DefaultHashBuilder,
    per_shard_cap: usize,
    epoch: Instant,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_keys", &(self.per_shard_cap * SHARDS))
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store holding at most `max_keys` buckets (rounded up to a multiple of 64, at least 64).
    /// Its clock starts now on `tokio::time`.
    pub fn new(max_keys: usize) -> Self {
        let per_shard_cap = max_keys.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    table: HashTable::new(),
                    next_sweep: 0,
                })
            })
            .collect();
        Self {
            shards,
            // foldhash, seeded randomly per store: fast, and not predictable by clients.
            hasher: DefaultHashBuilder::default(),
            per_shard_cap,
            epoch: Instant::now(),
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Decide at an explicit instant (used by [`RateLimitStore::check`] with `Instant::now()`,
    /// and by benches). The key is hashed once: bits 40..46 pick the shard, so they stay
    /// independent of the bits the table itself uses.
    pub fn check_at(
        &self,
        key: &BucketKey<'_>,
        gcra: &Gcra,
        cost: u32,
        now: Instant,
    ) -> GcraDecision {
        let now = self.nanos(now);
        let hash = self.hasher.hash_one(key);
        let idx = ((hash >> 40) as usize) % SHARDS;
        let Some(lock) = self.shards.get(idx) else {
            return gcra.decide(None, now, cost).0;
        };
        // A poisoned shard only means another thread panicked mid-update of a u64: the data is
        // still a valid table, keep using it.
        let mut shard = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, tat)) = shard.table.find_mut(hash, |(k, _)| k == key) {
            let (d, new) = gcra.decide(Some(*tat), now, cost);
            if let Some(new) = new {
                *tat = new;
            }
            return d;
        }
        let (d, new) = gcra.decide(None, now, cost);
        if let Some(new) = new {
            if shard.table.len() >= self.per_shard_cap {
                make_room(&mut shard, now, self.per_shard_cap, &self.hasher);
            }
            let hasher = &self.hasher;
            shard
                .table
                .insert_unique(hash, (key.clone().into_owned(), new), |(k, _)| {
                    hasher.hash_one(k)
                });
        }
        d
    }

    /// Drop every idle bucket (TAT in the past). Call periodically (see
    /// [`MemoryStore::spawn_sweeper`]); eviction on insert keeps memory bounded regardless.
    pub fn sweep(&self) -> usize {
        let now = self.nanos(Instant::now());
        let mut removed = 0;
        for lock in self.shards.iter() {
            let mut shard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let before = shard.table.len();
            shard.table.retain(|(_, tat)| !Gcra::is_idle(*tat, now));
            removed += before - shard.table.len();
        }
        removed
    }

    /// Buckets currently held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).table.len())
            .sum()
    }

    /// `true` when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sweep every `every` in a background task until the store is dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { break };
                store.sweep();
            }
        })
    }
}

fn make_room(shard: &mut Shard, now: u64, cap: usize, hasher: &DefaultHashBuilder) {
    const SWEEP_EVERY_NS: u64 = 1_000_000_000;
    if now >= shard.next_sweep {
        shard.table.retain(|(_, tat)| !Gcra::is_idle(*tat, now));
        shard.next_sweep = now.saturating_add(SWEEP_EVERY_NS);
        if shard.table.len() < cap {
            return;
        }
    }
    // Still full: evict the sampled bucket closest to full (smallest TAT).
    let victim = shard
        .table
        .iter()
        .take(SAMPLE)
        .min_by_key(|(_, tat)| *tat)
        .map(|(k, _)| k.clone());
    if let Some(k) = victim {
        let h = hasher.hash_one(&k);
        if let Ok(entry) = shard.table.find_entry(h, |(x, _)| *x == k) {
            entry.remove();
        }
    }
}

impl RateLimitStore for MemoryStore {
    type Future = Ready<Result<GcraDecision, StoreError>>;

    fn check(&self, key: BucketKey<'static>, gcra: &Gcra, cost: u32) -> Self::Future {
        ready(Ok(self.check_at(&key, gcra, cost, Instant::now())))
    }

    fn check_now(&self, key: &BucketKey<'_>, gcra: &Gcra, cost: u32) -> Option<GcraDecision> {
        Some(self.check_at(key, gcra, cost, Instant::now()))
    }
}

impl<T: RateLimitStore> RateLimitStore for Arc<T> {
    type Future = T::Future;
    fn check(&self, key: BucketKey<'static>, gcra: &Gcra, cost: u32) -> Self::Future {
        (**self).check(key, gcra, cost)
    }
    fn check_now(&self, key: &BucketKey<'_>, gcra: &Gcra, cost: u32) -> Option<GcraDecision> {
        (**self).check_now(key, gcra, cost)
    }
}

/// A limit name was not a safe token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("rate limit name {0:?}: use 1-64 characters of [A-Za-z0-9_.-]")]
pub struct InvalidLimitName(pub String);

/// One compiled limit of a route.
#[derive(Debug, Clone)]
pub struct RateLimit {
    name: Arc<str>,
    bucket_id: Arc<str>,
    gcra: Gcra,
    key: KeySource,
    dry_run: bool,
    counters: LimitCounters,
    /// `"name";q=B;w=W`: this limit's `RateLimit-Policy` item.
    policy_item: String,
    /// `"name";r=`: the start of this limit's `RateLimit` item.
    state_prefix: String,
}

impl RateLimit {
    /// A limit named `name` (used in headers, metrics and events) on route `route`.
    pub fn new(
        route: &str,
        name: &str,
        gcra: Gcra,
        key: KeySource,
    ) -> Result<Self, InvalidLimitName> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
        if !ok {
            return Err(InvalidLimitName(name.to_owned()));
        }
        let w = ceil_secs(gcra.window()).max(1);
        Ok(Self {
            name: name.into(),
            bucket_id: format!("{route}/{name}").into(),
            policy_item: format!("\"{name}\";q={};w={w}", gcra.burst()),
            state_prefix: format!("\"{name}\";r="),
            gcra,
            key,
            dry_run: false,
            counters: LimitCounters::default(),
        })
    }

    /// Only count and log refusals; let the request pass.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Count decisions in these counters (see [`crate::GuardMetrics::limit_counters`]).
    pub fn with_counters(mut self, counters: LimitCounters) -> Self {
        self.counters = counters;
        self
    }

    /// The limit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limit's algorithm parameters.
    pub fn gcra(&self) -> &Gcra {
        &self.gcra
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A route's rate limits (a [`RoutePolicy`] extension).
#[derive(Debug, Clone, Default)]
pub struct RateLimitPolicy {
    limits: Vec<RateLimit>,
    headers_on_success: bool,
    /// `RateLimit-Policy` when every limit applies (the usual case), made once.
    all_policies: Option<HeaderValue>,
}

impl RateLimitPolicy {
    /// A policy with these limits (all checked for every request) and headers on success.
    pub fn new(limits: Vec<RateLimit>) -> Self {
        let all = limits
            .iter()
            .map(|l| l.policy_item.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            all_policies: (!limits.is_empty())
                .then(|| HeaderValue::from_str(&all).ok())
                .flatten(),
            limits,
            headers_on_success: true,
        }
    }

    /// Add `RateLimit-Policy` / `RateLimit` to allowed responses too (default `true`).
    pub fn headers_on_success(mut self, on: bool) -> Self {
        self.headers_on_success = on;
        self
    }

    /// The limits.
    pub fn limits(&self) -> &[RateLimit] {
        &self.limits
    }
}

/// The outcome of checking all limits of a route.
#[derive(Debug)]
pub struct RateLimitOutcome {
    /// `Some(wait)` when an enforcing limit refused.
    pub rejected: Option<Duration>,
    /// Names of the limits that refused (enforcing or dry-run).
    pub refused_by: Vec<(Arc<str>, bool)>,
    /// `RateLimit-Policy` and `RateLimit` values for the limits that applied (`None` when
    /// none applied).
    pub headers: Option<(HeaderValue, HeaderValue)>,
}

impl RateLimitOutcome {
    /// The headers as a map (what a 429 carries).
    fn header_map(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some((policy, state)) = &self.headers {
            h.insert(RATELIMIT_POLICY.clone(), policy.clone());
            h.insert(RATELIMIT.clone(), state.clone());
        }
        h
    }
}

/// Decisions of one request, limit by limit, and the header values they make.
struct Tally<'p> {
    policy: &'p RateLimitPolicy,
    rejected: Option<Duration>,
    refused_by: Vec<(Arc<str>, bool)>,
    applied: usize,
    /// The `RateLimit-Policy` value, built only once a limit did not apply (otherwise the
    /// policy's ready `all_policies` is used).
    partial_policy: Option<String>,
    /// The `RateLimit` value, written item by item.
    state: Vec<u8>,
}

impl<'p> Tally<'p> {
    fn new(policy: &'p RateLimitPolicy) -> Self {
        Self {
            policy,
            rejected: None,
            refused_by: Vec::new(),
            applied: 0,
            partial_policy: None,
            state: Vec::new(),
        }
    }

    /// Limit number `i` does not apply to this request (no key).
    fn skip(&mut self, i: usize) {
        if self.partial_policy.is_none() {
            let mut p = String::new();
            for l in self.policy.limits.iter().take(i) {
                push_item(&mut p, &l.policy_item);
            }
            self.partial_policy = Some(p);
        }
    }

    /// Limit `limit` decided `d`.
    fn add(&mut self, limit: &RateLimit, d: &GcraDecision) {
        if d.allowed {
            limit.counters.allowed.inc();
        } else if limit.dry_run {
            limit.counters.dry_run_rejected.inc();
            self.refused_by.push((limit.name.clone(), true));
        } else {
            limit.counters.rejected.inc();
            self.refused_by.push((limit.name.clone(), false));
            self.rejected = Some(
                self.rejected
                    .map_or(d.retry_after, |r| r.max(d.retry_after)),
            );
        }
        self.applied += 1;
        if let Some(p) = &mut self.partial_policy {
            push_item(p, &limit.policy_item);
        }
        if self.state.is_empty() {
            self.state.reserve(32 * self.policy.limits.len());
        } else {
            self.state.extend_from_slice(b", ");
        }
        self.state.extend_from_slice(limit.state_prefix.as_bytes());
        push_u64(&mut self.state, u64::from(d.remaining));
        self.state.extend_from_slice(b";t=");
        push_u64(&mut self.state, ceil_secs(d.reset_after));
    }

    fn finish(self) -> RateLimitOutcome {
        let headers = if self.applied == 0 {
            None
        } else {
            let policy = match self.partial_policy {
                Some(p) => HeaderValue::from_str(&p).ok(),
                None => self.policy.all_policies.clone(),
            };
            let mut state = self.state;
            // Exact length: `Bytes` then takes the buffer over without a second allocation.
            state.shrink_to_fit();
            let state = HeaderValue::from_maybe_shared(bytes::Bytes::from(state)).ok();
            policy.zip(state)
        };
        RateLimitOutcome {
            rejected: self.rejected,
            refused_by: self.refused_by,
            headers,
        }
    }
}

fn push_item(list: &mut String, item: &str) {
    if !list.is_empty() {
        list.push_str(", ");
    }
    list.push_str(item);
}

/// Decimal digits of `n`, without the formatting machinery.
fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Extract, for every limit of `policy`, its bucket key from `req` (`None` = limit does not
/// apply), owned so that no borrow of the request is held while a remote store answers. An
/// `api_key` limit's verdict, if one was made, is returned for the request's extensions.
pub fn extract_keys<B>(
    policy: &RateLimitPolicy,
    req: &http::Request<B>,
) -> (Vec<Option<KeyValue<'static>>>, Option<ApiKeyVerdict>) {
    let mut share = None;
    let keys = policy
        .limits
        .iter()
        .map(|l| {
            l.key
                .extract_sharing(req, &mut share)
                .map(KeyValue::into_owned)
        })
        .collect();
    (keys, share)
}

/// Check every limit of `policy` given the keys from [`extract_keys`] (any store).
pub async fn check_limits<S: RateLimitStore>(
    store: &S,
    policy: &RateLimitPolicy,
    keys: Vec<Option<KeyValue<'static>>>,
) -> Result<RateLimitOutcome, StoreError> {
    let mut tally = Tally::new(policy);
    for (i, (limit, value)) in policy.limits.iter().zip(keys).enumerate() {
        let Some(value) = value else {
            tally.skip(i);
            continue;
        };
        let d = store
            .check(
                BucketKey::new(limit.bucket_id.clone(), value),
                &limit.gcra,
                1,
            )
            .await?;
        tally.add(limit, &d);
    }
    Ok(tally.finish())
}

/// Check every limit of `policy` at once, on keys borrowed from `req`, if the store decides
/// synchronously (`None` otherwise: use [`extract_keys`] + [`check_limits`]). An `api_key`
/// limit's verdict, if one was made, is left in `share`.
pub fn check_limits_now<S: RateLimitStore, B>(
    store: &S,
    policy: &RateLimitPolicy,
    req: &http::Request<B>,
    share: &mut Option<ApiKeyVerdict>,
) -> Option<Result<RateLimitOutcome, StoreError>> {
    let mut tally = Tally::new(policy);
    for (i, limit) in policy.limits.iter().enumerate() {
        let Some(value) = limit.key.extract_sharing(req, share) else {
            tally.skip(i);
            continue;
        };
        let key = BucketKey {
            limit: Cow::Borrowed(&limit.bucket_id),
            value,
        };
        match store.check_now(&key, &limit.gcra, 1) {
            Some(d) => tally.add(limit, &d),
            // The first decision tells whether the store decides at once; nothing was
            // counted yet.
            None if tally.applied == 0 => return None,
            None => {
                return Some(Err(StoreError(
                    "store answered some limits at once and not others".into(),
                )));
            }
        }
    }
    Some(Ok(tally.finish()))
}

/// Layer 10: rate limits per route.
#[derive(Clone)]
pub struct RateLimitLayer<St = Arc<MemoryStore>> {
    store: St,
    default: Option<Arc<RateLimitPolicy>>,
    events: EventSink,
}

impl<St> RateLimitLayer<St> {
    /// A layer using `store`; routes without a [`RateLimitPolicy`] use `default` (if any).
    pub fn new(store: St, default: Option<Arc<RateLimitPolicy>>, events: EventSink) -> Self {
        Self {
            store,
            default,
            events,
        }
    }
}

impl<S, St: Clone> tower::Layer<S> for RateLimitLayer<St> {
    type Service = RateLimitService<S, St>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            store: self.store.clone(),
            default: self.default.clone(),
            events: self.events.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimitService<S, St> {
    inner: S,
    store: St,
    default: Option<Arc<RateLimitPolicy>>,
    events: EventSink,
}

type Req = http::Request<rampart_core::Body>;
type Resp = http::Response<rampart_core::Body>;

/// The way out of [`RateLimitService`]: `RateLimit-Policy` / `RateLimit` on allowed answers.
pub struct AddHeaders(Option<(HeaderValue, HeaderValue)>);

impl After for AddHeaders {
    fn after(self, result: Result<Resp, BoxError>) -> Result<Resp, BoxError> {
        let mut resp = result?;
        if let Some((policy, state)) = self.0 {
            let h = resp.headers_mut();
            let _ = h.try_insert(RATELIMIT_POLICY.clone(), policy);
            let _ = h.try_insert(RATELIMIT.clone(), state);
        }
        Ok(resp)
    }
}

/// Emit the events of an outcome; the error to answer with when an enforcing limit refused,
/// otherwise the headers for the answer (if the policy wants them on success).
fn conclude<B>(
    outcome: RateLimitOutcome,
    headers_on_success: bool,
    req: &http::Request<B>,
    events: &EventSink,
) -> Result<AddHeaders, BoxError> {
    for (name, dry) in &outcome.refused_by {
        let kind = if *dry {
            SecurityEventKind::RateLimitDryRun
        } else {
            SecurityEventKind::RateLimited
        };
        tracing::debug!(limit = %name, dry_run = dry, "rate limit refused");
        events.emit(SecurityEvent::from_request(kind, req).rule(name.as_ref()));
    }
    if let Some(retry_after) = outcome.rejected {
        let err =
            Error::new(ErrorKind::RateLimited { retry_after }).with_headers(outcome.header_map());
        return Err(Box::new(err));
    }
    Ok(AddHeaders(outcome.headers.filter(|_| headers_on_success)))
}

fn store_failed(e: StoreError) -> BoxError {
    Box::new(Error::new(ErrorKind::Internal).with_source(e))
}

impl<S, St, F> tower::Service<Req> for RateLimitService<S, St>
where
    S: tower::Service<Req, Response = Resp, Error = BoxError, Future = F> + Clone + Send + 'static,
    F: std::future::Future<Output = Result<Resp, BoxError>> + Send + 'static,
    St: RateLimitStore + Clone,
{
    type Response = Resp;
    type Error = BoxError;
    type Future = GuardFuture<F, AddHeaders>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let route_policy = req
            .extensions()
            .get::<Arc<RoutePolicy>>()
            .and_then(|p| p.get::<RateLimitPolicy>());
        let Some(policy) = route_policy.or(self.default.as_deref()) else {
            return GuardFuture::inner(self.inner.call(req), AddHeaders(None));
        };
        // An in-process store: decide here, on keys borrowed from the request.
        let mut share = None;
        if let Some(outcome) = check_limits_now(&self.store, policy, &req, &mut share) {
            let decided = outcome
                .map_err(store_failed)
                .and_then(|o| conclude(o, policy.headers_on_success, &req, &self.events));
            return match decided {
                Ok(after) => {
                    if let Some(v) = share {
                        req.extensions_mut().insert(v);
                    }
                    GuardFuture::inner(self.inner.call(req), after)
                }
                Err(e) => GuardFuture::error(e),
            };
        }
        // A remote store: own the keys, await the decisions, then call the inner service
        // (tower's clone-and-swap idiom: take the ready service, leave a fresh clone).
        let from_route = route_policy.is_some();
        let route = req.extensions().get::<Arc<RoutePolicy>>().cloned();
        let default = self.default.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let store = self.store.clone();
        let events = self.events.clone();
        GuardFuture::boxed(Box::pin(async move {
            let policy = if from_route {
                route.as_deref().and_then(|p| p.get::<RateLimitPolicy>())
            } else {
                default.as_deref()
            };
            let Some(policy) = policy else {
                return inner.call(req).await;
            };
            let (keys, share) = extract_keys(policy, &req);
            let outcome = check_limits(&store, policy, keys)
                .await
                .map_err(store_failed)?;
            let AddHeaders(headers) = conclude(outcome, policy.headers_on_success, &req, &events)?;
            if let Some(v) = share {
                req.extensions_mut().insert(v);
            }
            let mut resp = inner.call(req).await?;
            if let Some((policy, state)) = headers {
                let h = resp.headers_mut();
                let _ = h.try_insert(RATELIMIT_POLICY.clone(), policy);
                let _ = h.try_insert(RATELIMIT.clone(), state);
            }
            Ok(resp)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn key(limit: &str, v: &str) -> BucketKey<'static> {
        BucketKey::new(limit.into(), KeyValue::Text(v.to_owned().into()))
    }

    #[tokio::test(start_paused = true)]
    async fn memory_store_uses_tokio_clock() {
        let store = MemoryStore::new(1000);
        let g = Gcra::new(nz(1), Duration::from_secs(10), nz(1));
        assert!(store.check(key("r/l", "a"), &g, 1).await.unwrap().allowed);
        let d = store.check(key("r/l", "a"), &g, 1).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_secs(10));
        // Other keys and other limits are independent.
        assert!(store.check(key("r/l", "b"), &g, 1).await.unwrap().allowed);
        assert!(store.check(key("r/m", "a"), &g, 1).await.unwrap().allowed);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(store.check(key("r/l", "a"), &g, 1).await.unwrap().allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded_under_many_keys() {
        let store = MemoryStore::new(640);
        let g = Gcra::new(nz(1), Duration::from_secs(3600), nz(1));
        for i in 0..50_000 {
            store.check_at(&key("r/l", &i.to_string()), &g, 1, Instant::now());
        }
        assert!(store.len() <= 640, "{}", store.len());
        assert!(store.len() >= 64 * 8, "{}", store.len());
    }

    #[test]
    fn concurrent_decisions_never_exceed_the_burst() {
        // 4 threads x 1000 attempts on one key at one instant: exactly `burst` pass.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let _guard = rt.enter();
        let store = Arc::new(MemoryStore::new(1000));
        let g = Gcra::new(nz(100), Duration::from_secs(3600), nz(100));
        let now = Instant::now();
        let allowed = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let k = key("r/l", "shared");
                    for _ in 0..1000 {
                        if store.check_at(&k, &g, 1, now).allowed {
                            allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.into_inner(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_are_swept() {
        let store = MemoryStore::new(1000);
        let g = Gcra::new(nz(10), Duration::from_secs(1), nz(10));
        for i in 0..100 {
            store.check_at(&key("r/l", &i.to_string()), &g, 1, Instant::now());
        }
        assert_eq!(store.len(), 100);
        assert_eq!(store.sweep(), 0);
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(store.sweep(), 100);
        assert!(store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn sweeper_task_runs() {
        let store = Arc::new(MemoryStore::new(1000));
        let g = Gcra::new(nz(10), Duration::from_secs(1), nz(10));
        store.check_at(&key("r/l", "x"), &g, 1, Instant::now());
        let task = store.spawn_sweeper(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(store.is_empty());
        drop(store);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(task.is_finished());
    }

    fn request() -> http::Request<()> {
        let mut req = http::Request::builder()
            .uri("/x")
            .header("x-api", "k1")
            .header("cookie", "a=1; session=abc ; b=2")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(ClientIp("203.0.113.77".parse().unwrap()));
        req
    }

    #[test]
    fn key_extraction() {
        let req = request();
        assert_eq!(
            KeySource::Ip.extract(&req),
            Some(KeyValue::Ip("203.0.113.77".parse().unwrap()))
        );
        assert_eq!(
            KeySource::IpPrefix { v4: 24, v6: 64 }.extract(&req),
            Some(KeyValue::Net("203.0.113.0/24".parse().unwrap()))
        );
        assert_eq!(KeySource::Route.extract(&req), Some(KeyValue::Whole));
        assert_eq!(
            KeySource::Header(HeaderName::from_static("x-api")).extract(&req),
            Some(KeyValue::Text("k1".into()))
        );
        assert_eq!(
            KeySource::Header(HeaderName::from_static("x-none")).extract(&req),
            None
        );
        assert_eq!(
            KeySource::Cookie("session".into()).extract(&req),
            Some(KeyValue::Text("abc".into()))
        );
        assert_eq!(KeySource::Cookie("nope".into()).extract(&req), None);

        let mut v6 = request();
        v6.extensions_mut()
            .insert(ClientIp("2001:db8:1:2:3:4:5:6".parse().unwrap()));
        assert_eq!(
            KeySource::IpPrefix { v4: 24, v6: 64 }.extract(&v6),
            Some(KeyValue::Net("2001:db8:1:2::/64".parse().unwrap()))
        );

        let mut with_id = request();
        with_id.extensions_mut().insert(Identity::Jwt(Arc::new(
            serde_json::json!({"sub": "alice", "org": {"id": 7}}),
        )));
        assert_eq!(
            KeySource::JwtClaim("org.id".into(), None).extract(&with_id),
            Some(KeyValue::Text("7".into()))
        );
    }

    #[test]
    fn rates_and_keys_parse() {
        let ok = [
            ("5/1m", 5, 60_000),
            ("1000/s", 1000, 1000),
            ("60/min", 60, 60_000),
            ("10/250ms", 10, 250),
            ("3/2h", 3, 7_200_000),
            ("1/day", 1, 86_400_000),
        ];
        for (s, n, ms) in ok {
            let (count, per) = parse_rate(s).unwrap();
            assert_eq!((count.get(), per), (n, Duration::from_millis(ms)), "{s}");
        }
        for bad in ["", "5", "0/s", "5/", "5/0s", "5/1x", "x/s", "5/m1"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            KeySource::parse("ip", 24, 64, None),
            Ok(KeySource::Ip)
        ));
        assert!(matches!(
            KeySource::parse("ip_prefix", 24, 64, None),
            Ok(KeySource::IpPrefix { v4: 24, v6: 64 })
        ));
        assert!(KeySource::parse("ip_prefix", 33, 64, None).is_err());
        assert!(matches!(
            KeySource::parse("header:x-api-key", 24, 64, None),
            Ok(KeySource::Header(_))
        ));
        assert!(KeySource::parse("header:bad name", 24, 64, None).is_err());
        assert!(matches!(
            KeySource::parse("cookie:sid", 24, 64, None),
            Ok(KeySource::Cookie(_))
        ));
        assert!(matches!(
            KeySource::parse("jwt_claim:org.id", 24, 64, None),
            Ok(KeySource::JwtClaim(..))
        ));
        assert!(KeySource::parse("api_key", 24, 64, None).is_err());
        assert!(KeySource::parse("header:", 24, 64, None).is_err());
        assert!(KeySource::parse("bogus", 24, 64, None).is_err());
    }

    #[test]
    fn limit_names_are_checked() {
        let g = Gcra::new(nz(1), Duration::from_secs(1), nz(1));
        assert!(RateLimit::new("r", "per_ip", g, KeySource::Ip).is_ok());
        assert!(RateLimit::new("r", "bad name", g, KeySource::Ip).is_err());
        assert!(RateLimit::new("r", "quote\"", g, KeySource::Ip).is_err());
        assert!(RateLimit::new("r", "", g, KeySource::Ip).is_err());
    }

    #[test]
    fn numbers_are_written_like_display() {
        for n in [0u64, 7, 10, 99, 100, 4_294_967_295, u64::MAX] {
            let mut s = b"x".to_vec();
            push_u64(&mut s, n);
            assert_eq!(s, format!("x{n}").into_bytes());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn borrowed_and_owned_keys_are_one_bucket() {
        let store = MemoryStore::new(1000);
        let g = Gcra::new(nz(2), Duration::from_secs(10), nz(2));
        let id: Arc<str> = "r/l".into();
        let text = String::from("k");
        let borrowed = BucketKey {
            limit: Cow::Borrowed(&id),
            value: KeyValue::Text(Cow::Borrowed(&text)),
        };
        assert_eq!(store.check_now(&borrowed, &g, 1).unwrap().remaining, 1);
        let owned = borrowed.clone().into_owned();
        let d = store.check(owned, &g, 1).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 0));
        assert!(!store.check_now(&borrowed, &g, 1).unwrap().allowed);
        assert_eq!(store.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn headers_list_only_the_limits_that_applied() {
        let g = Gcra::new(nz(5), Duration::from_secs(60), nz(5));
        let limits = vec![
            RateLimit::new(
                "r",
                "a",
                g,
                KeySource::Header(HeaderName::from_static("x-a")),
            )
            .unwrap(),
            RateLimit::new("r", "b", g, KeySource::Ip).unwrap(),
            RateLimit::new(
                "r",
                "c",
                g,
                KeySource::Header(HeaderName::from_static("x-c")),
            )
            .unwrap(),
        ];
        let policy = RateLimitPolicy::new(limits);
        let store = MemoryStore::new(1000);
        let values = |req: &http::Request<()>| {
            let o = check_limits_now(&store, &policy, req, &mut None)
                .unwrap()
                .unwrap();
            o.headers.map(|(p, s)| {
                (
                    p.to_str().unwrap().to_owned(),
                    s.to_str().unwrap().to_owned(),
                )
            })
        };
        let mut req = request();
        assert_eq!(
            values(&req),
            Some(("\"b\";q=5;w=60".to_owned(), "\"b\";r=4;t=12".to_owned()))
        );
        req.headers_mut()
            .insert("x-a", HeaderValue::from_static("1"));
        assert_eq!(values(&req).unwrap().0, "\"a\";q=5;w=60, \"b\";q=5;w=60");
        req.headers_mut()
            .insert("x-c", HeaderValue::from_static("1"));
        assert_eq!(
            values(&req),
            Some((
                "\"a\";q=5;w=60, \"b\";q=5;w=60, \"c\";q=5;w=60".to_owned(),
                "\"a\";r=3;t=24, \"b\";r=2;t=36, \"c\";r=4;t=12".to_owned()
            ))
        );
        req.headers_mut().remove("x-a");
        assert_eq!(values(&req).unwrap().0, "\"b\";q=5;w=60, \"c\";q=5;w=60");
        let mut nothing = request();
        nothing.extensions_mut().remove::<ClientIp>();
        assert_eq!(values(&nothing), None);
    }
}
