//! Compression, validators and ranges (issue 4 part A), end to end.

use bytes::Bytes;
use rampart_compress::{Coding, decode, encode};
use rampart_testkit::{
    TestProxy, TestUpstream,
    client::{Buffered, request, send},
    response,
};

use crate::{admin_get, cfg, wait_until};

/// A JSON body of about `n` bytes.
fn json(n: usize) -> String {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"item number {i}\",\"ok\":true}},"
        ));
        i += 1;
    }
    s.push_str("{}]");
    s
}

async fn get(px: &TestProxy, path: &str, headers: &[(&str, &str)]) -> Buffered {
    send(px.addr(), request("GET", path, headers, "")).await
}

fn header<'a>(r: &'a Buffered, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

fn coding(r: &Buffered) -> Option<&str> {
    header(r, "content-encoding")
}

/// The decoded body of a response, whatever its coding.
fn decoded(r: &Buffered) -> Bytes {
    match coding(r).and_then(Coding::parse) {
        Some(c) => decode(c, r.body(), 1 << 30).unwrap(),
        None => r.body().clone(),
    }
}

/// A counter's value from `/metrics` (0 when absent).
async fn metric(px: &TestProxy, line_start: &str) -> u64 {
    let (_, text) = admin_get(px, "/metrics").await;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn ops(encoding: &str, mode: &str) -> String {
    format!("rampart_compression_operations_total{{encoding=\"{encoding}\",mode=\"{mode}\"}} ")
}

/// An upstream answering JSON of `n` bytes with `cache-control: cc` (and any extra headers).
async fn json_upstream(
    n: usize,
    cc: &'static str,
    extra: &'static [(&'static str, &'static str)],
) -> TestUpstream {
    let body = json(n);
    TestUpstream::start(move |_| {
        let body = body.clone();
        async move {
            let mut h = vec![("content-type", "application/json"), ("cache-control", cc)];
            h.extend_from_slice(extra);
            response(200, body, &h)
        }
    })
    .await
}

#[tokio::test]
async fn negotiation_follows_qvalues_wildcards_and_identity() {
    let up = json_upstream(8000, "no-store", &[]).await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    let cases: &[(Option<&str>, Option<&str>)] = &[
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("gzip;q=1, br;q=0.5"), Some("gzip")),
        (Some("gzip;q=0.5, identity"), None),
        (Some("*"), Some("br")),
        (Some("br;q=0, *;q=0.2"), Some("zstd")),
        (Some("deflate"), Some("deflate")),
        (Some("identity"), None),
        (Some(""), None),
        (Some("compress"), None),
        (None, None),
    ];
    let want = json(8000);
    for (ae, want_coding) in cases {
        let h: Vec<(&str, &str)> = ae.iter().map(|v| ("accept-encoding", *v)).collect();
        let r = get(&px, "/data", &h).await;
        assert_eq!(r.status(), 200);
        assert_eq!(coding(&r), *want_coding, "accept-encoding {ae:?}");
        assert_eq!(decoded(&r), want.as_bytes(), "{ae:?}");
        assert_eq!(header(&r, "vary"), Some("accept-encoding"), "{ae:?}");
        if want_coding.is_some() {
            assert!(r.body().len() < want.len() / 3);
            assert!(header(&r, "content-length").is_none_or(|n| n == r.body().len().to_string()));
        }
    }
    // Server preference order decides ties.
    let toml = format!(
        "{}\n[routes.compression]\nalgorithms = [\"gzip\", \"br\"]\n",
        cfg("", "")
    );
    let px2 = TestProxy::start(&toml, &up.url()).await;
    let r = get(&px2, "/data", &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(coding(&r), Some("gzip"));
    let _ = px.shutdown().await;
    let _ = px2.shutdown().await;
}

#[tokio::test]
async fn never_compress_twice_no_transform_small_bodies_other_types_or_206() {
    let big = json(4000);
    let gz = encode(Coding::Gzip, 6, big.as_bytes()).unwrap();
    let up = TestUpstream::start(move |seen| {
        let (big, gz) = (big.clone(), gz.clone());
        async move {
            let ct = ("content-type", "application/json");
            let cc = ("cache-control", "no-store");
            match seen.uri.path() {
                "/gz" => response(200, gz, &[ct, cc, ("content-encoding", "gzip")]),
                "/nt" => response(200, big, &[ct, ("cache-control", "no-store, no-transform")]),
                "/small" => response(200, "{\"a\":1}", &[ct, cc]),
                "/png" => response(200, big, &[("content-type", "image/png"), cc]),
                "/partial" => response(
                    206,
                    big[..2000].to_string(),
                    &[ct, cc, ("content-range", "bytes 0-1999/4000")],
                ),
                _ => response(200, big, &[cc]),
            }
        }
    })
    .await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    let ae = [("accept-encoding", "br, gzip")];
    let r = get(&px, "/gz", &ae).await;
    assert_eq!(coding(&r), Some("gzip"), "already encoded: passed as is");
    assert_eq!(decoded(&r), json(4000).as_bytes());
    for path in ["/nt", "/small", "/png", "/partial", "/untyped"] {
        let r = get(&px, path, &ae).await;
        assert_eq!(coding(&r), None, "{path} must not be compressed");
    }
    let _ = px.shutdown().await;
}

#[tokio::test]
async fn cached_hits_weaken_etags_and_compare_if_none_match_weakly() {
    let up = json_upstream(6000, "public, max-age=600", &[("etag", "\"v1\"")]).await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    let br = [("accept-encoding", "br")];
    let miss = get(&px, "/e", &br).await;
    assert_eq!(coding(&miss), Some("br"));
    assert_eq!(
        header(&miss, "etag"),
        Some("W/\"v1\""),
        "streamed + transformed: weak"
    );
    // Identity from the cache keeps the origin's strong tag.
    let plain = get(&px, "/e", &[]).await;
    assert_eq!(coding(&plain), None);
    assert_eq!(header(&plain, "etag"), Some("\"v1\""));
    assert_eq!(header(&plain, "vary"), Some("accept-encoding"));
    assert_eq!(header(&plain, "accept-ranges"), Some("bytes"));
    // The br variant appears once it is made; then hits are br with a weak tag.
    wait_until_coding(&px, "/e", "br").await;
    let hit = get(&px, "/e", &br).await;
    assert_eq!(header(&hit, "etag"), Some("W/\"v1\""));
    for inm in ["W/\"v1\"", "\"v1\"", "\"x\", W/\"v1\"", "*"] {
        for ae in ["br", "identity"] {
            let r = get(
                &px,
                "/e",
                &[("accept-encoding", ae), ("if-none-match", inm)],
            )
            .await;
            assert_eq!(r.status(), 304, "{inm} / {ae}");
            assert!(r.body().is_empty());
            assert!(header(&r, "etag").is_some());
        }
    }
    let r = get(&px, "/e", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(up.count(), 1, "all answered from the cache");
    let _ = px.shutdown().await;
}

async fn wait_until_coding(px: &TestProxy, path: &str, c: &str) {
    let addr = px.addr();
    let found = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for _ in 0..500 {
        let r = send(addr, request("GET", path, &[("accept-encoding", c)], "")).await;
        if coding(&r) == Some(c) {
            found.store(true, std::sync::atomic::Ordering::SeqCst);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let f = found.clone();
    wait_until(move || f.load(std::sync::atomic::Ordering::SeqCst)).await;
}

#[tokio::test]
async fn preconditions_follow_rfc9110_precedence_on_hits() {
    const LM: &str = "Sun, 01 Nov 2026 00:00:00 GMT";
    let up = json_upstream(
        3000,
        "public, max-age=600",
        &[("etag", "\"v1\""), ("last-modified", LM)],
    )
    .await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    get(&px, "/p", &[]).await; // store
    let before = "Sat, 31 Oct 2026 00:00:00 GMT";
    let after = "Mon, 02 Nov 2026 00:00:00 GMT";
    let cases: &[(&[(&str, &str)], u16)] = &[
        (&[("if-match", "\"v1\"")], 200),
        (&[("if-match", "\"nope\"")], 412),
        // If-Match is evaluated before If-None-Match.
        (
            &[("if-match", "\"nope\""), ("if-none-match", "\"v1\"")],
            412,
        ),
        (&[("if-match", "\"v1\""), ("if-none-match", "\"v1\"")], 304),
        (&[("if-unmodified-since", before)], 412),
        (&[("if-unmodified-since", after)], 200),
        // If-Unmodified-Since is ignored when If-Match is present.
        (&[("if-match", "*"), ("if-unmodified-since", before)], 200),
        (&[("if-modified-since", LM)], 304),
        (&[("if-modified-since", before)], 200),
        // If-None-Match wins over If-Modified-Since.
        (
            &[("if-none-match", "\"x\""), ("if-modified-since", after)],
            200,
        ),
        // A failing If-Match beats a Range.
        (&[("if-match", "\"nope\""), ("range", "bytes=0-1")], 412),
    ];
    for (h, want) in cases {
        let r = get(&px, "/p", h).await;
        assert_eq!(r.status().as_u16(), *want, "{h:?}");
    }
    // If-Match compares strongly: the weak tag of a br variant never matches.
    wait_until_coding(&px, "/p", "br").await;
    let r = get(
        &px,
        "/p",
        &[("accept-encoding", "br"), ("if-match", "\"v1\"")],
    )
    .await;
    assert_eq!(r.status(), 412);
    assert_eq!(up.count(), 1);
    let _ = px.shutdown().await;
}

#[tokio::test]
async fn every_range_form_is_served_from_the_cache() {
    let body: String = (0..10_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let b2 = body.clone();
    let up = TestUpstream::start(move |_| {
        let b = b2.clone();
        async move {
            response(
                200,
                b,
                &[
                    ("content-type", "text/plain"),
                    ("cache-control", "public, max-age=600"),
                    ("etag", "\"r1\""),
                    ("last-modified", "Sun, 01 Nov 2026 00:00:00 GMT"),
                ],
            )
        }
    })
    .await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    get(&px, "/r", &[]).await;
    let range = |v: &'static str| [("range", v)];
    let r = get(&px, "/r", &range("bytes=0-9")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.body(), &body[..10]);
    assert_eq!(header(&r, "content-range"), Some("bytes 0-9/10000"));
    assert_eq!(header(&r, "content-length"), Some("10"));
    let r = get(&px, "/r", &range("bytes=9990-")).await;
    assert_eq!(
        (r.status().as_u16(), r.body().as_ref()),
        (206, &body.as_bytes()[9990..])
    );
    let r = get(&px, "/r", &range("bytes=-5")).await;
    assert_eq!(r.body(), &body[9995..]);
    assert_eq!(header(&r, "content-range"), Some("bytes 9995-9999/10000"));
    let r = get(&px, "/r", &range("bytes=0-1, 100-102")).await;
    assert_eq!(r.status(), 206);
    let ct = header(&r, "content-type").unwrap().to_string();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let boundary = ct.split("boundary=").nth(1).unwrap();
    let text = String::from_utf8(r.body().to_vec()).unwrap();
    assert_eq!(text.matches(&format!("--{boundary}\r\n")).count(), 2);
    assert!(text.contains("content-range: bytes 0-1/10000\r\n\r\nab\r\n"));
    assert!(text.contains(&format!(
        "content-range: bytes 100-102/10000\r\n\r\n{}\r\n",
        &body[100..103]
    )));
    assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    let r = get(&px, "/r", &range("bytes=20000-")).await;
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), Some("bytes */10000"));
    // If-Range: a matching strong tag or date gives the range, anything else the whole.
    for (if_range, want) in [
        ("\"r1\"", 206),
        ("\"old\"", 200),
        ("W/\"r1\"", 200),
        ("Sun, 01 Nov 2026 00:00:00 GMT", 206),
        ("Mon, 02 Nov 2026 00:00:00 GMT", 200),
    ] {
        let r = get(&px, "/r", &[("range", "bytes=0-9"), ("if-range", if_range)]).await;
        assert_eq!(r.status().as_u16(), want, "{if_range}");
    }
    // Invalid syntax: the field is ignored.
    let r = get(&px, "/r", &range("bytes=9-1")).await;
    assert_eq!((r.status().as_u16(), r.body().len()), (200, 10_000));
    // HEAD ignores Range.
    let r = send(
        px.addr(),
        request("HEAD", "/r", &[("range", "bytes=0-9")], ""),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(up.count(), 1, "every answer came from the cache");
    let _ = px.shutdown().await;
}

#[tokio::test]
async fn ranges_apply_to_the_selected_encoding() {
    let up = json_upstream(20_000, "public, max-age=600", &[("etag", "\"j\"")]).await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    get(&px, "/j", &[]).await;
    wait_until_coding(&px, "/j", "gzip").await;
    let full = get(&px, "/j", &[("accept-encoding", "gzip")]).await;
    let n = full.body().len();
    assert!(n < 20_000);
    let r = get(
        &px,
        "/j",
        &[("accept-encoding", "gzip"), ("range", "bytes=0-99")],
    )
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(coding(&r), Some("gzip"));
    assert_eq!(
        header(&r, "content-range").unwrap(),
        format!("bytes 0-99/{n}")
    );
    assert_eq!(r.body(), &full.body()[..100]);
    let _ = px.shutdown().await;
}

#[tokio::test]
async fn a_hit_never_compresses() {
    let up = json_upstream(64 * 1024, "public, max-age=600", &[]).await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    let ae = [("accept-encoding", "br, gzip")];
    let miss = get(&px, "/big", &ae).await;
    assert_eq!(coding(&miss), Some("br"), "the miss streams br");
    assert_eq!(metric(&px, &ops("br", "stream")).await, 1);
    let stats = |s: String| -> serde_json::Value { serde_json::from_str(&s).unwrap() };
    let bytes_before = stats(admin_get(&px, "/stats").await.1)["cache"]["bytes"]
        .as_u64()
        .unwrap();
    // The first hit asks for br: it is made once in the background.
    wait_until_coding(&px, "/big", "br").await;
    assert_eq!(metric(&px, &ops("br", "stored")).await, 1);
    let bytes_after = stats(admin_get(&px, "/stats").await.1)["cache"]["bytes"]
        .as_u64()
        .unwrap();
    assert!(
        bytes_after > bytes_before,
        "the variant is charged to the cache: {bytes_before} -> {bytes_after}"
    );
    for _ in 0..20 {
        let r = get(&px, "/big", &ae).await;
        assert_eq!(coding(&r), Some("br"));
        assert!(header(&r, "cache-status").unwrap().contains("hit"));
        assert_eq!(decoded(&r), json(64 * 1024).as_bytes());
    }
    // Twenty more hits: no compression of any kind happened.
    for c in ["br", "zstd", "gzip", "deflate"] {
        let want_stream = u64::from(c == "br");
        let want_stored = u64::from(c == "br");
        assert_eq!(metric(&px, &ops(c, "stream")).await, want_stream, "{c}");
        assert_eq!(metric(&px, &ops(c, "stored")).await, want_stored, "{c}");
        assert_eq!(metric(&px, &ops(c, "inline")).await, 0, "{c}");
    }
    let st = stats(admin_get(&px, "/stats").await.1);
    assert!(
        st["compression"]["saved_bytes"].as_u64().unwrap() > 20 * 40_000,
        "{st}"
    );
    assert_eq!(up.count(), 1);
    let _ = px.shutdown().await;
}

#[tokio::test]
async fn upstream_compressed_bodies_are_stored_as_such_and_decoded_once() {
    let plain = json(5000);
    let gz = encode(Coding::Gzip, 6, plain.as_bytes()).unwrap();
    let up = TestUpstream::start(move |_| {
        let gz = gz.clone();
        async move {
            response(
                200,
                gz,
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                    ("cache-control", "public, max-age=600"),
                    ("etag", "\"g\""),
                ],
            )
        }
    })
    .await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    let first = get(&px, "/z", &[("accept-encoding", "gzip")]).await;
    assert_eq!(coding(&first), Some("gzip"));
    let hit = get(&px, "/z", &[("accept-encoding", "gzip")]).await;
    assert_eq!(coding(&hit), Some("gzip"));
    assert_eq!(header(&hit, "etag"), Some("\"g\""));
    for _ in 0..5 {
        let r = get(&px, "/z", &[]).await;
        assert_eq!(coding(&r), None);
        assert_eq!(r.body(), plain.as_bytes());
        assert_eq!(header(&r, "etag"), Some("W/\"g\""), "decoded = transformed");
    }
    assert_eq!(metric(&px, &ops("gzip", "decode")).await, 1, "decoded once");
    assert_eq!(up.count(), 1);
    let _ = px.shutdown().await;
}

#[tokio::test]
async fn identity_refused_gets_a_coding_or_406() {
    let up = TestUpstream::start(|seen| async move {
        let cc = if seen.uri.path() == "/nt" {
            "public, max-age=600, no-transform"
        } else {
            "public, max-age=600"
        };
        response(
            200,
            json(3000),
            &[("content-type", "application/json"), ("cache-control", cc)],
        )
    })
    .await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    get(&px, "/ok", &[]).await;
    get(&px, "/nt", &[]).await;
    let r = get(&px, "/ok", &[("accept-encoding", "gzip, identity;q=0")]).await;
    assert_eq!((r.status().as_u16(), coding(&r)), (200, Some("gzip")));
    let r = get(&px, "/nt", &[("accept-encoding", "gzip, identity;q=0")]).await;
    assert_eq!(r.status(), 406, "no-transform and identity refused");
    let r = get(&px, "/ok", &[("accept-encoding", "*;q=0")]).await;
    assert_eq!(r.status(), 406);
    let _ = px.shutdown().await;
}

#[tokio::test]
async fn generated_etags_for_stored_responses_unless_opted_out() {
    let up = TestUpstream::start(|_| async {
        response(
            200,
            "hello world",
            &[
                ("content-type", "text/plain"),
                ("cache-control", "public, max-age=600"),
            ],
        )
    })
    .await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    get(&px, "/g", &[]).await;
    let hit = get(&px, "/g", &[]).await;
    let etag = header(&hit, "etag").expect("generated etag").to_string();
    assert!(etag.starts_with('"') && etag.len() == 18, "{etag}");
    let r = get(&px, "/g", &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), 304);
    let toml = format!(
        "{}\n[routes.compression]\ngenerate_etag = false\n",
        cfg("", "")
    );
    let px2 = TestProxy::start(&toml, &up.url()).await;
    get(&px2, "/g", &[]).await;
    let hit = get(&px2, "/g", &[]).await;
    assert!(header(&hit, "cache-status").unwrap().contains("hit"));
    assert!(header(&hit, "etag").is_none());
    let _ = px.shutdown().await;
    let _ = px2.shutdown().await;
}

#[tokio::test]
async fn request_bodies_are_decoded_with_a_bomb_cap() {
    let up = TestUpstream::ok().await;
    let toml = format!(
        "{}\n[compression]\ndecompress_requests = true\nmax_decompressed_size = \"64KiB\"\n",
        cfg("", "")
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    let plain = json(10_000);
    let gz = encode(Coding::Gzip, 6, plain.as_bytes()).unwrap();
    let mut req = request("POST", "/upload", &[("content-encoding", "gzip")], "");
    *req.body_mut() = http_body_util::Full::new(gz);
    let r = send(px.addr(), req).await;
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert_eq!(seen.body_len, plain.len() as u64);
    assert!(!seen.headers.contains_key("content-encoding"));
    // 16 MiB of zeros compress to a few KiB: refused past the cap, never forwarded.
    let bomb = encode(Coding::Zstd, 3, &vec![0u8; 16 << 20]).unwrap();
    assert!(bomb.len() < 64 * 1024);
    let mut req = request("POST", "/upload", &[("content-encoding", "zstd")], "");
    *req.body_mut() = http_body_util::Full::new(bomb);
    let r = send(px.addr(), req).await;
    assert_eq!(r.status(), 413);
    let mut req = request("POST", "/upload", &[("content-encoding", "br")], "");
    *req.body_mut() = http_body_util::Full::new(Bytes::from_static(b"not brotli at all"));
    assert_eq!(send(px.addr(), req).await.status(), 400);
    assert_eq!(up.count(), 1);
    let _ = px.shutdown().await;
}

#[tokio::test]
async fn large_streamed_responses_compress_chunk_by_chunk() {
    let up = TestUpstream::start(|_| async {
        let chunks = (0..256).map(|i| {
            Ok::<_, rampart_core::BoxError>(http_body::Frame::data(Bytes::from(
                json(8192).replace("item", &format!("i{i}")),
            )))
        });
        let body = rampart_core::body::boxed(http_body_util::StreamBody::new(
            futures_util::stream::iter(chunks),
        ));
        let mut r = http::Response::new(body);
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r.headers_mut()
            .insert("cache-control", "no-store".parse().unwrap());
        r
    })
    .await;
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    let r = get(&px, "/stream", &[("accept-encoding", "zstd")]).await;
    assert_eq!(coding(&r), Some("zstd"));
    let d = decoded(&r);
    let want: String = (0..256)
        .map(|i| json(8192).replace("item", &format!("i{i}")))
        .collect();
    assert_eq!(d, want.as_bytes());
    assert!(r.body().len() < d.len() / 4);
    let _ = px.shutdown().await;
}
