//! Auth layer tests: JWT for every algorithm family, JWKS rotation, API-key rotation, RBAC,
//! claim forwarding, CSRF.
//!
//! The key pairs in `tests/keys/` are throwaway test keys generated with openssl for these
//! tests only.

#![allow(missing_docs, clippy::unwrap_used, clippy::type_complexity)]

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use common::{call, header, inner, req, route};
use futures_util::future::BoxFuture;
use http::{HeaderName, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rampart_core::BoxError;
use rampart_guard::{
    AuthLayer, AuthPolicy, EventSink, GuardMetrics, JwtRule, SecurityEventKind,
    auth::{
        RequiredClaim,
        apikey::{ApiKeyLookup, ApiKeySet, ApiKeySource, sha256_hex},
        csrf::{CsrfPolicy, DoubleSubmit},
        jwks::{HttpJwksFetcher, JwksCache, JwksFetcher, tls_client_config},
        jwt::{JwtSettings, JwtVerifier, KeyFamily, VerifyKey},
    },
    cors::OriginMatcher,
};
use serde_json::json;
use tower::Layer;

const RSA_PRIV: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUB: &[u8] = include_bytes!("keys/rsa_public.pem");
const RSA2_PRIV: &[u8] = include_bytes!("keys/rsa2_private.pem");
const RSA_N: &str = include_str!("keys/rsa_n.b64u");
const RSA2_N: &str = include_str!("keys/rsa2_n.b64u");
const EC256_PRIV: &[u8] = include_bytes!("keys/ec256_private.pem");
const EC256_PUB: &[u8] = include_bytes!("keys/ec256_public.pem");
const EC384_PRIV: &[u8] = include_bytes!("keys/ec384_private.pem");
const EC384_PUB: &[u8] = include_bytes!("keys/ec384_public.pem");
const ED_PRIV: &[u8] = include_bytes!("keys/ed25519_private.pem");
const ED_PUB: &[u8] = include_bytes!("keys/ed25519_public.pem");
const HMAC: &[u8] = b"0123456789abcdef0123456789abcdef";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "sub": "alice",
        "iss": "https://idp.test",
        "aud": "rampart",
        "exp": now() + 3600,
        "roles": ["user"],
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, c: &serde_json::Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    encode(&h, c, key).unwrap()
}

