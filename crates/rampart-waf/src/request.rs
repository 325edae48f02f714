//! The request model the rules look at: every inspectable part of a request, extracted once,
//! bounded, as named collections (ModSecurity's variables: `ARGS`, `REQUEST_HEADERS`, ...).
//!
//! Body parsers (`application/x-www-form-urlencoded`, `multipart/form-data`, JSON, XML as raw
//! text) run only when the body is given; they never fail: a malformed body sets
//! `REQBODY_ERROR` and whatever was parsed so far stays inspectable.

use std::fmt;

use crate::transform::url_decode;

/// A collection of request values (ModSecurity variable name in the docs of each variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collection {
    /// `REQUEST_METHOD`.
    Method,
    /// `REQUEST_URI`: path and query as received.
    Uri,
    /// `REQUEST_URI_RAW`: as `REQUEST_URI`.
    UriRaw,
    /// `REQUEST_FILENAME`: the URL-decoded path, without the query.
    Filename,
    /// `REQUEST_BASENAME`: the last segment of `REQUEST_FILENAME`.
    Basename,
    /// `REQUEST_LINE`: `METHOD URI VERSION`.
    RequestLine,
    /// `REQUEST_PROTOCOL`: `HTTP/1.1`.
    Protocol,
    /// `QUERY_STRING`: raw query.
    QueryString,
    /// `ARGS_GET`: query arguments (decoded), keyed by name.
    ArgsGet,
    /// `ARGS_POST`: body arguments (form, multipart fields, JSON leaves), keyed by name/path.
    ArgsPost,
    /// `REQUEST_HEADERS`, keyed by lowercase name.
    Headers,
    /// `REQUEST_COOKIES`, keyed by cookie name.
    Cookies,
    /// `REQUEST_BODY`: the raw (possibly truncated) body.
    Body,
    /// `FILES`: multipart file names, keyed by field name.
    Files,
    /// `MULTIPART_PART_HEADERS`: every part header line, keyed by field name.
    MultipartPartHeaders,
    /// `XML`: the XML body's text (raw), when the body is XML.
    Xml,
    /// `REQBODY_ERROR`: `1` when the body could not be parsed completely.
    ReqBodyError,
    /// `REQBODY_PROCESSOR`: `URLENCODED`, `MULTIPART`, `JSON`, `XML`.
    ReqBodyProcessor,
    /// `REQUEST_BODY_LENGTH`: the body's full length in bytes.
    BodyLength,
    /// `ARGS_COMBINED_SIZE`: total length of argument names and values.
    ArgsCombinedSize,
    /// `FILES_SIZES`: the size of each uploaded file, keyed by field name.
    FilesSizes,
    /// `FILES_COMBINED_SIZE`: the total size of the uploaded files (multipart bodies).
    FilesCombinedSize,
    /// `INBOUND_DATA_ERROR`: `1` when the body exceeded the inspection limit.
    InboundDataError,
    /// `MULTIPART_STRICT_ERROR`: `1` when the multipart body was malformed.
    MultipartStrictError,
    /// `REMOTE_ADDR`: the client IP.
    RemoteAddr,
}

impl Collection {
    /// ModSecurity's name of this collection.
    pub fn name(self) -> &'static str {
        use Collection::*;
        match self {
            Method => "REQUEST_METHOD",
            Uri => "REQUEST_URI",
            UriRaw => "REQUEST_URI_RAW",
            Filename => "REQUEST_FILENAME",
            Basename => "REQUEST_BASENAME",
            RequestLine => "REQUEST_LINE",
            Protocol => "REQUEST_PROTOCOL",
            QueryString => "QUERY_STRING",
            ArgsGet => "ARGS_GET",
            ArgsPost => "ARGS_POST",
            Headers => "REQUEST_HEADERS",
            Cookies => "REQUEST_COOKIES",
            Body => "REQUEST_BODY",
            Files => "FILES",
            MultipartPartHeaders => "MULTIPART_PART_HEADERS",
            Xml => "XML",
            ReqBodyError => "REQBODY_ERROR",
            ReqBodyProcessor => "REQBODY_PROCESSOR",
            BodyLength => "REQUEST_BODY_LENGTH",
            ArgsCombinedSize => "ARGS_COMBINED_SIZE",
            FilesSizes => "FILES_SIZES",
            FilesCombinedSize => "FILES_COMBINED_SIZE",
            InboundDataError => "INBOUND_DATA_ERROR",
            MultipartStrictError => "MULTIPART_STRICT_ERROR",
            RemoteAddr => "REMOTE_ADDR",
        }
    }

    /// `true` for collections only known once the body is read.
    pub fn needs_body(self) -> bool {
        use Collection::*;
        matches!(
            self,
            ArgsPost
                | Body
                | Files
                | FilesSizes
                | FilesCombinedSize
                | MultipartPartHeaders
                | Xml
                | ReqBodyError
                | ReqBodyProcessor
                | BodyLength
                | MultipartStrictError
                | InboundDataError
        )
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Limits on what is extracted from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of arguments (query + body) kept; more sets `REQBODY_ERROR`.
    pub max_args: usize,
    /// Maximum JSON nesting depth; deeper values are not extracted and set `REQBODY_ERROR`.
    pub max_depth: usize,
    /// Maximum number of multipart parts.
    pub max_parts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_args: 1024,
            max_depth: 32,
            max_parts: 256,
        }
    }
}

