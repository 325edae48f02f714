//! https:// and h2 over TLS (ALPN) against a local rustls server with a self-signed certificate.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_bench::{BenchArgs, BenchError, execute};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct TlsServer {
    addr: SocketAddr,
    h1: Arc<AtomicU64>,
    h2: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsServer {
    fn start(alpn: &[&[u8]]) -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = CertificateDer::from(ck.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (h1, h2) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (c1, c2) = (h1.clone(), h2.clone());
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                loop {
                    let (tcp, _) = tokio::select! {
                        r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                        _ = &mut stopped => break,
                    };
                    let (acceptor, c1, c2) = (acceptor.clone(), c1.clone(), c2.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let svc = hyper::service::service_fn(
                            move |req: Request<hyper::body::Incoming>| {
                                let c = if req.version() == Version::HTTP_2 {
                                    &c2
                                } else {
                                    &c1
                                };
                                c.fetch_add(1, Ordering::SeqCst);
                                async {
                                    Ok::<_, Infallible>(Response::new(Full::new(
                                        Bytes::from_static(b"tls"),
                                    )))
                                }
                            },
                        );
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), svc)
                            .await;
                    });
                }
            });
        });
        Self {
            addr,
            h1,
            h2,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/", self.addr.port())
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn args(list: &[&str]) -> BenchArgs {
    let mut v = vec!["bench"];
    v.extend_from_slice(list);
    BenchArgs::try_parse_from(v).unwrap()
}

#[test]
fn self_signed_certificate_is_refused_without_insecure() {
    let srv = TlsServer::start(&[b"http/1.1"]);
    let e = execute(&args(&["-n", "10", "-c", "1", &srv.url()])).unwrap_err();
    assert!(matches!(e, BenchError::Unreachable { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("certificate") && msg.contains("--insecure"),
        "{msg}"
    );
}

#[test]
fn https_http1_with_insecure() {
    let srv = TlsServer::start(&[b"h2", b"http/1.1"]);
    let r = execute(&args(&["-n", "300", "-c", "3", "-k", &srv.url()])).unwrap();
    assert_eq!(r.responses, 300);
    assert_eq!(r.status_codes.get("200"), Some(&300));
    assert_eq!(
        srv.h1.load(Ordering::SeqCst),
        300,
        "ALPN http/1.1 was offered, so h1 is used"
    );
    assert_eq!(srv.h2.load(Ordering::SeqCst), 0);
}

#[test]
fn h2_over_tls_via_alpn() {
    let srv = TlsServer::start(&[b"h2", b"http/1.1"]);
    let r = execute(&args(&[
        "-n",
        "300",
        "-c",
        "2",
        "--http2",
        "--streams",
        "3",
        "--insecure",
        &srv.url(),
    ]))
    .unwrap();
    assert_eq!(r.responses, 300);
    assert_eq!(srv.h2.load(Ordering::SeqCst), 300);
    assert_eq!(srv.h1.load(Ordering::SeqCst), 0);
}

#[test]
fn http2_against_a_server_without_h2_is_a_clear_error() {
    let srv = TlsServer::start(&[b"http/1.1"]);
    let e = execute(&args(&["-n", "10", "--http2", "-k", &srv.url()])).unwrap_err();
    assert!(
        e.to_string()
            .contains("does not offer HTTP/2 (h2) via ALPN"),
        "{e}"
    );
}