fn settings() -> JwtSettings {
    let mut s = JwtSettings {
        issuers: vec!["https://idp.test".into()],
        audiences: vec!["rampart".into()],
        leeway: Duration::from_secs(30),
        ..Default::default()
    };
    s.algorithms
        .extend([Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
    s
}

fn static_verifier() -> Arc<JwtVerifier> {
    Arc::new(JwtVerifier::new(
        vec![
            VerifyKey::hmac(Some("h".into()), HMAC),
            VerifyKey::from_pem(Some("rsa".into()), KeyFamily::Rsa, RSA_PUB).unwrap(),
            VerifyKey::from_pem(Some("ec256".into()), KeyFamily::Ec, EC256_PUB).unwrap(),
            VerifyKey::from_pem(Some("ec384".into()), KeyFamily::Ec, EC384_PUB).unwrap(),
            VerifyKey::from_pem(Some("ed".into()), KeyFamily::Ed, ED_PUB).unwrap(),
        ],
        None,
        &settings(),
    ))
}

fn jwt_route(verifier: Arc<JwtVerifier>, roles: &[&str]) -> Arc<rampart_core::RoutePolicy> {
    let mut rule = JwtRule::new(verifier);
    rule.required_roles = roles.iter().map(|r| r.to_string()).collect();
    rule.forward = vec![
        ("sub".into(), HeaderName::from_static("x-user-sub")),
        ("roles".into(), HeaderName::from_static("x-user-roles")),
    ];
    route(
        "api",
        Some(AuthPolicy {
            jwt: Some(rule),
            ..Default::default()
        }),
    )
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test]
async fn jwt_every_algorithm_family() {
    let r = jwt_route(static_verifier(), &[]);
    let mut svc = AuthLayer::default().layer(inner());
    let c = claims(json!({}));
    let hmac = EncodingKey::from_secret(HMAC);
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIV).unwrap();
    let ec256 = EncodingKey::from_ec_pem(EC256_PRIV).unwrap();
    let ec384 = EncodingKey::from_ec_pem(EC384_PRIV).unwrap();
    let ed = EncodingKey::from_ed_pem(ED_PRIV).unwrap();
    let cases: Vec<(Algorithm, Option<&str>, &EncodingKey)> = vec![
        (Algorithm::HS256, Some("h"), &hmac),
        (Algorithm::HS384, Some("h"), &hmac),
        (Algorithm::HS512, None, &hmac),
        (Algorithm::RS256, Some("rsa"), &rsa),
        (Algorithm::RS384, Some("rsa"), &rsa),
        (Algorithm::RS512, None, &rsa),
        (Algorithm::PS256, Some("rsa"), &rsa),
        (Algorithm::ES256, Some("ec256"), &ec256),
        (Algorithm::ES384, None, &ec384),
        (Algorithm::EdDSA, Some("ed"), &ed),
    ];
    for (alg, kid, key) in cases {
        let t = sign(alg, kid, key, &c);
        let resp = call(
            &mut svc,
            req(
                "GET",
                "/",
                "192.0.2.1",
                &r,
                &[("authorization", &bearer(&t))],
            ),
        )
        .await;
        assert_eq!(resp.status(), 200, "{alg:?}");
        assert_eq!(header(&resp, "x-seen-x-user-sub"), Some("alice"));
        assert_eq!(header(&resp, "x-seen-x-user-roles"), Some("user"));
        assert_eq!(header(&resp, "x-identity"), Some("jwt:alice"));
    }
}

#[tokio::test]
async fn verified_tokens_are_remembered_unless_the_cache_is_off() {
    let key = EncodingKey::from_secret(HMAC);
    let token = sign(Algorithm::HS256, Some("h"), &key, &claims(json!({})));
    let cached = static_verifier();
    let a = cached.verify(&token).await.unwrap();
    let b = cached.verify(&token).await.unwrap();
    assert!(
        Arc::ptr_eq(&a, &b),
        "the second verification is a cache hit"
    );
    assert_eq!(a["sub"], "alice");
    // A token differing only in its signature is not a hit: it is verified, and refused.
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_ne!(forged, token);
    assert!(cached.verify(&forged).await.is_err());

    let uncached = JwtVerifier::new(
        vec![VerifyKey::hmac(Some("h".into()), HMAC)],
        None,
        &JwtSettings {
            cache_size: 0,
            ..settings()
        },
    );
    let a = uncached.verify(&token).await.unwrap();
    let b = uncached.verify(&token).await.unwrap();
    assert!(!Arc::ptr_eq(&a, &b), "cache_size = 0 verifies every time");
    assert_eq!(a, b);
}

#[tokio::test]
async fn rate_limit_claim_keys_read_the_verifier_cache() {
    use rampart_guard::ratelimit::{KeySource, KeyValue};
    let key = EncodingKey::from_secret(HMAC);
    let verified = sign(Algorithm::HS256, Some("h"), &key, &claims(json!({})));
    let fresh = sign(
        Algorithm::HS256,
        Some("h"),
        &key,
        &claims(json!({"sub": "bob"})),
    );
    let verifier = static_verifier();
    verifier.verify(&verified).await.unwrap();
    assert!(verifier.cached_claims(&verified).is_some());
    assert!(
        verifier.cached_claims(&fresh).is_none(),
        "a lookup never verifies"
    );
    let source = KeySource::parse("jwt_claim:sub", 24, 64, None)
        .unwrap()
        .with_jwt_verifier(Some(verifier.clone()));
    let request = |t: &str| {
        http::Request::builder()
            .header("authorization", bearer(t))
            .body(())
            .unwrap()
    };
    let (a, b) = (request(&verified), request(&fresh));
    assert_eq!(source.extract(&a), Some(KeyValue::Text("alice".into())));
    // Not verified yet: read from the token itself, as without a verifier.
    assert_eq!(source.extract(&b), Some(KeyValue::Text("bob".into())));
    assert!(verifier.cached_claims(&fresh).is_none());
}

#[tokio::test]
async fn jwt_refusals() {
    let (events, mut rx) = EventSink::channel(100);
    let mut reg = prometheus_client::registry::Registry::default();
    let metrics = GuardMetrics::register(&mut reg);
    let r = jwt_route(static_verifier(), &["admin"]);
    let mut svc = AuthLayer::new(events, Some(metrics)).layer(inner());
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIV).unwrap();
    let hmac = EncodingKey::from_secret(HMAC);
    let admin = claims(json!({"roles": ["user", "admin"]}));

    // Missing token: 401 with a bare challenge.
    let resp = call(&mut svc, req("GET", "/", "192.0.2.1", &r, &[])).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&resp, "www-authenticate"),
        Some("Bearer realm=\"rampart\"")
    );

    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            sign(
                Algorithm::RS256,
                Some("rsa"),
                &rsa,
                &claims(json!({"exp": now() - 120, "roles": ["admin"]})),
            ),
        ),
        (
            "nbf",
            sign(
                Algorithm::RS256,
                Some("rsa"),
                &rsa,
                &claims(json!({"nbf": now() + 120, "roles": ["admin"]})),
            ),
        ),
        (
            "issuer",
            sign(
                Algorithm::RS256,
                Some("rsa"),
                &rsa,
                &claims(json!({"iss": "https://evil", "roles": ["admin"]})),
            ),
        ),
        (
            "audience",
            sign(
                Algorithm::RS256,
                Some("rsa"),
                &rsa,
                &claims(json!({"aud": "other", "roles": ["admin"]})),
            ),
        ),
        (
            "unknown kid",
            sign(Algorithm::RS256, Some("nope"), &rsa, &admin),
        ),
        (
            "wrong hmac secret",
            sign(
                Algorithm::HS256,
                Some("h"),
                &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
                &admin,
            ),
        ),
        ("garbage", "not.a.token".into()),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                b64(&admin.to_string())
            ),
        ),
    ];
    for (what, t) in cases {
        let resp = call(
            &mut svc,
            req(
                "GET",
                "/",
                "192.0.2.1",
                &r,
                &[("authorization", &bearer(&t))],
            ),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            header(&resp, "www-authenticate"),
            Some("Bearer realm=\"rampart\", error=\"invalid_token\""),
            "{what}"
        );
    }
    // Within leeway (30 s): accepted.
    let t = sign(
        Algorithm::RS256,
        Some("rsa"),
        &rsa,
        &claims(json!({"exp": now() - 10, "roles": ["admin"]})),
    );
    let resp = call(
        &mut svc,
        req(
            "GET",
            "/",
            "192.0.2.1",
            &r,
            &[("authorization", &bearer(&t))],
        ),
    )
    .await;
    assert_eq!(resp.status(), 200);
    // Valid token without the role: 403.
    let t = sign(Algorithm::HS256, Some("h"), &hmac, &claims(json!({})));
    let resp = call(
        &mut svc,
        req(
            "GET",
            "/",
            "192.0.2.1",
            &r,
            &[("authorization", &bearer(&t))],
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Incoming copies of forwarded headers are stripped even when the token is valid.
    let t = sign(Algorithm::HS256, Some("h"), &hmac, &admin);
    let resp = call(
        &mut svc,
        req(
            "GET",
            "/",
            "192.0.2.1",
            &r,
            &[("authorization", &bearer(&t)), ("x-user-sub", "root")],
        ),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-seen-x-user-sub"), Some("alice"));

    let mut kinds = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        kinds.push(ev.kind);
    }
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == SecurityEventKind::AuthFailed)
            .count(),
        9
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == SecurityEventKind::AuthForbidden)
            .count(),
        1
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
    assert!(
        out.contains("rampart_auth_failures_total{route=\"api\",reason=\"expired\"} 1"),
        "{out}"
    );
    assert!(
        out.contains("rampart_auth_failures_total{route=\"api\",reason=\"missing\"} 1"),
        "{out}"
    );
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn keys_load_from_files() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
    let p = |f: &str| std::path::PathBuf::from(format!("{dir}/{f}"));
    assert!(VerifyKey::from_file(None, KeyFamily::Rsa, &p("rsa_public.pem")).is_ok());
    assert!(VerifyKey::from_file(None, KeyFamily::Ec, &p("ec384_public.pem")).is_ok());
    assert!(VerifyKey::from_file(None, KeyFamily::Ed, &p("ed25519_public.pem")).is_ok());
    assert!(VerifyKey::from_file(None, KeyFamily::Hmac, &p("rsa_n.b64u")).is_ok());
    let missing = VerifyKey::from_file(None, KeyFamily::Rsa, &p("nope.pem")).unwrap_err();
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
    assert!(VerifyKey::from_file(None, KeyFamily::Rsa, &p("rsa_n.b64u")).is_err());
}

