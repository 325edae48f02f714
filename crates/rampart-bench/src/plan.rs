//! The validated benchmark plan: targets, pre-built requests, load model and stop condition.
//!
//! Everything the hot loop needs is computed here once: parsed URLs, resolved addresses,
//! complete `http::Request` values for hyper (cloned per request: the URI and header values
//! are reference-counted `Bytes`, the body a `Bytes`), the same requests pre-encoded as
//! HTTP/1.1 bytes for the built-in client, the client choice, weights and assertions.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri, Version};
use http_body_util::Full;

use crate::args::BenchArgs;
use crate::error::BenchError;
use crate::scenario;

/// A target URL, checked: http or https, with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetUrl {
    pub https: bool,
    /// Host without IPv6 brackets (for SNI).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written (Host header / :authority).
    pub authority: Authority,
    pub path_and_query: PathAndQuery,
}

impl TargetUrl {
    /// `scheme://host:port`, the connection identity.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.host_port())
    }

    /// `host:port` for resolution (IPv6 bracketed).
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses and checks a target URL: only `http://` and `https://`, with a host.
pub(crate) fn parse_url(url: &str) -> Result<TargetUrl, BenchError> {
    let invalid = |reason: &str| BenchError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(invalid(
            "missing scheme, expected http://host/... or https://host/...",
        ));
    };
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => {
            return Err(BenchError::UnsupportedScheme {
                url: url.to_owned(),
                scheme: scheme.to_owned(),
            });
        }
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| invalid("missing host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            "user info in urls is not supported; send an Authorization header with -H",
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path_and_query = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Ok(TargetUrl {
        https,
        host,
        port,
        authority,
        path_and_query,
    })
}

/// Parses a `Name: value` header line.
pub(crate) fn parse_header_line(line: &str) -> Result<(HeaderName, HeaderValue), BenchError> {
    let invalid = |reason: String| BenchError::InvalidHeader {
        header: line.to_owned(),
        reason,
    };
    let Some((name, value)) = line.split_once(':') else {
        return Err(invalid("expected 'Name: value'".to_owned()));
    };
    parse_header(name, value).map_err(invalid)
}

/// Checks a header name and value.
pub(crate) fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("empty header name".to_owned());
    }
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    let v = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("invalid value for header {name:?}"))?;
    Ok((n, v))
}

/// Parses a method name (`GET`, `post`, custom tokens).
pub(crate) fn parse_method(m: &str) -> Result<Method, String> {
    let upper = m.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return Err("empty method".to_owned());
    }
    Method::from_bytes(upper.as_bytes()).map_err(|_| format!("invalid method {m:?}"))
}

/// Response checks; a failed check counts as an `assertion` error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Expect {
    /// Allowed statuses; empty means any.
    pub status: Vec<u16>,
    /// Headers that must be present.
    pub headers: Vec<HeaderName>,
}

impl Expect {
    pub fn is_empty(&self) -> bool {
        self.status.is_empty() && self.headers.is_empty()
    }

    /// Checks a response head.
    pub fn check(&self, status: u16, headers: &http::HeaderMap) -> Result<(), String> {
        self.check_with(status, |h| headers.contains_key(h))
    }

    /// Checks a status and header presence, whatever holds the headers (`has(name)`).
    pub fn check_with(&self, status: u16, has: impl Fn(&HeaderName) -> bool) -> Result<(), String> {
        if !self.status.is_empty() && !self.status.contains(&status) {
            return Err(format!("status {status} not in {:?}", self.status));
        }
        for h in &self.headers {
            if !has(h) {
                return Err(format!("header {h} missing"));
            }
        }
        Ok(())
    }
}

/// One request kind, before it is built for a protocol.
#[derive(Debug, Clone)]
pub(crate) struct RequestSpec {
    pub url: TargetUrl,
    pub method: Method,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub weight: u32,
    pub expect: Expect,
}

