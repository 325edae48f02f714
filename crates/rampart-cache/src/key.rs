//! Cache keys.
//!
//! * The **primary key** (RFC 9111 §4: method + target URI) is built from scheme, host,
//!   path and query per the route's [`KeyPolicy`], plus any configured request headers and
//!   cookies. GET and HEAD share a key (only GET responses are stored).
//! * The **secondary key** (§4.1) is built from the request headers named in the stored
//!   response's `Vary`, normalised so equivalent requests share a variant: whitespace folded,
//!   `Accept-Encoding` canonicalised (codings lowercased, `q=0` and `identity` dropped,
//!   sorted, deduplicated).
//! * The **canonical URL** (`scheme://host/path?query`) indexes entries for purge by URL and
//!   prefix and for §4.4 invalidation of `Location` / `Content-Location`.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderName, Uri, header};

use crate::config::{KeyPolicy, QueryKey};

/// The parts of a request target the key is made of (scheme and host already normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// Lowercased host with the default port removed.
    pub host: String,
    /// The path (at least `/`).
    pub path: String,
    /// The raw query, if any (without `?`).
    pub query: Option<String>,
}

impl Target {
    /// The target of a request: scheme from the URI or `tls`, host from the URI's authority
    /// or the `Host` header.
    pub fn from_request(uri: &Uri, headers: &HeaderMap, tls: bool) -> Self {
        let scheme = uri
            .scheme_str()
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| if tls { "https" } else { "http" }.to_owned());
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        Self {
            host: normalise_host(&host, &scheme),
            scheme,
            path: if uri.path().is_empty() {
                "/".to_owned()
            } else {
                uri.path().to_owned()
            },
            query: uri.query().map(str::to_owned),
        }
    }

    /// Parse an absolute URL (`http://host/path?q`) as given to purge; `None` when not
    /// absolute.
    pub fn parse_absolute(url: &str) -> Option<Self> {
        let uri: Uri = url.trim().parse().ok()?;
        uri.scheme()?;
        uri.authority()?;
        Some(Self::from_request(&uri, &HeaderMap::new(), false))
    }

    /// `scheme://host/path?query` with the query as given.
    pub fn canonical_url(&self) -> String {
        self.url_with_query(self.query.as_deref())
    }

    /// `scheme://host/path?query` with the query's parameters sorted.
    pub fn canonical_url_sorted(&self) -> String {
        let q = self.query.as_deref().map(|q| {
            let mut params: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
            params.sort_unstable();
            params.join("&")
        });
        self.url_with_query(q.as_deref())
    }

    fn url_with_query(&self, query: Option<&str>) -> String {
        let mut s =
            String::with_capacity(self.scheme.len() + self.host.len() + self.path.len() + 16);
        s.push_str(&self.scheme);
        s.push_str("://");
        s.push_str(&self.host);
        s.push_str(&self.path);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            s.push('?');
            s.push_str(q);
        }
        s
    }

    /// The same origin as `other` (scheme and host, port included).
    pub fn same_origin(&self, other: &Target) -> bool {
        self.scheme == other.scheme && self.host == other.host
    }

    /// Resolve a `Location` / `Content-Location` value against this target: absolute URLs
    /// are parsed, absolute paths get this target's origin. Relative references other than
    /// absolute paths are not resolved (`None`).
    pub fn resolve(&self, reference: &str) -> Option<Target> {
        let r = reference.trim();
        if r.starts_with('/') && !r.starts_with("//") {
            let uri: Uri = r.parse().ok()?;
            return Some(Target {
                scheme: self.scheme.clone(),
                host: self.host.clone(),
                path: uri.path().to_owned(),
                query: uri.query().map(str::to_owned),
            });
        }
        Self::parse_absolute(r)
    }
}

fn normalise_host(host: &str, scheme: &str) -> String {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    match h.strip_suffix(default) {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ => h,
    }
}

/// Build the primary key for a request per the route's key policy.
pub fn primary_key(target: &Target, headers: &HeaderMap, policy: &KeyPolicy) -> String {
    let mut k = String::with_capacity(64);
    if policy.scheme {
        k.push_str(&target.scheme);
        k.push_str("://");
    } else {
        k.push_str("//");
    }
    if policy.host {
        k.push_str(&target.host);
    }
    k.push_str(&target.path);
    if let Some(q) = target.query.as_deref() {
        let q = key_query(q, &policy.query);
        if !q.is_empty() {
            k.push('?');
            k.push_str(&q);
        }
    }
    for name in &policy.headers {
        let v = joined(headers, name).map(|v| fold_whitespace(&v));
        let _ = write!(
            k,
            "\0h:{}={}",
            name.as_str(),
            v.as_deref().unwrap_or("\u{1}")
        );
    }
    if !policy.cookies.is_empty() {
        let cookies = cookie_pairs(headers);
        for name in &policy.cookies {
            let v = cookies
                .iter()
                .find(|(n, _)| *n == name.as_ref())
                .map(|(_, v)| *v);
            let _ = write!(k, "\0c:{}={}", name, v.unwrap_or("\u{1}"));
        }
    }
    k
}

