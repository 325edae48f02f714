//! Running the gateway: listeners, admin API, reload, signals, graceful shutdown.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use rampart_admin::{AdminApi, AdminState, Component, Health, Readiness};
use rampart_config::{Config, ConfigErrors, Overrides};
use rampart_core::{body, rescue};
use rampart_http::{ServerHandle, ServerOptions, Stats};
use rampart_telemetry::access::{AccessLog, AccessLogTask, Destination};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use crate::build::{Generation, Shared, build};

/// Changes applied to a re-read config file before it is built (e.g. CLI flags).
pub type ConfigOverrides = Arc<dyn Fn(&mut Config) + Send + Sync>;

/// How the app was started (for reload and the token file).
#[derive(Default, Clone)]
pub struct StartOptions {
    /// The config file, if any: `POST /reload` and SIGHUP re-read it.
    pub config_path: Option<PathBuf>,
    /// Applied to the file on reload (CLI flags such as `--listen`).
    pub reload_overrides: Option<ConfigOverrides>,
}

impl std::fmt::Debug for StartOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartOptions")
            .field("config_path", &self.config_path)
            .field("reload_overrides", &self.reload_overrides.is_some())
            .finish()
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config does not compile.
    #[error("invalid config:\n{0}")]
    Config(ConfigErrors),
    /// A socket or file problem.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// State behind the admin API and reload.
struct Control {
    current: Arc<ArcSwap<Generation>>,
    shared: Arc<Shared>,
    stats: Arc<Stats>,
    draining: AtomicBool,
    started: Instant,
    generation: AtomicU64,
    opts: StartOptions,
    audit: crate::audit::AuditRecent,
}

impl Control {
    /// Record an admin action in the audit log.
    fn admin_event(&self, action: &str, details: String) {
        self.shared.guard.events.emit(
            rampart_guard::SecurityEvent::new(rampart_guard::SecurityEventKind::AdminAction)
                .rule(action)
                .details(details),
        );
    }
}

impl Control {
    fn reload(&self) -> Result<u64, ConfigErrors> {
        let r = self.reload_inner();
        match &r {
            Ok(g) => self.admin_event("reload", format!("config generation {g}")),
            Err(e) => self.admin_event("reload_failed", format!("{} config errors", e.0.len())),
        }
        r
    }

    fn reload_inner(&self) -> Result<u64, ConfigErrors> {
        let Some(path) = &self.opts.config_path else {
            return Err(ConfigErrors::one(rampart_config::ConfigError::new(
                "(file)",
                "no config file to reload (started without --config)",
            )));
        };
        let mut config = rampart_config::load_file(path, &Overrides::from_env())?;
        if let Some(f) = &self.opts.reload_overrides {
            f(&mut config);
        }
        let old = self.current.load();
        let new = build(&config, &self.shared)?;
        let old_s = &old.config.server;
        let new_s = &config.server;
        if old_s.listen != new_s.listen
            || old_s.max_connections != new_s.max_connections
            || old_s.http2 != new_s.http2
        {
            tracing::warn!("listener settings changed; they take effect on restart");
        }
        new.upstreams.spawn_reaper(reaper_interval(&config));
        self.current.store(Arc::new(new));
        let n = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(generation = n, path = %path.display(), "config reloaded");
        Ok(n)
    }
}

impl AdminApi for Control {
    fn metrics(&self) -> String {
        self.shared.metrics.set_connections(
            self.stats.active.load(Ordering::Relaxed),
            self.stats.idle.load(Ordering::Relaxed),
        );
        crate::resilience::refresh_gauges(&self.current.load().upstreams);
        self.shared.metrics.encode()
    }

    fn readiness(&self) -> Readiness {
        let draining = self.draining.load(Ordering::Relaxed);
        let mut components = vec![Component {
            name: "listeners".into(),
            status: if draining {
                Health::Unhealthy
            } else {
                Health::Healthy
            },
            detail: draining.then(|| "draining for shutdown".to_string()),
        }];
        let current = self.current.load();
        let (ups, all_down) = crate::resilience::readiness(&current.upstreams);
        components.extend(ups);
        Readiness {
            ready: !draining && !all_down,
            components,
        }
    }

    fn config(&self) -> serde_json::Value {
        serde_json::to_value(&*self.current.load().config).unwrap_or_default()
    }

