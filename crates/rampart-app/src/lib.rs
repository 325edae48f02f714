//! The composition root: a validated [`rampart_config::Config`] becomes a running gateway.
//!
//! * [`build`]: compiles a config into a [`Generation`] (route table, upstream pools, TLS,
//!   the layer stack) without touching sockets; `rampart check` runs exactly this.
//! * [`stack`]: the one function that orders the layers of the request path.
//! * [`app`]: listeners, the admin API, signals, reload (build the whole new generation, then
//!   swap it in atomically; on error the old one keeps serving) and graceful shutdown.
//!
//! Long-lived state (metrics, access log, upstream metric families) lives in [`Shared`] and
//! survives reloads.

pub mod app;
pub mod audit;
pub mod audit_report;
pub mod auth;
pub mod build;
pub mod compress;
pub mod demo;
pub mod guard;
pub mod layers;
pub mod resilience;
pub mod routes;
pub mod stack;
pub mod statics;

pub use app::{RunningApp, StartError, StartOptions, start};
pub use build::{Generation, Shared, build};
