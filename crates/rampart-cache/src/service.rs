//! [`CacheLayer`] / [`CacheService`]: the cache on the request path (layer 14).
//!
//! Per request, with the route's [`CachePolicy`] (no policy or `enabled = false`: the
//! request passes through untouched):
//!
//! ```text
//! PURGE (allowed CIDR)  -> purge the URL, answer {"purged": n}
//! unsafe method         -> forward; on 2xx/3xx invalidate target, Location, Content-Location (§4.4)
//! OPTIONS/TRACE/...     -> forward (fwd=method)
//! GET/HEAD  no-store    -> forward, store nothing (fwd=request, bypass)
//!           hit-for-pass-> forward uncoalesced (fwd=bypass, pass); store if now cacheable
//!           fresh       -> hit (Age, Cache-Status; client conditionals answered here)
//!           stale       -> max-stale / stale-while-revalidate: serve stale (+ one background refresh)
//!                          else revalidate (If-None-Match / If-Modified-Since), coalesced:
//!                          304 -> update headers, serve (revalidated); 5xx / error -> stale-if-error
//!           miss        -> coalesced fetch; the leader tees the body into the cache
//! ```

use std::{
    sync::{Arc, LazyLock},
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header, request::Parts};
use http_body_util::BodyExt;
use rampart_core::{
    Body, BoxError, ClientIp, ConnInfo, Error, ErrorKind, RoutePolicy, body as core_body,
    stored::{RepresentationsAbove, StoredBody},
};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

use crate::{
    body::{Collect, EntryTemplate, TeeBody},
    cache::{Cache, FlightGuard, Join},
    config::{CachePolicy, TagSeparator},
    directives::{MaxStale, RequestDirectives, ResponseDirectives, select_response},
    entry::{Entry, EntryMeta},
    freshness::{self, LifetimeConfig},
    headers::{CACHE_STATUS, CacheStatus, Fwd, strip_for_storage, strip_targeted, update_stored},
    key::{Target, primary_key, secondary_key, vary_names},
    metrics::CacheOutcome,
    storable::{NotStorable, StoreInput, has_validator, storable},
    store::PurgeSelector,
    variants::StoredHandle,
};

/// Name used for this cache in `Cache-Status`.
pub const CACHE_NAME: &str = "rampart";

/// Tower layer installing the cache.
#[derive(Debug, Clone)]
pub struct CacheLayer {
    cache: Cache,
}

impl CacheLayer {
    /// A layer over a (long-lived) cache handle.
    pub fn new(cache: Cache) -> Self {
        Self { cache }
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> CacheService<S> {
        CacheService {
            inner,
            cache: self.cache.clone(),
        }
    }
}

/// The cache service (see the module docs for the flow).
#[derive(Debug, Clone)]
pub struct CacheService<S> {
    inner: S,
    cache: Cache,
}

impl<S> Service<Request<Body>> for CacheService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let route = req
            .extensions()
            .get::<Arc<RoutePolicy>>()
            .filter(|r| r.get::<CachePolicy>().is_some_and(|p| p.enabled))
            .cloned();
        let Some(route) = route else {
            return Box::pin(inner.call(req));
        };
        let handler = Handler {
            cache: self.cache.clone(),
            ready: Some(inner),
            spare: self.inner.clone(),
            route,
        };
        Box::pin(handler.handle(req))
    }
}

static DEFAULT_POLICY: LazyLock<CachePolicy> = LazyLock::new(CachePolicy::default);

/// A finished answer before the outbound decoration (Cache-Status, outcome, metrics).
struct Done {
    resp: Response<Body>,
    outcome: CacheOutcome,
    status: CacheStatus,
}

/// What to do with a stored variant.
enum Use {
    Fresh,
    Stale { refresh: bool, detail: &'static str },
    Validate(Fwd),
}

/// Facts about the request kept across the flow.
struct Ctx {
    parts: Parts,
    req_cc: RequestDirectives,
    target: Target,
    key: Arc<str>,
    url: Arc<str>,
    collapsed: bool,
}

struct Handler<S> {
    cache: Cache,
    ready: Option<S>,
    spare: S,
    route: Arc<RoutePolicy>,
}

impl<S> Handler<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    fn policy(&self) -> &CachePolicy {
        self.route.get::<CachePolicy>().unwrap_or(&DEFAULT_POLICY)
    }

