//! Cache directive parsing: `Cache-Control` (RFC 9111 §5.2), the targeted fields
//! `CDN-Cache-Control` and a configurable one (RFC 9213), and `Pragma` (§5.4).
//!
//! Parsing is robust as RFC 9111 asks:
//! * directive names are case-insensitive; unknown directives are ignored (§5.2.3);
//! * arguments may be tokens or quoted strings (`max-age="60"` is accepted, §5.2);
//! * a delta-seconds value larger than 2^31 saturates at 2^31 (§1.2.2);
//! * an invalid delta-seconds value (`max-age=abc`, `-1`, missing) makes the response stale
//!   (§4.2.1: "consider responses that have invalid freshness information to be stale");
//! * duplicated directives with identical values are fine; conflicting duplicates make the
//!   response stale (§4.2.1) and, in requests, the most restrictive value wins;
//! * conflicting directives: the most restrictive one is honoured (`private` beats `public`,
//!   `no-store`/`no-cache` beat `max-age`), which falls out of how the flags are consumed.

use http::{HeaderMap, HeaderName, header};

/// The largest delta-seconds value: larger values saturate here (RFC 9111 §1.2.2).
pub const DELTA_MAX: u64 = 1 << 31;

/// A parsed delta-seconds argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    /// A valid number of seconds (saturated at [`DELTA_MAX`]).
    Secs(u64),
    /// Present but not a valid non-negative integer (or conflicting duplicates).
    Invalid,
}

impl Delta {
    /// The value in seconds, with `Invalid` read as 0 (stale).
    pub fn secs_or_zero(self) -> u64 {
        match self {
            Delta::Secs(s) => s,
            Delta::Invalid => 0,
        }
    }
}

/// Parse a delta-seconds argument (unquoted or quoted), saturating at 2^31.
pub fn parse_delta(arg: Option<&str>) -> Delta {
    let Some(arg) = arg else {
        return Delta::Invalid;
    };
    let s = arg.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Delta::Invalid;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v.saturating_mul(10).saturating_add(u64::from(b - b'0'));
        if v > DELTA_MAX {
            return Delta::Secs(DELTA_MAX);
        }
    }
    Delta::Secs(v)
}

/// One directive: lowercase name and its (unquoted) argument, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lowercased directive name.
    pub name: String,
    /// The argument with quotes and escapes removed.
    pub value: Option<String>,
    /// Whether the directive is well-formed Structured-Fields syntax (RFC 8941 dictionary
    /// member); used to validate targeted fields (RFC 9213 §2.1).
    pub sf_valid: bool,
}

/// Split the field lines of `name` into directives, honouring quoted strings (commas inside
/// quotes do not split). Lines that are not visible ASCII are skipped.
pub fn parse_list<'a>(lines: impl IntoIterator<Item = &'a http::HeaderValue>) -> Vec<Directive> {
    let mut out = Vec::new();
    for line in lines {
        let Ok(s) = line.to_str() else { continue };
        split_directives(s, &mut out);
    }
    out
}

fn split_directives(s: &str, out: &mut Vec<Directive>) {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Skip separators and whitespace.
        while i < bytes.len() && matches!(bytes[i], b',' | b' ' | b'\t') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let name_start = i;
        while i < bytes.len() && !matches!(bytes[i], b',' | b'=') {
            i += 1;
        }
        let raw_name = s[name_start..i].trim();
        let mut value = None;
        let mut sf_valid = is_sf_key(raw_name);
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
                let mut v = String::new();
                let mut closed = false;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' if i + 1 < bytes.len() => {
                            v.push(char::from(bytes[i + 1]));
                            i += 2;
                        }
                        b'"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        c => {
                            v.push(char::from(c));
                            i += 1;
                        }
                    }
                }
                sf_valid &= closed;
                // Anything between the closing quote and the next comma is junk.
                let junk_start = i;
                while i < bytes.len() && bytes[i] != b',' {
                    i += 1;
                }
                if !s[junk_start..i].trim().is_empty() {
                    sf_valid = false;
                }
                value = Some(v);
            } else {
                let vstart = i;
                while i < bytes.len() && bytes[i] != b',' {
                    i += 1;
                }
                let v = s[vstart..i].trim();
                sf_valid &= is_sf_bare_item(v);
                value = Some(v.to_owned());
            }
        }
        if raw_name.is_empty() {
            continue;
        }
        out.push(Directive {
            name: raw_name.to_ascii_lowercase(),
            value,
            sf_valid,
        });
    }
}

