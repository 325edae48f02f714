//! Static routes, minification and Server-Timing (issue 4 part B).

use std::{path::Path, time::Duration};

use rampart_testkit::{
    TestProxy, TestUpstream,
    client::{get, raw, raw_status, request, send},
    response,
};

use crate::admin_get;

const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

/// `base/site` with a few files, and `base/secret.txt` outside it.
fn site(base: &Path) -> std::path::PathBuf {
    let root = base.join("site");
    for d in ["sub", "empty", ".hidden"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let files: &[(&str, &[u8])] = &[
        ("index.html", b"<html><body>home</body></html>"),
        ("sub/index.html", b"<html><body>sub</body></html>"),
        ("app.3f2a9c1d.js", b"console.log('fingerprinted');"),
        ("style.css", b"p { color: red }"),
        ("data.json", b"{\"a\": 1}"),
        ("img.png", b"\x89PNG\r\n\x1a\nnot really"),
        ("digits.txt", b"0123456789abcdefghij"),
        ("app.js", b"identity-body"),
        ("app.js.br", b"brotli-body"),
        ("app.js.gz", b"gzip-body"),
        (".hidden/x.txt", b"hidden"),
        (".env", b"hidden"),
    ];
    for (name, content) in files {
        std::fs::write(root.join(name), content).unwrap();
    }
    std::fs::write(base.join("secret.txt"), SECRET).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("escape")).unwrap();
    root
}

fn static_cfg(root: &Path, extra_route: &str) -> String {
    format!(
        "[[routes]]\nname = \"site\"\nstatic = \"{}\"\n{extra_route}\n",
        root.display()
    )
}

async fn raw_get(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    let req = format!("GET {target} HTTP/1.1\r\nhost: test.local\r\nconnection: close\r\n\r\n");
    let reply = raw(addr, req.as_bytes(), Duration::from_secs(5)).await;
    (raw_status(&reply), reply)
}

#[tokio::test]
async fn static_traversal_attempts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = site(dir.path());
    let toml = format!(
        "{}\n[[routes]]\nname = \"assets\"\npath = \"/assets\"\nstatic = \"{}\"\n",
        static_cfg(&root, ""),
        root.display()
    );
    // With the WAF off the file service alone must refuse (400/404); with it on (the
    // default) the WAF may refuse first (403).
    for waf in [false, true] {
        let toml = format!("{toml}\n[waf]\nenabled = {waf}\n");
        traversal_round(&toml, waf).await;
    }
}

async fn traversal_round(toml: &str, waf: bool) {
    let px = TestProxy::start(toml, "").await;
    // The positive control: the same client, the same route, a legitimate name.
    let (st, body) = raw_get(px.addr(), "/index.html").await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("home"));
    let (st, body) = raw_get(px.addr(), "/assets/digits.txt").await;
    assert_eq!(st, 200, "{body}");
    for target in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/..\\secret.txt",
        "/..%5csecret.txt",
        "/sub%5c..%5c..%5csecret.txt",
        "/index.html%00.txt",
        "/%00",
        "/%252e%252e/secret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/%c0%af..%c0%afsecret.txt",
        "/escape",
        "/.env",
        "/.hidden/x.txt",
        "/assets/../secret.txt",
        "/assets/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "//..//secret.txt",
    ] {
        let (st, reply) = raw_get(px.addr(), target).await;
        assert!(
            matches!(st, 400 | 404) || (waf && st == 403),
            "{target} (waf {waf}): status {st}\n{reply}"
        );
        assert!(!reply.contains(SECRET), "{target} leaked the secret");
        assert!(
            !reply.contains("hidden\r\n") && !reply.ends_with("hidden"),
            "{target}"
        );
    }
    assert!(px.shutdown().await);
}