/// One extracted value, borrowed from its [`WafRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The collection it belongs to.
    pub coll: Collection,
    /// The key inside the collection (argument name, lowercase header name, JSON path), or
    /// empty for single-valued collections.
    pub key: &'a str,
    /// The value (decoded where the protocol defines an encoding).
    pub value: &'a [u8],
}

/// Where an entry's key and value are in the request's storage (byte ranges).
#[derive(Debug, Clone, Copy)]
struct Slot {
    coll: Collection,
    key: (usize, usize),
    value: (usize, usize),
}

/// An inspectable request: every value, extracted once.
///
/// The values live in one byte buffer and the keys in one string (three allocations per
/// request, whatever the number of values); an entry is a pair of ranges into them, and
/// entries may share bytes: `REQUEST_METHOD`, `REQUEST_URI` and `REQUEST_PROTOCOL` are parts
/// of `REQUEST_LINE`, an undecoded argument value is a part of the query string or body, a
/// cookie value a part of the `Cookie` header.
#[derive(Clone, Default)]
pub struct WafRequest {
    slots: Vec<Slot>,
    data: Vec<u8>,
    keys: String,
    /// The request carried a body that was not (or not completely) given to the model.
    pub body_truncated: bool,
}

impl fmt::Debug for WafRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WafRequest")
            .field("entries", &self.entries().collect::<Vec<_>>())
            .field("body_truncated", &self.body_truncated)
            .finish()
    }
}

/// Iterator over a request's entries, in extraction order.
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    req: &'a WafRequest,
    next: usize,
    end: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        if self.next >= self.end {
            return None;
        }
        let e = self.req.get(self.next);
        self.next += 1;
        e
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end.saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Entries<'_> {}

/// Kind of body parser chosen by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data`.
    Multipart,
    /// `application/json` or `+json`.
    Json,
    /// `text/xml`, `application/xml` or `+xml`.
    Xml,
    /// Anything else: only `REQUEST_BODY`.
    Raw,
}

impl BodyKind {
    /// Choose by content type.
    pub fn from_content_type(ct: &[u8]) -> Self {
        let ct = ct.to_ascii_lowercase();
        let main = ct.split(|c| *c == b';').next().unwrap_or(&[]);
        let main = main.trim_ascii();
        if main == b"application/x-www-form-urlencoded" {
            BodyKind::Form
        } else if main == b"multipart/form-data" {
            BodyKind::Multipart
        } else if main == b"application/json" || main.ends_with(b"+json") {
            BodyKind::Json
        } else if main == b"text/xml" || main == b"application/xml" || main.ends_with(b"+xml") {
            BodyKind::Xml
        } else {
            BodyKind::Raw
        }
    }
}

/// Where `inner` (a subslice of `outer`) starts in `outer`, if it is one.
fn offset_in(outer: &[u8], inner: &[u8]) -> Option<usize> {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    (i >= o && i + inner.len() <= o + outer.len()).then(|| i - o)
}

/// Does `url_decode(v, false)` (`%HH` and `+`) change `v`?
fn form_encoded(v: &[u8]) -> bool {
    v.iter().any(|c| matches!(c, b'%' | b'+'))
}

/// Append `v` decoded as `transform::url_decode(v, false)` does (`%HH` to the byte, `+` to a
/// space, anything else, a lone `%` too, as is).
fn form_decode_into(out: &mut Vec<u8>, v: &[u8]) {
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                v.get(i + 1).and_then(|d| hex_digit(*d)),
                v.get(i + 2).and_then(|d| hex_digit(*d)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            out.push(c);
        } else if c == b'+' {
            out.push(b' ');
        } else {
            out.push(c);
        }
        i += 1;
    }
}

