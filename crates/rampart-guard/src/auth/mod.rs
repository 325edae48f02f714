//! Authentication at the edge (stack layer 12): JWT, API keys, CSRF.
//!
//! Per route ([`AuthPolicy`], a [`RoutePolicy`] extension):
//!
//! 1. Incoming copies of the claim-forwarding headers are removed (always, so a client can
//!    never inject `x-user-id` itself).
//! 2. The CSRF guard runs (if configured) → 403.
//! 3. Credentials: an API key (if the route accepts them and one is presented) or a JWT.
//!    None presented, or invalid → 401 with `WWW-Authenticate`.
//! 4. Required claims and roles (RBAC) → 403 when missing.
//! 5. The verified [`Identity`] is inserted into the request extensions and the configured
//!    claims are forwarded upstream as headers.

pub mod apikey;
pub mod csrf;
pub mod jwks;
pub mod jwt;

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderName, HeaderValue, header};
use rampart_core::{BoxError, Error, ErrorKind, RoutePolicy};

use crate::{
    events::{EventSink, SecurityEvent, SecurityEventKind},
    future::{GuardFuture, Pass},
    metrics::GuardMetrics,
    ratelimit::{bearer_token, cookie_value},
    reference,
};
use apikey::ApiKeyLookup;
use csrf::CsrfPolicy;
use jwt::{JwtError, JwtVerifier, claim_at};

/// The verified caller, inserted into request extensions by the auth layer (and read by
/// rate-limit keys, logs, and anything below).
#[derive(Debug, Clone)]
pub enum Identity {
    /// A verified JWT's claims.
    Jwt(Arc<serde_json::Value>),
    /// The name of the API key used.
    ApiKey(Arc<str>),
}

/// Where a route reads its JWT from.
#[derive(Debug, Clone, Default)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (default).
    #[default]
    Bearer,
    /// A cookie.
    Cookie(String),
}

impl TokenSource {
    fn extract<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        match self {
            Self::Bearer => bearer_token(headers),
            Self::Cookie(name) => cookie_value(headers, name).filter(|v| !v.is_empty()),
        }
    }
}

/// A required claim: present, and equal to `value` (or, for an array claim, containing it)
/// when given.
#[derive(Debug, Clone)]
pub struct RequiredClaim {
    /// Claim name or dotted path.
    pub claim: String,
    /// Expected value, if any.
    pub value: Option<serde_json::Value>,
}

/// A route's JWT rule.
#[derive(Debug, Clone)]
pub struct JwtRule {
    /// The verifier (keys, JWKS, iss/aud/leeway); usually shared by many routes.
    pub verifier: Arc<JwtVerifier>,
    /// Where the token is read from.
    pub source: TokenSource,
    /// Claims that must be present (403 otherwise).
    pub required_claims: Vec<RequiredClaim>,
    /// Claim holding the caller's roles: an array of strings or a space-separated string
    /// (default `roles`; e.g. `realm_access.roles`, `scope`).
    pub roles_claim: String,
    /// Roles the caller must all have (403 otherwise).
    pub required_roles: Vec<String>,
    /// Claims forwarded upstream as headers (string, number and bool claims; arrays joined by
    /// commas).
    pub forward: Vec<(String, HeaderName)>,
}

impl JwtRule {
    /// A rule with defaults: bearer token, no required claims or roles, nothing forwarded.
    pub fn new(verifier: Arc<JwtVerifier>) -> Self {
        Self {
            verifier,
            source: TokenSource::Bearer,
            required_claims: Vec::new(),
            roles_claim: "roles".into(),
            required_roles: Vec::new(),
            forward: Vec::new(),
        }
    }

    fn authorize(&self, claims: &serde_json::Value) -> Result<(), String> {
        for rc in &self.required_claims {
            let Some(v) = claim_at(claims, &rc.claim) else {
                return Err(format!("missing claim {}", rc.claim));
            };
            if let Some(want) = &rc.value {
                let ok = v == want
                    || v.as_array().is_some_and(|a| a.contains(want))
                    || (v.as_str().zip(want.as_str()))
                        .is_some_and(|(have, w)| have.split(' ').any(|p| p == w));
                if !ok {
                    return Err(format!("claim {} has the wrong value", rc.claim));
                }
            }
        }
        if !self.required_roles.is_empty() {
            let roles: Vec<&str> = match claim_at(claims, &self.roles_claim) {
                Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
                Some(serde_json::Value::String(s)) => s.split(' ').collect(),
                _ => Vec::new(),
            };
            for need in &self.required_roles {
                if !roles.iter().any(|r| r == need) {
                    return Err(format!("missing role {need}"));
                }
            }
        }
        Ok(())
    }
}

