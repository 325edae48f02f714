//! Named upstream pools and endpoint selection.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::HeaderName;
use http_body_util::BodyExt;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge, histogram::Histogram};
use rampart_core::{Body, BoxError, ClientIp, Error, ErrorKind, body};
use tokio::time::Instant;

use crate::{
    balance::{self, Strategy},
    breaker::{BreakerSettings, BreakerState},
    budget::RetryBudget,
    health::HealthSettings,
    metrics::{
        BreakerLabels, EndpointLabels, PoolLabels, RequestLabels, RetryLabels, UpstreamLabel,
        UpstreamMetrics,
    },
    outlier::OutlierSettings,
    pool::{EndpointPool, PoolSettings, TlsSettings},
    retry::{self, Reason, RetrySettings},
    state::{EndpointRegistry, EndpointSnapshot, EndpointState},
};

/// One endpoint of a pool, parsed from its base URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`, used in logs and as the `endpoint` metric label.
    pub label: Arc<str>,
    /// Address to connect to (`host:port`, resolved at connect time).
    pub(crate) addr: Arc<str>,
    /// Host name (SNI / certificate verification).
    pub(crate) host: String,
    /// `https`?
    pub(crate) https: bool,
    /// Authority for absolute-form (HTTP/2) requests.
    pub(crate) authority: http::uri::Authority,
}

impl Endpoint {
    /// Parse `http(s)://host[:port]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("{url:?}: scheme must be http:// or https://")),
        };
        let auth = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("{url:?}: missing host"))?;
        let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = auth
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            label: addr.clone().into(),
            addr: addr.into(),
            host,
            https,
            authority: auth,
        })
    }
}

/// `outcome` label values of `rampart_upstream_requests_total`.
const OUTCOMES: [&str; 5] = [
    "ok",
    "http_5xx",
    "connect_error",
    "timeout",
    "protocol_error",
];

/// What `balance = "hash"` hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashOn {
    /// The client IP (`rampart_core::ClientIp`).
    #[default]
    ClientIp,
    /// The request path.
    Path,
    /// A request header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
}

impl HashOn {
    /// Parse `client_ip`, `path`, `header:NAME`, `cookie:NAME`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "client_ip" => Ok(Self::ClientIp),
            None if s == "path" => Ok(Self::Path),
            Some(("header", n)) => HeaderName::from_bytes(n.as_bytes())
                .map(Self::Header)
                .map_err(|e| format!("{n:?}: {e}")),
            Some(("cookie", n)) if !n.is_empty() => Ok(Self::Cookie(n.to_string())),
            _ => Err(format!(
                "{s:?}: expected \"client_ip\", \"path\", \"header:NAME\" or \"cookie:NAME\""
            )),
        }
    }

    /// The key of a request, if it has one.
    fn key(&self, req: &http::Request<Body>) -> Option<Vec<u8>> {
        match self {
            Self::ClientIp => req
                .extensions()
                .get::<ClientIp>()
                .map(|c| c.0.to_string().into_bytes()),
            Self::Path => Some(req.uri().path().as_bytes().to_vec()),
            Self::Header(h) => req.headers().get(h).map(|v| v.as_bytes().to_vec()),
            Self::Cookie(name) => req
                .headers()
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_bytes().to_vec()),
        }
    }
}

/// Resilience settings of one upstream.
#[derive(Debug, Clone, Default)]
pub struct ResilienceSettings {
    /// Balancing strategy.
    pub strategy: Strategy,
    /// Hash key of [`Strategy::Hash`].
    pub hash_on: HashOn,
    /// Weights in endpoint order (missing = 1).
    pub weights: Vec<u32>,
    /// Weight ramp for endpoints that just became healthy (zero = off).
    pub slow_start: Duration,
    /// Failover upstream, used while this one has no available endpoint.
    pub backup: Option<Arc<str>>,
    /// In-flight limit of the upstream (0 = none).
    pub max_concurrent: usize,
    /// Whole-request deadline across tries (`None` = none).
    pub request_timeout: Option<Duration>,
    /// Active health checks (`None` = off).
    pub health: Option<HealthSettings>,
    /// Passive ejection.
    pub outlier: OutlierSettings,
    /// Circuit breaker.
    pub breaker: BreakerSettings,
    /// Retries.
    pub retry: RetrySettings,
    /// Idle connections kept warm per endpoint.
    pub min_idle: usize,
}

