//! Proxy header semantics (RFC 9110 §7.6).

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue, Version, header};

/// The hop-by-hop fields every proxy removes (RFC 9110 §7.6.1), plus the obsolete
/// `Proxy-Connection`.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Remove hop-by-hop fields, including every field named in `Connection`.
///
/// With `keep_upgrade`, an `Upgrade` offer that `Connection` names is kept and `Connection`
/// is set back to `upgrade`, so a WebSocket handshake can pass through. Returns whether an
/// upgrade was kept.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) -> bool {
    // Most messages carry none of these fields: one pass over the names is cheaper than a
    // hashed removal per name.
    if !headers.keys().any(is_hop_by_hop) {
        return false;
    }
    let mut named: Vec<HeaderName> = Vec::new();
    let mut upgrade_named = false;
    for v in headers.get_all(header::CONNECTION) {
        let Ok(s) = v.to_str() else { continue };
        for tok in s.split(',') {
            let tok = tok.trim();
            if tok.eq_ignore_ascii_case("upgrade") {
                upgrade_named = true;
            } else if let Ok(n) = HeaderName::from_bytes(tok.to_ascii_lowercase().as_bytes()) {
                named.push(n);
            }
        }
    }
    let upgrade = if keep_upgrade && upgrade_named {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
    if let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        true
    } else {
        false
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Append this proxy to `Via` (`1.1 rampart`, `2 rampart`).
pub fn append_via(headers: &mut HeaderMap, version: Version, pseudonym: &str) {
    let proto = match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    };
    if let Ok(v) = HeaderValue::from_str(&format!("{proto} {pseudonym}")) {
        headers.append(header::VIA, v);
    }
}

/// What the forwarding headers describe.
#[derive(Debug, Clone, Copy)]
pub struct ForwardInfo<'a> {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the peer is a trusted proxy (then its forwarding headers are kept and extended).
    pub peer_trusted: bool,
    /// `https` when the client connection is TLS.
    pub tls: bool,
    /// The `Host` the client asked for.
    pub host: Option<&'a HeaderValue>,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Set `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded`.
///
/// From a trusted proxy the incoming values are kept and the peer is appended; from anyone
/// else incoming values are dropped (a client must not be able to forge them) and replaced.
/// Runs on every proxied request, so it formats into one buffer and avoids `fmt`.
pub fn set_forwarding(headers: &mut HeaderMap, info: ForwardInfo<'_>) {
    let ip = info.peer.ip();
    let proto = if info.tls { "https" } else { "http" };
    let mut ip_buf = IpText::new();
    let ip_text = ip_buf.format(ip);
    let mut buf: Vec<u8> = Vec::with_capacity(96);
    if info.peer_trusted {
        // X-Forwarded-For: one combined list, peer last.
        for v in headers.get_all(&X_FORWARDED_FOR) {
            if v.to_str().is_ok() {
                buf.extend_from_slice(v.as_bytes());
                buf.extend_from_slice(b", ");
            }
        }
    } else if headers.keys().any(|k| {
        matches!(
            k.as_str(),
            "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" | "forwarded"
        )
    }) {
        headers.remove(&X_FORWARDED_FOR);
        headers.remove(&X_FORWARDED_PROTO);
        headers.remove(&X_FORWARDED_HOST);
        headers.remove(header::FORWARDED);
    }
    buf.extend_from_slice(ip_text.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&buf) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if !info.peer_trusted || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if let Some(h) = info.host
        && (!info.peer_trusted || !headers.contains_key(&X_FORWARDED_HOST))
    {
        headers.insert(X_FORWARDED_HOST, h.clone());
    }
    // Forwarded (RFC 7239): append this hop's element.
    buf.clear();
    buf.extend_from_slice(b"for=");
    match ip {
        IpAddr::V4(_) => buf.extend_from_slice(ip_text.as_bytes()),
        IpAddr::V6(_) => {
            buf.extend_from_slice(b"\"[");
            buf.extend_from_slice(ip_text.as_bytes());
            buf.extend_from_slice(b"]\"");
        }
    }
    if let Some(h) = info.host.map(HeaderValue::as_bytes)
        && h.iter()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(b))
    {
        buf.extend_from_slice(b";host=\"");
        buf.extend_from_slice(h);
        buf.push(b'"');
    }
    buf.extend_from_slice(b";proto=");
    buf.extend_from_slice(proto.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&buf) {
        headers.append(header::FORWARDED, v);
    }
}

