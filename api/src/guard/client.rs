//! The client's address: the socket's peer, or, behind `trusted_proxies`
//! reverse proxies, the address the outermost trusted proxy saw. Entries a
//! client wrote into `X-Forwarded-For` itself are never believed: only the
//! rightmost `trusted_proxies` entries were appended by our own proxies.

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// `peer` is the socket's address; `None` when the server did not record it.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted_proxies: usize,
) -> Option<IpAddr> {
    let peer = peer?;
    if trusted_proxies == 0 {
        return Some(peer);
    }
    // Right to left: the peer is our nearest proxy; each trusted hop vouches
    // for the entry before it.
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in forwarded.iter().rev().take(trusted_proxies) {
        match parse_entry(entry) {
            Some(ip) => client = ip,
            // A garbled entry: the last address we could trust stands.
            None => break,
        }
    }
    Some(client)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    entry.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// The client address of a request being served by `server::serve`.
pub fn from_parts(parts: &Parts, trusted_proxies: usize) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    client_ip(peer, &parts.headers, trusted_proxies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_socket_decides() {
        let h = xff(&["203.0.113.9"]);
        assert_eq!(client_ip(Some(ip("10.0.0.1")), &h, 0), Some(ip("10.0.0.1")));
    }

    #[test]
    fn only_entries_our_proxies_appended_count() {
        // The client forged "1.1.1.1"; our one proxy appended the real address.
        let h = xff(&["1.1.1.1, 198.51.100.7"]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &h, 1),
            Some(ip("198.51.100.7"))
        );
        // Two proxies, the header split over two lines.
        let h = xff(&["1.1.1.1, 198.51.100.7", "10.0.0.2"]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &h, 2),
            Some(ip("198.51.100.7"))
        );
        // Ports and brackets as some proxies write them.
        let h = xff(&["[2001:db8::5]:443"]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &h, 1),
            Some(ip("2001:db8::5"))
        );
    }

    #[test]
    fn missing_or_garbled_entries_fall_back_to_the_last_trusted_hop() {
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &HeaderMap::new(), 1),
            Some(ip("10.0.0.1"))
        );
        let h = xff(&["198.51.100.7, not-an-ip"]);
        assert_eq!(client_ip(Some(ip("10.0.0.1")), &h, 2), Some(ip("10.0.0.1")));
        assert_eq!(client_ip(None, &h, 2), None);
    }
}
