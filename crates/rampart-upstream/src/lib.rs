//! The dispatch end of the stack (layer 15): from a routed request to an upstream response.
//!
//! * [`pool`]: per-endpoint pools of HTTP/1.1 connections (LIFO reuse, idle timeout, max
//!   lifetime, connect timeout, TCP keepalive, TLS with system or custom roots and SNI) and
//!   one shared HTTP/2 connection per endpoint when `http2 = true`.
//! * [`Upstream`]: a named pool of endpoints, round robin for now.
//! * [`forward`]: proxy header semantics (RFC 9110 §7.6): hop-by-hop stripping (including
//!   the fields named in `Connection`), `Via`, `X-Forwarded-*` and `Forwarded`.
//! * [`DispatchService`]: the innermost tower service; picks the route's upstream, forwards,
//!   bridges `Upgrade` (WebSocket) connections, and maps failures to typed errors
//!   (connect 502, timeout 504, no endpoint 503).
//!
//! Config: `[[upstreams]]` (pool keys) and `routes[].upstream`.

mod dispatch;
pub mod forward;
mod metrics;
pub mod pool;
mod upstream;

pub use dispatch::{DispatchService, UpstreamEndpoint};
pub use metrics::UpstreamMetrics;
pub use pool::{PoolSettings, TlsSettings};
pub use upstream::{Endpoint, Upstream, Upstreams};