/// Open or closed load model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Load {
    /// Each connection (stream) sends its next request when the previous one completes.
    Closed,
    /// Constant arrival rate (requests per second), spread evenly over the connections.
    Open { rate: f64 },
}

/// When to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// After this long past the warm-up.
    Duration(Duration),
    /// After this many measured requests.
    Count(u64),
}

/// A request ready to be sent: as an `http::Request` to clone for hyper, and (HTTP/1.1)
/// pre-encoded wire bytes for the built-in client.
#[derive(Debug)]
pub(crate) struct Template {
    pub request: Request<Full<Bytes>>,
    /// HTTP/1.1: the whole request as written on the wire (empty for HTTP/2).
    pub wire: Bytes,
    /// The method is `HEAD` (the response has no body).
    pub head: bool,
    /// The request says `Connection: close`: one exchange per connection.
    pub close: bool,
    pub expect: Expect,
    /// `METHOD url` for display.
    pub label: String,
    pub weight: u32,
}

/// A connection destination and the requests sent to it.
#[derive(Debug)]
pub(crate) struct Origin {
    pub url: TargetUrl,
    pub addrs: Vec<SocketAddr>,
    pub templates: Vec<Template>,
    /// Cumulative weights of `templates`.
    pub cumulative: Vec<u64>,
    /// Connections assigned to this origin.
    pub connections: u32,
}

impl Origin {
    /// Picks a template from a uniform random `r`.
    #[inline]
    pub fn pick(&self, r: u64) -> &Template {
        let total = self.cumulative.last().copied().unwrap_or(1).max(1);
        let x = r % total;
        let i = self.cumulative.partition_point(|&c| c <= x);
        &self.templates[i.min(self.templates.len() - 1)]
    }
}

/// The validated plan.
#[derive(Debug)]
pub(crate) struct Plan {
    pub origins: Vec<Origin>,
    pub load: Load,
    pub stop: Stop,
    pub warmup: Duration,
    pub connections: u32,
    pub streams: u32,
    pub threads: u32,
    pub http2: bool,
    /// Which HTTP/1.1 client runs the load (HTTP/2 is always hyper).
    pub client: Client,
    pub timeout: Duration,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The HTTP client implementation a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    /// The built-in HTTP/1.1 codec ([`crate::codec`]): the default for HTTP/1.1.
    BuiltIn,
    /// hyper's low-level `client::conn` (HTTP/2, `--hyper-h1`, or requests the built-in
    /// client does not handle: a user-set `Transfer-Encoding`).
    Hyper,
}

impl Client {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Client::BuiltIn => "built-in",
            Client::Hyper => "hyper",
        }
    }
}

impl Plan {
    /// Total request slots (connections x streams).
    pub fn slots(&self) -> u64 {
        u64::from(self.connections) * u64::from(self.streams)
    }
}

/// Reads a body file.
pub(crate) fn read_file(path: &Path) -> Result<Bytes, BenchError> {
    std::fs::read(path)
        .map(Bytes::from)
        .map_err(|source| BenchError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        })
}