fn is_sf_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_lowercase() || b[0] == b'*')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(c))
}

fn is_sf_bare_item(v: &str) -> bool {
    let b = v.as_bytes();
    if b.is_empty() {
        return false;
    }
    let int = {
        let digits = b.strip_prefix(b"-").unwrap_or(b);
        !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit)
    };
    let token = (b[0].is_ascii_alphabetic() || b[0] == b'*')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(c));
    let boolean = v == "?0" || v == "?1";
    int || token || boolean
}

/// Response cache directives relevant to a shared cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    /// `max-age`.
    pub max_age: Option<Delta>,
    /// `s-maxage` (also implies `proxy-revalidate`, §5.2.2.10).
    pub s_maxage: Option<Delta>,
    /// Unqualified `no-cache`: every reuse needs validation.
    pub no_cache: bool,
    /// Qualified `no-cache="a, b"`: these fields are not stored (§5.2.2.4).
    pub no_cache_fields: Vec<String>,
    /// `no-store`.
    pub no_store: bool,
    /// Unqualified `private`: a shared cache must not store.
    pub private: bool,
    /// Qualified `private="a, b"`: these fields are not stored by a shared cache.
    pub private_fields: Vec<String>,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `must-understand`.
    pub must_understand: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate` (RFC 5861).
    pub stale_while_revalidate: Option<Delta>,
    /// `stale-if-error` (RFC 5861).
    pub stale_if_error: Option<Delta>,
}

impl ResponseDirectives {
    /// Build from parsed directives.
    pub fn from_directives(list: &[Directive]) -> Self {
        let mut d = Self::default();
        for item in list {
            let v = item.value.as_deref();
            match item.name.as_str() {
                "max-age" => merge_response_delta(&mut d.max_age, parse_delta(v)),
                "s-maxage" => merge_response_delta(&mut d.s_maxage, parse_delta(v)),
                "no-cache" => match v {
                    Some(fields) if !fields.trim().is_empty() => {
                        d.no_cache_fields.extend(field_names(fields));
                    }
                    _ => d.no_cache = true,
                },
                "no-store" => d.no_store = true,
                "private" => match v {
                    Some(fields) if !fields.trim().is_empty() => {
                        d.private_fields.extend(field_names(fields));
                    }
                    _ => d.private = true,
                },
                "public" => d.public = true,
                "must-revalidate" => d.must_revalidate = true,
                "proxy-revalidate" => d.proxy_revalidate = true,
                "must-understand" => d.must_understand = true,
                "no-transform" => d.no_transform = true,
                "immutable" => d.immutable = true,
                "stale-while-revalidate" => {
                    merge_response_delta(&mut d.stale_while_revalidate, parse_delta(v));
                }
                "stale-if-error" => merge_response_delta(&mut d.stale_if_error, parse_delta(v)),
                _ => {}
            }
        }
        d
    }

    /// Parse the `Cache-Control` field lines of a response.
    pub fn parse(headers: &HeaderMap, name: &HeaderName) -> Self {
        Self::from_directives(&parse_list(headers.get_all(name)))
    }

    /// Whether any explicit freshness directive is present (`max-age` or `s-maxage`).
    pub fn has_explicit_freshness(&self) -> bool {
        self.max_age.is_some() || self.s_maxage.is_some()
    }

    /// Whether a stale response must not be served without validation by a shared cache:
    /// `must-revalidate`, `proxy-revalidate`, or `s-maxage` (which implies it, §5.2.2.10).
    ///
    /// One reading choice: when the same response also carries an explicit
    /// `stale-while-revalidate` or `stale-if-error` (RFC 5861), the origin has granted stale
    /// use explicitly, and the proxy-revalidate *implied* by `s-maxage` does not cancel it
    /// (`s-maxage=60, stale-while-revalidate=30` is a common origin idiom). Explicit
    /// `must-revalidate` / `proxy-revalidate` always forbid stale use.
    pub fn forbids_stale(&self) -> bool {
        let explicit_stale_grant =
            self.stale_while_revalidate.is_some() || self.stale_if_error.is_some();
        self.must_revalidate
            || self.proxy_revalidate
            || (self.s_maxage.is_some() && !explicit_stale_grant)
    }
}

/// Duplicates: equal values are fine; a conflicting duplicate makes the value invalid, which
/// reads as "stale" (RFC 9111 §4.2.1).
fn merge_response_delta(slot: &mut Option<Delta>, new: Delta) {
    *slot = match *slot {
        None => Some(new),
        Some(old) if old == new => Some(old),
        Some(_) => Some(Delta::Invalid),
    };
}

fn field_names(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',')
        .map(|f| f.trim().to_ascii_lowercase())
        .filter(|f| !f.is_empty())
}

/// `max-stale` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStale {
    /// `max-stale` without a value: any staleness is accepted.
    Any,
    /// `max-stale=N`.
    Secs(u64),
}

/// Request cache directives (RFC 9111 §5.2.1, RFC 5861 §4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `max-age` (invalid values read as 0, the most restrictive).
    pub max_age: Option<u64>,
    /// `max-stale` (invalid values are ignored).
    pub max_stale: Option<MaxStale>,
    /// `min-fresh` (invalid values are ignored).
    pub min_fresh: Option<u64>,
    /// `no-cache`, or `Pragma: no-cache` when the request has no `Cache-Control`.
    pub no_cache: bool,
    /// `no-store`.
    pub no_store: bool,
    /// `only-if-cached`.
    pub only_if_cached: bool,
    /// `stale-if-error` in a request.
    pub stale_if_error: Option<u64>,
}

impl RequestDirectives {
    /// Parse the request's `Cache-Control`, falling back to `Pragma: no-cache` only when no
    /// `Cache-Control` field is present (RFC 9111 §5.4).
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut d = Self::default();
        if !headers.contains_key(header::CACHE_CONTROL) {
            let pragma = parse_list(headers.get_all(header::PRAGMA));
            d.no_cache = pragma.iter().any(|p| p.name == "no-cache");
            return d;
        }
        for item in parse_list(headers.get_all(header::CACHE_CONTROL)) {
            let v = item.value.as_deref();
            match item.name.as_str() {
                "max-age" => {
                    let n = parse_delta(v).secs_or_zero();
                    d.max_age = Some(d.max_age.map_or(n, |o| o.min(n)));
                }
                "max-stale" => {
                    let n = match v {
                        None => Some(MaxStale::Any),
                        Some(_) => match parse_delta(v) {
                            Delta::Secs(s) => Some(MaxStale::Secs(s)),
                            Delta::Invalid => None,
                        },
                    };
                    d.max_stale = match (d.max_stale, n) {
                        (None, n) => n,
                        (o, None) => o,
                        (Some(MaxStale::Any), n) => n,
                        (o @ Some(MaxStale::Secs(_)), Some(MaxStale::Any)) => o,
                        (Some(MaxStale::Secs(a)), Some(MaxStale::Secs(b))) => {
                            Some(MaxStale::Secs(a.min(b)))
                        }
                    };
                }
                "min-fresh" => {
                    if let Delta::Secs(n) = parse_delta(v) {
                        d.min_fresh = Some(d.min_fresh.map_or(n, |o| o.max(n)));
                    }
                }
                "no-cache" => d.no_cache = true,
                "no-store" => d.no_store = true,
                "only-if-cached" => d.only_if_cached = true,
                "stale-if-error" => {
                    if let Delta::Secs(n) = parse_delta(v) {
                        d.stale_if_error = Some(d.stale_if_error.map_or(n, |o| o.min(n)));
                    }
                }
                _ => {}
            }
        }
        d
    }
}

/// Which field the response's cache policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// The configured gateway-targeted field (e.g. `Rampart-Cache-Control`).
    Targeted,
    /// `CDN-Cache-Control`.
    Cdn,
    /// Plain `Cache-Control` (and `Expires`).
    CacheControl,
}

/// The `CDN-Cache-Control` field name.
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// Select the response policy per RFC 9213 §2.1: the first targeted field (the configured one,
/// then `CDN-Cache-Control`) with a valid, non-empty value wins and `Cache-Control` / `Expires`
/// are then ignored; otherwise `Cache-Control`.
pub fn select_response(
    headers: &HeaderMap,
    targeted: Option<&HeaderName>,
) -> (ResponseDirectives, PolicySource) {
    let cdn = CDN_CACHE_CONTROL;
    let candidates = targeted
        .map(|t| (t, PolicySource::Targeted))
        .into_iter()
        .chain(std::iter::once((&cdn, PolicySource::Cdn)));
    for (name, source) in candidates {
        if !headers.contains_key(name) {
            continue;
        }
        let list = parse_list(headers.get_all(name));
        if !list.is_empty() && list.iter().all(|d| d.sf_valid) {
            return (ResponseDirectives::from_directives(&list), source);
        }
    }
    (
        ResponseDirectives::parse(headers, &header::CACHE_CONTROL),
        PolicySource::CacheControl,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn resp(lines: &[&str]) -> ResponseDirectives {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(header::CACHE_CONTROL, HeaderValue::from_str(l).unwrap());
        }
        ResponseDirectives::parse(&h, &header::CACHE_CONTROL)
    }

    fn req(cc: Option<&str>, pragma: Option<&str>) -> RequestDirectives {
        let mut h = HeaderMap::new();
        if let Some(c) = cc {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_str(c).unwrap());
        }
        if let Some(p) = pragma {
            h.insert(header::PRAGMA, HeaderValue::from_str(p).unwrap());
        }
        RequestDirectives::parse(&h)
    }

    #[test]
    fn delta_seconds_table() {
        let cases: &[(Option<&str>, Delta)] = &[
            (Some("0"), Delta::Secs(0)),
            (Some("60"), Delta::Secs(60)),
            (Some(" 60 "), Delta::Secs(60)),
            (Some("007"), Delta::Secs(7)),
            (Some("2147483648"), Delta::Secs(DELTA_MAX)),
            (Some("2147483649"), Delta::Secs(DELTA_MAX)),
            (Some("99999999999999999999999999"), Delta::Secs(DELTA_MAX)),
            (Some("-1"), Delta::Invalid),
            (Some("+5"), Delta::Invalid),
            (Some("1.5"), Delta::Invalid),
            (Some("abc"), Delta::Invalid),
            (Some(""), Delta::Invalid),
            (None, Delta::Invalid),
        ];
        for (input, want) in cases {
            assert_eq!(parse_delta(*input), *want, "{input:?}");
        }
    }

    #[test]
    fn response_directives_table() {
        let d = resp(&["public, max-age=60"]);
        assert!(d.public);
        assert_eq!(d.max_age, Some(Delta::Secs(60)));

        // Case-insensitive names, quoted values, whitespace.
        let d = resp(&["Max-Age=\"120\" ,  S-MAXAGE = 30"]);
        assert_eq!(d.max_age, Some(Delta::Secs(120)));
        assert_eq!(d.s_maxage, Some(Delta::Secs(30)));
        assert!(d.forbids_stale(), "s-maxage implies proxy-revalidate");
        assert!(!resp(&["s-maxage=60, stale-while-revalidate=30"]).forbids_stale());
        assert!(resp(&["s-maxage=60, stale-if-error=30, proxy-revalidate"]).forbids_stale());

        // Invalid values read as stale.
        let d = resp(&["max-age=abc"]);
        assert_eq!(d.max_age, Some(Delta::Invalid));
        let d = resp(&["max-age=-5"]);
        assert_eq!(d.max_age.map(Delta::secs_or_zero), Some(0));
        let d = resp(&["max-age"]);
        assert_eq!(d.max_age, Some(Delta::Invalid));

        // Duplicates: identical ok, conflicting stale; across field lines too.
        let d = resp(&["max-age=60", "max-age=60"]);
        assert_eq!(d.max_age, Some(Delta::Secs(60)));
        let d = resp(&["max-age=60", "max-age=3600"]);
        assert_eq!(d.max_age, Some(Delta::Invalid));

        // Huge saturates.
        let d = resp(&["s-maxage=99999999999"]);
        assert_eq!(d.s_maxage, Some(Delta::Secs(DELTA_MAX)));

        // Qualified forms and commas in quotes.
        let d = resp(&["private=\"Set-Cookie, X-User\", no-cache=\"x-a\", max-age=5"]);
        assert!(!d.private);
        assert_eq!(d.private_fields, vec!["set-cookie", "x-user"]);
        assert!(!d.no_cache);
        assert_eq!(d.no_cache_fields, vec!["x-a"]);
        assert_eq!(d.max_age, Some(Delta::Secs(5)));

        let d = resp(&["no-store, no-cache, private, must-revalidate, proxy-revalidate"]);
        assert!(d.no_store && d.no_cache && d.private && d.must_revalidate && d.proxy_revalidate);

        let d = resp(&["stale-while-revalidate=30, stale-if-error=600, immutable, foo=bar"]);
        assert_eq!(d.stale_while_revalidate, Some(Delta::Secs(30)));
        assert_eq!(d.stale_if_error, Some(Delta::Secs(600)));
        assert!(d.immutable);

        // Empty items and junk are ignored.
        let d = resp(&[",, ,public,,"]);
        assert!(d.public);
    }

    #[test]
    fn request_directives_table() {
        let d = req(Some("max-age=0"), None);
        assert_eq!(d.max_age, Some(0));
        let d = req(Some("max-age=abc"), None);
        assert_eq!(
            d.max_age,
            Some(0),
            "invalid request max-age is most restrictive"
        );
        let d = req(Some("max-age=10, max-age=5"), None);
        assert_eq!(d.max_age, Some(5));
        let d = req(Some("max-stale"), None);
        assert_eq!(d.max_stale, Some(MaxStale::Any));
        let d = req(Some("max-stale=30, max-stale"), None);
        assert_eq!(d.max_stale, Some(MaxStale::Secs(30)));
        let d = req(Some("max-stale=x"), None);
        assert_eq!(d.max_stale, None);
        let d = req(Some("min-fresh=5, min-fresh=9"), None);
        assert_eq!(d.min_fresh, Some(9));
        let d = req(Some("only-if-cached, no-store"), None);
        assert!(d.only_if_cached && d.no_store);
        // Pragma only counts without Cache-Control.
        assert!(req(None, Some("no-cache")).no_cache);
        assert!(!req(Some("max-age=5"), Some("no-cache")).no_cache);
        assert!(!req(None, Some("foo")).no_cache);
        assert!(req(Some("No-Cache"), None).no_cache);
    }

    #[test]
    fn targeted_fields_take_precedence() {
        let target = HeaderName::from_static("rampart-cache-control");
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(CDN_CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
        let (d, src) = select_response(&h, Some(&target));
        assert_eq!(src, PolicySource::Cdn);
        assert_eq!(d.max_age, Some(Delta::Secs(60)));
        assert!(!d.no_store);

        h.insert(target.clone(), HeaderValue::from_static("max-age=5"));
        let (d, src) = select_response(&h, Some(&target));
        assert_eq!(src, PolicySource::Targeted);
        assert_eq!(d.max_age, Some(Delta::Secs(5)));

        // Invalid structured field (uppercase key) is ignored: falls through.
        h.insert(target.clone(), HeaderValue::from_static("Max-Age=5"));
        let (_, src) = select_response(&h, Some(&target));
        assert_eq!(src, PolicySource::Cdn);
        h.insert(
            CDN_CACHE_CONTROL,
            HeaderValue::from_static("max-age=\"unterminated"),
        );
        let (d, src) = select_response(&h, Some(&target));
        assert_eq!(src, PolicySource::CacheControl);
        assert!(d.no_store);

        // Empty targeted value: falls through too.
        let mut h = HeaderMap::new();
        h.insert(CDN_CACHE_CONTROL, HeaderValue::from_static(""));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
        assert_eq!(select_response(&h, None).1, PolicySource::CacheControl);
    }
}