fn key_query(q: &str, mode: &QueryKey) -> String {
    let params = || q.split('&').filter(|p| !p.is_empty());
    let name = |p: &str| p.split('=').next().unwrap_or("").to_owned();
    let mut kept: Vec<&str> = match mode {
        QueryKey::All => return q.to_owned(),
        QueryKey::Ignore => return String::new(),
        QueryKey::Sorted => params().collect(),
        QueryKey::Allow(list) => params()
            .filter(|p| list.iter().any(|a| **a == *name(p)))
            .collect(),
        QueryKey::Deny(list) => params()
            .filter(|p| !list.iter().any(|a| **a == *name(p)))
            .collect(),
    };
    kept.sort_unstable();
    kept.join("&")
}

fn cookie_pairs(headers: &HeaderMap) -> Vec<(&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| {
            let (n, v) = pair.split_once('=')?;
            Some((n.trim(), v.trim()))
        })
        .collect()
}

fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let s = String::from_utf8_lossy(v.as_bytes());
        match &mut out {
            None => out = Some(s.into_owned()),
            Some(o) => {
                o.push(',');
                o.push_str(&s);
            }
        }
    }
    out
}

/// Fold whitespace in a field value: trim, collapse runs of SP / HTAB into one space, and
/// drop whitespace around commas.
pub fn fold_whitespace(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut pending_space = false;
    for c in v.trim_matches([' ', '\t']).chars() {
        match c {
            ' ' | '\t' => pending_space = true,
            ',' => {
                pending_space = false;
                out.push(',');
            }
            c => {
                if pending_space && !out.ends_with(',') {
                    out.push(' ');
                }
                pending_space = false;
                out.push(c);
            }
        }
    }
    out
}

/// Canonical `Accept-Encoding`: the codings the client accepts (q > 0), read as the
/// representation layer reads them (`rampart_core::negotiate::members`: a member with a
/// malformed weight such as `q=abc` or `q=2` counts for nothing), lowercased, aliases folded
/// (`x-gzip` is `gzip`), `identity` dropped, sorted, deduplicated, comma-joined.
pub fn canonical_accept_encoding(v: &str) -> String {
    use rampart_core::negotiate::{Coding, members};
    let mut codings: Vec<String> = members(v)
        .filter(|(coding, q)| *q > 0 && !coding.eq_ignore_ascii_case("identity"))
        .map(|(coding, _)| {
            Coding::parse(coding).map_or_else(|| coding.to_ascii_lowercase(), |c| c.to_string())
        })
        .collect();
    codings.sort_unstable();
    codings.dedup();
    codings.join(",")
}

/// The `Vary` of a response: `Err(VaryStar)` for `Vary: *`, otherwise the listed field
/// names, lowercased, sorted and deduplicated.
pub fn vary_names(resp_headers: &HeaderMap) -> Result<Vec<HeaderName>, VaryStar> {
    let mut names = Vec::new();
    for line in resp_headers.get_all(header::VARY) {
        let Ok(s) = line.to_str() else { continue };
        for item in s.split(',') {
            let item = item.trim();
            if item == "*" {
                return Err(VaryStar);
            }
            if let Ok(n) = HeaderName::from_bytes(item.as_bytes()) {
                names.push(n);
            }
        }
    }
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Ok(names)
}

/// Marker for `Vary: *` (never matches a later request, RFC 9111 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaryStar;

