use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use parlance_shared::{Account, ErrorBody, SessionHistory, SessionId};

use super::error::ApiError;
use crate::access::Caller;
use crate::sessions::visible_to;
use crate::state::AppState;

/// The conversation `id`, if the caller may reach it; someone else's is answered as not found.
pub(super) async fn own_session(state: &AppState, caller: &Caller, id: SessionId) -> Result<SessionId, ApiError> {
    if visible_to(state.sessions.as_ref(), &id, caller).await? { Ok(id) } else { Err(ApiError::SessionNotFound(id)) }
}

/// `GET /api/sessions/{id}`: the remembered conversation, oldest first.
#[utoipa::path(get, path = "/api/sessions/{id}", tag = "sessions", params(("id" = String, Path, description = "A session id from a turn response")),
    responses((status = 200, body = SessionHistory), (status = 404, description = "Unknown session", body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SessionHistory>, ApiError> {
    let session_id = own_session(&state, &caller, SessionId::new(id)).await?;
    let turns = state.pipeline.history(&session_id).await?.ok_or_else(|| ApiError::SessionNotFound(session_id.clone()))?;
    Ok(Json(SessionHistory { session_id, turns }))
}

/// `DELETE /api/sessions/{id}`: forget the conversation for good.
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "sessions", params(("id" = String, Path, description = "A session id from a turn response")),
    responses((status = 204, description = "Forgotten"), (status = 404, description = "Unknown session", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session_id = own_session(&state, &caller, SessionId::new(id)).await?;
    if state.pipeline.forget(&session_id).await? {
        tracing::info!(%session_id, "conversation deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::SessionNotFound(session_id))
    }
}

/// `GET /api/account`: who the token names (401 without a valid one, like every `/api` route).
#[utoipa::path(get, path = "/api/account", tag = "sessions",
    responses((status = 200, body = Account), (status = 401, description = "No token, or a wrong one", body = ErrorBody)))]
pub async fn account(Extension(caller): Extension<Caller>) -> Json<Account> {
    Json(Account { name: caller.owner().map(str::to_owned), admin: caller.is_admin() })
}
