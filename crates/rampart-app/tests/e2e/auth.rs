//! Authentication at the edge (layer 12) through the real gateway: JWT with every algorithm
//! family, JWKS rotation, API-key rotation (and the `api_key` rate-limit key), CSRF,
//! 401 + `WWW-Authenticate`, 403 for a missing role, claim forwarding with spoofed copies
//! stripped, CORS preflights answered before auth.
//!
//! The key pairs are rampart-guard's throwaway test keys (`crates/rampart-guard/tests/keys`).

use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rampart_testkit::{
    TestProxy, TestUpstream,
    client::{request, send},
    response,
};
use serde_json::json;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rampart-guard/tests/keys");
const RSA_PRIV: &[u8] = include_bytes!("../../../rampart-guard/tests/keys/rsa_private.pem");
const RSA2_PRIV: &[u8] = include_bytes!("../../../rampart-guard/tests/keys/rsa2_private.pem");
const RSA_N: &str = include_str!("../../../rampart-guard/tests/keys/rsa_n.b64u");
const RSA2_N: &str = include_str!("../../../rampart-guard/tests/keys/rsa2_n.b64u");
const EC256_PRIV: &[u8] = include_bytes!("../../../rampart-guard/tests/keys/ec256_private.pem");
const EC384_PRIV: &[u8] = include_bytes!("../../../rampart-guard/tests/keys/ec384_private.pem");
const ED_PRIV: &[u8] = include_bytes!("../../../rampart-guard/tests/keys/ed25519_private.pem");
const HMAC: &str = "0123456789abcdef0123456789abcdef";

