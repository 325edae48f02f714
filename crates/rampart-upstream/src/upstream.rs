//! Named upstream pools and endpoint selection.

use std::{
    collections::HashMap,
    sync::{
        Arc, Weak,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rampart_core::{Body, BoxError, Error, ErrorKind};

use prometheus_client::metrics::{counter::Counter, histogram::Histogram};

use crate::{
    metrics::{PoolLabels, RequestLabels, UpstreamLabel, UpstreamMetrics},
    pool::{EndpointPool, PoolSettings, TlsSettings},
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

/// A named upstream: its endpoints and their pools.
pub struct Upstream {
    name: Arc<str>,
    pools: Vec<Arc<EndpointPool>>,
    next: AtomicUsize,
    /// Per endpoint (same order as `pools`), one counter per outcome in `OUTCOMES` order:
    /// resolved once here so the request path does no label lookup or allocation.
    outcomes: Vec<[Counter; 5]>,
    duration: Histogram,
    http2: bool,
    failures: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field(
                "endpoints",
                &self.pools.iter().map(|p| &p.ep.label).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Upstream {
    /// Build an upstream from parsed endpoints and settings.
    pub fn new(
        name: &str,
        endpoints: Vec<Endpoint>,
        settings: PoolSettings,
        tls: Option<TlsSettings>,
        metrics: &UpstreamMetrics,
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
        let pools = endpoints
            .into_iter()
            .map(|ep| {
                let tls = if ep.https { tls.clone() } else { None };
                Arc::new(EndpointPool::new(
                    ep,
                    settings.clone(),
                    tls,
                    gauge("idle"),
                    gauge("in_use"),
                ))
            })
            .collect::<Vec<Arc<EndpointPool>>>();
        let outcomes = pools
            .iter()
            .map(|p| {
                OUTCOMES.map(|outcome| {
                    metrics
                        .requests
                        .get_or_create(&RequestLabels {
                            upstream: name.to_string(),
                            endpoint: p.ep.label.to_string(),
                            outcome,
                        })
                        .clone()
                })
            })
            .collect();
        Self {
            name: name.into(),
            pools,
            next: AtomicUsize::new(0),
            outcomes,
            duration: metrics
                .duration
                .get_or_create(&UpstreamLabel {
                    upstream: name.to_string(),
                })
                .clone(),
            http2,
            failures: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Requests in a row that failed to connect or timed out (0 after any answer). A passive
    /// health signal for `/readyz` until active health checks exist.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Endpoint labels, in config order.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.pools.iter().map(|p| &*p.ep.label)
    }

    /// Send a request to the next endpoint (round robin). The request's URI is rewritten to
    /// the form the protocol needs (origin-form for HTTP/1.1, absolute-form for HTTP/2).
    /// Returns the response and the endpoint label it came from.
    pub async fn send(
        &self,
        mut req: http::Request<Body>,
    ) -> Result<(http::Response<Body>, Arc<str>), BoxError> {
        if self.pools.is_empty() {
            return Err(Error::new(ErrorKind::NoHealthyEndpoints)
                .with_message(format!("upstream {} has no endpoints", self.name))
                .into());
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pools.len();
        let pool = &self.pools[i];
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
        let start = tokio::time::Instant::now();
        let result = pool.send(req).await;
        // Index into OUTCOMES.
        let outcome = match &result {
            Ok(r) if r.status().is_server_error() => 1,
            Ok(_) => 0,
            Err(e) => match rampart_core::rescue::classify(e.as_ref()).0 {
                ErrorKind::UpstreamConnect => 2,
                ErrorKind::GatewayTimeout => 3,
                _ => 4,
            },
        };
        if matches!(outcome, 2 | 3) {
            self.failures.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failures.store(0, Ordering::Relaxed);
        }
        self.outcomes[i][outcome].inc();
        if result.is_ok() {
            self.duration.observe(start.elapsed().as_secs_f64());
        }
        result.map(|r| (r, pool.ep.label.clone()))
    }

    fn reap(&self) {
        for p in &self.pools {
            p.reap();
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

    /// Start the idle-connection reaper; it stops by itself once these upstreams are dropped
    /// (e.g. replaced by a reload).
    pub fn spawn_reaper(&self, every: Duration) {
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
