use axum::Json;
use axum::extract::State;
use parlance_shared::{ErrorBody, TextTurnRequest, TurnResponse};

use super::error::ApiError;
use super::extract::ApiJson;
use crate::events::EventSink;
use crate::state::AppState;

/// `POST /api/chat`: a typed question, answered in text and (unless `speak` is false) speech.
#[utoipa::path(post, path = "/api/chat", tag = "turns", request_body = TextTurnRequest,
    responses(
        (status = 200, description = "The answer", body = TurnResponse),
        (status = 400, description = "Malformed JSON or an empty question", body = ErrorBody),
        (status = 404, description = "Unknown session", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape", body = ErrorBody),
        (status = 429, description = "Too many turns; see Retry-After", body = ErrorBody),
        (status = 502, description = "A model provider failed", body = ErrorBody),
        (status = 503, description = "A provider is unavailable or a stage is not configured", body = ErrorBody),
    ))]
pub async fn chat(State(state): State<AppState>, ApiJson(request): ApiJson<TextTurnRequest>) -> Result<Json<TurnResponse>, ApiError> {
    let turn = state.pipeline.text_turn(request.session_id, &request.text, request.speak, &EventSink::none()).await?;
    Ok(Json(super::turn_response(turn)))
}
