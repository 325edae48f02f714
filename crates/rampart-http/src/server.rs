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
    net::{TcpListener, TcpStream},
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
    /// Connection threads: each runs its own single-threaded runtime and serves the
    /// connections handed to it, every request of a connection (and the upstream connections
    /// it opens) on that one thread. 0 = one per CPU the process may use.
    pub workers: usize,
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
            workers: 0,
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
    let workers = Arc::new(Workers::start(opts.workers, conns.clone()));
    let opts = Arc::new(opts);
    let mut tasks = JoinSet::new();
    for l in listeners {
        tasks.spawn(accept_loop(
            l,
            handler.clone(),
            Accepting {
                opts: opts.clone(),
                limit: limit.clone(),
                stats: stats.clone(),
                conns: conns.clone(),
                workers: workers.clone(),
            },
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

/// What every accept loop of a server shares.
struct Accepting {
    opts: Arc<ServerOptions>,
    limit: Arc<Semaphore>,
    stats: Arc<Stats>,
    conns: Arc<conn::Tracker>,
    workers: Arc<Workers>,
}

async fn accept_loop<H: Handler>(l: BoundListener, handler: H, a: Accepting, mut phase: Phase) {
    let Accepting {
        opts,
        limit,
        stats,
        conns,
        workers,
    } = a;
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
        let serve = move |stream: TcpStream| {
            tokio::spawn(async move {
                conn::serve_conn(stream, ctx, handler).await;
                drop(permit);
                drop(guard);
            });
        };
        workers.hand_over(stream, serve);
    }
}

/// What a connection thread is given: the accepted socket and how to serve it.
type Job = Box<dyn FnOnce(TcpStream) + Send>;

/// The connection threads (thread per core, as nginx's workers): an accepted connection is
/// handed to one of them, round robin, and lives there. Its requests, their layers and the
/// upstream connections they open all run on that thread, so a request never wakes a task on
/// another thread. With no threads (could not start any) connections run on the caller's
/// runtime.
struct Workers {
    txs: Vec<tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, Job)>>,
    next: AtomicUsize,
}

impl Workers {
    fn start(n: usize, conns: Arc<conn::Tracker>) -> Self {
        let n = if n == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            n
        };
        let mut txs = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(std::net::TcpStream, Job)>();
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a connection thread runtime");
                    break;
                }
            };
            let conns = conns.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rampart-conn-{i}"))
                .spawn(move || {
                    rampart_core::worker::enter(i);
                    rt.block_on(async move {
                        while let Some((std_stream, job)) = rx.recv().await {
                            match TcpStream::from_std(std_stream) {
                                Ok(stream) => job(stream),
                                Err(e) => tracing::warn!(error = %e, "cannot adopt a connection"),
                            }
                        }
                        // Accepting has stopped: serve what is open until it is done (the
                        // server's drain decides how long that may take).
                        conns.wait_idle().await;
                    });
                });
            match spawned {
                Ok(_) => txs.push(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a connection thread");
                    break;
                }
            }
        }
        Self {
            txs,
            next: AtomicUsize::new(0),
        }
    }

    /// Serve `stream` on the next connection thread.
    fn hand_over(&self, stream: TcpStream, serve: impl FnOnce(TcpStream) + Send + 'static) {
        if !self.txs.is_empty() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.txs.len();
            match stream.into_std() {
                Ok(std_stream) => match self.txs[i].send((std_stream, Box::new(serve))) {
                    Ok(()) => return,
                    Err(tokio::sync::mpsc::error::SendError((std_stream, serve))) => {
                        // The thread is gone: serve here.
                        if let Ok(stream) = TcpStream::from_std(std_stream) {
                            serve(stream);
                        }
                        return;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot hand a connection over");
                    return;
                }
            }
        }
        serve(stream);
    }
}
