//! Shared vocabulary of the Rampart gateway.
//!
//! Every crate on the request path speaks in these types:
//!
//! * [`Body`] / [`BoxError`]: the one body type and the one error type inside the layer stack.
//! * [`Error`] / [`ErrorKind`]: typed rejections. Feature crates return them (or wrap their own
//!   leaf errors in them); the [`rescue`] module is the *only* place that turns an error into an
//!   HTTP response.
//! * Request extensions set by the outer layers and read by the inner ones:
//!   [`RequestId`], [`ConnInfo`], [`ClientIp`], [`RoutePolicy`].
//! * [`stored`]: how the cache hands stored representations to the compression layer above it.
//! * HTTP semantics more than one feature crate answers: [`negotiate`] (content codings,
//!   `Accept-Encoding`), [`conditional`] (entity tags, preconditions) and [`range`] (`Range`,
//!   `If-Range`, 206 / 416 fields, `multipart/byteranges`). One copy, so the compression
//!   layer, the static file service and the cache read a request the same way.
//!
//! This crate depends on no other Rampart crate, and no feature crate depends on another one:
//! they meet here.

pub mod body;
pub mod conditional;
pub mod error;
pub mod ext;
pub mod labels;
pub mod negotiate;
pub mod range;
pub mod rescue;
pub mod stored;
pub mod worker;

pub use body::Body;
pub use error::{BoxError, Error, ErrorKind};
pub use ext::{ClientIp, ConnInfo, FramingConflict, RequestId, RouteId, RoutePolicy};

/// The request type inside the stack.
pub type Request = http::Request<Body>;
/// The response type inside the stack.
pub type Response = http::Response<Body>;
