//! The tower layer (stack layer 11): inspects each request under its route's [`WafPolicy`].
//!
//! * No `WafPolicy` in the route's `RoutePolicy` (or no `Arc<RoutePolicy>` at all): the
//!   request passes untouched.
//! * The body is read only when a rule that runs at the route's paranoia level looks at it and
//!   the request has one; at most `body_limit` bytes are buffered. Past the limit the request
//!   is refused with 413 (`BodyLimitAction::Reject`) or the prefix is inspected and the body
//!   is streamed on unchanged (prefix first, then the rest).
//! * A block is `Err(rampart_core::Error::new(ErrorKind::Forbidden { reference }))`; the
//!   reference is the request id (so it matches the audit-log entry). Detect mode passes.
//! * Every inspection with a match is sent to the [`WafEventSink`] (the audit log).

use std::{
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use rampart_core::{Body, BoxError, ClientIp, Error, ErrorKind, RequestId, RoutePolicy};
use tower::{Layer, Service};

use crate::{
    config::{BodyLimitAction, WafPolicy},
    engine::{Outcome, RuleMatch},
    metrics::WafMetrics,
    request::{Collection, WafRequest},
};

/// What the audit log gets for an inspected request with at least one match.
#[derive(Debug, Clone)]
pub struct WafEvent {
    /// Reference id (the request id): shown to the client on a block.
    pub reference: String,
    /// Route name.
    pub route: Arc<str>,
    /// Client IP, when known.
    pub client: Option<IpAddr>,
    /// Request method.
    pub method: String,
    /// Request path (no query: queries may carry secrets).
    pub path: String,
    /// Pass (matches under the threshold), block or detect.
    pub outcome: Outcome,
    /// Inbound anomaly score.
    pub score: u32,
    /// Matched rules with target and redacted, truncated excerpt.
    pub matches: Vec<RuleMatch>,
}

/// Time the rule engine spent on a request, put in the request extensions for the layers
/// below (`Server-Timing: waf;dur=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WafElapsed(pub std::time::Duration);

/// Receives WAF events (implemented for `tokio::sync::mpsc` senders; events are dropped, not
/// queued without bound, when a bounded channel is full).
pub trait WafEventSink: Send + Sync + 'static {
    /// Record one event. Must not block.
    fn record(&self, event: WafEvent);
}

impl WafEventSink for tokio::sync::mpsc::Sender<WafEvent> {
    fn record(&self, event: WafEvent) {
        if self.try_send(event).is_err() {
            tracing::debug!("waf: audit channel full or closed, event dropped");
        }
    }
}

impl WafEventSink for tokio::sync::mpsc::UnboundedSender<WafEvent> {
    fn record(&self, event: WafEvent) {
        let _ = self.send(event);
    }
}

/// The WAF layer.
#[derive(Clone, Default)]
pub struct WafLayer {
    metrics: Option<Arc<WafMetrics>>,
    sink: Option<Arc<dyn WafEventSink>>,
}

impl std::fmt::Debug for WafLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WafLayer")
            .field("metrics", &self.metrics.is_some())
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

impl WafLayer {
    /// A layer with no metrics and no event sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count requests, matches and inspection time.
    pub fn with_metrics(mut self, metrics: Arc<WafMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Send matches to this sink (the audit log).
    pub fn with_sink(mut self, sink: Arc<dyn WafEventSink>) -> Self {
        self.sink = Some(sink);
        self
    }
}

impl<S> Layer<S> for WafLayer {
    type Service = WafService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WafService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The WAF service (see the module docs).
#[derive(Clone)]
pub struct WafService<S> {
    inner: S,
    layer: WafLayer,
}

impl<S> std::fmt::Debug for WafService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WafService")
            .field("layer", &self.layer)
            .finish()
    }
}

type BoxFut = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

impl<S> Service<Request<Body>> for WafService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFut;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let route = req.extensions().get::<Arc<RoutePolicy>>().cloned();
        let Some(route) = route.filter(|r| r.get::<WafPolicy>().is_some()) else {
            return Box::pin(inner.call(req));
        };
        let layer = self.layer.clone();
        Box::pin(async move {
            let Some(policy) = route.get::<WafPolicy>() else {
                return box_fut(inner.call(req)).await;
            };
            let (req, verdict_err) = inspect(req, policy, &route, &layer).await?;
            if let Some(e) = verdict_err {
                return Err(e);
            }
            box_fut(inner.call(req)).await
        })
    }
}

fn box_fut<F>(f: F) -> BoxFut
where
    F: Future<Output = Result<Response<Body>, BoxError>> + Send + 'static,
{
    Box::pin(f)
}