/// Append `path` with `%HH` decoded (`+` is literal in paths).
fn path_decode_into(out: &mut Vec<u8>, path: &[u8]) {
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            if let (Some(h), Some(l)) = (
                path.get(i + 1).and_then(|d| hex_digit(*d)),
                path.get(i + 2).and_then(|d| hex_digit(*d)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(path[i]);
        i += 1;
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl WafRequest {
    /// Build from the request line, headers and an optional body (possibly only a prefix of
    /// the full body; `body_len` is the full length when known).
    pub fn build<'a>(
        method: &str,
        uri: &[u8],
        version: &str,
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        body: Option<&[u8]>,
        limits: &Limits,
    ) -> Self {
        let line_len = method.len() + uri.len() + version.len() + 2;
        // Room for the request-line values and a few headers (a GET has about 13 entries),
        // the line, a decoded copy of the URI and a few headers, and the body with its
        // decoded arguments: growing from empty would reallocate several times.
        let mut r = WafRequest {
            slots: Vec::with_capacity(16),
            data: Vec::with_capacity(2 * line_len + 512 + body.map_or(0, |b| 2 * b.len())),
            keys: String::with_capacity(128),
            body_truncated: false,
        };
        // `METHOD URI VERSION`: the method, URI and protocol are parts of the line.
        r.data.extend_from_slice(method.as_bytes());
        r.data.push(b' ');
        let uri_at = r.data.len();
        r.data.extend_from_slice(uri);
        r.data.push(b' ');
        r.data.extend_from_slice(version.as_bytes());
        let line_end = r.data.len();
        r.add(Collection::Method, "", (0, method.len()));
        r.add(Collection::Uri, "", (uri_at, uri_at + uri.len()));
        r.add(Collection::UriRaw, "", (uri_at, uri_at + uri.len()));
        r.add(
            Collection::Protocol,
            "",
            (line_end - version.len(), line_end),
        );
        r.add(Collection::RequestLine, "", (0, line_end));

        // Strip scheme://authority for absolute-form targets (a scheme starts with a letter).
        let mut target = uri;
        if let Some(p) = uri
            .first()
            .filter(|c| c.is_ascii_alphabetic())
            .and_then(|_| find_sub(uri, b"://"))
        {
            if uri[..p].iter().all(u8::is_ascii_alphabetic) {
                let rest = &uri[p + 3..];
                target = match rest.iter().position(|c| *c == b'/' || *c == b'?') {
                    Some(i) => &rest[i..],
                    None => b"/",
                };
            }
        }
        let (path, query) = match target.iter().position(|c| *c == b'?') {
            Some(i) => (&target[..i], Some(&target[i + 1..])),
            None => (target, None),
        };
        let path = match path.iter().position(|c| *c == b'#') {
            Some(i) => &path[..i],
            None => path,
        };
        let filename = if path.contains(&b'%') {
            let at = r.data.len();
            path_decode_into(&mut r.data, path);
            (at, r.data.len())
        } else {
            r.range_of(uri_at, uri, path)
        };
        let base_at = r.data[filename.0..filename.1]
            .iter()
            .rposition(|c| *c == b'/')
            .map_or(filename.0, |p| filename.0 + p + 1);
        r.add(Collection::Filename, "", filename);
        r.add(Collection::Basename, "", (base_at, filename.1));
        let mut nargs = 0usize;
        let mut combined = 0usize;
        if let Some(q) = query {
            let qr = r.range_of(uri_at, uri, q);
            r.add(Collection::QueryString, "", qr);
            if !r.push_urlencoded(
                Collection::ArgsGet,
                uri_at,
                uri,
                q,
                limits,
                &mut nargs,
                &mut combined,
            ) {
                r.push(Collection::ReqBodyError, "", b"1");
            }
        }

        let mut content_type: Option<&[u8]> = None;
        for (name, value) in headers {
            let key = r.key_lower(name);
            if r.key_str(key) == "content-type" {
                content_type = Some(value);
            }
            let at = r.data.len();
            r.data.extend_from_slice(value);
            if r.key_str(key) == "cookie" {
                for (k, v) in cookie_pairs(value) {
                    let kr = r.key_lossy(k);
                    let vr = r.range_of(at, value, v);
                    r.slots.push(Slot {
                        coll: Collection::Cookies,
                        key: kr,
                        value: vr,
                    });
                }
            }
            r.slots.push(Slot {
                coll: Collection::Headers,
                key,
                value: (at, at + value.len()),
            });
        }

        if let Some(body) = body {
            let body_at = r.data.len();
            r.data.extend_from_slice(body);
            r.add(Collection::Body, "", (body_at, body_at + body.len()));
            r.push_number(Collection::BodyLength, body.len());
            let kind = content_type
                .map(BodyKind::from_content_type)
                .unwrap_or(BodyKind::Raw);
            let mut ok = true;
            match kind {
                BodyKind::Form => {
                    r.push(Collection::ReqBodyProcessor, "", b"URLENCODED");
                    ok = r.push_urlencoded(
                        Collection::ArgsPost,
                        body_at,
                        body,
                        body,
                        limits,
                        &mut nargs,
                        &mut combined,
                    );
                }
                BodyKind::Multipart => {
                    r.push(Collection::ReqBodyProcessor, "", b"MULTIPART");
                    let boundary = content_type.and_then(multipart_boundary);
                    match boundary {
                        Some(b) => {
                            let strict =
                                parse_multipart(body, body_at, &b, limits, &mut r, &mut nargs);
                            let files: u64 = r
                                .values(Collection::FilesSizes)
                                .filter_map(|e| {
                                    std::str::from_utf8(e.value).ok()?.parse::<u64>().ok()
                                })
                                .sum();
                            r.push(
                                Collection::FilesCombinedSize,
                                "",
                                files.to_string().into_bytes(),
                            );
                            if !strict {
                                r.push(Collection::MultipartStrictError, "", b"1");
                                ok = false;
                            }
                        }
                        None => {
                            r.push(Collection::MultipartStrictError, "", b"1");
                            ok = false;
                        }
                    }
                }
                BodyKind::Json => {
                    r.push(Collection::ReqBodyProcessor, "", b"JSON");
                    match serde_json::from_slice::<serde_json::Value>(body) {
                        Ok(v) => {
                            let mut path = String::from("json");
                            if !walk_json(&v, &mut path, 0, limits, &mut r, &mut nargs) {
                                ok = false;
                            }
                        }
                        Err(_) => ok = false,
                    }
                }
                BodyKind::Xml => {
                    r.push(Collection::ReqBodyProcessor, "", b"XML");
                    for (key, v) in xml_values(body, limits.max_args) {
                        r.push(Collection::Xml, key, v);
                    }
                }
                BodyKind::Raw => {}
            }
            if !ok {
                r.push(Collection::ReqBodyError, "", b"1");
            }
        }
        r.push_number(Collection::ArgsCombinedSize, combined);
        r
    }

    /// Build from `http` request parts and an optional (possibly prefix of the) body.
    pub fn from_parts(parts: &http::request::Parts, body: Option<&[u8]>, limits: &Limits) -> Self {
        let uri = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let version = match parts.version {
            http::Version::HTTP_09 => "HTTP/0.9",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/1.1",
        };
        Self::build(
            parts.method.as_str(),
            uri.as_bytes(),
            version,
            parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
            body,
            limits,
        )
    }

    /// Add a value.
    pub fn push(&mut self, coll: Collection, key: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let at = self.data.len();
        self.data.extend_from_slice(value);
        let key = self.key(key);
        self.slots.push(Slot {
            coll,
            key,
            value: (at, at + value.len()),
        });
    }

    /// Add an entry whose value is already in the buffer.
    fn add(&mut self, coll: Collection, key: &str, value: (usize, usize)) {
        let key = self.key(key);
        self.slots.push(Slot { coll, key, value });
    }

    /// A decimal number as the value.
    fn push_number(&mut self, coll: Collection, mut n: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let at = self.data.len();
        self.data.extend_from_slice(&digits[i..]);
        let end = self.data.len();
        self.add(coll, "", (at, end));
    }

    /// The range of `inner` in the buffer, given that `outer` was copied to `outer_at`; a
    /// slice that is not part of `outer` is copied.
    fn range_of(&mut self, outer_at: usize, outer: &[u8], inner: &[u8]) -> (usize, usize) {
        match offset_in(outer, inner) {
            Some(o) => (outer_at + o, outer_at + o + inner.len()),
            None => {
                let at = self.data.len();
                self.data.extend_from_slice(inner);
                (at, self.data.len())
            }
        }
    }

    /// Store a key; the empty key takes no room.
    fn key(&mut self, k: &str) -> (usize, usize) {
        let at = self.keys.len();
        self.keys.push_str(k);
        (at, self.keys.len())
    }

    /// Store a key given as bytes (invalid UTF-8 replaced, as `String::from_utf8_lossy`).
    fn key_lossy(&mut self, k: &[u8]) -> (usize, usize) {
        let at = self.keys.len();
        match std::str::from_utf8(k) {
            Ok(k) => self.keys.push_str(k),
            Err(_) => self.keys.push_str(&String::from_utf8_lossy(k)),
        }
        (at, self.keys.len())
    }

    /// Store a header name, lowercase (ASCII).
    fn key_lower(&mut self, k: &[u8]) -> (usize, usize) {
        let (at, end) = self.key_lossy(k);
        if k.iter().any(u8::is_ascii_uppercase) {
            self.keys[at..].make_ascii_lowercase();
        }
        (at, end)
    }

    fn key_str(&self, k: (usize, usize)) -> &str {
        self.keys.get(k.0..k.1).unwrap_or("")
    }

    /// Split `a=1&b=2` (a part of what was copied to `outer_at`) into decoded arguments of
    /// `coll`, as [`parse_urlencoded`] does; an undecoded value stays a part of `outer`.
    /// Returns `false` when `limits.max_args` stopped it.
    #[allow(clippy::too_many_arguments)]
    fn push_urlencoded(
        &mut self,
        coll: Collection,
        outer_at: usize,
        outer: &[u8],
        s: &[u8],
        limits: &Limits,
        nargs: &mut usize,
        combined: &mut usize,
    ) -> bool {
        let mut scratch = Vec::new();
        for p in s.split(|c| *c == b'&').filter(|p| !p.is_empty()) {
            if *nargs >= limits.max_args {
                return false;
            }
            *nargs += 1;
            let (k, v) = match p.iter().position(|c| *c == b'=') {
                Some(i) => (&p[..i], Some(&p[i + 1..])),
                None => (p, None),
            };
            let key = if form_encoded(k) {
                scratch.clear();
                form_decode_into(&mut scratch, k);
                *combined += scratch.len();
                self.key_lossy(&scratch)
            } else {
                *combined += k.len();
                self.key_lossy(k)
            };
            let value = match v {
                Some(v) if form_encoded(v) => {
                    let at = self.data.len();
                    form_decode_into(&mut self.data, v);
                    (at, self.data.len())
                }
                Some(v) => self.range_of(outer_at, outer, v),
                None => (0, 0),
            };
            *combined += value.1 - value.0;
            self.slots.push(Slot { coll, key, value });
        }
        true
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// No entries at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Entry `i` (in extraction order).
    pub fn get(&self, i: usize) -> Option<Entry<'_>> {
        let s = self.slots.get(i)?;
        Some(Entry {
            coll: s.coll,
            key: self.keys.get(s.key.0..s.key.1).unwrap_or(""),
            value: self.data.get(s.value.0..s.value.1).unwrap_or(&[]),
        })
    }

    /// Every extracted value, in extraction order.
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            req: self,
            next: 0,
            end: self.slots.len(),
        }
    }

    /// Values of one collection.
    pub fn values(&self, coll: Collection) -> impl Iterator<Item = Entry<'_>> {
        self.entries().filter(move |e| e.coll == coll)
    }

    /// First value of a single-valued collection.
    pub fn first(&self, coll: Collection) -> Option<&[u8]> {
        self.values(coll).next().map(|e| e.value)
    }

    /// The first header with this (lowercase) name.
    pub fn header(&self, lname: &str) -> Option<&[u8]> {
        self.values(Collection::Headers)
            .find(|e| e.key == lname)
            .map(|e| e.value)
    }
}

