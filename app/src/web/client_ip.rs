//! The client's IP address, taking `X-Forwarded-For` only from configured trusted proxies.

use axum::http::HeaderMap;
use std::net::IpAddr;

/// `peer` is the TCP peer. If it is a trusted proxy, the client is the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left are written by
/// the client and can be forged).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        if headers.contains_key("x-forwarded-for") {
            warn_untrusted_proxy(peer);
        }
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !trusted.contains(ip)).unwrap_or(peer))
}

/// Says once per process that a proxy seems to be in front of the server but is not trusted:
/// all its clients then share the proxy's address (and its sign-in throttle).
fn warn_untrusted_proxy(peer: IpAddr) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(%peer, "request with X-Forwarded-For from a peer not in TRUSTED_PROXIES; the header is ignored");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_only_believed_from_trusted_proxies() {
        let proxy = ip("10.0.0.2");
        // Untrusted peer: its header is ignored.
        assert_eq!(client_ip(Some(ip("198.51.100.4")), &xff("1.2.3.4"), &[proxy]), Some(ip("198.51.100.4")));
        // Trusted peer: right-most untrusted entry; a forged left-most entry is ignored.
        assert_eq!(client_ip(Some(proxy), &xff("6.6.6.6, 203.0.113.9"), &[proxy]), Some(ip("203.0.113.9")));
        assert_eq!(client_ip(Some(proxy), &xff("203.0.113.9, 10.0.0.2"), &[proxy]), Some(ip("203.0.113.9")));
        // Trusted peer without a header: the peer itself.
        assert_eq!(client_ip(Some(proxy), &HeaderMap::new(), &[proxy]), Some(proxy));
        assert_eq!(client_ip(None, &HeaderMap::new(), &[]), None);
    }
}
