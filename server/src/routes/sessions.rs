use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use parlance_shared::{ErrorBody, SessionHistory, SessionId};

use super::error::ApiError;
use crate::state::AppState;

/// `GET /api/sessions/{id}`: the remembered conversation, oldest first.
#[utoipa::path(get, path = "/api/sessions/{id}", tag = "sessions", params(("id" = String, Path, description = "A session id from a turn response")),
    responses((status = 200, body = SessionHistory), (status = 404, description = "Unknown session", body = ErrorBody)))]
pub async fn history(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<SessionHistory>, ApiError> {
    let session_id = SessionId::new(id);
    let turns = state.pipeline.history(&session_id).await?.ok_or_else(|| ApiError::SessionNotFound(session_id.clone()))?;
    Ok(Json(SessionHistory { session_id, turns }))
}

/// `DELETE /api/sessions/{id}`: forget the conversation for good.
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "sessions", params(("id" = String, Path, description = "A session id from a turn response")),
    responses((status = 204, description = "Forgotten"), (status = 404, description = "Unknown session", body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let session_id = SessionId::new(id);
    if state.pipeline.forget(&session_id).await? {
        tracing::info!(%session_id, "conversation deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::SessionNotFound(session_id))
    }
}
