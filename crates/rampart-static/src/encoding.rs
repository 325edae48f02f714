//! Choosing a precompressed sidecar from `Accept-Encoding` (RFC 9110 §12.5.3).
//!
//! Each content coding gets the q-value of its own entry, else that of `*`, else 0 (not
//! acceptable). Among the sidecars that exist, the highest q wins; ties go to the server
//! order `br`, `zstd`, `gzip` (smallest first). A coding with q=0 is never chosen. When no
//! sidecar is acceptable the file itself (identity) is served.

use http::{HeaderMap, header};

/// A precompressed representation stored next to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecar {
    /// `file.br`, `Content-Encoding: br`.
    Br,
    /// `file.zst`, `Content-Encoding: zstd`.
    Zstd,
    /// `file.gz`, `Content-Encoding: gzip`.
    Gzip,
}

impl Sidecar {
    /// Server preference order.
    pub const ALL: [Sidecar; 3] = [Sidecar::Br, Sidecar::Zstd, Sidecar::Gzip];

    /// The file name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Sidecar::Br => ".br",
            Sidecar::Zstd => ".zst",
            Sidecar::Gzip => ".gz",
        }
    }

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Sidecar::Br => "br",
            Sidecar::Zstd => "zstd",
            Sidecar::Gzip => "gzip",
        }
    }
}

/// q-values (in thousandths) the client gives each sidecar coding, in [`Sidecar::ALL`]
/// order. All zero when the header is absent.
pub fn accepted(headers: &HeaderMap) -> [u16; 3] {
    let mut star: Option<u16> = None;
    let mut explicit: [Option<u16>; 3] = [None; 3];
    for v in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(s) = v.to_str() else { continue };
        for item in s.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if coding.is_empty() {
                continue;
            }
            let mut q = 1000u16;
            for p in parts {
                let p = p.trim();
                if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                    q = parse_q(v).unwrap_or(0);
                }
            }
            let slot = match coding.as_str() {
                "br" => Some(0),
                "zstd" => Some(1),
                "gzip" | "x-gzip" => Some(2),
                "*" => {
                    star = Some(q);
                    None
                }
                _ => None,
            };
            if let Some(i) = slot {
                explicit[i] = Some(q);
            }
        }
    }
    let mut out = [0u16; 3];
    for (o, e) in out.iter_mut().zip(explicit) {
        *o = e.or(star).unwrap_or(0);
    }
    out
}

/// `q` as thousandths (`"0.5"` -> 500); `None` when malformed.
fn parse_q(v: &str) -> Option<u16> {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
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

/// The best sidecar among `available` (a flag per [`Sidecar::ALL`] entry) for `q`.
pub fn choose(q: [u16; 3], available: [bool; 3]) -> Option<Sidecar> {
    let mut best: Option<(u16, Sidecar)> = None;
    for (i, s) in Sidecar::ALL.into_iter().enumerate() {
        if !available[i] || q[i] == 0 {
            continue;
        }
        if best.is_none_or(|(bq, _)| q[i] > bq) {
            best = Some((q[i], s));
        }
    }
    best.map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ae(v: &str) -> [u16; 3] {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
        accepted(&h)
    }

    #[test]
    fn q_values() {
        assert_eq!(accepted(&HeaderMap::new()), [0, 0, 0]);
        assert_eq!(ae("gzip, br"), [1000, 0, 1000]);
        assert_eq!(ae("br;q=0.5, gzip;q=0.8"), [500, 0, 800]);
        assert_eq!(ae("*"), [1000, 1000, 1000]);
        assert_eq!(ae("*;q=0.1, br;q=0"), [0, 100, 100]);
        assert_eq!(ae("x-gzip"), [0, 0, 1000]);
        assert_eq!(ae("BR;Q=1.0"), [1000, 0, 0]);
        assert_eq!(ae("br;q=2"), [0, 0, 0]);
        assert_eq!(ae("br;q=0.1234"), [0, 0, 0]);
        assert_eq!(ae("identity"), [0, 0, 0]);
    }

    #[test]
    fn choice() {
        let all = [true, true, true];
        assert_eq!(choose(ae("gzip, br"), all), Some(Sidecar::Br));
        assert_eq!(choose(ae("gzip, zstd"), all), Some(Sidecar::Zstd));
        assert_eq!(choose(ae("br;q=0.5, gzip"), all), Some(Sidecar::Gzip));
        assert_eq!(
            choose(ae("gzip, br"), [false, false, true]),
            Some(Sidecar::Gzip)
        );
        assert_eq!(choose(ae("br"), [false, false, true]), None);
        assert_eq!(choose(ae("br;q=0, gzip;q=0"), all), None);
        assert_eq!(choose(ae(""), all), None);
    }
}