/// The `name=value` pairs of a `Cookie` header as subslices of it (trimmed; a pair without
/// `=` has an empty value).
fn cookie_pairs(s: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    s.split(|c| *c == b';')
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|c| *c == b'=') {
            Some(i) => (p[..i].trim_ascii(), p[i + 1..].trim_ascii()),
            None => (p, &p[p.len()..]),
        })
}

fn find_sub(hay: &[u8], needle: &[u8]) -> Option<usize> {
    crate::transform::find(hay, needle)
}

/// Split `a=1&b=2` into decoded pairs (`;` is not a separator).
pub fn parse_urlencoded(s: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    s.split(|c| *c == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|c| *c == b'=') {
            Some(i) => (url_decode(&p[..i], false), url_decode(&p[i + 1..], false)),
            None => (url_decode(p, false), Vec::new()),
        })
        .collect()
}

/// Split a `Cookie` header into pairs (values kept as sent).
pub fn parse_cookies(s: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    s.split(|c| *c == b';')
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|c| *c == b'=') {
            Some(i) => (
                p[..i].trim_ascii().to_vec(),
                p[i + 1..].trim_ascii().to_vec(),
            ),
            None => (p.to_vec(), Vec::new()),
        })
        .collect()
}

/// The `boundary` parameter of a multipart content type.
pub fn multipart_boundary(ct: &[u8]) -> Option<Vec<u8>> {
    for param in ct.split(|c| *c == b';').skip(1) {
        let param = param.trim_ascii();
        if param.len() > 9 && param[..9].eq_ignore_ascii_case(b"boundary=") {
            let mut b = &param[9..];
            if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' {
                b = &b[1..b.len() - 1];
            }
            if b.is_empty() || b.len() > 200 {
                return None;
            }
            return Some(b.to_vec());
        }
    }
    None
}

