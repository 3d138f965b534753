//! The streaming conversation behind `GET /api/ws`: audio frames in, events out as the turn goes, sentence by
//! sentence speech, and barge-in. The protocol types are in `parlance_shared::stream`.

mod connection;
mod early;
mod pauses;
mod recording;
mod turn;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::{SinkExt, StreamExt};
use parlance_shared::{ErrorBody, ErrorCode, ServerEvent};

pub use self::connection::{Connection, ProtocolError};
pub use self::recording::{Recording, RecordingError};

/// Serves one socket until the client leaves. Leaving mid-turn stops the turn: dropping the connection aborts
/// its task.
pub async fn serve(socket: WebSocket, mut connection: Connection) {
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
            Some(event) = connection.next_turn_event() => vec![event],
        };
        for event in &replies {
            if send(&mut outgoing, event).await.is_err() {
                tracing::debug!("client left");
                return;
            }
        }
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
