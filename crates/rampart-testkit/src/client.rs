//! One-shot clients with bounded waits.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Upper bound for any single client exchange in tests.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A buffered response.
pub type Buffered = Response<Bytes>;

/// Send one HTTP/1.1 request on a new connection and buffer the response.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Buffered {
    tokio::time::timeout(LIMIT, async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = tx.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Response::from_parts(parts, bytes)
    })
    .await
    .expect("request timed out")
}

/// Send one HTTP/2 (prior knowledge) request and buffer the response.
pub async fn send_h2(addr: SocketAddr, req: Request<Full<Bytes>>) -> Buffered {
    tokio::time::timeout(LIMIT, async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let resp = tx.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Response::from_parts(parts, bytes)
    })
    .await
    .expect("request timed out")
}

/// `GET path` with a `Host` header.
pub async fn get(addr: SocketAddr, path: &str) -> Buffered {
    send(addr, request("GET", path, &[], "")).await
}

/// Build a request.
pub fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", "test.local");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

/// Write raw bytes and read until the peer closes (or `wait` passes); returns what came back.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in a raw reply (`0` if none).
pub fn raw_status(reply: &str) -> u16 {
    reply
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
