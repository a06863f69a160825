//! Who the client is behind a reverse proxy. Requests through nginx all come from the
//! proxy's address; per-address rate limits would then count every user together. When the
//! peer is one of `server.trusted_proxies`, the client is the nearest address in
//! `X-Forwarded-For` that is not a trusted proxy (the header's left part is whatever the
//! client sent, so it is never believed beyond the proxies Stoa trusts).

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Addresses and networks (`10.0.0.0/8`, `::1`) whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses `server.trusted_proxies`; the error names the entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let nets = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "server.trusted_proxies[{i}] must be an IP address or a network like 10.0.0.0/8 (got '{entry}')"
                        )
                    })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { nets })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` with these headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse().ok())
            .collect();
        // From the nearest hop outwards: the first one not ours is the client; if every
        // hop is ours, the farthest one.
        hops.iter()
            .rev()
            .find(|ip| !self.trusts(**ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop_and_only_behind_a_trusted_peer() {
        let proxies = TrustedProxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        // A trusted proxy: its header says who the client is.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &headers(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
        // The client's own (forged) entries on the left are not believed.
        let forged = headers(&["1.2.3.4, 203.0.113.7", "10.1.2.3"]);
        assert_eq!(proxies.client(ip("10.9.9.9"), &forged), ip("203.0.113.7"));
        // An untrusted peer: its header is ignored.
        assert_eq!(
            proxies.client(ip("198.51.100.1"), &headers(&["1.2.3.4"])),
            ip("198.51.100.1")
        );
        // No header, or nothing usable: the peer.
        assert_eq!(proxies.client(ip("127.0.0.1"), &headers(&[])), ip("127.0.0.1"));
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &headers(&["garbage"])),
            ip("127.0.0.1")
        );
        // IPv4-mapped IPv6 peers match IPv4 entries.
        assert_eq!(
            proxies.client(ip("::ffff:127.0.0.1"), &headers(&["192.0.2.1"])),
            ip("192.0.2.1")
        );
        // Nothing trusted by default.
        assert_eq!(
            TrustedProxies::default().client(ip("127.0.0.1"), &headers(&["1.2.3.4"])),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn entries_are_addresses_or_networks_and_a_bad_one_is_named() {
        assert!(TrustedProxies::parse(&["::1".into(), "fd00::/8".into(), "0.0.0.0/0".into()]).is_ok());
        let e = TrustedProxies::parse(&["10.0.0.0/8".into(), "10.0.0.0/33".into()]).unwrap_err();
        assert!(e.contains("server.trusted_proxies[1]"), "{e}");
        assert!(
            TrustedProxies::parse(&["nginx".into()])
                .unwrap_err()
                .contains("'nginx'")
        );
    }
}
