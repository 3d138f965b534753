use axum::Json;
use axum::extract::State;
use parlance_shared::{TextTurnRequest, TurnResponse};

use super::extract::ApiJson;
use crate::error::ApiError;
use crate::events::EventSink;
use crate::state::AppState;

/// `POST /api/chat`: a typed question, answered in text and (unless `speak` is false) speech.
pub async fn chat(State(state): State<AppState>, ApiJson(request): ApiJson<TextTurnRequest>) -> Result<Json<TurnResponse>, ApiError> {
    let response = state.pipeline.text_turn(request.session_id, &request.text, request.speak, &EventSink::none()).await?;
    Ok(Json(response))
}
