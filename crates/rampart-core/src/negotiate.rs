//! Content codings and `Accept-Encoding` (RFC 9110 §8.4.1, §12.5.3): parse once, without
//! allocating, and choose. Shared by the compression layer (`rampart-compress`), the static
//! file service's precompressed sidecars (`rampart-static`) and the cache's variant key
//! (`rampart-cache`), so all three read a client's preferences the same way.
//!
//! Rules implemented:
//! * no `Accept-Encoding` field: the client states no preference; we send identity (sending
//!   a coding would be allowed, but clients that send nothing are mostly tools that would
//!   not decode it);
//! * an empty field value: only identity is acceptable;
//! * a member with a malformed weight (`q=2`, `q=0.1234`, `q=abc`) is ignored;
//! * a coding's weight is its own entry's (the highest when listed twice), else the `*`
//!   entry's, else 0 (not acceptable);
//! * identity is acceptable unless `identity;q=0`, or `*;q=0` with no `identity` entry;
//! * among acceptable codings the highest weight wins; ties go to the server's order; an
//!   identity weight strictly above every coding's (`gzip;q=0.5, identity`) wins over them.

use http::{HeaderMap, header};

/// A content coding the gateway knows (produces, reads, or serves precompressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Brotli (RFC 7932).
    Br,
    /// Zstandard (RFC 8878).
    Zstd,
    /// gzip (RFC 1952).
    Gzip,
    /// "deflate": the zlib format (RFC 1950), as HTTP defines it.
    Deflate,
}

impl Coding {
    /// Every coding, in the default server preference order.
    pub const ALL: [Coding; 4] = [Coding::Br, Coding::Zstd, Coding::Gzip, Coding::Deflate];

    /// The token (`br`, `zstd`, `gzip`, `deflate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }

    /// Parse a token, case-insensitively (`x-gzip` is `gzip`, RFC 9110 §8.4.1.3).
    pub fn parse(token: &str) -> Option<Coding> {
        let t = token.trim();
        [
            ("br", Coding::Br),
            ("zstd", Coding::Zstd),
            ("gzip", Coding::Gzip),
            ("x-gzip", Coding::Gzip),
            ("deflate", Coding::Deflate),
        ]
        .into_iter()
        .find(|(n, _)| t.eq_ignore_ascii_case(n))
        .map(|(_, c)| c)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Coding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of codings (a bit per coding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodingSet(u8);

impl CodingSet {
    /// The empty set.
    pub const EMPTY: CodingSet = CodingSet(0);

    /// With `c` added.
    pub fn with(self, c: Coding) -> Self {
        CodingSet(self.0 | 1 << c.index())
    }

    /// Whether `c` is in the set.
    pub fn contains(self, c: Coding) -> bool {
        self.0 & (1 << c.index()) != 0
    }
}

impl FromIterator<Coding> for CodingSet {
    fn from_iter<I: IntoIterator<Item = Coding>>(iter: I) -> Self {
        iter.into_iter().fold(CodingSet::EMPTY, CodingSet::with)
    }
}

/// The members of one `Accept-Encoding` field value (`token[;q=weight]`, comma-separated),
/// each with its weight in thousandths (`q=0.5` → 500, no weight → 1000). Members with an
/// empty token or a malformed weight are skipped. The token is as written (trimmed, case
/// kept).
pub fn members(value: &str) -> impl Iterator<Item = (&str, u16)> {
    value.split(',').filter_map(|item| {
        let mut parts = item.split(';');
        let token = parts.next().unwrap_or("").trim();
        if token.is_empty() {
            return None;
        }
        let mut q = Some(1000u16);
        for p in parts {
            let p = p.trim();
            if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                q = parse_q(v.trim());
            }
        }
        Some((token, q?))
    })
}

/// Weights in thousandths (`q=0.5` → 500). `None`: not mentioned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    present: bool,
    codings: [Option<u16>; 4],
    identity: Option<u16>,
    star: Option<u16>,
}

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// This coding.
    Coding(Coding),
    /// No coding.
    Identity,
    /// Nothing offered is acceptable (identity refused): 406 may be sent.
    NotAcceptable,
}

