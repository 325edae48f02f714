//! The built-in HTTP/1.1 client codec (sans I/O): requests encoded once, responses decoded
//! incrementally from a byte buffer without copying or collecting the body.
//!
//! * [`encode_request`] turns a request kind into its exact wire bytes once, at plan time;
//!   every exchange then costs one `write` of a shared `Bytes`.
//! * [`Decoder`] reads a response head with `httparse` (what hyper uses) and then *skips* the
//!   body, counting its bytes: `Content-Length`, `Transfer-Encoding: chunked` (chunk sizes,
//!   extensions and trailers parsed, data skipped) or close-delimited. Interim `1xx`
//!   responses are skipped; `HEAD`, `204` and `304` have no body. It reports the status,
//!   the body size, whether the connection must close after this response, and a failed
//!   scenario assertion (checked on the head, while the header slices are still borrowed).
//!
//! The decoder never panics on bad input: every malformed byte sequence is a
//! [`ResponseError`]. It never asks for more than [`MAX_PENDING`] bytes of one head, chunk
//! line or trailer section.

use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};
use http::Method;
use http::header::{CONTENT_LENGTH, HOST, HeaderName, HeaderValue};

use crate::plan::Expect;
use crate::report::ErrorKind;

/// Most header fields accepted in one response head (hyper's default limit too).
pub(crate) const MAX_HEADERS: usize = 100;

/// Largest response head, chunk-size line or trailer section the decoder waits for.
pub(crate) const MAX_PENDING: usize = 64 * 1024;

/// Longest chunk size accepted, in hex digits (15 keeps the value below 2^60).
const MAX_CHUNK_DIGITS: usize = 15;

/// Encodes a request once: request line, `Host` (unless given), the headers, a
/// `Content-Length` when there is a body (or the method expects one: RFC 9110 §8.6), the body.
pub(crate) fn encode_request(
    method: &Method,
    target: &str,
    authority: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: &[u8],
) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + target.len() + body.len());
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n == HOST) {
        put_header(&mut out, HOST.as_str(), authority.as_bytes());
    }
    for (n, v) in headers {
        put_header(&mut out, n.as_str(), v.as_bytes());
    }
    let expects_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if (!body.is_empty() || expects_body) && !headers.iter().any(|(n, _)| n == CONTENT_LENGTH) {
        put_header(
            &mut out,
            CONTENT_LENGTH.as_str(),
            body.len().to_string().as_bytes(),
        );
    }
    out.put_slice(b"\r\n");
    out.put_slice(body);
    out.freeze()
}

