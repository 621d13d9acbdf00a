//! Which client a request comes from, for per-client limits: the TCP peer, unless the peer is
//! one of the configured trusted proxies (`TRUSTED_PROXIES`, CIDR list), in which case the
//! rightmost `X-Forwarded-For` address that is not itself a trusted proxy. A header from any
//! other peer is ignored, so a client cannot pick its own address. Pure logic, no I/O.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// One entry of `TRUSTED_PROXIES`: a network in CIDR form, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedNet(IpNet);

impl FromStr for TrustedNet {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Ok(net) = raw.parse::<IpNet>() {
            return Ok(TrustedNet(net));
        }
        raw.parse::<IpAddr>()
            .map(|ip| TrustedNet(IpNet::from(ip)))
            .map_err(|_| format!("{raw:?} is neither a CIDR network nor an IP address"))
    }
}

/// An address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) seen as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn trusted(ip: IpAddr, proxies: &[TrustedNet]) -> bool {
    proxies.iter().any(|net| net.0.contains(&ip))
}

/// The client address of a request that arrived from `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[TrustedNet]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted(peer, proxies) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map_while(|part| part.trim().parse::<IpAddr>().ok().map(canonical))
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted(*ip, proxies))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<TrustedNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    #[test]
    fn the_client_address_by_peer_and_header() {
        let proxies = nets(&["10.0.0.0/8", "192.168.1.1"]);
        let cases: &[(&str, Option<&str>, &str)] = &[
            // An untrusted peer is the client, whatever it claims.
            ("203.0.113.9", None, "203.0.113.9"),
            ("203.0.113.9", Some("1.2.3.4"), "203.0.113.9"),
            // A trusted proxy: the rightmost untrusted forwarded address.
            ("10.1.2.3", Some("1.2.3.4"), "1.2.3.4"),
            ("10.1.2.3", Some("6.6.6.6, 1.2.3.4"), "1.2.3.4"),
            ("10.1.2.3", Some("1.2.3.4, 10.9.9.9"), "1.2.3.4"),
            ("192.168.1.1", Some("1.2.3.4"), "1.2.3.4"),
            // Without a usable header, the proxy itself.
            ("10.1.2.3", None, "10.1.2.3"),
            ("10.1.2.3", Some("garbage"), "10.1.2.3"),
            ("10.1.2.3", Some("10.0.0.5"), "10.1.2.3"),
            // Mapped IPv6 peers count as their IPv4 address.
            ("::ffff:10.1.2.3", Some("1.2.3.4"), "1.2.3.4"),
        ];
        for (peer, header, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(h) = header {
                headers.insert("x-forwarded-for", h.parse().expect("header"));
            }
            let got = client_ip(peer.parse().expect("peer"), &headers, &proxies);
            assert_eq!(
                got,
                want.parse::<IpAddr>().expect("want"),
                "{peer} {header:?}"
            );
        }
    }

    #[test]
    fn no_trusted_proxies_means_the_peer() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4".parse().expect("header"));
        let peer: IpAddr = "127.0.0.1".parse().expect("peer");
        assert_eq!(client_ip(peer, &headers, &[]), peer);
    }

    #[test]
    fn trusted_entries_parse_as_networks_or_addresses() {
        assert!("10.0.0.0/8".parse::<TrustedNet>().is_ok());
        assert!("::1".parse::<TrustedNet>().is_ok());
        assert!("fd00::/8".parse::<TrustedNet>().is_ok());
        assert!("not-an-ip".parse::<TrustedNet>().is_err());
        assert!("10.0.0.0/33".parse::<TrustedNet>().is_err());
    }
}
