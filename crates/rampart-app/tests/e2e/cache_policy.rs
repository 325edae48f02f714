//! Cache policy from config: key composition (query allow list, request headers, cookies),
//! opt-in overrides, custom tag headers.

use rampart_testkit::{
    TestProxy, TestUpstream,
    client::{self, request, send},
};

use crate::{admin_purge, cfg};

/// An origin whose answers are public for a minute, body = the request target.
async fn cacheable_origin(extra: &'static [(&'static str, &'static str)]) -> TestUpstream {
    TestUpstream::start(move |seen| async move {
        let mut headers = vec![("cache-control", "public, max-age=60")];
        headers.extend_from_slice(extra);
        rampart_testkit::response(200, seen.uri.to_string(), &headers)
    })
    .await
}

fn cache_status(r: &rampart_testkit::client::Buffered) -> String {
    r.headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn get_with(px: &TestProxy, path: &str, headers: &[(&str, &str)]) -> String {
    let r = send(px.addr(), request("GET", path, headers, "")).await;
    assert_eq!(r.status(), 200);
    cache_status(&r)
}

#[tokio::test]
async fn key_takes_allowed_query_params_headers_and_cookies() {
    let up = cacheable_origin(&[]).await;
    let toml = format!(
        "{}\n[routes.cache]\nquery = \"allow\"\nquery_params = [\"page\"]\nkey_headers = [\"Accept-Language\"]\nkey_cookies = [\"currency\"]\n",
        cfg("", "")
    );
    let px = TestProxy::start(&toml, &up.url()).await;

    assert!(
        get_with(&px, "/list?page=1&utm=a", &[])
            .await
            .contains("miss")
    );
    // Parameters outside the allow list (and their order) do not make a new key.
    let s = get_with(&px, "/list?utm=b&page=1", &[]).await;
    assert!(s.starts_with("rampart; hit"), "{s}");
    assert_eq!(up.count(), 1);
    assert!(get_with(&px, "/list?page=2", &[]).await.contains("miss"));
    assert_eq!(up.count(), 2);

    // A key header splits the key by its value.
    let fr = [("accept-language", "fr")];
    assert!(get_with(&px, "/list?page=1", &fr).await.contains("miss"));
    assert!(
        get_with(&px, "/list?page=1", &fr)
            .await
            .starts_with("rampart; hit")
    );
    assert_eq!(up.count(), 3);

    // So does a key cookie, whatever other cookies come with it.
    let eur = [("cookie", "currency=EUR")];
    assert!(get_with(&px, "/list?page=1", &eur).await.contains("miss"));
    let s = get_with(
        &px,
        "/list?page=1",
        &[("cookie", "theme=dark; currency=EUR")],
    )
    .await;
    assert!(s.starts_with("rampart; hit"), "{s}");
    assert_eq!(up.count(), 4);
}

#[tokio::test]
async fn deny_listed_query_params_are_dropped_from_the_key() {
    let up = cacheable_origin(&[]).await;
    let toml = format!(
        "{}\n[routes.cache]\nquery = \"deny\"\nquery_params = [\"utm_source\", \"fbclid\"]\n",
        cfg("", "")
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    get_with(&px, "/p?id=7&utm_source=x", &[]).await;
    let s = get_with(&px, "/p?fbclid=1&id=7", &[]).await;
    assert!(s.starts_with("rampart; hit"), "{s}");
    get_with(&px, "/p?id=8", &[]).await;
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn overrides_are_opt_in() {
    let up = TestUpstream::start(|_| async {
        rampart_testkit::response(200, "x", &[("cache-control", "no-store, max-age=60")])
    })
    .await;
    // Default: no-store is obeyed.
    let px = TestProxy::start(&cfg("", ""), &up.url()).await;
    get_with(&px, "/a", &[]).await;
    get_with(&px, "/a", &[]).await;
    assert_eq!(up.count(), 2);
    // Opted in: stored, and a client's no-cache does not force a refetch.
    let toml = format!(
        "{}\n[routes.cache]\nignore_no_store = true\nignore_request_no_cache = true\n",
        cfg("", "")
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    get_with(&px, "/b", &[]).await;
    let s = get_with(&px, "/b", &[("cache-control", "no-cache")]).await;
    assert!(s.starts_with("rampart; hit"), "{s}");
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn tags_come_from_the_configured_headers() {
    let up = cacheable_origin(&[("x-tags", "red, blue"), ("surrogate-key", "green")]).await;
    let toml = format!(
        "{}\n[cache]\ntag_headers = [{{ name = \"X-Tags\", separator = \"comma\" }}]\n",
        cfg("", "")
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    client::get(px.addr(), "/t").await;
    let purge = |body: &'static str| async {
        let (status, answer) = admin_purge(&px, body).await;
        assert_eq!(status, 200, "{answer}");
        answer["purged"].as_u64().unwrap()
    };
    // Surrogate-Key is no longer a tag header here.
    assert_eq!(purge("{\"tags\":[\"green\"]}").await, 0);
    assert_eq!(purge("{\"tags\":[\"blue\"]}").await, 1);
    client::get(px.addr(), "/t").await;
    assert_eq!(up.count(), 2, "the purged object is fetched again");
}
