//! The downstream side of Rampart: listeners and connections.
//!
//! Sits outside the layer stack: it accepts TCP (and TLS) connections, speaks HTTP/1.1 and
//! HTTP/2 with hyper, and hands each request, with a [`rampart_core::ConnInfo`] extension, to
//! a [`Handler`]. Everything here is bounded:
//!
//! * `server.max_connections`: excess connections are closed at once, never queued;
//! * `server.header_read_timeout`: a request head must arrive in time once it has started
//!   (slowloris), enforced by a per-connection watchdog;
//! * `server.keepalive_timeout`: idle keep-alive connections are closed;
//! * `server.max_header_bytes` / `server.max_headers`: hyper answers 431 above them;
//! * graceful drain on shutdown: stop accepting, let in-flight requests finish up to
//!   `server.drain_timeout`, then close what is left.
//!
//! TLS is rustls with several certificates chosen by SNI ([`tls`]); ALPN offers `h2` when
//! HTTP/2 is on.

mod conn;
pub mod server;
pub mod tls;

pub use server::{Handler, ServerHandle, ServerOptions, Stats, bind, serve};
