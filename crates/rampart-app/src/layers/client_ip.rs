//! Layer 2: client IP. The TCP peer, unless the peer is a trusted proxy: then
//! `X-Forwarded-For` (or, without it, `Forwarded: for=`) is walked right to left and the first
//! address that is not a trusted proxy is the client. A client that is not a trusted proxy
//! cannot influence the result, whatever it sends.

use std::{net::IpAddr, sync::Arc};

use http::{HeaderMap, header};
use ipnet::IpNet;
use rampart_core::{ClientIp, ConnInfo, Request};

use super::{BoxFuture, Middleware};
use rampart_core::{BoxError, Response};
use tower::Service;

/// See the module docs.
#[derive(Clone)]
pub struct ClientIpMw {
    trusted: Arc<Vec<IpNet>>,
}

impl ClientIpMw {
    /// With these trusted proxy CIDRs.
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self {
            trusted: Arc::new(trusted),
        }
    }
}

impl Middleware for ClientIpMw {
    fn call<S>(&self, mut req: Request, next: &mut S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        if let Some(peer) = req.extensions().get::<ConnInfo>().map(|c| c.peer.ip()) {
            let ip = resolve(peer, req.headers(), &self.trusted);
            req.extensions_mut().insert(ClientIp(ip));
        }
        Box::pin(next.call(req))
    }
}

/// The client IP for a request from `peer` with these headers.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| parse_ip(s.trim()))
        .collect();
    if chain.is_empty() {
        chain = headers
            .get_all(header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|elem| {
                elem.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.eq_ignore_ascii_case("for")
                        .then(|| parse_ip(v.trim().trim_matches('"')))?
                })
            })
            .collect();
    }
    let mut client = peer;
    for ip in chain.into_iter().rev() {
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    // `[v6]:port`, `[v6]`, `v4:port`
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_says() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(resolve(peer, &headers(&["1.1.1.1"]), &trusted), peer);
    }

    #[test]
    fn trusted_chain_is_walked_right_to_left() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        // spoofed left-most entry is ignored: the right-most untrusted one wins
        let h = headers(&["6.6.6.6, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(
            resolve(peer, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // all trusted: the left-most
        let h = headers(&["10.2.2.2, 10.3.3.3"]);
        assert_eq!(
            resolve(peer, &h, &trusted),
            "10.2.2.2".parse::<IpAddr>().unwrap()
        );
        // no header: the peer
        assert_eq!(resolve(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn forwarded_header_is_used_without_xff() {
        let trusted: Vec<IpNet> = vec!["::1/128".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            "for=\"[2001:db8::1]:443\";proto=https, for=192.0.2.60"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            resolve("::1".parse().unwrap(), &h, &trusted),
            "192.0.2.60".parse::<IpAddr>().unwrap()
        );
    }
}