#[cfg(unix)]
#[tokio::test]
async fn static_symlink_escape_is_allowed_only_with_follow_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let root = site(dir.path());
    let toml = static_cfg(&root, "[routes.static_options]\nfollow_symlinks = true\n");
    let px = TestProxy::start(&toml, "").await;
    let r = get(px.addr(), "/escape").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), SECRET);
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn static_index_types_cache_control_and_methods() {
    let dir = tempfile::tempdir().unwrap();
    let root = site(dir.path());
    let px = TestProxy::start(&static_cfg(&root, ""), "").await;
    let r = get(px.addr(), "/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), "<html><body>home</body></html>");
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let r = get(px.addr(), "/sub?x=1").await;
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/sub/?x=1");
    let r = get(px.addr(), "/sub/").await;
    assert_eq!(r.body(), "<html><body>sub</body></html>");
    for (path, ct, cc) in [
        (
            "/app.3f2a9c1d.js",
            "text/javascript; charset=utf-8",
            "public, max-age=31536000, immutable",
        ),
        (
            "/style.css",
            "text/css; charset=utf-8",
            "public, max-age=3600",
        ),
        ("/data.json", "application/json", "public, max-age=3600"),
        ("/img.png", "image/png", "public, max-age=3600"),
    ] {
        let r = get(px.addr(), path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ct, "{path}");
        assert_eq!(r.headers()["cache-control"], cc, "{path}");
        assert!(r.headers().contains_key("etag"), "{path}");
        assert!(r.headers().contains_key("last-modified"), "{path}");
    }
    // No listing, nothing invented.
    assert_eq!(get(px.addr(), "/empty/").await.status(), 404);
    assert_eq!(get(px.addr(), "/nope.txt").await.status(), 404);
    let r = send(px.addr(), request("POST", "/index.html", &[], "x")).await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let r = send(px.addr(), request("HEAD", "/digits.txt", &[], "")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "20");
    assert!(r.body().is_empty());
    assert!(px.shutdown().await);
}

async fn ae_get(addr: std::net::SocketAddr, ae: Option<&str>) -> rampart_testkit::client::Buffered {
    let headers: Vec<(&str, &str)> = ae.map(|v| ("accept-encoding", v)).into_iter().collect();
    send(addr, request("GET", "/app.js", &headers, "")).await
}

fn check_variant(r: &rampart_testkit::client::Buffered, body: &str, ce: Option<&str>, what: &str) {
    assert_eq!(r.status(), 200, "{what}");
    assert_eq!(r.body(), body, "{what}");
    assert_eq!(
        r.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        ce,
        "{what}"
    );
    assert_eq!(r.headers()["vary"], "accept-encoding", "{what}");
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8",
        "{what}"
    );
}

#[tokio::test]
async fn static_sidecars_follow_accept_encoding_q_values() {
    let dir = tempfile::tempdir().unwrap();
    let root = site(dir.path());
    // Cache off: the file service itself chooses for every request.
    let px = TestProxy::start(&static_cfg(&root, "[routes.cache]\nenabled = false\n"), "").await;
    for (ae, body, ce) in [
        (Some("gzip, br"), "brotli-body", Some("br")),
        (Some("br;q=0.5, gzip"), "gzip-body", Some("gzip")),
        (Some("br;q=0, gzip;q=0"), "identity-body", None),
        (Some("zstd"), "identity-body", None),
        (Some("*"), "brotli-body", Some("br")),
        (Some("*;q=0.5, br;q=0"), "gzip-body", Some("gzip")),
        (None, "identity-body", None),
    ] {
        check_variant(&ae_get(px.addr(), ae).await, body, ce, &format!("{ae:?}"));
    }
    // A file without sidecars does not vary.
    let r = send(
        px.addr(),
        request("GET", "/style.css", &[("accept-encoding", "br")], ""),
    )
    .await;
    assert!(r.headers().get("vary").is_none());
    assert!(r.headers().get("content-encoding").is_none());
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn static_sidecar_variants_are_cached_per_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let root = site(dir.path());
    let px = TestProxy::start(&static_cfg(&root, ""), "").await;
    for round in 0..2 {
        for (ae, body, ce) in [
            (Some("br"), "brotli-body", Some("br")),
            (Some("gzip"), "gzip-body", Some("gzip")),
            (None, "identity-body", None),
        ] {
            let r = ae_get(px.addr(), ae).await;
            check_variant(&r, body, ce, &format!("{ae:?} round {round}"));
            let cs = r.headers()["cache-status"].to_str().unwrap();
            assert_eq!(cs.contains("hit"), round == 1, "{ae:?}: {cs}");
        }
    }
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn static_validators_conditionals_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let root = site(dir.path());
    // Cache off for this route: the file service itself answers every request.
    let px = TestProxy::start(&static_cfg(&root, "[routes.cache]\nenabled = false\n"), "").await;
    let r = get(px.addr(), "/digits.txt").await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let lm = r.headers()["last-modified"].to_str().unwrap().to_string();
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    let ask = |h: Vec<(&'static str, String)>| {
        let addr = px.addr();
        async move {
            let hs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send(addr, request("GET", "/digits.txt", &hs, "")).await
        }
    };
    let r = ask(vec![("if-none-match", etag.clone())]).await;
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert!(r.body().is_empty());
    let r = ask(vec![("if-none-match", format!("W/{etag}"))]).await;
    assert_eq!(r.status(), 304, "weak comparison for If-None-Match");
    let r = ask(vec![("if-modified-since", lm.clone())]).await;
    assert_eq!(r.status(), 304);
    let r = ask(vec![("if-match", "\"other\"".into())]).await;
    assert_eq!(r.status(), 412);
    let r = ask(vec![(
        "if-unmodified-since",
        "Mon, 01 Jan 2001 00:00:00 GMT".into(),
    )])
    .await;
    assert_eq!(r.status(), 412);
    let r = ask(vec![
        ("if-match", etag.clone()),
        ("if-none-match", "\"x\"".into()),
    ])
    .await;
    assert_eq!(r.status(), 200);

    let r = ask(vec![("range", "bytes=2-5".into())]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.body(), "2345");
    assert_eq!(r.headers()["content-range"], "bytes 2-5/20");
    assert_eq!(r.headers()["content-length"], "4");
    let r = ask(vec![("range", "bytes=-3".into())]).await;
    assert_eq!(r.body(), "hij");
    let r = ask(vec![("range", "bytes=18-".into())]).await;
    assert_eq!(r.body(), "ij");
    let r = ask(vec![("range", "bytes=20-".into())]).await;
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */20");
    let r = ask(vec![
        ("range", "bytes=0-0".into()),
        ("if-range", etag.clone()),
    ])
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.body(), "0");
    let r = ask(vec![
        ("range", "bytes=0-0".into()),
        ("if-range", "\"old\"".into()),
    ])
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().len(), 20);
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn static_route_without_upstream_is_a_clear_config_error() {
    let text = rampart_testkit::TestProxy::config_text(
        "[[upstreams]]\nname = \"app\"\nendpoints = [\"http://127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\n",
        "",
    );
    let err = rampart_config::load_str(&text, &rampart_config::Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("routes[0].upstream: is required (or set `static"),
        "{err}"
    );
}