/// One endpoint of an upstream with its pool, state and metric handles.
pub(crate) struct Ep {
    pub(crate) pool: Arc<EndpointPool>,
    pub(crate) state: Arc<EndpointState>,
    weight: u32,
    /// One counter per outcome in `OUTCOMES` order, resolved once.
    outcomes: [Counter; 5],
    ejections: Counter,
    healthy: Gauge,
    breaker: [Gauge; 3],
}

/// A named upstream: its endpoints, their pools and state, and how it picks and retries.
pub struct Upstream {
    name: Arc<str>,
    eps: Vec<Ep>,
    settings: ResilienceSettings,
    next: AtomicUsize,
    wrr: Mutex<Vec<i64>>,
    budget: Mutex<RetryBudget>,
    inflight: AtomicUsize,
    duration: Histogram,
    retries: [Counter; 4],
    budget_exhausted: Counter,
    overloaded: Counter,
    http2: bool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field(
                "endpoints",
                &self
                    .eps
                    .iter()
                    .map(|e| &e.pool.ep.label)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Holds one unit of a counter for as long as it lives.
struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        Self(c)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why no endpoint could be picked.
fn unavailable(name: &str, all_open: bool) -> BoxError {
    if all_open {
        Error::new(ErrorKind::CircuitOpen)
            .with_message(format!(
                "every endpoint of upstream {name} has its breaker open"
            ))
            .into()
    } else {
        Error::new(ErrorKind::NoHealthyEndpoints)
            .with_message(format!("upstream {name} has no available endpoint"))
            .into()
    }
}

impl Upstream {
    /// Build an upstream with default resilience settings and a private registry.
    pub fn new(
        name: &str,
        endpoints: Vec<Endpoint>,
        settings: PoolSettings,
        tls: Option<TlsSettings>,
        metrics: &UpstreamMetrics,
    ) -> Self {
        Self::build(
            name,
            endpoints,
            settings,
            tls,
            ResilienceSettings::default(),
            metrics,
            &EndpointRegistry::new(),
        )
    }

    /// Build an upstream; endpoint state and pools come from `registry` when this upstream
    /// already had the endpoint (config reload).
    pub fn build(
        name: &str,
        endpoints: Vec<Endpoint>,
        settings: PoolSettings,
        tls: Option<TlsSettings>,
        resilience: ResilienceSettings,
        metrics: &UpstreamMetrics,
        registry: &EndpointRegistry,
    ) -> Self {
        let http2 = settings.http2;
        let settings = Arc::new(settings);
        let tls = tls.map(Arc::new);
        let gauge = |state| {
            metrics
                .pool
                .get_or_create(&PoolLabels {
                    upstream: name.to_string(),
                    state,
                })
                .clone()
        };
        let eps = endpoints
            .into_iter()
            .enumerate()
            .map(|(i, ep)| {
                let label = ep.label.to_string();
                let tls = if ep.https { tls.clone() } else { None };
                let plain = tls.is_none();
                let pool = registry.pool(
                    name,
                    &label,
                    // A TLS pool is rebuilt: its CA file may have changed.
                    |p| plain && p.plain() && *p.settings() == *settings,
                    || {
                        Arc::new(EndpointPool::new(
                            ep,
                            settings.clone(),
                            tls,
                            gauge("idle"),
                            gauge("in_use"),
                        ))
                    },
                );
                let state = registry.state(name, &label, &resilience.breaker);
                let el = EndpointLabels {
                    upstream: name.to_string(),
                    endpoint: label.clone(),
                };
                Ep {
                    outcomes: OUTCOMES.map(|outcome| {
                        metrics
                            .requests
                            .get_or_create(&RequestLabels {
                                upstream: name.to_string(),
                                endpoint: label.clone(),
                                outcome,
                            })
                            .clone()
                    }),
                    ejections: metrics.ejections.get_or_create(&el).clone(),
                    healthy: metrics.healthy.get_or_create(&el).clone(),
                    breaker: [
                        BreakerState::Closed,
                        BreakerState::Open,
                        BreakerState::HalfOpen,
                    ]
                    .map(|s| {
                        metrics
                            .breaker
                            .get_or_create(&BreakerLabels {
                                upstream: name.to_string(),
                                endpoint: label.clone(),
                                state: s.as_str(),
                            })
                            .clone()
                    }),
                    pool,
                    state,
                    weight: resilience.weights.get(i).copied().unwrap_or(1).max(1),
                }
            })
            .collect::<Vec<_>>();
        let now = Instant::now();
        let retry = &resilience.retry;
        Self {
            name: name.into(),
            wrr: Mutex::new(vec![0; eps.len()]),
            budget: Mutex::new(RetryBudget::new(
                retry.budget_ratio,
                retry.budget_min_per_second,
                now,
            )),
            eps,
            next: AtomicUsize::new(0),
            inflight: AtomicUsize::new(0),
            duration: metrics
                .duration
                .get_or_create(&UpstreamLabel {
                    upstream: name.to_string(),
                })
                .clone(),
            retries: Reason::ALL.map(|r| {
                metrics
                    .retries
                    .get_or_create(&RetryLabels {
                        upstream: name.to_string(),
                        reason: r.as_str(),
                    })
                    .clone()
            }),
            budget_exhausted: metrics
                .retries
                .get_or_create(&RetryLabels {
                    upstream: name.to_string(),
                    reason: "budget_exhausted",
                })
                .clone(),
            overloaded: metrics
                .overloaded
                .get_or_create(&UpstreamLabel {
                    upstream: name.to_string(),
                })
                .clone(),
            settings: resilience,
            http2,
        }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Endpoint labels, in config order.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.eps.iter().map(|e| &*e.pool.ep.label)
    }

    /// The failover upstream's name, if any.
    pub fn backup(&self) -> Option<&str> {
        self.settings.backup.as_deref()
    }

    pub(crate) fn settings(&self) -> &ResilienceSettings {
        &self.settings
    }

    pub(crate) fn eps(&self) -> &[Ep] {
        &self.eps
    }

    /// Is endpoint `i` available at `now`? Also whether its breaker is what holds it back.
    fn available(&self, i: usize, now: Instant) -> (bool, bool) {
        let Some(ep) = self.eps.get(i) else {
            return (false, false);
        };
        if !ep.state.check_ok() {
            return (false, false);
        }
        let Some(st) = ep.state.lock() else {
            return (false, false);
        };
        if st.outlier.is_ejected(now) {
            return (false, false);
        }
        let open = !st.breaker.available(&self.settings.breaker, now);
        (!open, open)
    }

    /// Has at least one endpoint that could take a request now.
    pub fn has_available(&self) -> bool {
        let now = Instant::now();
        (0..self.eps.len()).any(|i| self.available(i, now).0)
    }

    /// A view of every endpoint, in config order.
    pub fn snapshot(&self) -> Vec<EndpointSnapshot> {
        let now = Instant::now();
        self.eps
            .iter()
            .enumerate()
            .map(|(i, ep)| {
                let (available, _) = self.available(i, now);
                let (ejected, left, breaker, ewma) = match ep.state.lock() {
                    Some(st) => (
                        st.outlier.is_ejected(now),
                        st.outlier
                            .until()
                            .map_or(0.0, |u| u.saturating_duration_since(now).as_secs_f64()),
                        st.breaker.state(&self.settings.breaker, now),
                        st.ewma.get(now),
                    ),
                    None => (false, 0.0, BreakerState::Closed, 0.0),
                };
                EndpointSnapshot {
                    endpoint: ep.pool.ep.label.clone(),
                    available,
                    check_ok: ep.state.check_ok(),
                    ejected,
                    ejected_for_secs: left,
                    breaker: if self.settings.breaker.enabled {
                        breaker
                    } else {
                        BreakerState::Closed
                    },
                    in_flight: ep.state.inflight.load(Ordering::Relaxed),
                    ewma_ms: ewma * 1000.0,
                }
            })
            .collect()
    }

    /// Set the per-endpoint gauges (healthy, breaker state) from the current state; called
    /// before each metrics scrape.
    pub fn refresh_gauges(&self) {
        for (ep, snap) in self.eps.iter().zip(self.snapshot()) {
            ep.healthy.set(i64::from(snap.available));
            for (g, s) in ep.breaker.iter().zip([
                BreakerState::Closed,
                BreakerState::Open,
                BreakerState::HalfOpen,
            ]) {
                g.set(i64::from(snap.breaker == s));
            }
        }
    }

    /// Slow-start factor (0.1..=1) of an endpoint that last returned to service at
    /// `returned_at` and whose last ejection ends at `ejected_until`: the window starts at the
    /// later of the two. An endpoint never taken out (new, including one a reload adds) has
    /// neither and gets its full weight.
    fn ramp(
        &self,
        returned_at: Option<Instant>,
        ejected_until: Option<Instant>,
        now: Instant,
    ) -> f64 {
        let w = self.settings.slow_start;
        let Some(since) = returned_at.max(ejected_until) else {
            return 1.0;
        };
        if w.is_zero() {
            return 1.0;
        }
        let t = now.saturating_duration_since(since).as_secs_f64() / w.as_secs_f64();
        t.clamp(0.1, 1.0)
    }

    /// Pick an endpoint not in `tried` (unless only tried ones are left) and take its
    /// breaker permission.
    fn pick(&self, tried: &[usize], key: Option<&[u8]>) -> Result<usize, BoxError> {
        let now = Instant::now();
        // (index, weight × ramp, load)
        let mut cands: Vec<(usize, f64, f64)> = Vec::with_capacity(self.eps.len());
        let mut any_open = false;
        let mut any_other = false;
        for (i, ep) in self.eps.iter().enumerate() {
            let (ok, open) = self.available(i, now);
            any_open |= open;
            any_other |= !ok && !open;
            if !ok {
                continue;
            }
            let Some(st) = ep.state.lock() else { continue };
            let ramp = self.ramp(st.returned_at, st.outlier.until(), now);
            let inflight = ep.state.inflight.load(Ordering::Relaxed) as f64;
            // P2C cost before weighting: latency × load for EWMA, in-flight + 1 otherwise.
            let load = match self.settings.strategy {
                Strategy::Ewma => st.ewma.get(now) * (inflight + 1.0),
                _ => inflight + 1.0,
            };
            cands.push((i, f64::from(ep.weight) * ramp, load));
        }
        if cands.iter().any(|c| !tried.contains(&c.0)) {
            cands.retain(|c| !tried.contains(&c.0));
        }
        while !cands.is_empty() {
            let i = self.choose(&cands, key).unwrap_or(cands[0].0);
            let granted = self.eps[i]
                .state
                .lock()
                .is_some_and(|mut st| st.breaker.acquire(&self.settings.breaker, now));
            if granted {
                return Ok(i);
            }
            any_open = true;
            cands.retain(|c| c.0 != i);
        }
        Err(unavailable(&self.name, any_open && !any_other))
    }

    fn choose(&self, cands: &[(usize, f64, f64)], key: Option<&[u8]>) -> Option<usize> {
        match self.settings.strategy {
            Strategy::RoundRobin => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                cands.get(n % cands.len()).map(|c| c.0)
            }
            Strategy::WeightedRoundRobin => {
                let w: Vec<(usize, i64)> = cands
                    .iter()
                    .map(|c| (c.0, (c.1 * 100.0).round().max(1.0) as i64))
                    .collect();
                let mut cur = self.wrr.lock().ok()?;
                balance::smooth_wrr(&mut cur, &w)
            }
            Strategy::LeastRequests | Strategy::Ewma => {
                let costs: Vec<(usize, f64)> = cands.iter().map(|c| (c.0, c.2 / c.1)).collect();
                balance::p2c(&costs, rand::random(), rand::random())
            }
            Strategy::Random => {
                let w: Vec<(usize, f64)> = cands.iter().map(|c| (c.0, c.1)).collect();
                balance::weighted_random(&w, rand::random())
            }
            Strategy::Hash => match key {
                Some(k) => {
                    // Configured weights only: slow start must not move keys around.
                    let w: Vec<(usize, &str, f64)> = cands
                        .iter()
                        .map(|c| {
                            (
                                c.0,
                                &*self.eps[c.0].pool.ep.label,
                                f64::from(self.eps[c.0].weight),
                            )
                        })
                        .collect();
                    balance::rendezvous(&w, k)
                }
                None => {
                    let w: Vec<(usize, f64)> = cands.iter().map(|c| (c.0, c.1)).collect();
                    balance::weighted_random(&w, rand::random())
                }
            },
        }
    }

    /// Send a request: pick an endpoint, try it, and retry on another when the outcome is
    /// retryable, the request replayable and the budget allows. The request's URI is
    /// rewritten to the form the protocol needs (origin-form for HTTP/1.1, absolute-form for
    /// HTTP/2). Returns the response and the endpoint label it came from.
    pub async fn send(
        &self,
        req: http::Request<Body>,
    ) -> Result<(http::Response<Body>, Arc<str>), BoxError> {
        if self.eps.is_empty() {
            return Err(Error::new(ErrorKind::NoHealthyEndpoints)
                .with_message(format!("upstream {} has no endpoints", self.name))
                .into());
        }
        let max = self.settings.max_concurrent;
        if max > 0 && self.inflight.load(Ordering::Relaxed) >= max {
            self.overloaded.inc();
            return Err(Error::new(ErrorKind::Overloaded)
                .with_message(format!(
                    "upstream {} is at its concurrency limit",
                    self.name
                ))
                .into());
        }
        let _held = Held::new(&self.inflight);
        match self.settings.request_timeout {
            Some(t) => tokio::time::timeout(t, self.send_tries(req))
                .await
                .map_err(|e| {
                    Error::new(ErrorKind::GatewayTimeout)
                        .with_message(format!(
                            "request to upstream {} took longer than {t:?}",
                            self.name
                        ))
                        .with_source(e)
                })?,
            None => self.send_tries(req).await,
        }
    }

    async fn send_tries(
        &self,
        req: http::Request<Body>,
    ) -> Result<(http::Response<Body>, Arc<str>), BoxError> {
        let rs = &self.settings.retry;
        let key = match self.settings.strategy {
            Strategy::Hash => self.settings.hash_on.key(&req),
            _ => None,
        };
        if let Ok(mut b) = self.budget.lock() {
            b.request(Instant::now());
        }
        let (parts, body) = req.into_parts();
        // Buffer a small body of known length so it can be sent again.
        let replay: Option<Bytes> = if retry::may_retry(rs, &parts.method, &parts.headers)
            && http_body::Body::size_hint(&body)
                .exact()
                .is_some_and(|n| n <= rs.max_replay_body)
        {
            Some(body.collect().await?.to_bytes())
        } else {
            let i = self.pick(&[], key.as_deref())?;
            return self
                .try_endpoint(i, http::Request::from_parts(parts, body))
                .await;
        };
        let mut tried: Vec<usize> = Vec::new();
        let mut attempt = 1;
        loop {
            let i = match self.pick(&tried, key.as_deref()) {
                Ok(i) => i,
                Err(e) => return Err(e),
            };
            tried.push(i);
            let body = replay.clone().map_or_else(body::empty, body::full);
            let result = self
                .try_endpoint(i, http::Request::from_parts(parts.clone(), body))
                .await;
            let reason = match &result {
                Ok((r, _)) => retry::status_reason(rs, r.status()),
                Err(e) => retry::error_reason(&rampart_core::rescue::classify(e.as_ref()).0),
            };
            let Some(reason) = reason else { return result };
            if attempt >= rs.max_attempts {
                return result;
            }
            let granted = self
                .budget
                .lock()
                .is_ok_and(|mut b| b.try_retry(Instant::now()));
            if !granted {
                self.budget_exhausted.inc();
                return result;
            }
            if let Some(c) = Reason::ALL
                .iter()
                .position(|r| *r == reason)
                .and_then(|p| self.retries.get(p))
            {
                c.inc();
            }
            tracing::debug!(upstream = %self.name, attempt, reason = reason.as_str(), "retrying on another endpoint");
            // Drop the failed response (its connection is not reused) before waiting.
            drop(result);
            let pause = retry::backoff(rs, attempt, rand::random());
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            attempt += 1;
        }
    }

    /// One try on endpoint `i`; records the outcome in its state and metrics.
    async fn try_endpoint(
        &self,
        i: usize,
        mut req: http::Request<Body>,
    ) -> Result<(http::Response<Body>, Arc<str>), BoxError> {
        let ep = &self.eps[i];
        let pool = &ep.pool;
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        if self.http2 {
            parts.scheme = Some(if pool.ep.https {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            });
            parts.authority = Some(pool.ep.authority.clone());
            *req.version_mut() = http::Version::HTTP_2;
        } else {
            *req.version_mut() = http::Version::HTTP_11;
        }
        parts.path_and_query = Some(pq);
        *req.uri_mut() = http::Uri::from_parts(parts)
            .map_err(|e| Error::new(ErrorKind::Internal).with_source(e))?;
        let start = Instant::now();
        let result = {
            let _inflight = Held::new(&ep.state.inflight);
            pool.send(req).await
        };
        let now = Instant::now();
        let kind = result
            .as_ref()
            .err()
            .map(|e| rampart_core::rescue::classify(e.as_ref()).0);
        // Index into OUTCOMES.
        let outcome = match (&result, &kind) {
            (Ok(r), _) if r.status().is_server_error() => 1,
            (Ok(_), _) => 0,
            (_, Some(ErrorKind::UpstreamConnect)) => 2,
            (_, Some(ErrorKind::GatewayTimeout)) => 3,
            _ => 4,
        };
        ep.outcomes[outcome].inc();
        // Failures of the endpoint (not our own body errors or pool overload).
        let failure = match (&result, &kind) {
            (Ok(r), _) => r.status().is_server_error(),
            (_, Some(k)) => retry::error_reason(k).is_some(),
            _ => false,
        };
        let counted = result.is_ok() || failure;
        if counted {
            self.record(
                i,
                failure,
                now,
                (result.is_ok() || outcome == 3).then(|| now - start),
            );
        }
        if result.is_ok() {
            self.duration.observe((now - start).as_secs_f64());
        }
        result.map(|r| (r, pool.ep.label.clone()))
    }

    /// Feed an outcome to the breaker, the ejection detector and the EWMA.
    fn record(&self, i: usize, failure: bool, now: Instant, latency: Option<Duration>) {
        let o = &self.settings.outlier;
        let may_eject = failure && o.consecutive > 0 && {
            let ejected = self
                .eps
                .iter()
                .filter(|e| e.state.lock().is_some_and(|st| st.outlier.is_ejected(now)))
                .count();
            ejected < o.max_ejected(self.eps.len())
        };
        let ep = &self.eps[i];
        let Some(mut st) = ep.state.lock() else {
            return;
        };
        if let Some(l) = latency {
            st.ewma.observe(l.as_secs_f64(), now);
        }
        if let Some(to) = st.breaker.record(&self.settings.breaker, now, !failure) {
            if to == BreakerState::Closed {
                // Closed again after being open: back in service, slow start from now.
                st.returned_at = Some(now);
            }
            tracing::warn!(upstream = %self.name, endpoint = %ep.pool.ep.label, state = to.as_str(), "circuit breaker changed state");
        }
        if let Some(d) = st.outlier.record(o, now, failure, may_eject) {
            ep.ejections.inc();
            st.returned_at = Some(now + d);
            tracing::warn!(upstream = %self.name, endpoint = %ep.pool.ep.label, seconds = d.as_secs_f64(), "endpoint ejected after consecutive failures");
        }
    }

    fn reap(&self) {
        for e in &self.eps {
            e.pool.reap();
            if self.settings.min_idle > 0 && e.state.check_ok() {
                let pool = e.pool.clone();
                let n = self.settings.min_idle;
                tokio::spawn(async move { pool.warm(n).await });
            }
        }
    }
}

/// All upstreams of a config, by name.
#[derive(Debug, Default, Clone)]
pub struct Upstreams {
    by_name: HashMap<Arc<str>, Arc<Upstream>>,
}

impl Upstreams {
    /// From a list of upstreams.
    pub fn new(list: Vec<Upstream>) -> Self {
        Self {
            by_name: list
                .into_iter()
                .map(|u| (u.name.clone(), Arc::new(u)))
                .collect(),
        }
    }