/// Does the request carry a body?
fn has_body(req: &Request<Body>) -> bool {
    if req.body().is_end_stream() {
        return false;
    }
    let h = req.body().size_hint();
    h.upper() != Some(0)
}

async fn inspect(
    req: Request<Body>,
    policy: &WafPolicy,
    route: &RoutePolicy,
    layer: &WafLayer,
) -> Result<(Request<Body>, Option<BoxError>), BoxError> {
    let client = req.extensions().get::<ClientIp>().map(|c| c.0);
    // Only needed when something matched: built lazily (a clean request allocates nothing for
    // it, and does not even clone the request id).
    let reference = |parts: &http::request::Parts| {
        parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate)
            .to_string()
    };
    let engine = policy.engine.clone();
    let (parts, body) = req.into_parts();
    let wants_body = engine.needs_body(policy.paranoia) && has_body_parts(&parts, &body);
    let (body, prefix, truncated) = if wants_body {
        let limit = policy.body_limit;
        let (prefix, rest) = read_prefix(body, limit).await?;
        match rest {
            None => (
                rampart_core::body::full(prefix.clone()),
                Some(prefix),
                false,
            ),
            Some(rest) => {
                if policy.body_limit_action == BodyLimitAction::Reject {
                    if let Some(m) = &layer.metrics {
                        m.count(&route.name, "block");
                    }
                    return Ok((
                        Request::from_parts(parts, rampart_core::body::empty()),
                        Some(Box::new(
                            Error::new(ErrorKind::PayloadTooLarge)
                                .with_message(format!("waf: body larger than {limit} bytes")),
                        )),
                    ));
                }
                let inspect_part = prefix.slice(..limit.min(prefix.len()));
                let rebuilt = PrefixedBody {
                    prefix: Some(prefix),
                    rest,
                };
                (rampart_core::body::boxed(rebuilt), Some(inspect_part), true)
            }
        }
    } else {
        (body, None, false)
    };
    let mut wreq = WafRequest::from_parts(&parts, prefix.as_deref(), &policy.limits);
    if truncated {
        wreq.body_truncated = true;
        wreq.push(Collection::InboundDataError, "", b"1");
    }
    let verdict = engine.inspect(&wreq, policy, client);
    if let Some(m) = &layer.metrics {
        m.observe(&route.name, &verdict);
    }
    let reference = if !verdict.matches.is_empty() || verdict.outcome == Outcome::Block {
        reference(&parts)
    } else {
        String::new()
    };
    if !verdict.matches.is_empty() {
        if let Some(sink) = &layer.sink {
            sink.record(WafEvent {
                reference: reference.clone(),
                route: route.name.clone(),
                client,
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                outcome: verdict.outcome,
                score: verdict.score,
                matches: verdict.matches.clone(),
            });
        }
    }
    let mut req = Request::from_parts(parts, body);
    req.extensions_mut().insert(WafElapsed(verdict.elapsed));
    if verdict.outcome == Outcome::Block {
        let ids: Vec<String> = verdict.rule_ids().iter().map(u32::to_string).collect();
        let err = Error::new(ErrorKind::Forbidden { reference }).with_message(format!(
            "waf: score {} rules {}",
            verdict.score,
            ids.join(",")
        ));
        return Ok((req, Some(Box::new(err))));
    }
    Ok((req, None))
}

fn has_body_parts(parts: &http::request::Parts, body: &Body) -> bool {
    let _ = parts;
    !body.is_end_stream() && body.size_hint().upper() != Some(0)
}

/// Read up to `limit + 1` bytes. Returns the bytes and, when the body is longer, the rest.
async fn read_prefix(mut body: Body, limit: usize) -> Result<(Bytes, Option<Body>), BoxError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Ok((buf.freeze(), Some(body)));
            }
        }
    }
    Ok((buf.freeze(), None))
}

/// The already-read prefix, then the rest of the original body.
struct PrefixedBody {
    prefix: Option<Bytes>,
    rest: Body,
}

