use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rampart_core::{Body, body};
use tokio::net::TcpListener;

/// What a test upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body_len: u64,
    pub peer: SocketAddr,
}

/// The request as handed to a handler: head plus the counted body length.
pub type Seen = Recorded;

type HandlerFn = Arc<
    dyn Fn(Seen) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// An origin server for tests.
pub struct TestUpstream {
    pub addr: SocketAddr,
    count: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestUpstream {
    /// `http://127.0.0.1:port`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Copies of the recorded requests.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// The last request.
    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("no request recorded")
    }

    /// An upstream answering `200 "ok"` with `content-type: text/plain`.
    pub async fn ok() -> Self {
        Self::start(|_| async { Response::new(body::full("ok")) }).await
    }

    /// An upstream whose answers come from `f`, called after the request body was read
    /// (counted, not kept).
    pub async fn start<F, Fut>(f: F) -> Self
    where
        F: Fn(Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: HandlerFn = Arc::new(move |s| Box::pin(f(s)));
        Self::start_raw(handler).await
    }

    async fn start_raw(handler: HandlerFn) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (c, l) = (count.clone(), log.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let (c, l, h) = (c.clone(), l.clone(), handler.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (c, l, h) = (c.clone(), l.clone(), h.clone());
                        async move {
                            let (parts, mut b) = req.into_parts();
                            let mut n = 0u64;
                            while let Some(frame) = b.frame().await {
                                match frame {
                                    Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                                    Err(_) => break,
                                }
                            }
                            let seen = Recorded {
                                method: parts.method,
                                uri: parts.uri,
                                version: parts.version,
                                headers: parts.headers,
                                body_len: n,
                                peer,
                            };
                            l.lock().unwrap().push(seen.clone());
                            c.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(h(seen).await)
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            count,
            log,
            task,
        }
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response with this status, body and headers.
pub fn response(
    status: u16,
    body_text: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Response<Body> {
    let mut r = Response::new(body::full(body_text.into()));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}
