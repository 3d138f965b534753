//! `GET /api/ws`: the streaming conversation's socket. The conversation itself is `crate::streaming`'s; this
//! file reads the frames, hands them over, and sends the replies in the wire's words (see
//! `parlance_shared::stream`). It also keeps the socket healthy: a few sockets per client, pings that must be
//! answered, a close after a long silence, and a clear close for a message too large to read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use parlance_shared::{ErrorBody, PROTOCOL_VERSION, ServerEvent};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::Instrument as _;

use super::error::{ApiError, LONG_ECHO, echo, socket_error_body};
use super::rate_limit::client_ip;
use crate::access::{self, Caller, HostPolicy};
use crate::budget::SocketSlot;
use crate::config::SocketSettings;
use crate::shutdown::Shutdown;
use crate::state::AppState;
use crate::streaming::{Connection, Reply};
use crate::telemetry::{OpenSocket, Telemetry};
use tokio_util::task::task_tracker::TaskTrackerToken;

/// Room for the JSON around the largest audio frame.
const FRAME_OVERHEAD: usize = 64 * 1024;
/// After refusing a message too large to read, how long the connection stays open so the client can read
/// why: closing it while the client's upload still arrives resets it, and a reset can overtake what was sent.
const LINGER_AFTER_REFUSAL: Duration = Duration::from_millis(500);

/// Documented for the upgrade only: what flows over the socket is in `/api/schema/socket.json`.
#[utoipa::path(get, path = "/api/ws", tag = "turns",
    responses(
        (status = 101, description = "Switched to the WebSocket protocol (subprotocol `parlance`): `ClientMessage`s in, `ServerEvent`s out, `hello` first"),
        (status = 400, description = "Not a WebSocket handshake", body = ErrorBody),
        (status = 401, description = "No token, or a wrong one", body = ErrorBody),
        (status = 403, description = "A page from another site", body = ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = ErrorBody),
        (status = 429, description = "This client has as many sockets open as it may", body = ErrorBody),
    ))]
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
    let Some(slot) = state.socket_slots.take(client) else {
        let limit = state.socket_slots.limit().unwrap_or_default();
        tracing::info!(%client, limit, "refused a socket: the client has as many open as it may");
        return ApiError::TooManySockets { limit }.into_response();
    };
    let limit = state.max_upload_bytes.saturating_add(FRAME_OVERHEAD);
    let connection = Connection::new(state.pipeline.clone(), state.turn_budget.clone(), client, state.max_upload_bytes)
        .for_caller(caller, Arc::clone(&state.sessions));
    // Every line the socket logs (and its turns, within) names it.
    let span = tracing::info_span!("socket", socket_id = %short_id(), %client);
    span.in_scope(|| tracing::info!("socket opened"));
    let upkeep = Upkeep {
        settings: state.sockets,
        max_message_bytes: limit,
        _open: state.telemetry.socket_opened(),
        telemetry: Arc::clone(&state.telemetry),
        shutdown: state.shutdown.clone(),
        _open_until_stopped: state.shutdown.socket_open(),
        _slot: slot,
    };
    // Only `parlance` is accepted: the token, offered as a second protocol, is never echoed back.
    upgrade
        .protocols([access::SOCKET_PROTOCOL])
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve(socket, connection, upkeep).instrument(span))
}

/// Enough to tell a client's sockets apart in the log.
fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string().chars().take(12).collect()
}

/// What keeps one socket healthy, and its client's slot, held while it is open.
struct Upkeep {
    settings: SocketSettings,
    max_message_bytes: usize,
    /// Counted in the open sockets while it lives.
    _open: OpenSocket,
    telemetry: Arc<Telemetry>,
    shutdown: Shutdown,
    /// Stopping the server waits for it.
    _open_until_stopped: TaskTrackerToken,
    _slot: SocketSlot,
}

/// The close reason when the server stops.
const GOING_AWAY: &str = "the server is shutting down; reconnect in a few seconds";