#[tokio::test]
async fn rsa_key_cannot_be_used_as_hmac_secret() {
    // Algorithm confusion: sign HS256 with the RSA *public* key bytes.
    let r = jwt_route(static_verifier(), &[]);
    let mut svc = AuthLayer::default().layer(inner());
    let t = sign(
        Algorithm::HS256,
        Some("rsa"),
        &EncodingKey::from_secret(RSA_PUB),
        &claims(json!({})),
    );
    let resp = call(
        &mut svc,
        req(
            "GET",
            "/",
            "192.0.2.1",
            &r,
            &[("authorization", &bearer(&t))],
        ),
    )
    .await;
    assert_eq!(resp.status(), 401);
}

/// A JWKS endpoint in memory: the document can be swapped, fetches are counted.
#[derive(Clone)]
struct FakeJwks {
    doc: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksFetcher for FakeJwks {
    fn fetch(&self) -> BoxFuture<'static, Result<Bytes, BoxError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let doc = self.doc.lock().unwrap().clone();
        Box::pin(async move { Ok(Bytes::from(doc)) })
    }
}

fn rsa_jwk(kid: &str, n: &str) -> serde_json::Value {
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n.trim(), "e": "AQAB"})
}

#[tokio::test(start_paused = true)]
async fn jwks_rotation_and_rate_limited_refresh() {
    let fake = FakeJwks {
        doc: Arc::new(Mutex::new(
            json!({"keys": [rsa_jwk("k1", RSA_N)]}).to_string(),
        )),
        fetches: Arc::new(AtomicUsize::new(0)),
    };
    let cache = JwksCache::new(
        Arc::new(fake.clone()),
        Duration::from_secs(300),
        Duration::from_secs(30),
    );
    assert_eq!(cache.refresh().await.unwrap(), 1);
    let verifier = Arc::new(JwtVerifier::new(vec![], Some(cache.clone()), &settings()));
    let r = jwt_route(verifier, &[]);
    let mut svc = AuthLayer::default().layer(inner());
    let k1 = EncodingKey::from_rsa_pem(RSA_PRIV).unwrap();
    let k2 = EncodingKey::from_rsa_pem(RSA2_PRIV).unwrap();
    let c = claims(json!({}));
    let send = |t: String| {
        req(
            "GET",
            "/",
            "192.0.2.1",
            &r,
            &[("authorization", &bearer(&t))],
        )
    };

    assert_eq!(
        call(&mut svc, send(sign(Algorithm::RS256, Some("k1"), &k1, &c)))
            .await
            .status(),
        200
    );
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 1);

    // The IdP rotates to k2. A k2 token triggers one refresh (the last fetch was long ago).
    tokio::time::advance(Duration::from_secs(60)).await;
    *fake.doc.lock().unwrap() = json!({"keys": [rsa_jwk("k2", RSA2_N)]}).to_string();
    assert_eq!(
        call(&mut svc, send(sign(Algorithm::RS256, Some("k2"), &k2, &c)))
            .await
            .status(),
        200
    );
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 2);
    // k1 is gone now.
    assert_eq!(
        call(&mut svc, send(sign(Algorithm::RS256, Some("k1"), &k1, &c)))
            .await
            .status(),
        401
    );
    // Unknown kids do not hammer the IdP: no refresh within 30 s of the last one.
    for _ in 0..5 {
        assert_eq!(
            call(&mut svc, send(sign(Algorithm::RS256, Some("zz"), &k1, &c)))
                .await
                .status(),
            401
        );
    }
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 2);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(
        call(&mut svc, send(sign(Algorithm::RS256, Some("zz"), &k1, &c)))
            .await
            .status(),
        401
    );
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 3);

    // Background refresh picks up a new key set without any request.
    *fake.doc.lock().unwrap() =
        json!({"keys": [rsa_jwk("k1", RSA_N), rsa_jwk("k2", RSA2_N)]}).to_string();
    let task = cache.spawn_refresher();
    tokio::time::sleep(Duration::from_secs(301)).await;
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 4);
    assert_eq!(cache.keys().len(), 2);
    task.abort();
}

