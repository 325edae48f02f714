//! [`StaticLayer`] / [`StaticService`]: serve a route's directory instead of an upstream.
//!
//! Sits at the dispatch end of the stack: a request whose route carries
//! `Arc<StaticSettings>` is answered from the file system, any other goes to the inner
//! service (the upstream dispatcher). Responses look like a well-behaved origin's, so the
//! cache above stores them like any other: validators, `Cache-Control`, `Vary`.

use crate::BoxFut;
use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use rampart_core::{
    Body, BoxError, Error, ErrorKind, RoutePolicy, body,
    conditional::{Precondition, Validators},
    negotiate::Accepted,
    range::{content_range, unsatisfied_range},
};
use tokio::io::AsyncSeekExt;
use tower::{Layer, Service};

use crate::{
    body::FileBody,
    conditional::{self, RangeAnswer},
    config::StaticSettings,
    encoding::{self, Sidecar},
    resolve::{self, Resolved},
};

/// `Cache-Control` of fingerprinted names.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Installs the static file service in front of `inner`.
#[derive(Debug, Clone, Default)]
pub struct StaticLayer;

impl StaticLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for StaticLayer {
    type Service = StaticService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StaticService { inner }
    }
}

/// Serves static routes; passes other requests to `inner`.
#[derive(Debug, Clone)]
pub struct StaticService<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for StaticService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFut;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> BoxFut {
        let site = req
            .extensions()
            .get::<Arc<RoutePolicy>>()
            .and_then(|r| r.get::<Arc<StaticSettings>>())
            .cloned();
        match site {
            Some(site) => Box::pin(async move { serve(&site, req).await }),
            None => Box::pin(self.inner.call(req)),
        }
    }
}

/// Path characters percent-encoded when a redirect `Location` is rebuilt from segments.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn not_found(msg: impl Into<String>) -> BoxError {
    Box::new(Error::new(ErrorKind::NotFound).with_message(msg))
}

