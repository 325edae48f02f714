//! Test doubles for end-to-end tests, all on real sockets bound to `127.0.0.1:0`:
//!
//! * [`TestUpstream`]: an origin that records and counts every request and streams request
//!   bodies without buffering them; its answers come from a handler closure.
//! * [`TestProxy`]: the real gateway (`rampart_app::start`) built from a TOML string in which
//!   `{upstream}` stands for a test upstream's URL.
//! * [`FaultyUpstream`]: an origin whose faults (status, fail first N, hang, reset, slow,
//!   down and back on the same port) can be switched while it runs.
//! * [`client`]: one-shot HTTP/1.1 and HTTP/2 requests, and raw-bytes exchanges for
//!   malformed-request tests. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod client;
mod faulty;
mod proxy;
mod upstream;

pub use faulty::{Fault, FaultyUpstream};
pub use proxy::TestProxy;
pub use upstream::{Recorded, TestUpstream, response};
