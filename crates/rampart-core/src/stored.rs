//! Where the cache (layer 14) and the representation layer above it (compression,
//! preconditions, Range: `rampart-compress`) meet, without depending on each other.
//!
//! * The representation layer marks the request with [`RepresentationsAbove`] on its way
//!   down: the cache then leaves client preconditions (`If-None-Match`, `If-Match`, ...) and
//!   `Range` to it and answers a hit with the full stored response.
//! * The cache marks a response built from a stored entry with a [`StoredBody`]: a handle on
//!   the entry's body and on the encoded variants stored beside it. The layer above picks the
//!   client's encoding among them; a variant that is missing is made once, off the request
//!   path, and added to the entry with [`StoredVariants::add_variant`] (the store charges its
//!   bytes to the cache's memory budget). A hit therefore never compresses.

use std::{fmt, sync::Arc};

use bytes::Bytes;

/// Request extension: a layer above the cache evaluates preconditions and `Range` on
/// answers built from stored entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepresentationsAbove;

/// An entry's stored representations, as seen from above the cache.
pub trait StoredVariants: Send + Sync + fmt::Debug {
    /// The content coding of the body as stored (`"identity"` when it has none).
    fn stored_coding(&self) -> &str;
    /// The body as stored (a `Bytes` clone).
    fn body(&self) -> Bytes;
    /// A representation added earlier under `coding` (`"identity"` included, for a body stored
    /// encoded and decoded once).
    fn variant(&self, coding: &str) -> Option<Bytes>;
    /// Claim the making of `coding`: `true` for exactly one caller per entry and coding, so a
    /// variant is made once however many hits ask for it at the same time.
    fn claim(&self, coding: &'static str) -> bool;
    /// Give up a claim without adding a variant (making it failed or was not worth it).
    fn release(&self, coding: &'static str);
    /// Store a made variant beside the entry (dropped if the entry was replaced meanwhile).
    fn add_variant(&self, coding: &'static str, body: Bytes);
}

/// Response extension set by the cache on answers built from a stored entry.
#[derive(Clone)]
pub struct StoredBody(pub Arc<dyn StoredVariants>);

impl fmt::Debug for StoredBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoredBody").field(&self.0).finish()
    }
}