fn put_header(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// A response the decoder cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResponseError {
    /// `httparse` rejected the status line or a header.
    #[error("invalid response head: {0}")]
    Head(httparse::Error),
    /// A `Content-Length` that is not a number, or several that disagree.
    #[error("invalid response: bad content-length {0:?}")]
    ContentLength(String),
    /// A chunk-size line that is not `HEX[;ext]CRLF`.
    #[error("invalid response: bad chunk size line")]
    ChunkSize,
    /// Chunk data not followed by CRLF.
    #[error("invalid response: chunk data not followed by CRLF")]
    ChunkEnd,
    /// A head, chunk line or trailer section beyond [`MAX_PENDING`].
    #[error("invalid response: {0} larger than 64 KiB")]
    TooLarge(&'static str),
    /// The connection closed before the response was complete.
    #[error("connection closed {0}")]
    Incomplete(&'static str),
}

impl ResponseError {
    /// The error kind this counts as: a truncated response is a `reset` (as hyper's
    /// "incomplete message"), anything malformed is `other`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ResponseError::Incomplete(_) => ErrorKind::Reset,
            _ => ErrorKind::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkCrlf,
    Trailers,
    UntilClose,
    Done,
}

/// Incremental response decoder; one per connection, [`Decoder::start`]ed per exchange.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
    head_request: bool,
    /// Final status code (interim 1xx responses are skipped).
    pub status: u16,
    /// Body bytes seen so far (after de-chunking).
    pub body_bytes: u64,
    /// The connection must be closed after this response (`Connection: close`, HTTP/1.0
    /// without keep-alive, close-delimited body, `101`).
    pub close: bool,
    /// A failed scenario assertion, checked on the final head.
    pub assertion: Option<String>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder waiting for nothing ([`Decoder::start`] arms it).
    pub fn new() -> Self {
        Self {
            state: State::Done,
            head_request: false,
            status: 0,
            body_bytes: 0,
            close: false,
            assertion: None,
        }
    }

    /// Prepares for the response to a new request (`head_request`: the method was `HEAD`).
    #[inline]
    pub fn start(&mut self, head_request: bool) {
        self.state = State::Head;
        self.head_request = head_request;
        self.status = 0;
        self.body_bytes = 0;
        self.close = false;
        self.assertion = None;
    }

    /// Whether the response is complete.
    #[inline]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds buffered bytes. Returns how many were consumed; the caller drops those and keeps
    /// the rest (an incomplete head or line), appending more bytes before the next call.
    /// Stops at the end of the response ([`Decoder::is_done`]), leaving later bytes unread.
    pub fn feed(&mut self, buf: &[u8], expect: &Expect) -> Result<usize, ResponseError> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.state {
                State::Done => return Ok(pos),
                State::Head => match self.head(rest, expect)? {
                    Some(n) => pos += n,
                    None => return Ok(pos),
                },
                State::Length(left) | State::ChunkData(left) => {
                    let take = left.min(rest.len() as u64);
                    self.body_bytes += take;
                    pos += take as usize;
                    if take < left {
                        self.state = match self.state {
                            State::Length(_) => State::Length(left - take),
                            _ => State::ChunkData(left - take),
                        };
                        return Ok(pos);
                    }
                    self.state = match self.state {
                        State::Length(_) => State::Done,
                        _ => State::ChunkCrlf,
                    };
                }
                State::ChunkCrlf => match rest {
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(pos),
                    _ => return Err(ResponseError::ChunkEnd),
                },
                State::ChunkSize => match chunk_size(rest)? {
                    Some((n, size)) => {
                        pos += n;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                    }
                    None => return Ok(pos),
                },
                State::Trailers => match find_crlf(rest) {
                    // An empty line ends the trailer section; trailer fields are skipped.
                    Some(0) => {
                        pos += 2;
                        self.state = State::Done;
                    }
                    Some(i) => pos += i + 2,
                    None => return Ok(pos),
                },
                State::UntilClose => {
                    self.body_bytes += rest.len() as u64;
                    return Ok(buf.len());
                }
            }
        }
    }

    /// The peer closed the connection (read returned 0): completes a close-delimited body,
    /// otherwise the response is truncated.
    pub fn eof(&mut self) -> Result<(), ResponseError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Head => Err(ResponseError::Incomplete(
                "before the response head was complete",
            )),
            _ => Err(ResponseError::Incomplete(
                "in the middle of the response body",
            )),
        }
    }

    /// The error for input that needs more than [`MAX_PENDING`] bytes buffered.
    pub fn too_large(&self) -> ResponseError {
        ResponseError::TooLarge(match self.state {
            State::Head => "response head",
            State::Trailers => "trailer section",
            _ => "chunk size line",
        })
    }

    /// Parses a head at the start of `buf`: `None` if incomplete, else the head's length.
    fn head(&mut self, buf: &[u8], expect: &Expect) -> Result<Option<usize>, ResponseError> {
        let mut storage = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut storage,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(ResponseError::Head(e)),
        };
        let code = resp.code.unwrap_or(0);
        let mut length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut chunked = false;
        let mut close = false;
        let mut keep_alive = false;
        for h in resp.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let v = parse_length(h.value)
                    .ok_or_else(|| ResponseError::ContentLength(lossy(h.value)))?;
                if length.is_some_and(|l| l != v) {
                    return Err(ResponseError::ContentLength(lossy(h.value)));
                }
                length = Some(v);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                transfer_encoding = true;
                // Chunked only if it is the final coding (RFC 9112 §6.3).
                chunked = tokens(h.value)
                    .last()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"connection") {
                for t in tokens(h.value) {
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        if (100..200).contains(&code) && code != 101 {
            // Interim response: skip it, the final one follows.
            return Ok(Some(n));
        }
        self.status = code;
        self.close = close || (resp.version == Some(0) && !keep_alive);
        if !expect.is_empty() {
            let headers = &*resp.headers;
            self.assertion = expect
                .check_with(code, |want| {
                    headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case(want.as_str()))
                })
                .err();
        }
        self.state = if code == 101 {
            // Switching protocols: what follows is not HTTP/1.1 any more.
            self.close = true;
            State::Done
        } else if self.head_request || code == 204 || code == 304 {
            State::Done
        } else if transfer_encoding {
            if chunked {
                State::ChunkSize
            } else {
                self.close = true;
                State::UntilClose
            }
        } else {
            match length {
                Some(0) => State::Done,
                Some(l) => State::Length(l),
                None => {
                    self.close = true;
                    State::UntilClose
                }
            }
        };
        Ok(Some(n))
    }
}