/// Builds the plan from the command line (and scenario file).
pub(crate) fn build(args: &BenchArgs) -> Result<Plan, BenchError> {
    let opt = |option: &'static str, reason: &str| BenchError::InvalidOption {
        option,
        reason: reason.to_owned(),
    };
    if args.connections == 0 {
        return Err(opt("-c/--connections", "must be at least 1"));
    }
    if args.streams == 0 {
        return Err(opt("--streams", "must be at least 1"));
    }
    if args.requests == Some(0) {
        return Err(opt("-n/--requests", "must be at least 1"));
    }
    if args.duration == Some(Duration::ZERO) {
        return Err(opt("-d/--duration", "must be greater than zero"));
    }
    if args.timeout.is_zero() {
        return Err(opt("--timeout", "must be greater than zero"));
    }
    if args.threads == Some(0) {
        return Err(opt("-t/--threads", "must be at least 1"));
    }
    let extra_headers = args
        .headers
        .iter()
        .map(|h| parse_header_line(h))
        .collect::<Result<Vec<_>, _>>()?;

    let specs = if let Some(path) = &args.scenario {
        if args.method.is_some() || args.body.is_some() || args.body_file.is_some() {
            return Err(opt(
                "--scenario",
                "-m, -b and --body-file cannot be combined with a scenario; set them per request in the file",
            ));
        }
        let mut specs = scenario::load(path)?;
        for s in &mut specs {
            for (n, v) in &extra_headers {
                if !s.headers.iter().any(|(h, _)| h == n) {
                    s.headers.push((n.clone(), v.clone()));
                }
            }
        }
        specs
    } else {
        if args.urls.is_empty() {
            return Err(opt("URL", "give at least one URL or --scenario FILE"));
        }
        let method = parse_method(args.method.as_deref().unwrap_or("GET")).map_err(|reason| {
            BenchError::InvalidOption {
                option: "-m/--method",
                reason,
            }
        })?;
        let body = match (&args.body, &args.body_file) {
            (Some(b), _) => Bytes::from(b.clone().into_bytes()),
            (None, Some(f)) => read_file(f)?,
            (None, None) => Bytes::new(),
        };
        args.urls
            .iter()
            .map(|u| {
                Ok(RequestSpec {
                    url: parse_url(u)?,
                    method: method.clone(),
                    headers: extra_headers.clone(),
                    body: body.clone(),
                    weight: 1,
                    expect: Expect::default(),
                })
            })
            .collect::<Result<Vec<_>, BenchError>>()?
    };

    let stop = match (args.requests, args.duration) {
        (Some(n), _) => Stop::Count(n),
        (None, Some(d)) => Stop::Duration(d),
        (None, None) => Stop::Duration(Duration::from_secs(10)),
    };
    let load = match args.rate {
        Some(rate) if rate.is_finite() && rate > 0.0 => Load::Open { rate },
        Some(_) => return Err(opt("--rate", "must be greater than zero")),
        None => Load::Closed,
    };

    // The built-in client sends bodies with a Content-Length only; a request that sets its own
    // Transfer-Encoding is left to hyper, which chunk-encodes.
    let client = if args.http2
        || args.hyper_h1
        || specs
            .iter()
            .any(|s| s.headers.iter().any(|(n, _)| n == TRANSFER_ENCODING))
    {
        Client::Hyper
    } else {
        Client::BuiltIn
    };
    let origins = group_by_origin(specs, args.http2, args.connections)?;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(2);
    let threads = args.threads.unwrap_or(cpus).min(args.connections).max(1);
    let tls = if origins.iter().any(|o| o.url.https) {
        Some(crate::tls::client_config(args.insecure, args.http2)?)
    } else {
        None
    };
    Ok(Plan {
        origins,
        load,
        stop,
        warmup: args.warmup,
        connections: args.connections,
        streams: if args.http2 { args.streams } else { 1 },
        threads,
        http2: args.http2,
        client,
        timeout: args.timeout,
        tls,
    })
}

