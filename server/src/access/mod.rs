//! Who may use this server and from where: sign-in tokens naming users, the hosts the server answers to, the
//! sites whose pages may change anything, and the proxies whose `X-Forwarded-For` is believed. The edge asks
//! these questions; this module only answers them (it knows no status codes).

mod hosts;
mod proxies;
mod token_file;
mod users;

pub use self::hosts::{HostPolicy, host_of_origin};
pub use self::proxies::TrustedProxies;
pub use self::token_file::{GeneratedToken, TOKEN_FILE, TokenFileError, load_or_create, read as read_token_file};
pub use self::users::{Caller, User, Users, UsersError, parse_users};

/// The prefix of the WebSocket subprotocol that carries the token: browsers cannot set an `Authorization`
/// header on a socket, and a query string would land in access logs. The client offers
/// [`SOCKET_PROTOCOL`] and `parlance.bearer.<token>`; the server accepts only [`SOCKET_PROTOCOL`], so the
/// token is never echoed back.
pub const SOCKET_TOKEN_PROTOCOL_PREFIX: &str = "parlance.bearer.";
/// The subprotocol the server accepts on `/api/ws`.
pub const SOCKET_PROTOCOL: &str = "parlance";

/// Sign-in tokens shorter than this are refused at start-up: a token guards voices and notes.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A new random token: 256 bits from the operating system's generator (through `uuid`'s v4, which reads it),
/// written as 64 hex digits so it survives URLs, shells and copy-paste.
pub fn new_token() -> String {
    let a = uuid::Uuid::new_v4().into_bytes();
    let b = uuid::Uuid::new_v4().into_bytes();
    let c = uuid::Uuid::new_v4().into_bytes();
    // Each v4 UUID carries 122 random bits; three give 366, of which the hex keeps 256.
    let mut digest = sha2::Sha256::default();
    sha2::Digest::update(&mut digest, a);
    sha2::Digest::update(&mut digest, b);
    sha2::Digest::update(&mut digest, c);
    sha2::Digest::finalize(digest).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The token in an `Authorization: Bearer ...` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
}

/// The token offered in a `Sec-WebSocket-Protocol` header value (comma-separated protocols).
pub fn socket_protocol_token(header: &str) -> Option<&str> {
    header.split(',').map(str::trim).find_map(|protocol| protocol.strip_prefix(SOCKET_TOKEN_PROTOCOL_PREFIX)).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_different() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn bearer_and_socket_protocol_tokens_are_read() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(socket_protocol_token("parlance, parlance.bearer.xyz"), Some("xyz"));
        assert_eq!(socket_protocol_token("parlance"), None);
        assert_eq!(socket_protocol_token("parlance.bearer."), None);
    }
}
