//! Shared helpers for layer tests: a tiny inner service and request builders.

#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::{convert::Infallible, net::IpAddr, sync::Arc};

use http::{Request, Response, StatusCode};
use rampart_core::{Body, BoxError, ClientIp, RequestId, RouteId, RoutePolicy, body, rescue};
use tower::{Service, ServiceExt};

/// Inner service: answers with the status in `x-status` (default 200), echoes selected request
/// headers back as `x-seen-<name>`, and sets `server: upstream`.
pub fn inner() -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = BoxError,
    Future = impl std::future::Future<Output = Result<Response<Body>, BoxError>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|req: Request<Body>| async move {
        let status = req
            .headers()
            .get("x-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u16>().ok())
            .unwrap_or(200);
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
        resp.headers_mut()
            .insert("server", "upstream".parse().unwrap());
        for (k, v) in req.headers() {
            if k.as_str().starts_with("x-user") || k.as_str() == "x-forwarded-sub" {
                resp.headers_mut().insert(
                    http::HeaderName::from_bytes(format!("x-seen-{k}").as_bytes()).unwrap(),
                    v.clone(),
                );
            }
        }
        if let Some(id) = req.extensions().get::<rampart_guard::Identity>() {
            let v = match id {
                rampart_guard::Identity::Jwt(c) => {
                    format!("jwt:{}", c["sub"].as_str().unwrap_or(""))
                }
                rampart_guard::Identity::ApiKey(n) => format!("key:{n}"),
            };
            resp.headers_mut().insert("x-identity", v.parse().unwrap());
        }
        Ok::<_, Infallible>(resp)
    })
    .map_err(|e: Infallible| -> BoxError { match e {} })
}

/// A route policy named `name` with one feature extension.
pub fn route<T: Clone + Send + Sync + 'static>(name: &str, ext: Option<T>) -> Arc<RoutePolicy> {
    let mut p = RoutePolicy::new(RouteId(0), name, None);
    if let Some(e) = ext {
        p.extensions.insert(e);
    }
    Arc::new(p)
}

/// A request builder preloaded with client ip, request id and route.
pub fn req(
    method: &str,
    uri: &str,
    ip: &str,
    route: &Arc<RoutePolicy>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut r = b.body(body::empty()).unwrap();
    r.extensions_mut()
        .insert(ClientIp(ip.parse::<IpAddr>().unwrap()));
    r.extensions_mut().insert(RequestId::generate());
    r.extensions_mut().insert(route.clone());
    r
}

/// Run a request through a service and turn errors into responses the way the rescue does.
pub async fn call<S>(svc: &mut S, r: Request<Body>) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError>,
{
    let id = r.extensions().get::<RequestId>().cloned();
    match svc.ready().await.unwrap().call(r).await {
        Ok(resp) => resp,
        Err(e) => rescue::error_response(&e, id.as_ref()),
    }
}

pub fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}