    fn stats(&self) -> serde_json::Value {
        let routes = self.shared.metrics.route_stats();
        let total: u64 = routes.iter().map(|(_, s)| s.requests).sum();
        let s = &self.stats;
        let (identity, sent) = self.shared.compress_metrics.totals();
        serde_json::json!({
            "uptime_seconds": self.started.elapsed().as_secs(),
            "config_generation": self.generation.load(Ordering::Relaxed),
            "requests": total,
            "connections": {
                "active": s.active.load(Ordering::Relaxed),
                "idle": s.idle.load(Ordering::Relaxed),
                "accepted": s.accepted.load(Ordering::Relaxed),
                "refused": s.refused.load(Ordering::Relaxed),
            },
            "access_log_dropped": self.shared.access_log.dropped(),
            "upstreams": crate::resilience::stats(&self.current.load().upstreams),
            "cache": self.shared.cache.as_ref().map(|c| {
                let st = c.stats();
                serde_json::json!({
                    "hits": st.hits,
                    "misses": st.misses,
                    "hit_ratio": st.hit_ratio(),
                    "entries": st.entries,
                    "bytes": st.bytes,
                })
            }),
            "compression": {
                "identity_bytes": identity,
                "sent_bytes": sent,
                "saved_bytes": identity.saturating_sub(sent),
            },
            "minify": crate::statics::stats_json(&self.shared.minify_metrics),
            "routes": routes
                .into_iter()
                .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or_default()))
                .collect::<serde_json::Map<_, _>>(),
        })
    }

    fn purge(&self, request: serde_json::Value) -> rampart_admin::AdminFuture {
        let cache = self.shared.cache.clone();
        let events = self.shared.guard.events.clone();
        Box::pin(async move {
            let Some(cache) = cache else {
                return Err((
                    409,
                    "the cache is disabled ([cache].enabled = false)".to_string(),
                ));
            };
            let req: rampart_cache::PurgeRequest = serde_json::from_value(request)
                .map_err(|e| (400, format!("invalid purge request: {e}")))?;
            let soft = req.soft;
            let out = cache.purge(req).await.map_err(|e| (400, e.to_string()))?;
            tracing::info!(purged = out.purged, soft, "cache purged via admin api");
            events.emit(
                rampart_guard::SecurityEvent::new(rampart_guard::SecurityEventKind::AdminAction)
                    .rule("purge")
                    .details(format!("{} purged, soft={soft}", out.purged)),
            );
            Ok(serde_json::json!({"purged": out.purged}))
        })
    }

    fn bans(&self) -> serde_json::Value {
        serde_json::to_value(self.shared.guard.bans.list()).unwrap_or_default()
    }

    fn ban(&self, request: serde_json::Value) -> Result<serde_json::Value, (u16, String)> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct BanRequest {
            ip: std::net::IpAddr,
            duration: String,
            #[serde(default)]
            reason: Option<String>,
        }
        let req: BanRequest = serde_json::from_value(request)
            .map_err(|e| (400, format!("invalid ban request: {e}")))?;
        let d = rampart_config::types::duration::parse(&req.duration).map_err(|e| (400, e))?;
        if d.is_zero() {
            return Err((400, "duration must be greater than 0".into()));
        }
        let info =
            self.shared
                .guard
                .bans
                .ban(req.ip, d, req.reason.as_deref().unwrap_or("admin api"));
        tracing::info!(ip = %req.ip, duration = ?d, "manual ban via admin api");
        self.admin_event("ban", format!("{} for {d:?}", req.ip));
        serde_json::to_value(info).map_err(|e| (500, e.to_string()))
    }

    fn unban(&self, ip: &str) -> Result<serde_json::Value, (u16, String)> {
        let ip: std::net::IpAddr = ip
            .parse()
            .map_err(|_| (400, format!("{ip:?} is not an IP address")))?;
        if self.shared.guard.bans.unban(ip) {
            tracing::info!(%ip, "ban lifted via admin api");
            self.admin_event("unban", ip.to_string());
            Ok(serde_json::json!({"unbanned": ip.to_string()}))
        } else {
            Err((404, format!("{ip} is not banned")))
        }
    }

    fn reload(&self) -> Result<serde_json::Value, Vec<String>> {
        self.reload()
            .map(|g| serde_json::json!({"reloaded": true, "generation": g}))
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    fn audit(&self, query: &rampart_admin::AuditQuery) -> Result<serde_json::Value, (u16, String)> {
        let since = match query.since.as_deref() {
            None | Some("") => None,
            Some(s) => Some(parse_since(s).ok_or_else(|| {
                (
                    400,
                    format!("since {s:?}: expected an RFC 3339 time or a duration such as \"15m\""),
                )
            })?),
        };
        let events = self.audit.query(&crate::audit::AuditQuery {
            since,
            kind: query.kind.clone(),
            limit: query.limit,
        });
        serde_json::to_value(events).map_err(|e| (500, e.to_string()))
    }
}

