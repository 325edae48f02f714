//! Semantic validation: cross-references and value ranges that the schema cannot express.
//! Every problem is reported, each with its key path.

use std::collections::HashSet;

use crate::{ConfigError, schema::Config};

/// Check a deserialized config; returns every problem found (empty = valid).
pub fn validate(c: &Config) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    let mut err = |path: String, msg: String| errs.push(ConfigError::new(path, msg));

    // [server]
    let s = &c.server;
    let tls_listen = s.tls.as_ref().map_or(0, |t| t.listen.len());
    if s.listen.is_empty() && tls_listen == 0 {
        err(
            "server.listen".into(),
            "no listen address: give at least one here or in server.tls.listen".into(),
        );
    }
    if s.max_connections == 0 {
        err("server.max_connections".into(), "must be at least 1".into());
    }
    if s.max_concurrent_requests == 0 {
        err(
            "server.max_concurrent_requests".into(),
            "must be at least 1".into(),
        );
    }
    if s.max_headers == 0 {
        err("server.max_headers".into(), "must be at least 1".into());
    }
    if s.max_header_bytes.bytes() < 8192 {
        err(
            "server.max_header_bytes".into(),
            "must be at least 8KiB".into(),
        );
    }
    if s.max_uri_length.bytes() < 16 {
        err(
            "server.max_uri_length".into(),
            "must be at least 16B".into(),
        );
    }
    if s.header_read_timeout.is_zero() {
        err(
            "server.header_read_timeout".into(),
            "must be greater than 0".into(),
        );
    }
    if s.request_timeout.is_zero() {
        err(
            "server.request_timeout".into(),
            "must be greater than 0".into(),
        );
    }
    if s.via.is_empty() || !s.via.bytes().all(is_token_char) {
        err(
            "server.via".into(),
            format!(
                "{:?} is not a valid Via pseudonym (letters, digits, -._)",
                s.via
            ),
        );
    }
    if let Some(tls) = &s.tls {
        if tls.listen.is_empty() {
            err(
                "server.tls.listen".into(),
                "at least one TLS listen address is required".into(),
            );
        }
        if tls.certificates.is_empty() {
            err(
                "server.tls.certificates".into(),
                "at least one certificate is required".into(),
            );
        }
        for (i, cert) in tls.certificates.iter().enumerate() {
            for (key, file) in [("cert", &cert.cert), ("key", &cert.key)] {
                let path = format!("server.tls.certificates[{i}].{key}");
                if file.as_os_str().is_empty() {
                    err(path, "is required".into());
                } else if let Err(e) = std::fs::metadata(file) {
                    err(path, format!("cannot read {}: {e}", file.display()));
                }
            }
            for (j, name) in cert.server_names.iter().enumerate() {
                if let Err(m) = check_host_pattern(name) {
                    err(format!("server.tls.certificates[{i}].server_names[{j}]"), m);
                }
            }
        }
    }

    // [admin]
    if c.admin.enabled {
        if let Some(t) = &c.admin.token {
            if t.expose().len() < 16 {
                err(
                    "admin.token".into(),
                    "must be at least 16 characters".into(),
                );
            }
        } else if !c.admin.listen.ip().is_loopback() {
            err(
                "admin.listen".into(),
                format!(
                    "{} is not a loopback address: set admin.token to expose the admin API beyond this machine",
                    c.admin.listen
                ),
            );
        }
    }

    // [[upstreams]]
    let mut names = HashSet::new();
    for (i, u) in c.upstreams.iter().enumerate() {
        if u.name.is_empty() {
            err(format!("upstreams[{i}].name"), "is required".into());
        } else if !is_name(&u.name) {
            err(
                format!("upstreams[{i}].name"),
                format!("{:?} is not a valid name (letters, digits, -_.)", u.name),
            );
        } else if !names.insert(u.name.as_str()) {
            err(
                format!("upstreams[{i}].name"),
                format!("duplicate upstream name {:?}", u.name),
            );
        }
        if u.endpoints.is_empty() {
            err(
                format!("upstreams[{i}].endpoints"),
                "at least one endpoint is required".into(),
            );
        }
        for (j, e) in u.endpoints.iter().enumerate() {
            if let Err(m) = check_endpoint(e) {
                err(format!("upstreams[{i}].endpoints[{j}]"), m);
            }
        }
        if u.connect_timeout.is_zero() {
            err(
                format!("upstreams[{i}].connect_timeout"),
                "must be greater than 0".into(),
            );
        }
        if u.response_timeout.is_zero() {
            err(
                format!("upstreams[{i}].response_timeout"),
                "must be greater than 0".into(),
            );
        }
        if let Some(ca) = &u.ca_file
            && let Err(e) = std::fs::metadata(ca)
        {
            err(
                format!("upstreams[{i}].ca_file"),
                format!("cannot read {}: {e}", ca.display()),
            );
        }
        for (key, m) in crate::upstream::validate_upstream(u, &c.upstreams) {
            err(format!("upstreams[{i}].{key}"), m);
        }
    }

    // [[routes]]
    if c.routes.is_empty() {
        err("routes".into(), "at least one route is required".into());
    }
    let mut route_names = HashSet::new();
    for (i, r) in c.routes.iter().enumerate() {
        if r.name.is_empty() {
            err(format!("routes[{i}].name"), "is required".into());
        } else if !is_name(&r.name) {
            err(
                format!("routes[{i}].name"),
                format!("{:?} is not a valid name (letters, digits, -_.)", r.name),
            );
        } else if !route_names.insert(r.name.as_str()) {
            err(
                format!("routes[{i}].name"),
                format!("duplicate route name {:?}", r.name),
            );
        }
        if let Some(h) = &r.host
            && let Err(m) = check_host_pattern(h)
        {
            err(format!("routes[{i}].host"), m);
        }
        if !r.path.starts_with('/') {
            err(
                format!("routes[{i}].path"),
                format!("{:?} must start with '/'", r.path),
            );
        } else if r.path.contains(['?', '#']) || r.path.split('/').any(|s| s == "." || s == "..") {
            err(
                format!("routes[{i}].path"),
                format!(
                    "{:?} must be a plain path prefix (no query, fragment or dot segments)",
                    r.path
                ),
            );
        }
        for (j, m) in r.methods.iter().enumerate() {
            if m.is_empty()
                || !m
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
            {
                err(
                    format!("routes[{i}].methods[{j}]"),
                    format!("{m:?} is not a method name (e.g. \"GET\")"),
                );
            }
        }
        if let Some(ru) = &r.read_upstream
            && !c.upstreams.iter().any(|u| &u.name == ru)
        {
            err(
                format!("routes[{i}].read_upstream"),
                format!("unknown upstream {ru:?}"),
            );
        }
        if r.static_dir.is_some() {
            if !r.upstream.is_empty() {
                err(
                    format!("routes[{i}].static"),
                    format!(
                        "a route serves either an upstream or a static directory: remove `upstream = {:?}` or `static`",
                        r.upstream
                    ),
                );
            }
        } else if r.upstream.is_empty() {
            err(
                format!("routes[{i}].upstream"),
                "is required (or set `static = \"./dir\"` to serve a directory instead)".into(),
            );
        } else if !c.upstreams.iter().any(|u| u.name == r.upstream) {
            let known: Vec<_> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
            let hint = strsim_best(&r.upstream, &known)
                .map(|b| format!("; did you mean {b:?}?"))
                .unwrap_or_default();
            err(
                format!("routes[{i}].upstream"),
                format!("unknown upstream {:?}{hint}", r.upstream),
            );
        }
    }

    crate::statics::validate_routes(c, &mut err);

    // [cache]
    if c.cache.max_object_size > c.cache.max_size {
        err(
            "cache.max_object_size".into(),
            "must not exceed cache.max_size".into(),
        );
    }
    for (j, t) in c.cache.tag_headers.iter().enumerate() {
        if !crate::hygiene::is_token(&t.name) {
            err(
                format!("cache.tag_headers[{j}].name"),
                format!("{:?} is not a valid header name", t.name),
            );
        }
        if !matches!(t.separator.as_str(), "space" | "comma") {
            err(
                format!("cache.tag_headers[{j}].separator"),
                format!("{:?} is not \"space\" or \"comma\"", t.separator),
            );
        }
    }
    if !c.cache.targeted_field.is_empty() && !crate::hygiene::is_token(&c.cache.targeted_field) {
        err(
            "cache.targeted_field".into(),
            format!(
                "{:?} is not a valid header name (use \"\" for none)",
                c.cache.targeted_field
            ),
        );
    }
    if c.cache.max_variants == 0 {
        err("cache.max_variants".into(), "must be at least 1".into());
    }
    for (i, r) in c.routes.iter().enumerate() {
        let q = r.cache.query.as_str();
        if !matches!(q, "all" | "sorted" | "ignore" | "allow" | "deny") {
            err(
                format!("routes[{i}].cache.query"),
                format!(
                    "{:?} is not one of \"all\", \"sorted\", \"ignore\", \"allow\", \"deny\"",
                    r.cache.query
                ),
            );
        } else if matches!(q, "allow" | "deny") && r.cache.query_params.is_empty() {
            err(
                format!("routes[{i}].cache.query_params"),
                format!("must list at least one parameter when query = {q:?}"),
            );
        } else if !matches!(q, "allow" | "deny") && !r.cache.query_params.is_empty() {
            err(
                format!("routes[{i}].cache.query_params"),
                format!("only used with query = \"allow\" or \"deny\" (query is {q:?})"),
            );
        }
        for (j, h) in r.cache.key_headers.iter().enumerate() {
            if !crate::hygiene::is_token(h) {
                err(
                    format!("routes[{i}].cache.key_headers[{j}]"),
                    format!("{h:?} is not a valid header name"),
                );
            }
        }
        for (j, k) in r.cache.key_cookies.iter().enumerate() {
            if !crate::hygiene::is_token(k) {
                err(
                    format!("routes[{i}].cache.key_cookies[{j}]"),
                    format!("{k:?} is not a valid cookie name"),
                );
            }
        }
        if !matches!(r.cache.set_cookie.as_str(), "pass" | "strip" | "store") {
            err(
                format!("routes[{i}].cache.set_cookie"),
                format!(
                    "{:?} is not one of \"pass\", \"strip\", \"store\"",
                    r.cache.set_cookie
                ),
            );
        }
    }

    // [waf]
    if !matches!(c.waf.mode.as_str(), "block" | "detect") {
        err(
            "waf.mode".into(),
            format!("{:?} is not \"block\" or \"detect\"", c.waf.mode),
        );
    }
    if !(1..=4).contains(&c.waf.paranoia) {
        err("waf.paranoia".into(), "must be 1, 2, 3 or 4".into());
    }
    if c.waf.threshold == 0 {
        err("waf.threshold".into(), "must be at least 1".into());
    }
    if !matches!(
        c.waf.body_limit_action.as_str(),
        "inspect_prefix" | "reject"
    ) {
        err(
            "waf.body_limit_action".into(),
            format!(
                "{:?} is not \"inspect_prefix\" or \"reject\"",
                c.waf.body_limit_action
            ),
        );
    }
    validate_waf_exclusions("waf.exclusions", &c.waf.exclusions, &mut err);
    for (i, r) in c.routes.iter().enumerate() {
        validate_waf_exclusions(
            &format!("routes[{i}].waf.exclusions"),
            &r.waf.exclusions,
            &mut err,
        );
        if let Some(m) = &r.waf.mode
            && !matches!(m.as_str(), "block" | "detect")
        {
            err(
                format!("routes[{i}].waf.mode"),
                format!("{m:?} is not \"block\" or \"detect\""),
            );
        }
        if r.waf.paranoia.is_some_and(|p| !(1..=4).contains(&p)) {
            err(
                format!("routes[{i}].waf.paranoia"),
                "must be 1, 2, 3 or 4".into(),
            );
        }
    }

    // [log]
    if c.log.access_log.is_empty() {
        err(
            "log.access_log".into(),
            "must be \"stdout\", \"off\" or a file path".into(),
        );
    }

    // [compression], routes[].compression
    crate::compress::validate(c, &mut err);
    crate::auth::validate(c, &mut errs);
    crate::hygiene::validate(c, &mut errs);
    errs
}

