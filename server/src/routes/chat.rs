use axum::extract::State;
use axum::{Extension, Json};
use parlance_shared::{ErrorBody, TextTurnRequest, TurnResponse};

use super::error::ApiError;
use super::extract::ApiJson;
use crate::access::Caller;
use crate::events::EventSink;
use crate::sessions::claim;
use crate::state::AppState;
use crate::tts::{Delivery, SpeechRate};

/// `POST /api/chat`: a typed question, answered in text and (unless `speak` is false) speech.
#[utoipa::path(post, path = "/api/chat", tag = "turns", request_body = TextTurnRequest,
    responses(
        (status = 200, description = "The answer", body = TurnResponse),
        (status = 400, description = "Malformed JSON, an empty question, a speech_rate out of range or an unknown voice", body = ErrorBody),
        (status = 404, description = "Unknown session", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape", body = ErrorBody),
        (status = 429, description = "Too many turns; see Retry-After", body = ErrorBody),
        (status = 502, description = "A model provider failed", body = ErrorBody),
        (status = 503, description = "A provider is unavailable, a stage is not configured, or as many turns run and wait as may (server_busy; see Retry-After)", body = ErrorBody),
        (status = 504, description = "A model provider did not answer in time", body = ErrorBody),
    ))]
pub async fn chat(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<TextTurnRequest>,
) -> Result<Json<TurnResponse>, ApiError> {
    let session_id = match request.session_id {
        Some(id) => Some(super::sessions::own_session(&state, &caller, id).await?),
        None => None,
    };
    let rate = SpeechRate::from_client(request.speech_rate).map_err(ApiError::InvalidRequest)?;
    let voice = state.pipeline.choose_voice(request.voice.as_deref()).map_err(ApiError::InvalidRequest)?;
    let new = session_id.is_none();
    let speech = request.speak.then_some(Delivery { rate, voice });
    let turn = state.pipeline.text_turn(session_id, &caller, &request.text, speech, &EventSink::none()).await?;
    if new {
        claim(state.sessions.as_ref(), &turn.session_id, &caller).await?;
    }
    Ok(Json(super::turn_response(turn)))
}