/// Groups requests by origin, resolves each origin once and splits connections by weight.
fn group_by_origin(
    specs: Vec<RequestSpec>,
    http2: bool,
    connections: u32,
) -> Result<Vec<Origin>, BenchError> {
    let mut origins: Vec<Origin> = Vec::new();
    for spec in specs {
        let template = build_template(&spec, http2)?;
        let key = spec.url.origin();
        let idx = match origins.iter().position(|o| o.url.origin() == key) {
            Some(i) => i,
            None => {
                let host_port = spec.url.host_port();
                let addrs: Vec<SocketAddr> = host_port
                    .to_socket_addrs()
                    .map_err(|e| BenchError::Resolve {
                        host: host_port.clone(),
                        reason: e.to_string(),
                    })?
                    .collect();
                if addrs.is_empty() {
                    return Err(BenchError::Resolve {
                        host: host_port,
                        reason: "no addresses".to_owned(),
                    });
                }
                origins.push(Origin {
                    url: spec.url.clone(),
                    addrs,
                    templates: Vec::new(),
                    cumulative: Vec::new(),
                    connections: 0,
                });
                origins.len() - 1
            }
        };
        origins[idx].templates.push(template);
    }
    if origins.len() > connections as usize {
        return Err(BenchError::InvalidOption {
            option: "-c/--connections",
            reason: format!(
                "{} hosts need at least {} connections",
                origins.len(),
                origins.len()
            ),
        });
    }
    let weight_of = |o: &Origin| o.templates.iter().map(|t| u64::from(t.weight)).sum::<u64>();
    let total: u64 = origins.iter().map(weight_of).sum::<u64>().max(1);
    // One connection each, the rest in proportion to weight (largest remainders first).
    let spare = u64::from(connections) - origins.len() as u64;
    let mut given = 0u64;
    let mut rema: Vec<(u64, usize)> = Vec::new();
    for (i, o) in origins.iter_mut().enumerate() {
        let share = spare * weight_of(o);
        o.connections = 1 + (share / total) as u32;
        given += share / total;
        rema.push((share % total, i));
    }
    rema.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (_, i) in rema.into_iter().take((spare - given) as usize) {
        origins[i].connections += 1;
    }
    for o in &mut origins {
        let mut acc = 0u64;
        o.cumulative = o
            .templates
            .iter()
            .map(|t| {
                acc += u64::from(t.weight);
                acc
            })
            .collect();
    }
    Ok(origins)
}

