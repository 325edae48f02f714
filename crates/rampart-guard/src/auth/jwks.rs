//! JWKS: keys fetched from a URL, cached, refreshed in the background; an unknown `kid`
//! triggers one refresh, at most once per `min_refresh_interval`.
//!
//! The request path only reads the published key list (`ArcSwap`). Fetching goes through a
//! [`JwksFetcher`] so tests (and other transports) can supply keys; [`HttpJwksFetcher`] is the
//! built-in HTTP/1.1 fetcher (`https://` via rustls, or `http://`; bounded size and time).

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use rampart_core::BoxError;
use tokio::time::Instant;

use super::jwt::{KeyFamily, VerifyKey};

/// Fetches the JWKS document.
pub trait JwksFetcher: Send + Sync + 'static {
    /// The raw JSON of the key set.
    fn fetch(&self) -> BoxFuture<'static, Result<Bytes, BoxError>>;
}

/// A JWKS fetch or parse failed.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The fetcher failed.
    #[error("jwks fetch: {0}")]
    Fetch(#[source] BoxError),
    /// The document is not a JWK set.
    #[error("jwks parse: {0}")]
    Parse(#[source] serde_json::Error),
}

/// The cached key set of one JWKS source.
pub struct JwksCache {
    fetcher: Arc<dyn JwksFetcher>,
    keys: ArcSwap<Vec<VerifyKey>>,
    refresh_every: Duration,
    min_refresh_interval: Duration,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("keys", &self.keys.load().len())
            .field("refresh_every", &self.refresh_every)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// A cache with no keys yet. Call [`JwksCache::refresh`] once at startup (and treat an
    /// error as a config/readiness problem), then [`JwksCache::spawn_refresher`].
    pub fn new(
        fetcher: Arc<dyn JwksFetcher>,
        refresh_every: Duration,
        min_refresh_interval: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            fetcher,
            keys: ArcSwap::from_pointee(Vec::new()),
            refresh_every,
            min_refresh_interval,
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    /// The current keys (a snapshot).
    pub fn keys(&self) -> Arc<Vec<VerifyKey>> {
        self.keys.load_full()
    }

    /// Fetch and publish the key set now. Returns the number of usable keys. On error the old
    /// keys stay published.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let mut last = self.last_fetch.lock().await;
        self.refresh_locked(&mut last).await
    }

    async fn refresh_locked(&self, last: &mut Option<Instant>) -> Result<usize, JwksError> {
        *last = Some(Instant::now());
        let body = self.fetcher.fetch().await.map_err(JwksError::Fetch)?;
        let keys = parse_jwks(&body)?;
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(n)
    }

    /// Called on an unknown `kid`: refresh unless a fetch happened less than
    /// `min_refresh_interval` ago. Concurrent callers wait for the one refresh in flight.
    /// Returns `true` if the keys may have changed.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let mut last = self.last_fetch.lock().await;
        if let Some(t) = *last
            && t.elapsed() < self.min_refresh_interval
        {
            return true; // another caller just refreshed: retry with what it got
        }
        match self.refresh_locked(&mut last).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "jwks refresh after unknown kid failed");
                false
            }
        }
    }

    /// Refresh every `refresh_every` in the background until the cache is dropped.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = self.refresh_every;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(cache) = weak.upgrade() else { break };
                if let Err(e) = cache.refresh().await {
                    tracing::warn!(error = %e, "jwks background refresh failed");
                }
            }
        })
    }
}

/// Parse a JWK set; keys of unsupported types (or bad parameters) are skipped with a warning.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<VerifyKey>, JwksError> {
    let set: JwkSet = serde_json::from_slice(body).map_err(JwksError::Parse)?;
    let mut out = Vec::with_capacity(set.keys.len());
    for jwk in &set.keys {
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
            AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Ed,
            AlgorithmParameters::OctetKey(_) => KeyFamily::Hmac,
        };
        match jsonwebtoken::DecodingKey::from_jwk(jwk) {
            Ok(key) => out.push(VerifyKey {
                kid: jwk.common.key_id.clone(),
                family,
                key,
            }),
            Err(e) => tracing::warn!(kid = ?jwk.common.key_id, error = %e, "jwks key skipped"),
        }
    }
    Ok(out)
}

