//! The gateway core: forwarding, limits, smuggling, TLS, admin, reload, layer order.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use rampart_core::body;
use rampart_testkit::{
    TestProxy, TestUpstream,
    client::{self, raw, raw_status, request, send},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{admin_get, admin_purge, cfg, h1_client, proxy_for, wait_until};

#[tokio::test]
async fn proxies_and_sets_forwarding_headers() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(&up, "").await;
    let resp = send(
        px.addr(),
        request(
            "GET",
            "/hello?x=1",
            &[("x-forwarded-for", "6.6.6.6"), ("x-request-id", "abc-123")],
            "",
        ),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), "ok");
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    assert!(resp.headers()["via"].to_str().unwrap().ends_with("rampart"));
    let seen = up.last();
    assert_eq!(seen.uri, "/hello?x=1");
    // untrusted peer: its X-Forwarded-For is replaced, not extended
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "test.local");
    assert_eq!(seen.headers["x-request-id"], "abc-123");
    assert_eq!(seen.headers["via"], "1.1 rampart");
    assert!(
        seen.headers["forwarded"]
            .to_str()
            .unwrap()
            .starts_with("for=127.0.0.1")
    );
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn generated_request_id_when_missing_or_malformed() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(&up, "").await;
    let resp = send(
        px.addr(),
        request("GET", "/", &[("x-request-id", "bad id; drop table")], ""),
    )
    .await;
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    assert_eq!(up.last().headers["x-request-id"], id.as_str());
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let up = TestUpstream::start(|_| async {
        rampart_testkit_response(&[
            ("connection", "x-internal"),
            ("x-internal", "secret"),
            ("keep-alive", "timeout=5"),
            ("x-end", "1"),
        ])
    })
    .await;
    let px = proxy_for(&up, "").await;
    let resp = send(
        px.addr(),
        request(
            "GET",
            "/",
            &[
                ("connection", "x-private, keep-alive"),
                ("x-private", "1"),
                ("keep-alive", "300"),
                ("te", "trailers"),
                ("proxy-connection", "keep-alive"),
                ("x-kept", "yes"),
            ],
            "",
        ),
    )
    .await;
    let seen = up.last();
    for h in [
        "x-private",
        "keep-alive",
        "te",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(!seen.headers.contains_key(h), "{h} reached the upstream");
    }
    assert_eq!(seen.headers["x-kept"], "yes");
    assert!(!resp.headers().contains_key("x-internal"));
    assert!(!resp.headers().contains_key("keep-alive"));
    assert_eq!(resp.headers()["x-end"], "1");
}