/// `[[waf.exclusions]]`: id ranges parse, the target names a key-less or keyed collection,
/// and an exclusion says what it excludes.
fn validate_waf_exclusions(
    path: &str,
    list: &[crate::waf::WafExclusionConfig],
    err: &mut impl FnMut(String, String),
) {
    for (j, ex) in list.iter().enumerate() {
        for (k, id) in ex.rule_ids.iter().enumerate() {
            if let Err(e) = id.range() {
                err(format!("{path}[{j}].rule_ids[{k}]"), e);
            }
        }
        if let Some(t) = &ex.target {
            let coll = t.split(':').next().unwrap_or("");
            if coll.is_empty() || !coll.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                err(
                    format!("{path}[{j}].target"),
                    format!("{t:?} is not a target like \"ARGS:password\""),
                );
            }
        }
        if ex.rule_ids.is_empty() && ex.target.is_none() && ex.clients.is_empty() {
            err(
                format!("{path}[{j}]"),
                "an exclusion needs rule_ids, target or clients".into(),
            );
        }
    }
}

fn strsim_best<'a>(s: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(s, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

fn is_name(s: &str) -> bool {
    s.len() <= 64 && s.bytes().all(is_token_char)
}

/// `example.com`, `*.example.com` (one leading wildcard label), lowercase DNS names.
pub fn check_host_pattern(h: &str) -> Result<(), String> {
    let name = h.strip_prefix("*.").unwrap_or(h);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{h:?} is not a host name or wildcard (lowercase, e.g. \"api.example.com\" or \"*.example.com\")"
        ))
    }
}

/// An upstream endpoint: `http(s)://host[:port]` with no path, query or credentials.
pub fn check_endpoint(e: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = e
        .parse()
        .map_err(|err| format!("{e:?} is not a URL: {err}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{e:?}: scheme must be http:// or https://")),
    }
    let Some(auth) = uri.authority() else {
        return Err(format!("{e:?}: missing host"));
    };
    if auth.as_str().contains('@') {
        return Err(format!(
            "{e:?}: credentials in endpoint URLs are not supported"
        ));
    }
    if auth.host().is_empty() {
        return Err(format!("{e:?}: missing host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "{e:?}: an endpoint is a base URL without path or query"
        ));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        for ok in ["example.com", "*.example.com", "a-b.c1.io", "localhost"] {
            assert!(check_host_pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "*.",
            "a.*.com",
            "Example.com",
            "a..b",
            "*example.com",
            "a_b.com",
        ] {
            assert!(check_host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        for ok in [
            "http://127.0.0.1:3000",
            "https://api.internal",
            "http://[::1]:80/",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1:3000",
            "ftp://x",
            "http://u:p@x",
            "http://x/path",
            "http://x?q=1",
            "nope",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
