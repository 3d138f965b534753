//! Where the streaming socket lives: `/api/ws` on the page's own server, `wss://` when the page came over HTTPS
//! (browsers refuse a plain `ws://` socket from a secure page).

pub const SOCKET_PATH: &str = "/api/ws";

/// The socket's URL for a page loaded from `protocol` (`"https:"`, as `location.protocol` gives it) and `host`
/// (`location.host`, with the port).
pub fn socket_url(protocol: &str, host: &str) -> String {
    let scheme = if protocol.eq_ignore_ascii_case("https:") { "wss" } else { "ws" };
    format!("{scheme}://{host}{SOCKET_PATH}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_follows_the_page() {
        assert_eq!(socket_url("http:", "127.0.0.1:8080"), "ws://127.0.0.1:8080/api/ws");
        assert_eq!(socket_url("https:", "parlance.home.arpa"), "wss://parlance.home.arpa/api/ws");
        assert_eq!(socket_url("HTTPS:", "x"), "wss://x/api/ws");
    }
}
