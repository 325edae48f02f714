//! Proxy header semantics (RFC 9110 §7.6).

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue, Version, header};

/// The hop-by-hop fields every proxy removes (RFC 9110 §7.6.1), plus the obsolete
/// `Proxy-Connection`.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Remove hop-by-hop fields, including every field named in `Connection`.
///
/// With `keep_upgrade`, an `Upgrade` offer that `Connection` names is kept and `Connection`
/// is set back to `upgrade`, so a WebSocket handshake can pass through. Returns whether an
/// upgrade was kept.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) -> bool {
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
    for n in HOP_BY_HOP {
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

/// Set `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded`.
///
/// From a trusted proxy the incoming values are kept and the peer is appended; from anyone
/// else incoming values are dropped (a client must not be able to forge them) and replaced.
pub fn set_forwarding(headers: &mut HeaderMap, info: ForwardInfo<'_>) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let xfp = HeaderName::from_static("x-forwarded-proto");
    let xfh = HeaderName::from_static("x-forwarded-host");
    let ip = info.peer.ip();
    let proto = if info.tls { "https" } else { "http" };
    if !info.peer_trusted {
        headers.remove(&xff);
        headers.remove(&xfp);
        headers.remove(&xfh);
        headers.remove(header::FORWARDED);
    }
    // X-Forwarded-For: one combined list, peer last.
    let prior: Vec<String> = headers
        .get_all(&xff)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let mut list = prior.join(", ");
    if !list.is_empty() {
        list.push_str(", ");
    }
    list.push_str(&ip.to_string());
    if let Ok(v) = HeaderValue::from_str(&list) {
        headers.insert(xff, v);
    }
    if !headers.contains_key(&xfp) {
        headers.insert(
            xfp,
            HeaderValue::from_static(if info.tls { "https" } else { "http" }),
        );
    }
    if !headers.contains_key(&xfh)
        && let Some(h) = info.host
    {
        headers.insert(xfh, h.clone());
    }
    // Forwarded (RFC 7239): append this hop's element.
    let mut element = format!("for={}", forwarded_node(ip));
    if let Some(h) = info.host.and_then(|h| h.to_str().ok())
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        element.push_str(";host=\"");
        element.push_str(h);
        element.push('"');
    }
    element.push_str(";proto=");
    element.push_str(proto);
    if let Ok(v) = HeaderValue::from_str(&element) {
        headers.append(header::FORWARDED, v);
    }
}

fn forwarded_node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
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
    fn via_uses_protocol_version() {
        let mut m = HeaderMap::new();
        append_via(&mut m, Version::HTTP_2, "rampart");
        append_via(&mut m, Version::HTTP_11, "edge");
        let all: Vec<_> = m.get_all("via").iter().collect();
        assert_eq!(all, ["2 rampart", "1.1 edge"]);
    }
}
