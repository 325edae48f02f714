//! Per-endpoint connection pools.
//!
//! HTTP/1.1: idle connections are kept in a LIFO stack (the warmest is reused first) up to
//! `max_idle_per_endpoint`; a connection is dropped when idle longer than `idle_timeout`,
//! older than `max_lifetime`, or closed by the peer. A connection returns to the pool only
//! when its response body has been read to the end; a body dropped early closes it.
//! A request that could not be written on a reused connection (the peer closed it just as
//! we picked it) is sent again on a fresh connection: hyper hands the unsent request back.
//! Each idle connection remembers the connection thread whose runtime drives it, and a request
//! reuses only its own thread's connections (or ones opened outside the connection threads):
//! never another thread's, which would wake that thread for every request it sends.
//!
//! HTTP/2 (`http2 = true`): one multiplexed connection per endpoint, re-established when it
//! closes.

use std::{
    io,
    path::Path,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;
use rampart_core::{Body, BoxError, Error, ErrorKind, body};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Instant,
};

use crate::upstream::Endpoint;

/// Pool and protocol settings of one upstream (from `[[upstreams]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// TCP + TLS connect deadline (504 after).
    pub connect_timeout: Duration,
    /// Deadline for the response head (504 after).
    pub response_timeout: Duration,
    /// Idle connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
    /// Idle connections are closed after this.
    pub idle_timeout: Duration,
    /// Connections are not reused after this age.
    pub max_lifetime: Duration,
    /// TCP keepalive interval; `None` = off.
    pub tcp_keepalive: Option<Duration>,
    /// Use HTTP/2 to the endpoints.
    pub http2: bool,
    /// HTTP/1.1 connections per endpoint at most, idle + in use (0 = no limit).
    pub max_connections: usize,
    /// With `max_connections` reached, how long to wait for a free one (then 503).
    pub pool_wait: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(30),
            max_idle_per_endpoint: 64,
            idle_timeout: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(600),
            tcp_keepalive: Some(Duration::from_secs(30)),
            http2: false,
            max_connections: 0,
            pool_wait: Duration::from_secs(1),
        }
    }
}

/// TLS client settings for https endpoints.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

