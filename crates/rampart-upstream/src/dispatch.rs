//! The innermost service: send a routed request to its upstream.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderValue, header};
use ipnet::IpNet;
use rampart_core::{BoxError, ConnInfo, Error, ErrorKind, Request, Response, RoutePolicy};

use crate::{
    Upstreams,
    forward::{self, ForwardInfo},
};

/// A route's `read_upstream` (read/write split), kept in `RoutePolicy::extensions`.
#[derive(Debug, Clone)]
pub struct ReadUpstream(pub Arc<str>);

/// The endpoint that answered, put in response extensions for the access log.
#[derive(Debug, Clone)]
pub struct UpstreamEndpoint(pub Arc<str>);

/// Sends each request to the upstream named by its route. Tower service; clone is cheap.
#[derive(Clone)]
pub struct DispatchService {
    inner: Arc<Inner>,
}

struct Inner {
    upstreams: Upstreams,
    via: String,
    /// `Via` values for HTTP/1.1 and HTTP/2, built once instead of per request.
    via_11: Option<HeaderValue>,
    via_2: Option<HeaderValue>,
    trusted: Vec<IpNet>,
}

impl DispatchService {
    /// A dispatcher over these upstreams, with this `Via` pseudonym and trusted proxy CIDRs.
    pub fn new(upstreams: Upstreams, via: String, trusted: Vec<IpNet>) -> Self {
        Self {
            inner: Arc::new(Inner {
                upstreams,
                via_11: HeaderValue::from_str(&format!("1.1 {via}")).ok(),
                via_2: HeaderValue::from_str(&format!("2 {via}")).ok(),
                via,
                trusted,
            }),
        }
    }
}

impl tower::Service<Request> for DispatchService {
    type Response = Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { inner.dispatch(req).await })
    }
}

impl Inner {
    fn append_via(&self, headers: &mut http::HeaderMap, version: http::Version) {
        let pre = match version {
            http::Version::HTTP_11 => self.via_11.as_ref(),
            http::Version::HTTP_2 => self.via_2.as_ref(),
            _ => None,
        };
        match pre {
            Some(v) => {
                headers.append(header::VIA, v.clone());
            }
            None => forward::append_via(headers, version, &self.via),
        }
    }

    async fn dispatch(&self, mut req: Request) -> Result<Response, BoxError> {
        let Some(policy) = req.extensions().get::<Arc<RoutePolicy>>() else {
            return Err(Error::new(ErrorKind::NoRoute).into());
        };
        let read = policy.get::<ReadUpstream>().map(|r| &*r.0);
        let upstream = policy
            .upstream
            .as_deref()
            .and_then(|name| self.upstreams.select(name, read, req.method()))
            .cloned()
            .ok_or_else(|| {
                Error::new(ErrorKind::NoHealthyEndpoints).with_message("route has no upstream")
            })?;
        let version = req.version();
        let client_upgrade = if req.headers().contains_key(header::UPGRADE) {
            Some(hyper::upgrade::on(&mut req))
        } else {
            None
        };
        if let Some(conn) = req.extensions().get::<ConnInfo>().cloned() {
            let peer_trusted = self.trusted.iter().any(|n| n.contains(&conn.peer.ip()));
            let host = req.headers().get(header::HOST).cloned().or_else(|| {
                req.uri()
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            });
            forward::set_forwarding(
                req.headers_mut(),
                ForwardInfo {
                    peer: conn.peer,
                    peer_trusted,
                    tls: conn.tls,
                    host: host.as_ref(),
                },
            );
            // HTTP/2 clients send :authority instead of Host; HTTP/1.1 upstreams need Host.
            if !req.headers().contains_key(header::HOST)
                && let Some(h) = host
            {
                req.headers_mut().insert(header::HOST, h);
            }
        }
        self.append_via(req.headers_mut(), version);
        let (mut resp, endpoint) = upstream.send(req).await?;
        let upgraded = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        forward::strip_hop_by_hop(resp.headers_mut(), upgraded);
        let resp_version = resp.version();
        self.append_via(resp.headers_mut(), resp_version);
        if upgraded {
            match client_upgrade {
                Some(client) => {
                    let upstream_side = hyper::upgrade::on(&mut resp);
                    tokio::spawn(bridge(client, upstream_side));
                }
                None => {
                    return Err(Error::new(ErrorKind::UpstreamProtocol)
                        .with_message("upstream switched protocols without an upgrade request")
                        .into());
                }
            }
        }
        *resp.version_mut() = version;
        resp.extensions_mut().insert(UpstreamEndpoint(endpoint));
        Ok(resp)
    }
}

/// Copy bytes both ways between the upgraded client and upstream connections.
async fn bridge(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (c, u) = match tokio::try_join!(client, upstream) {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut c = hyper_util::rt::TokioIo::new(c);
    let mut u = hyper_util::rt::TokioIo::new(u);
    if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
        tracing::debug!(error = %e, "upgraded connection ended");
    }
}
