//! Response optimisation for the Rampart gateway: content negotiation, encoders, streaming
//! compression, ETag weakening, preconditions and Range.
//!
//! **Where it sits:** the [`CompressLayer`] is the representation layer, directly above the
//! cache (layer 14, ARCHITECTURE.md §3) and below the security headers. The cache stores each
//! object once plus the encoded variants it has served (`rampart_core::stored`); this layer
//! picks the client's encoding among them. A variant that does not exist yet is made once on
//! the blocking pool (at the higher *stored* levels) while the answer uses what exists, so a
//! cache hit never compresses. Responses that are not cached are compressed as they stream,
//! in bounded memory, at the on-the-fly levels.
//!
//! **What it does:**
//! * negotiation (`rampart_core::negotiate`, re-exported as [`Accepted`] / [`Choice`]):
//!   `Accept-Encoding` with q-values, wildcards and `identity;q=0` (RFC 9110 §12.5.3), server
//!   preference order for ties; 406 only when identity is refused and no acceptable coding
//!   can be sent;
//! * [`coding`]: br (`brotli`), zstd (`zstd`), gzip and deflate (`flate2` on `zlib-rs`),
//!   one-shot and streaming, decoding always capped;
//! * [`validators`]: weakening of transformed representations, generated strong ETags; the
//!   §13.2.2 precedence (412 / 304) is `rampart_core::conditional`;
//! * ranges (`rampart_core::range`): `bytes` ranges (single, multiple as
//!   `multipart/byteranges`, suffix, open-ended), `If-Range`, 416 with
//!   `Content-Range: bytes */len`, ranges of the selected encoding;
//! * request bodies with a `Content-Encoding` decoded when the route allows it, with a
//!   decompression-bomb cap (413).
//!
//! **Config:** per route [`CompressPolicy`] (`Arc<CompressPolicy>` in the route's
//! extensions), built by `rampart-app` from `[compression]` and `[routes.compression]`
//! (`docs/compression.md`). No policy: no compression, preconditions and ranges still served.
//!
//! ```ignore
//! let metrics = CompressMetrics::register(&mut registry);
//! let svc = ServiceBuilder::new()
//!     .layer(CompressLayer::new(metrics))
//!     .layer(CacheLayer::new(cache))
//!     .service(dispatch);
//! ```

pub mod body;
pub mod coding;
pub mod config;
pub mod error;
pub mod metrics;
pub mod service;
pub mod validators;

pub use coding::{Coding, CodingSet, Levels, StreamEncoder, decode, encode};
pub use config::{CompressPolicy, ContentTypes};
pub use error::DecodeError;
pub use metrics::{CompressMetrics, Mode};
pub use rampart_core::negotiate::{Accepted, Choice};
pub use service::{CompressLayer, CompressService};