const PAGE: &str = "<!doctype html>\n<html>\n  <head>\n    <title> Hi </title>\n    <style> p { color : red ; } </style>\n  </head>\n  <body>\n    <!-- a comment -->\n    <p>  hello   world  </p>\n    <script> var  answer = 40 + 2 ; </script>\n  </body>\n</html>\n";
const BROKEN_HTML: &str = "<html>\n  <body>\n    <p>  unclosed   <!-- comment\n";
const BROKEN_JS: &str = "function broken( {\n  return 1 +;\n";
const GOOD_JS: &str =
    "function add(first, second) {\n  return first + second;\n}\nconsole.log(add(1, 2));\n";
const JSON: &str = "{\n  \"a\" : [ 1 , 2 ],\n  \"b\" : \"x  y\"\n}\n";

async fn minify_origin() -> TestUpstream {
    TestUpstream::start(|seen| async move {
        let (body, ct) = match seen.uri.path() {
            "/page.html" => (PAGE, "text/html; charset=utf-8"),
            "/broken.html" => (BROKEN_HTML, "text/html"),
            "/broken.js" => (BROKEN_JS, "application/javascript"),
            "/good.js" => (GOOD_JS, "text/javascript"),
            "/data.json" => (JSON, "application/json"),
            "/plain.txt" => (JSON, "text/plain"),
            _ => ("", "text/plain"),
        };
        response(
            200,
            body,
            &[
                ("content-type", ct),
                ("cache-control", "public, max-age=60"),
                ("etag", "\"v1\""),
            ],
        )
    })
    .await
}

