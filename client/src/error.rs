//! What can go wrong talking to Parlance, typed so a caller can tell "the server is not there" from "the
//! server said no" from "the server broke".

use parlance_shared::{ErrorBody, ErrorCode};

/// Any error a source can carry; kept boxed so the client's public types do not depend on its HTTP stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from [`Client`](crate::Client) or [`Conversation`](crate::Conversation).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address is not an `http://` or `https://` URL.
    #[error("{0}")]
    InvalidUrl(String),
    /// The token has characters an HTTP header cannot carry.
    #[error("the token cannot be sent: it has characters an HTTP header may not carry")]
    InvalidToken,
    /// Nothing answered at the address: refused, unknown host, timed out, or TLS failed.
    #[error("the Parlance server at {server} could not be reached: {cause}")]
    Unreachable {
        server: String,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        cause: String,
        #[source]
        source: BoxError,
    },
    /// The server answered with an error in its own shape ([`ErrorBody`]): switch on `body.code`.
    #[error("the server answered {status}: {body}")]
    Api { status: u16, body: ErrorBody },
    /// An error status without Parlance's error body: a proxy in between, or not a Parlance server.
    #[error("the server answered {status} without Parlance's error body: {detail}")]
    UnexpectedStatus { status: u16, detail: String },
    /// A success whose body is not what the API promises (a different server, or a version mismatch).
    #[error("the server's answer could not be read: {0}")]
    Decode(String),
    /// The socket closed or failed during a turn. The next turn on the same
    /// [`Conversation`](crate::Conversation) reconnects and continues the conversation.
    #[error("the connection to the server was lost during the turn: {0}")]
    Disconnected(String),
    /// The turn ended with the socket's `error` event.
    #[error("the turn failed: {0}")]
    Turn(ErrorBody),
    /// Audio the client was given or received could not be used (e.g. answer chunks that do not join).
    #[error("{0}")]
    Audio(String),
    /// The server's socket speaks another protocol version than this client (its `hello` event).
    #[error(
        "the server speaks protocol {server} and this client protocol {client}: update the {} to match",
        if server > client { "client" } else { "server" }
    )]
    Protocol { server: u32, client: u32 },
}

/// Which side a failure is on, for callers (such as the CLI's exit codes) that only need the broad class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Nothing answered, or the connection was lost.
    Unreachable,
    /// The server refused the request as sent: bad input, no or wrong token, not allowed, too many requests
    /// (HTTP 4xx, or the socket's codes for them).
    Refused,
    /// The server (or one of its model providers) failed: HTTP 5xx, or the socket's codes for them.
    ServerFailure,
    /// A problem on this side: a bad address or token, unusable audio.
    Local,
}

impl ClientError {
    /// The wire error code, when the server sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { body, .. } | Self::Turn(body) => Some(body.code),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::UnexpectedStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidUrl(_) | Self::InvalidToken | Self::Audio(_) | Self::Protocol { .. } => ErrorKind::Local,
            Self::Unreachable { .. } | Self::Disconnected(_) => ErrorKind::Unreachable,
            Self::Api { status, .. } | Self::UnexpectedStatus { status, .. } => {
                if *status >= 500 {
                    ErrorKind::ServerFailure
                } else {
                    ErrorKind::Refused
                }
            }
            Self::Decode(_) => ErrorKind::ServerFailure,
            Self::Turn(body) => {
                if server_side(body.code) {
                    ErrorKind::ServerFailure
                } else {
                    ErrorKind::Refused
                }
            }
        }
    }

    pub(crate) fn unreachable(server: &str, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Self::Unreachable { server: server.to_owned(), cause: innermost(source.as_ref()), source }
    }
}

/// The codes the server answers with a 5xx status over HTTP (see the error table in the README); a code this
/// client does not know counts as the server's failure, not the caller's.
fn server_side(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotConfigured
            | ErrorCode::ProviderUnavailable
            | ErrorCode::ProviderError
            | ErrorCode::ServerBusy
            | ErrorCode::Internal
            | ErrorCode::Unknown
    )
}

/// The last error of a source chain: HTTP stacks wrap "connection refused" in two or three layers of
/// "error sending request".
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_socket_codes_fall_on_the_same_side() {
        let api = |status| ClientError::Api { status, body: ErrorBody::new(ErrorCode::InvalidRequest, "x") };
        assert_eq!(api(401).kind(), ErrorKind::Refused);
        assert_eq!(api(429).kind(), ErrorKind::Refused);
        assert_eq!(api(502).kind(), ErrorKind::ServerFailure);
        assert_eq!(ClientError::Turn(ErrorBody::new(ErrorCode::NoSpeech, "x")).kind(), ErrorKind::Refused);
        assert_eq!(ClientError::Turn(ErrorBody::new(ErrorCode::ProviderError, "x")).kind(), ErrorKind::ServerFailure);
        assert_eq!(ClientError::Turn(ErrorBody::new(ErrorCode::Unknown, "x")).kind(), ErrorKind::ServerFailure);
    }

    #[test]
    fn the_innermost_cause_is_named() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let error = ClientError::unreachable("http://127.0.0.1:9", io);
        assert!(error.to_string().ends_with("could not be reached: Connection refused"), "{error}");
    }
}
