//! The audit log through the real gateway: complete after a shutdown in the middle of load,
//! admin actions recorded, `GET /audit` filters, audit metrics.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use bytes::Bytes;
use http_body_util::Empty;
use rampart_testkit::{
    TestProxy, TestUpstream,
    client::{request, send},
};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rampart-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(audit: &std::path::Path) -> String {
    format!(
        r#"
[[upstreams]]
name = "app"
endpoints = ["{{upstream}}"]

[[auth.api_keys]]
name = "k"
sha256 = "{}"

[audit]
path = "{}"

[[routes]]
name = "api"
upstream = "app"
[routes.auth]
api_key = "header:x-api-key"
"#,
        rampart_guard::auth::apikey::sha256_hex(b"right"),
        audit.display()
    )
}

/// Keep-alive requests without a key until the gateway goes away; counts the 401s seen.
async fn hammer(addr: std::net::SocketAddr, seen: Arc<AtomicUsize>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
            return;
        };
        let Ok((mut tx, conn)) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        else {
            return;
        };
        tokio::spawn(conn);
        loop {
            let req = http::Request::get("/x")
                .header("host", "test.local")
                .body(Empty::new())
                .unwrap();
            match tx.send_request(req).await {
                Ok(r) if r.status() == 401 => {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_is_complete_after_shutdown_mid_load() {
    let dir = temp_dir("audit-load");
    let path = dir.join("audit.jsonl");
    let up = TestUpstream::ok().await;
    let px = TestProxy::start(&config(&path), &up.url()).await;
    let addr = px.addr();
    let seen = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    const CLIENTS: usize = 4;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(hammer(addr, seen.clone(), stop.clone())))
        .collect();
    crate::wait_until(|| seen.load(Ordering::SeqCst) >= 300).await;
    // Shut down while the clients are still sending.
    assert!(px.shutdown().await);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let answered = seen.load(Ordering::SeqCst);
    let text = std::fs::read_to_string(&path).unwrap();
    let events = text
        .lines()
        .filter(|l| l.contains("\"kind\":\"auth_failed\""))
        .count();
    // Every refusal a client saw is in the log; at most one request per connection may have
    // been refused while its client was already gone.
    assert!(
        events >= answered && events <= answered + CLIENTS,
        "{events} events for {answered} 401 answers"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn admin_actions_and_get_audit() {
    let dir = temp_dir("audit-admin");
    let path = dir.join("audit.jsonl");
    let up = TestUpstream::ok().await;
    let px = TestProxy::start(&config(&path), &up.url()).await;
    let token = "Bearer test-admin-token-0123456789";
    assert_eq!(
        send(px.addr(), request("GET", "/x", &[], ""))
            .await
            .status(),
        401
    );
    let r = send(
        px.admin(),
        request(
            "POST",
            "/bans",
            &[
                ("authorization", token),
                ("content-type", "application/json"),
            ],
            r#"{"ip":"192.0.2.9","duration":"1h","reason":"test"}"#,
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        px.admin(),
        request("DELETE", "/bans/192.0.2.9", &[("authorization", token)], ""),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        px.admin(),
        request(
            "POST",
            "/cache/purge",
            &[("authorization", token)],
            r#"{"all":true}"#,
        ),
    )
    .await;
    assert_eq!(r.status(), 200);

    let audit = |q: &'static str, auth: bool| {
        let admin = px.admin();
        async move {
            let h: &[(&str, &str)] = if auth {
                &[("authorization", token)]
            } else {
                &[]
            };
            let r = send(admin, request("GET", q, h, "")).await;
            (
                r.status().as_u16(),
                String::from_utf8_lossy(r.body()).into_owned(),
            )
        }
    };
    assert_eq!(audit("/audit", false).await.0, 401, "token-protected");
    // Events reach the in-memory tail through the writer: wait for the last one.
    let mut admin = serde_json::Value::Null;
    for _ in 0..500 {
        let (status, body) = audit("/audit?kind=admin_action", true).await;
        assert_eq!(status, 200, "{body}");
        admin = serde_json::from_str(&body).unwrap();
        if admin.as_array().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let actions: Vec<&str> = admin
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["ban", "unban", "purge"]);
    let (_, body) = audit("/audit?kind=auth_failed&since=10m&limit=5", true).await;
    let failed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(failed.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(failed[0]["route"], "api");
    let (_, body) = audit("/audit?since=2000-01-01T00:00:00Z&limit=2", true).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (_, body) = audit("/audit?since=2999-01-01T00:00:00Z", true).await;
    assert_eq!(body, "[]");
    assert_eq!(audit("/audit?since=yesterday-ish", true).await.0, 400);

    let metrics = crate::admin_get(&px, "/metrics").await.1;
    assert!(
        metrics.contains("rampart_audit_events_total{kind=\"admin_action\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_audit_dropped_total 0"),
        "{metrics}"
    );
    px.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"kind\":\"ban_created\""), "{text}");
    assert_eq!(
        text.matches("\"kind\":\"admin_action\"").count(),
        3,
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