impl http_body::Body for PrefixedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut h = self.rest.size_hint();
        let p = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        h.set_lower(h.lower() + p);
        if let Some(u) = h.upper() {
            h.set_upper(u + p);
        }
        h
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<PrefixedBody>();
    let _ = has_body;
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, StreamBody};
    use rampart_core::RouteId;

    use super::*;
    use crate::{config::Mode, engine::Engine};

    fn route(policy: Option<WafPolicy>) -> Arc<RoutePolicy> {
        let mut r = RoutePolicy::new(RouteId(0), "api", None);
        if let Some(p) = policy {
            r.extensions.insert(p);
        }
        Arc::new(r)
    }

    fn policy() -> WafPolicy {
        WafPolicy::new(Arc::new(Engine::builtin().unwrap()))
    }

    /// An echo service: returns the request body as the response body.
    fn echo()
    -> impl Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = impl Send>
    + Clone
    + Send
    + 'static {
        tower::service_fn(|req: Request<Body>| async move {
            let bytes = req.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>(Response::new(rampart_core::body::full(bytes)))
        })
    }

    fn req(uri: &str, body: &'static str, route: Arc<RoutePolicy>) -> Request<Body> {
        let mut r = Request::builder()
            .method(if body.is_empty() { "GET" } else { "POST" })
            .uri(uri)
            .header("host", "example.com")
            .header("user-agent", "Mozilla/5.0")
            .header("accept", "*/*")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(rampart_core::body::full(body))
            .unwrap();
        r.extensions_mut().insert(route);
        r.extensions_mut().insert(RequestId::generate());
        r.extensions_mut()
            .insert(ClientIp("192.0.2.1".parse().unwrap()));
        r
    }

    #[tokio::test]
    async fn blocks_attacks_with_reference_and_passes_clean() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let mut reg = prometheus_client::registry::Registry::default();
        let metrics = WafMetrics::register(&mut reg);
        let layer = WafLayer::new()
            .with_sink(Arc::new(tx))
            .with_metrics(metrics);
        let mut svc = layer.layer(echo());
        let r = route(Some(policy()));
        let ok = svc
            .call(req("/search?q=shoes", "", r.clone()))
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let attack = req("/search?q=1'%20or%20'1'='1", "", r.clone());
        let id = attack.extensions().get::<RequestId>().unwrap().to_string();
        let err = svc.call(attack).await.unwrap_err();
        let e = rampart_core::error::find_cause::<Error>(err.as_ref()).unwrap();
        assert_eq!(
            e.kind(),
            &ErrorKind::Forbidden {
                reference: id.clone()
            }
        );
        let ev = rx.try_recv().unwrap();
        assert_eq!(ev.reference, id);
        assert_eq!(ev.outcome, Outcome::Block);
        assert!(!ev.matches.is_empty());
        // Body attacks are seen, clean bodies are passed on intact.
        let err = svc
            .call(req(
                "/f",
                "comment=%3Cscript%3Ealert(1)%3C/script%3E",
                r.clone(),
            ))
            .await;
        assert!(err.is_err());
        let ok = svc
            .call(req("/f", "name=alice&city=paris", r.clone()))
            .await
            .unwrap();
        let body = ok.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"name=alice&city=paris");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains(r#"rampart_waf_requests_total{route="api",verdict="block"} 2"#),
            "{out}"
        );
    }

    #[tokio::test]
    async fn no_policy_passes_and_detect_mode_passes() {
        let mut svc = WafLayer::new().layer(echo());
        let ok = svc.call(req("/?q=1'%20or%20'1'='1", "", route(None))).await;
        assert!(ok.is_ok());
        let detect = route(Some(policy().with_mode(Mode::Detect)));
        let ok = svc.call(req("/?q=1'%20or%20'1'='1", "", detect)).await;
        assert!(ok.is_ok());
    }

    #[tokio::test]
    async fn body_limit_prefix_and_reject() {
        let mut p = policy();
        p.body_limit = 16;
        let mut svc = WafLayer::new().layer(echo());
        // Attack past the limit is not seen; the whole body still reaches the service.
        let body = "a=aaaaaaaaaaaaaaaaaaaaaaaaaaaa&b=%3Cscript%3E";
        let ok = svc
            .call(req("/", body, route(Some(p.clone()))))
            .await
            .unwrap();
        let got = ok.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], body.as_bytes());
        p.body_limit_action = BodyLimitAction::Reject;
        let err = svc.call(req("/", body, route(Some(p)))).await.unwrap_err();
        let e = rampart_core::error::find_cause::<Error>(err.as_ref()).unwrap();
        assert_eq!(e.kind(), &ErrorKind::PayloadTooLarge);
    }

    #[tokio::test]
    async fn streamed_body_prefix_then_rest() {
        let mut p = policy();
        p.body_limit = 8;
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"a=123456"))),
            Ok(Frame::data(Bytes::from_static(b"789&b=ok"))),
            Ok(Frame::data(Bytes::from_static(b"&c=end"))),
        ];
        let body = rampart_core::body::boxed(StreamBody::new(futures_stream(chunks)));
        let mut r = req("/", "", route(Some(p)));
        *r.method_mut() = http::Method::POST;
        *r.body_mut() = body;
        let mut svc = WafLayer::new().layer(echo());
        let ok = svc.call(r).await.unwrap();
        let got = ok.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"a=123456789&b=ok&c=end");
    }

    fn futures_stream(
        items: Vec<Result<Frame<Bytes>, Infallible>>,
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> {
        futures_util::stream::iter(items)
    }
}