/// Answer one request from `site`.
pub async fn serve(site: &StaticSettings, req: Request<Body>) -> Result<Response<Body>, BoxError> {
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return Err(Box::new(
            Error::new(ErrorKind::MethodNotAllowed("GET, HEAD".into()))
                .with_message(format!("static: method {method} not allowed")),
        ));
    }
    let raw = req.uri().path();
    let rest = if site.prefix.is_empty() {
        Some(raw)
    } else {
        raw.strip_prefix(site.prefix.as_str())
            .filter(|r| r.is_empty() || r.starts_with('/'))
    };
    // The route matched on the normalised path; a raw path outside the prefix got there
    // through dot segments.
    let rest = rest.ok_or_else(|| {
        Box::new(
            Error::new(ErrorKind::BadRequest)
                .with_message("static: request path outside the route prefix"),
        ) as BoxError
    })?;
    let decoded = resolve::decode(rest).map_err(|why| {
        // A hidden file is "not there"; anything else is a malformed (hostile) path.
        let kind = if why == resolve::Refused::Hidden {
            ErrorKind::NotFound
        } else {
            ErrorKind::BadRequest
        };
        Box::new(Error::new(kind).with_message(format!("static: path refused: {why}"))) as BoxError
    })?;
    let resolved = resolve::resolve(&site.root, &decoded, &site.index, site.follow_symlinks)
        .await
        .map_err(|why| not_found(format!("static: {why}")))?;
    let (path, meta) = match resolved {
        Resolved::File(p, m) => (p, m),
        Resolved::AddSlash => return Ok(add_slash(site, &decoded.segments, req.uri().query())),
    };
    let rel = decoded.segments.join("/");
    let name = path.to_string_lossy();

    // Representation: a sidecar when present and accepted.
    let mut vary = false;
    let mut chosen: Option<(Sidecar, std::path::PathBuf, std::fs::Metadata)> = None;
    if site.precompressed {
        let accepted = Accepted::from_headers(req.headers());
        let mut found: [Option<(std::path::PathBuf, std::fs::Metadata)>; 3] = [None, None, None];
        for (i, s) in Sidecar::ALL.into_iter().enumerate() {
            found[i] = resolve::sidecar(&site.root, &path, s.suffix(), site.follow_symlinks).await;
        }
        vary = found.iter().any(Option::is_some);
        let available = [found[0].is_some(), found[1].is_some(), found[2].is_some()];
        if let Some(s) = encoding::choose(&accepted, available) {
            let i = Sidecar::ALL.iter().position(|x| *x == s).unwrap_or(0);
            if let Some((p, m)) = found[i].take() {
                chosen = Some((s, p, m));
            }
        }
    }
    let (file_path, len, mtime, enc) = match &chosen {
        Some((s, p, m)) => (p.clone(), m.len(), m.modified().ok(), Some(*s)),
        None => (path.clone(), meta.len(), meta.modified().ok(), None),
    };
    let etag = conditional::etag(len, mtime, enc.map_or("", Sidecar::token));
    let last_modified = mtime.map(conditional::whole_seconds);

    let mut headers = HeaderMap::new();
    put(&mut headers, header::ETAG, &etag);
    if let Some(lm) = last_modified {
        put(
            &mut headers,
            header::LAST_MODIFIED,
            &httpdate::fmt_http_date(lm),
        );
    }
    if let Some(cc) = cache_control(site, &rel) {
        put(&mut headers, header::CACHE_CONTROL, &cc);
    }
    if vary {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }

    let validators = Validators {
        etag: Some(etag.as_bytes()),
        last_modified,
    };
    match rampart_core::conditional::evaluate(&method, req.headers(), validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return Ok(respond(StatusCode::NOT_MODIFIED, headers, body::empty()));
        }
        Precondition::Failed => {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            return Ok(respond(StatusCode::PRECONDITION_FAILED, h, body::empty()));
        }
    }

    put(&mut headers, header::CONTENT_TYPE, &content_type(&name));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(s) = enc {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(s.token()),
        );
    }

    let (status, start, count) = match conditional::range(&method, req.headers(), len, validators) {
        RangeAnswer::Full => (StatusCode::OK, 0, len),
        RangeAnswer::Partial { start, end } => {
            headers.insert(header::CONTENT_RANGE, content_range(&(start..=end), len));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_RANGE, unsatisfied_range(len));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            return Ok(respond(StatusCode::RANGE_NOT_SATISFIABLE, h, body::empty()));
        }
    };
    put(&mut headers, header::CONTENT_LENGTH, &count.to_string());
    if method == Method::HEAD {
        return Ok(respond(status, headers, body::empty()));
    }
    let mut file = tokio::fs::File::open(&file_path)
        .await
        .map_err(|e| not_found(format!("static: open failed: {e}")))?;
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| Box::new(e) as BoxError)?;
    }
    Ok(respond(
        status,
        headers,
        body::boxed(FileBody::new(file, count)),
    ))
}

fn respond(status: StatusCode, headers: HeaderMap, b: Body) -> Response<Body> {
    let mut r = Response::new(b);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

fn put(h: &mut HeaderMap, name: header::HeaderName, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(name, v);
    }
}

/// 301 to the directory URL with its trailing slash (rebuilt from the checked segments, so
/// it can never point to another host).
fn add_slash(site: &StaticSettings, segments: &[String], query: Option<&str>) -> Response<Body> {
    let mut loc = site.prefix.clone();
    for s in segments {
        loc.push('/');
        loc.extend(utf8_percent_encode(s, SEGMENT));
    }
    loc.push('/');
    if let Some(q) = query {
        loc.push('?');
        loc.push_str(q);
    }
    let mut h = HeaderMap::new();
    put(&mut h, header::LOCATION, &loc);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    respond(StatusCode::MOVED_PERMANENTLY, h, body::empty())
}

/// `Content-Type` from the file name (the original's, not the sidecar's); text types get
/// `charset=utf-8`.
pub fn content_type(name: &str) -> String {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let essence = mime.essence_str();
    if mime.type_() == mime_guess::mime::TEXT || essence == "application/javascript" {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_string()
    }
}

/// `Cache-Control` for the file at `rel` (its path below the root).
pub fn cache_control(site: &StaticSettings, rel: &str) -> Option<String> {
    if site.immutable.as_ref().is_some_and(|re| re.is_match(rel)) {
        return Some(IMMUTABLE.to_string());
    }
    site.max_age
        .map(|d| format!("public, max-age={}", d.as_secs()))
}
