//! Typed errors of the request path.
//!
//! A layer that refuses a request returns `Err(Error::new(ErrorKind::..))` (boxed as
//! [`BoxError`]). Leaf errors of feature crates may be attached as the `source`; the rescue
//! layer walks the chain (see [`crate::rescue`]) to find the first [`Error`] and answers with
//! its status. Messages are lowercase and start with the context; they go to logs only,
//! never into a client body.

use std::{fmt, time::Duration};

use http::{HeaderMap, StatusCode};

/// The boxed error type inside the layer stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, as far as the client is concerned. Each kind maps to exactly one status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No route matches host + path (404).
    NoRoute,
    /// The route exists but the resource does not (404), e.g. a missing static file.
    NotFound,
    /// Malformed or ambiguous request (400), e.g. smuggling-shaped framing.
    BadRequest,
    /// Method not allowed on this route (405); carries the `Allow` value.
    MethodNotAllowed(String),
    /// The client was too slow sending its body (408).
    RequestTimeout,
    /// Body larger than the route allows (413).
    PayloadTooLarge,
    /// Request target longer than allowed (414).
    UriTooLong,
    /// Too many or too large header fields (431).
    HeadersTooLarge,
    /// Refused by policy (403): WAF, IP list, ban. Carries a reference id for support.
    Forbidden {
        /// Reference id shown to the client and written to the audit log.
        reference: String,
    },
    /// Missing or bad credentials (401).
    Unauthorized,
    /// Rate limited (429); carries the wait.
    RateLimited {
        /// How long until a retry may succeed (`Retry-After`).
        retry_after: Duration,
    },
    /// No acceptable representation (406).
    NotAcceptable,
    /// The gateway is overloaded (503), answered at once instead of queueing.
    Overloaded,
    /// Every endpoint's circuit breaker is open (503).
    CircuitOpen,
    /// The upstream pool has no usable endpoint (503).
    NoHealthyEndpoints,
    /// Could not connect to the upstream (502).
    UpstreamConnect,
    /// The upstream broke the protocol or reset the connection (502).
    UpstreamProtocol,
    /// The upstream or the whole request took too long (504).
    GatewayTimeout,
    /// `only-if-cached` and nothing in the cache (504).
    NotCached,
    /// A bug or an unexpected condition (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status this kind is answered with.
    pub fn status(&self) -> StatusCode {
        use ErrorKind::*;
        match self {
            NoRoute | NotFound => StatusCode::NOT_FOUND,
            BadRequest => StatusCode::BAD_REQUEST,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Forbidden { .. } => StatusCode::FORBIDDEN,
            Unauthorized => StatusCode::UNAUTHORIZED,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Overloaded | CircuitOpen | NoHealthyEndpoints => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamConnect | UpstreamProtocol => StatusCode::BAD_GATEWAY,
            GatewayTimeout | NotCached => StatusCode::GATEWAY_TIMEOUT,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, stable, client-safe label (used in error bodies and logs).
    pub fn label(&self) -> &'static str {
        use ErrorKind::*;
        match self {
            NoRoute => "no route",
            NotFound => "not found",
            BadRequest => "bad request",
            MethodNotAllowed(_) => "method not allowed",
            RequestTimeout => "request timeout",
            PayloadTooLarge => "payload too large",
            UriTooLong => "uri too long",
            HeadersTooLarge => "request header fields too large",
            Forbidden { .. } => "forbidden",
            Unauthorized => "unauthorized",
            RateLimited { .. } => "rate limited",
            NotAcceptable => "not acceptable",
            Overloaded => "overloaded",
            CircuitOpen => "circuit open",
            NoHealthyEndpoints => "no healthy upstream",
            UpstreamConnect => "upstream unreachable",
            UpstreamProtocol => "upstream protocol error",
            GatewayTimeout => "gateway timeout",
            NotCached => "not cached",
            Internal => "internal error",
        }
    }
}

/// A typed request-path error: a kind (which fixes the status), optional extra response
/// headers (e.g. `RateLimit-Policy`), an optional log message and an optional cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    headers: Option<Box<HeaderMap>>,
    message: Option<String>,
    source: Option<BoxError>,
}

impl Error {
    /// An error of this kind with no further detail.
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            headers: None,
            message: None,
            source: None,
        }
    }

    /// Attach a log message (never shown to the client).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Attach headers the rescue layer adds to the error response.
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = Some(Box::new(headers));
        self
    }

    /// The kind.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Extra response headers, if any.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_deref()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.label())?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Walk an error's `source()` chain and return the first `E` found.
pub fn find_cause<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

/// `true` when an `E` is anywhere in the chain (linkerd's `is_caused_by`).
pub fn is_caused_by<E: std::error::Error + 'static>(
    err: &(dyn std::error::Error + 'static),
) -> bool {
    find_cause::<E>(err).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typed_error_through_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Error);
        let inner = Error::new(ErrorKind::PayloadTooLarge);
        let outer: BoxError = Box::new(Outer(inner));
        let found = find_cause::<Error>(outer.as_ref()).expect("found");
        assert_eq!(found.kind().status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!is_caused_by::<std::io::Error>(outer.as_ref()));
    }
}
