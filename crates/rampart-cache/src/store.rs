//! The storage trait, shaped for two tiers: the embedded memory tier
//! ([`crate::MemoryStore`]) now and a shared tier (Redis) later.
//!
//! A lookup answers a [`Record`] per primary key holding every Vary variant, and removal and
//! purge take every variant of a key at once (the memory tier stores each variant as an
//! object of its own and gathers them on lookup). Methods are async (boxed futures) so a network tier
//! fits; the memory tier completes them without suspending. A tiered store would answer
//! `get` from memory first and write through to the shared tier in the background, so
//! `put_variant` never waits on the network on the response path.

use std::{future::Future, pin::Pin, sync::Arc};

use tokio::time::Instant;

use crate::entry::{Entry, Record};

/// A boxed, `Send` future returned by [`Store`] methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a purge selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeSelector {
    /// Entries stored from these canonical URLs (`scheme://host/path?query`). Each URL is
    /// also tried with its query parameters sorted.
    Urls(Vec<String>),
    /// Entries whose canonical URL starts with this prefix. A prefix starting with `/` is a
    /// path prefix and matches on every host.
    Prefix(String),
    /// Entries carrying any of these tags.
    Tags(Vec<String>),
    /// Everything.
    All,
}

/// Size facts of a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Stored objects (variants).
    pub entries: u64,
    /// Bytes charged.
    pub bytes: u64,
}

/// A cache storage tier.
pub trait Store: Send + Sync + 'static {
    /// The record under a primary key, if any and not expired at `now`.
    fn get<'a>(&'a self, key: &'a str, now: Instant) -> StoreFuture<'a, Option<Arc<Record>>>;

    /// Store a variant under `key`, replacing the variant with the same secondary key and
    /// clearing any hit-for-pass marker. The future owns what it needs (`'static`) so the
    /// response body that finishes the object can hand it to a task if it does not complete
    /// at once.
    fn put_variant(&self, key: Arc<str>, entry: Arc<Entry>) -> StoreFuture<'static, ()>;

    /// Replace the variant `old` of `key` by `new` (the same response with one more encoded
    /// variant), re-weighing the record. Does nothing if `old` is no longer stored (replaced
    /// or evicted meanwhile); returns whether it replaced it.
    fn replace_variant(
        &self,
        key: Arc<str>,
        old: Arc<Entry>,
        new: Arc<Entry>,
    ) -> StoreFuture<'static, bool>;

    /// Remember that `key` is uncacheable until `until` (hit-for-pass). Drops its variants.
    fn mark_pass(&self, key: Arc<str>, until: Instant) -> StoreFuture<'static, ()>;

    /// Remove a key with all its variants; returns how many variants went.
    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, u64>;

    /// Purge (or, with `soft`, mark stale) what `selector` selects; returns how many
    /// variants were affected.
    fn purge<'a>(
        &'a self,
        selector: &'a PurgeSelector,
        soft: Option<SoftPurge>,
        now: Instant,
    ) -> StoreFuture<'a, u64>;

    /// Current size.
    fn stats(&self) -> StoreStats;
}

/// Parameters of a soft purge: entries become stale now and may be served stale while they
/// revalidate for at least `stale_window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftPurge {
    /// Minimum stale-while-revalidate window given to purged entries.
    pub stale_window: std::time::Duration,
    /// How long a purged entry with a validator is kept for revalidation.
    pub keep: std::time::Duration,
}