fn token(alg: Algorithm, kid: &str, key: &EncodingKey, extra: serde_json::Value) -> String {
    let mut c = json!({
        "sub": "alice",
        "iss": "https://idp.test",
        "aud": "rampart",
        "exp": jsonwebtoken::get_current_timestamp() + 3600,
        "roles": ["user"],
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    let mut h = Header::new(alg);
    h.kid = Some(kid.to_owned());
    encode(&h, &c, key).unwrap()
}

fn sha256_hex(s: &str) -> String {
    rampart_guard::auth::apikey::sha256_hex(s.as_bytes())
}

/// `[auth]` with one static-key verifier `idp` (every family) and two API keys.
fn auth_section() -> String {
    format!(
        r#"
[[auth.jwt]]
name = "idp"
algorithms = ["HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA"]
issuers = ["https://idp.test"]
audiences = ["rampart"]
[[auth.jwt.keys]]
kid = "h"
type = "hmac"
secret = "{HMAC}"
[[auth.jwt.keys]]
kid = "rsa"
type = "rsa"
file = "{KEYS}/rsa_public.pem"
[[auth.jwt.keys]]
kid = "ec256"
type = "ec"
file = "{KEYS}/ec256_public.pem"
[[auth.jwt.keys]]
kid = "ec384"
type = "ec"
file = "{KEYS}/ec384_public.pem"
[[auth.jwt.keys]]
kid = "ed"
type = "ed25519"
file = "{KEYS}/ed25519_public.pem"

[[auth.api_keys]]
name = "key-2025"
sha256 = "{}"
[[auth.api_keys]]
name = "key-2026"
sha256 = "sha256:{}"
"#,
        sha256_hex("old-secret-key"),
        sha256_hex("new-secret-key")
    )
}

fn routes(extra_routes: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"app\"\nendpoints = [\"{{upstream}}\"]\n{}\n{extra_routes}",
        auth_section()
    )
}

const JWT_ROUTES: &str = r#"
[[routes]]
name = "admin"
path = "/admin"
upstream = "app"
[routes.auth]
jwt = "idp"
roles = ["admin"]

[[routes]]
name = "api"
path = "/api"
upstream = "app"
[routes.auth]
jwt = "idp"
forward_claims = { sub = "x-user-sub", roles = "x-user-roles" }
[routes.cors]
origins = ["https://app.example.com"]
methods = ["GET", "POST"]
headers = ["authorization"]

[[routes]]
name = "open"
path = "/"
upstream = "app"
"#;

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

async fn get_with(px: &TestProxy, path: &str, headers: &[(&str, &str)]) -> (u16, http::HeaderMap) {
    let r = send(px.addr(), request("GET", path, headers, "")).await;
    (r.status().as_u16(), r.headers().clone())
}

#[tokio::test]
async fn jwt_every_algorithm_family_through_the_gateway() {
    let up = TestUpstream::ok().await;
    let px = TestProxy::start(&routes(JWT_ROUTES), &up.url()).await;
    let cases = [
        (
            Algorithm::HS256,
            "h",
            EncodingKey::from_secret(HMAC.as_bytes()),
        ),
        (
            Algorithm::RS256,
            "rsa",
            EncodingKey::from_rsa_pem(RSA_PRIV).unwrap(),
        ),
        (
            Algorithm::PS256,
            "rsa",
            EncodingKey::from_rsa_pem(RSA_PRIV).unwrap(),
        ),
        (
            Algorithm::ES256,
            "ec256",
            EncodingKey::from_ec_pem(EC256_PRIV).unwrap(),
        ),
        (
            Algorithm::ES384,
            "ec384",
            EncodingKey::from_ec_pem(EC384_PRIV).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            "ed",
            EncodingKey::from_ed_pem(ED_PRIV).unwrap(),
        ),
    ];
    for (alg, kid, key) in &cases {
        let t = token(*alg, kid, key, json!({"sub": format!("user-{alg:?}")}));
        // A spoofed copy of a forwarded-claim header is replaced by the verified claim.
        let (status, _) = get_with(
            &px,
            "/api/x",
            &[("authorization", &bearer(&t)), ("x-user-sub", "mallory")],
        )
        .await;
        assert_eq!(status, 200, "{alg:?}");
        let seen = up.last();
        assert_eq!(
            seen.headers["x-user-sub"],
            format!("user-{alg:?}").as_str(),
            "{alg:?}"
        );
        assert_eq!(seen.headers["x-user-roles"], "user");
        assert_eq!(seen.headers.get_all("x-user-sub").iter().count(), 1);
    }
    // A token for RS384 (not in this verifier's list) is refused.
    let rs384 = token(Algorithm::RS384, "rsa", &cases[1].2, json!({}));
    let (status, h) = get_with(&px, "/api/x", &[("authorization", &bearer(&rs384))]).await;
    assert_eq!(status, 401);
    assert_eq!(
        h["www-authenticate"],
        "Bearer realm=\"rampart\", error=\"invalid_token\""
    );
    // Expired and wrong-audience tokens are refused.
    let expired = token(
        Algorithm::RS256,
        "rsa",
        &cases[1].2,
        json!({"exp": jsonwebtoken::get_current_timestamp() - 3600}),
    );
    assert_eq!(
        get_with(&px, "/api/x", &[("authorization", &bearer(&expired))])
            .await
            .0,
        401
    );
    let aud = token(
        Algorithm::ES256,
        "ec256",
        &cases[3].2,
        json!({"aud": "other"}),
    );
    assert_eq!(
        get_with(&px, "/api/x", &[("authorization", &bearer(&aud))])
            .await
            .0,
        401
    );
    let metrics = crate::admin_get(&px, "/metrics").await.1;
    assert!(
        metrics.contains("rampart_auth_failures_total{route=\"api\",reason=\"expired\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rampart_auth_failures_total{route=\"api\",reason=\"audience\"} 1"));
    px.shutdown().await;
}

#[tokio::test]
async fn missing_token_401_missing_role_403_spoofed_headers_stripped() {
    let up = TestUpstream::ok().await;
    let px = TestProxy::start(&routes(JWT_ROUTES), &up.url()).await;
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIV).unwrap();
    let before = up.count();
    let (status, h) = get_with(&px, "/api/x", &[("x-user-sub", "mallory")]).await;
    assert_eq!(status, 401);
    assert_eq!(h["www-authenticate"], "Bearer realm=\"rampart\"");
    assert_eq!(
        up.count(),
        before,
        "a refused request never reaches the upstream"
    );

    let user = token(Algorithm::RS256, "rsa", &rsa, json!({}));
    let (status, _) = get_with(&px, "/admin/users", &[("authorization", &bearer(&user))]).await;
    assert_eq!(status, 403, "a user token lacks the admin role");
    let admin = token(
        Algorithm::RS256,
        "rsa",
        &rsa,
        json!({"roles": ["user", "admin"]}),
    );
    let (status, _) = get_with(&px, "/admin/users", &[("authorization", &bearer(&admin))]).await;
    assert_eq!(status, 200);

    // Routes without auth pass, and their headers are untouched.
    let (status, _) = get_with(&px, "/public", &[("x-user-sub", "anyone")]).await;
    assert_eq!(status, 200);
    assert_eq!(up.last().headers["x-user-sub"], "anyone");
    px.shutdown().await;
}

