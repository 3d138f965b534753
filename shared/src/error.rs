use std::fmt;

use serde::{Deserialize, Serialize};

/// The body of every error response, and of the streaming `error` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable, machine-readable; switch on this.
    pub code: ErrorCode,
    /// For people: what went wrong and, where possible, what to do about it. Wording may change.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

/// Why a request failed. New codes may be added; older clients read them as `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, a missing field, an empty question.
    InvalidRequest,
    /// A voice turn arrived without audio, or with an empty file.
    MissingAudio,
    /// The request is larger than the server accepts: its body, a socket message, or its address or headers.
    PayloadTooLarge,
    /// The audio is in a format the server cannot read.
    UnsupportedMediaType,
    /// The audio could be read but holds no speech.
    NoSpeech,
    /// The session id is unknown (never existed, or was deleted).
    SessionNotFound,
    /// No such route or resource.
    NotFound,
    /// The route exists, but not with this HTTP method (the `Allow` header lists the ones it takes).
    MethodNotAllowed,
    /// A model stage is not set up on this server.
    NotConfigured,
    /// A model provider could not be reached or timed out; retrying later may work.
    ProviderUnavailable,
    /// A model provider answered with an error or with something unreadable.
    ProviderError,
    /// Too many requests (or open sockets) from this client; wait and retry.
    RateLimited,
    /// The server is answering as many questions as it can and its queue of waiting ones is full; retry after
    /// `Retry-After` seconds.
    ServerBusy,
    /// This server needs a sign-in token, and the request had none or a wrong one.
    Unauthorized,
    /// The request was refused whatever the token: it came from another site, named a host this server does
    /// not answer to, or asked for what only an admin may do.
    Forbidden,
    /// A bug or an unexpected failure on the server.
    Internal,
    /// A code this client version does not know yet.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::MissingAudio => "missing_audio",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NoSpeech => "no_speech",
            Self::SessionNotFound => "session_not_found",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotConfigured => "not_configured",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ProviderError => "provider_error",
            Self::RateLimited => "rate_limited",
            Self::ServerBusy => "server_busy",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }
}
