//! IP filter + bans (stack layer 8): the cheapest rejection first.
//!
//! For each request with a [`ClientIp`]: a banned address gets 403 (or the configured status)
//! before any other work; then the global and the route's [`IpAccessList`] apply. On the way
//! back the layer feeds the final status of every request (including the typed errors of the
//! inner layers: 401 from auth, 429 from rate limits, 403 from the WAF) to the [`BanList`]'s
//! automatic rules.
//!
//! Requests without a `ClientIp` extension (client-ip layer not installed) pass unfiltered.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::StatusCode;
use rampart_core::{BoxError, ClientIp, Error, ErrorKind, RoutePolicy, rescue};

use crate::{
    bans::{BanList, BanTrigger},
    events::{EventSink, SecurityEvent, SecurityEventKind},
    future::{After, GuardFuture},
    ipset::IpAccessList,
    reference,
};

/// A route's IP lists (a [`RoutePolicy`] extension), checked after the global ones.
#[derive(Debug, Clone, Default)]
pub struct IpFilterPolicy {
    /// The route's allow/deny lists.
    pub list: IpAccessList,
}

/// Tells whether an error from the inner stack is a WAF block (e.g.
/// `|e| rampart_core::error::is_caused_by::<rampart_waf::Blocked>(e)`), so ban rules with
/// trigger `waf_block` can count it.
pub type WafClassifier = Arc<dyn Fn(&(dyn std::error::Error + 'static)) -> bool + Send + Sync>;

/// Layer 8: IP lists and bans.
#[derive(Clone)]
pub struct IpFilterLayer {
    global: Arc<IpAccessList>,
    bans: Arc<BanList>,
    ban_status: StatusCode,
    events: EventSink,
    waf: Option<WafClassifier>,
}

impl IpFilterLayer {
    /// The layer with the global lists and the (long-lived) ban list. Banned clients get 403.
    pub fn new(global: Arc<IpAccessList>, bans: Arc<BanList>, events: EventSink) -> Self {
        Self {
            global,
            bans,
            ban_status: StatusCode::FORBIDDEN,
            events,
            waf: None,
        }
    }

    /// Answer banned clients with this status instead of 403 (the body stays the rescue's
    /// JSON error document for a 403, with its reference id).
    pub fn ban_status(mut self, status: StatusCode) -> Self {
        self.ban_status = status;
        self
    }

    /// Recognise WAF blocks among inner errors (for `waf_block` ban rules).
    pub fn waf_classifier(mut self, f: WafClassifier) -> Self {
        self.waf = Some(f);
        self
    }
}

impl<S> tower::Layer<S> for IpFilterLayer {
    type Service = IpFilterService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        IpFilterService {
            inner,
            cfg: self.clone(),
        }
    }
}

/// The service of [`IpFilterLayer`].
#[derive(Clone)]
pub struct IpFilterService<S> {
    inner: S,
    cfg: IpFilterLayer,
}

type Req = http::Request<rampart_core::Body>;
type Resp = http::Response<rampart_core::Body>;

/// The way out of [`IpFilterService`]: the final status (typed errors of the inner layers
/// included) goes to the ban rules.
pub struct RecordStatus {
    bans: Arc<BanList>,
    waf: Option<WafClassifier>,
    ip: std::net::IpAddr,
    route: Option<Arc<RoutePolicy>>,
}

impl After for RecordStatus {
    fn after(self, result: Result<Resp, BoxError>) -> Result<Resp, BoxError> {
        let route_name = self.route.as_deref().map(|r| r.name.as_ref()).unwrap_or("");
        let status = match &result {
            Ok(resp) => resp.status(),
            Err(e) => {
                if self.waf.as_ref().is_some_and(|f| f(e.as_ref())) {
                    self.bans.record(self.ip, route_name, BanTrigger::WafBlock);
                }
                rescue::classify(e.as_ref()).0.status()
            }
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.bans
                .record(self.ip, route_name, BanTrigger::RateLimited);
        }
        self.bans
            .record(self.ip, route_name, BanTrigger::Status(status.as_u16()));
        result
    }
}

impl<S, F> tower::Service<Req> for IpFilterService<S>
where
    S: tower::Service<Req, Response = Resp, Error = BoxError, Future = F> + Clone + Send + 'static,
    F: std::future::Future<Output = Result<Resp, BoxError>> + Send + 'static,
{
    type Response = Resp;
    type Error = BoxError;
    type Future = GuardFuture<F, Option<RecordStatus>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let Some(ClientIp(ip)) = req.extensions().get::<ClientIp>().copied() else {
            return GuardFuture::inner(self.inner.call(req), None);
        };

        if let Some(hit) = self.cfg.bans.check(ip) {
            let reference = reference(&req, "ban");
            self.cfg.events.emit(
                SecurityEvent::from_request(SecurityEventKind::BannedRequest, &req)
                    .rule(hit.reason.as_ref())
                    .reference(reference.clone())
                    .details(format!("{}s left", hit.remaining.as_secs())),
            );
            let kind = ErrorKind::Forbidden { reference };
            if self.cfg.ban_status == StatusCode::FORBIDDEN {
                let err = Error::new(kind).with_message(format!("ip {ip} banned: {}", hit.reason));
                return GuardFuture::error(err);
            }
            let mut resp = rescue::response_for(&kind, req.extensions().get());
            *resp.status_mut() = self.cfg.ban_status;
            return GuardFuture::ready(Ok(resp));
        }

        let route = req.extensions().get::<Arc<RoutePolicy>>();
        let route_list = route
            .and_then(|p| p.get::<IpFilterPolicy>())
            .map(|p| &p.list);
        let denied = self
            .cfg
            .global
            .check(ip)
            .map_err(|r| ("global", r))
            .and_then(|()| route_list.map_or(Ok(()), |l| l.check(ip).map_err(|r| ("route", r))));
        if let Err((scope, why)) = denied {
            let reference = reference(&req, "ip");
            self.cfg.events.emit(
                SecurityEvent::from_request(SecurityEventKind::IpDenied, &req)
                    .rule(format!("{scope}_{}", why.as_str()))
                    .reference(reference.clone()),
            );
            let err = Error::new(ErrorKind::Forbidden { reference }).with_message(format!(
                "ip {ip} refused by {scope} list ({})",
                why.as_str()
            ));
            return GuardFuture::error(err);
        }

        let after = self.cfg.bans.has_rules().then(|| RecordStatus {
            bans: self.cfg.bans.clone(),
            waf: self.cfg.waf.clone(),
            ip,
            route: route.cloned(),
        });
        GuardFuture::inner(self.inner.call(req), after)
    }
}
