//! Choosing a precompressed sidecar from `Accept-Encoding`, read by
//! `rampart_core::negotiate` (RFC 9110 §12.5.3: q-values, `*`, `identity`, malformed weights
//! ignored), the same reading as the compression layer's.
//!
//! Among the sidecars that exist, the acceptable one with the highest q wins; ties go to the
//! server order `br`, `zstd`, `gzip` (smallest first). A coding with q=0 is never chosen, and
//! the file itself (identity) is served when no sidecar is acceptable or when the client
//! weighs identity above every acceptable sidecar (`gzip;q=0.5, identity`).

use rampart_core::negotiate::{Accepted, Choice, Coding, CodingSet};

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

    /// The content coding.
    pub fn coding(self) -> Coding {
        match self {
            Sidecar::Br => Coding::Br,
            Sidecar::Zstd => Coding::Zstd,
            Sidecar::Gzip => Coding::Gzip,
        }
    }

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        self.coding().as_str()
    }
}

/// The best sidecar among `available` (a flag per [`Sidecar::ALL`] entry) for what the
/// client `accepted`; `None`: serve the file itself.
pub fn choose(accepted: &Accepted, available: [bool; 3]) -> Option<Sidecar> {
    let offered = Sidecar::ALL.map(Sidecar::coding);
    let present: CodingSet = Sidecar::ALL
        .into_iter()
        .zip(available)
        .filter(|(_, here)| *here)
        .map(|(s, _)| s.coding())
        .collect();
    match accepted.choose(&offered, present, true) {
        Choice::Coding(c) => Sidecar::ALL.into_iter().find(|s| s.coding() == c),
        Choice::Identity | Choice::NotAcceptable => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::{HeaderMap, header};

    fn ae(v: &str) -> Accepted {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
        Accepted::from_headers(&h)
    }

    #[test]
    fn choice() {
        let all = [true, true, true];
        assert_eq!(choose(&ae("gzip, br"), all), Some(Sidecar::Br));
        assert_eq!(choose(&ae("gzip, zstd"), all), Some(Sidecar::Zstd));
        assert_eq!(choose(&ae("br;q=0.5, gzip"), all), Some(Sidecar::Gzip));
        assert_eq!(
            choose(&ae("gzip, br"), [false, false, true]),
            Some(Sidecar::Gzip)
        );
        assert_eq!(choose(&ae("br"), [false, false, true]), None);
        assert_eq!(choose(&ae("br;q=0, gzip;q=0"), all), None);
        assert_eq!(choose(&ae(""), all), None);
        assert_eq!(
            choose(&Accepted::from_headers(&HeaderMap::new()), all),
            None
        );
        // Identity weighed above the sidecars: the file itself.
        assert_eq!(choose(&ae("gzip;q=0.5, identity"), all), None);
        // Identity refused and nothing acceptable: still the file (no 406 for files).
        assert_eq!(choose(&ae("identity;q=0"), all), None);
        assert_eq!(choose(&ae("*;q=0.1, br;q=0"), all), Some(Sidecar::Zstd));
    }

    #[test]
    fn tokens() {
        let t = Sidecar::ALL.map(|s| (s.suffix(), s.token()));
        assert_eq!(t, [(".br", "br"), (".zst", "zstd"), (".gz", "gzip")]);
    }
}
