//! [`StoredHandle`]: what a hit hands to the representation layer above the cache
//! (`rampart_core::stored`): the entry's body and its encoded variants, and the way to add
//! one. Adding replaces the entry in the store by a copy carrying the new variant, so the
//! record is re-weighed and every variant counts against `max_size`.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use rampart_core::stored::StoredVariants;

use crate::{entry::Entry, store::Store};

/// A stored entry seen from above the cache.
pub struct StoredHandle {
    pub(crate) entry: Arc<Entry>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) key: Arc<str>,
    /// The stored body's coding; `None` is identity (the common case, no allocation).
    coding: Option<Box<str>>,
}

impl StoredHandle {
    /// `content_encoding` is the entry's `Content-Encoding` value, taken from the header map
    /// the hit already built (so the stored fields are not scanned a second time).
    pub(crate) fn new(
        entry: Arc<Entry>,
        store: Arc<dyn Store>,
        key: Arc<str>,
        content_encoding: Option<&HeaderValue>,
    ) -> Self {
        let coding = content_encoding
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("identity"))
            .map(|s| s.to_ascii_lowercase().into_boxed_str());
        Self {
            entry,
            store,
            key,
            coding,
        }
    }
}

impl std::fmt::Debug for StoredHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredHandle")
            .field("key", &self.key)
            .field("coding", &self.coding)
            .field("encoded", &self.entry.codings())
            .finish()
    }
}

impl StoredVariants for StoredHandle {
    fn stored_coding(&self) -> &str {
        self.coding.as_deref().unwrap_or("identity")
    }

    fn body(&self) -> Bytes {
        self.entry.body()
    }

    fn variant(&self, coding: &str) -> Option<Bytes> {
        self.entry.encoded(coding)
    }

    fn claim(&self, coding: &'static str) -> bool {
        self.entry.claim(coding)
    }

    fn release(&self, coding: &'static str) {
        self.entry.release(coding);
    }

    fn add_variant(&self, coding: &'static str, body: Bytes) {
        let new = Arc::new(self.entry.with_encoded(coding, body));
        let fut = self
            .store
            .replace_variant(self.key.clone(), self.entry.clone(), new);
        let entry = self.entry.clone();
        let done = move || entry.release(coding);
        // The memory tier completes at once; a network tier finishes on a task.
        let mut fut = fut;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if fut.as_mut().poll(&mut cx).is_ready() {
            done();
        } else if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                fut.await;
                done();
            });
        } else {
            done();
        }
    }
}
