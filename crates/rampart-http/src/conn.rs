//! One downstream connection: TLS handshake, hyper, and the watchdog that enforces the
//! header-read (slowloris) and keep-alive idle deadlines.
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive connection waits for its
//! next request, which would make the idle timeout equal the slowloris timeout. So both are
//! enforced here instead: the IO wrapper notes when the first byte of a new request head
//! arrives, the service notes when a head is complete (the request is handed over), and the
//! watchdog closes the connection when either deadline passes.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use rampart_core::{Body, ConnInfo};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::Notify,
    time::Instant,
};
use tokio_rustls::TlsAcceptor;

use crate::server::{Handler, Phase, ServerOptions, Stats};

/// Counts open connections so shutdown can wait for them.
#[derive(Default)]
pub(crate) struct Tracker {
    open: AtomicUsize,
    notify: Notify,
}

pub(crate) struct TrackerGuard(Arc<Tracker>);

impl Tracker {
    pub(crate) fn enter(self: &Arc<Self>) -> TrackerGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        TrackerGuard(self.clone())
    }
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.notify.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.notify.notify_waiters();
        }
    }
}

pub(crate) struct ConnCtx {
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) opts: Arc<ServerOptions>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) phase: Phase,
}

/// Per-connection activity shared by the IO wrapper, the service and the watchdog.
/// Times are milliseconds since `base` (+1, so 0 means "unset").
struct Activity {
    base: Instant,
    in_flight: AtomicUsize,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    /// A `content-length` field was seen in the raw head of the request being read.
    cl_in_head: std::sync::atomic::AtomicBool,
    changed: Notify,
    stats: Arc<Stats>,
}