/// `since`: an RFC 3339 time, or a duration meaning "that long ago".
fn parse_since(s: &str) -> Option<std::time::SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Some(t);
    }
    let d = rampart_config::types::duration::parse(s).ok()?;
    std::time::SystemTime::now().checked_sub(d)
}

fn reaper_interval(c: &Config) -> Duration {
    c.upstreams
        .iter()
        .map(|u| u.idle_timeout / 2)
        .min()
        .unwrap_or(Duration::from_secs(30))
        .max(Duration::from_secs(1))
}

/// Hands each request to the stack of the current generation.
///
/// The listener clones the handler once per connection; each clone keeps its own copy of the
/// stack and calls it directly, re-cloning only when a reload swapped the generation. (A
/// clone of the whole stack per request was measurable refcount and allocation traffic.)
struct GatewayHandler {
    current: Arc<ArcSwap<Generation>>,
    local: std::sync::Mutex<Option<(Arc<Generation>, crate::stack::GatewayService)>>,
}

impl GatewayHandler {
    fn new(current: Arc<ArcSwap<Generation>>) -> Self {
        Self {
            current,
            local: std::sync::Mutex::new(None),
        }
    }
}

impl Clone for GatewayHandler {
    fn clone(&self) -> Self {
        Self::new(self.current.clone())
    }
}

impl rampart_http::Handler for GatewayHandler {
    type Future = HandlerFuture;
    fn call(&self, req: http::Request<hyper::body::Incoming>) -> HandlerFuture {
        let req = req.map(body::boxed);
        let current = self.current.load();
        // A poisoned lock only means a panic elsewhere mid-call; the cached stack is still whole.
        let mut local = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let svc = match &mut *local {
            Some((generation, svc)) if Arc::ptr_eq(generation, &current) => svc,
            slot => {
                let fresh = current.service.clone();
                &mut slot.insert((Arc::clone(&current), fresh)).1
            }
        };
        // Every service in the stack is always ready (overload is answered by the load-shed
        // layer, never by backpressure); should one ever not be, the request waits on a clone.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let inner = match svc.poll_ready(&mut cx) {
            std::task::Poll::Ready(Ok(())) => svc.call(req),
            _ => Box::pin(svc.clone().oneshot(req)),
        };
        HandlerFuture { inner }
    }
}

pin_project_lite::pin_project! {
    /// The stack's response future; a (never expected) error becomes a 500 here.
    struct HandlerFuture {
        #[pin]
        inner: <crate::stack::GatewayService as Service<rampart_core::Request>>::Future,
    }
}

