//! The body type used everywhere inside the stack, and small constructors.
//!
//! Bodies stream: nothing here buffers. [`Body`] is a boxed [`http_body::Body`] of [`Bytes`]
//! chunks whose errors are [`BoxError`]s, so a body error raised deep inside (a size limit, an
//! upstream reset) travels up to the rescue layer with its type intact.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

use crate::BoxError;

/// The one body type of the stack.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body with no bytes.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body made of one buffer (a `Bytes` clone, no copy).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Box any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}
