//! Request extensions set by the outer layers and read by the inner ones.
//!
//! | type | set by | read by |
//! |---|---|---|
//! | [`ConnInfo`] | the listener, per connection | client-ip, forwarding headers, HSTS |
//! | [`RequestId`] | layer 1 | everything that logs, every error response |
//! | [`ClientIp`] | layer 2 | ip lists, bans, rate limits, logs |
//! | `Arc<RoutePolicy>` | layer 3 | every per-route decision below it |

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use http::HeaderValue;

/// Facts about the downstream connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer (may be a trusted proxy, not the real client).
    pub peer: SocketAddr,
    /// The local address the connection was accepted on.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Set by the listener when the raw request head carried a `Content-Length` field that the
/// HTTP/1 parser dropped because `Transfer-Encoding` was present (RFC 9112 §6.3). The sanitize
/// layer answers such requests 400: that framing is the shape of request smuggling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingConflict;

/// The request id: taken from a well-formed incoming `x-request-id`, otherwise generated.
/// Echoed on every response, written to every log line about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A fresh id: 16 lowercase hex digits, unique within the process (a bijective mix of a
    /// counter with a per-process random seed), unpredictable enough not to leak request counts.
    pub fn generate() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = *SEED.get_or_init(rand::random::<u64>);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mixed = splitmix64(n.wrapping_add(seed));
        let mut buf = [0u8; 16];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in buf.iter_mut().enumerate() {
            *b = HEX[((mixed >> (60 - 4 * i)) & 0xf) as usize];
        }
        // 16 hex digits are always a valid header value.
        Self(HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0")))
    }

    /// Accept a client-supplied id only if it is 1..=64 chars of `[A-Za-z0-9._:-]`, so it can
    /// be logged and echoed without escaping; otherwise `None` (a fresh one is generated).
    pub fn from_header(value: &HeaderValue) -> Option<Self> {
        let b = value.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 64
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'));
        ok.then(|| Self(value.clone()))
    }

    /// As a header value (cheap clone).
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// As text.
    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII.
        self.0.to_str().unwrap_or("")
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The client's IP address as resolved by the client-ip layer (the peer, or the right-most
/// untrusted address of `X-Forwarded-For` / `Forwarded` when the peer is a trusted proxy).
/// The only IP any policy may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// Index of a route in the compiled route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(pub u32);

/// Everything a layer needs to know about the route a request matched.
///
/// Core fields are plain; feature crates keep their compiled per-route policy in
/// [`RoutePolicy::extensions`] (a type map) and read it with [`RoutePolicy::get`], so the
/// policy is data and the stack stays one stack.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// Position in the route table.
    pub id: RouteId,
    /// The route's name (used as a metric label, never the raw path).
    pub name: Arc<str>,
    /// Name of the upstream pool requests are dispatched to (`None` for routes served by the
    /// gateway itself).
    pub upstream: Option<Arc<str>>,
    /// Maximum request body size in bytes for this route.
    pub max_request_body: u64,
    /// Per-feature compiled policies, keyed by type.
    pub extensions: http::Extensions,
}

impl RoutePolicy {
    /// A policy with no feature extensions.
    pub fn new(id: RouteId, name: impl Into<Arc<str>>, upstream: Option<Arc<str>>) -> Self {
        Self {
            id,
            name: name.into(),
            upstream,
            max_request_body: u64::MAX,
            extensions: http::Extensions::new(),
        }
    }

    /// The feature policy of type `T`, if this route has one.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions.get::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_hex() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 16);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn incoming_ids_are_validated() {
        let ok = HeaderValue::from_static("abc-123.X_y:z");
        assert!(RequestId::from_header(&ok).is_some());
        for bad in ["", "has space", "semi;colon", &"x".repeat(65)] {
            let v = HeaderValue::from_str(bad).unwrap();
            assert!(RequestId::from_header(&v).is_none(), "{bad:?}");
        }
    }
}