fn header_param(value: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    // `;`-separated parameters; a quoted value may contain `;` (and `\"`).
    let mut i = value.iter().position(|c| *c == b';')? + 1;
    while i < value.len() {
        while i < value.len() && (value[i].is_ascii_whitespace() || value[i] == b';') {
            i += 1;
        }
        let ns = i;
        while i < value.len() && value[i] != b'=' && value[i] != b';' {
            i += 1;
        }
        let pname = value[ns..i].trim_ascii();
        if i >= value.len() || value[i] == b';' {
            continue;
        }
        i += 1; // '='
        while i < value.len() && value[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut v = Vec::new();
        if value.get(i) == Some(&b'"') {
            i += 1;
            while i < value.len() && value[i] != b'"' {
                // Only `\"` and `\\` are escapes (as in ModSecurity's parser): `1.j\s\p` keeps
                // its backslashes.
                if value[i] == b'\\' && matches!(value.get(i + 1), Some(b'"' | b'\\')) {
                    i += 1;
                }
                v.push(value[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < value.len() && value[i] != b';' {
                v.push(value[i]);
                i += 1;
            }
            let t = v.trim_ascii().len();
            v.truncate(t);
        }
        if pname.eq_ignore_ascii_case(name) {
            return Some(v);
        }
    }
    None
}

/// Parse a multipart body. Returns `false` when it is malformed (missing boundary lines,
/// unterminated parts, too many parts).
fn parse_multipart(
    body: &[u8],
    body_at: usize,
    boundary: &[u8],
    limits: &Limits,
    r: &mut WafRequest,
    nargs: &mut usize,
) -> bool {
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let Some(first) = find_sub(body, &delim) else {
        return false;
    };
    let mut pos = first + delim.len();
    let mut parts = 0;
    loop {
        if body[pos..].starts_with(b"--") {
            return true; // closing delimiter
        }
        // Skip to the end of the delimiter line.
        let Some(eol) = body[pos..].iter().position(|c| *c == b'\n') else {
            return false;
        };
        pos += eol + 1;
        parts += 1;
        if parts > limits.max_parts {
            return false;
        }
        // Headers until an empty line.
        let mut name = String::new();
        let mut filename: Option<Vec<u8>> = None;
        let mut header_lines: Vec<&[u8]> = Vec::new();
        loop {
            let Some(eol) = body[pos..].iter().position(|c| *c == b'\n') else {
                return false;
            };
            let mut line = &body[pos..pos + eol];
            pos += eol + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.is_empty() {
                break;
            }
            if let Some(colon) = line.iter().position(|c| *c == b':') {
                let hname = &line[..colon];
                let hvalue = line[colon + 1..].trim_ascii();
                if hname.eq_ignore_ascii_case(b"content-disposition") {
                    if let Some(n) = header_param(hvalue, b"name") {
                        name = String::from_utf8_lossy(&n).into_owned();
                    }
                    filename = header_param(hvalue, b"filename");
                }
            }
            header_lines.push(line);
        }
        let Some(end) = find_sub(&body[pos..], &delim) else {
            // Unterminated last part: keep what there is.
            push_part(
                r,
                &name,
                filename,
                header_lines,
                (body_at, body, &body[pos..]),
                limits,
                nargs,
            );
            return false;
        };
        let mut content = &body[pos..pos + end];
        if content.ends_with(b"\r\n") {
            content = &content[..content.len() - 2];
        } else if content.ends_with(b"\n") {
            content = &content[..content.len() - 1];
        }
        push_part(
            r,
            &name,
            filename,
            header_lines,
            (body_at, body, content),
            limits,
            nargs,
        );
        pos += end + delim.len();
    }
}

/// `content` is `(where the body is in the buffer, the body, the part's content in it)`.
fn push_part(
    r: &mut WafRequest,
    name: &str,
    filename: Option<Vec<u8>>,
    header_lines: Vec<&[u8]>,
    (body_at, body, content): (usize, &[u8], &[u8]),
    limits: &Limits,
    nargs: &mut usize,
) {
    for h in header_lines {
        let value = r.range_of(body_at, body, h);
        r.add(Collection::MultipartPartHeaders, name, value);
    }
    match filename {
        Some(f) => {
            r.push(Collection::Files, name, f);
            r.push(
                Collection::FilesSizes,
                name,
                content.len().to_string().into_bytes(),
            );
        }
        None => {
            if *nargs < limits.max_args {
                *nargs += 1;
                let value = r.range_of(body_at, body, content);
                r.add(Collection::ArgsPost, name, value);
            }
        }
    }
}

/// Walk a JSON document: every leaf becomes `ARGS_POST:json.a.b` (arrays index as `json.a.0`),
/// every object key is inspected through the argument names. Returns `false` past a limit.
fn walk_json(
    v: &serde_json::Value,
    path: &mut String,
    depth: usize,
    limits: &Limits,
    r: &mut WafRequest,
    nargs: &mut usize,
) -> bool {
    use serde_json::Value;
    if depth > limits.max_depth {
        return false;
    }
    let mut leaf = |r: &mut WafRequest, path: &str, bytes: Vec<u8>| -> bool {
        if *nargs >= limits.max_args {
            return false;
        }
        *nargs += 1;
        r.push(Collection::ArgsPost, path, bytes);
        true
    };
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                let ok = walk_json(child, path, depth + 1, limits, r, nargs);
                path.truncate(len);
                if !ok {
                    return false;
                }
            }
            true
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push('.');
                path.push_str(&i.to_string());
                let ok = walk_json(child, path, depth + 1, limits, r, nargs);
                path.truncate(len);
                if !ok {
                    return false;
                }
            }
            true
        }
        Value::String(s) => leaf(r, path, s.as_bytes().to_vec()),
        Value::Number(n) => leaf(r, path, n.to_string().into_bytes()),
        Value::Bool(b) => leaf(r, path, b.to_string().into_bytes()),
        Value::Null => leaf(r, path, Vec::new()),
    }
}