fn rampart_testkit_response(headers: &[(&str, &str)]) -> http::Response<rampart_core::Body> {
    let mut r = http::Response::new(body::full("ok"));
    for (k, v) in headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

#[tokio::test]
async fn xff_from_trusted_proxy_is_extended_and_used_for_client_ip() {
    let up = TestUpstream::ok().await;
    let log = std::env::temp_dir().join(format!("rampart-e2e-xff-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let toml = format!(
        "{}\n[trusted_proxies]\ncidrs = [\"127.0.0.1/32\"]\n[log]\naccess_log = \"{}\"\n",
        cfg("", ""),
        log.display()
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    send(
        px.addr(),
        request(
            "GET",
            "/a",
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")],
            "",
        ),
    )
    .await;
    assert_eq!(
        up.last().headers["x-forwarded-for"],
        "6.6.6.6, 198.51.100.7, 127.0.0.1"
    );
    assert!(px.shutdown().await);
    let line = std::fs::read_to_string(&log).unwrap();
    let rec: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    // right-to-left walk: 127.0.0.1 trusted, 198.51.100.7 is the client; 6.6.6.6 is ignored
    assert_eq!(rec["client_ip"], "198.51.100.7");
    assert_eq!(rec["route"], "all");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["path"], "/a");
    assert_eq!(rec["bytes_out"], 2);
    assert!(rec["upstream"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(rec["cache"], "miss", "the cache is on by default");
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn smuggling_shaped_requests_are_rejected() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(&up, "").await;
    let wait = Duration::from_secs(3);
    let cl_te = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(raw_status(&raw(px.addr(), cl_te, wait).await), 400);
    let dup_cl =
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    assert_eq!(raw_status(&raw(px.addr(), dup_cl, wait).await), 400);
    let te_http10 = b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(raw_status(&raw(px.addr(), te_http10, wait).await), 400);
    let bad_te =
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n";
    assert_eq!(raw_status(&raw(px.addr(), bad_te, wait).await), 400);
    assert_eq!(
        up.count(),
        0,
        "nothing smuggling-shaped may reach the upstream"
    );
}

#[tokio::test]
async fn each_limit_has_its_status() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(
        &up,
        "max_uri_length = \"1KiB\"\nmax_headers = 10\nmax_header_bytes = \"8KiB\"\nmax_request_body = \"1KiB\"",
    )
    .await;
    let long = format!("/{}", "a".repeat(2000));
    assert_eq!(
        send(px.addr(), request("GET", &long, &[], ""))
            .await
            .status(),
        414
    );
    let many: Vec<(String, String)> = (0..20).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many_ref: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let wait = Duration::from_secs(3);
    let mut head = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for (k, v) in &many_ref {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    assert_eq!(
        raw_status(&raw(px.addr(), head.as_bytes(), wait).await),
        431
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    assert_eq!(raw_status(&raw(px.addr(), big.as_bytes(), wait).await), 431);
    // declared too large: refused before reading
    let body = "x".repeat(2048);
    assert_eq!(
        send(px.addr(), request("POST", "/", &[], &body))
            .await
            .status(),
        413
    );
    // streamed (chunked, no length) and crossing the limit midway
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = (0..8)
        .map(|_| Ok(http_body::Frame::data(Bytes::from(vec![b'y'; 512]))))
        .collect();
    let streamed = http::Request::post("/")
        .header("host", "x")
        .body(StreamBody::new(futures_util::stream::iter(chunks)))
        .unwrap();
    let resp = send_streaming(px.addr(), streamed).await;
    assert_eq!(resp, 413);
    // a small body passes
    assert_eq!(
        send(px.addr(), request("POST", "/", &[], "small"))
            .await
            .status(),
        200
    );
    assert_eq!(up.last().body_len, 5);
}

async fn send_streaming<B>(addr: SocketAddr, req: http::Request<B>) -> u16
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut tx = h1_client(addr).await;
    let resp = tokio::time::timeout(client::LIMIT, tx.send_request(req))
        .await
        .unwrap()
        .unwrap();
    resp.status().as_u16()
}

#[tokio::test]
async fn each_connection_thread_keeps_its_own_upstream_connections() {
    // Each request comes on a new client connection; connections go round robin to the
    // connection threads. With two threads, each opens and then reuses its own upstream
    // connection (a shared pool would reuse one for all of these sequential requests).
    for (workers, want) in [(2, 2), (1, 1)] {
        let up = TestUpstream::ok().await;
        let px = proxy_for(&up, &format!("workers = {workers}")).await;
        for _ in 0..6 {
            assert_eq!(client::get(px.addr(), "/").await.status(), 200);
        }
        let peers: Vec<SocketAddr> = up.requests().iter().map(|r| r.peer).collect();
        let mut distinct = peers.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), want, "workers = {workers}: {peers:?}");
        if workers == 2 {
            // Alternating threads, alternating upstream connections.
            assert!(peers.windows(2).all(|w| w[0] != w[1]), "{peers:?}");
        }
    }
}

#[tokio::test]
async fn at_the_connection_limit_a_thread_borrows_another_threads_idle_connection() {
    // One connection per endpoint allowed: the second thread cannot open its own, so it
    // reuses the first thread's idle one instead of waiting out pool_wait (503).
    let up = TestUpstream::ok().await;
    let toml = cfg(
        "workers = 2",
        "max_connections_per_endpoint = 1\npool_wait = \"100ms\"",
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    for _ in 0..4 {
        assert_eq!(client::get(px.addr(), "/").await.status(), 200);
    }
    let mut peers: Vec<SocketAddr> = up.requests().iter().map(|r| r.peer).collect();
    peers.dedup();
    assert_eq!(peers.len(), 1, "{peers:?}");
}

#[tokio::test]
async fn no_route_is_404_with_request_id() {
    let up = TestUpstream::ok().await;
    let toml = "[[upstreams]]\nname = \"app\"\nendpoints = [\"{upstream}\"]\n[[routes]]\nname = \"api\"\npath = \"/api\"\nupstream = \"app\"\n";
    let px = TestProxy::start(toml, &up.url()).await;
    let resp = client::get(px.addr(), "/other").await;
    assert_eq!(resp.status(), 404);
    let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(v["status"], 404);
    assert_eq!(
        v["request_id"],
        resp.headers()["x-request-id"].to_str().unwrap()
    );
    assert_eq!(client::get(px.addr(), "/api/x").await.status(), 200);
    assert_eq!(client::get(px.addr(), "/apix").await.status(), 404);
}

#[tokio::test]
async fn upstream_failures_map_to_502_and_504() {
    // connect refused -> 502
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let px = TestProxy::start(&cfg("", ""), &dead_url).await;
    let resp = client::get(px.addr(), "/").await;
    assert_eq!(resp.status(), 502);
    assert!(
        !String::from_utf8_lossy(resp.body()).contains("refused"),
        "no internal error text in bodies"
    );
    // slow upstream beyond response_timeout -> 504
    let slow = TestUpstream::start(|_| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        http::Response::new(body::full("late"))
    })
    .await;
    let px = TestProxy::start(&cfg("", "response_timeout = \"200ms\""), &slow.url()).await;
    assert_eq!(client::get(px.addr(), "/").await.status(), 504);
    // whole-request deadline -> 504
    let px = TestProxy::start(&cfg("request_timeout = \"200ms\"", ""), &slow.url()).await;
    assert_eq!(client::get(px.addr(), "/").await.status(), 504);
}

#[tokio::test]
async fn overload_is_answered_503_at_once() {
    let release = Arc::new(tokio::sync::Notify::new());
    let r2 = release.clone();
    let up = TestUpstream::start(move |_| {
        let r = r2.clone();
        async move {
            r.notified().await;
            http::Response::new(body::full("done"))
        }
    })
    .await;
    let px = proxy_for(&up, "max_concurrent_requests = 1").await;
    let addr = px.addr();
    let first = tokio::spawn(async move { client::get(addr, "/slow").await.status() });
    // wait until the first request reached the upstream
    wait_until(|| up.count() == 1).await;
    let second = client::get(addr, "/").await;
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    release.notify_one();
    assert_eq!(first.await.unwrap(), 200);
}

#[tokio::test]
async fn excess_connections_are_refused_not_queued() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(&up, "max_connections = 1").await;
    let mut first = tokio::net::TcpStream::connect(px.addr()).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    // the second connection is accepted by the kernel and closed at once by the gateway
    let reply = raw(
        px.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        reply, "",
        "second connection must be closed without an answer"
    );
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(
        &up,
        "header_read_timeout = \"300ms\"\nkeepalive_timeout = \"30s\"",
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(px.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap(); // head never finished
    let start = std::time::Instant::now();
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(r.is_ok(), "connection was not closed");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn idle_keepalive_outlives_the_header_timeout_then_closes() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(
        &up,
        "header_read_timeout = \"200ms\"\nkeepalive_timeout = \"800ms\"",
    )
    .await;
    let stream = tokio::net::TcpStream::connect(px.addr()).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn_task = tokio::spawn(conn);
    let r = tx.send_request(request("GET", "/", &[], "")).await.unwrap();
    r.into_body().collect().await.unwrap();
    // idle for longer than the header timeout: still usable
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = tx.send_request(request("GET", "/", &[], "")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.into_body().collect().await.unwrap();
    // idle past the keep-alive timeout: closed by the gateway
    let closed = tokio::time::timeout(Duration::from_secs(5), conn_task).await;
    assert!(closed.is_ok(), "idle connection was not closed");
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let up = TestUpstream::start(|_| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        http::Response::new(body::full("finished"))
    })
    .await;
    let px = proxy_for(&up, "drain_timeout = \"10s\"").await;
    let addr = px.addr();
    let inflight = tokio::spawn(async move { client::get(addr, "/").await });
    wait_until(|| up.count() == 1).await;
    let drained = px.shutdown().await;
    let resp = inflight.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), "finished");
    assert!(drained);
    // no longer accepting
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn drain_timeout_cuts_off_stragglers() {
    let up = TestUpstream::start(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        http::Response::new(body::full("never"))
    })
    .await;
    let px = proxy_for(&up, "drain_timeout = \"300ms\"").await;
    let addr = px.addr();
    let _inflight = tokio::spawn(async move {
        raw(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(10),
        )
        .await
    });
    wait_until(|| up.count() == 1).await;
    let start = std::time::Instant::now();
    assert!(!px.shutdown().await, "drain should report the timeout");
    assert!(start.elapsed() < Duration::from_secs(5));
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_in_bounded_memory() {
    const TOTAL: u64 = 256 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    // Upstream answers a download of TOTAL bytes, generated chunk by chunk.
    let up = TestUpstream::start(|seen| async move {
        if seen.uri.path() == "/download" {
            let chunk = Bytes::from(vec![b'd'; CHUNK]);
            let s = futures_util::stream::iter(
                (0..TOTAL / CHUNK as u64)
                    .map(move |_| Ok::<_, std::io::Error>(http_body::Frame::data(chunk.clone()))),
            );
            http::Response::new(body::boxed(StreamBody::new(s)))
        } else {
            http::Response::new(body::full(seen.body_len.to_string()))
        }
    })
    .await;
    let px = proxy_for(&up, "max_request_body = \"1GiB\"").await;
    let base = rss_kib();
    let peak = Arc::new(AtomicU64::new(base));
    let done = Arc::new(AtomicBool::new(false));
    let (p, d) = (peak.clone(), done.clone());
    let sampler = tokio::spawn(async move {
        while !d.load(Ordering::Relaxed) {
            p.fetch_max(rss_kib(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // upload
    let chunk = Bytes::from(vec![b'u'; CHUNK]);
    let s = futures_util::stream::iter(
        (0..TOTAL / CHUNK as u64)
            .map(move |_| Ok::<_, std::io::Error>(http_body::Frame::data(chunk.clone()))),
    );
    let req = http::Request::post("/upload")
        .header("host", "x")
        .body(StreamBody::new(s))
        .unwrap();
    let mut tx = h1_client(px.addr()).await;
    let resp = tokio::time::timeout(Duration::from_secs(120), tx.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(got, TOTAL.to_string());
    // download
    let mut tx = h1_client(px.addr()).await;
    let get = http::Request::get("/download")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut resp = tokio::time::timeout(Duration::from_secs(120), tx.send_request(get))
        .await
        .unwrap()
        .unwrap();
    let mut n = 0u64;
    while let Some(f) = resp.body_mut().frame().await {
        n += f.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(n, TOTAL);
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let grew_mib = (peak.load(Ordering::Relaxed).saturating_sub(base)) / 1024;
    assert!(
        grew_mib < 64,
        "RSS grew by {grew_mib} MiB while moving 2 x 256 MiB"
    );
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    // An upstream that accepts any upgrade and echoes bytes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let svc = hyper::service::service_fn(
            |mut req: http::Request<hyper::body::Incoming>| async move {
                let on = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let up = on.await.unwrap();
                    let mut io = hyper_util::rt::TokioIo::new(up);
                    let mut buf = [0u8; 5];
                    io.read_exact(&mut buf).await.unwrap();
                    io.write_all(&buf).await.unwrap();
                });
                let mut r = http::Response::new(Full::new(Bytes::new()));
                *r.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
                r.headers_mut()
                    .insert("upgrade", "websocket".parse().unwrap());
                r.headers_mut()
                    .insert("connection", "upgrade".parse().unwrap());
                Ok::<_, std::convert::Infallible>(r)
            },
        );
        hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
            .with_upgrades()
            .await
            .unwrap();
    });
    let px = TestProxy::start(&cfg("", ""), &format!("http://{up_addr}")).await;
    let mut s = tokio::net::TcpStream::connect(px.addr()).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: websocket"));
    s.write_all(b"hello").await.unwrap();
    let mut echo = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"hello");
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(&up, "").await;
    let req = http::Request::get(format!("http://{}/h2", px.addr()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client::send_h2(px.addr(), req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    // upstream still speaks HTTP/1.1 and got a Host header
    let seen = up.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.headers["host"], px.addr().to_string().as_str());
    assert_eq!(seen.headers["via"], "2 rampart");
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(&up, "").await;
    for _ in 0..20 {
        assert_eq!(client::get(px.addr(), "/").await.status(), 200);
    }
    let peers: std::collections::HashSet<_> = up.requests().iter().map(|r| r.peer).collect();
    assert_eq!(up.count(), 20);
    assert!(
        peers.len() <= 2,
        "expected pooled reuse, saw {} connections",
        peers.len()
    );
}

fn write_cert(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, rcgen::CertifiedKey) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (cert, key, ck)
}

#[tokio::test]
async fn tls_with_sni_selects_the_certificate_and_negotiates_h2() {
    let dir = std::env::temp_dir().join(format!("rampart-e2e-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, ka, a) = write_cert(&dir, "a.test");
    let (cb, kb, b) = write_cert(&dir, "b.test");
    let up = TestUpstream::ok().await;
    let toml = format!(
        "[server]\nlisten = []\n[server.tls]\nlisten = [\"127.0.0.1:0\"]\n[[server.tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n[[server.tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n\n[[upstreams]]\nname = \"app\"\nendpoints = [\"{{upstream}}\"]\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n",
        ca.display(),
        ka.display(),
        cb.display(),
        kb.display()
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    let addr = px.app.tls_addrs()[0];
    for (name, ck) in [("a.test", &a), ("b.test", &b)] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ck.cert.der().clone()).unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        // verification only succeeds when the gateway picked this name's certificate
        let tls = connector
            .connect(name.to_string().try_into().unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut tx, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let resp = tx
            .send_request(
                http::Request::get(format!("https://{name}/"))
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(up.last().headers["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn admin_endpoints_report_health_metrics_config_and_stats() {
    let up = TestUpstream::ok().await;
    let toml = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"super-secret-admin-token\"\n",
        cfg("", "")
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    for _ in 0..3 {
        client::get(px.addr(), "/").await;
    }
    client::get(px.addr(), &format!("/{}", "x".repeat(20000))).await; // 414, counted too
    assert_eq!(admin_get(&px, "/healthz").await, (200, "ok\n".into()));
    let (s, ready) = admin_get(&px, "/readyz").await;
    assert_eq!(s, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["components"][1]["name"], "upstream:app");
    assert_eq!(ready["components"][1]["status"], "healthy");
    let (_, metrics) = admin_get(&px, "/metrics").await;
    for needle in [
        "rampart_http_requests_total{route=\"all\",method=\"GET\",status_class=\"2xx\"} 3",
        "rampart_http_requests_total{route=\"all\",method=\"GET\",status_class=\"4xx\"} 1",
        "rampart_http_request_duration_seconds_count{route=\"all\"} 4",
        "rampart_upstream_requests_total{upstream=\"app\"",
        "rampart_upstream_request_duration_seconds_count{upstream=\"app\"} 3",
        "rampart_upstream_pool_connections{upstream=\"app\",state=\"idle\"}",
        "rampart_http_connections{state=\"active\"}",
        "rampart_build_info{version=",
    ] {
        assert!(metrics.contains(needle), "missing {needle}\n{metrics}");
    }
    let (_, config) = admin_get(&px, "/config").await;
    assert!(
        config.contains("[redacted]") && !config.contains("super-secret-admin-token"),
        "{config}"
    );
    let (_, stats) = admin_get(&px, "/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["routes"]["all"]["requests"], 4);
    assert_eq!(stats["routes"]["all"]["status"]["2xx"], 3);
    assert!(
        stats["routes"]["all"]["latency_ms"]["p99"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // mutating endpoints need the token
    let r = send(px.admin(), request("POST", "/reload", &[], "")).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn readiness_turns_unhealthy_when_upstream_is_down() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let px = TestProxy::start(&cfg("", ""), &url).await;
    // 502 while connects fail, 503 once outlier detection has ejected the only endpoint.
    for _ in 0..5 {
        let s = client::get(px.addr(), "/").await.status();
        assert!(s == 502 || s == 503, "{s}");
    }
    let (s, body) = admin_get(&px, "/readyz").await;
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("\"unhealthy\""));
}

#[tokio::test]
async fn reload_swaps_config_and_keeps_old_one_on_error() {
    let a = TestUpstream::start(|_| async { http::Response::new(body::full("a")) }).await;
    let b = TestUpstream::start(|_| async { http::Response::new(body::full("b")) }).await;
    let dir = std::env::temp_dir().join(format!("rampart-e2e-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rampart.toml");
    let write = |url: &str| {
        let text = TestProxy::config_text(&cfg("", ""), url);
        std::fs::write(&path, text).unwrap();
    };
    write(&a.url());
    let app = crate::start_from_file(&path).await;
    let addr = app.listen_addrs()[0];
    assert_eq!(client::get(addr, "/").await.body(), "a");
    write(&b.url());
    // reloading keeps the listener (port 0 in the file is not rebound)
    let admin = app.admin_addr().unwrap();
    let token = app.admin_token().unwrap().to_string();
    let r = send(
        admin,
        request(
            "POST",
            "/reload",
            &[("authorization", &format!("Bearer {token}"))],
            "",
        ),
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    assert_eq!(client::get(addr, "/").await.body(), "b");
    std::fs::write(&path, "[[routes]]\nname = \"x\"\nupstream = \"nope\"\n").unwrap();
    let r = send(
        admin,
        request(
            "POST",
            "/reload",
            &[("authorization", &format!("Bearer {token}"))],
            "",
        ),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(String::from_utf8_lossy(r.body()).contains("unknown upstream"));
    assert_eq!(
        client::get(addr, "/").await.body(),
        "b",
        "old config keeps serving"
    );
    assert!(app.shutdown().await);
}

/// Layer order: request id (1) is outside the rescue (5), so even an error produced below the
/// rescue carries the id; metrics (4) is outside the rescue, so rescued errors are counted.
/// Moving either inside the rescue breaks this test.
#[tokio::test]
async fn layer_order_errors_carry_request_id_and_are_counted() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(&up, "max_request_body = \"10B\"").await;
    let resp = send(
        px.addr(),
        request(
            "POST",
            "/",
            &[("x-request-id", "order-test-1")],
            "this body is too large",
        ),
    )
    .await;
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["x-request-id"], "order-test-1");
    let (_, metrics) = admin_get(&px, "/metrics").await;
    assert!(
        metrics.contains(
            "rampart_http_requests_total{route=\"all\",method=\"POST\",status_class=\"4xx\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn cache_is_on_by_default_and_serves_hits() {
    let up = TestUpstream::start(|seen| async move {
        let cc = if seen.uri.path() == "/private" {
            "no-store"
        } else {
            "public, max-age=60"
        };
        rampart_testkit::response(
            200,
            "payload",
            &[("cache-control", cc), ("content-type", "text/plain")],
        )
    })
    .await;
    let log = std::env::temp_dir().join(format!("rampart-e2e-cache-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let toml = format!(
        "{}\n[log]\naccess_log = \"{}\"\n",
        cfg("", ""),
        log.display()
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    let first = client::get(px.addr(), "/item").await;
    assert_eq!(first.status(), 200);
    assert!(
        first.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("fwd=uri-miss"),
        "{:?}",
        first.headers()
    );
    let second = client::get(px.addr(), "/item").await;
    assert_eq!(second.body(), "payload");
    let cs = second.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cs.starts_with("rampart; hit"), "{cs}");
    assert!(second.headers().contains_key("age"));
    assert_eq!(up.count(), 1, "the hit must not reach the upstream");
    // no-store is never stored
    client::get(px.addr(), "/private").await;
    client::get(px.addr(), "/private").await;
    assert_eq!(up.count(), 3);
    let (_, stats) = admin_get(&px, "/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["cache"]["hits"], 1);
    let (_, metrics) = admin_get(&px, "/metrics").await;
    assert!(
        metrics.contains("rampart_cache_requests_total{route=\"all\",result=\"hit\"} 1"),
        "{metrics}"
    );
    assert!(px.shutdown().await);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[1]["cache"], "hit");
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn cache_can_be_turned_off_globally_and_per_route() {
    let up = TestUpstream::start(|_| async {
        rampart_testkit::response(200, "x", &[("cache-control", "public, max-age=60")])
    })
    .await;
    let toml = format!("{}\n[cache]\nenabled = false\n", cfg("", ""));
    let px = TestProxy::start(&toml, &up.url()).await;
    client::get(px.addr(), "/a").await;
    let r = client::get(px.addr(), "/a").await;
    assert!(!r.headers().contains_key("cache-status"));
    assert_eq!(up.count(), 2);
    let toml = format!("{}\n[routes.cache]\nenabled = false\n", cfg("", ""));
    let px = TestProxy::start(&toml, &up.url()).await;
    client::get(px.addr(), "/b").await;
    client::get(px.addr(), "/b").await;
    assert_eq!(up.count(), 4);
}

#[tokio::test]
async fn admin_purge_by_url_prefix_tag_all_and_soft() {
    let up = TestUpstream::start(|seen| async move {
        let tag = if seen.uri.path().starts_with("/static/") {
            "assets"
        } else {
            "pages"
        };
        rampart_testkit::response(
            200,
            "v",
            &[
                ("cache-control", "public, max-age=600"),
                ("surrogate-key", tag),
            ],
        )
    })
    .await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    let paths = [
        "/static/a.css",
        "/static/b.js",
        "/page/1",
        "/page/2",
        "/other",
    ];
    let warm = |px: &TestProxy| {
        let addr = px.addr();
        async move {
            for p in paths {
                client::get(addr, p).await;
            }
        }
    };
    warm(&px).await;
    assert_eq!(up.count(), 5);
    warm(&px).await;
    assert_eq!(up.count(), 5, "all cached");
    let purge = |body: &'static str| admin_purge(&px, body);
    assert_eq!(
        send(
            px.admin(),
            request("POST", "/cache/purge", &[], "{\"all\":true}")
        )
        .await
        .status(),
        401
    );
    let (s, v) = purge("{\"urls\":[\"http://test.local/other\"]}").await;
    assert_eq!((s, v["purged"].as_u64()), (200, Some(1)), "{v}");
    let (s, v) = purge("{\"prefix\":\"/static/\"}").await;
    assert_eq!((s, v["purged"].as_u64()), (200, Some(2)), "{v}");
    let (s, v) = purge("{\"tags\":[\"pages\"],\"soft\":true}").await;
    assert_eq!((s, v["purged"].as_u64()), (200, Some(2)), "{v}");
    let (s, _) = purge("{\"nothing\":1}").await;
    assert_eq!(s, 400);
    warm(&px).await;
    // other + 2 static refetched; soft-purged pages are served stale while revalidating (or refetched)
    assert!(
        up.count() >= 8,
        "purged objects must be fetched again, saw {}",
        up.count()
    );
    let (s, v) = purge("{\"all\":true}").await;
    assert_eq!(s, 200);
    assert!(v["purged"].as_u64().unwrap() >= 3, "{v}");
}

#[tokio::test]
async fn pool_in_use_gauge_returns_to_zero_after_client_disconnects() {
    let up = TestUpstream::start(|_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        http::Response::new(body::full("late"))
    })
    .await;
    let px = proxy_for(&up, "").await;
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(px.addr()).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(s); // gone before the upstream answers
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, metrics) = admin_get(&px, "/metrics").await;
    assert!(
        metrics.contains("rampart_upstream_pool_connections{upstream=\"app\",state=\"in_use\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn security_headers_are_on_by_default() {
    let up = TestUpstream::start(|_| async {
        rampart_testkit::response(
            200,
            "x",
            &[
                ("server", "gunicorn/20"),
                ("x-powered-by", "PHP"),
                ("x-frame-options", "SAMEORIGIN"),
            ],
        )
    })
    .await;
    let px = proxy_for(&up, "").await;
    let r = client::get(px.addr(), "/").await;
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        h["x-frame-options"], "SAMEORIGIN",
        "upstream values are kept unless override = true"
    );
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert!(h.contains_key("permissions-policy"));
    assert_eq!(h["cross-origin-opener-policy"], "same-origin");
    assert!(
        !h.contains_key("strict-transport-security"),
        "HSTS only on TLS listeners"
    );
    assert!(!h.contains_key("server") && !h.contains_key("x-powered-by"));
    // error responses built by the rescue carry them too
    let r = client::get(px.addr(), &format!("/{}", "x".repeat(20000))).await;
    assert_eq!(r.status(), 414);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn rate_limits_ip_lists_bans_and_audit_events() {
    let up = TestUpstream::start(|seen| async move {
        let status = if seen.uri.path() == "/login" {
            401
        } else {
            200
        };
        rampart_testkit::response(status, "x", &[])
    })
    .await;
    let audit = std::env::temp_dir().join(format!("rampart-e2e-audit-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&audit);
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[upstreams]]\nname = \"app\"\nendpoints = [\"{{upstream}}\"]\n\n\
[[routes]]\nname = \"api\"\npath = \"/api\"\nupstream = \"app\"\n\
[[routes.rate_limits]]\nname = \"per_ip\"\nrate = \"3/1m\"\n\n\
[[routes]]\nname = \"private\"\npath = \"/private\"\nupstream = \"app\"\n[routes.ip_lists]\nallow = [\"10.0.0.0/8\"]\n\n\
[[routes]]\nname = \"login\"\npath = \"/login\"\nupstream = \"app\"\n\n\
[[bans.rules]]\nname = \"brute\"\ntrigger = \"status:401\"\nroute = \"login\"\nthreshold = 3\nwindow = \"1m\"\nban = \"15m\"\n\n\
[audit]\npath = \"{}\"\n",
        audit.display()
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    for _ in 0..3 {
        assert_eq!(client::get(px.addr(), "/api/x").await.status(), 200);
    }
    let limited = client::get(px.addr(), "/api/x").await;
    assert_eq!(limited.status(), 429);
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(
        limited.headers().contains_key("ratelimit-policy"),
        "{:?}",
        limited.headers()
    );
    // route allow list: 127.0.0.1 is not in 10/8
    assert_eq!(client::get(px.addr(), "/private").await.status(), 403);
    // brute force: 3 x 401 on login -> banned everywhere
    for _ in 0..3 {
        assert_eq!(client::get(px.addr(), "/login").await.status(), 401);
    }
    let before = up.count();
    assert_eq!(client::get(px.addr(), "/login").await.status(), 403);
    assert_eq!(
        up.count(),
        before,
        "a banned client does not reach the upstream"
    );
    assert!(px.shutdown().await);
    let text = std::fs::read_to_string(&audit).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(kinds.iter().any(|k| k.contains("rate")), "{kinds:?}");
    assert!(kinds.iter().any(|k| k.contains("ban")), "{kinds:?}");
    let _ = std::fs::remove_file(&audit);
}

#[tokio::test]
async fn waf_blocks_attacks_by_default_detect_mode_passes_and_audit_records() {
    let up = TestUpstream::ok().await;
    let audit = std::env::temp_dir().join(format!("rampart-e2e-waf-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&audit);
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[upstreams]]\nname = \"app\"\nendpoints = [\"{{upstream}}\"]\n\n\
[[routes]]\nname = \"watch\"\npath = \"/watch\"\nupstream = \"app\"\n[routes.waf]\nmode = \"detect\"\n\n\
[[routes]]\nname = \"raw\"\npath = \"/raw\"\nupstream = \"app\"\n[routes.waf]\nenabled = false\n\n\
[[routes]]\nname = \"all\"\nupstream = \"app\"\n\n[audit]\npath = \"{}\"\n",
        audit.display()
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    let attack = "/search?q=1%27%20OR%20%271%27%3D%271%27%20--%20";
    let blocked = client::get(px.addr(), attack).await;
    assert_eq!(blocked.status(), 403);
    let body: serde_json::Value = serde_json::from_slice(blocked.body()).unwrap();
    let reference = body["reference"].as_str().unwrap().to_string();
    assert!(!reference.is_empty());
    assert!(
        !String::from_utf8_lossy(blocked.body()).contains("942"),
        "no rule details to the client"
    );
    assert_eq!(up.count(), 0);
    assert_eq!(
        client::get(px.addr(), "/search?q=red+shoes").await.status(),
        200
    );
    assert_eq!(
        client::get(px.addr(), &format!("/watch{attack}"))
            .await
            .status(),
        200,
        "detect mode passes"
    );
    assert_eq!(
        client::get(px.addr(), &format!("/raw{attack}"))
            .await
            .status(),
        200,
        "waf off on this route"
    );
    let (_, metrics) = admin_get(&px, "/metrics").await;
    assert!(
        metrics.contains("rampart_waf_requests_total{route=\"all\",verdict=\"block\"} 1"),
        "{metrics}"
    );
    assert!(px.shutdown().await);
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let block = events
        .iter()
        .find(|e| e["kind"] == "waf_blocked")
        .expect("waf_blocked event");
    assert_eq!(block["reference"], reference.as_str());
    assert!(events.iter().any(|e| e["kind"] == "waf_detected"));
    let _ = std::fs::remove_file(&audit);
}

/// An origin speaking TLS (certificate for `localhost`), answering 200 "secure".
async fn tls_origin(dir: &std::path::Path) -> (SocketAddr, std::path::PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let ca = dir.join("origin-ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"secure"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, ca)
}

#[tokio::test]
async fn https_upstreams_with_a_custom_ca_and_verification() {
    let dir = std::env::temp_dir().join(format!("rampart-e2e-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (addr, ca) = tls_origin(&dir).await;
    let url = format!("https://localhost:{}", addr.port());
    // trusted through ca_file: proxied over TLS
    let px = TestProxy::start(&cfg("", &format!("ca_file = \"{}\"", ca.display())), &url).await;
    let r = client::get(px.addr(), "/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), "secure");
    // system roots do not trust the self-signed origin: refused, 502, nothing leaks
    let px = TestProxy::start(&cfg("", ""), &url).await;
    let r = client::get(px.addr(), "/").await;
    assert_eq!(r.status(), 502);
    // wrong verification name: refused as well
    let px = TestProxy::start(
        &cfg(
            "",
            &format!(
                "ca_file = \"{}\"\ntls_server_name = \"other.example\"",
                ca.display()
            ),
        ),
        &url,
    )
    .await;
    assert_eq!(client::get(px.addr(), "/").await.status(), 502);
}

#[tokio::test]
async fn admin_bans_list_add_and_lift() {
    let up = TestUpstream::ok().await;
    let px = proxy_for(&up, "").await;
    let auth = ("authorization", "Bearer test-admin-token-0123456789");
    assert_eq!(
        send(px.admin(), request("GET", "/bans", &[], ""))
            .await
            .status(),
        401
    );
    assert_eq!(client::get(px.addr(), "/").await.status(), 200);
    let r = send(
        px.admin(),
        request(
            "POST",
            "/bans",
            &[auth],
            "{\"ip\":\"127.0.0.1\",\"duration\":\"10m\",\"reason\":\"testing\"}",
        ),
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    assert_eq!(
        client::get(px.addr(), "/").await.status(),
        403,
        "banned client refused"
    );
    let list: serde_json::Value = serde_json::from_slice(
        send(px.admin(), request("GET", "/bans", &[auth], ""))
            .await
            .body(),
    )
    .unwrap();
    assert_eq!(list[0]["ip"], "127.0.0.1");
    assert_eq!(list[0]["reason"], "manual: testing");
    let bad = send(
        px.admin(),
        request(
            "POST",
            "/bans",
            &[auth],
            "{\"ip\":\"nope\",\"duration\":\"10m\"}",
        ),
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        send(
            px.admin(),
            request("DELETE", "/bans/127.0.0.1", &[auth], "")
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        send(
            px.admin(),
            request("DELETE", "/bans/127.0.0.1", &[auth], "")
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        client::get(px.addr(), "/").await.status(),
        200,
        "ban lifted"
    );
}