/// The secondary key of a request for the given `Vary` names.
pub fn secondary_key(vary: &[HeaderName], req_headers: &HeaderMap) -> String {
    let mut k = String::new();
    for name in vary {
        k.push_str(name.as_str());
        k.push(':');
        match joined(req_headers, name) {
            None => k.push('\u{1}'),
            Some(v) if *name == header::ACCEPT_ENCODING => {
                k.push_str(&canonical_accept_encoding(&v));
            }
            Some(v) => k.push_str(&fold_whitespace(&v)),
        }
        k.push('\n');
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::sync::Arc;

    fn target(uri: &str, host: Option<&str>) -> Target {
        let mut h = HeaderMap::new();
        if let Some(host) = host {
            h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        Target::from_request(&uri.parse().unwrap(), &h, false)
    }

    #[test]
    fn targets_are_normalised() {
        let t = target("/a/b?x=1", Some("Example.COM:80"));
        assert_eq!(t.canonical_url(), "http://example.com/a/b?x=1");
        let t = target("https://EX.com:443/p", None);
        assert_eq!(t.canonical_url(), "https://ex.com/p");
        let t = target("http://ex.com:8080/p?", None);
        assert_eq!(t.canonical_url(), "http://ex.com:8080/p");
        let t = target("/p?b=2&a=1", Some("h"));
        assert_eq!(t.canonical_url_sorted(), "http://h/p?a=1&b=2");
        let tls = Target::from_request(&"/x".parse().unwrap(), &HeaderMap::new(), true);
        assert_eq!(tls.canonical_url(), "https:///x");
    }

    #[test]
    fn primary_key_policies_table() {
        let t = target("/p?b=2&utm=x&a=1", Some("h"));
        let h = HeaderMap::new();
        let cases: Vec<(KeyPolicy, &str)> = vec![
            (KeyPolicy::default(), "http://h/p?b=2&utm=x&a=1"),
            (
                KeyPolicy {
                    query: QueryKey::Sorted,
                    ..KeyPolicy::default()
                },
                "http://h/p?a=1&b=2&utm=x",
            ),
            (
                KeyPolicy {
                    query: QueryKey::Allow(vec![Arc::from("a"), Arc::from("b")]),
                    ..KeyPolicy::default()
                },
                "http://h/p?a=1&b=2",
            ),
            (
                KeyPolicy {
                    query: QueryKey::Deny(vec![Arc::from("utm")]),
                    ..KeyPolicy::default()
                },
                "http://h/p?a=1&b=2",
            ),
            (
                KeyPolicy {
                    query: QueryKey::Ignore,
                    ..KeyPolicy::default()
                },
                "http://h/p",
            ),
            (
                KeyPolicy {
                    scheme: false,
                    host: false,
                    query: QueryKey::Ignore,
                    ..KeyPolicy::default()
                },
                "///p",
            ),
        ];
        for (policy, want) in cases {
            assert_eq!(primary_key(&t, &h, &policy), want, "{policy:?}");
        }
    }

    #[test]
    fn primary_key_headers_and_cookies() {
        let t = target("/p", Some("h"));
        let policy = KeyPolicy {
            headers: vec![HeaderName::from_static("x-tenant")],
            cookies: vec![Arc::from("lang")],
            ..KeyPolicy::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-tenant", HeaderValue::from_static("  a   b "));
        h.insert(header::COOKIE, HeaderValue::from_static("sid=1; lang=fr"));
        let k1 = primary_key(&t, &h, &policy);
        assert_eq!(k1, "http://h/p\0h:x-tenant=a b\0c:lang=fr");
        h.insert(header::COOKIE, HeaderValue::from_static("sid=2;lang=fr"));
        assert_eq!(
            primary_key(&t, &h, &policy),
            k1,
            "other cookies do not matter"
        );
        h.remove(header::COOKIE);
        assert_ne!(primary_key(&t, &h, &policy), k1);
    }

    #[test]
    fn accept_encoding_and_whitespace() {
        let cases = [
            ("gzip, br", "br,gzip"),
            ("br,gzip", "br,gzip"),
            ("GZIP;q=0.5 , br;q=1.0", "br,gzip"),
            ("gzip;q=0, br", "br"),
            ("gzip;q=0.000, br;Q=0", ""),
            (
                "gzip;q=abc, br;q=2, zstd;q=0.0001, deflate;q=0.001",
                "deflate",
            ),
            ("x-gzip, GZIP;q=0.5", "gzip"),
            ("gzip;q=0, gzip", "gzip"),
            ("*;q=0, compress", "compress"),
            ("identity", ""),
            ("gzip, gzip", "gzip"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(canonical_accept_encoding(input), want, "{input}");
        }
        assert_eq!(fold_whitespace("  en-US ,  fr\t\tde  "), "en-US,fr de");
    }

    #[test]
    fn vary_and_secondary_keys() {
        let mut resp = HeaderMap::new();
        resp.append(
            header::VARY,
            HeaderValue::from_static("Accept-Encoding, accept-language"),
        );
        resp.append(header::VARY, HeaderValue::from_static("ACCEPT-ENCODING"));
        let names = vary_names(&resp).unwrap();
        assert_eq!(
            names,
            vec![header::ACCEPT_ENCODING, header::ACCEPT_LANGUAGE]
        );

        let mut a = HeaderMap::new();
        a.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, br"),
        );
        a.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("en,  fr"));
        let mut b = HeaderMap::new();
        b.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br,gzip;q=0.8"),
        );
        b.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("en,fr"));
        assert_eq!(secondary_key(&names, &a), secondary_key(&names, &b));
        b.remove(header::ACCEPT_LANGUAGE);
        assert_ne!(secondary_key(&names, &a), secondary_key(&names, &b));
        b.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static(""));
        assert_ne!(
            secondary_key(&names, &b),
            secondary_key(&names, &HeaderMap::new()),
            "absent differs from empty"
        );

        let mut star = HeaderMap::new();
        star.insert(header::VARY, HeaderValue::from_static("accept, *"));
        assert_eq!(vary_names(&star), Err(VaryStar));
        assert_eq!(vary_names(&HeaderMap::new()), Ok(vec![]));
    }

    #[test]
    fn location_resolution() {
        let t = target("/a", Some("h"));
        assert_eq!(t.resolve("/b?x").unwrap().canonical_url(), "http://h/b?x");
        assert_eq!(
            t.resolve("http://H/c").unwrap().canonical_url(),
            "http://h/c"
        );
        assert!(t.same_origin(&t.resolve("http://h/c").unwrap()));
        assert!(!t.same_origin(&t.resolve("http://other/c").unwrap()));
        assert!(t.resolve("rel/path").is_none());
        assert!(Target::parse_absolute("/only/path").is_none());
    }
}