    /// Look one up.
    pub fn get(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.by_name.get(name)
    }

    /// All upstreams.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.by_name.values()
    }

    /// Start the background work of these upstreams: the idle-connection reaper (which also
    /// keeps `min_idle_per_endpoint` connections warm) and the active health checkers. All
    /// stop by themselves once these upstreams are dropped (e.g. replaced by a reload).
    pub fn spawn_reaper(&self, every: Duration) {
        for u in self.by_name.values() {
            crate::health::spawn(u, u.http2);
        }
        let weak: Vec<Weak<Upstream>> = self.by_name.values().map(Arc::downgrade).collect();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut alive = false;
                for w in &weak {
                    if let Some(u) = w.upgrade() {
                        alive = true;
                        u.reap();
                    }
                }
                if !alive {
                    return;
                }
            }
        });
    }

    /// The upstream a request goes to: the route's `read_upstream` for safe methods while it
    /// has an available endpoint, else the route's upstream; then, when that one has no
    /// available endpoint, its `backup` if the backup has one.
    pub fn select(
        &self,
        primary: &str,
        read: Option<&str>,
        method: &http::Method,
    ) -> Option<&Arc<Upstream>> {
        let safe = matches!(
            *method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        if safe
            && let Some(r) = read.and_then(|r| self.get(r))
            && r.has_available()
        {
            return Some(r);
        }
        let p = self.get(primary)?;
        if !p.has_available()
            && let Some(b) = p.backup().and_then(|b| self.get(b))
            && b.has_available()
        {
            return Some(b);
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(&*e.label, "127.0.0.1:3000");
        let e = Endpoint::parse("https://api.example.com").unwrap();
        assert_eq!(&*e.addr, "api.example.com:443");
        assert!(e.https);
        let e = Endpoint::parse("http://[::1]:8080").unwrap();
        assert_eq!(&*e.addr, "[::1]:8080");
        assert_eq!(e.host, "::1");
        assert!(Endpoint::parse("ftp://x").is_err());
    }
}
