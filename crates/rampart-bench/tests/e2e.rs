//! End-to-end: the engine against a counting hyper server on 127.0.0.1:0.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_bench::{BenchArgs, BenchError, execute, run};

const BODY: &[u8] = b"hello world";

/// A counting server: `/` 200 with a body, `/404` 404, `/close` 200 + `Connection: close`,
/// `/slow` 200 after 3 s.
struct TestServer {
    addr: SocketAddr,
    total: Arc<AtomicU64>,
    per_path: Arc<Mutex<HashMap<String, u64>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let total = Arc::new(AtomicU64::new(0));
        let per_path = Arc::new(Mutex::new(HashMap::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (t, p) = (total.clone(), per_path.clone());
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                loop {
                    let (tcp, _) = tokio::select! {
                        r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                        _ = &mut stopped => break,
                    };
                    let _ = tcp.set_nodelay(true);
                    let (t, p) = (t.clone(), p.clone());
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(
                            move |req: Request<hyper::body::Incoming>| {
                                t.fetch_add(1, Ordering::SeqCst);
                                let path = req.uri().path().to_owned();
                                *p.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                                async move {
                                    if path == "/slow" {
                                        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                                    }
                                    let mut resp =
                                        Response::new(Full::new(Bytes::from_static(BODY)));
                                    resp.headers_mut().insert("x-test", "1".parse().unwrap());
                                    match path.as_str() {
                                        "/404" => *resp.status_mut() = hyper::StatusCode::NOT_FOUND,
                                        "/close" => {
                                            resp.headers_mut()
                                                .insert("connection", "close".parse().unwrap());
                                        }
                                        _ => {}
                                    }
                                    Ok::<_, Infallible>(resp)
                                }
                            },
                        );
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    });
                }
            });
        });
        Self {
            addr,
            total,
            per_path,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn count(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    fn path_count(&self, path: &str) -> u64 {
        self.per_path
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for TestServer {
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

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-bench-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn closed_model_fixed_count_matches_server_count() {
    let srv = TestServer::start();
    let r = execute(&args(&["-n", "2000", "-c", "8", "-t", "2", &srv.url("/")])).unwrap();
    assert_eq!(srv.count(), 2000, "server saw exactly -n requests");
    assert_eq!(r.responses, 2000);
    assert_eq!(r.requests, 2000);
    assert_eq!(r.status_codes.get("200"), Some(&2000));
    assert_eq!(r.errors.total(), 0, "{:?}", r.error_samples);
    assert_eq!(r.body_bytes, 2000 * BODY.len() as u64);
    assert_eq!(r.timeline.iter().map(|t| t.responses).sum::<u64>(), 2000);
    assert!(
        r.latency.p50_us > 0
            && r.latency.p50_us <= r.latency.p99_us
            && r.latency.p99_us <= r.latency.max_us
    );
    assert_eq!(r.settings.threads, 2);
}

#[test]
fn http2_prior_knowledge_with_streams() {
    let srv = TestServer::start();
    let r = execute(&args(&[
        "-n",
        "1000",
        "-c",
        "2",
        "-t",
        "1",
        "--http2",
        "--streams",
        "4",
        &srv.url("/"),
    ]))
    .unwrap();
    assert_eq!(srv.count(), 1000);
    assert_eq!(r.responses, 1000);
    assert_eq!(r.status_codes.get("200"), Some(&1000));
    assert_eq!(r.settings.protocol, "HTTP/2");
    assert_eq!(r.errors.total(), 0, "{:?}", r.error_samples);
}

#[test]
fn connection_close_responses_reconnect_without_losing_requests() {
    let srv = TestServer::start();
    let r = execute(&args(&[
        "-n",
        "300",
        "-c",
        "4",
        "-t",
        "2",
        &srv.url("/close"),
    ]))
    .unwrap();
    assert_eq!(srv.count(), 300);
    assert_eq!(r.responses, 300);
    assert_eq!(r.errors.total(), 0, "{:?}", r.error_samples);
}

#[test]
fn scenario_weights_and_failed_assertions_are_counted() {
    let srv = TestServer::start();
    let scn = tmp("scenario.toml");
    std::fs::write(
        &scn,
        format!(
            r#"
[[request]]
url = "{ok}"
weight = 3
expect = {{ status = 200, headers = ["x-test"] }}

[[request]]
url = "{missing}"
method = "POST"
body = "payload"
expect = {{ status = [200] }}
"#,
            ok = srv.url("/"),
            missing = srv.url("/404")
        ),
    )
    .unwrap();
    let r = execute(&args(&[
        "-n",
        "1200",
        "-c",
        "4",
        "--scenario",
        scn.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(srv.count(), 1200);
    let (ok, missing) = (srv.path_count("/"), srv.path_count("/404"));
    assert_eq!(ok + missing, 1200);
    assert!(
        missing > 150 && missing < 450,
        "about a quarter should be /404, got {missing}"
    );
    assert_eq!(r.status_codes.get("404"), Some(&missing));
    assert_eq!(r.status_codes.get("200"), Some(&ok));
    assert_eq!(
        r.errors.assertion, missing,
        "every 404 fails its status assertion"
    );
    assert!(r.error_samples["assertion"].contains("status 404"));
    assert_eq!(r.responses, 1200);
}

#[test]
fn warmup_requests_are_sent_but_excluded() {
    let srv = TestServer::start();
    let r = execute(&args(&[
        "-n",
        "500",
        "-c",
        "2",
        "--warmup",
        "300ms",
        &srv.url("/"),
    ]))
    .unwrap();
    assert_eq!(r.responses, 500);
    assert!(r.warmup_requests > 0);
    assert_eq!(srv.count(), 500 + r.warmup_requests);
}

#[test]
fn open_model_keeps_the_rate_within_one_percent() {
    let srv = TestServer::start();
    let r = execute(&args(&[
        "--rate",
        "1000",
        "-c",
        "4",
        "-t",
        "2",
        "-d",
        "10s",
        &srv.url("/"),
    ]))
    .unwrap();
    let err = (r.rps - 1000.0).abs() / 1000.0;
    assert!(
        err < 0.01,
        "achieved {} req/s against a 1000 req/s target",
        r.rps
    );
    // A -d run abandons the few requests in flight at its end (at most one per connection).
    assert!(
        srv.count() >= r.responses && srv.count() - r.responses <= 4,
        "{} vs {}",
        srv.count(),
        r.responses
    );
    assert!((9_900..=10_000).contains(&r.responses), "{}", r.responses);
    assert_eq!(r.settings.model, "open");
}

#[test]
fn open_model_with_count_sends_exactly_n() {
    let srv = TestServer::start();
    let r = execute(&args(&[
        "--rate",
        "2000",
        "-c",
        "3",
        "-n",
        "301",
        &srv.url("/"),
    ]))
    .unwrap();
    assert_eq!(r.responses, 301);
    assert_eq!(srv.count(), 301);
}

#[test]
fn run_writes_reports_and_fails_on_regression() {
    let srv = TestServer::start();
    let json = tmp("result.json");
    let html = tmp("report.html");
    let a = args(&[
        "-n",
        "300",
        "-c",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        &srv.url("/"),
    ]);
    assert_eq!(run(a).unwrap(), std::process::ExitCode::SUCCESS);
    let result: rampart_bench::BenchResult =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(result.responses, 300);
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg").count(), 2);

    // Same run against a baseline ten times faster: a regression, exit code 1.
    let mut fast = result.clone();
    fast.rps *= 10.0;
    let base = tmp("baseline.json");
    std::fs::write(&base, serde_json::to_string(&fast).unwrap()).unwrap();
    let a = args(&[
        "-n",
        "300",
        "-c",
        "2",
        "--baseline",
        base.to_str().unwrap(),
        &srv.url("/"),
    ]);
    assert_eq!(
        run(a).unwrap(),
        std::process::ExitCode::from(rampart_bench::EXIT_REGRESSION)
    );

    // Against a baseline ten times slower: fine.
    let mut slow = result;
    slow.rps /= 10.0;
    slow.latency.p99_us *= 1000;
    std::fs::write(&base, serde_json::to_string(&slow).unwrap()).unwrap();
    let a = args(&[
        "-n",
        "300",
        "-c",
        "2",
        "--baseline",
        base.to_str().unwrap(),
        "--max-regression",
        "5%",
        &srv.url("/"),
    ]);
    assert_eq!(run(a).unwrap(), std::process::ExitCode::SUCCESS);
}

#[test]
fn unreachable_target_and_bad_schemes_are_clear_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = execute(&args(&["-n", "10", &format!("http://127.0.0.1:{port}/")])).unwrap_err();
    assert!(matches!(e, BenchError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string().contains("cannot connect to http://127.0.0.1"),
        "{e}"
    );
    let e = execute(&args(&["-n", "10", "ftp://127.0.0.1/"])).unwrap_err();
    assert!(e.to_string().contains("only http:// and https://"), "{e}");
    let e = run(args(&[
        "-n",
        "10",
        "--baseline",
        "/nonexistent/base.json",
        "http://127.0.0.1:1/",
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/base.json"), "{e}");
}

#[test]
fn duration_run_ends_on_time_despite_stalled_requests() {
    let srv = TestServer::start();
    let r = execute(&args(&[
        "-d",
        "500ms",
        "-c",
        "2",
        "-t",
        "1",
        &srv.url("/slow"),
    ]))
    .unwrap();
    assert_eq!(
        srv.count(),
        2,
        "one request per connection, each still waiting at the end"
    );
    assert_eq!(r.responses, 0);
    assert_eq!(
        r.errors.total(),
        0,
        "abandoned in-flight requests are not errors"
    );
    assert!(
        r.elapsed_s <= 0.5 + 1e-6,
        "elapsed is capped at -d: {}",
        r.elapsed_s
    );
}

#[test]
fn slow_responses_count_as_timeouts() {
    let srv = TestServer::start();
    let r = execute(&args(&[
        "-n",
        "4",
        "-c",
        "2",
        "-t",
        "1",
        "--timeout",
        "200ms",
        &srv.url("/slow"),
    ]))
    .unwrap();
    assert_eq!(r.errors.timeout, 4, "{:?}", r.error_samples);
    assert_eq!(r.requests, 4);
    assert_eq!(r.responses, 0);
    assert_eq!(srv.count(), 4);
    assert!(
        r.error_samples["timeout"].contains("200ms"),
        "{:?}",
        r.error_samples
    );
}

/// A raw TCP server for the built-in HTTP/1.1 client: answers every request head it reads
/// with `response`, then closes the connection if `close` (else waits for the next request).
/// Counts the requests it read.
struct RawServer {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl RawServer {
    fn start(response: &'static [u8], close: bool) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let count = requests.clone();
        // Detached: it lives until the test process ends.
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { continue };
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = tcp.read(&mut chunk) else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..i + 4);
                            count.fetch_add(1, Ordering::SeqCst);
                            if tcp.write_all(response).is_err() {
                                return;
                            }
                            if close {
                                let _ = tcp.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

#[test]
fn malformed_and_truncated_responses_are_counted_by_kind() {
    // (response, close after it, expected error kind, message fragment)
    let cases: &[(&[u8], bool, &str, &str)] = &[
        (
            b"NOT HTTP AT ALL\r\n\r\n",
            false,
            "other",
            "invalid response head",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
            false,
            "other",
            "content-length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
            "other",
            "chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
            true,
            "reset",
            "middle of the response body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            true,
            "reset",
            "middle of the response body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Le",
            true,
            "reset",
            "before the response head",
        ),
        // The very first response never comes: the server refuses us.
        (b"", true, "reset", "before the first response"),
    ];
    for &(response, close, kind, fragment) in cases {
        let srv = RawServer::start(response, close);
        let r = execute(&args(&[
            "-n",
            "5",
            "-c",
            "1",
            "-t",
            "1",
            "--timeout",
            "5s",
            &srv.url(),
        ]))
        .unwrap();
        let what = String::from_utf8_lossy(response);
        assert_eq!(r.responses, 0, "{what}");
        assert_eq!(r.requests, 5, "{what}: {:?}", r.error_samples);
        let counted = match kind {
            "other" => r.errors.other,
            _ => r.errors.reset,
        };
        assert_eq!(counted, 5, "{what}: {:?}", r.error_samples);
        assert!(
            r.error_samples[kind].contains(fragment),
            "{what}: {:?}",
            r.error_samples
        );
        assert_eq!(srv.requests.load(Ordering::SeqCst), 5, "{what}");
    }
}

#[test]
fn chunked_interim_and_unannounced_closes_are_handled() {
    // Chunked with extensions and trailers after an interim 100, on a keep-alive connection.
    let body =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        4;x=y\r\nabcd\r\n6\r\nefghij\r\n0\r\nX-Trailer: t\r\n\r\n";
    let srv = RawServer::start(body, false);
    let r = execute(&args(&["-n", "50", "-c", "2", "-t", "1", &srv.url()])).unwrap();
    assert_eq!(r.errors.total(), 0, "{:?}", r.error_samples);
    assert_eq!(r.responses, 50);
    assert_eq!(r.body_bytes, 50 * 10);
    assert_eq!(srv.requests.load(Ordering::SeqCst), 50);

    // A server that closes every connection after one response without saying so: the next
    // request on it finds it closed and is resent on a new connection, not counted as an error.
    let srv = RawServer::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true);
    let r = execute(&args(&["-n", "40", "-c", "2", "-t", "1", &srv.url()])).unwrap();
    assert_eq!(r.errors.total(), 0, "{:?}", r.error_samples);
    assert_eq!(r.responses, 40);
    assert_eq!(r.body_bytes, 80);

    // Close-delimited body (no length): counted up to the close.
    let srv = RawServer::start(b"HTTP/1.1 200 OK\r\nServer: raw\r\n\r\n0123456789", true);
    let r = execute(&args(&["-n", "10", "-c", "1", "-t", "1", &srv.url()])).unwrap();
    assert_eq!(r.errors.total(), 0, "{:?}", r.error_samples);
    assert_eq!((r.responses, r.body_bytes), (10, 100));
}

#[test]
fn hyper_h1_client_gives_the_same_counts() {
    let srv = TestServer::start();
    let r = execute(&args(&[
        "-n",
        "500",
        "-c",
        "4",
        "-t",
        "2",
        "--hyper-h1",
        &srv.url("/"),
    ]))
    .unwrap();
    assert_eq!(srv.count(), 500);
    assert_eq!(r.responses, 500);
    assert_eq!(r.body_bytes, 500 * BODY.len() as u64);
    assert_eq!(r.settings.client, "hyper");
    assert_eq!(r.errors.total(), 0, "{:?}", r.error_samples);
    let r = execute(&args(&["-n", "10", "-c", "1", &srv.url("/")])).unwrap();
    assert_eq!(r.settings.client, "built-in");
}