impl TlsSettings {
    /// Build from an optional CA bundle (default: the system roots), an optional SNI /
    /// verification name override, and whether to offer `h2` by ALPN.
    pub fn new(
        ca_file: Option<&Path>,
        server_name: Option<String>,
        http2: bool,
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(p) => {
                let certs = CertificateDer::pem_file_iter(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                for c in certs {
                    let c = c.map_err(|e| format!("{}: {e}", p.display()))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: invalid CA certificate: {e}", p.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!("{}: no CA certificate found", p.display()));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for c in native.certs {
                    let _ = roots.add(c);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// A connection slot under `max_connections` (none without a limit); dropped with the
/// connection.
type Slot = Option<tokio::sync::OwnedSemaphorePermit>;

struct Idle {
    tx: http1::SendRequest<Body>,
    created: Instant,
    since: Instant,
    slot: Slot,
    /// The connection thread whose runtime drives the connection
    /// ([`rampart_core::worker::index`]).
    thread: usize,
}

/// The warmest idle connection driven by connection thread `me`, else one driven from outside
/// the connection threads (index 0: warmed at start, or used by the main runtime). Another
/// connection thread's only with `any_thread` (the endpoint's connection limit is reached):
/// its every request would wake that thread, so opening a new connection is cheaper for as
/// long as the connection lives.
fn take_idle(idle: &mut Vec<Idle>, me: usize, any_thread: bool) -> Option<Idle> {
    let at = idle
        .iter()
        .rposition(|c| c.thread == me)
        .or_else(|| idle.iter().rposition(|c| c.thread == 0))
        .or_else(|| any_thread.then(|| idle.len().checked_sub(1)).flatten())?;
    Some(idle.remove(at))
}

/// The pool of one endpoint.
pub(crate) struct EndpointPool {
    pub(crate) ep: Endpoint,
    settings: Arc<PoolSettings>,
    tls: Option<Arc<TlsSettings>>,
    idle: Mutex<Vec<Idle>>,
    h2: tokio::sync::Mutex<Option<http2::SendRequest<Body>>>,
    idle_gauge: Gauge,
    in_use_gauge: Gauge,
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl EndpointPool {
    pub(crate) fn new(
        ep: Endpoint,
        settings: Arc<PoolSettings>,
        tls: Option<Arc<TlsSettings>>,
        idle_gauge: Gauge,
        in_use_gauge: Gauge,
    ) -> Self {
        let slots = (settings.max_connections > 0 && !settings.http2)
            .then(|| Arc::new(tokio::sync::Semaphore::new(settings.max_connections)));
        Self {
            ep,
            settings,
            tls,
            idle: Mutex::new(Vec::new()),
            h2: tokio::sync::Mutex::new(None),
            idle_gauge,
            in_use_gauge,
            slots,
        }
    }

    /// The settings this pool was built with.
    pub(crate) fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// A plain-TCP (not TLS) pool?
    pub(crate) fn plain(&self) -> bool {
        self.tls.is_none()
    }

    /// Open connections until `min` are idle (HTTP/1.1; HTTP/2 opens its one connection).
    pub(crate) async fn warm(self: Arc<Self>, min: usize) {
        if self.settings.http2 {
            return;
        }
        loop {
            let idle = self.idle.lock().map(|v| v.len()).unwrap_or(min);
            if idle >= min {
                return;
            }
            let slot = match &self.slots {
                Some(s) => match s.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => return,
                },
                None => None,
            };
            match self.handshake().await {
                Ok(tx) => {
                    if !self.put_back(tx, Instant::now(), slot, rampart_core::worker::index()) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(endpoint = %self.ep.label, error = %e, "warm-up connect failed");
                    return;
                }
            }
        }
    }

    /// Send a request (URI already in the right form) and return the response head with a
    /// body that gives the connection back when read to the end.
    pub(crate) async fn send(
        self: &Arc<Self>,
        req: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        if self.settings.http2 {
            return self.send_h2(req).await;
        }
        let mut req = req;
        for _attempt in 0..3 {
            let (mut tx, created, reused, slot, thread) = self.checkout().await?;
            // Held across the await: a client that disconnects mid-request drops this future,
            // and the guard with it.
            let in_use = InUse::new(self.in_use_gauge.clone());
            let sent =
                tokio::time::timeout(self.settings.response_timeout, tx.try_send_request(req))
                    .await;
            match sent {
                Err(elapsed) => {
                    return Err(Error::new(ErrorKind::GatewayTimeout)
                        .with_message(format!("no response head from {} in time", self.ep.label))
                        .with_source(elapsed)
                        .into());
                }
                Ok(Ok(resp)) => {
                    let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    let guard = Checkedout {
                        pool: self.clone(),
                        tx: (!upgrade).then_some(tx),
                        created,
                        slot,
                        thread,
                        _in_use: in_use,
                    };
                    return Ok(resp.map(|b| {
                        body::boxed(PooledBody {
                            inner: b,
                            guard: Some(guard),
                        })
                    }));
                }
                Ok(Err(mut e)) => {
                    drop(in_use);
                    match e.take_message() {
                        Some(unsent) if reused => {
                            tracing::debug!(endpoint = %self.ep.label, "pooled connection closed before use; retrying on a new one");
                            req = unsent;
                            continue;
                        }
                        _ => {
                            let e = e.into_error();
                            // Our own request-body error (e.g. the size limit) keeps its type.
                            if rampart_core::error::is_caused_by::<Error>(&e) {
                                return Err(e.into());
                            }
                            return Err(Error::new(ErrorKind::UpstreamProtocol)
                                .with_message(format!("request to {} failed", self.ep.label))
                                .with_source(e)
                                .into());
                        }
                    }
                }
            }
        }
        Err(Error::new(ErrorKind::UpstreamConnect)
            .with_message(format!("no usable connection to {}", self.ep.label))
            .into())
    }

    async fn send_h2(&self, req: http::Request<Body>) -> Result<http::Response<Body>, BoxError> {
        let mut tx = {
            let mut slot = self.h2.lock().await;
            match slot.as_ref() {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    let io = self.connect().await?;
                    let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .handshake(TokioIo::new(io))
                        .await
                        .map_err(|e| Error::new(ErrorKind::UpstreamProtocol).with_source(e))?;
                    let label = self.ep.label.clone();
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(endpoint = %label, error = %e, "h2 upstream connection ended");
                        }
                    });
                    *slot = Some(tx.clone());
                    tx
                }
            }
        };
        tx.ready()
            .await
            .map_err(|e| Error::new(ErrorKind::UpstreamProtocol).with_source(e))?;
        let resp = tokio::time::timeout(self.settings.response_timeout, tx.send_request(req))
            .await
            .map_err(|e| Error::new(ErrorKind::GatewayTimeout).with_source(e))?
            .map_err(|e| Error::new(ErrorKind::UpstreamProtocol).with_source(e))?;
        Ok(resp.map(body::boxed))
    }

    /// An idle connection of this thread (else one from outside the connection threads), or
    /// a new one: (sender, created, reused, slot, driving thread).
    async fn checkout(
        &self,
    ) -> Result<(http1::SendRequest<Body>, Instant, bool, Slot, usize), BoxError> {
        let me = rampart_core::worker::index();
        // Another thread's idle connection only when the endpoint's connection limit leaves
        // no room for a new one (waiting would be worse than a cross-thread wake-up).
        let mut any_thread = false;
        loop {
            let candidate = self
                .idle
                .lock()
                .ok()
                .and_then(|mut v| take_idle(&mut v, me, any_thread));
            let Some(mut c) = candidate else {
                if !any_thread
                    && self
                        .slots
                        .as_ref()
                        .is_some_and(|s| s.available_permits() == 0)
                {
                    any_thread = true;
                    continue;
                }
                break;
            };
            self.idle_gauge.dec();
            if c.tx.is_closed()
                || c.since.elapsed() >= self.settings.idle_timeout
                || c.created.elapsed() >= self.settings.max_lifetime
            {
                continue;
            }
            // Normally immediate; bounded in case the connection task is wedged.
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_millis(250), c.tx.ready()).await
            {
                return Ok((c.tx, c.created, true, c.slot, c.thread));
            }
        }
        let slot = match &self.slots {
            Some(s) => {
                match tokio::time::timeout(self.settings.pool_wait, s.clone().acquire_owned()).await
                {
                    Ok(Ok(p)) => Some(p),
                    _ => {
                        return Err(Error::new(ErrorKind::Overloaded)
                            .with_message(format!(
                                "no free connection to {} within {:?}",
                                self.ep.label, self.settings.pool_wait
                            ))
                            .into());
                    }
                }
            }
            None => None,
        };
        Ok((self.handshake().await?, Instant::now(), false, slot, me))
    }

