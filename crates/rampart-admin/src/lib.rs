//! The admin API, on its own listener (default `127.0.0.1:9901`), never on the data path.
//!
//! | endpoint | auth | answer |
//! |---|---|---|
//! | `GET /healthz` | none | `200 ok` while the process runs |
//! | `GET /readyz` | none | JSON, one entry per component (`healthy` / `degraded` / `unhealthy`); 503 when not ready |
//! | `GET /metrics` | none | Prometheus text |
//! | `GET /config` | none | the effective config as JSON, secrets redacted |
//! | `GET /stats` | none | JSON summary: requests, status classes, latency percentiles per route |
//! | `POST /reload` | bearer token | re-read the config file and swap it in |
//! | `POST /cache/purge` | bearer token | purge by urls / prefix / tags / all, optionally soft |
//! | `GET /bans`, `POST /bans`, `DELETE /bans/{ip}` | bearer token | list, add, lift bans |
//! | `GET /audit?since=…&kind=…&limit=…` | bearer token | recent security events (JSON array, oldest first) |
//!
//! Mutating endpoints require `Authorization: Bearer <admin.token>`; later features add
//! theirs with [`protected`]. The app implements [`AdminApi`]; this crate knows nothing else
//! about it.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;

/// Health of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Working.
    Healthy,
    /// Working with problems.
    Degraded,
    /// Not working.
    Unhealthy,
}

/// One `/readyz` entry.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// Component name (`listeners`, `upstream:api`, ...).
    pub name: String,
    /// Its health.
    pub status: Health,
    /// A short human explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `/readyz` document.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// Ready to take traffic (else 503).
    pub ready: bool,
    /// Per component.
    pub components: Vec<Component>,
}

/// The future of an asynchronous admin action: a JSON answer, or a status and a message.
pub type AdminFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<serde_json::Value, (u16, String)>> + Send>,
>;

/// What the admin API asks of the running gateway.
pub trait AdminApi: Send + Sync + 'static {
    /// Prometheus exposition.
    fn metrics(&self) -> String;
    /// Readiness report.
    fn readiness(&self) -> Readiness;
    /// Effective config, secrets redacted.
    fn config(&self) -> serde_json::Value;
    /// Stats summary.
    fn stats(&self) -> serde_json::Value;
    /// Reload the config file; `Err` carries the config errors.
    fn reload(&self) -> Result<serde_json::Value, Vec<String>>;
    /// Purge the cache (`POST /cache/purge` body: `{"urls":[..]}`, `{"prefix":".."}`,
    /// `{"tags":[..]}` or `{"all":true}`, with optional `"soft":true`).
    fn purge(&self, request: serde_json::Value) -> AdminFuture;
    /// Active bans.
    fn bans(&self) -> serde_json::Value;
    /// Ban manually: `{"ip": "..", "duration": "1h", "reason": ".."}`.
    fn ban(&self, request: serde_json::Value) -> Result<serde_json::Value, (u16, String)>;
    /// Lift a ban.
    fn unban(&self, ip: &str) -> Result<serde_json::Value, (u16, String)>;
    /// Recent security events matching `query`.
    fn audit(&self, query: &AuditQuery) -> Result<serde_json::Value, (u16, String)> {
        let _ = query;
        Err((404, "no audit log".into()))
    }
}

/// `GET /audit` query parameters.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// RFC 3339 time (`2026-11-21T10:00:00Z`) or a duration back from now (`15m`).
    pub since: Option<String>,
    /// Event kind (`auth_failed`, `rate_limited`, `waf_blocked`, `admin_action`, ...).
    pub kind: Option<String>,
    /// At most this many events, the newest (default 100).
    pub limit: Option<usize>,
}

/// Shared state of the admin router.
#[derive(Clone)]
pub struct AdminState {
    /// The gateway.
    pub api: Arc<dyn AdminApi>,
    /// Bearer token for mutating endpoints.
    pub token: Arc<str>,
}

/// The admin router with the core endpoints. Merge feature routers built with [`protected`].
pub fn router(state: AdminState) -> Router {
    let open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/config", get(config))
        .route("/stats", get(stats));
    let mutating = protected(
        Router::new()
            .route("/reload", post(reload))
            .route("/cache/purge", post(purge))
            .route("/bans", get(bans_list).post(bans_add))
            .route("/bans/{ip}", axum::routing::delete(bans_remove))
            .route("/audit", get(audit)),
        state.token.clone(),
    );
    open.merge(mutating).with_state(state)
}

/// Wrap a router so every route requires `Authorization: Bearer <token>` (401 otherwise).
pub fn protected<S: Clone + Send + Sync + 'static>(r: Router<S>, token: Arc<str>) -> Router<S> {
    r.layer(middleware::from_fn(move |req: Request, next: Next| {
        let token = token.clone();
        async move {
            let ok = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()));
            if ok {
                next.run(req).await
            } else {
                let mut r = (
                    StatusCode::UNAUTHORIZED,
                    Json(serde_json::json!({"error": "unauthorized", "status": 401})),
                )
                    .into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"rampart-admin\""),
                );
                r
            }
        }
    }))
}

/// Compare without early exit, so response time does not leak the matching prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn readyz(State(s): State<AdminState>) -> Response {
    let r = s.api.readiness();
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r)).into_response()
}

async fn metrics(State(s): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.api.metrics(),
    )
        .into_response()
}

async fn config(State(s): State<AdminState>) -> Response {
    Json(s.api.config()).into_response()
}

async fn stats(State(s): State<AdminState>) -> Response {
    Json(s.api.stats()).into_response()
}

async fn reload(State(s): State<AdminState>) -> Response {
    match s.api.reload() {
        Ok(v) => Json(v).into_response(),
        Err(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({"error": "invalid config", "errors": errors})),
        )
            .into_response(),
    }
}

