//! The tee body: streams a miss to the client while collecting it for the cache.
//!
//! Chunks go to the client as they arrive (no added first-byte latency); the tee keeps
//! `Bytes` clones of them. On a clean end of stream whose length matches `Content-Length`
//! the object is packed and stored. An object that grows past the maximum object size is
//! abandoned (and remembered as hit-for-pass), never truncated; a body error or an early
//! drop (client gone) stores nothing. The coalescing guard is released when the object is
//! stored or abandoned, waking the requests that wait for it.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use rampart_core::{Body, BoxError};
use tokio::time::Instant;

use crate::{
    cache::FlightGuard,
    entry::{Entry, EntryMeta},
    store::{Store, StoreFuture},
};

/// Everything needed to build the entry once the body is complete.
pub(crate) struct EntryTemplate {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) meta: EntryMeta,
    pub(crate) vary: Vec<HeaderName>,
    pub(crate) secondary: String,
    pub(crate) tags: Vec<Arc<str>>,
    pub(crate) url: Arc<str>,
    /// Add a strong `ETag` (hash of the body) when the response has none, keeping it this
    /// long past freshness for revalidation (`Some(keep_for_revalidation)`).
    pub(crate) generate_etag: Option<std::time::Duration>,
}

pub(crate) struct Collect {
    pub(crate) chunks: Vec<Bytes>,
    pub(crate) size: u64,
    pub(crate) max: u64,
    pub(crate) expected_len: Option<u64>,
    pub(crate) template: EntryTemplate,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) key: Arc<str>,
    pub(crate) pass_until: Instant,
    pub(crate) guard: Option<FlightGuard>,
}

/// A body that forwards every frame and stores the complete object at the end.
pub(crate) struct TeeBody {
    inner: Body,
    collect: Option<Box<Collect>>,
}

impl TeeBody {
    pub(crate) fn new(inner: Body, collect: Collect) -> Self {
        let mut tee = Self {
            inner,
            collect: Some(Box::new(collect)),
        };
        // An empty body may never be polled (its end is known up front): store it now.
        if tee.inner.is_end_stream() {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            tee.finish(&mut cx);
        }
        tee
    }

    fn finish(&mut self, cx: &mut Context<'_>) {
        let Some(c) = self.collect.take() else { return };
        let c = *c;
        if c.expected_len.is_some_and(|n| n != c.size) {
            return; // incomplete: never stored
        }
        let mut t = c.template;
        if let Some(keep) = t.generate_etag
            && !t.headers.contains_key(http::header::ETAG)
        {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            for chunk in &c.chunks {
                h.update(chunk);
            }
            let tag = format!("\"{:016x}\"", h.digest());
            if let Ok(v) = http::HeaderValue::from_str(&tag) {
                t.headers.insert(http::header::ETAG, v);
                t.meta.has_validator = true;
                t.meta.compute_expiry(keep);
            }
        }
        let Some(entry) = Entry::new(
            t.status,
            &t.headers,
            &c.chunks,
            t.meta,
            t.vary,
            t.secondary,
            t.tags,
            t.url,
        ) else {
            return;
        };
        let fut = c.store.put_variant(c.key, Arc::new(entry));
        drive(fut, c.guard, cx);
    }

    fn abandon_too_large(&mut self, cx: &mut Context<'_>) {
        let Some(c) = self.collect.take() else { return };
        let fut = c.store.mark_pass(c.key.clone(), c.pass_until);
        drive(fut, c.guard, cx);
    }
}

/// Complete a store future now if it is ready (the memory tier always is); otherwise hand
/// it to a task. The guard is released after it completes.
fn drive(mut fut: StoreFuture<'static, ()>, guard: Option<FlightGuard>, cx: &mut Context<'_>) {
    if fut.as_mut().poll(cx).is_ready() {
        drop(guard);
        return;
    }
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            fut.await;
            drop(guard);
        });
    }
}

impl http_body::Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.finish(cx);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.collect = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                let mut too_large = false;
                if let (Some(c), Some(data)) = (this.collect.as_mut(), frame.data_ref()) {
                    c.size += data.len() as u64;
                    if c.size > c.max {
                        too_large = true;
                    } else if !data.is_empty() {
                        c.chunks.push(data.clone());
                    }
                }
                if too_large {
                    this.abandon_too_large(cx);
                } else if this.inner.is_end_stream() {
                    this.finish(cx);
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