/// A decimal `Content-Length` (surrounding whitespace allowed, at most 19 digits).
fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// Comma-separated list elements, trimmed, empty ones skipped.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn lossy(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// A chunk-size line: `HEX *WS [; extensions] CRLF`. `None` if incomplete, else the line's
/// length and the size.
fn chunk_size(buf: &[u8]) -> Result<Option<(usize, u64)>, ResponseError> {
    let mut size = 0u64;
    let mut digits = 0;
    let mut i = 0;
    while i < buf.len() {
        let d = match buf[i] {
            b @ b'0'..=b'9' => b - b'0',
            b @ b'a'..=b'f' => b - b'a' + 10,
            b @ b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        digits += 1;
        if digits > MAX_CHUNK_DIGITS {
            return Err(ResponseError::ChunkSize);
        }
        size = size * 16 + u64::from(d);
        i += 1;
    }
    if i == buf.len() {
        return Ok(None);
    }
    if digits == 0 {
        return Err(ResponseError::ChunkSize);
    }
    while i < buf.len() && matches!(buf[i], b' ' | b'\t') {
        i += 1;
    }
    match buf.get(i) {
        None => Ok(None),
        Some(b'\r') => match buf.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((i + 2, size))),
            Some(_) => Err(ResponseError::ChunkSize),
        },
        Some(b';') => {
            // Extensions are ignored; they end at CRLF and may not contain a bare CR or LF.
            let ext = &buf[i..];
            match ext.iter().position(|&b| b == b'\r' || b == b'\n') {
                None => Ok(None),
                Some(j) => match ext.get(j..j + 2) {
                    Some(b"\r\n") => Ok(Some((i + j + 2, size))),
                    None if ext[j] == b'\r' => Ok(None),
                    _ => Err(ResponseError::ChunkSize),
                },
            }
        }
        Some(_) => Err(ResponseError::ChunkSize),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// What one decoded response looked like.
    #[derive(Debug, PartialEq, Eq)]
    struct Decoded {
        status: u16,
        body: u64,
        close: bool,
        assertion: Option<String>,
        /// Bytes after the response, left unread.
        rest: usize,
    }

    /// Decodes `wire` delivered in pieces split at `cuts`, as the connection does: consumed
    /// bytes are dropped, the rest is kept and more appended; EOF after the last piece.
    fn decode_split(
        wire: &[u8],
        cuts: &[usize],
        head_request: bool,
        expect: &Expect,
    ) -> Result<Decoded, ResponseError> {
        let mut d = Decoder::new();
        d.start(head_request);
        let mut buf: Vec<u8> = Vec::new();
        let mut from = 0;
        let mut bounds: Vec<usize> = cuts.to_vec();
        bounds.push(wire.len());
        for &to in &bounds {
            buf.extend_from_slice(&wire[from..to]);
            from = to;
            let used = d.feed(&buf, expect)?;
            buf.drain(..used);
            if d.is_done() {
                let rest = buf.len() + (wire.len() - from);
                return Ok(Decoded {
                    status: d.status,
                    body: d.body_bytes,
                    close: d.close,
                    assertion: d.assertion.clone(),
                    rest,
                });
            }
        }
        d.eof()?;
        Ok(Decoded {
            status: d.status,
            body: d.body_bytes,
            close: d.close,
            assertion: d.assertion.clone(),
            rest: buf.len(),
        })
    }

    fn decode(wire: &[u8]) -> Result<Decoded, ResponseError> {
        decode_split(wire, &[], false, &Expect::default())
    }

    /// Every way of splitting `wire` in two and byte by byte gives the same result as
    /// one read.
    fn check_splits(wire: &[u8], head_request: bool, expect: &Expect) -> Decoded {
        let whole = decode_split(wire, &[], head_request, expect).unwrap();
        for cut in 0..=wire.len() {
            assert_eq!(
                decode_split(wire, &[cut], head_request, expect).unwrap(),
                whole,
                "split at {cut} of {:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let every: Vec<usize> = (1..wire.len()).collect();
        assert_eq!(
            decode_split(wire, &every, head_request, expect).unwrap(),
            whole
        );
        whole
    }

    fn ok(status: u16, body: u64, close: bool, rest: usize) -> Decoded {
        Decoded {
            status,
            body,
            close,
            assertion: None,
            rest,
        }
    }

    #[test]
    fn response_table() {
        let none = Expect::default();
        // (wire, HEAD request, expected)
        let table: &[(&[u8], bool, Decoded)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                false,
                ok(200, 5, false, 0),
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length:  0 \r\n\r\n",
                false,
                ok(200, 0, false, 0),
            ),
            // Duplicate but equal lengths are accepted.
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
                false,
                ok(200, 3, false, 0),
            ),
            // Chunked with extensions and trailers; data is counted, not the framing.
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5;name=value;x=\"q\"\r\nhello\r\n\
                  1A\r\nabcdefghijklmnopqrstuvwxyz\r\n\
                  0;last\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n",
                false,
                ok(200, 31, false, 0),
            ),
            // Chunked without trailers; whitespace before the extension.
            (
                b"HTTP/1.1 201 Created\r\ntransfer-encoding: gzip, chunked\r\n\r\n3 ;a\r\nabc\r\n0\r\n\r\n",
                false,
                ok(201, 3, false, 0),
            ),
            // Transfer-Encoding wins over Content-Length.
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
                false,
                ok(200, 2, false, 0),
            ),
            // HEAD, 204 and 304 have no body whatever the headers say.
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n",
                true,
                ok(200, 0, false, 0),
            ),
            (
                b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
                false,
                ok(204, 0, false, 0),
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                ok(304, 0, false, 0),
            ),
            // Connection: close (any case, in a list).
            (
                b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 2\r\n\r\nok",
                false,
                ok(200, 2, true, 0),
            ),
            // HTTP/1.0 closes unless it says keep-alive.
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
                false,
                ok(200, 2, true, 0),
            ),
            (
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                false,
                ok(200, 2, false, 0),
            ),
            // No length: the body runs to the close.
            (
                b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil the end",
                false,
                ok(200, 13, true, 0),
            ),
            // A final coding other than chunked: also close-delimited.
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nzz",
                false,
                ok(200, 2, true, 0),
            ),
            // Interim responses are skipped; 101 ends the HTTP conversation.
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
                false,
                ok(200, 1, false, 0),
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                false,
                ok(101, 0, true, 0),
            ),
            // Bytes after a complete response are left for the caller.
            (
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nxEXTRA",
                false,
                ok(404, 1, false, 5),
            ),
        ];
        for (wire, head, want) in table {
            let got = check_splits(wire, *head, &none);
            assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn assertions_are_checked_on_the_final_head() {
        let expect = Expect {
            status: vec![200],
            headers: vec![HeaderName::from_static("etag")],
        };
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nETag: \"1\"\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(check_splits(wire, false, &expect).assertion, None);
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            check_splits(wire, false, &expect).assertion.as_deref(),
            Some("header etag missing")
        );
        let wire = b"HTTP/1.1 500 Oops\r\nEtag: 1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            check_splits(wire, false, &expect).assertion.as_deref(),
            Some("status 500 not in [200]")
        );
    }

    #[test]
    fn malformed_responses_are_errors_never_panics() {
        let table: &[(&[u8], ResponseError)] = &[
            (
                b"garbage\r\n\r\n",
                ResponseError::Head(httparse::Error::Version),
            ),
            (
                b"HTTP/1.1 2x0 OK\r\n\r\n",
                ResponseError::Head(httparse::Error::Status),
            ),
            (
                b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
                ResponseError::Head(httparse::Error::HeaderName),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
                ResponseError::ContentLength("12a".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                ResponseError::ContentLength("-1".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                ResponseError::ContentLength("99999999999999999999".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ResponseError::ContentLength("2".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                ResponseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
                ResponseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1234567890abcdef0\r\n",
                ResponseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\rx",
                ResponseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\nhello",
                ResponseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
                ResponseError::ChunkEnd,
            ),
            // Truncated: mid-head, mid-body, mid-chunk, mid-trailers.
            (
                b"HTTP/1.1 200 OK\r\nContent-Len",
                ResponseError::Incomplete("before the response head was complete"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                ResponseError::Incomplete("in the middle of the response body"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                ResponseError::Incomplete("in the middle of the response body"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n",
                ResponseError::Incomplete("in the middle of the response body"),
            ),
            (
                b"",
                ResponseError::Incomplete("before the response head was complete"),
            ),
        ];
        for (wire, want) in table {
            assert_eq!(
                decode(wire).as_ref(),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
            // The same error however the bytes arrive.
            for cut in 0..=wire.len() {
                assert_eq!(
                    decode_split(wire, &[cut], false, &Expect::default()).as_ref(),
                    Err(want),
                    "split at {cut} of {:?}",
                    String::from_utf8_lossy(wire)
                );
            }
        }
        assert!(decode(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().close);
        assert_eq!(ResponseError::ChunkSize.kind(), ErrorKind::Other);
        assert_eq!(ResponseError::Incomplete("x").kind(), ErrorKind::Reset);
    }

    #[test]
    fn too_many_headers_is_an_error() {
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            wire.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        assert_eq!(
            decode(&wire),
            Err(ResponseError::Head(httparse::Error::TooManyHeaders))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: random mutations of valid responses, fed in random
        // pieces. Any result is fine as long as it is not a panic and no body is overcounted.
        let seeds: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No\r\n\r\n",
        ];
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut wire = seeds[(rnd() % seeds.len() as u64) as usize].to_vec();
            for _ in 0..(rnd() % 4) {
                let i = (rnd() % wire.len() as u64) as usize;
                match rnd() % 3 {
                    0 => wire[i] = rnd() as u8,
                    1 => {
                        wire.remove(i);
                    }
                    _ => wire.insert(i, b"\r\n0;:"[(rnd() % 5) as usize]),
                }
            }
            let cut = (rnd() % (wire.len() as u64 + 1)) as usize;
            if let Ok(d) = decode_split(&wire, &[cut], false, &Expect::default()) {
                assert!(d.body <= wire.len() as u64);
            }
        }
    }

    #[test]
    fn requests_are_encoded_once_with_host_and_length() {
        let h = |n: &'static str, v: &'static str| {
            (HeaderName::from_static(n), HeaderValue::from_static(v))
        };
        let get = encode_request(
            &Method::GET,
            "/a?b=1",
            "127.0.0.1:8080",
            &[h("accept", "*/*")],
            b"",
        );
        assert_eq!(
            &get[..],
            b"GET /a?b=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\naccept: */*\r\n\r\n"
        );
        let post = encode_request(&Method::POST, "/x", "h", &[], b"{}");
        assert_eq!(
            &post[..],
            b"POST /x HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\n\r\n{}"
        );
        let empty_post = encode_request(&Method::POST, "/x", "h", &[], b"");
        assert!(empty_post.ends_with(b"content-length: 0\r\n\r\n"));
        // A Host or Content-Length given by the user is not duplicated.
        let own = encode_request(
            &Method::PUT,
            "/",
            "h",
            &[h("host", "other"), h("content-length", "1")],
            b"z",
        );
        assert_eq!(
            &own[..],
            b"PUT / HTTP/1.1\r\nhost: other\r\ncontent-length: 1\r\n\r\nz"
        );
    }
}
