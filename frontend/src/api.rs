//! Calls to the Parlance server's HTTP API, and what can go wrong with them, in words for people.

use std::fmt;

use gloo_net::http::Request;
use leptos::logging;
use parlance_shared::{ErrorBody, ErrorCode, TextTurnRequest, TurnResponse};

/// Relative, so the app works wherever the server is mounted (and behind `trunk serve`'s proxy).
const CHAT_URL: &str = "/api/chat";

/// Why a call to the server produced no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// No HTTP response at all: the server is down, the network is gone, or the browser blocked the request.
    Unreachable,
    /// The server answered with a non-2xx status.
    Status {
        status: u16,
        /// The reason phrase, e.g. `Bad Gateway`; empty for unknown codes.
        reason: String,
        /// The server's own explanation, when the body was one (a proxy's HTML error page is not).
        body: Option<ErrorBody>,
    },
    /// A 2xx response whose body is not what this version of the app expects.
    Unreadable,
    /// The browser would not even build the request.
    Client(String),
}

impl ApiError {
    /// Builds the error for a non-2xx response from its status line and body.
    pub fn from_response(status: u16, status_text: &str, body: &str) -> Self {
        // HTTP/2 has no reason phrase on the wire, so browsers report an empty `statusText` there.
        let reason = match status_text.trim() {
            "" => http::StatusCode::from_u16(status).ok().and_then(|code| code.canonical_reason()).unwrap_or_default().to_owned(),
            text => text.to_owned(),
        };
        let body = serde_json::from_str::<ErrorBody>(body).ok();
        Self::Status { status, reason, body }
    }

    /// The server's machine-readable code, when it sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Status { body: Some(body), .. } => Some(body.code),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable => f.write_str("Can't reach the Parlance server."),
            Self::Status { body: Some(body), .. } if !body.message.trim().is_empty() => f.write_str(&body.message),
            Self::Status { status, reason, .. } if reason.is_empty() => write!(f, "The server answered {status}."),
            Self::Status { status, reason, .. } => write!(f, "The server answered {status} {reason}."),
            Self::Unreadable => f.write_str("The server's answer could not be read. The page may be out of date: try reloading it."),
            Self::Client(detail) => write!(f, "The browser could not send the question: {detail}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// `POST /api/chat`: asks a typed question and waits for the whole answer.
pub async fn send_text_turn(request: &TextTurnRequest) -> Result<TurnResponse, ApiError> {
    let http_request = Request::post(CHAT_URL).json(request).map_err(|err| ApiError::Client(err.to_string()))?;
    let response = http_request.send().await.map_err(|err| {
        // The user sees a plain sentence; the browser's own reason is for whoever opens the console.
        logging::warn!("POST {CHAT_URL} failed: {err}");
        ApiError::Unreachable
    })?;

    let body = response.text().await.map_err(|err| {
        logging::warn!("reading the answer to POST {CHAT_URL} failed: {err}");
        ApiError::Unreachable
    })?;

    if !response.ok() {
        return Err(ApiError::from_response(response.status(), &response.status_text(), &body));
    }
    serde_json::from_str(&body).map_err(|err| {
        logging::warn!("unexpected answer to POST {CHAT_URL}: {err}");
        ApiError::Unreadable
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_message_is_shown_as_is() {
        let error = ApiError::from_response(
            503,
            "Service Unavailable",
            r#"{"code":"provider_unavailable","message":"The language model did not answer in time."}"#,
        );
        assert_eq!(error.code(), Some(ErrorCode::ProviderUnavailable));
        assert_eq!(error.to_string(), "The language model did not answer in time.");
    }

    #[test]
    fn codes_newer_than_the_app_still_show_their_message() {
        let error = ApiError::from_response(400, "", r#"{"code":"brand_new","message":"Try again."}"#);
        assert_eq!(error.code(), Some(ErrorCode::Unknown));
        assert_eq!(error.to_string(), "Try again.");
    }

    #[test]
    fn a_body_that_is_not_an_error_body_falls_back_to_the_status() {
        let error = ApiError::from_response(502, "Bad Gateway", "<html>nginx</html>");
        assert_eq!(error.code(), None);
        assert_eq!(error.to_string(), "The server answered 502 Bad Gateway.");
    }

    #[test]
    fn an_empty_status_text_uses_the_standard_reason() {
        let error = ApiError::from_response(502, "", "");
        assert_eq!(error.to_string(), "The server answered 502 Bad Gateway.");
    }

    #[test]
    fn an_unknown_status_without_text_shows_the_number() {
        assert_eq!(ApiError::from_response(599, "", "").to_string(), "The server answered 599.");
    }

    #[test]
    fn an_empty_error_message_falls_back_to_the_status() {
        let error = ApiError::from_response(500, "", r#"{"code":"internal","message":" "}"#);
        assert_eq!(error.code(), Some(ErrorCode::Internal));
        assert_eq!(error.to_string(), "The server answered 500 Internal Server Error.");
    }

    #[test]
    fn network_failure_wording() {
        assert_eq!(ApiError::Unreachable.to_string(), "Can't reach the Parlance server.");
    }
}