#[tokio::test]
async fn minification_runs_once_and_passes_broken_input_byte_exact() {
    let up = minify_origin().await;
    let toml = "[[upstreams]]\nname = \"app\"\nendpoints = [\"{upstream}\"]\n\n[[routes]]\nname = \"min\"\nupstream = \"app\"\nminify = [\"html\", \"css\", \"js\", \"json\"]\n";
    let px = TestProxy::start(toml, &up.url()).await;

    let r = get(px.addr(), "/page.html").await;
    let min = String::from_utf8(r.body().to_vec()).unwrap();
    assert!(min.len() < PAGE.len(), "{min}");
    assert!(
        min.contains("hello world") && !min.contains("a comment"),
        "{min}"
    );
    assert!(min.contains("p{color:red;}"), "inline CSS minified: {min}");
    assert_eq!(r.headers()["etag"], "W/\"v1\"");
    assert_eq!(
        r.headers()["content-length"],
        min.len().to_string().as_str()
    );
    // Second request: a hit with the same minified bytes, the origin saw one request.
    let r2 = get(px.addr(), "/page.html").await;
    assert_eq!(r2.body(), r.body());
    assert!(
        r2.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("hit"),
        "{:?}",
        r2.headers()
    );
    let seen = up
        .requests()
        .iter()
        .filter(|s| s.uri.path() == "/page.html")
        .count();
    assert_eq!(seen, 1);

    for (path, original) in [("/broken.html", BROKEN_HTML), ("/broken.js", BROKEN_JS)] {
        let r = get(px.addr(), path).await;
        assert_eq!(r.body(), original, "{path} must pass byte-exact");
        assert_eq!(r.headers()["etag"], "\"v1\"", "{path}: untouched");
    }
    let r = get(px.addr(), "/good.js").await;
    assert!(r.body().len() < GOOD_JS.len());
    let r = get(px.addr(), "/data.json").await;
    assert_eq!(r.body(), "{\"a\":[1,2],\"b\":\"x  y\"}");
    let r = get(px.addr(), "/plain.txt").await;
    assert_eq!(r.body(), JSON, "text/plain is not minified");
    // A Range request on a minify route gets the minified whole (never unminified bytes).
    let r = send(
        px.addr(),
        request("GET", "/good.js", &[("range", "bytes=0-3")], ""),
    )
    .await;
    assert!(r.body().len() < GOOD_JS.len());

    let (_, stats) = admin_get(&px, "/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(
        stats["minify"]["saved_bytes"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert_eq!(stats["minify"]["passthrough"], 2, "{stats}");
    let (_, metrics) = admin_get(&px, "/metrics").await;
    assert!(
        metrics.contains("rampart_minify_saved_bytes_total{route=\"min\",kind=\"html\"}"),
        "{metrics}"
    );
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn minified_static_files_are_cached_minified() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("m");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("data.json"), JSON).unwrap();
    let toml = format!(
        "[[routes]]\nname = \"s\"\nstatic = \"{}\"\nminify = [\"json\"]\n",
        root.display()
    );
    let px = TestProxy::start(&toml, "").await;
    for i in 0..2 {
        let r = get(px.addr(), "/data.json").await;
        assert_eq!(r.body(), "{\"a\":[1,2],\"b\":\"x  y\"}", "request {i}");
        assert!(r.headers()["etag"].to_str().unwrap().starts_with("W/"));
        if i == 1 {
            assert!(
                r.headers()["cache-status"]
                    .to_str()
                    .unwrap()
                    .contains("hit")
            );
        }
    }
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn server_timing_only_when_enabled() {
    let up = TestUpstream::start(|_| async {
        response(200, "ok", &[("cache-control", "public, max-age=60")])
    })
    .await;
    let toml = "[[upstreams]]\nname = \"app\"\nendpoints = [\"{upstream}\"]\n\n[[routes]]\nname = \"timed\"\npath = \"/timed\"\nupstream = \"app\"\nserver_timing = true\n\n[[routes]]\nname = \"quiet\"\npath = \"/\"\nupstream = \"app\"\n";
    let px = TestProxy::start(toml, &up.url()).await;
    let r = get(px.addr(), "/timed/a").await;
    let st = r.headers()["server-timing"].to_str().unwrap().to_string();
    assert!(st.contains("cache;desc=miss"), "{st}");
    assert!(st.contains("upstream;dur="), "{st}");
    assert!(st.contains("waf;dur="), "{st}");
    let r = get(px.addr(), "/timed/a").await;
    let st = r.headers()["server-timing"].to_str().unwrap().to_string();
    assert!(st.contains("cache;desc=hit"), "{st}");
    assert!(!st.contains("upstream"), "a hit has no upstream time: {st}");
    let r = get(px.addr(), "/other").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("server-timing").is_none());
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn server_timing_absent_by_default() {
    let up = TestUpstream::ok().await;
    let px = crate::proxy_for(&up, "").await;
    let r = get(px.addr(), "/").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("server-timing").is_none());
    assert!(px.shutdown().await);
}