/// Serves one socket until the client leaves, stops answering pings, or sends nothing for too long while
/// nothing is being answered. Leaving mid-turn stops the turn: dropping the connection aborts its task. When
/// the server stops, the socket closes (1001) once it has nothing left to answer, or when its turn is cut.
async fn serve(socket: WebSocket, mut connection: Connection, upkeep: Upkeep) {
    let (mut outgoing, mut incoming) = socket.split();
    // Before anything else, so a client can tell at once whether it speaks this server's protocol.
    if send(&mut outgoing, &ServerEvent::Hello { protocol: PROTOCOL_VERSION }).await.is_err() {
        tracing::debug!("client left");
        return;
    }
    let mut pings = upkeep.settings.ping.map(|every| {
        let mut pings = tokio::time::interval_at(Instant::now() + every, every);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        pings
    });
    // A ping went out and the client has sent nothing since.
    let mut unanswered = false;
    // The last message from the client, or event to it.
    let mut last_activity = Instant::now();
    // The server is stopping: close once nothing is being answered.
    let mut stopping = false;
    loop {
        let quiet_until = upkeep.settings.idle.map(|idle| last_activity + idle);
        let replies = tokio::select! {
            message = incoming.next() => {
                // Anything the client sends shows it is there, a pong or otherwise.
                unanswered = false;
                match message {
                    Some(Ok(Message::Text(text))) => {
                        last_activity = Instant::now();
                        connection.on_message(text.as_str()).await
                    }
                    Some(Ok(Message::Binary(frame))) => {
                        last_activity = Instant::now();
                        connection.on_audio(&frame)
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(error)) => {
                        refuse_unreadable(&mut outgoing, error, &upkeep).await;
                        break;
                    }
                }
            }
            Some(step) = connection.next_turn_event() => {
                last_activity = Instant::now();
                connection.take(step).await
            }
            () = upkeep.shutdown.stopping(), if !stopping => {
                stopping = true;
                vec![]
            }
            () = upkeep.shutdown.cutting(), if connection.is_answering() => connection.cut_short().await,
            () = next_ping(&mut pings) => {
                if unanswered {
                    tracing::info!("closing a socket that did not answer a ping");
                    close(&mut outgoing, close_code::POLICY, "no answer to the last ping").await;
                    break;
                }
                unanswered = true;
                if outgoing.send(Message::Ping(Bytes::new())).await.is_err() {
                    tracing::debug!("client left");
                    return;
                }
                continue;
            }
            () = until(quiet_until) => {
                if connection.is_answering() {
                    // The client waits for an answer (in line, perhaps): that is not silence.
                    last_activity = Instant::now();
                    continue;
                }
                let idle = upkeep.settings.idle.unwrap_or_default().as_secs();
                tracing::info!(idle_secs = idle, "closing an idle socket");
                close(&mut outgoing, close_code::NORMAL, &format!("idle: no message for {idle} s; reconnect to go on")).await;
                break;
            }
        };
        // What the edge logs about a turn's replies (a failure, say) names the turn.
        let turn_span = match connection.turn_id() {
            Some(turn_id) => tracing::info_span!("turn", %turn_id),
            None => tracing::Span::none(),
        };
        for reply in replies {
            let event = turn_span.in_scope(|| event(reply));
            if let ServerEvent::Error { error } = &event {
                upkeep.telemetry.error(error.code.as_str());
            }
            if send(&mut outgoing, &event).await.is_err() {
                tracing::debug!("client left");
                return;
            }
        }
        if stopping && !connection.is_answering() {
            tracing::info!("closing a socket: the server is shutting down");
            close(&mut outgoing, close_code::AWAY, GOING_AWAY).await;
            break;
        }
    }
}

type Outgoing = futures::stream::SplitSink<WebSocket, Message>;

/// A message the socket could not read ends it: the client is told why, as an `error` event and in the close
/// frame (1009 for a message over the size limit, 1002 for a broken one).
async fn refuse_unreadable(outgoing: &mut Outgoing, error: axum::Error, upkeep: &Upkeep) {
    let max_message_bytes = upkeep.max_message_bytes;
    let error = error.into_inner();
    let too_large = matches!(error.downcast_ref::<tungstenite::Error>(), Some(tungstenite::Error::Capacity(_)));
    let (refusal, code, reason) = if too_large {
        (ApiError::MessageTooLarge { limit_bytes: max_message_bytes }, close_code::SIZE, "message too big")
    } else {
        (ApiError::BrokenMessage(echo(&error.to_string(), LONG_ECHO)), close_code::PROTOCOL, "unreadable message")
    };
    tracing::info!(%error, "closing a socket that sent an unreadable message");
    upkeep.telemetry.error(refusal.code().as_str());
    let _ = send(outgoing, &ServerEvent::Error { error: refusal.body() }).await;
    close(outgoing, code, reason).await;
    tokio::time::sleep(LINGER_AFTER_REFUSAL).await;
}

async fn close(outgoing: &mut Outgoing, code: u16, reason: &str) {
    let _ = outgoing.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

async fn next_ping(pings: &mut Option<Interval>) {
    match pings {
        Some(pings) => {
            pings.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
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

async fn send(outgoing: &mut Outgoing, event: &ServerEvent) -> Result<(), axum::Error> {
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