impl Activity {
    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64 + 1
    }

    /// Note a `Content-Length` field in a head being read (only while no request is in
    /// flight, and only up to the end of the head, so body bytes never count).
    fn scan_head(&self, data: &[u8]) {
        if self.in_flight.load(Ordering::Acquire) != 0 {
            return;
        }
        if head_has_content_length(data) {
            self.cl_in_head.store(true, Ordering::Release);
        }
    }

    fn on_bytes(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == 0
        {
            self.head_started.store(self.now(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn start_request(self: &Arc<Self>) -> InFlight {
        self.head_started.store(0, Ordering::Release);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.stats.idle.fetch_sub(1, Ordering::Relaxed);
            self.stats.active.fetch_add(1, Ordering::Relaxed);
        }
        InFlight(self.clone())
    }

    /// Resolves when a deadline passed: `true` for the header deadline, `false` for idle.
    async fn watchdog(&self, header: Duration, idle: Duration) -> bool {
        loop {
            let changed = self.changed.notified();
            let head = self.head_started.load(Ordering::Acquire);
            let deadline = if head != 0 {
                Some((head + header.as_millis() as u64, true))
            } else if self.in_flight.load(Ordering::Acquire) == 0 {
                Some((
                    self.idle_since.load(Ordering::Acquire) + idle.as_millis() as u64,
                    false,
                ))
            } else {
                None
            };
            match deadline {
                Some((at, is_header)) => {
                    if self.now() >= at {
                        return is_header;
                    }
                    let when = self.base + Duration::from_millis(at - 1);
                    tokio::select! {
                        _ = tokio::time::sleep_until(when) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// Held while a request is in flight (moved into the response body).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.idle_since.store(a.now(), Ordering::Release);
            a.stats.active.fetch_sub(1, Ordering::Relaxed);
            a.stats.idle.fetch_add(1, Ordering::Relaxed);
            a.changed.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// The response body, holding the in-flight guard until it is done or dropped.
    pub(crate) struct TrackedBody {
        #[pin]
        inner: Body,
        guard: Option<InFlight>,
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = rampart_core::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = r {
            this.guard.take();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// IO wrapper noting when the first byte of a request head arrives.
    struct TrackedIo<T> {
        #[pin]
        io: T,
        act: Arc<Activity>,
    }
}

impl<T: AsyncRead> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.act.on_bytes();
            this.act.scan_head(&buf.filled()[before..]);
        }
        r
    }
}

/// Whether a `Content-Length` field starts a line of the head at the start of `data` (up to
/// the blank line ending it). One `memchr` per line, so a typical head costs a few hundred
/// instructions.
fn head_has_content_length(data: &[u8]) -> bool {
    const NAME: &[u8] = b"content-length:";
    for nl in memchr::memchr_iter(b'\n', data) {
        let line = &data[nl + 1..];
        match line.first() {
            // A blank line ends the head; body bytes after it never count.
            None | Some(b'\r') | Some(b'\n') => return false,
            Some(b'c' | b'C') => {
                if line.len() >= NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME) {
                    return true;
                }
            }
            Some(_) => {}
        }
    }
    false
}

impl<T: AsyncWrite> AsyncWrite for TrackedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, b)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

pub(crate) async fn serve_conn<H: Handler>(stream: TcpStream, ctx: ConnCtx, handler: H) {
    let act = Arc::new(Activity {
        base: Instant::now(),
        in_flight: AtomicUsize::new(0),
        idle_since: AtomicU64::new(1),
        head_started: AtomicU64::new(0),
        cl_in_head: std::sync::atomic::AtomicBool::new(false),
        changed: Notify::new(),
        stats: ctx.stats.clone(),
    });
    ctx.stats.idle.fetch_add(1, Ordering::Relaxed);
    match ctx.tls.clone() {
        None => {
            let io = TrackedIo {
                io: stream,
                act: act.clone(),
            };
            run(io, &ctx, handler, act.clone(), false).await;
        }
        Some(acceptor) => {
            // The handshake counts against the header deadline.
            match tokio::time::timeout(ctx.opts.header_read_timeout, acceptor.accept(stream)).await
            {
                Ok(Ok(tls)) => {
                    let io = TrackedIo {
                        io: tls,
                        act: act.clone(),
                    };
                    run(io, &ctx, handler, act.clone(), true).await;
                }
                Ok(Err(e)) => tracing::debug!(peer = %ctx.peer, error = %e, "tls handshake failed"),
                Err(_) => tracing::debug!(peer = %ctx.peer, "tls handshake timed out"),
            }
        }
    }
    ctx.stats.idle.fetch_sub(1, Ordering::Relaxed);
}

async fn run<T, H>(io: T, ctx: &ConnCtx, handler: H, act: Arc<Activity>, tls: bool)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    H: Handler,
{
    let info = ConnInfo {
        peer: ctx.peer,
        local: ctx.local,
        tls,
    };
    let svc_act = act.clone();
    let svc = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let cl_in_head = svc_act.cl_in_head.swap(false, Ordering::AcqRel);
        let guard = svc_act.start_request();
        req.extensions_mut().insert(info.clone());
        if cl_in_head && req.headers().contains_key(http::header::TRANSFER_ENCODING) {
            req.extensions_mut().insert(rampart_core::FramingConflict);
        }
        let fut = handler.call(req);
        async move {
            let resp = fut.await;
            Ok::<_, Infallible>(resp.map(|inner| TrackedBody {
                inner,
                guard: Some(guard),
            }))
        }
    });
    let opts = &ctx.opts;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(opts.max_header_bytes.max(8192))
        .max_headers(opts.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    if !opts.http2 {
        builder = builder.http1_only();
    }
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut phase = ctx.phase.clone();
    let watchdog = act.watchdog(opts.header_read_timeout, opts.keepalive_timeout);
    tokio::pin!(watchdog);
    let mut draining = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(peer = %ctx.peer, error = %e, "connection ended with error");
                }
                return;
            }
            is_header = &mut watchdog => {
                if is_header {
                    ctx.stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %ctx.peer, "request head not received in time; closing");
                }
                return;
            }
            _ = phase.wait_for(|p| *p >= if draining { 2 } else { 1 }) => {
                if draining {
                    return;
                }
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::head_has_content_length;

    #[test]
    fn content_length_found_only_in_the_head() {
        assert!(head_has_content_length(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        ));
        assert!(head_has_content_length(
            b"POST / HTTP/1.1\r\ncontent-length:3\r\ntransfer-encoding: chunked\r\n\r\n"
        ));
        assert!(head_has_content_length(
            b"POST / HTTP/1.1\nCONTENT-LENGTH: 1\n\n"
        ));
        // Not a field name at the start of a line.
        assert!(!head_has_content_length(
            b"GET / HTTP/1.1\r\nX-Content-Length: 3\r\n\r\n"
        ));
        // After the blank line it is body, not head (CRLF and bare LF heads).
        assert!(!head_has_content_length(
            b"POST / HTTP/1.1\r\nHost: a\r\n\r\nContent-Length: 3\r\n"
        ));
        assert!(!head_has_content_length(
            b"POST / HTTP/1.1\nHost: a\n\ncontent-length: 3\n"
        ));
        // A truncated name is not a match.
        assert!(!head_has_content_length(b"POST / HTTP/1.1\r\nContent-Len"));
        assert!(!head_has_content_length(b""));
    }
}