/// A route's auth policy. At least one of `jwt` / `api_key` makes credentials mandatory; a
/// policy with only `csrf` just runs the CSRF guard.
#[derive(Debug, Clone, Default)]
pub struct AuthPolicy {
    /// JWT rule.
    pub jwt: Option<JwtRule>,
    /// Accepted API keys and where they are read from.
    pub api_key: Option<ApiKeyLookup>,
    /// Optional allow-list of API key names for this route (`None` = any key of the set).
    pub api_key_names: Option<Vec<String>>,
    /// CSRF guard.
    pub csrf: Option<CsrfPolicy>,
    /// Realm in `WWW-Authenticate` (default `rampart`).
    pub realm: String,
}

impl AuthPolicy {
    fn strip_forwarded(&self, headers: &mut HeaderMap) {
        if let Some(j) = &self.jwt {
            for (_, h) in &j.forward {
                headers.remove(h);
            }
        }
    }

    fn challenge(&self, error: Option<&str>) -> HeaderMap {
        let realm = if self.realm.is_empty() {
            "rampart"
        } else {
            &self.realm
        };
        let mut h = HeaderMap::new();
        if self.jwt.is_some() {
            let v = match error {
                Some(e) => format!("Bearer realm=\"{realm}\", error=\"{e}\""),
                None => format!("Bearer realm=\"{realm}\""),
            };
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.append(header::WWW_AUTHENTICATE, v);
            }
        }
        if self.api_key.is_some()
            && let Ok(v) = HeaderValue::from_str(&format!("ApiKey realm=\"{realm}\""))
        {
            h.append(header::WWW_AUTHENTICATE, v);
        }
        h
    }
}

/// An auth refusal, before it becomes a rampart [`Error`].
#[derive(Debug)]
enum Refusal {
    Unauthorized {
        reason: &'static str,
        invalid: bool,
    },
    Forbidden {
        reason: &'static str,
        detail: String,
        kind: SecurityEventKind,
    },
}

/// Layer 12: JWT / API keys / CSRF.
#[derive(Clone, Default)]
pub struct AuthLayer {
    events: EventSink,
    metrics: Option<GuardMetrics>,
}

impl AuthLayer {
    /// The layer; per-route [`AuthPolicy`]s decide what is required (routes without one pass).
    pub fn new(events: EventSink, metrics: Option<GuardMetrics>) -> Self {
        Self { events, metrics }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            events: self.events.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    events: EventSink,
    metrics: Option<GuardMetrics>,
}

type Req = http::Request<rampart_core::Body>;
type Resp = http::Response<rampart_core::Body>;

/// What the synchronous part of authentication decided.
enum Step {
    /// Done: pass or refuse.
    Done(Result<(), Refusal>),
    /// A JWT has to be verified (which may have to fetch keys).
    Jwt,
}

/// Everything that needs no waiting: forwarded-claim stripping, CSRF, API keys.
fn authenticate_now(policy: &AuthPolicy, req: &mut Req) -> Step {
    policy.strip_forwarded(req.headers_mut());
    if let Some(csrf) = &policy.csrf
        && let Err(e) = csrf.check(req.method(), req.headers())
    {
        return Step::Done(Err(Refusal::Forbidden {
            reason: "csrf",
            detail: e.to_string(),
            kind: SecurityEventKind::CsrfRejected,
        }));
    }
    if policy.jwt.is_none() && policy.api_key.is_none() {
        return Step::Done(Ok(()));
    }
    if let Some(lookup) = &policy.api_key
        && let Some(name) = lookup.verify_request(req)
    {
        let Some(name) = name.cloned() else {
            return Step::Done(Err(Refusal::Unauthorized {
                reason: "invalid_api_key",
                invalid: true,
            }));
        };
        if let Some(allowed) = &policy.api_key_names
            && !allowed.iter().any(|a| **a == *name)
        {
            return Step::Done(Err(Refusal::Forbidden {
                reason: "forbidden",
                detail: format!("api key {name} not allowed on this route"),
                kind: SecurityEventKind::AuthForbidden,
            }));
        }
        req.extensions_mut().insert(Identity::ApiKey(name));
        return Step::Done(Ok(()));
    }
    Step::Jwt
}

/// The JWT part, after [`authenticate_now`] returned [`Step::Jwt`].
async fn authenticate_jwt(policy: &AuthPolicy, req: &mut Req) -> Result<(), Refusal> {
    let Some(rule) = &policy.jwt else {
        return Err(Refusal::Unauthorized {
            reason: "missing",
            invalid: false,
        });
    };
    let Some(token) = rule.source.extract(req.headers()) else {
        return Err(Refusal::Unauthorized {
            reason: "missing",
            invalid: false,
        });
    };
    let claims =
        rule.verifier
            .verify(token)
            .await
            .map_err(|e: JwtError| Refusal::Unauthorized {
                reason: e.reason(),
                invalid: true,
            })?;
    rule.authorize(&claims)
        .map_err(|detail| Refusal::Forbidden {
            reason: "forbidden",
            detail,
            kind: SecurityEventKind::AuthForbidden,
        })?;
    for (claim, hname) in &rule.forward {
        let value = match claim_at(&claims, claim) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
            Some(serde_json::Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        };
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            req.headers_mut().insert(hname.clone(), v);
        }
    }
    req.extensions_mut().insert(Identity::Jwt(claims));
    Ok(())
}

