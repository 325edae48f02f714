//! Scenario files: weighted requests with their own method, headers, body and assertions.
//!
//! ```toml
//! # headers added to every request (optional)
//! [defaults]
//! headers = { "accept" = "application/json" }
//!
//! [[request]]
//! url = "http://127.0.0.1:8080/1k.json"
//! weight = 3                       # share of the load, default 1
//! headers = { "accept-encoding" = "gzip" }
//! expect = { status = [200, 304], headers = ["etag"] }
//!
//! [[request]]
//! url = "http://127.0.0.1:8080/items"
//! method = "POST"                  # default GET
//! body = '{"name":"x"}'            # or body_file = "item.json" (relative to this file)
//! expect = { status = 201 }
//! ```
//!
//! A response failing its `expect` counts as an `assertion` error. Unknown keys are errors;
//! every error names the key (`request[1].url`) and, for syntax errors, the line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Deserialize;

use crate::error::BenchError;
use crate::plan::{Expect, RequestSpec, parse_header, parse_method, parse_url};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    request: Vec<Req>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    expect: Option<ExpectFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Req {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default = "one")]
    weight: i64,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_file: Option<PathBuf>,
    #[serde(default)]
    expect: Option<ExpectFile>,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    #[serde(default)]
    status: Option<StatusList>,
    #[serde(default)]
    headers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum StatusList {
    One(i64),
    Many(Vec<i64>),
}

/// Reads and validates a scenario file.
pub(crate) fn load(path: &Path) -> Result<Vec<RequestSpec>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse(&text, base).map_err(|reason| BenchError::Scenario {
        path: path.to_owned(),
        reason,
    })
}