#[tokio::test]
async fn jwks_over_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let doc = json!({"keys": [rsa_jwk("k1", RSA_N)]}).to_string();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
            doc.len()
        );
        s.write_all(resp.as_bytes()).await.unwrap();
        head
    });
    let fetcher = HttpJwksFetcher::new(
        &format!("http://{addr}/.well-known/jwks.json"),
        Duration::from_secs(5),
    )
    .unwrap();
    let cache = JwksCache::new(
        Arc::new(fetcher),
        Duration::from_secs(300),
        Duration::from_secs(30),
    );
    let n = tokio::time::timeout(Duration::from_secs(10), cache.refresh())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
    let head = server.await.unwrap();
    assert!(
        head.starts_with("GET /.well-known/jwks.json HTTP/1.1"),
        "{head}"
    );
    assert!(HttpJwksFetcher::new("ftp://idp/jwks", Duration::from_secs(1)).is_err());
    assert!(HttpJwksFetcher::new("/relative", Duration::from_secs(1)).is_err());
}

#[tokio::test]
async fn jwks_over_https_with_private_ca() {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cert = CertificateDer::from_pem_slice(include_bytes!("keys/tls_cert.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("keys/tls_key.pem")).unwrap();
    let ca = CertificateDer::from_pem_slice(include_bytes!("keys/tls_ca.pem")).unwrap();
    let server_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let doc = json!({"keys": [rsa_jwk("k1", RSA_N), rsa_jwk("k2", RSA2_N)]}).to_string();
    let server = tokio::spawn(async move {
        // First connection: the client does not trust our CA and aborts the handshake.
        let (s, _) = listener.accept().await.unwrap();
        assert!(acceptor.accept(s).await.is_err());
        let (s, _) = listener.accept().await.unwrap();
        let mut s = acceptor.accept(s).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"GET /jwks HTTP/1.1"));
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
            doc.len()
        );
        s.write_all(resp.as_bytes()).await.unwrap();
        s.shutdown().await.ok();
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let url = format!("https://127.0.0.1:{}/jwks", addr.port());
    let untrusting = HttpJwksFetcher::with_tls(
        &url,
        Duration::from_secs(5),
        tls_client_config(rustls::RootCertStore::empty()).unwrap(),
    )
    .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), untrusting.fetch())
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    let fetcher = HttpJwksFetcher::with_tls(
        &url,
        Duration::from_secs(5),
        tls_client_config(roots).unwrap(),
    )
    .unwrap();
    let cache = JwksCache::new(
        Arc::new(fetcher),
        Duration::from_secs(300),
        Duration::from_secs(30),
    );
    let n = tokio::time::timeout(Duration::from_secs(10), cache.refresh())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 2);
    server.await.unwrap();
}