/// Fetches a JWKS over HTTP/1.1, `https://` (rustls with the ring provider; the system's
/// root certificates, or the config given to [`HttpJwksFetcher::with_tls`]) or plain
/// `http://`. Responses are capped at 1 MiB and the whole fetch at `timeout`.
#[derive(Clone)]
pub struct HttpJwksFetcher {
    uri: http::Uri,
    timeout: Duration,
    max_bytes: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for HttpJwksFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpJwksFetcher")
            .field("uri", &self.uri)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The JWKS URL is not usable.
#[derive(Debug, thiserror::Error)]
pub enum InvalidJwksUrl {
    /// Not an absolute `http://` or `https://` URL with a host.
    #[error("jwks url {0:?}: must be an absolute http:// or https:// url with a host")]
    Url(String),
    /// TLS client setup failed (no usable root certificates...).
    #[error("jwks url {url:?}: tls setup: {reason}")]
    Tls {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// A rustls client config trusting `roots`, with the ring provider.
pub fn tls_client_config(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(cfg))
}

impl HttpJwksFetcher {
    /// A fetcher for `url`. For `https://`, the system root certificates are loaded now.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, InvalidJwksUrl> {
        Self::build(url, timeout, None)
    }

    /// A fetcher for `url` using this TLS client config for `https://` (e.g. a private CA,
    /// see [`tls_client_config`]); the system roots are not loaded.
    pub fn with_tls(
        url: &str,
        timeout: Duration,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, InvalidJwksUrl> {
        Self::build(url, timeout, Some(tls))
    }

    fn build(
        url: &str,
        timeout: Duration,
        given: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, InvalidJwksUrl> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| InvalidJwksUrl::Url(url.to_owned()))?;
        if uri.host().is_none() {
            return Err(InvalidJwksUrl::Url(url.to_owned()));
        }
        let tls = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => match given {
                Some(cfg) => Some(cfg),
                None => {
                    let tls_err = |reason: String| InvalidJwksUrl::Tls {
                        url: url.to_owned(),
                        reason,
                    };
                    let mut roots = rustls::RootCertStore::empty();
                    let native = rustls_native_certs::load_native_certs();
                    let (added, _) = roots.add_parsable_certificates(native.certs);
                    if added == 0 {
                        return Err(tls_err("no system root certificates found".into()));
                    }
                    Some(tls_client_config(roots).map_err(|e| tls_err(e.to_string()))?)
                }
            },
            _ => return Err(InvalidJwksUrl::Url(url.to_owned())),
        };
        Ok(Self {
            uri,
            timeout,
            max_bytes: 1024 * 1024,
            tls,
        })
    }

    async fn get(
        uri: http::Uri,
        tls: Option<Arc<rustls::ClientConfig>>,
        max_bytes: usize,
    ) -> Result<Bytes, BoxError> {
        let host = uri.host().ok_or("jwks url has no host")?;
        // `[::1]` style hosts: strip the brackets for connect and SNI.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let default_port = if tls.is_some() { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        match tls {
            None => Self::exchange(stream, &uri, max_bytes).await,
            Some(cfg) => {
                let name = rustls_pki_types::ServerName::try_from(host)?;
                let tls_stream = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, stream)
                    .await?;
                Self::exchange(tls_stream, &uri, max_bytes).await
            }
        }
    }

    async fn exchange<I>(io: I, uri: &http::Uri, max_bytes: usize) -> Result<Bytes, BoxError>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        use http_body_util::{BodyExt, Empty, Limited};
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
        let conn_task = tokio::spawn(conn);
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or("jwks url has no host")?;
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let req = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())?;
        let result = async {
            let resp = sender.send_request(req).await?;
            if !resp.status().is_success() {
                return Err(format!("jwks fetch: status {}", resp.status()).into());
            }
            let body = Limited::new(resp.into_body(), max_bytes)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, BoxError>(body)
        }
        .await;
        conn_task.abort();
        result
    }
}

impl JwksFetcher for HttpJwksFetcher {
    fn fetch(&self) -> BoxFuture<'static, Result<Bytes, BoxError>> {
        let uri = self.uri.clone();
        let tls = self.tls.clone();
        let timeout = self.timeout;
        let max = self.max_bytes;
        Box::pin(async move {
            tokio::time::timeout(timeout, Self::get(uri, tls, max))
                .await
                .map_err(|e| Box::new(e) as BoxError)?
        })
    }
}
