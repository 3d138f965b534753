//! `GET /api/ws`: the streaming conversation's socket. The conversation itself is `crate::streaming`'s; this
//! file reads the frames, hands them over, and sends the replies in the wire's words (see
//! `parlance_shared::stream`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use parlance_shared::{ErrorBody, ErrorCode, ServerEvent};

use super::error::{ApiError, socket_error_body};
use super::rate_limit::client_ip;
use crate::access::{self, Caller, HostPolicy};
use crate::state::AppState;
use crate::streaming::{Connection, Reply};

/// Room for the JSON around the largest audio frame.
const FRAME_OVERHEAD: usize = 64 * 1024;

pub async fn socket(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let message = format!("this endpoint is a WebSocket: connect with a WebSocket client ({})", rejection.body_text());
            return ApiError::Rejected { status: rejection.status(), message }.into_response();
        }
    };
    // Browsers let any page open a socket to any host, with no preflight: the same rule as for requests that
    // change something (the guard checked the host name already).
    if !origin_allowed(&headers, &state.access.hosts) {
        let message = "this page's origin may not open the Parlance socket; add it to PARLANCE_CORS_ORIGINS".to_owned();
        return ApiError::Forbidden(message).into_response();
    }
    let client = client_ip(&state.access.proxies, peer.map(|Extension(ConnectInfo(address))| address.ip()), &headers);
    let limit = state.max_upload_bytes.saturating_add(FRAME_OVERHEAD);
    let connection = Connection::new(state.pipeline.clone(), state.turn_budget.clone(), client, state.max_upload_bytes)
        .for_caller(caller, Arc::clone(&state.sessions));
    tracing::info!(%client, "socket opened");
    // Only `parlance` is accepted: the token, offered as a second protocol, is never echoed back.
    upgrade
        .protocols([access::SOCKET_PROTOCOL])
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve(socket, connection))
}

/// Serves one socket until the client leaves. Leaving mid-turn stops the turn: dropping the connection aborts
/// its task.
async fn serve(socket: WebSocket, mut connection: Connection) {
    let (mut outgoing, mut incoming) = socket.split();
    loop {
        let replies = tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Message::Text(text))) => connection.on_message(text.as_str()).await,
                Some(Ok(Message::Binary(frame))) => connection.on_audio(&frame),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(error)) => {
                    // Typically a frame over the size limit; the socket cannot be read past it.
                    tracing::info!(%error, "closing a socket that sent an unreadable message");
                    let message = format!("the socket could not read the last message ({error}); reconnect and keep each message within the upload limit");
                    let _ = send(&mut outgoing, &ServerEvent::Error { error: ErrorBody::new(ErrorCode::InvalidRequest, message) }).await;
                    let _ = outgoing.send(Message::Close(Some(CloseFrame { code: close_code::PROTOCOL, reason: "unreadable message".into() }))).await;
                    break;
                }
            },
            Some(reply) = connection.next_turn_event() => vec![reply],
        };
        for reply in replies {
            if send(&mut outgoing, &event(reply)).await.is_err() {
                tracing::debug!("client left");
                return;
            }
        }
    }
}

/// A reply of the connection as the wire says it.
fn event(reply: Reply) -> ServerEvent {
    match reply {
        Reply::Event(event) => event,
        Reply::Done(turn) => super::done_event(turn),
        Reply::Failed(error) => ServerEvent::Error { error: socket_error_body(error) },
    }
}

async fn send(outgoing: &mut futures::stream::SplitSink<WebSocket, Message>, event: &ServerEvent) -> Result<(), axum::Error> {
    match serde_json::to_string(event) {
        Ok(json) => outgoing.send(Message::Text(json.into())).await,
        Err(error) => {
            tracing::error!(%error, "an event could not be written as JSON");
            Ok(())
        }
    }
}

/// No `Origin` (not a browser), the server's own origin, or a listed one.
fn origin_allowed(headers: &HeaderMap, policy: &HostPolicy) -> bool {
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    super::guard::same_site(headers, host, policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_the_app_itself_listed_origins_and_non_browsers_may_connect() {
        let listed = HostPolicy::new(&[], &["https://app.example".to_owned()]);
        assert!(origin_allowed(&headers(None, "127.0.0.1:8080"), &listed));
        assert!(origin_allowed(&headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"), &listed));
        assert!(origin_allowed(&headers(Some("https://app.example"), "127.0.0.1:8080"), &listed));
        assert!(!origin_allowed(&headers(Some("https://evil.example"), "127.0.0.1:8080"), &listed));
        assert!(!origin_allowed(&headers(Some("http://127.0.0.1:9999"), "127.0.0.1:8080"), &listed));
    }
}