#[tokio::test]
async fn api_key_rotation_header_and_query() {
    let keys = Arc::new(
        ApiKeySet::new()
            .with_hash("2025-q4", &sha256_hex(b"old-key"))
            .unwrap()
            .with_hash("2026-q1", &sha256_hex(b"new-key"))
            .unwrap(),
    );
    let by_header = route(
        "h",
        Some(AuthPolicy {
            api_key: Some(ApiKeyLookup {
                keys: keys.clone(),
                source: ApiKeySource::Header(HeaderName::from_static("x-api-key")),
            }),
            ..Default::default()
        }),
    );
    let by_query = route(
        "q",
        Some(AuthPolicy {
            api_key: Some(ApiKeyLookup {
                keys: keys.clone(),
                source: ApiKeySource::Query("api_key".into()),
            }),
            api_key_names: Some(vec!["2026-q1".into()]),
            ..Default::default()
        }),
    );
    let mut svc = AuthLayer::default().layer(inner());
    // Both keys work during the rotation.
    for (k, name) in [("old-key", "2025-q4"), ("new-key", "2026-q1")] {
        let resp = call(
            &mut svc,
            req("GET", "/", "192.0.2.1", &by_header, &[("x-api-key", k)]),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            header(&resp, "x-identity"),
            Some(format!("key:{name}").as_str())
        );
    }
    let resp = call(
        &mut svc,
        req(
            "GET",
            "/",
            "192.0.2.1",
            &by_header,
            &[("x-api-key", "wrong")],
        ),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        header(&resp, "www-authenticate"),
        Some("ApiKey realm=\"rampart\"")
    );
    let resp = call(&mut svc, req("GET", "/", "192.0.2.1", &by_header, &[])).await;
    assert_eq!(resp.status(), 401);
    // Query parameter, restricted to the new key.
    assert_eq!(
        call(
            &mut svc,
            req("GET", "/x?api_key=new-key", "192.0.2.1", &by_query, &[])
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        call(
            &mut svc,
            req("GET", "/x?api_key=old-key", "192.0.2.1", &by_query, &[])
        )
        .await
        .status(),
        403
    );
}

#[tokio::test]
async fn jwt_or_api_key_and_required_claims() {
    let keys = Arc::new(ApiKeySet::new().with_plain("ci", b"ci-key"));
    let mut rule = JwtRule::new(static_verifier());
    rule.required_claims = vec![RequiredClaim {
        claim: "scope".into(),
        value: Some(json!("orders:write")),
    }];
    let r = route(
        "both",
        Some(AuthPolicy {
            jwt: Some(rule),
            api_key: Some(ApiKeyLookup {
                keys,
                source: ApiKeySource::Header(HeaderName::from_static("x-api-key")),
            }),
            ..Default::default()
        }),
    );
    let mut svc = AuthLayer::default().layer(inner());
    let hmac = EncodingKey::from_secret(HMAC);
    let ok = sign(
        Algorithm::HS256,
        None,
        &hmac,
        &claims(json!({"scope": "orders:read orders:write"})),
    );
    let bad = sign(
        Algorithm::HS256,
        None,
        &hmac,
        &claims(json!({"scope": "orders:read"})),
    );
    assert_eq!(
        call(
            &mut svc,
            req(
                "GET",
                "/",
                "192.0.2.1",
                &r,
                &[("authorization", &bearer(&ok))]
            )
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        call(
            &mut svc,
            req(
                "GET",
                "/",
                "192.0.2.1",
                &r,
                &[("authorization", &bearer(&bad))]
            )
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        call(
            &mut svc,
            req("GET", "/", "192.0.2.1", &r, &[("x-api-key", "ci-key")])
        )
        .await
        .status(),
        200
    );
    let resp = call(&mut svc, req("GET", "/", "192.0.2.1", &r, &[])).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers().get_all("www-authenticate").iter().count(), 2);
}

#[tokio::test]
async fn csrf_guard_on_cookie_requests() {
    let (events, mut rx) = EventSink::channel(10);
    let r = route(
        "app",
        Some(AuthPolicy {
            csrf: Some(CsrfPolicy {
                origins: OriginMatcher::new(&["https://app.example.com"]).unwrap(),
                double_submit: Some(DoubleSubmit {
                    cookie: "csrf".into(),
                    header: HeaderName::from_static("x-csrf-token"),
                }),
                session_cookie: Some("session".into()),
            }),
            ..Default::default()
        }),
    );
    let mut svc = AuthLayer::new(events, None).layer(inner());
    let cases: Vec<(&str, Vec<(&str, &str)>, u16)> = vec![
        ("GET", vec![("cookie", "session=1")], 200),
        (
            "POST",
            vec![
                ("cookie", "session=1"),
                ("origin", "https://app.example.com"),
            ],
            200,
        ),
        (
            "POST",
            vec![("cookie", "session=1"), ("origin", "https://evil.example")],
            403,
        ),
        ("POST", vec![("cookie", "session=1")], 403),
        (
            "POST",
            vec![("cookie", "session=1; csrf=t0k"), ("x-csrf-token", "t0k")],
            200,
        ),
        (
            "PUT",
            vec![("cookie", "session=1; csrf=t0k"), ("x-csrf-token", "nope")],
            403,
        ),
        ("POST", vec![("authorization", "Bearer x")], 200), // no session cookie: not guarded
    ];
    for (m, h, want) in cases {
        let resp = call(&mut svc, req(m, "/", "192.0.2.1", &r, &h)).await;
        assert_eq!(resp.status().as_u16(), want, "{m} {h:?}");
    }
    assert_eq!(rx.try_recv().unwrap().kind, SecurityEventKind::CsrfRejected);
}

#[tokio::test]
async fn rate_limit_key_from_api_key_and_jwt_claim() {
    use rampart_guard::{Gcra, KeySource, MemoryStore, RateLimit, RateLimitLayer, RateLimitPolicy};
    use std::num::NonZeroU32;
    let keys = Arc::new(
        ApiKeySet::new()
            .with_plain("alpha", b"ka1")
            .with_plain("alpha2", b"ka2"),
    );
    let lookup = Arc::new(ApiKeyLookup {
        keys,
        source: ApiKeySource::Header(HeaderName::from_static("x-api-key")),
    });
    let one = NonZeroU32::new(1).unwrap();
    let per_key = RateLimit::new(
        "r",
        "per_key",
        Gcra::new(one, Duration::from_secs(60), one),
        KeySource::ApiKeyName(lookup),
    )
    .unwrap();
    let per_org = RateLimit::new(
        "r",
        "per_org",
        Gcra::new(one, Duration::from_secs(60), one),
        KeySource::JwtClaim("org".into(), None),
    )
    .unwrap();
    let r = route("r", Some(RateLimitPolicy::new(vec![per_key, per_org])));
    let mut svc = RateLimitLayer::new(
        Arc::new(MemoryStore::new(1000)),
        None,
        EventSink::disabled(),
    )
    .layer(inner());
    assert_eq!(
        call(
            &mut svc,
            req("GET", "/", "192.0.2.1", &r, &[("x-api-key", "ka1")])
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        call(
            &mut svc,
            req("GET", "/", "192.0.2.2", &r, &[("x-api-key", "ka1")])
        )
        .await
        .status(),
        429
    );
    assert_eq!(
        call(
            &mut svc,
            req("GET", "/", "192.0.2.2", &r, &[("x-api-key", "ka2")])
        )
        .await
        .status(),
        200
    );
    let hmac = EncodingKey::from_secret(HMAC);
    let t1 = sign(
        Algorithm::HS256,
        None,
        &hmac,
        &claims(json!({"org": "acme"})),
    );
    let t2 = sign(
        Algorithm::HS256,
        None,
        &hmac,
        &claims(json!({"org": "acme", "sub": "bob"})),
    );
    assert_eq!(
        call(
            &mut svc,
            req(
                "GET",
                "/",
                "192.0.2.1",
                &r,
                &[("authorization", &bearer(&t1))]
            )
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        call(
            &mut svc,
            req(
                "GET",
                "/",
                "192.0.2.3",
                &r,
                &[("authorization", &bearer(&t2))]
            )
        )
        .await
        .status(),
        429
    );
}

/// The rate limit (layer 10) leaves its API-key verdict for the auth layer (12); the verdict
/// is reused only for the same key set, header and raw value, never for a changed header or
/// another key set.
#[tokio::test]
async fn api_key_verdict_is_shared_only_when_it_applies() {
    use rampart_guard::{
        Gcra, KeySource, MemoryStore, RateLimit, RateLimitLayer, RateLimitPolicy,
        auth::apikey::ApiKeyVerdict,
    };
    use std::num::NonZeroU32;
    let x_api_key = HeaderName::from_static("x-api-key");
    let lookup = ApiKeyLookup {
        keys: Arc::new(ApiKeySet::new().with_plain("alpha", b"ka1")),
        source: ApiKeySource::Header(x_api_key.clone()),
    };
    let many = NonZeroU32::new(1000).unwrap();
    let per_key = RateLimit::new(
        "r",
        "per_key",
        Gcra::new(many, Duration::from_secs(1), many),
        KeySource::ApiKeyName(Arc::new(lookup.clone())),
    )
    .unwrap();
    let mut policy = rampart_core::RoutePolicy::new(rampart_core::RouteId(0), "r", None);
    policy
        .extensions
        .insert(RateLimitPolicy::new(vec![per_key]));
    policy.extensions.insert(AuthPolicy {
        api_key: Some(lookup.clone()),
        ..Default::default()
    });
    let r = Arc::new(policy);

    // Between the two layers: a service that records the verdict it sees and, when asked by
    // `x-swap`, replaces the key header (standing in for anything that rewrites headers).
    let seen: Arc<Mutex<Vec<bool>>> = Arc::default();
    let seen2 = seen.clone();
    let auth = AuthLayer::default().layer(inner());
    let middle = tower::service_fn(move |mut req: http::Request<rampart_core::Body>| {
        seen2
            .lock()
            .unwrap()
            .push(req.extensions().get::<ApiKeyVerdict>().is_some());
        if let Some(v) = req.headers().get("x-swap").cloned() {
            req.headers_mut().insert("x-api-key", v);
        }
        let mut auth = auth.clone();
        async move { tower::Service::call(&mut auth, req).await }
    });
    let mut svc = RateLimitLayer::new(
        Arc::new(MemoryStore::new(1000)),
        None,
        EventSink::disabled(),
    )
    .layer(middle);

    let h = |k: &'static str| [("x-api-key", k)];
    let resp = call(&mut svc, req("GET", "/", "192.0.2.1", &r, &h("ka1"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-identity"), Some("key:alpha"));
    let resp = call(&mut svc, req("GET", "/", "192.0.2.1", &r, &h("bad"))).await;
    assert_eq!(
        resp.status(),
        401,
        "an unknown key is refused from the shared verdict"
    );
    assert_eq!(*seen.lock().unwrap(), [true, true]);

    // The header changed after the rate limit checked it: auth checks the new value.
    let swapped = [("x-api-key", "ka1"), ("x-swap", "bad")];
    let resp = call(&mut svc, req("GET", "/", "192.0.2.1", &r, &swapped)).await;
    assert_eq!(resp.status(), 401);
    let swapped = [("x-api-key", "bad"), ("x-swap", "ka1")];
    let resp = call(&mut svc, req("GET", "/", "192.0.2.1", &r, &swapped)).await;
    assert_eq!(resp.status(), 200);

    // A verdict made for another key set (same header, same value) is not trusted.
    let other = ApiKeyLookup {
        keys: Arc::new(ApiKeySet::new().with_plain("mallory", b"ka2")),
        source: ApiKeySource::Header(x_api_key),
    };
    let mut auth_only = AuthLayer::default().layer(inner());
    let mut forged = req("GET", "/", "192.0.2.1", &r, &h("ka2"));
    let name: Arc<str> = "mallory".into();
    let verdict = other.verdict(&forged, Some(&name)).unwrap();
    forged.extensions_mut().insert(verdict);
    let resp = call(&mut auth_only, forged).await;
    assert_eq!(resp.status(), 401, "ka2 is not a key of the route's set");
}