#[tokio::test]
async fn cors_preflight_is_answered_before_auth() {
    let up = TestUpstream::ok().await;
    let px = TestProxy::start(&routes(JWT_ROUTES), &up.url()).await;
    let r = send(
        px.addr(),
        request(
            "OPTIONS",
            "/api/x",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(r.status(), 204, "a preflight carries no credentials");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // The actual request still needs a token.
    let (status, _) = get_with(&px, "/api/x", &[("origin", "https://app.example.com")]).await;
    assert_eq!(status, 401);
    px.shutdown().await;
}

#[tokio::test]
async fn jwks_rotation_through_the_gateway() {
    let jwk = |kid: &str, n: &str| json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": n.trim(), "e": "AQAB"});
    let doc = Arc::new(Mutex::new(json!({"keys": [jwk("k1", RSA_N)]}).to_string()));
    let served = doc.clone();
    let jwks = TestUpstream::start(move |_| {
        let body = served.lock().unwrap().clone();
        async move { response(200, body, &[("content-type", "application/json")]) }
    })
    .await;
    let up = TestUpstream::ok().await;
    let toml = format!(
        r#"
[[upstreams]]
name = "app"
endpoints = ["{{upstream}}"]

[[auth.jwt]]
name = "idp"
jwks_url = "{}/.well-known/jwks.json"
jwks_min_refresh = "0s"

[[routes]]
name = "api"
upstream = "app"
[routes.auth]
jwt = "idp"
"#,
        jwks.url()
    );
    let px = TestProxy::start(&toml, &up.url()).await;
    let k1 = EncodingKey::from_rsa_pem(RSA_PRIV).unwrap();
    let k2 = EncodingKey::from_rsa_pem(RSA2_PRIV).unwrap();
    let t1 = token(Algorithm::RS256, "k1", &k1, json!({}));
    let t2 = token(Algorithm::RS256, "k2", &k2, json!({}));
    assert_eq!(
        get_with(&px, "/x", &[("authorization", &bearer(&t1))])
            .await
            .0,
        200
    );
    assert_eq!(jwks.count(), 1, "first token fetched the JWKS once");
    assert_eq!(
        get_with(&px, "/x", &[("authorization", &bearer(&t1))])
            .await
            .0,
        200
    );
    assert_eq!(jwks.count(), 1, "known kid: served from the cache");
    // Not yet published: refused after one refresh.
    assert_eq!(
        get_with(&px, "/x", &[("authorization", &bearer(&t2))])
            .await
            .0,
        401
    );
    // The issuer rotates: k2 published, k1 retired.
    *doc.lock().unwrap() = json!({"keys": [jwk("k2", RSA2_N)]}).to_string();
    assert_eq!(
        get_with(&px, "/x", &[("authorization", &bearer(&t2))])
            .await
            .0,
        200
    );
    assert_eq!(
        get_with(&px, "/x", &[("authorization", &bearer(&t1))])
            .await
            .0,
        401
    );
    px.shutdown().await;
}

#[tokio::test]
async fn api_key_rotation_query_param_and_per_key_rate_limit() {
    let up = TestUpstream::ok().await;
    let px = TestProxy::start(
        &routes(
            r#"
[[routes]]
name = "partners"
path = "/partners"
upstream = "app"
[routes.auth]
api_key = "header:x-api-key"
[[routes.rate_limits]]
name = "per_key"
rate = "2/1m"
key = "api_key"

[[routes]]
name = "feed"
path = "/feed"
upstream = "app"
[routes.auth]
api_key = "query:api_key"
api_key_names = ["key-2026"]
"#,
        ),
        &up.url(),
    )
    .await;
    // Both keys of the rotation work at once.
    for k in ["old-secret-key", "new-secret-key"] {
        assert_eq!(
            get_with(&px, "/partners/a", &[("x-api-key", k)]).await.0,
            200,
            "{k}"
        );
    }
    let (status, h) = get_with(&px, "/partners/a", &[("x-api-key", "guess")]).await;
    assert_eq!(status, 401);
    assert_eq!(h["www-authenticate"], "ApiKey realm=\"rampart\"");
    assert_eq!(get_with(&px, "/partners/a", &[]).await.0, 401);
    // The rate limit counts per key name: the old key has one request left, the new one too.
    assert_eq!(
        get_with(&px, "/partners/a", &[("x-api-key", "old-secret-key")])
            .await
            .0,
        200
    );
    assert_eq!(
        get_with(&px, "/partners/a", &[("x-api-key", "old-secret-key")])
            .await
            .0,
        429
    );
    assert_eq!(
        get_with(&px, "/partners/a", &[("x-api-key", "new-secret-key")])
            .await
            .0,
        200
    );
    // Query parameter, restricted to the new key.
    assert_eq!(
        get_with(&px, "/feed?api_key=new-secret-key", &[]).await.0,
        200
    );
    assert_eq!(
        get_with(&px, "/feed?api_key=old-secret-key", &[]).await.0,
        403
    );
    px.shutdown().await;
}

#[tokio::test]
async fn csrf_guard_on_cookie_authenticated_posts() {
    let up = TestUpstream::ok().await;
    let px = TestProxy::start(
        &routes(
            r#"
[[routes]]
name = "app"
upstream = "app"
[routes.auth.csrf]
origins = ["https://app.example.com"]
token_cookie = "csrf"
"#,
        ),
        &up.url(),
    )
    .await;
    let post = |h: &'static [(&'static str, &'static str)]| {
        let addr = px.addr();
        async move {
            send(addr, request("POST", "/form", h, "a=1"))
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        post(&[("cookie", "session=1"), ("origin", "https://evil.example")]).await,
        403
    );
    assert_eq!(
        post(&[("cookie", "session=1")]).await,
        403,
        "no origin, no token"
    );
    assert_eq!(
        post(&[
            ("cookie", "session=1"),
            ("origin", "https://app.example.com")
        ])
        .await,
        200
    );
    assert_eq!(
        post(&[
            ("cookie", "session=1"),
            ("referer", "https://app.example.com/page")
        ])
        .await,
        200
    );
    assert_eq!(
        post(&[
            ("cookie", "session=1; csrf=tok123"),
            ("x-csrf-token", "tok123")
        ])
        .await,
        200,
        "double submit"
    );
    assert_eq!(
        post(&[("origin", "https://evil.example")]).await,
        200,
        "no cookie: no CSRF risk"
    );
    let r = send(
        px.addr(),
        request("GET", "/form", &[("cookie", "session=1")], ""),
    )
    .await;
    assert_eq!(r.status(), 200, "safe methods pass");
    let metrics = crate::admin_get(&px, "/metrics").await.1;
    assert!(
        metrics.contains("rampart_auth_failures_total{route=\"app\",reason=\"csrf\"} 2"),
        "{metrics}"
    );
    px.shutdown().await;
}

#[tokio::test]
async fn auth_runs_before_the_cache() {
    // A cacheable answer stored for an authenticated caller is never served to an
    // unauthenticated one (auth is layer 12, the cache 14).
    let up = TestUpstream::start(|_| async {
        response(200, "secret", &[("cache-control", "public, max-age=600")])
    })
    .await;
    let px = TestProxy::start(&routes(JWT_ROUTES), &up.url()).await;
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIV).unwrap();
    let t = token(Algorithm::RS256, "rsa", &rsa, json!({}));
    for _ in 0..2 {
        let r = send(
            px.addr(),
            request("GET", "/api/doc", &[("authorization", &bearer(&t))], ""),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(up.count(), 1, "the second request was a cache hit");
    let r = send(px.addr(), request("GET", "/api/doc", &[], "")).await;
    assert_eq!(r.status(), 401);
    assert_ne!(r.body().as_ref(), b"secret");
    px.shutdown().await;
}
