//! End-to-end tests: real sockets on 127.0.0.1, real upstreams, one integration binary.
//!
//! One module per capability; shared helpers live here.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{net::SocketAddr, time::Duration};

use rampart_testkit::{
    TestProxy, TestUpstream,
    client::{request, send},
};

mod audit;
mod auth;
mod cache_policy;
mod compress;
mod core;
mod hygiene;
mod resilience;
mod statics;
mod waf;

/// Poll `cond` every 10 ms for up to 5 s (a bounded wait for something another task does).
pub async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

/// An HTTP/1.1 client connection whose driver runs in its own task.
pub async fn h1_client<B>(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    tx
}

/// A one-upstream (`app`), one-route (`all`) config; `{upstream}` is filled in by `TestProxy`.
pub fn cfg(server_extra: &str, rest: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{server_extra}\n\n[[upstreams]]\nname = \"app\"\nendpoints = [\"{{upstream}}\"]\n{rest}\n\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n"
    )
}

/// A proxy in front of `up` with the [`cfg`] config.
pub async fn proxy_for(up: &TestUpstream, server_extra: &str) -> TestProxy {
    TestProxy::start(&cfg(server_extra, ""), &up.url()).await
}

/// GET `path` on the admin listener: (status, body).
pub async fn admin_get(px: &TestProxy, path: &str) -> (u16, String) {
    let r = send(px.admin(), request("GET", path, &[], "")).await;
    (
        r.status().as_u16(),
        String::from_utf8_lossy(r.body()).into_owned(),
    )
}

/// POST a JSON `body` to the admin `/cache/purge` with the test token: (status, JSON answer).
pub async fn admin_purge(px: &TestProxy, body: &str) -> (u16, serde_json::Value) {
    let r = send(
        px.admin(),
        request(
            "POST",
            "/cache/purge",
            &[
                ("authorization", "Bearer test-admin-token-0123456789"),
                ("content-type", "application/json"),
            ],
            body,
        ),
    )
    .await;
    (
        r.status().as_u16(),
        serde_json::from_slice(r.body()).unwrap_or_default(),
    )
}

/// Start the gateway from a config file (so `reload` re-reads it).
pub async fn start_from_file(path: &std::path::Path) -> rampart_app::RunningApp {
    let config = rampart_config::load_file(path, &rampart_config::Overrides::default()).unwrap();
    rampart_app::start(
        config,
        rampart_app::StartOptions {
            config_path: Some(path.to_path_buf()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}