impl Accepted {
    /// Parse every `Accept-Encoding` field line of a request.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut a = Accepted::default();
        for v in headers.get_all(header::ACCEPT_ENCODING) {
            a.present = true;
            let Ok(s) = v.to_str() else { continue };
            for (token, q) in members(s) {
                if token == "*" {
                    a.star = Some(q);
                } else if token.eq_ignore_ascii_case("identity") {
                    a.identity = Some(q);
                } else if let Some(c) = Coding::parse(token) {
                    let slot = &mut a.codings[c.index()];
                    // Duplicates: keep the highest weight.
                    *slot = Some(slot.map_or(q, |o| o.max(q)));
                }
            }
        }
        a
    }

    /// Whether the request had an `Accept-Encoding` field.
    pub fn present(&self) -> bool {
        self.present
    }

    /// The weight of `c` (0 = not acceptable).
    pub fn q(&self, c: Coding) -> u16 {
        if !self.present {
            return 0;
        }
        self.codings[c.index()].or(self.star).unwrap_or(0)
    }

    /// The weight of identity (0 = refused). Unmentioned identity is acceptable (weight 1
    /// here, lower than any explicit weight, so it never beats a listed coding).
    pub fn identity_q(&self) -> u16 {
        match (self.identity, self.star) {
            (Some(q), _) => q,
            (None, Some(0)) => 0,
            _ => 1,
        }
    }

    /// Whether `c` is acceptable.
    pub fn accepts(&self, c: Coding) -> bool {
        self.q(c) > 0
    }

    /// Choose among `offered` (in server preference order), with identity available when
    /// `identity_ok`.
    pub fn choose(&self, offered: &[Coding], available: CodingSet, identity_ok: bool) -> Choice {
        let mut best: Option<(Coding, u16)> = None;
        for &c in offered.iter().filter(|c| available.contains(**c)) {
            let q = self.q(c);
            if q > 0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((c, q));
            }
        }
        let iq = self.identity_q();
        match best {
            Some((c, q)) if !(identity_ok && self.identity.is_some() && iq > q) => {
                Choice::Coding(c)
            }
            _ if identity_ok && iq > 0 => Choice::Identity,
            Some((c, _)) => Choice::Coding(c),
            None if iq > 0 => Choice::Identity,
            None => Choice::NotAcceptable,
        }
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut f: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        f += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(f),
        "1" if f == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    fn acc(v: &str) -> Accepted {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("")),
        );
        Accepted::from_headers(&h)
    }

    fn all() -> CodingSet {
        Coding::ALL.into_iter().collect()
    }

    #[test]
    fn choice_table() {
        let pref = Coding::ALL;
        let cases: &[(&str, Choice)] = &[
            ("br, gzip", Choice::Coding(Coding::Br)),
            ("gzip, br", Choice::Coding(Coding::Br)),
            ("gzip;q=1, br;q=0.5", Choice::Coding(Coding::Gzip)),
            ("gzip;q=0.5, identity", Choice::Identity),
            ("gzip;q=0.5", Choice::Coding(Coding::Gzip)),
            ("*", Choice::Coding(Coding::Br)),
            ("*;q=0.3, br;q=0", Choice::Coding(Coding::Zstd)),
            ("identity", Choice::Identity),
            ("", Choice::Identity),
            ("compress", Choice::Identity),
            ("gzip;q=0", Choice::Identity),
            ("identity;q=0", Choice::NotAcceptable),
            ("*;q=0", Choice::NotAcceptable),
            ("*;q=0, identity", Choice::Identity),
            ("identity;q=0, gzip", Choice::Coding(Coding::Gzip)),
            ("GZIP;Q=0.8, x-gzip;q=0.1", Choice::Coding(Coding::Gzip)),
            ("gzip;q=2, deflate", Choice::Coding(Coding::Deflate)),
            (
                "gzip;q=0.1234, deflate;q=0.001",
                Choice::Coding(Coding::Deflate),
            ),
        ];
        for (v, want) in cases {
            assert_eq!(acc(v).choose(&pref, all(), true), *want, "{v:?}");
        }
        // No field at all: identity.
        assert_eq!(
            Accepted::from_headers(&HeaderMap::new()).choose(&pref, all(), true),
            Choice::Identity
        );
        // Server preference order decides ties.
        assert_eq!(
            acc("gzip, br").choose(&[Coding::Gzip, Coding::Br], all(), true),
            Choice::Coding(Coding::Gzip)
        );
        // Only what is available counts.
        let gz = CodingSet::EMPTY.with(Coding::Gzip);
        assert_eq!(acc("br").choose(&pref, gz, true), Choice::Identity);
        assert_eq!(
            acc("br, identity;q=0").choose(&pref, gz, true),
            Choice::NotAcceptable
        );
        // Identity unavailable (stored encoded, not decodable): the coding goes out.
        assert_eq!(
            acc("gzip;q=0.5, identity").choose(&pref, gz, false),
            Choice::Coding(Coding::Gzip)
        );
    }

    /// The weight each coding gets (was `rampart-static`'s `accepted` table).
    #[test]
    fn weights() {
        use Coding::*;
        let q = |v: &str| [Br, Zstd, Gzip].map(|c| acc(v).q(c));
        assert_eq!(
            [Br, Zstd, Gzip].map(|c| Accepted::from_headers(&HeaderMap::new()).q(c)),
            [0, 0, 0]
        );
        assert_eq!(q("gzip, br"), [1000, 0, 1000]);
        assert_eq!(q("br;q=0.5, gzip;q=0.8"), [500, 0, 800]);
        assert_eq!(q("*"), [1000, 1000, 1000]);
        assert_eq!(q("*;q=0.1, br;q=0"), [0, 100, 100]);
        assert_eq!(q("x-gzip"), [0, 0, 1000]);
        assert_eq!(q("BR;Q=1.0"), [1000, 0, 0]);
        assert_eq!(q("br;q=2"), [0, 0, 0]);
        assert_eq!(q("br;q=0.1234"), [0, 0, 0]);
        assert_eq!(q("identity"), [0, 0, 0]);
        // A malformed weight drops the member, so `*` speaks for the coding.
        assert_eq!(q("*;q=0.2, br;q=abc"), [200, 200, 200]);
        // Listed twice: the higher weight.
        assert_eq!(q("gzip;q=0, gzip;q=0.5"), [0, 0, 500]);
    }

    #[test]
    fn members_of_a_value() {
        let got: Vec<_> = members(" gzip ;q=0.5, ,BR, x;q=9, *;Q=0").collect();
        assert_eq!(got, [("gzip", 500), ("BR", 1000), ("*", 0)]);
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.001"), None);
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("0.0001"), None);
        assert_eq!(parse_q("-1"), None);
        assert_eq!(parse_q("abc"), None);
    }

    #[test]
    fn tokens_parse_case_insensitively() {
        assert_eq!(Coding::parse(" GZip "), Some(Coding::Gzip));
        assert_eq!(Coding::parse("x-gzip"), Some(Coding::Gzip));
        assert_eq!(Coding::parse("compress"), None);
        let s: CodingSet = [Coding::Br, Coding::Gzip].into_iter().collect();
        assert!(s.contains(Coding::Br) && !s.contains(Coding::Zstd));
    }
}
