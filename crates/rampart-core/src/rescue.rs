//! The rescue: the one place where errors become HTTP responses.
//!
//! Layers below the rescue return `Err(BoxError)`; the rescue layer (installed by
//! `rampart-app`'s stack, layer 5) calls [`classify`] and [`error_response`]. Above it nothing
//! fails. Client bodies carry the status label and the request id, never internal error text.

use std::time::Duration;

use http::{HeaderValue, StatusCode, header};

use crate::{BoxError, Error, ErrorKind, RequestId, Response, body, error::find_cause};

/// Map any error from the stack to the kind the client is told about.
///
/// Known typed errors win ([`Error`] anywhere in the chain); then well-known foreign errors:
/// a tokio timeout is a 504, a body length limit a 413, a hyper error a 502. Anything else is
/// an internal error (500).
pub fn classify<'a>(err: &'a (dyn std::error::Error + 'static)) -> (ErrorKind, Option<&'a Error>) {
    if let Some(e) = find_cause::<Error>(err) {
        return (e.kind().clone(), Some(e));
    }
    if find_cause::<tokio::time::error::Elapsed>(err).is_some() {
        return (ErrorKind::GatewayTimeout, None);
    }
    if find_cause::<http_body_util::LengthLimitError>(err).is_some() {
        return (ErrorKind::PayloadTooLarge, None);
    }
    if let Some(h) = find_cause::<hyper::Error>(err) {
        if h.is_timeout() {
            return (ErrorKind::GatewayTimeout, None);
        }
        return (ErrorKind::UpstreamProtocol, None);
    }
    (ErrorKind::Internal, None)
}

/// Build the client-facing response for an error. The body is a small JSON document:
/// `{"error":"<label>","status":<code>,"request_id":"<id>"}` (plus `"reference"` for 403s).
pub fn error_response(err: &BoxError, request_id: Option<&RequestId>) -> Response {
    let (kind, typed) = classify(err.as_ref());
    let status = kind.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::warn!(error = %DisplayChain(err.as_ref()), request_id = request_id.map(|r| r.as_str()), "internal error");
    } else {
        tracing::debug!(error = %DisplayChain(err.as_ref()), status = status.as_u16(), "request refused");
    }
    let mut resp = response_for(&kind, request_id);
    if let Some(extra) = typed.and_then(|e| e.headers()) {
        for (k, v) in extra {
            resp.headers_mut().append(k.clone(), v.clone());
        }
    }
    resp
}

/// The response for a kind (status, JSON body, kind-specific headers such as `Retry-After` and
/// `Allow`), without extra headers.
pub fn response_for(kind: &ErrorKind, request_id: Option<&RequestId>) -> Response {
    let status = kind.status();
    let mut json = format!(
        "{{\"error\":\"{}\",\"status\":{}",
        kind.label(),
        status.as_u16()
    );
    if let ErrorKind::Forbidden { reference } = kind {
        json.push_str(",\"reference\":");
        json.push_str(&serde_json::Value::from(reference.as_str()).to_string());
    }
    if let Some(id) = request_id {
        // Request ids are validated to a safe charset; no escaping needed.
        json.push_str(",\"request_id\":\"");
        json.push_str(id.as_str());
        json.push('"');
    }
    json.push_str("}\n");
    let mut resp = Response::new(body::full(json));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match kind {
        ErrorKind::RateLimited { retry_after } => {
            h.insert(header::RETRY_AFTER, retry_after_value(*retry_after));
        }
        ErrorKind::MethodNotAllowed(allow) => {
            if let Ok(v) = HeaderValue::from_str(allow) {
                h.insert(header::ALLOW, v);
            }
        }
        ErrorKind::Overloaded => {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    if let Some(id) = request_id {
        h.insert("x-request-id", id.header_value().clone());
    }
    resp
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_value(d: Duration) -> HeaderValue {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

/// Displays an error and its whole `source()` chain, `a: b: c`.
pub struct DisplayChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(e) = cur {
            write!(f, ": {e}")?;
            cur = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_map_to_their_status() {
        let cases = [
            (ErrorKind::NoRoute, 404),
            (ErrorKind::NotFound, 404),
            (ErrorKind::PayloadTooLarge, 413),
            (ErrorKind::UriTooLong, 414),
            (ErrorKind::HeadersTooLarge, 431),
            (ErrorKind::Overloaded, 503),
            (ErrorKind::UpstreamConnect, 502),
            (ErrorKind::GatewayTimeout, 504),
        ];
        for (kind, code) in cases {
            let err: BoxError = Box::new(Error::new(kind));
            let resp = error_response(&err, None);
            assert_eq!(resp.status().as_u16(), code);
        }
    }

    #[test]
    fn unknown_errors_are_500_and_hide_their_text() {
        let err: BoxError = "secret internal detail".into();
        let id = RequestId::generate();
        let resp = error_response(&err, Some(&id));
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()["x-request-id"], *id.header_value());
    }

    #[test]
    fn rate_limited_carries_retry_after_rounded_up() {
        let err: BoxError = Box::new(Error::new(ErrorKind::RateLimited {
            retry_after: Duration::from_millis(1500),
        }));
        let resp = error_response(&err, None);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
    }

    #[tokio::test]
    async fn timeouts_are_504() {
        let elapsed = tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>())
            .await
            .unwrap_err();
        let err: BoxError = Box::new(elapsed);
        assert_eq!(classify(err.as_ref()).0, ErrorKind::GatewayTimeout);
    }
}
