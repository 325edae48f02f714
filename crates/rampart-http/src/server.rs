//! Binding listeners and serving them until shutdown.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use hyper::body::Incoming;
use rampart_core::Body;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;

use crate::conn;

/// Something that answers requests. It never fails: errors were turned into responses by
/// the stack's rescue layer. Implemented for `Fn(Request<Incoming>) -> impl Future`.
pub trait Handler: Clone + Send + Sync + 'static {
    /// The response future.
    type Future: Future<Output = http::Response<Body>> + Send + 'static;
    /// Answer one request (its extensions hold a [`rampart_core::ConnInfo`]).
    fn call(&self, req: http::Request<Incoming>) -> Self::Future;
}

impl<F, Fut> Handler for F
where
    F: Fn(http::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Body>> + Send + 'static,
{
    type Future = Fut;
    fn call(&self, req: http::Request<Incoming>) -> Fut {
        self(req)
    }
}

/// Limits and timeouts of the downstream connections (from `[server]`).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Offer/accept HTTP/2.
    pub http2: bool,
    /// Maximum open connections across all listeners; excess are closed at once.
    pub max_connections: usize,
    /// Deadline for a request head once its first byte arrived.
    pub header_read_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    pub keepalive_timeout: Duration,
    /// Maximum request head size (at least 8 KiB; hyper answers 431 above).
    pub max_header_bytes: usize,
    /// Maximum number of header fields (hyper answers 431 above).
    pub max_headers: usize,
    /// How long in-flight requests may run after shutdown begins.
    pub drain_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            http2: true,
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Live connection counters (read by metrics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections with at least one request in flight.
    pub active: AtomicUsize,
    /// Open connections with no request in flight.
    pub idle: AtomicUsize,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections refused because `max_connections` was reached.
    pub refused: AtomicU64,
    /// Connections closed by the header-read (slowloris) deadline.
    pub header_timeouts: AtomicU64,
}

/// A bound listener, not yet serving.
pub struct BoundListener {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    local: SocketAddr,
}

impl BoundListener {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
    /// Whether this listener terminates TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Bind an address, optionally with TLS. Errors name the address.
pub async fn bind(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<BoundListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    Ok(BoundListener {
        listener,
        tls: tls.map(TlsAcceptor::from),
        local,
    })
}

/// 0 = running, 1 = draining (finish in-flight, no keep-alive), 2 = close everything now.
pub(crate) type Phase = watch::Receiver<u8>;

/// Controls a running server.
pub struct ServerHandle {
    phase: watch::Sender<u8>,
    tasks: JoinSet<()>,
    conns: Arc<conn::Tracker>,
    drain_timeout: Duration,
    stats: Arc<Stats>,
}

impl ServerHandle {
    /// Connection counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish up to the drain
    /// timeout, then close what is left. Returns `true` when everything drained in time.
    pub async fn shutdown(mut self) -> bool {
        let _ = self.phase.send(1);
        // Accept loops end on the phase change.
        while self.tasks.join_next().await.is_some() {}
        let drained = tokio::time::timeout(self.drain_timeout, self.conns.wait_idle())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                open = self.conns.open(),
                "drain timeout reached; closing remaining connections"
            );
            let _ = self.phase.send(2);
            self.conns.wait_idle().await;
        }
        drained
    }
}

/// Serve `listeners` with `handler` until [`ServerHandle::shutdown`].
pub fn serve<H: Handler>(
    listeners: Vec<BoundListener>,
    handler: H,
    opts: ServerOptions,
) -> ServerHandle {
    let (phase_tx, phase_rx) = watch::channel(0u8);
    let limit = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let stats = Arc::new(Stats::default());
    let conns = Arc::new(conn::Tracker::default());
    let opts = Arc::new(opts);
    let mut tasks = JoinSet::new();
    for l in listeners {
        tasks.spawn(accept_loop(
            l,
            handler.clone(),
            opts.clone(),
            limit.clone(),
            stats.clone(),
            conns.clone(),
            phase_rx.clone(),
        ));
    }
    ServerHandle {
        phase: phase_tx,
        tasks,
        conns,
        drain_timeout: opts.drain_timeout,
        stats,
    }
}

async fn accept_loop<H: Handler>(
    l: BoundListener,
    handler: H,
    opts: Arc<ServerOptions>,
    limit: Arc<Semaphore>,
    stats: Arc<Stats>,
    conns: Arc<conn::Tracker>,
    mut phase: Phase,
) {
    loop {
        let accepted = tokio::select! {
            r = l.listener.accept() => r,
            _ = phase.wait_for(|p| *p > 0) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, listener = %l.local, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "max_connections reached; connection refused");
            drop(stream);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let ctx = conn::ConnCtx {
            peer,
            local: l.local,
            tls: l.tls.clone(),
            opts: opts.clone(),
            stats: stats.clone(),
            phase: phase.clone(),
        };
        let guard = conns.enter();
        let handler = handler.clone();
        tokio::spawn(async move {
            conn::serve_conn(stream, ctx, handler).await;
            drop(permit);
            drop(guard);
        });
    }
}
