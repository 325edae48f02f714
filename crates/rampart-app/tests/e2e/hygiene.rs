//! Per-route request hygiene through the real gateway: 405 + `Allow`, query-parameter count,
//! header deny / strip rules, slow-body read timeout.

use std::time::Duration;

use rampart_testkit::{
    TestProxy, TestUpstream,
    client::{raw, raw_status, request, send},
};

const ROUTES: &str = r#"
[[upstreams]]
name = "app"
endpoints = ["{upstream}"]

[[routes]]
name = "api"
upstream = "app"
[routes.hygiene]
allowed_methods = ["GET", "POST"]
max_query_params = 3
deny_headers = ["x-debug"]
strip_headers = ["x-internal"]
body_read_timeout = "300ms"
"#;

#[tokio::test]
async fn methods_query_params_and_headers() {
    let up = TestUpstream::ok().await;
    let px = TestProxy::start(ROUTES, &up.url()).await;
    let r = send(px.addr(), request("DELETE", "/x", &[], "")).await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD, POST");
    assert_eq!(
        send(px.addr(), request("HEAD", "/x", &[], ""))
            .await
            .status(),
        200
    );
    assert_eq!(
        send(px.addr(), request("GET", "/x?a=1&b=2&c=3", &[], ""))
            .await
            .status(),
        200
    );
    assert_eq!(
        send(px.addr(), request("GET", "/x?a=1&b=2&c=3&d=4", &[], ""))
            .await
            .status(),
        400
    );
    assert_eq!(
        send(px.addr(), request("GET", "/x", &[("x-debug", "1")], ""))
            .await
            .status(),
        400
    );
    let r = send(
        px.addr(),
        request("GET", "/x", &[("x-internal", "secret"), ("x-ok", "1")], ""),
    )
    .await;
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert!(seen.headers.get("x-internal").is_none());
    assert_eq!(seen.headers["x-ok"], "1");
    px.shutdown().await;
}

#[tokio::test]
async fn slow_body_gets_408() {
    let up = TestUpstream::ok().await;
    let px = TestProxy::start(ROUTES, &up.url()).await;
    // Promise 10 bytes, send 2, then stall.
    let reply = raw(
        px.addr(),
        b"POST /upload HTTP/1.1\r\nhost: test.local\r\ncontent-length: 10\r\n\r\nab",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw_status(&reply), 408, "{reply}");
    // A body that arrives in time passes.
    let r = send(px.addr(), request("POST", "/upload", &[], "0123456789")).await;
    assert_eq!(r.status(), 200);
    px.shutdown().await;
}
