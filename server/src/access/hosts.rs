//! Which `Host` names the server answers to, and which pages may change anything on it.
//!
//! A page on a name the attacker controls can have that name re-resolved to this server (DNS rebinding): the
//! browser then treats the server as the attacker's own site. The requests still carry the attacker's name in
//! `Host`, so a server that answers only to its own names is out of reach. An address written as digits
//! cannot be rebound, so any IP literal is accepted, as are `localhost` and the listed names.

/// The hosts and origins a server accepts.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Lower-case names without a port; a leading dot (`.home.arpa`) accepts every name under it.
    names: Vec<String>,
    /// `--allowed-hosts '*'`: every name (for a proxy that already checks them).
    any: bool,
    cors_origins: Vec<String>,
}

impl HostPolicy {
    /// `names`: the `--allowed-hosts` entries, checked by `config`; `cors_origins`: the sites allowed to call
    /// the API from their pages.
    pub fn new(names: &[String], cors_origins: &[String]) -> Self {
        let any = names.iter().any(|name| name == "*");
        let names = names.iter().filter(|name| *name != "*").map(|name| name.trim().to_ascii_lowercase()).collect();
        Self { names, any, cors_origins: cors_origins.to_vec() }
    }

    /// Whether a request's `Host` header (name or address, with or without a port) is one of this server's.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else { return false };
        if self.any || name == "localhost" || is_ip_literal(&name) {
            return true;
        }
        self.listed(&name)
    }

    fn listed(&self, name: &str) -> bool {
        self.names.iter().any(|allowed| match allowed.strip_prefix('.') {
            Some(domain) => name == domain || name.ends_with(allowed.as_str()),
            None => name == allowed,
        })
    }

    /// Whether a page from `origin` may send a request that changes something (or open the socket), for a
    /// request that arrived with `host`: the server's own page (same host and port), a listed site
    /// (`--cors-origins`), or a page on a listed host name (a proxy may rewrite `Host` to its upstream's).
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim();
        if self.cors_origins.iter().any(|listed| listed.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let Some(authority) = host_of_origin(origin) else { return false };
        if host.is_some_and(|host| host.trim().eq_ignore_ascii_case(authority)) {
            return true;
        }
        host_name(authority).is_some_and(|name| !is_ip_literal(&name) && name != "localhost" && self.listed(&name))
    }
}

/// `host[:port]` of an origin such as `https://example.com:8443`; `None` for `null` and anything else.
pub fn host_of_origin(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    Some(rest)
}

/// The lower-case name or address of a `Host` value, without its port; `None` when it is not one.
fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6] or [v6]:port
        let (address, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        format!("[{address}]")
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name.to_owned(),
            Some(_) => return None,
            None => host.to_owned(),
        }
    };
    Some(name.trim_end_matches('.').to_ascii_lowercase())
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_ip_literal(name: &str) -> bool {
    match name.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => name.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(names: &[&str]) -> HostPolicy {
        HostPolicy::new(&names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(), &["https://app.example".to_owned()])
    }

    #[test]
    fn addresses_localhost_and_listed_names_are_answered() {
        let default = policy(&[]);
        for host in ["localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "[::1]", "192.168.1.20:8080", "LOCALHOST"] {
            assert!(default.host_allowed(host), "{host}");
        }
        for host in ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "", "[::1", "a:b:c", "localhost:99999x"] {
            assert!(!default.host_allowed(host), "{host}");
        }
        let listed = policy(&["parlance.home.arpa", ".example.net"]);
        assert!(listed.host_allowed("Parlance.Home.Arpa:8080"));
        assert!(listed.host_allowed("voice.example.net") && listed.host_allowed("example.net"));
        assert!(!listed.host_allowed("evilexample.net"));
        assert!(policy(&["*"]).host_allowed("anything.example"));
    }

    #[test]
    fn only_the_apps_own_listed_sites_and_listed_names_may_change_things() {
        let policy = policy(&["parlance.home.arpa"]);
        assert!(policy.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(policy.origin_allowed("https://app.example", Some("127.0.0.1:8080")));
        assert!(policy.origin_allowed("https://parlance.home.arpa", Some("127.0.0.1:8080")), "behind a proxy that rewrites Host");
        assert!(!policy.origin_allowed("https://evil.example", Some("127.0.0.1:8080")));
        assert!(!policy.origin_allowed("http://127.0.0.1:9999", Some("127.0.0.1:8080")), "another port is another site");
        assert!(!policy.origin_allowed("http://localhost:9999", Some("127.0.0.1:8080")));
        assert!(!policy.origin_allowed("null", Some("127.0.0.1:8080")));
        assert!(!policy.origin_allowed("http://127.0.0.1:8080", None));
    }
}
