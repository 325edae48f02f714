//! [`FaultyUpstream`]: a test origin whose behaviour can be switched while it runs (fail
//! with a status, fail the first N, hang, reset, answer slowly, go down and come back on the
//! same port), for resilience tests.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rampart_core::{Body, body};
use tokio::{net::TcpListener, task::JoinSet};

/// How a [`FaultyUpstream`] answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `200`, body = the upstream's name.
    Ok,
    /// This status, body = the name.
    Status(u16),
    /// The first `n` requests from now get `status`, then `200`.
    FailFirst { n: usize, status: u16 },
    /// Never answer.
    Hang,
    /// Close the connection without an answer.
    Reset,
    /// Answer `200` after this delay.
    Slow(Duration),
}

struct Shared {
    name: String,
    fault: Mutex<Fault>,
    failed: AtomicUsize,
    count: AtomicUsize,
    paths: Mutex<Vec<String>>,
}

/// A switchable origin on `127.0.0.1`.
pub struct FaultyUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Mutex<Option<JoinSet<()>>>,
}

impl FaultyUpstream {
    /// Start answering `200 <name>` on a fresh port.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Self {
            addr,
            shared: Arc::new(Shared {
                name: name.to_string(),
                fault: Mutex::new(Fault::Ok),
                failed: AtomicUsize::new(0),
                count: AtomicUsize::new(0),
                paths: Mutex::new(Vec::new()),
            }),
            tasks: Mutex::new(None),
        };
        up.serve(listener);
        up
    }

    /// `http://127.0.0.1:port`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received (whatever the answer).
    pub fn count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// Request paths received, in order.
    pub fn paths(&self) -> Vec<String> {
        self.shared.paths.lock().unwrap().clone()
    }

    /// Switch behaviour (resets the `FailFirst` counter).
    pub fn set(&self, f: Fault) {
        self.shared.failed.store(0, Ordering::SeqCst);
        *self.shared.fault.lock().unwrap() = f;
    }

    /// Stop listening and drop every open connection (the port stays ours to reuse).
    pub fn stop(&self) {
        if let Some(mut set) = self.tasks.lock().unwrap().take() {
            set.abort_all();
        }
    }

    /// Listen again on the same port.
    pub async fn restart(&self) {
        self.stop();
        let mut last = None;
        for _ in 0..100 {
            match TcpListener::bind(self.addr).await {
                Ok(l) => {
                    self.serve(l);
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cannot rebind {}: {last:?}", self.addr);
    }

    fn serve(&self, listener: TcpListener) {
        let mut set = JoinSet::new();
        let shared = self.shared.clone();
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel();
        set.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = conn_tx.send(stream);
            }
        });
        // Connections run in the same set so `stop` drops them too.
        let handle = tokio::runtime::Handle::current();
        let mut conns = JoinSet::new();
        set.spawn_on(
            async move {
                loop {
                    tokio::select! {
                        s = conn_rx.recv() => {
                            let Some(stream) = s else { return };
                            let shared = shared.clone();
                            conns.spawn(async move { serve_conn(stream, shared).await });
                        }
                        Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    }
                }
            },
            &handle,
        );
        *self.tasks.lock().unwrap() = Some(set);
    }
}

async fn serve_conn(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        async move {
            let path = req.uri().path().to_string();
            let _ = req.into_body().collect().await;
            shared.count.fetch_add(1, Ordering::SeqCst);
            shared.paths.lock().unwrap().push(path);
            let fault = shared.fault.lock().unwrap().clone();
            let status = match fault {
                Fault::Ok => 200,
                Fault::Status(s) => s,
                Fault::FailFirst { n, status } => {
                    if shared.failed.fetch_add(1, Ordering::SeqCst) < n {
                        status
                    } else {
                        200
                    }
                }
                Fault::Hang => {
                    std::future::pending::<()>().await;
                    200
                }
                Fault::Reset => return Err(std::io::Error::other("reset")),
                Fault::Slow(d) => {
                    tokio::time::sleep(d).await;
                    200
                }
            };
            let mut r: Response<Body> = Response::new(body::full(shared.name.clone()));
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
            r.headers_mut()
                .insert("x-upstream", shared.name.parse().unwrap());
            Ok::<_, std::io::Error>(r)
        }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

impl Drop for FaultyUpstream {
    fn drop(&mut self) {
        self.stop();
    }
}
