//! `rampart demo`: a built-in sample backend (in-process, hyper) to try the gateway with and
//! to benchmark against.
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `GET /api/items` | JSON list, `Cache-Control: public, max-age=60`, strong `ETag` |
//! | `GET /api/items/{id}` | one item, `max-age=30` |
//! | `GET /api/time` | current time, `Cache-Control: no-store` |
//! | `GET /api/slow?ms=N` | answers after N ms (max 10 000) |
//! | `POST /api/login` | JSON `{"user":..,"password":..}`: 200 for password `rampart`, else 401 |
//! | `GET /static/1k.json`, `/static/64k.json` | fixed JSON objects, `max-age=3600` |
//! | anything else | 404 JSON |

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rampart_core::{Body, body};
use tokio::net::TcpListener;

/// A running demo backend.
pub struct DemoBackend {
    /// Its address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start the backend on `addr` (port 0 for an ephemeral port).
pub async fn start_backend(addr: SocketAddr) -> std::io::Result<DemoBackend> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let one_k = Bytes::from(json_blob(1024));
    let sixty_four_k = Bytes::from(json_blob(64 * 1024));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (a, b) = (one_k.clone(), sixty_four_k.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let (a, b) = (a.clone(), b.clone());
                    async move { Ok::<_, Infallible>(handle(req, a, b).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            });
        }
    });
    Ok(DemoBackend { addr, task })
}

/// A JSON document of exactly `size` bytes.
pub fn json_blob(size: usize) -> String {
    let mut s = String::from("{\"items\":[");
    let mut i = 0;
    while s.len() + 40 < size {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{{\"id\":{i},\"name\":\"item-{i:06}\"}}"));
        i += 1;
    }
    s.push_str("]}");
    while s.len() < size {
        s.push(' ');
    }
    s
}

fn json(status: StatusCode, text: impl Into<Bytes>, cache: &'static str) -> Response<Body> {
    let mut r = Response::new(body::full(text.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, http::HeaderValue::from_static(cache));
    r
}

async fn handle(req: Request<Incoming>, one_k: Bytes, sixty_four_k: Bytes) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    match (req.method().as_str(), path.as_str()) {
        ("GET" | "HEAD", "/api/items") => {
            let mut r = json(
                StatusCode::OK,
                "[{\"id\":1,\"name\":\"anvil\"},{\"id\":2,\"name\":\"rope\"}]\n",
                "public, max-age=60",
            );
            r.headers_mut()
                .insert(header::ETAG, http::HeaderValue::from_static("\"items-v1\""));
            r
        }
        ("GET" | "HEAD", p) if p.starts_with("/api/items/") => {
            let id = &p["/api/items/".len()..];
            if !id.is_empty() && id.len() < 10 && id.bytes().all(|b| b.is_ascii_digit()) {
                json(
                    StatusCode::OK,
                    format!("{{\"id\":{id},\"name\":\"item-{id}\"}}\n"),
                    "public, max-age=30",
                )
            } else {
                json(
                    StatusCode::NOT_FOUND,
                    "{\"error\":\"no such item\"}\n",
                    "no-store",
                )
            }
        }
        ("GET", "/api/time") => {
            let d = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            json(
                StatusCode::OK,
                format!("{{\"unix_ms\":{}}}\n", d.as_millis()),
                "no-store",
            )
        }
        ("GET", "/api/slow") => {
            let ms = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("ms="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1000)
                .min(10_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            json(
                StatusCode::OK,
                format!("{{\"slept_ms\":{ms}}}\n"),
                "no-store",
            )
        }
        ("POST", "/api/login") => {
            let b = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
            if v.get("password").and_then(|p| p.as_str()) == Some("rampart") {
                json(StatusCode::OK, "{\"token\":\"demo-session\"}\n", "no-store")
            } else {
                json(
                    StatusCode::UNAUTHORIZED,
                    "{\"error\":\"bad credentials\"}\n",
                    "no-store",
                )
            }
        }
        ("GET" | "HEAD", "/static/1k.json") => json(StatusCode::OK, one_k, "public, max-age=3600"),
        ("GET" | "HEAD", "/static/64k.json") => {
            json(StatusCode::OK, sixty_four_k, "public, max-age=3600")
        }
        ("GET" | "HEAD", "/") => json(
            StatusCode::OK,
            "{\"service\":\"rampart demo backend\",\"try\":[\"/api/items\",\"/api/time\",\"/api/slow?ms=500\",\"POST /api/login\",\"/static/1k.json\"]}\n",
            "no-store",
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            "{\"error\":\"not found\"}\n",
            "no-store",
        ),
    }
}

/// The demo gateway config: the backend as upstream `demo`, an API route, a login route with a
/// small body limit, and a default route.
pub fn config_toml(backend: SocketAddr, listen: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"[server]
listen = ["{listen}"]

[admin]
listen = "{admin}"

[[upstreams]]
name = "demo"
endpoints = ["http://{backend}"]

[[routes]]
name = "api"
path = "/api"
upstream = "demo"

[[routes]]
name = "login"
path = "/api/login"
methods = ["POST"]
upstream = "demo"
max_request_body = "16KiB"

[[routes]]
name = "default"
path = "/"
upstream = "demo"
"#
    )
}
