//! API keys: several named keys active at once (rotation), stored only as SHA-256 hashes.
//!
//! A presented key is hashed once (SHA-256) and its digest looked up in a table of the
//! configured digests; the candidate the table finds is confirmed with a constant-time compare
//! (`subtle`). The cost does not grow with the number of keys. Timing can tell at most
//! something about the *digests* (where the presented key's digest lands in the table), never
//! about a key: a digest cannot be steered to a chosen value without a SHA-256 preimage, and
//! the configured digests are not secret anyway (they are in the config file).

use std::sync::Arc;

use hashbrown::HashTable;
use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A key hash in config was not 64 hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("api key {name:?}: sha256 must be 64 hex digits (optionally prefixed \"sha256:\")")]
pub struct InvalidKeyHash {
    /// The key's name.
    pub name: String,
}

/// A set of named API keys, by SHA-256 hash.
#[derive(Clone, Default)]
pub struct ApiKeySet {
    keys: Vec<(Arc<str>, [u8; 32])>,
    /// Index into `keys` by digest; a digest configured twice keeps its first name.
    index: HashTable<usize>,
}

impl std::fmt::Debug for ApiKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are not secrets, but there is no reason to print them.
        f.debug_struct("ApiKeySet")
            .field("names", &self.keys.iter().map(|k| &k.0).collect::<Vec<_>>())
            .finish()
    }
}

/// A SHA-256 digest is uniformly distributed: its first eight bytes are a good table hash.
fn table_hash(digest: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or_default());
    u64::from_le_bytes(first)
}

/// A digest as four words, for a constant-time compare in four steps instead of 32.
fn words(digest: &[u8; 32]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (w, c) in w.iter_mut().zip(digest.chunks_exact(8)) {
        *w = u64::from_le_bytes(c.try_into().unwrap_or_default());
    }
    w
}

impl ApiKeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, name: &str, digest: [u8; 32]) {
        let i = self.keys.len();
        let keys = &self.keys;
        let h = table_hash(&digest);
        let known = |j: &usize| keys.get(*j).is_some_and(|k| k.1 == digest);
        if self.index.find(h, known).is_none() {
            self.index
                .insert_unique(h, i, |j| keys.get(*j).map_or(0, |k| table_hash(&k.1)));
        }
        self.keys.push((name.into(), digest));
    }

    /// Add a key by its hex SHA-256 (`"sha256:9f86d0..."` or just the 64 hex digits).
    pub fn with_hash(mut self, name: &str, hex: &str) -> Result<Self, InvalidKeyHash> {
        let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
        let hash = parse_hex32(hex).ok_or_else(|| InvalidKeyHash {
            name: name.to_owned(),
        })?;
        self.add(name, hash);
        Ok(self)
    }

    /// Add a key from its plaintext (tests, `rampart` helper commands). Only the hash is kept.
    pub fn with_plain(mut self, name: &str, key: &[u8]) -> Self {
        self.add(name, sha256(key));
        self
    }

    /// The name of the key `presented` matches, if any.
    pub fn verify(&self, presented: &[u8]) -> Option<&Arc<str>> {
        let h = sha256(presented);
        let w = words(&h);
        let i = self.index.find(table_hash(&h), |i| {
            self.keys
                .get(*i)
                .is_some_and(|(_, k)| bool::from(words(k)[..].ct_eq(&w[..])))
        })?;
        self.keys.get(*i).map(|(name, _)| name)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// `true` when the set has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// SHA-256 of `data` as lowercase hex (what `sha256` config values contain).
pub fn sha256_hex(data: &[u8]) -> String {
    sha256(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = hexval(b[2 * i])?;
        let lo = hexval(b[2 * i + 1])?;
        *o = (hi << 4) | lo;
    }
    Some(out)
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Where a route takes the API key from.
#[derive(Debug, Clone)]
pub enum ApiKeySource {
    /// A request header (e.g. `x-api-key`). `Authorization: Bearer <key>` also works with
    /// `authorization`: the `Bearer ` prefix is stripped.
    Header(HeaderName),
    /// A query parameter (e.g. `api_key`). Weaker: keys end up in logs and histories.
    Query(String),
}

impl ApiKeySource {
    /// The presented key, if any.
    pub fn extract<'a, B>(&self, req: &'a http::Request<B>) -> Option<std::borrow::Cow<'a, str>> {
        self.extract_raw(req).map(|(key, _)| key)
    }

    /// The presented key and, for a header source, the raw header it came from.
    pub(crate) fn extract_raw<'a, B>(
        &self,
        req: &'a http::Request<B>,
    ) -> Option<(std::borrow::Cow<'a, str>, Option<&'a HeaderValue>)> {
        match self {
            Self::Header(name) => {
                let raw = req.headers().get(name)?;
                let v = raw.to_str().ok()?.trim();
                let v = if *name == http::header::AUTHORIZATION {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                        .unwrap_or(v)
                        .trim()
                } else {
                    v
                };
                (!v.is_empty()).then_some((std::borrow::Cow::Borrowed(v), Some(raw)))
            }
            Self::Query(param) => {
                let q = req.uri().query()?;
                q.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == param && !v.is_empty()).then(|| (percent_decode(v), None))
                })
            }
        }
    }
}

fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hexval(b[i + 1]), hexval(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// A key set plus where to find the key: what a route's API-key rule and an API-key-keyed rate
/// limit both need.
#[derive(Debug, Clone)]
pub struct ApiKeyLookup {
    /// The accepted keys.
    pub keys: Arc<ApiKeySet>,
    /// Where the key is read from.
    pub source: ApiKeySource,
}

impl ApiKeyLookup {
    /// Check the key `req` presents: `None` when it presents none, `Some(None)` for an unknown
    /// key, `Some(Some(name))` for a known one. A verdict left in the request's extensions by
    /// an earlier layer (see [`ApiKeyVerdict`]) is reused instead of hashing the key again.
    pub fn verify_request<'a, B>(
        &'a self,
        req: &'a http::Request<B>,
    ) -> Option<Option<&'a Arc<str>>> {
        if let Some(known) = self.shared(req) {
            return Some(known);
        }
        let presented = self.source.extract(req)?;
        Some(self.keys.verify(presented.as_bytes()))
    }

    /// The verdict an earlier layer left in `req`'s extensions, if it applies to this lookup.
    pub fn shared<'a, B>(&self, req: &'a http::Request<B>) -> Option<Option<&'a Arc<str>>> {
        let v = req.extensions().get::<ApiKeyVerdict>()?;
        v.applies(self, req.headers()).then_some(v.name.as_ref())
    }

    /// The verdict to leave in `req`'s extensions after checking its key (`name` = the result
    /// of [`ApiKeySet::verify`]). `None` for a query source (not shared) or no key header.
    pub fn verdict<B>(
        &self,
        req: &http::Request<B>,
        name: Option<&Arc<str>>,
    ) -> Option<ApiKeyVerdict> {
        let ApiKeySource::Header(h) = &self.source else {
            return None;
        };
        self.verdict_from(req.headers().get(h)?, name)
    }

    /// [`ApiKeyLookup::verdict`] given the raw header (from [`ApiKeySource::extract_raw`]).
    pub(crate) fn verdict_from(
        &self,
        raw: &HeaderValue,
        name: Option<&Arc<str>>,
    ) -> Option<ApiKeyVerdict> {
        let ApiKeySource::Header(h) = &self.source else {
            return None;
        };
        Some(ApiKeyVerdict {
            keys: self.keys.clone(),
            header: h.clone(),
            raw: raw.clone(),
            name: name.cloned(),
        })
    }
}

/// The outcome of checking a request's API key, kept in its extensions by the first layer that
/// checks it (an `api_key` rate limit, layer 10) so that the auth layer (12) does not hash the
/// key a second time. It applies only to the same key set (the same `Arc`) read from the same
/// header with the same raw value; anything else is checked afresh.
#[derive(Clone)]
pub struct ApiKeyVerdict {
    keys: Arc<ApiKeySet>,
    header: HeaderName,
    raw: HeaderValue,
    name: Option<Arc<str>>,
}

impl std::fmt::Debug for ApiKeyVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the presented key.
        f.debug_struct("ApiKeyVerdict")
            .field("header", &self.header)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ApiKeyVerdict {
    fn applies(&self, lookup: &ApiKeyLookup, headers: &http::HeaderMap) -> bool {
        Arc::ptr_eq(&self.keys, &lookup.keys)
            && matches!(&lookup.source, ApiKeySource::Header(h) if *h == self.header)
            && headers.get(&self.header) == Some(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_rotation() {
        let old = sha256_hex(b"old-secret");
        let set = ApiKeySet::new()
            .with_hash("2025", &format!("sha256:{old}"))
            .unwrap()
            .with_plain("2026", b"new-secret");
        assert_eq!(set.verify(b"old-secret").map(|n| n.as_ref()), Some("2025"));
        assert_eq!(set.verify(b"new-secret").map(|n| n.as_ref()), Some("2026"));
        assert_eq!(set.verify(b"other"), None);
        assert_eq!(set.verify(b""), None);
        // Known vector: sha256("test").
        assert_eq!(
            sha256_hex(b"test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn many_keys_and_duplicates() {
        let mut set = ApiKeySet::new();
        for i in 0..1000 {
            set = set.with_plain(&format!("k{i}"), format!("secret-{i}").as_bytes());
        }
        // The same key under a second name: the first name wins.
        set = set.with_plain("again", b"secret-7");
        assert_eq!(set.len(), 1001);
        for i in [0, 1, 7, 500, 999] {
            let name = set.verify(format!("secret-{i}").as_bytes());
            assert_eq!(name.map(|n| n.as_ref()), Some(format!("k{i}").as_str()));
        }
        assert_eq!(set.verify(b"secret-1000"), None);
        assert_eq!(set.verify(b"secret-"), None);
    }

    #[test]
    fn bad_hashes_are_refused() {
        assert!(ApiKeySet::new().with_hash("k", "abc").is_err());
        assert!(ApiKeySet::new().with_hash("k", &"g".repeat(64)).is_err());
        assert!(ApiKeySet::new().with_hash("k", &"A".repeat(64)).is_ok());
    }

    #[test]
    fn sources() {
        let req = http::Request::builder()
            .uri("/x?a=1&api_key=s%2Fk+1&b")
            .header("x-api-key", " hdr ")
            .header("authorization", "Bearer tok")
            .body(())
            .unwrap();
        let h = ApiKeySource::Header(HeaderName::from_static("x-api-key"));
        assert_eq!(h.extract(&req).as_deref(), Some("hdr"));
        let a = ApiKeySource::Header(http::header::AUTHORIZATION);
        assert_eq!(a.extract(&req).as_deref(), Some("tok"));
        let q = ApiKeySource::Query("api_key".into());
        assert_eq!(q.extract(&req).as_deref(), Some("s/k 1"));
        let missing = ApiKeySource::Query("b".into());
        assert_eq!(missing.extract(&req), None);
    }
}
