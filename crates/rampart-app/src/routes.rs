//! The compiled route table: host + path prefix + method -> `Arc<RoutePolicy>`.
//!
//! Matching rules (documented in docs/configuration.md):
//! * the longest matching path prefix wins; prefixes match on segment boundaries
//!   (`/api` matches `/api`, `/api/`, `/api/x`, not `/apix`);
//! * on equal prefixes, an exact host beats a `*.` wildcard, which beats "any host";
//! * then config order;
//! * matching uses the path with dot segments resolved (also `%2e`-encoded ones) and
//!   repeated slashes merged, so `/public/../admin` is routed as `/admin`.

use std::{borrow::Cow, sync::Arc};

use http::Method;
use rampart_core::RoutePolicy;

#[derive(Debug, Clone)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

impl HostMatch {
    fn parse(h: Option<&str>) -> Self {
        match h {
            None => Self::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => Self::Suffix(suffix.to_ascii_lowercase()),
                None => Self::Exact(h.to_ascii_lowercase()),
            },
        }
    }
    fn rank(&self) -> u8 {
        match self {
            Self::Exact(_) => 2,
            Self::Suffix(_) => 1,
            Self::Any => 0,
        }
    }
    fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (Self::Any, _) => true,
            (Self::Exact(e), Some(h)) => e == h,
            // One label only: `a.example.com` matches, `example.com` and `a.b.example.com` do not.
            (Self::Suffix(s), Some(h)) => h
                .strip_suffix(s.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Entry {
    host: HostMatch,
    prefix: String,
    methods: Vec<Method>,
    policy: Arc<RoutePolicy>,
}

/// Routes ordered by precedence.
#[derive(Debug, Default)]
pub struct RouteTable {
    entries: Vec<Entry>,
    /// Whether any route matches on host (if none does, the host is never looked at).
    by_host: bool,
}

/// One route to compile.
pub struct RouteSpec {
    /// Host pattern.
    pub host: Option<String>,
    /// Path prefix.
    pub prefix: String,
    /// Methods (empty = any).
    pub methods: Vec<Method>,
    /// The compiled policy.
    pub policy: Arc<RoutePolicy>,
}

impl RouteTable {
    /// Compile routes (given in config order).
    pub fn new(specs: Vec<RouteSpec>) -> Self {
        let mut entries: Vec<(usize, Entry)> = specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let prefix = if s.prefix.len() > 1 {
                    s.prefix.trim_end_matches('/').to_string()
                } else {
                    s.prefix
                };
                (
                    i,
                    Entry {
                        host: HostMatch::parse(s.host.as_deref()),
                        prefix,
                        methods: s.methods,
                        policy: s.policy,
                    },
                )
            })
            .collect();
        entries.sort_by(|(ia, a), (ib, b)| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(b.host.rank().cmp(&a.host.rank()))
                .then(ia.cmp(ib))
        });
        let by_host = entries
            .iter()
            .any(|(_, e)| !matches!(e.host, HostMatch::Any));
        Self {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
            by_host,
        }
    }

    /// Find the route for a request (host taken from `Host` or the URI authority).
    pub fn route<B>(&self, req: &http::Request<B>) -> Option<&Arc<RoutePolicy>> {
        let host = if self.by_host {
            request_host(req)
        } else {
            None
        };
        self.find(host.as_deref(), req.uri().path(), req.method())
    }

    /// Find the route for a request. `host` without port, lowercase.
    pub fn find(
        &self,
        host: Option<&str>,
        path: &str,
        method: &Method,
    ) -> Option<&Arc<RoutePolicy>> {
        let path = normalize(path);
        self.entries
            .iter()
            .find(|e| {
                prefix_matches(&e.prefix, &path)
                    && e.host.matches(host)
                    && (e.methods.is_empty() || e.methods.contains(method))
            })
            .map(|e| &e.policy)
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Lowercase host without port or trailing dot, from `Host` or the URI authority.
pub fn request_host<B>(req: &http::Request<B>) -> Option<Cow<'_, str>> {
    let raw = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())?;
    let host = if raw.starts_with('[') {
        // `[v6]:port`: keep the brackets.
        raw.find(']').map_or(raw, |end| &raw[..=end])
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    let host = host.trim_end_matches('.');
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

/// Whether `path` has something [`normalize`] would change: a repeated slash, a segment
/// starting with a dot, or a `%2e` anywhere.
fn needs_normalizing(path: &[u8]) -> bool {
    path.iter().enumerate().any(|(i, &b)| match b {
        b'/' => matches!(path.get(i + 1), Some(b'/' | b'.')),
        b'%' => path.get(i + 1) == Some(&b'2') && matches!(path.get(i + 2), Some(b'e' | b'E')),
        _ => false,
    })
}

/// Resolve dot segments (including `%2e` forms) and merge repeated slashes, for matching only.
pub fn normalize(path: &str) -> Cow<'_, str> {
    if !needs_normalizing(path.as_bytes()) {
        return Cow::Borrowed(path);
    }
    let decoded = path.replace("%2e", ".").replace("%2E", ".");
    let mut out: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(decoded.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() || trailing {
        s.push('/');
    }
    Cow::Owned(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::RouteId;

    fn spec(i: u32, host: Option<&str>, prefix: &str, methods: &[&str]) -> RouteSpec {
        RouteSpec {
            host: host.map(str::to_string),
            prefix: prefix.into(),
            methods: methods.iter().map(|m| m.parse().unwrap()).collect(),
            policy: Arc::new(RoutePolicy::new(RouteId(i), format!("r{i}"), None)),
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            spec(0, None, "/", &[]),
            spec(1, None, "/api", &[]),
            spec(2, Some("api.example.com"), "/api", &[]),
            spec(3, Some("*.example.com"), "/api", &[]),
            spec(4, None, "/api/admin", &["POST"]),
            spec(5, None, "/static/", &[]),
        ])
    }

    fn name(t: &RouteTable, host: Option<&str>, path: &str, m: &str) -> String {
        t.find(host, path, &m.parse().unwrap())
            .map(|p| p.name.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn longest_prefix_then_host_specificity_then_method() {
        let t = table();
        assert_eq!(name(&t, None, "/api/x", "GET"), "r1");
        assert_eq!(name(&t, None, "/apix", "GET"), "r0");
        assert_eq!(name(&t, Some("api.example.com"), "/api", "GET"), "r2");
        assert_eq!(name(&t, Some("www.example.com"), "/api/v1", "GET"), "r3");
        assert_eq!(name(&t, Some("a.b.example.com"), "/api/v1", "GET"), "r1");
        assert_eq!(name(&t, Some("example.com"), "/api/v1", "GET"), "r1");
        assert_eq!(name(&t, None, "/api/admin/users", "POST"), "r4");
        assert_eq!(name(&t, None, "/api/admin/users", "GET"), "r1");
        assert_eq!(name(&t, None, "/static/app.js", "GET"), "r5");
        assert_eq!(name(&t, None, "/static", "GET"), "r5");
    }

    #[test]
    fn dot_segments_cannot_escape_a_route() {
        let t = table();
        assert_eq!(name(&t, None, "/static/../api/admin/x", "POST"), "r4");
        assert_eq!(name(&t, None, "/static/%2e%2e/api/admin", "POST"), "r4");
        assert_eq!(name(&t, None, "//api//admin", "POST"), "r4");
    }

    #[test]
    fn normalization() {
        for (i, o) in [
            ("/a/b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../../b", "/b"),
            ("/a/b/..", "/a/"),
            ("/", "/"),
            ("/..", "/"),
            ("/a//b/", "/a/b/"),
            ("/a/%2e%2E/b", "/b"),
            ("/a/.%2e", "/"),
            ("/a/.hidden/b", "/a/.hidden/b"),
            ("/static/app.min.js", "/static/app.min.js"),
            ("/a/b.", "/a/b."),
        ] {
            assert_eq!(normalize(i), o, "{i}");
        }
        // Paths with dots that are not dot segments are borrowed, not rebuilt.
        assert!(matches!(normalize("/static/1k.json"), Cow::Borrowed(_)));
        assert!(matches!(normalize("/a/b%2Fc"), Cow::Borrowed(_)));
    }

    #[test]
    fn host_extraction() {
        let r = http::Request::builder()
            .uri("/")
            .header("host", "Example.COM:8080")
            .body(())
            .unwrap();
        assert_eq!(request_host(&r).as_deref(), Some("example.com"));
        let r = http::Request::builder()
            .uri("http://[::1]:80/")
            .body(())
            .unwrap();
        assert_eq!(request_host(&r).as_deref(), Some("[::1]"));
        let r = http::Request::builder()
            .uri("/")
            .header("host", "www.example.com.")
            .body(())
            .unwrap();
        assert!(matches!(
            request_host(&r),
            Some(Cow::Borrowed("www.example.com"))
        ));
    }
}