impl std::future::Future for HandlerFuture {
    type Output = rampart_core::Response;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.project().inner.poll(cx) {
            std::task::Poll::Ready(Ok(r)) => std::task::Poll::Ready(r),
            std::task::Poll::Ready(Err(e)) => {
                std::task::Poll::Ready(rescue::error_response(&e, None))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// A started gateway.
pub struct RunningApp {
    control: Arc<Control>,
    server: ServerHandle,
    listen: Vec<SocketAddr>,
    tls_listen: Vec<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    admin_token: Option<String>,
    admin_stop: Option<tokio::sync::oneshot::Sender<()>>,
    admin_task: Option<tokio::task::JoinHandle<()>>,
    access_task: AccessLogTask,
    audit_task: crate::audit::AuditTask,
}

/// Start serving `config`: build, bind every listener (all-or-nothing), start the admin API.
pub async fn start(config: Config, opts: StartOptions) -> Result<RunningApp, StartError> {
    let (access_log, access_task) = AccessLog::start(Destination::parse(&config.log.access_log))?;
    let (events, audit_rx) = rampart_guard::EventSink::channel(config.audit.queue.max(1));
    let shared = Arc::new(Shared::new(access_log, &config.cache, events.clone()));
    let audit_task = crate::audit::start(
        &crate::audit::AuditSettings {
            path: config.audit.path.clone(),
            max_size: config.audit.max_size.bytes(),
            keep: config.audit.keep,
        },
        audit_rx,
        crate::audit::AuditContext {
            sink: events,
            metrics: Some(shared.guard.metrics.clone()),
        },
    )?;
    let current = build(&config, &shared).map_err(StartError::Config)?;
    let s = &config.server;
    let mut listeners = Vec::new();
    for addr in &s.listen {
        listeners.push(rampart_http::bind(*addr, None).await?);
    }
    if let Some(t) = &s.tls {
        for addr in &t.listen {
            listeners.push(rampart_http::bind(*addr, current.tls.clone()).await?);
        }
    }
    let listen: Vec<_> = listeners
        .iter()
        .filter(|l| !l.is_tls())
        .map(|l| l.local_addr())
        .collect();
    let tls_listen: Vec<_> = listeners
        .iter()
        .filter(|l| l.is_tls())
        .map(|l| l.local_addr())
        .collect();
    current.upstreams.spawn_reaper(reaper_interval(&config));
    let current = Arc::new(ArcSwap::from_pointee(current));

    let handler = GatewayHandler::new(current.clone());
    let server = rampart_http::serve(
        listeners,
        handler,
        ServerOptions {
            http2: s.http2,
            max_connections: s.max_connections,
            header_read_timeout: s.header_read_timeout,
            keepalive_timeout: s.keepalive_timeout,
            max_header_bytes: s.max_header_bytes.as_usize(),
            max_headers: s.max_headers,
            drain_timeout: s.drain_timeout,
            workers: s.workers,
        },
    );
    let control = Arc::new(Control {
        current,
        shared,
        stats: server.stats(),
        draining: AtomicBool::new(false),
        started: Instant::now(),
        generation: AtomicU64::new(1),
        opts,
        audit: audit_task.recent(),
    });

    let mut app = RunningApp {
        control: control.clone(),
        server,
        listen,
        tls_listen,
        admin_addr: None,
        admin_token: None,
        admin_stop: None,
        admin_task: None,
        access_task,
        audit_task,
    };
    if config.admin.enabled {
        let (token, written) = rampart_admin::ensure_token(
            config.admin.token.as_ref().map(|t| t.expose()),
            config.admin.token_file.as_deref(),
        )
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot write the admin token file: {e}"))
        })?;
        if let Some(p) = written {
            tracing::info!(path = %p.display(), "admin token generated (mode 0600)");
        }
        let listener = tokio::net::TcpListener::bind(config.admin.listen)
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {} (admin): {e}", config.admin.listen),
                )
            })?;
        app.admin_addr = Some(listener.local_addr()?);
        let router = rampart_admin::router(AdminState {
            api: control,
            token: token.as_str().into(),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        app.admin_task = Some(tokio::spawn(rampart_admin::serve(
            listener,
            router,
            async {
                let _ = rx.await;
            },
        )));
        app.admin_stop = Some(tx);
        app.admin_token = Some(token);
    }
    tracing::info!(
        listen = ?app.listen,
        tls = ?app.tls_listen,
        admin = ?app.admin_addr,
        version = env!("CARGO_PKG_VERSION"),
        "rampart started"
    );
    Ok(app)
}

impl RunningApp {
    /// Bound plain-text listener addresses.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// Bound TLS listener addresses.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_listen
    }

    /// Admin listener address, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The admin bearer token in force.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Re-read the config file and swap the new generation in (old one keeps serving on error).
    pub fn reload(&self) -> Result<u64, ConfigErrors> {
        self.control.reload()
    }

    /// Serve until SIGTERM or SIGINT (reloading on SIGHUP), then shut down gracefully.
    /// Returns whether in-flight requests drained in time.
    pub async fn run_until_signal(self) -> bool {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                tracing::warn!("cannot install signal handlers; stopping");
                return self.shutdown().await;
            };
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = term.recv() => break,
                    _ = hup.recv() => {
                        if let Err(e) = self.reload() {
                            tracing::error!(errors = %e, "reload refused; the running config stays");
                        }
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: draining in-flight requests");
        self.shutdown().await
    }

    /// Graceful shutdown: readiness goes 503, listeners stop accepting, in-flight requests
    /// finish (up to `server.drain_timeout`), the admin API stops, the access log is flushed.
    pub async fn shutdown(self) -> bool {
        self.control.draining.store(true, Ordering::Relaxed);
        let drained = self.server.shutdown().await;
        if let Some(tx) = self.admin_stop {
            let _ = tx.send(());
        }
        if let Some(t) = self.admin_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.control.shared.guard.jwks.stop();
        drop(self.control);
        self.audit_task.finish().await;
        // Every access-log sender is gone once the generations are dropped.
        if tokio::time::timeout(Duration::from_secs(5), self.access_task.finish())
            .await
            .is_err()
        {
            tracing::warn!("access log did not finish flushing in time");
        }
        tracing::info!(drained, "rampart stopped");
        drained
    }
}
