//! `rampart waf test`: run requests given as JSON lines (the format of the WAF test corpus)
//! through the engine and print one verdict line per request.
//!
//! Accepted line shapes (fields as in `shared/waf-corpus/README.md`):
//!
//! * a request: `method`, `uri`, `version`, `headers` (`[[name, value], ...]`), `body_b64`, or
//!   `raw_request_b64` (the bytes on the wire);
//! * a parameter value: `value`, sent as `GET /get?payload=<percent-encoded value>` with a
//!   browser `User-Agent` and `Accept: */*`.
//!
//! Output line: `<key>\t<pass|block|detect>\t<score>\t<rule ids, comma-separated>`.

use std::io::{self, BufRead, Write};

use serde_json::Value;

use crate::{
    config::WafPolicy,
    engine::{Outcome, Verdict},
    request::{Limits, WafRequest},
    transform::base64_decode,
};

/// Counts printed at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestSummary {
    /// Requests read.
    pub total: usize,
    /// Passed.
    pub pass: usize,
    /// Blocked.
    pub block: usize,
    /// Detected (detect mode).
    pub detect: usize,
    /// Lines that could not be read as a request.
    pub invalid: usize,
}

/// Percent-encode everything but unreserved characters.
pub fn percent_encode(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len() * 3);
    for &c in v {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            s.push(char::from(c));
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

/// Parse raw request bytes (`GET / HTTP/1.1\r\nHost: x\r\n\r\nbody`).
pub fn parse_raw_request(raw: &[u8], limits: &Limits) -> Option<WafRequest> {
    let head_end = crate::transform::find(raw, b"\r\n\r\n")
        .map(|p| (p, p + 4))
        .or_else(|| crate::transform::find(raw, b"\n\n").map(|p| (p, p + 2)))
        .unwrap_or((raw.len(), raw.len()));
    let head = &raw[..head_end.0];
    let body = &raw[head_end.1..];
    let mut lines = head
        .split(|c| *c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next()?;
    let mut parts = line.splitn(3, |c| *c == b' ');
    let method = String::from_utf8_lossy(parts.next()?).into_owned();
    let uri = parts.next().unwrap_or(b"/").to_vec();
    let version = String::from_utf8_lossy(parts.next().unwrap_or(b"HTTP/1.1")).into_owned();
    let headers: Vec<(Vec<u8>, Vec<u8>)> = lines
        .filter_map(|l| {
            let c = l.iter().position(|c| *c == b':')?;
            Some((l[..c].to_vec(), l[c + 1..].trim_ascii().to_vec()))
        })
        .collect();
    Some(WafRequest::build(
        &method,
        &uri,
        &version,
        headers.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
        (!body.is_empty()).then_some(body),
        limits,
    ))
}

/// Turn one corpus JSON object into a request. Returns the key and the request.
pub fn case_to_request(case: &Value, limits: &Limits) -> Option<(String, WafRequest)> {
    let key = case
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string();
    if let Some(v) = case.get("value").and_then(Value::as_str) {
        let uri = format!("/get?payload={}", percent_encode(v.as_bytes()));
        let headers: [(&[u8], &[u8]); 3] = [
            (b"Host", b"localhost"),
            (
                b"User-Agent",
                b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            ),
            (b"Accept", b"*/*"),
        ];
        return Some((
            key,
            WafRequest::build("GET", uri.as_bytes(), "HTTP/1.1", headers, None, limits),
        ));
    }
    if let Some(raw) = case.get("raw_request_b64").and_then(Value::as_str) {
        // MIME-style base64 may be wrapped in lines: skip what is not base64.
        let raw = base64_decode(raw.as_bytes(), true);
        return parse_raw_request(&raw, limits).map(|r| (key, r));
    }
    let method = case.get("method").and_then(Value::as_str).unwrap_or("GET");
    let uri = case.get("uri").and_then(Value::as_str).unwrap_or("/");
    let version = case
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("HTTP/1.1");
    let headers: Vec<(String, String)> = case
        .get("headers")
        .and_then(Value::as_array)
        .map(|hs| {
            hs.iter()
                .filter_map(|h| {
                    let a = h.as_array()?;
                    Some((
                        a.first()?.as_str()?.to_string(),
                        a.get(1)?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let body = case
        .get("body_b64")
        .and_then(Value::as_str)
        .map(|b| base64_decode(b.as_bytes(), true))
        .filter(|b| !b.is_empty());
    Some((
        key,
        WafRequest::build(
            method,
            uri.as_bytes(),
            version,
            headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
            body.as_deref(),
            limits,
        ),
    ))
}

/// Format a verdict line.
pub fn verdict_line(key: &str, v: &Verdict) -> String {
    let ids: Vec<String> = v.rule_ids().iter().map(u32::to_string).collect();
    format!(
        "{key}\t{}\t{}\t{}",
        v.outcome.as_str(),
        v.score,
        ids.join(",")
    )
}

/// Run every JSON line of `input` through the policy's engine; write one verdict line per
/// request to `out` and return the counts. Unreadable lines print `<line n>\tinvalid`.
pub fn waf_test(
    policy: &WafPolicy,
    input: impl BufRead,
    out: &mut impl Write,
) -> io::Result<TestSummary> {
    let mut s = TestSummary::default();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        s.total += 1;
        let parsed = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| case_to_request(&v, &policy.limits));
        let Some((key, req)) = parsed else {
            s.invalid += 1;
            writeln!(out, "line {}\tinvalid", n + 1)?;
            continue;
        };
        let v = policy.engine.inspect(&req, policy, None);
        match v.outcome {
            Outcome::Pass => s.pass += 1,
            Outcome::Block => s.block += 1,
            Outcome::Detect => s.detect += 1,
        }
        writeln!(out, "{}", verdict_line(&key, &v))?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::Engine;

    #[test]
    fn runs_jsonl() {
        let policy = WafPolicy::new(Arc::new(Engine::builtin().unwrap()));
        let input = concat!(
            r#"{"key":"a","value":"1' or '1'='1"}"#,
            "\n",
            r#"{"key":"b","value":"hello"}"#,
            "\n",
            "not json\n",
            r#"{"key":"c","method":"GET","uri":"/?x=<script>alert(1)</script>","version":"HTTP/1.1","headers":[["Host","x"],["User-Agent","t"],["Accept","*/*"]],"body_b64":""}"#,
            "\n",
            r#"{"key":"d","raw_request_b64":"R0VUIC8/YT0xIEhUVFAvMS4xDQpIb3N0OiB4DQoNCg=="}"#,
            "\n",
        );
        let mut out = Vec::new();
        let s = waf_test(&policy, input.as_bytes(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(s.total, 5, "{text}");
        assert_eq!(s.invalid, 1);
        assert_eq!(s.block, 2, "{text}");
        assert!(text.lines().any(|l| l.starts_with("a\tblock\t")), "{text}");
        assert!(text.lines().any(|l| l.starts_with("b\tpass\t0")), "{text}");
        assert!(text.lines().any(|l| l.starts_with("d\tpass")), "{text}");
    }

    #[test]
    fn wrapped_base64_raw_requests_parse() {
        // MIME-style base64 (wrapped in lines) decodes whole: every header is kept.
        let raw = "R0VUIC8gSFRUUC8xLjENCkhvc3Q6IGgNClVz\nZXItQWdlbnQ6IHQNCg0K";
        let case = serde_json::json!({"key": "k", "raw_request_b64": raw});
        let (_, r) = case_to_request(&case, &Limits::default()).unwrap();
        assert_eq!(r.header("host"), Some(&b"h"[..]));
        assert_eq!(r.header("user-agent"), Some(&b"t"[..]));
    }

    #[test]
    fn raw_requests_parse() {
        let r = parse_raw_request(
            b"POST /p?x=1 HTTP/1.0\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\na=b",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(r.header("host"), Some(&b"h"[..]));
        assert_eq!(
            r.first(crate::request::Collection::Protocol),
            Some(&b"HTTP/1.0"[..])
        );
        assert!(
            r.values(crate::request::Collection::ArgsPost)
                .any(|e| e.key == "a")
        );
    }
}
