//! Static assets and minification for the Rampart gateway.
//!
//! **Static files** ([`StaticLayer`]): a route with `static = "./public"` is answered from
//! that directory instead of an upstream. The layer sits at the dispatch end of the stack
//! (layer 15): requests of other routes go on to the upstream dispatcher. It resolves paths
//! safely ([`resolve`]: one percent-decoding, no dot segments, encoded separators, NUL,
//! double or overlong encodings, dotfiles, nor symlinks leaving the root unless
//! `follow_symlinks`), serves `index.html` for directories (never a listing), picks a
//! precompressed sidecar (`.br`, `.zst`, `.gz`) from `Accept-Encoding` ([`encoding`], on
//! `rampart_core::negotiate`), sends `ETag` / `Last-Modified`, answers conditional requests
//! and single byte ranges ([`conditional`], on `rampart_core::conditional` and
//! `rampart_core::range`, the rules the compression layer applies to cached answers), HEAD, 405 for other methods, `Content-Type` by extension, and
//! `Cache-Control` (`immutable` for fingerprinted names). Bodies stream from the file in
//! 64 KiB chunks ([`body`]). The responses are ordinary cacheable origin responses: the
//! cache above stores them, and the compression layer compresses those without a sidecar.
//!
//! **Minification** ([`MinifyLayer`], pure functions in [`minify`]): opt-in per route
//! (`minify = ["html", "css", "js", "json"]`), placed between the cache and dispatch, so it
//! runs once per miss and the cache stores the minified body; a hit never minifies. Any
//! parse failure passes the body through byte for byte. Saved bytes are counted in
//! `rampart_minify_saved_bytes_total{route,kind}` ([`MinifyMetrics`]).
//!
//! **Config** (built by `rampart-app` from `routes[].static`, `routes[].static_options`,
//! `routes[].minify`): [`StaticSettings`] and [`MinifyPolicy`] in the route's
//! `RoutePolicy` extensions (as `Arc<_>`). Keys and defaults: `docs/static.md`.

pub mod body;
pub mod conditional;
pub mod config;
pub mod encoding;
pub mod metrics;
pub mod minify;
pub mod resolve;
pub mod service;
pub mod transform;

pub use config::{DEFAULT_IMMUTABLE_PATTERN, MinifyKind, MinifyPolicy, StaticSettings};
pub use metrics::{MinifyMetrics, MinifyStats};
pub use service::{StaticLayer, StaticService};
pub use transform::{MinifyLayer, MinifyService};

/// The response future of the services in this crate.
type BoxFut = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<http::Response<rampart_core::Body>, rampart_core::BoxError>,
            > + Send,
    >,
>;
