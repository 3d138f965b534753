use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use parlance_shared::{SessionHistory, SessionId};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /api/sessions/{id}`: the remembered conversation, oldest first.
pub async fn history(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<SessionHistory>, ApiError> {
    let session_id = SessionId::new(id);
    let turns = state.pipeline.sessions.history(&session_id).await?.ok_or_else(|| ApiError::SessionNotFound(session_id.clone()))?;
    Ok(Json(SessionHistory { session_id, turns }))
}

/// `DELETE /api/sessions/{id}`: forget the conversation for good.
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let session_id = SessionId::new(id);
    if state.pipeline.sessions.delete(&session_id).await? {
        tracing::info!(%session_id, "conversation deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::SessionNotFound(session_id))
    }
}
