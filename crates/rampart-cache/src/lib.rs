//! RFC 9111 shared HTTP cache for the Rampart gateway.
//!
//! **Where it sits:** layer 14 of the stack (ARCHITECTURE.md §3), just above dispatch: a
//! hit returns from here, misses are coalesced and forwarded, and responses are teed into
//! the cache while they stream to the client. Layers above it (WAF, auth) run first, so a
//! blocked request is never served from the cache.
//!
//! **What it does:** storage decisions (RFC 9111 §3, §3.5), freshness and `Age` (§4.2),
//! request directives, validation with conditional requests and 304 header updates (§4.3),
//! Vary with normalised secondary keys (§4.1), invalidation on unsafe methods (§4.4),
//! targeted cache-control fields (RFC 9213), `stale-while-revalidate` / `stale-if-error`
//! (RFC 5861), `Cache-Status` on every response (RFC 9211), request coalescing with
//! hit-for-pass, and purge by URL / prefix / tag / all (hard or soft).
//!
//! **Config:** global [`CacheSettings`] (`[cache]`: sizes, coalescing bounds, targeted
//! field, tag headers, PURGE CIDRs) when building the [`Cache`]; per route [`CachePolicy`]
//! (`[routes.cache]`: on/off, key composition, TTL defaults and caps, stale windows,
//! `Set-Cookie` handling, overrides, deception guard), read from
//! `Arc<RoutePolicy>::get::<CachePolicy>()`. Keys and defaults: `docs/cache.md`.
//!
//! ```ignore
//! let metrics = CacheMetrics::register(&mut registry);
//! let cache = Cache::new(CacheSettings::default(), metrics);   // long-lived, survives reloads
//! let svc = ServiceBuilder::new().layer(CacheLayer::new(cache.clone())).service(dispatch);
//! // admin: cache.purge(PurgeRequest { .. }).await, cache.stats()
//! ```
//!
//! Modules: pure logic in [`directives`], [`freshness`], [`storable`], [`key`],
//! [`headers`]; storage in [`entry`], [`store`], [`memory`] (with the private `codec`,
//! `segments` and `purge_index`); the request path in
//! [`service`].

pub(crate) mod body;
pub mod cache;
pub(crate) mod codec;
pub mod config;
pub mod directives;
pub mod entry;
pub mod error;
pub mod freshness;
pub mod headers;
pub mod key;
pub mod memory;
pub mod metrics;
pub(crate) mod purge_index;
pub(crate) mod segments;
pub mod service;
pub mod storable;
pub mod store;
pub mod variants;

pub use cache::{Cache, Clock, PurgeOutcome, PurgeRequest};
pub use config::{
    CachePolicy, CacheSettings, KeyPolicy, Overrides, ParseConfigError, QueryKey, SetCookiePolicy,
    TagHeader, TagSeparator,
};
pub use error::PurgeError;
pub use memory::{MemoryStore, MemoryUsage};
pub use metrics::{CacheMetrics, CacheOutcome, CacheStats};
pub use service::{CacheLayer, CacheService};
pub use store::{PurgeSelector, SoftPurge, Store, StoreStats};
pub use variants::StoredHandle;