/// Values of an XML document: text nodes (key `/*`), attribute values (key `@`), and element
/// and attribute names (key `name`). Entities are kept as written; bounded by `max`.
fn xml_values(body: &[u8], max: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut i = 0;
    let mut text = Vec::new();
    while i < body.len() && out.len() < max {
        if body[i] != b'<' {
            text.push(body[i]);
            i += 1;
            continue;
        }
        let t = text.trim_ascii();
        if !t.is_empty() {
            out.push(("/*", xml_unescape(t)));
        }
        text.clear();
        let end = body[i..]
            .iter()
            .position(|c| *c == b'>')
            .map_or(body.len(), |p| i + p);
        let tag = &body[i + 1..end];
        i = end + 1;
        if tag.starts_with(b"?") || tag.starts_with(b"!") {
            // Declarations and comments: their text is still inspected.
            out.push(("/*", tag.to_vec()));
            continue;
        }
        let tag = tag.strip_prefix(b"/").unwrap_or(tag);
        let name_end = tag
            .iter()
            .position(|c| c.is_ascii_whitespace() || *c == b'/')
            .unwrap_or(tag.len());
        if name_end > 0 {
            out.push(("name", tag[..name_end].to_vec()));
        }
        // attributes: name="value" / name='value'
        let mut j = name_end;
        while j < tag.len() && out.len() < max {
            while j < tag.len() && (tag[j].is_ascii_whitespace() || tag[j] == b'/') {
                j += 1;
            }
            let ns = j;
            while j < tag.len() && tag[j] != b'=' && !tag[j].is_ascii_whitespace() {
                j += 1;
            }
            if j > ns {
                out.push(("name", tag[ns..j].to_vec()));
            }
            while j < tag.len() && tag[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < tag.len() && tag[j] == b'=' {
                j += 1;
                while j < tag.len() && tag[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < tag.len() && (tag[j] == b'"' || tag[j] == b'\'') {
                    let q = tag[j];
                    let vs = j + 1;
                    let ve = tag[vs..]
                        .iter()
                        .position(|c| *c == q)
                        .map_or(tag.len(), |p| vs + p);
                    out.push(("@", xml_unescape(&tag[vs..ve])));
                    j = ve + 1;
                } else {
                    let vs = j;
                    while j < tag.len() && !tag[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    out.push(("@", tag[vs..j].to_vec()));
                }
            } else if j == ns {
                j += 1;
            }
        }
    }
    let t = text.trim_ascii();
    if !t.is_empty() && out.len() < max {
        out.push(("/*", xml_unescape(t)));
    }
    out
}

/// Text and attribute values as an XML parser delivers them: the five predefined entities
/// and character references decoded; anything else (e.g. an HTML entity, which is not
/// XML) kept as written.
fn xml_unescape(v: &[u8]) -> Vec<u8> {
    if !v.contains(&b'&') {
        return v.to_vec();
    }
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'&' {
            if let Some(len) = v[i..].iter().take(12).position(|c| *c == b';') {
                let name = &v[i + 1..i + len];
                let ch: Option<u32> = match name {
                    b"amp" => Some(u32::from(b'&')),
                    b"lt" => Some(u32::from(b'<')),
                    b"gt" => Some(u32::from(b'>')),
                    b"quot" => Some(u32::from(b'"')),
                    b"apos" => Some(u32::from(b'\'')),
                    [b'#', b'x' | b'X', hex @ ..] => std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u32::from_str_radix(h, 16).ok()),
                    [b'#', dec @ ..] => std::str::from_utf8(dec).ok().and_then(|d| d.parse().ok()),
                    _ => None,
                };
                if let Some(c) = ch.and_then(char::from_u32) {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += len + 1;
                    continue;
                }
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)], body: Option<&str>) -> WafRequest {
        WafRequest::build(
            method,
            uri.as_bytes(),
            "HTTP/1.1",
            headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
            body.map(str::as_bytes),
            &Limits::default(),
        )
    }

    fn get<'a>(r: &'a WafRequest, c: Collection, key: &str) -> Option<&'a str> {
        r.values(c)
            .find(|e| e.key == key)
            .and_then(|e| std::str::from_utf8(e.value).ok())
    }

    #[test]
    fn uri_and_query() {
        let r = req("GET", "/a%20b/c.php?x=1%27&y=a+b&flag", &[], None);
        assert_eq!(r.first(Collection::Filename), Some(&b"/a b/c.php"[..]));
        assert_eq!(r.first(Collection::Basename), Some(&b"c.php"[..]));
        assert_eq!(get(&r, Collection::ArgsGet, "x"), Some("1'"));
        assert_eq!(get(&r, Collection::ArgsGet, "y"), Some("a b"));
        assert_eq!(get(&r, Collection::ArgsGet, "flag"), Some(""));
        assert_eq!(
            r.first(Collection::RequestLine),
            Some(&b"GET /a%20b/c.php?x=1%27&y=a+b&flag HTTP/1.1"[..])
        );
        let abs = req("GET", "http://h.example/p?q=1", &[], None);
        assert_eq!(abs.first(Collection::Filename), Some(&b"/p"[..]));
    }

    #[test]
    fn shared_and_copied_values() {
        let r = req(
            "POST",
            "/p%41th/f.txt?k%20=v+1&plain=x&e=",
            &[
                ("Cookie", " a = 1 ;b;c=3"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some("f=%3Cb%3E&g=plain&h"),
        );
        assert_eq!(r.first(Collection::Method), Some(&b"POST"[..]));
        assert_eq!(r.first(Collection::Protocol), Some(&b"HTTP/1.1"[..]));
        let uri = &b"/p%41th/f.txt?k%20=v+1&plain=x&e="[..];
        assert_eq!(r.first(Collection::Uri), Some(uri));
        assert_eq!(r.first(Collection::UriRaw), Some(uri));
        assert_eq!(r.first(Collection::Filename), Some(&b"/pAth/f.txt"[..]));
        assert_eq!(r.first(Collection::Basename), Some(&b"f.txt"[..]));
        assert_eq!(
            r.first(Collection::QueryString),
            Some(&b"k%20=v+1&plain=x&e="[..])
        );
        assert_eq!(get(&r, Collection::ArgsGet, "k "), Some("v 1"));
        assert_eq!(get(&r, Collection::ArgsGet, "plain"), Some("x"));
        assert_eq!(get(&r, Collection::ArgsGet, "e"), Some(""));
        assert_eq!(get(&r, Collection::Cookies, "a"), Some("1"));
        assert_eq!(get(&r, Collection::Cookies, "b"), Some(""));
        assert_eq!(get(&r, Collection::Cookies, "c"), Some("3"));
        assert_eq!(
            get(&r, Collection::Headers, "cookie"),
            Some(" a = 1 ;b;c=3")
        );
        assert_eq!(get(&r, Collection::ArgsPost, "f"), Some("<b>"));
        assert_eq!(get(&r, Collection::ArgsPost, "g"), Some("plain"));
        assert_eq!(get(&r, Collection::ArgsPost, "h"), Some(""));
        assert_eq!(get(&r, Collection::BodyLength, ""), Some("19"));
        // "k " + "v 1" + plain + x + e + f + <b> + g + plain + h
        assert_eq!(get(&r, Collection::ArgsCombinedSize, ""), Some("23"));
        let n = r.len();
        let mut r = r;
        r.push(Collection::InboundDataError, "", b"1");
        assert_eq!(r.len(), n + 1);
        assert_eq!(r.first(Collection::InboundDataError), Some(&b"1"[..]));
        assert_eq!(r.entries().len(), n + 1);
        // Absolute form without a path: the file name is `/`.
        let abs = req("GET", "http://h.example", &[], None);
        assert_eq!(abs.first(Collection::Filename), Some(&b"/"[..]));
        assert_eq!(abs.first(Collection::Basename), Some(&b""[..]));
    }

    #[test]
    fn decoding_is_url_decode() {
        // Every string of up to 4 bytes over the bytes that matter to the decoders.
        let alphabet = b"%+aF0g/ \xff";
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        let mut last = cases.clone();
        for _ in 0..4 {
            let mut next = Vec::new();
            for c in &last {
                for b in alphabet {
                    let mut c = c.clone();
                    c.push(*b);
                    next.push(c);
                }
            }
            cases.extend(next.iter().cloned());
            last = next;
        }
        for c in &cases {
            let mut form = Vec::new();
            form_decode_into(&mut form, c);
            assert_eq!(form, url_decode(c, false), "{c:?}");
            assert_eq!(form_encoded(c), form != *c || c.contains(&b'%'), "{c:?}");
            // Paths: `%HH` only, each one as `url_decode` decodes it.
            let mut want = Vec::new();
            let mut i = 0;
            while i < c.len() {
                if c[i] == b'%' && i + 2 < c.len() {
                    let d = url_decode(&c[i..i + 3], false);
                    if d.len() == 1 {
                        want.push(d[0]);
                        i += 3;
                        continue;
                    }
                }
                want.push(c[i]);
                i += 1;
            }
            let mut path = Vec::new();
            path_decode_into(&mut path, c);
            assert_eq!(path, want, "{c:?}");
        }
    }

    #[test]
    fn headers_and_cookies() {
        let r = req(
            "GET",
            "/",
            &[("User-Agent", "x"), ("Cookie", "a=1; b = two ;c")],
            None,
        );
        assert_eq!(get(&r, Collection::Headers, "user-agent"), Some("x"));
        assert_eq!(get(&r, Collection::Cookies, "a"), Some("1"));
        assert_eq!(get(&r, Collection::Cookies, "b"), Some("two"));
        assert_eq!(get(&r, Collection::Cookies, "c"), Some(""));
    }

    #[test]
    fn form_body() {
        let r = req(
            "POST",
            "/",
            &[(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            Some("user=bob&pass=%3Cx%3E"),
        );
        assert_eq!(get(&r, Collection::ArgsPost, "pass"), Some("<x>"));
        assert_eq!(
            get(&r, Collection::ReqBodyProcessor, ""),
            Some("URLENCODED")
        );
    }

    #[test]
    fn multipart_body() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"../../x.php\"\r\nContent-Type: text/plain\r\n\r\n<?php ?>\r\n--XyZ--\r\n";
        let r = req(
            "POST",
            "/",
            &[("Content-Type", "multipart/form-data; boundary=XyZ")],
            Some(body),
        );
        assert_eq!(get(&r, Collection::ArgsPost, "title"), Some("hello"));
        assert_eq!(get(&r, Collection::Files, "up"), Some("../../x.php"));
        assert!(
            r.values(Collection::MultipartPartHeaders)
                .any(|e| e.value == b"Content-Type: text/plain")
        );
        assert!(r.first(Collection::MultipartStrictError).is_none());
        let bad = req(
            "POST",
            "/",
            &[("Content-Type", "multipart/form-data; boundary=XyZ")],
            Some("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n"),
        );
        assert_eq!(bad.first(Collection::MultipartStrictError), Some(&b"1"[..]));
        // A quoted parameter value keeps its `;` (and an escaped quote).
        let quoted = req(
            "POST",
            "/",
            &[("Content-Type", "multipart/form-data; boundary=XyZ")],
            Some(
                "--XyZ\r\nContent-Disposition: form-data; name=\"a;b\\\"c\"; filename=\"x;y\"\r\n\r\nz\r\n--XyZ--\r\n",
            ),
        );
        assert_eq!(get(&quoted, Collection::Files, "a;b\"c"), Some("x;y"));
        // A backslash escapes only `"` and `\`: others stay (ModSecurity's parser), so a
        // filename like `1.j\s\p` is seen as sent.
        let escaped = req(
            "POST",
            "/",
            &[("Content-Type", "multipart/form-data; boundary=XyZ")],
            Some(
                "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"q\\w\\\\e\"\r\n\r\n1234\r\n--XyZ\r\nContent-Disposition: form-data; name=\"g\"; filename=\"h\"\r\n\r\n123456\r\n--XyZ--\r\n",
            ),
        );
        assert_eq!(get(&escaped, Collection::Files, "f"), Some("q\\w\\e"));
        assert_eq!(get(&escaped, Collection::FilesSizes, "f"), Some("4"));
        assert_eq!(get(&escaped, Collection::FilesSizes, "g"), Some("6"));
        assert_eq!(get(&escaped, Collection::FilesCombinedSize, ""), Some("10"));
    }

    #[test]
    fn json_body_paths() {
        let r = req(
            "POST",
            "/",
            &[("Content-Type", "application/json")],
            Some(r#"{"a":{"b":["x' or 1=1",2]},"c":null,"select":true}"#),
        );
        assert_eq!(
            get(&r, Collection::ArgsPost, "json.a.b.0"),
            Some("x' or 1=1")
        );
        assert_eq!(get(&r, Collection::ArgsPost, "json.a.b.1"), Some("2"));
        assert_eq!(get(&r, Collection::ArgsPost, "json.select"), Some("true"));
        assert!(r.first(Collection::ReqBodyError).is_none());
        let bad = req(
            "POST",
            "/",
            &[("Content-Type", "application/json")],
            Some("{"),
        );
        assert_eq!(bad.first(Collection::ReqBodyError), Some(&b"1"[..]));
    }

    #[test]
    fn xml_body_values() {
        let r = req(
            "POST",
            "/",
            &[("Content-Type", "application/xml")],
            Some(
                r#"<?xml version="1.0"?><a x="v1" y='v2' z="O:1:&quot;x&#x7B;&tab;"><b>t&amp;ext</b></a>"#,
            ),
        );
        let vals: Vec<&str> = r
            .values(Collection::Xml)
            .map(|e| std::str::from_utf8(e.value).unwrap())
            .collect();
        for want in ["a", "x", "v1", "y", "v2", "b", "t&ext", "O:1:\"x{&tab;"] {
            assert!(vals.contains(&want), "{want} in {vals:?}");
        }
    }

    #[test]
    fn limits_apply() {
        let limits = Limits {
            max_args: 2,
            max_depth: 2,
            max_parts: 1,
        };
        let r = WafRequest::build("GET", b"/?a=1&b=2&c=3", "HTTP/1.1", [], None, &limits);
        assert_eq!(r.values(Collection::ArgsGet).count(), 2);
        assert_eq!(r.first(Collection::ReqBodyError), Some(&b"1"[..]));
        let deep = WafRequest::build(
            "POST",
            b"/",
            "HTTP/1.1",
            [(&b"content-type"[..], &b"application/json"[..])],
            Some(br#"{"a":{"b":{"c":{"d":1}}}}"#),
            &limits,
        );
        assert_eq!(deep.first(Collection::ReqBodyError), Some(&b"1"[..]));
    }
}