fn answer(r: Result<serde_json::Value, (u16, String)>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err((code, msg)) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            Json(serde_json::json!({"error": msg})),
        )
            .into_response(),
    }
}

async fn audit(
    State(s): State<AdminState>,
    query: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(q) => answer(s.api.audit(&q.0)),
        Err(e) => answer(Err((400, format!("invalid query: {e}")))),
    }
}

async fn bans_list(State(s): State<AdminState>) -> Response {
    Json(s.api.bans()).into_response()
}

async fn bans_add(State(s): State<AdminState>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => answer(s.api.ban(v)),
        Err(e) => answer(Err((400, format!("invalid json: {e}")))),
    }
}

async fn bans_remove(
    State(s): State<AdminState>,
    axum::extract::Path(ip): axum::extract::Path<String>,
) -> Response {
    answer(s.api.unban(&ip))
}

async fn purge(State(s): State<AdminState>, body: axum::body::Bytes) -> Response {
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": format!("invalid json: {e}")})),
            )
                .into_response();
        }
    };
    match s.api.purge(request).await {
        Ok(v) => Json(v).into_response(),
        Err((code, msg)) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            Json(serde_json::json!({"error": msg})),
        )
            .into_response(),
    }
}

/// The admin token: the configured one, or a fresh random one written to `file` (or the
/// default path) with mode 0600. Returns the token and the file it was written to.
pub fn ensure_token(
    configured: Option<&str>,
    file: Option<&Path>,
) -> std::io::Result<(String, Option<PathBuf>)> {
    if let Some(t) = configured {
        return Ok((t.to_string(), None));
    }
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let path = file
        .map(Path::to_path_buf)
        .unwrap_or_else(default_token_path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(token.as_bytes())?;
    Ok((token, Some(path)))
}

/// `$XDG_RUNTIME_DIR/rampart/admin.token`, else `$HOME/.rampart/admin.token`, else
/// `./.rampart/admin.token`. The CLI's admin commands read the token from here by default.
pub fn default_token_path() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("rampart").join("admin.token");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".rampart").join("admin.token");
    }
    PathBuf::from(".rampart").join("admin.token")
}

/// Serve the admin router on a bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(error = %e, "admin listener failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    struct Fake;
    impl AdminApi for Fake {
        fn metrics(&self) -> String {
            "rampart_x 1\n".into()
        }
        fn readiness(&self) -> Readiness {
            Readiness {
                ready: false,
                components: vec![Component {
                    name: "listeners".into(),
                    status: Health::Unhealthy,
                    detail: None,
                }],
            }
        }
        fn config(&self) -> serde_json::Value {
            serde_json::json!({})
        }
        fn stats(&self) -> serde_json::Value {
            serde_json::json!({})
        }
        fn reload(&self) -> Result<serde_json::Value, Vec<String>> {
            Ok(serde_json::json!({"reloaded": true}))
        }
        fn bans(&self) -> serde_json::Value {
            serde_json::json!([])
        }
        fn ban(&self, _: serde_json::Value) -> Result<serde_json::Value, (u16, String)> {
            Err((400, "no".into()))
        }
        fn unban(&self, _: &str) -> Result<serde_json::Value, (u16, String)> {
            Err((404, "no".into()))
        }
        fn purge(&self, request: serde_json::Value) -> AdminFuture {
            Box::pin(async move {
                if request.get("all").is_some() {
                    Ok(serde_json::json!({"purged": 3}))
                } else {
                    Err((400, "no selector".into()))
                }
            })
        }
    }

    fn app() -> Router {
        router(AdminState {
            api: Arc::new(Fake),
            token: "t0ken-t0ken-t0ken".into(),
        })
    }

    async fn call(req: http::Request<axum::body::Body>) -> (StatusCode, String) {
        let resp = app().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn health_and_readiness() {
        let (s, b) = call(
            http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!((s, b.as_str()), (StatusCode::OK, "ok\n"));
        let (s, b) = call(
            http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(b.contains("\"unhealthy\""), "{b}");
    }

    #[tokio::test]
    async fn mutating_endpoints_need_the_token() {
        let (s, _) = call(
            http::Request::post("/reload")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = call(
            http::Request::post("/reload")
                .header("authorization", "Bearer wrong")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, b) = call(
            http::Request::post("/reload")
                .header("authorization", "Bearer t0ken-t0ken-t0ken")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }

    #[tokio::test]
    async fn purge_needs_the_token_and_valid_json() {
        let post = |auth: Option<&str>, body: &'static str| {
            let mut b = http::Request::post("/cache/purge");
            if let Some(a) = auth {
                b = b.header("authorization", a);
            }
            b.body(axum::body::Body::from(body)).unwrap()
        };
        assert_eq!(
            call(post(None, "{\"all\":true}")).await.0,
            StatusCode::UNAUTHORIZED
        );
        let auth = Some("Bearer t0ken-t0ken-t0ken");
        assert_eq!(
            call(post(auth, "{not json")).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(call(post(auth, "{}")).await.0, StatusCode::BAD_REQUEST);
        let (s, b) = call(post(auth, "{\"all\":true}")).await;
        assert_eq!((s, b.as_str()), (StatusCode::OK, "{\"purged\":3}"));
    }

    #[test]
    fn generated_token_file_is_private() {
        let path =
            std::env::temp_dir().join(format!("rampart-admin-{}/admin.token", std::process::id()));
        let (tok, written) = ensure_token(None, Some(&path)).unwrap();
        assert_eq!(tok.len(), 64);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), tok);
        assert_eq!(written.as_deref(), Some(path.as_path()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(ensure_token(Some("given"), None).unwrap().0, "given");
    }
}