    /// Call the service below. Boxed here, where the future's type is concrete, which also
    /// keeps the `Send` proof of the handler's future simple.
    fn upstream(
        &mut self,
        req: Request<Body>,
    ) -> BoxFuture<'static, Result<Response<Body>, BoxError>> {
        match self.ready.take() {
            Some(mut svc) => Box::pin(svc.call(req)),
            None => Box::pin(self.spare.clone().oneshot(req)),
        }
    }

    async fn handle(mut self, req: Request<Body>) -> Result<Response<Body>, BoxError> {
        let method = req.method().clone();
        let result = if method.as_str() == "PURGE" && !self.cache.settings().purge_allow.is_empty()
        {
            return Box::pin(self.purge_method(req)).await;
        } else if req.headers().contains_key(header::UPGRADE) {
            // Protocol upgrades (WebSocket) are never cached.
            let resp = self.upstream(req).await?;
            let status = CacheStatus {
                fwd: Some(Fwd::Bypass),
                fwd_status: Some(resp.status().as_u16()),
                detail: Some("upgrade"),
                ..CacheStatus::default()
            };
            Ok(Done {
                resp,
                outcome: CacheOutcome::Bypass,
                status,
            })
        } else if method == Method::GET || method == Method::HEAD {
            self.cacheable(req).await
        } else if matches!(method, Method::OPTIONS | Method::TRACE | Method::CONNECT) {
            let resp = self.upstream(req).await?;
            let status = CacheStatus {
                fwd: Some(Fwd::Method),
                fwd_status: Some(resp.status().as_u16()),
                ..CacheStatus::default()
            };
            Ok(Done {
                resp,
                outcome: CacheOutcome::Pass,
                status,
            })
        } else {
            Box::pin(self.unsafe_method(req)).await
        };
        match result {
            Ok(done) => Ok(self.decorate(done)),
            Err(e) => Err(e),
        }
    }

    fn decorate(&self, done: Done) -> Response<Body> {
        let Done {
            mut resp,
            outcome,
            status,
        } = done;
        let settings = self.cache.settings();
        let h = resp.headers_mut();
        if !settings.forward_targeted {
            strip_targeted(h, settings.targeted_field.as_ref());
        }
        h.append(CACHE_STATUS, status.to_header(CACHE_NAME));
        resp.extensions_mut().insert(outcome);
        self.cache.metrics().record(&self.route.name, outcome);
        resp
    }

    async fn purge_method(self, req: Request<Body>) -> Result<Response<Body>, BoxError> {
        let ip = req
            .extensions()
            .get::<ClientIp>()
            .map(|c| c.0)
            .or_else(|| req.extensions().get::<ConnInfo>().map(|c| c.peer.ip()));
        let allowed = ip.is_some_and(|ip| {
            self.cache
                .settings()
                .purge_allow
                .iter()
                .any(|n| n.contains(&ip))
        });
        if !allowed {
            return Err(Box::new(
                Error::new(ErrorKind::Forbidden {
                    reference: "cache-purge".into(),
                })
                .with_message("cache purge: client address not in cache.purge_allow"),
            ));
        }
        let tls = req.extensions().get::<ConnInfo>().is_some_and(|c| c.tls);
        let target = Target::from_request(req.uri(), req.headers(), tls);
        let key = primary_key(&target, req.headers(), &self.policy().key);
        let store = self.cache.store().clone();
        let mut n = store.remove(&key).await;
        let sel = PurgeSelector::Urls(vec![target.canonical_url()]);
        n += store.purge(&sel, None, Instant::now()).await;
        self.cache.metrics().purged("method", n);
        let mut resp = Response::new(core_body::full(format!("{{\"purged\":{n}}}\n")));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(resp)
    }

    /// §4.4: a non-error response to an unsafe request invalidates the target URI and the
    /// same-origin `Location` / `Content-Location` URIs.
    async fn unsafe_method(&mut self, req: Request<Body>) -> Result<Done, BoxError> {
        let tls = req.extensions().get::<ConnInfo>().is_some_and(|c| c.tls);
        let target = Target::from_request(req.uri(), req.headers(), tls);
        let key = primary_key(&target, req.headers(), &self.policy().key);
        let resp = self.upstream(req).await?;
        let st = resp.status();
        if st.is_success() || st.is_redirection() {
            let store = self.cache.store().clone();
            let mut n = store.remove(&key).await;
            let mut urls = vec![target.canonical_url()];
            for name in [header::LOCATION, header::CONTENT_LOCATION] {
                let Some(v) = resp.headers().get(&name).and_then(|v| v.to_str().ok()) else {
                    continue;
                };
                if let Some(t) = target.resolve(v).filter(|t| target.same_origin(t)) {
                    urls.push(t.canonical_url());
                }
            }
            n += store
                .purge(&PurgeSelector::Urls(urls), None, Instant::now())
                .await;
            self.cache.metrics().purged("invalidation", n);
        }
        let status = CacheStatus {
            fwd: Some(Fwd::Method),
            fwd_status: Some(st.as_u16()),
            ..CacheStatus::default()
        };
        Ok(Done {
            resp,
            outcome: CacheOutcome::Pass,
            status,
        })
    }

    async fn cacheable(&mut self, req: Request<Body>) -> Result<Done, BoxError> {
        let (parts, body) = req.into_parts();
        let mut req_cc = RequestDirectives::parse(&parts.headers);
        if self.policy().overrides.ignore_request_no_cache {
            req_cc.no_cache = false;
            if req_cc.max_age == Some(0) {
                req_cc.max_age = None;
            }
        }
        let tls = parts.extensions.get::<ConnInfo>().is_some_and(|c| c.tls);
        let target = Target::from_request(&parts.uri, &parts.headers, tls);
        let url: Arc<str> = Arc::from(target.canonical_url());
        let key_s = primary_key(&target, &parts.headers, &self.policy().key);
        let key = if *key_s == *url {
            url.clone()
        } else {
            Arc::from(key_s)
        };
        let mut ctx = Ctx {
            parts,
            req_cc,
            target,
            key,
            url,
            collapsed: false,
        };
        let is_head = ctx.parts.method == Method::HEAD;

        if ctx.req_cc.no_store {
            let resp = self.upstream(Request::from_parts(ctx.parts, body)).await?;
            let status = CacheStatus {
                fwd: Some(Fwd::Request),
                fwd_status: Some(resp.status().as_u16()),
                detail: Some("no-store"),
                ..CacheStatus::default()
            };
            return Ok(Done {
                resp,
                outcome: CacheOutcome::Bypass,
                status,
            });
        }

        let mut may_wait = true;
        loop {
            let now = Instant::now();
            let store = self.cache.store().clone();
            let rec = store.get(&ctx.key, now).await;
            // The coalescing key of a vary-miss (the key of a stored variant is derived only
            // when it is needed, keeping the hit path free of it).
            let (fwd, miss_flight, entry) = match &rec {
                Some(r) if r.is_pass(now) => {
                    let up = Request::from_parts(ctx.parts.clone(), body);
                    return Box::pin(self.pass(&ctx, up)).await;
                }
                Some(r) => {
                    let headers = &ctx.parts.headers;
                    match r.select(now, |names| secondary_key(names, headers)) {
                        Some(e) => (Fwd::Stale, None, Some(e.clone())),
                        None => {
                            let fk = match r.variants.first() {
                                Some(v) => flight_key(&ctx.key, &secondary_key(&v.vary, headers)),
                                None => ctx.key.clone(),
                            };
                            (Fwd::VaryMiss, Some(fk), None)
                        }
                    }
                }
                None => (Fwd::UriMiss, None, None),
            };
            drop(rec);
            let flight_key = || match (&entry, &miss_flight) {
                (Some(e), _) => flight_key(&ctx.key, &e.secondary),
                (None, Some(fk)) => fk.clone(),
                (None, None) => ctx.key.clone(),
            };

            let validate_fwd = match &entry {
                Some(entry) => match decide(entry, now, &ctx.req_cc) {
                    Use::Fresh => {
                        let status = CacheStatus {
                            hit: true,
                            ttl: Some(entry.meta.ttl_secs(now)),
                            collapsed: ctx.collapsed,
                            ..CacheStatus::default()
                        };
                        return Ok(Done {
                            resp: self.respond(&ctx, entry, now),
                            outcome: CacheOutcome::Hit,
                            status,
                        });
                    }
                    Use::Stale { refresh, detail } => {
                        if refresh {
                            self.spawn_refresh(&ctx, entry.clone(), flight_key());
                        }
                        let status = CacheStatus {
                            hit: true,
                            ttl: Some(entry.meta.ttl_secs(now)),
                            collapsed: ctx.collapsed,
                            detail: Some(detail),
                            ..CacheStatus::default()
                        };
                        return Ok(Done {
                            resp: self.respond(&ctx, entry, now),
                            outcome: CacheOutcome::Stale,
                            status,
                        });
                    }
                    Use::Validate(f) => Some(f),
                },
                None => None,
            };

            if ctx.req_cc.only_if_cached {
                return Err(Box::new(Error::new(ErrorKind::NotCached).with_message(
                    "cache: only-if-cached and no usable stored response",
                )));
            }

            // HEAD misses and Range misses go through without storing or coalescing.
            let ranged = ctx.parts.headers.contains_key(header::RANGE);
            if entry.is_none() && (is_head || ranged) {
                let resp = self.upstream(Request::from_parts(ctx.parts, body)).await?;
                let status = CacheStatus {
                    fwd: Some(if ranged { Fwd::Request } else { fwd }),
                    fwd_status: Some(resp.status().as_u16()),
                    detail: ranged.then_some("range"),
                    ..CacheStatus::default()
                };
                let outcome = if ranged {
                    CacheOutcome::Pass
                } else {
                    CacheOutcome::Miss
                };
                return Ok(Done {
                    resp,
                    outcome,
                    status,
                });
            }

            let guard = if may_wait {
                match self.cache.join(&flight_key()) {
                    Join::Leader(g) => Some(g),
                    Join::Waiter(rx) => {
                        Box::pin(self.cache.wait(rx)).await;
                        may_wait = false;
                        ctx.collapsed = true;
                        continue;
                    }
                    Join::Full => None,
                }
            } else {
                None
            };

            return match (entry, validate_fwd) {
                (Some(entry), Some(vf)) => {
                    Box::pin(self.revalidate(ctx, body, entry, vf, guard)).await
                }
                _ => {
                    let mut up = Request::from_parts(ctx.parts.clone(), body);
                    strip_conditionals(up.headers_mut());
                    let t0 = (Instant::now(), self.cache.inner.clock.system_now());
                    let resp = self.upstream(up).await?;
                    let (resp, status) =
                        Box::pin(self.store_or_pass(&ctx, resp, fwd, guard, t0)).await;
                    Ok(Done {
                        resp,
                        outcome: CacheOutcome::Miss,
                        status,
                    })
                }
            };
        }
    }

    /// Hit-for-pass: straight upstream, uncoalesced; a response that is cacheable again
    /// is stored (which clears the marker).
    async fn pass(&mut self, ctx: &Ctx, up: Request<Body>) -> Result<Done, BoxError> {
        let t0 = (Instant::now(), self.cache.inner.clock.system_now());
        let resp = self.upstream(up).await?;
        let (resp, mut status) = self.store_or_pass(ctx, resp, Fwd::Bypass, None, t0).await;
        if !status.stored {
            status.detail = Some("hit-for-pass");
        }
        Ok(Done {
            resp,
            outcome: CacheOutcome::Pass,
            status,
        })
    }

    /// Conditional request for a stale (or must-validate) entry.
    async fn revalidate(
        &mut self,
        ctx: Ctx,
        body: Body,
        entry: Arc<Entry>,
        fwd: Fwd,
        guard: Option<FlightGuard>,
    ) -> Result<Done, BoxError> {
        let mut up = Request::from_parts(ctx.parts.clone(), body);
        strip_conditionals(up.headers_mut());
        if let Some(etag) = entry.header(&header::ETAG) {
            up.headers_mut().insert(header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = entry.header(&header::LAST_MODIFIED) {
            up.headers_mut().insert(header::IF_MODIFIED_SINCE, lm);
        }
        let t0 = (Instant::now(), self.cache.inner.clock.system_now());
        let result = self.upstream(up).await;
        let now = Instant::now();
        let resp = match result {
            Err(e) => {
                if is_upstream_failure(&e) && stale_if_error_ok(&entry, &ctx.req_cc, now) {
                    return Ok(self.serve_stale_on_error(&ctx, &entry, fwd, None, now));
                }
                return Err(e);
            }
            Ok(r) => r,
        };
        let mut resp = resp;
        ensure_date(resp.headers_mut(), &self.cache.inner.clock);
        let st = resp.status();
        if matches!(st.as_u16(), 500 | 502 | 503 | 504)
            && stale_if_error_ok(&entry, &ctx.req_cc, now)
        {
            return Ok(self.serve_stale_on_error(&ctx, &entry, fwd, Some(st.as_u16()), now));
        }
        let is_head = ctx.parts.method == Method::HEAD;
        if st == StatusCode::NOT_MODIFIED || (is_head && st == StatusCode::OK) {
            let updated =
                if validators_match(&entry, resp.headers(), st == StatusCode::NOT_MODIFIED) {
                    self.update_entry(&ctx, &entry, resp.headers(), t0)
                } else {
                    None
                };
            if let Some(updated) = updated {
                let updated = Arc::new(updated);
                let put = self
                    .cache
                    .store()
                    .put_variant(ctx.key.clone(), updated.clone());
                put.await;
                drop(guard);
                let status = CacheStatus {
                    fwd: Some(fwd),
                    fwd_status: Some(st.as_u16()),
                    ttl: Some(updated.meta.ttl_secs(now)),
                    collapsed: ctx.collapsed,
                    ..CacheStatus::default()
                };
                return Ok(Done {
                    resp: self.respond(&ctx, &updated, now),
                    outcome: CacheOutcome::Revalidated,
                    status,
                });
            }
            // The origin's answer does not describe the stored response: drop it.
            let store = self.cache.store().clone();
            store.remove(&ctx.key).await;
            if st == StatusCode::NOT_MODIFIED {
                // We asked conditionally on the client's behalf; it needs a full response.
                drop(guard);
                let mut up = Request::from_parts(ctx.parts.clone(), core_body::empty());
                strip_conditionals(up.headers_mut());
                let t0 = (Instant::now(), self.cache.inner.clock.system_now());
                let resp = self.upstream(up).await?;
                let (resp, status) = self.store_or_pass(&ctx, resp, fwd, None, t0).await;
                return Ok(Done {
                    resp,
                    outcome: CacheOutcome::Expired,
                    status,
                });
            }
        }
        let (resp, status) = self.store_or_pass(&ctx, resp, fwd, guard, t0).await;
        Ok(Done {
            resp,
            outcome: CacheOutcome::Expired,
            status,
        })
    }

    fn serve_stale_on_error(
        &self,
        ctx: &Ctx,
        entry: &Arc<Entry>,
        fwd: Fwd,
        fwd_status: Option<u16>,
        now: Instant,
    ) -> Done {
        let status = CacheStatus {
            fwd: Some(fwd),
            fwd_status,
            ttl: Some(entry.meta.ttl_secs(now)),
            collapsed: ctx.collapsed,
            detail: Some("stale-if-error"),
            ..CacheStatus::default()
        };
        Done {
            resp: self.respond(ctx, entry, now),
            outcome: CacheOutcome::Stale,
            status,
        }
    }

    /// Answer from a stored entry. With a representation layer above (it marked the
    /// request), the full stored response goes up with a [`StoredBody`] handle and that layer
    /// answers preconditions, `Range` and the encoding; otherwise the cache answers
    /// `If-None-Match` / `If-Modified-Since` itself.
    fn respond(&self, ctx: &Ctx, entry: &Arc<Entry>, now: Instant) -> Response<Body> {
        let above = ctx.parts.extensions.get::<RepresentationsAbove>().is_some();
        let mut resp = respond_from_entry(entry, now, &ctx.parts, above);
        if above {
            let handle = StoredHandle::new(
                entry.clone(),
                self.cache.store().clone(),
                ctx.key.clone(),
                resp.headers().get(header::CONTENT_ENCODING),
            );
            resp.extensions_mut().insert(StoredBody(Arc::new(handle)));
        }
        resp
    }

    /// A 304 (or matching HEAD 200) refreshes the stored headers and freshness (§3.2, §4.3.4).
    fn update_entry(
        &self,
        ctx: &Ctx,
        entry: &Entry,
        fresh: &HeaderMap,
        t0: (Instant, SystemTime),
    ) -> Option<Entry> {
        let mut merged = entry.headers();
        update_stored(&mut merged, fresh);
        let (cc, src) = select_response(&merged, self.cache.settings().targeted_field.as_ref());
        if cc.no_store && !cc.must_understand && !self.policy().overrides.ignore_no_store {
            return None;
        }
        let meta = self.meta_for(entry.status, &merged, fresh, &cc, src, t0);
        let _ = ctx;
        entry.with_headers(&merged, meta)
    }

    fn meta_for(
        &self,
        status: StatusCode,
        stored: &HeaderMap,
        received: &HeaderMap,
        cc: &ResponseDirectives,
        src: crate::directives::PolicySource,
        t0: (Instant, SystemTime),
    ) -> EntryMeta {
        let settings = self.cache.settings();
        let policy = self.policy();
        let resp_instant = Instant::now();
        let clock = &self.cache.inner.clock;
        let resp_time = clock.system_at(resp_instant);
        let cfg = LifetimeConfig {
            heuristic_max: settings.heuristic_max,
            default_ttl: policy.default_ttl,
            ttl_max: policy.ttl_max,
        };
        let lifetime = freshness::lifetime(status, cc, src, stored, resp_time, &cfg);
        let initial_age = freshness::corrected_initial_age(
            freshness::age_value(received),
            freshness::date_value(stored),
            t0.1,
            resp_time,
        );
        let (swr, sie) = crate::storable::stale_windows(cc, policy);
        let mut meta = EntryMeta {
            lifetime: lifetime.duration(),
            initial_age,
            stored_at: resp_instant,
            no_cache: cc.no_cache && !policy.overrides.ignore_no_cache,
            forbids_stale: cc.forbids_stale(),
            swr,
            sie,
            has_validator: has_validator(stored),
            soft_purged: false,
            expires_at: resp_instant,
        };
        meta.compute_expiry(settings.keep_for_revalidation);
        meta
    }

    /// Decide whether to store a forwarded response; tee it into the cache if so, remember
    /// hit-for-pass if it is uncacheable.
    async fn store_or_pass(
        &mut self,
        ctx: &Ctx,
        resp: Response<Body>,
        fwd: Fwd,
        guard: Option<FlightGuard>,
        t0: (Instant, SystemTime),
    ) -> (Response<Body>, CacheStatus) {
        let settings = self.cache.settings();
        let policy = self.policy();
        let (mut parts, body) = resp.into_parts();
        ensure_date(&mut parts.headers, &self.cache.inner.clock);
        let mut status = CacheStatus {
            fwd: Some(fwd),
            fwd_status: Some(parts.status.as_u16()),
            collapsed: ctx.collapsed,
            ..CacheStatus::default()
        };
        let (cc, src) = select_response(&parts.headers, settings.targeted_field.as_ref());
        let now_sys = self.cache.inner.clock.system_now();
        let cfg = LifetimeConfig {
            heuristic_max: settings.heuristic_max,
            default_ttl: policy.default_ttl,
            ttl_max: policy.ttl_max,
        };
        let lifetime = freshness::lifetime(parts.status, &cc, src, &parts.headers, now_sys, &cfg);
        let mut decision = storable(
            &StoreInput {
                method: &ctx.parts.method,
                req_headers: &ctx.parts.headers,
                req_cc: &ctx.req_cc,
                status: parts.status,
                resp_headers: &parts.headers,
                resp_cc: &cc,
                lifetime,
                path: ctx.target.path.as_str(),
            },
            policy,
        );
        let content_length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if decision.is_ok() && content_length.is_some_and(|n| n > settings.max_object_size) {
            decision = Err(NotStorable::TooLarge);
        }
        let pass_until = later(settings.hit_for_pass_ttl);
        match decision {
            Err(reason) => {
                if !matches!(
                    reason,
                    NotStorable::Method | NotStorable::RequestNoStore | NotStorable::Authorization
                ) {
                    let mark = self.cache.store().mark_pass(ctx.key.clone(), pass_until);
                    mark.await;
                }
                drop(guard);
                status.detail = Some(reason.as_str());
                (Response::from_parts(parts, body), status)
            }
            Ok(()) => {
                let vary = vary_names(&parts.headers).unwrap_or_default();
                let secondary = secondary_key(&vary, &ctx.parts.headers);
                let mut stored = parts.headers.clone();
                strip_for_storage(&mut stored, &cc, policy.set_cookie);
                let meta = self.meta_for(parts.status, &stored, &parts.headers, &cc, src, t0);
                let template = EntryTemplate {
                    status: parts.status,
                    headers: stored,
                    meta,
                    vary,
                    secondary,
                    tags: extract_tags(&parts.headers, settings),
                    url: ctx.url.clone(),
                    generate_etag: policy
                        .generate_etag
                        .then_some(settings.keep_for_revalidation),
                };
                let collect = Collect {
                    chunks: Vec::new(),
                    size: 0,
                    max: settings.max_object_size,
                    expected_len: content_length,
                    template,
                    store: self.cache.store().clone(),
                    key: ctx.key.clone(),
                    pass_until,
                    guard,
                };
                status.stored = true;
                let body = core_body::boxed(TeeBody::new(body, collect));
                (Response::from_parts(parts, body), status)
            }
        }
    }

    /// stale-while-revalidate: refresh in the background, at most one per key.
    fn spawn_refresh(&self, ctx: &Ctx, entry: Arc<Entry>, flight_key: Arc<str>) {
        let Some(guard) = self.cache.try_lead(&flight_key) else {
            return;
        };
        let mut parts = ctx.parts.clone();
        parts.method = Method::GET;
        parts.headers.remove(header::RANGE);
        let bg_ctx = Ctx {
            parts,
            req_cc: RequestDirectives::default(),
            target: ctx.target.clone(),
            key: ctx.key.clone(),
            url: ctx.url.clone(),
            collapsed: false,
        };
        let mut handler = Handler {
            cache: self.cache.clone(),
            ready: None,
            spare: self.spare.clone(),
            route: self.route.clone(),
        };
        tokio::spawn(async move {
            let done = handler
                .revalidate(bg_ctx, core_body::empty(), entry, Fwd::Stale, Some(guard))
                .await;
            if let Ok(done) = done {
                // Drive the tee to the end so the object is stored.
                let mut body = done.resp.into_body();
                while let Some(frame) = body.frame().await {
                    if frame.is_err() {
                        break;
                    }
                }
            }
        });
    }
}

/// RFC 9110 §6.6.1: a recipient with a clock adds `Date` to a response lacking one.
fn ensure_date(headers: &mut HeaderMap, clock: &crate::cache::Clock) {
    if !headers.contains_key(header::DATE) {
        let now = httpdate::fmt_http_date(clock.system_now());
        if let Ok(v) = HeaderValue::from_str(&now) {
            headers.insert(header::DATE, v);
        }
    }
}

/// `now + d`, saturating far in the future instead of overflowing on absurd settings.
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

fn flight_key(key: &Arc<str>, secondary: &str) -> Arc<str> {
    if secondary.is_empty() {
        key.clone()
    } else {
        Arc::from(format!("{key}\n{secondary}"))
    }
}

/// The freshness decision for a selected variant (RFC 9111 §4, §4.2.4; RFC 5861).
fn decide(entry: &Entry, now: Instant, req: &RequestDirectives) -> Use {
    let m = &entry.meta;
    let age = m.age(now);
    let fresh = m.is_fresh(now);
    if fresh && !m.no_cache {
        let age_ok = req.max_age.is_none_or(|ma| age.as_secs() <= ma);
        let fresh_ok = req
            .min_fresh
            .is_none_or(|mf| m.lifetime.saturating_sub(age).as_secs() >= mf);
        return if !req.no_cache && age_ok && fresh_ok {
            Use::Fresh
        } else {
            Use::Validate(Fwd::Request)
        };
    }
    // Stale (or no-cache): §4.2.4 forbids serving stale under these.
    if m.no_cache || m.forbids_stale {
        return Use::Validate(Fwd::Stale);
    }
    if req.no_cache {
        return Use::Validate(Fwd::Request);
    }
    let staleness = m.staleness(now);
    match req.max_stale {
        Some(MaxStale::Any) => {
            return Use::Stale {
                refresh: false,
                detail: "max-stale",
            };
        }
        Some(MaxStale::Secs(n)) if staleness.as_secs() <= n => {
            return Use::Stale {
                refresh: false,
                detail: "max-stale",
            };
        }
        _ => {}
    }
    if req.max_age.is_some_and(|ma| age.as_secs() > ma) {
        return Use::Validate(Fwd::Request);
    }
    if !m.swr.is_zero() && staleness <= m.swr {
        return Use::Stale {
            refresh: true,
            detail: "stale-while-revalidate",
        };
    }
    Use::Validate(Fwd::Stale)
}

fn stale_if_error_ok(entry: &Entry, req: &RequestDirectives, now: Instant) -> bool {
    let m = &entry.meta;
    if m.no_cache || m.forbids_stale {
        return false;
    }
    let window = m
        .sie
        .max(Duration::from_secs(req.stale_if_error.unwrap_or(0)));
    !window.is_zero() && m.staleness(now) <= window
}

/// Connect failures, timeouts and 5xx-class errors from below allow stale-if-error.
fn is_upstream_failure(err: &BoxError) -> bool {
    let (kind, _) = rampart_core::rescue::classify(err.as_ref());
    matches!(kind.status().as_u16(), 500 | 502 | 503 | 504)
}

/// Does a 304 / HEAD response describe the stored entry (§4.3.4, §4.3.5)?
fn validators_match(entry: &Entry, resp: &HeaderMap, is_304: bool) -> bool {
    let stored_etag = entry.header(&header::ETAG);
    let new_etag = resp.get(header::ETAG);
    match (stored_etag.as_ref(), new_etag) {
        (Some(a), Some(b)) => return strip_weak(a) == strip_weak(b),
        (None, Some(_)) => return false,
        _ => {}
    }
    let stored_lm = entry.header(&header::LAST_MODIFIED);
    let new_lm = resp.get(header::LAST_MODIFIED);
    if let (Some(a), Some(b)) = (stored_lm.as_ref(), new_lm) {
        return a == b;
    }
    if !is_304 {
        // HEAD: with no validators at all, Content-Length must agree.
        if let Some(cl) = resp.get(header::CONTENT_LENGTH) {
            return cl
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                == Some(entry.body_len());
        }
        return stored_etag.is_none() && stored_lm.is_none() && new_lm.is_none();
    }
    true
}

fn strip_weak(v: &HeaderValue) -> &[u8] {
    let b = v.as_bytes();
    b.strip_prefix(b"W/").unwrap_or(b)
}

fn strip_conditionals(h: &mut HeaderMap) {
    for name in [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
        header::RANGE,
    ] {
        h.remove(name);
    }
}

fn extract_tags(headers: &HeaderMap, settings: &crate::config::CacheSettings) -> Vec<Arc<str>> {
    const MAX_TAGS: usize = 128;
    const MAX_TAG_LEN: usize = 256;
    let mut tags: Vec<Arc<str>> = Vec::new();
    for th in &settings.tag_headers {
        for v in headers.get_all(&th.name) {
            let Ok(s) = v.to_str() else { continue };
            let parts: Box<dyn Iterator<Item = &str>> = match th.separator {
                TagSeparator::Space => Box::new(s.split_ascii_whitespace()),
                TagSeparator::Comma => Box::new(s.split(',')),
            };
            for t in parts.map(str::trim) {
                if t.is_empty() || t.len() > MAX_TAG_LEN || tags.len() >= MAX_TAGS {
                    continue;
                }
                if !tags.iter().any(|x| &**x == t) {
                    tags.push(Arc::from(t));
                }
            }
        }
    }
    tags
}

/// Build a response from a stored entry: `Bytes` clones only, `Age` set, client
/// conditionals (`If-None-Match`, `If-Modified-Since`) answered with 304.
fn respond_from_entry(entry: &Entry, now: Instant, req: &Parts, above: bool) -> Response<Body> {
    let mut headers = entry.headers();
    headers.insert(
        header::AGE,
        HeaderValue::from(freshness::age_header_secs(entry.meta.age(now))),
    );
    if !above && entry.status == StatusCode::OK && not_modified(entry, &req.headers) {
        let mut resp = Response::new(core_body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        let h = resp.headers_mut();
        for name in [
            header::CACHE_CONTROL,
            header::CONTENT_LOCATION,
            header::DATE,
            header::ETAG,
            header::EXPIRES,
            header::VARY,
            header::LAST_MODIFIED,
            header::AGE,
        ] {
            for v in headers.get_all(&name) {
                h.append(name.clone(), v.clone());
            }
        }
        return resp;
    }
    let body = if req.method == Method::HEAD {
        core_body::empty()
    } else {
        core_body::full(entry.body())
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = entry.status;
    *resp.headers_mut() = headers;
    resp
}

/// RFC 9110 §13.1.2 / §13.1.3 evaluated against the stored response.
fn not_modified(entry: &Entry, req: &HeaderMap) -> bool {
    if req.contains_key(header::IF_NONE_MATCH) {
        let Some(etag) = entry.header(&header::ETAG) else {
            return false;
        };
        let etag = strip_weak(&etag);
        return req
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == etag);
    }
    if let Some(ims) = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let lm = entry.header(&header::LAST_MODIFIED).and_then(|v| {
            v.to_str()
                .ok()
                .and_then(|s| httpdate::parse_http_date(s).ok())
        });
        return lm.is_some_and(|lm| lm <= ims);
    }
    false
}