/// Turn a refusal into the error the rescue layer answers with; count it and emit its event.
fn refuse(
    policy: &AuthPolicy,
    route: &RoutePolicy,
    refusal: Refusal,
    req: &Req,
    events: &EventSink,
    metrics: Option<&GuardMetrics>,
) -> BoxError {
    let (reason, err, event) = match refusal {
        Refusal::Unauthorized { reason, invalid } => {
            let headers = policy.challenge(invalid.then_some("invalid_token"));
            (
                reason,
                Error::new(ErrorKind::Unauthorized)
                    .with_headers(headers)
                    .with_message(format!("auth: {reason}")),
                SecurityEvent::from_request(SecurityEventKind::AuthFailed, req).rule(reason),
            )
        }
        Refusal::Forbidden {
            reason,
            detail,
            kind,
        } => {
            let reference = reference(req, reason);
            let ev = SecurityEvent::from_request(kind, req)
                .rule(reason)
                .reference(reference.clone())
                .details(detail.clone());
            (
                reason,
                Error::new(ErrorKind::Forbidden { reference })
                    .with_message(format!("auth: {detail}")),
                ev,
            )
        }
    };
    if let Some(m) = metrics {
        m.auth_failure(&route.name, reason);
    }
    events.emit(event);
    Box::new(err)
}

impl<S, F> tower::Service<Req> for AuthService<S>
where
    S: tower::Service<Req, Response = Resp, Error = BoxError, Future = F> + Clone + Send + 'static,
    F: std::future::Future<Output = Result<Resp, BoxError>> + Send + 'static,
{
    type Response = Resp;
    type Error = BoxError;
    type Future = GuardFuture<F, Pass>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let Some(route) = req
            .extensions()
            .get::<Arc<RoutePolicy>>()
            .filter(|p| p.get::<AuthPolicy>().is_some())
            .cloned()
        else {
            return GuardFuture::pass(self.inner.call(req));
        };
        let Some(policy) = route.get::<AuthPolicy>() else {
            return GuardFuture::pass(self.inner.call(req));
        };
        match authenticate_now(policy, &mut req) {
            Step::Done(Ok(())) => return GuardFuture::pass(self.inner.call(req)),
            Step::Done(Err(refusal)) => {
                let err = refuse(
                    policy,
                    &route,
                    refusal,
                    &req,
                    &self.events,
                    self.metrics.as_ref(),
                );
                return GuardFuture::error(err);
            }
            Step::Jwt => {}
        }
        // A JWT: verification may wait for a key fetch, so the inner service is called from an
        // async block (tower's clone-and-swap idiom: take the ready service, leave a clone).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let events = self.events.clone();
        let metrics = self.metrics.clone();
        GuardFuture::boxed(Box::pin(async move {
            let Some(policy) = route.get::<AuthPolicy>() else {
                return inner.call(req).await;
            };
            match authenticate_jwt(policy, &mut req).await {
                Ok(()) => inner.call(req).await,
                Err(refusal) => Err(refuse(
                    policy,
                    &route,
                    refusal,
                    &req,
                    &events,
                    metrics.as_ref(),
                )),
            }
        }))
    }
}
