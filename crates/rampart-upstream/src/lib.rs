//! The dispatch end of the stack (layer 15): from a routed request to an upstream response.
//!
//! * [`pool`]: per-endpoint pools of HTTP/1.1 connections (LIFO reuse, idle timeout, max
//!   lifetime, connect timeout, TCP keepalive, TLS with system or custom roots and SNI) and
//!   one shared HTTP/2 connection per endpoint when `http2 = true`.
//! * [`Upstream`]: a named pool of endpoints and how it picks one ([`balance`]: round robin,
//!   smooth weighted round robin, least requests and peak EWMA by power of two choices,
//!   weighted random, rendezvous hashing; slow start), keeps it healthy ([`health`] active
//!   checks, [`outlier`] passive ejection, [`breaker`] per-endpoint circuit breakers) and
//!   retries ([`retry`]: idempotent requests only, on another endpoint, exponential backoff
//!   with full jitter, under a retry budget), with a per-upstream concurrency limit and a
//!   whole-request deadline. Endpoint state survives reloads through [`EndpointRegistry`].
//! * [`forward`]: proxy header semantics (RFC 9110 §7.6): hop-by-hop stripping (including
//!   the fields named in `Connection`), `Via`, `X-Forwarded-*` and `Forwarded`.
//! * [`DispatchService`]: the innermost tower service; picks the route's upstream, forwards,
//!   bridges `Upgrade` (WebSocket) connections, and maps failures to typed errors
//!   (connect 502, timeout 504, no endpoint 503).
//!
//! * [`Upstreams::select`]: read/write split (`routes[].read_upstream`) and failover to a
//!   `backup` upstream.
//!
//! Config: `[[upstreams]]` (pool and resilience keys, `[upstreams.health_check]`,
//! `[upstreams.outlier]`, `[upstreams.breaker]`, `[upstreams.retry]`), `routes[].upstream`
//! and `routes[].read_upstream`.

pub mod balance;
pub mod breaker;
mod budget;
mod dispatch;
mod ewma;
pub mod forward;
pub mod health;
mod metrics;
pub mod outlier;
pub mod pool;
pub mod retry;
mod state;
mod upstream;
mod window;

#[cfg(test)]
mod timer_tests;

pub use balance::Strategy;
pub use breaker::{BreakerSettings, BreakerState};
pub use dispatch::{DispatchService, ReadUpstream, UpstreamEndpoint};
pub use health::HealthSettings;
pub use metrics::UpstreamMetrics;
pub use outlier::OutlierSettings;
pub use pool::{PoolSettings, TlsSettings};
pub use retry::RetrySettings;
pub use state::{EndpointRegistry, EndpointSnapshot};
pub use upstream::{Endpoint, HashOn, ResilienceSettings, Upstream, Upstreams};