    async fn handshake(&self) -> Result<http1::SendRequest<Body>, BoxError> {
        let io = self.connect().await?;
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| Error::new(ErrorKind::UpstreamConnect).with_source(e))?;
        let label = self.ep.label.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(endpoint = %label, error = %e, "upstream connection ended");
            }
        });
        Ok(tx)
    }

    /// Keep a connection for reuse; false when it was dropped instead.
    fn put_back(
        &self,
        tx: http1::SendRequest<Body>,
        created: Instant,
        slot: Slot,
        thread: usize,
    ) -> bool {
        if tx.is_closed() || created.elapsed() >= self.settings.max_lifetime {
            return false;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.settings.max_idle_per_endpoint
        {
            idle.push(Idle {
                tx,
                created,
                since: Instant::now(),
                slot,
                thread,
            });
            self.idle_gauge.inc();
            return true;
        }
        false
    }

    /// Drop idle connections past their idle timeout or lifetime.
    pub(crate) fn reap(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            let before = idle.len();
            let s = &self.settings;
            idle.retain(|c| {
                !c.tx.is_closed()
                    && c.since.elapsed() < s.idle_timeout
                    && c.created.elapsed() < s.max_lifetime
            });
            let removed = before - idle.len();
            if removed > 0 {
                self.idle_gauge.dec_by(removed as i64);
            }
        }
    }

    async fn connect(&self) -> Result<MaybeTls, BoxError> {
        let s = &self.settings;
        let label = &self.ep.label;
        let stream =
            match tokio::time::timeout(s.connect_timeout, TcpStream::connect(&*self.ep.addr)).await
            {
                Err(elapsed) => {
                    return Err(Error::new(ErrorKind::GatewayTimeout)
                        .with_message(format!("connect to {label} timed out"))
                        .with_source(elapsed)
                        .into());
                }
                Ok(Err(e)) => {
                    return Err(Error::new(ErrorKind::UpstreamConnect)
                        .with_message(format!("connect to {label}"))
                        .with_source(e)
                        .into());
                }
                Ok(Ok(s)) => s,
            };
        let _ = stream.set_nodelay(true);
        if let Some(ka) = s.tcp_keepalive {
            let sock = socket2::SockRef::from(&stream);
            let _ = sock
                .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(ka).with_interval(ka));
        }
        let Some(tls) = &self.tls else {
            return Ok(MaybeTls::Plain(stream));
        };
        let name = tls.server_name.as_deref().unwrap_or(&self.ep.host);
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| {
            Error::new(ErrorKind::UpstreamConnect)
                .with_message(format!("invalid tls server name {name:?}"))
                .with_source(e)
        })?;
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        match tokio::time::timeout(s.connect_timeout, connector.connect(server_name, stream)).await
        {
            Err(elapsed) => Err(Error::new(ErrorKind::GatewayTimeout)
                .with_message(format!("tls handshake with {label} timed out"))
                .with_source(elapsed)
                .into()),
            Ok(Err(e)) => Err(Error::new(ErrorKind::UpstreamConnect)
                .with_message(format!("tls handshake with {label}"))
                .with_source(e)
                .into()),
            Ok(Ok(t)) => Ok(MaybeTls::Tls(Box::new(t))),
        }
    }
}

impl Drop for EndpointPool {
    fn drop(&mut self) {
        if let Ok(idle) = self.idle.lock() {
            self.idle_gauge.dec_by(idle.len() as i64);
        }
    }
}

/// Counts a connection as in use for as long as it lives.
struct InUse(Gauge);

impl InUse {
    fn new(g: Gauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A checked-out HTTP/1.1 connection; returned to the pool on a clean end of body.
struct Checkedout {
    pool: Arc<EndpointPool>,
    tx: Option<http1::SendRequest<Body>>,
    created: Instant,
    slot: Slot,
    thread: usize,
    _in_use: InUse,
}

pin_project_lite::pin_project! {
    struct PooledBody {
        #[pin]
        inner: hyper::body::Incoming,
        guard: Option<Checkedout>,
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_frame(cx);
        let done = match &r {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if done
            && let Some(mut g) = this.guard.take()
            && let Some(tx) = g.tx.take()
        {
            g.pool.put_back(tx, g.created, g.slot.take(), g.thread);
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

/// A plain or TLS upstream stream.
enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, b),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
        }
    }
}