/// An IP address as text without going through `fmt` for IPv4 (the common case).
struct IpText {
    v4: [u8; 15],
    len: usize,
    v6: String,
}

impl IpText {
    fn new() -> Self {
        Self {
            v4: [0; 15],
            len: 0,
            v6: String::new(),
        }
    }

    fn format(&mut self, ip: IpAddr) -> &str {
        match ip {
            IpAddr::V4(v4) => {
                let mut n = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.v4[n] = b'.';
                        n += 1;
                    }
                    if octet >= 100 {
                        self.v4[n] = b'0' + octet / 100;
                        n += 1;
                    }
                    if octet >= 10 {
                        self.v4[n] = b'0' + (octet / 10) % 10;
                        n += 1;
                    }
                    self.v4[n] = b'0' + octet % 10;
                    n += 1;
                }
                self.len = n;
                std::str::from_utf8(&self.v4[..n]).unwrap_or_default()
            }
            IpAddr::V6(v6) => {
                self.v6 = v6.to_string();
                &self.v6
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn strips_standard_and_connection_named_fields() {
        let mut m = h(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("x-keep", "yes"),
        ]);
        assert!(!strip_hop_by_hop(&mut m, true));
        assert_eq!(m.len(), 1);
        assert_eq!(m["x-keep"], "yes");
    }

    #[test]
    fn keeps_an_upgrade_offer_when_asked() {
        let mut m = h(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(strip_hop_by_hop(&mut m, true));
        assert_eq!(m["upgrade"], "websocket");
        assert_eq!(m["connection"], "upgrade");
        let mut m = h(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(!strip_hop_by_hop(&mut m, false));
        assert!(m.is_empty());
    }

    #[test]
    fn forwarding_from_untrusted_peer_replaces_headers() {
        let mut m = h(&[("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")]);
        let host = HeaderValue::from_static("example.com");
        set_forwarding(
            &mut m,
            ForwardInfo {
                peer: "10.0.0.5:1234".parse().unwrap(),
                peer_trusted: false,
                tls: true,
                host: Some(&host),
            },
        );
        assert_eq!(m["x-forwarded-for"], "10.0.0.5");
        assert_eq!(m["x-forwarded-proto"], "https");
        assert_eq!(m["x-forwarded-host"], "example.com");
        assert_eq!(
            m["forwarded"],
            "for=10.0.0.5;host=\"example.com\";proto=https"
        );
    }

    #[test]
    fn forwarding_from_trusted_peer_appends() {
        let mut m = h(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarding(
            &mut m,
            ForwardInfo {
                peer: "[::1]:1".parse().unwrap(),
                peer_trusted: true,
                tls: false,
                host: None,
            },
        );
        assert_eq!(m["x-forwarded-for"], "1.2.3.4, ::1");
        assert_eq!(m["x-forwarded-proto"], "https");
        assert_eq!(m["forwarded"], "for=\"[::1]\";proto=http");
    }

    #[test]
    fn ip_text_matches_display_for_every_octet_width() {
        let mut t = IpText::new();
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "1.22.203.40",
            "::1",
            "2001:db8::7",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(t.format(parsed), parsed.to_string());
        }
        for o in 0..=255u8 {
            let parsed = IpAddr::from([o, 9, o, 99]);
            assert_eq!(t.format(parsed), parsed.to_string());
        }
    }

    #[test]
    fn via_uses_protocol_version() {
        let mut m = HeaderMap::new();
        append_via(&mut m, Version::HTTP_2, "rampart");
        append_via(&mut m, Version::HTTP_11, "edge");
        let all: Vec<_> = m.get_all("via").iter().collect();
        assert_eq!(all, ["2 rampart", "1.1 edge"]);
    }
}
