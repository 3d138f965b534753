//! Which peers may say who the client is. Behind a reverse proxy every request comes from the proxy, so
//! per-client budgets would be one budget for everybody; but a client talking to the server directly could
//! write any `X-Forwarded-For` it likes. So the header is believed only from the listed proxies.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self { networks }
    }

    /// `10.0.0.2` or `10.0.0.0/8` (IPv4 or IPv6); `None` when it is neither.
    pub fn parse_entry(entry: &str) -> Option<IpNet> {
        let entry = entry.trim();
        entry.parse::<IpNet>().ok().or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.networks.iter().any(|network| network.contains(&address))
    }

    /// The client a request is from: the peer itself, unless the peer is a listed proxy; then the nearest
    /// address in `X-Forwarded-For` (read from the right) that is not a listed proxy itself. Every proxy
    /// appends the address it was called from, so addresses left of an untrusted one may be invented.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for address in forwarded_for.iter().rev().flat_map(|header| header.rsplit(',')) {
            let Ok(address) = address.trim().parse::<IpAddr>() else { return client };
            client = canonical(address);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:10.0.0.1`) is the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_listed_proxies() {
        let proxies = TrustedProxies::new(vec![TrustedProxies::parse_entry("10.0.0.2").unwrap(), "172.16.0.0/12".parse().unwrap()]);
        assert_eq!(proxies.client(ip("192.168.1.9"), &["1.2.3.4"]), ip("192.168.1.9"), "not a proxy: the header is ignored");
        assert_eq!(proxies.client(ip("10.0.0.2"), &["1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(proxies.client(ip("::ffff:10.0.0.2"), &["1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(proxies.client(ip("10.0.0.2"), &["6.6.6.6, 1.2.3.4, 172.16.5.5"]), ip("1.2.3.4"), "the spoofed left part is skipped");
        assert_eq!(proxies.client(ip("10.0.0.2"), &["6.6.6.6", "1.2.3.4"]), ip("1.2.3.4"), "several headers read as one list");
        assert_eq!(proxies.client(ip("10.0.0.2"), &[]), ip("10.0.0.2"));
        assert_eq!(proxies.client(ip("10.0.0.2"), &["garbage"]), ip("10.0.0.2"));
        assert_eq!(TrustedProxies::default().client(ip("10.0.0.2"), &["1.2.3.4"]), ip("10.0.0.2"));
        assert!(TrustedProxies::parse_entry("not-an-ip").is_none());
    }
}