/// Parses scenario text; relative `body_file`s are read from `base`. All errors at once.
pub(crate) fn parse(text: &str, base: &Path) -> Result<Vec<RequestSpec>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    if file.request.is_empty() {
        return Err("no [[request]] entries: a scenario needs at least one request".to_owned());
    }
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let default_headers = headers(&file.defaults.headers, "defaults.headers", &mut errors);
    let default_expect = file
        .defaults
        .expect
        .as_ref()
        .map(|e| expect(e, "defaults.expect", &mut errors));
    for (i, r) in file.request.iter().enumerate() {
        let at = format!("request[{i}]");
        let url = match parse_url(&r.url) {
            Ok(u) => Some(u),
            Err(e) => {
                errors.push(format!("{at}.url: {e}"));
                None
            }
        };
        let method = match parse_method(r.method.as_deref().unwrap_or("GET")) {
            Ok(m) => Some(m),
            Err(e) => {
                errors.push(format!("{at}.method: {e}"));
                None
            }
        };
        let weight = match u32::try_from(r.weight) {
            Ok(w) if w > 0 => w,
            _ => {
                errors.push(format!(
                    "{at}.weight: must be a whole number from 1 to {}, got {}",
                    u32::MAX,
                    r.weight
                ));
                1
            }
        };
        let mut hs = headers(&r.headers, &format!("{at}.headers"), &mut errors);
        for (n, v) in &default_headers {
            if !hs.iter().any(|(h, _)| h == n) {
                hs.push((n.clone(), v.clone()));
            }
        }
        let body = match (&r.body, &r.body_file) {
            (Some(_), Some(_)) => {
                errors.push(format!("{at}: body and body_file are mutually exclusive"));
                Bytes::new()
            }
            (Some(b), None) => Bytes::from(b.clone().into_bytes()),
            (None, Some(f)) => {
                let p = base.join(f);
                match std::fs::read(&p) {
                    Ok(b) => Bytes::from(b),
                    Err(e) => {
                        errors.push(format!("{at}.body_file: reading {}: {e}", p.display()));
                        Bytes::new()
                    }
                }
            }
            (None, None) => Bytes::new(),
        };
        let ex = match &r.expect {
            Some(e) => expect(e, &format!("{at}.expect"), &mut errors),
            None => default_expect.clone().unwrap_or_default(),
        };
        if let (Some(url), Some(method)) = (url, method) {
            out.push(RequestSpec {
                url,
                method,
                headers: hs,
                body,
                weight,
                expect: ex,
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

fn headers(
    map: &BTreeMap<String, String>,
    at: &str,
    errors: &mut Vec<String>,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut out = Vec::new();
    for (n, v) in map {
        match parse_header(n, v) {
            Ok(h) => out.push(h),
            Err(e) => errors.push(format!("{at}.{n:?}: {e}")),
        }
    }
    out
}

fn expect(e: &ExpectFile, at: &str, errors: &mut Vec<String>) -> Expect {
    let raw = match &e.status {
        None => vec![],
        Some(StatusList::One(s)) => vec![*s],
        Some(StatusList::Many(v)) => v.clone(),
    };
    let mut status = Vec::new();
    for s in raw {
        match u16::try_from(s) {
            Ok(s) if (100..=599).contains(&s) => status.push(s),
            _ => errors.push(format!("{at}.status: {s} is not an HTTP status (100-599)")),
        }
    }
    let mut headers = Vec::new();
    for h in &e.headers {
        match http::HeaderName::from_bytes(h.trim().as_bytes()) {
            Ok(n) => headers.push(n),
            Err(_) => errors.push(format!("{at}.headers: invalid header name {h:?}")),
        }
    }
    Expect { status, headers }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<RequestSpec>, String> {
        parse(text, Path::new("."))
    }

    #[test]
    fn good_file() {
        let specs = p(r#"
            [defaults]
            headers = { "accept" = "application/json", "x-a" = "default" }
            expect = { status = 200 }

            [[request]]
            url = "http://127.0.0.1:8080/1k.json"
            weight = 3
            headers = { "x-a" = "mine" }

            [[request]]
            url = "https://example.com/items"
            method = "post"
            body = '{"x":1}'
            expect = { status = [201, 409], headers = ["Location"] }
        "#)
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].weight, 3);
        assert_eq!(specs[0].expect.status, vec![200]);
        let xa: Vec<_> = specs[0]
            .headers
            .iter()
            .filter(|(n, _)| n == "x-a")
            .collect();
        assert_eq!(xa.len(), 1);
        assert_eq!(xa[0].1, "mine");
        assert!(specs[0].headers.iter().any(|(n, _)| n == "accept"));
        assert_eq!(specs[1].method, http::Method::POST);
        assert_eq!(&specs[1].body[..], br#"{"x":1}"#);
        assert_eq!(specs[1].expect.status, vec![201, 409]);
        assert_eq!(specs[1].expect.headers[0].as_str(), "location");
        assert!(specs[1].url.https);
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = p("[[request]]\nurl = \"http://x/\"\nweight = \n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = p("[[request]]\nurl = \"http://x/\"\nwieght = 2\n").unwrap_err();
        assert!(e.contains("wieght") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn semantic_errors_are_all_reported_with_key_paths() {
        let e = p(r#"
            [[request]]
            url = "ftp://x/"
            [[request]]
            url = "http://x/"
            weight = 0
            method = "GE T"
            headers = { "bad name" = "v" }
            expect = { status = [200, 999] }
            [[request]]
            url = "http://x/"
            body = "a"
            body_file = "b"
        "#)
        .unwrap_err();
        for needle in [
            "request[0].url: unsupported url",
            "request[1].weight",
            "request[1].method",
            "request[1].headers",
            "request[1].expect.status: 999",
            "request[2]: body and body_file",
        ] {
            assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
        }
    }

    #[test]
    fn empty_scenario_is_an_error() {
        assert!(p("").unwrap_err().contains("at least one request"));
    }

    #[test]
    fn body_file_is_relative_to_the_scenario() {
        let dir = std::env::temp_dir().join(format!("rampart-bench-scn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.json"), b"{}").unwrap();
        let f = dir.join("s.toml");
        std::fs::write(
            &f,
            "[[request]]\nurl = \"http://127.0.0.1:1/\"\nbody_file = \"b.json\"\n",
        )
        .unwrap();
        let specs = load(&f).unwrap();
        assert_eq!(&specs[0].body[..], b"{}");
        std::fs::write(
            &f,
            "[[request]]\nurl = \"http://127.0.0.1:1/\"\nbody_file = \"missing.json\"\n",
        )
        .unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(
            e.contains("request[0].body_file") && e.contains("missing.json"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
