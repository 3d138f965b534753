use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::{Extension, Json};
use parlance_shared::{
    Account, ArchiveEntry, ArchivedAudio, ErrorBody, MAX_SESSION_TITLE_CHARS, RenameSession, SessionArchive, SessionHistory, SessionId,
    SessionPage, SessionPageQuery, SessionSummary,
};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

use super::error::ApiError;
use super::extract::ApiJson;
use crate::access::Caller;
use crate::archive::{AudioInfo, Entry, Side};
use crate::sessions::visible_to;
use crate::state::AppState;

/// The conversation `id`, if the caller may reach it; someone else's is answered as not found.
pub(super) async fn own_session(state: &AppState, caller: &Caller, id: SessionId) -> Result<SessionId, ApiError> {
    if visible_to(state.sessions.as_ref(), &id, caller).await? { Ok(id) } else { Err(ApiError::SessionNotFound(id)) }
}

/// `GET /api/sessions`: the caller's conversations, most recently used first, a page at a time.
#[utoipa::path(get, path = "/api/sessions", tag = "sessions", params(SessionPageQuery),
    responses((status = 200, body = SessionPage), (status = 400, description = "A bad offset or limit", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<SessionPageQuery>, QueryRejection>,
) -> Result<Json<SessionPage>, ApiError> {
    let Query(page) = query.map_err(|rejection| ApiError::bad_query(&rejection))?;
    if !(1..=super::knowledge::MAX_PAGE).contains(&page.limit) {
        return Err(ApiError::InvalidRequest(format!("limit must be between 1 and {}", super::knowledge::MAX_PAGE)));
    }
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let (sessions, total) = crate::sessions::list(state.sessions.as_ref(), &caller, offset, page.limit as usize).await?;
    Ok(Json(SessionPage { sessions, total: total as u64, offset: page.offset, limit: page.limit }))
}

/// `PATCH /api/sessions/{id}`: gives the conversation a name (listed instead of its first question).
#[utoipa::path(patch, path = "/api/sessions/{id}", tag = "sessions", request_body = RenameSession,
    params(("id" = String, Path, description = "A session id from a turn response or the list")),
    responses(
        (status = 200, description = "Renamed", body = SessionSummary),
        (status = 400, description = "An empty or too long title", body = ErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (no `title`)", body = ErrorBody),
        (status = 404, description = "Unknown session", body = ErrorBody),
    ))]
pub async fn rename(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RenameSession>,
) -> Result<Json<SessionSummary>, ApiError> {
    let title = request.title.trim();
    if title.is_empty() {
        return Err(ApiError::InvalidRequest("the title is empty; give the conversation a name".into()));
    }
    if title.chars().count() > MAX_SESSION_TITLE_CHARS {
        return Err(ApiError::InvalidRequest(format!("a title has at most {MAX_SESSION_TITLE_CHARS} characters")));
    }
    if title.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest("a title is one line of text, without control characters".into()));
    }
    let session_id = own_session(&state, &caller, SessionId::new(id)).await?;
    if !state.sessions.rename(&session_id, title).await? {
        return Err(ApiError::SessionNotFound(session_id));
    }
    let briefs = state.sessions.briefs().await?;
    let brief = briefs.into_iter().find(|brief| brief.id == session_id).ok_or_else(|| ApiError::SessionNotFound(session_id.clone()))?;
    tracing::info!(%session_id, "conversation renamed");
    Ok(Json(brief.summary()))
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

/// `GET /api/sessions/{id}/archive`: the conversation's archived turns (`--archive-dir`), oldest first.
#[utoipa::path(get, path = "/api/sessions/{id}/archive", tag = "sessions", params(("id" = String, Path, description = "A session id from a turn response")),
    responses(
        (status = 200, description = "The archived turns: transcripts and links to their audio", body = SessionArchive),
        (status = 404, description = "Unknown session (session_not_found), or this server keeps no archive (not_found)", body = ErrorBody),
    ))]
pub async fn archive(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SessionArchive>, ApiError> {
    let session_id = own_session(&state, &caller, SessionId::new(id)).await?;
    let entries = state.pipeline.archived(&session_id).await?;
    if entries.is_empty() && state.pipeline.history(&session_id).await?.is_none() {
        return Err(ApiError::SessionNotFound(session_id));
    }
    let entries = entries.into_iter().map(|entry| archive_entry(&session_id, entry)).collect();
    Ok(Json(SessionArchive { session_id, entries }))
}

/// `GET /api/sessions/{id}/archive/{turn}/{side}`: an archived recording, as it was kept.
#[utoipa::path(get, path = "/api/sessions/{id}/archive/{turn}/{side}", tag = "sessions",
    params(
        ("id" = String, Path, description = "A session id from a turn response"),
        ("turn" = String, Path, description = "A `turn_id` from the session's archive"),
        ("side" = String, Path, description = "`question` (the recording received) or `answer` (the spoken answer)"),
    ),
    responses(
        (status = 200, description = "The recording, with its type (WAV, WebM, Ogg, MP4, MP3 or FLAC); ranges are supported",
            content(("audio/wav"), ("audio/webm"), ("audio/ogg"), ("audio/mp4"), ("audio/mpeg"), ("audio/flac"))),
        (status = 404, description = "Unknown session, no archive on this server, or no such recording", body = ErrorBody),
    ))]
pub async fn archived_audio(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, turn, side)): Path<(String, String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let session_id = own_session(&state, &caller, SessionId::new(id)).await?;
    let side = Side::parse(&side)
        .ok_or_else(|| ApiError::NotFound(format!("an archived turn has `question` and `answer` audio, not {side:?}")))?;
    let file = state.pipeline.archived_audio(&session_id, &turn, side).await?;
    let response = match ServeFile::new(&file.path).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if response.status() == StatusCode::NOT_FOUND {
        // Swept or deleted since it was found.
        return Err(ApiError::NotFound(format!("this conversation has no archived {} audio for turn {turn:?}", side.as_str())));
    }
    let mut response = response.map(Body::new);
    let headers = response.headers_mut();
    let mime_type = HeaderValue::from_str(&file.mime_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, mime_type);
    // Someone's voice: never kept by a shared cache or the browser's disk cache.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

/// An archived turn in the wire's shape, with links to its audio.
fn archive_entry(session_id: &SessionId, entry: Entry) -> ArchiveEntry {
    let link = |side: Side, audio: AudioInfo| ArchivedAudio {
        url: format!("/api/sessions/{session_id}/archive/{}/{}", entry.id, side.as_str()),
        mime_type: audio.mime_type,
        bytes: audio.bytes,
    };
    ArchiveEntry {
        question_audio: entry.question_audio.clone().map(|audio| link(Side::Question, audio)),
        answer_audio: entry.answer_audio.clone().map(|audio| link(Side::Answer, audio)),
        turn_id: entry.id.to_string(),
        asked_at: entry.asked_at,
        answered_at: entry.answered_at,
        question: entry.question,
        answer: entry.answer,
        interrupted: entry.interrupted,
    }
}