/// Builds the request once; workers clone it.
fn build_template(spec: &RequestSpec, http2: bool) -> Result<Template, BenchError> {
    let invalid = |reason: String| BenchError::InvalidUrl {
        url: spec.url.origin(),
        reason,
    };
    let uri = if http2 {
        Uri::builder()
            .scheme(if spec.url.https {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            })
            .authority(spec.url.authority.clone())
            .path_and_query(spec.url.path_and_query.clone())
            .build()
            .map_err(|e| invalid(e.to_string()))?
    } else {
        Uri::from(spec.url.path_and_query.clone())
    };
    let mut request = Request::new(Full::new(spec.body.clone()));
    *request.method_mut() = spec.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = if http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let headers = request.headers_mut();
    if !http2 && !spec.headers.iter().any(|(n, _)| n == HOST) {
        let host = HeaderValue::from_str(spec.url.authority.as_str())
            .map_err(|e| invalid(e.to_string()))?;
        headers.insert(HOST, host);
    }
    for (n, v) in &spec.headers {
        if http2 && n == HOST {
            continue;
        }
        headers.append(n.clone(), v.clone());
    }
    let wire = if http2 {
        Bytes::new()
    } else {
        crate::codec::encode_request(
            &spec.method,
            spec.url.path_and_query.as_str(),
            spec.url.authority.as_str(),
            &spec.headers,
            &spec.body,
        )
    };
    let close = spec.headers.iter().any(|(n, v)| {
        n == CONNECTION
            && v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    let scheme = if spec.url.https { "https" } else { "http" };
    let label = format!(
        "{} {scheme}://{}{}",
        spec.method, spec.url.authority, spec.url.path_and_query
    );
    Ok(Template {
        request,
        wire,
        head: spec.method == Method::HEAD,
        close,
        expect: spec.expect.clone(),
        label,
        weight: spec.weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let u = parse_url("http://127.0.0.1:8080/a?b=1").unwrap();
        assert!(!u.https);
        assert_eq!(u.port, 8080);
        assert_eq!(u.path_and_query.as_str(), "/a?b=1");
        let u = parse_url("https://example.com").unwrap();
        assert_eq!(
            (u.https, u.port, u.path_and_query.as_str()),
            (true, 443, "/")
        );
        let u = parse_url("http://[::1]:9000/").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.host_port(), "[::1]:9000");
        for bad in ["ftp://x/", "ws://x/", "file:///etc/passwd", "unix:///tmp/s"] {
            let e = parse_url(bad).unwrap_err();
            assert!(
                matches!(e, BenchError::UnsupportedScheme { .. }),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains("only http:// and https://"), "{e}");
        }
        assert!(matches!(
            parse_url("localhost:8080/"),
            Err(BenchError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("http://u:p@host/"),
            Err(BenchError::InvalidUrl { .. })
        ));
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn headers_are_checked() {
        let (n, v) = parse_header_line("X-Test:  a b ").unwrap();
        assert_eq!(n.as_str(), "x-test");
        assert_eq!(v.to_str().unwrap(), "a b");
        assert!(parse_header_line("novalue").is_err());
        assert!(parse_header_line(": v").is_err());
        assert!(parse_header_line("bad name: v").is_err());
    }

    #[test]
    fn weighted_pick_follows_weights() {
        let spec = |w| RequestSpec {
            url: parse_url("http://127.0.0.1:1/").unwrap(),
            method: Method::GET,
            headers: vec![],
            body: Bytes::new(),
            weight: w,
            expect: Expect::default(),
        };
        let origins = group_by_origin(vec![spec(1), spec(3)], false, 4).unwrap();
        assert_eq!(origins.len(), 1);
        assert_eq!(origins[0].connections, 4);
        let o = &origins[0];
        let mut counts = [0u32; 2];
        for r in 0..4000u64 {
            let t = o.pick(r);
            counts[usize::from(t.weight == 3)] += 1;
        }
        assert_eq!(counts, [1000, 3000]);
    }

    #[test]
    fn connections_split_across_hosts_by_weight() {
        let spec = |u: &str, w| RequestSpec {
            url: parse_url(u).unwrap(),
            method: Method::GET,
            headers: vec![],
            body: Bytes::new(),
            weight: w,
            expect: Expect::default(),
        };
        let origins = group_by_origin(
            vec![
                spec("http://127.0.0.1:1/", 1),
                spec("http://127.0.0.1:2/", 3),
            ],
            false,
            10,
        )
        .unwrap();
        assert_eq!(origins.iter().map(|o| o.connections).sum::<u32>(), 10);
        assert!(origins[1].connections > origins[0].connections);
        assert!(
            group_by_origin(
                vec![
                    spec("http://127.0.0.1:1/", 1),
                    spec("http://127.0.0.1:2/", 1)
                ],
                false,
                1
            )
            .is_err()
        );
    }

    #[test]
    fn templates_have_host_for_h1_and_absolute_uri_for_h2() {
        let spec = RequestSpec {
            url: parse_url("http://127.0.0.1:8080/x").unwrap(),
            method: Method::POST,
            headers: vec![parse_header_line("a: b").unwrap()],
            body: Bytes::from_static(b"hi"),
            weight: 1,
            expect: Expect::default(),
        };
        let t1 = build_template(&spec, false).unwrap();
        assert_eq!(t1.request.uri().to_string(), "/x");
        assert_eq!(t1.request.headers()[HOST], "127.0.0.1:8080");
        assert_eq!(t1.request.headers()["a"], "b");
        let t2 = build_template(&spec, true).unwrap();
        assert_eq!(t2.request.uri().to_string(), "http://127.0.0.1:8080/x");
        assert!(t2.request.headers().get(HOST).is_none());
    }

    #[test]
    fn expectations() {
        let e = Expect {
            status: vec![200, 304],
            headers: vec![HeaderName::from_static("etag")],
        };
        let mut h = http::HeaderMap::new();
        assert!(e.check(200, &h).unwrap_err().contains("etag"));
        h.insert("etag", HeaderValue::from_static("\"x\""));
        assert!(e.check(304, &h).is_ok());
        assert!(e.check(500, &h).unwrap_err().contains("500"));
        assert!(Expect::default().check(500, &h).is_ok());
    }
}
