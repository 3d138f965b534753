//! The knowledge base over HTTP: add notes (JSON or an uploaded document), list, delete, search.

use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::{Extension, Json};
use parlance_shared::{
    AddNotesRequest, AddNotesResponse, ErrorBody, KNOWLEDGE_FILE_FIELD, KnowledgeSearchQuery, KnowledgeSearchResponse, KnowledgeSource,
    NewNote, Note, NotePage, NotePageQuery,
};

use super::error::ApiError;
use crate::access::Caller;
use crate::knowledge::SearchMode;
use crate::knowledge::document;
use crate::state::AppState;

/// Largest document or JSON body accepted: a long manual in Markdown is a few hundred KiB.
pub const KNOWLEDGE_UPLOAD_LIMIT: usize = 2 * 1024 * 1024;
pub const MAX_PAGE: u32 = 100;
pub const MAX_HITS: u32 = 50;

/// `POST /api/knowledge`: notes as JSON, or `.md`/`.txt` files as multipart form data (field `file`).
#[utoipa::path(post, path = "/api/knowledge", tag = "knowledge",
    request_body(description = "JSON `AddNotesRequest`, or multipart/form-data with one or more `file` fields (.md or .txt)",
        content((AddNotesRequest = "application/json"), (super::openapi::DocumentForm = "multipart/form-data"))),
    responses(
        (status = 200, description = "Stored (or already stored) notes", body = AddNotesResponse),
        (status = 400, description = "An empty note, or malformed JSON", body = ErrorBody),
        (status = 413, description = "Body over 2 MiB", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a Markdown/text upload", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape", body = ErrorBody),
        (status = 503, description = "No embeddings model is set up", body = ErrorBody),
    ))]
pub async fn add(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Result<Json<AddNotesResponse>, ApiError> {
    only_admins(&caller)?;
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let notes = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, &()).await.map_err(multipart_rejected)?;
        read_documents(multipart).await?
    } else if content_type.starts_with("application/json") {
        let body = Bytes::from_request(request, &()).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit_bytes: KNOWLEDGE_UPLOAD_LIMIT }
            } else {
                ApiError::InvalidRequest(format!("the request body could not be read: {}", rejection.body_text()))
            }
        })?;
        let Json(request) = Json::<AddNotesRequest>::from_bytes(&body)?;
        request.notes
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "send notes as JSON (content-type application/json) or documents as multipart/form-data".into(),
        ));
    };
    let added = state.knowledge.add(notes).await?;
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(Json(AddNotesResponse { notes: added.notes, added: count(added.added), unchanged: count(added.unchanged) }))
}

/// The notes are shared by every user: only an admin adds them (a user's own memories come from `remember`).
fn only_admins(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin() { Ok(()) } else { Err(ApiError::Forbidden("only an admin may add or delete the shared notes".into())) }
}

fn multipart_rejected(rejection: MultipartRejection) -> ApiError {
    ApiError::not_a_form(&rejection, &format!("send documents as multipart/form-data with file fields named `{KNOWLEDGE_FILE_FIELD}`"))
}

async fn read_documents(mut multipart: Multipart) -> Result<Vec<NewNote>, ApiError> {
    let unreadable = |error| ApiError::upload(error, KNOWLEDGE_UPLOAD_LIMIT);
    let mut notes = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        if field.name() != Some(KNOWLEDGE_FILE_FIELD) {
            continue;
        }
        let name = field.file_name().unwrap_or("upload.txt").to_owned();
        let bytes = field.bytes().await.map_err(unreadable)?;
        notes.push(document::read(&name, &bytes, Some(name.clone()))?);
    }
    if notes.is_empty() {
        return Err(ApiError::InvalidRequest(format!("the form has no `{KNOWLEDGE_FILE_FIELD}` field; attach a .md or .txt file in it")));
    }
    Ok(notes)
}

/// `GET /api/knowledge`: the notes, oldest (or `order=newest`: newest) first, a page at a time.
#[utoipa::path(get, path = "/api/knowledge", tag = "knowledge", params(NotePageQuery),
    responses((status = 200, body = NotePage), (status = 400, description = "A bad offset or limit", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<NotePageQuery>, QueryRejection>,
) -> Result<Json<NotePage>, ApiError> {
    let Query(page) = query.map_err(query_rejected)?;
    if !(1..=MAX_PAGE).contains(&page.limit) {
        return Err(ApiError::InvalidRequest(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let (notes, total) = state.knowledge.list_in(&caller, offset, page.limit as usize, page.order).await?;
    Ok(Json(NotePage { notes, total: total as u64, offset: page.offset, limit: page.limit }))
}

/// `DELETE /api/knowledge/{id}`: removes the note and all its passages from disk. A user deletes their own
/// memories; only an admin deletes a shared note.
#[utoipa::path(delete, path = "/api/knowledge/{id}", tag = "knowledge", params(("id" = String, Path, description = "A note id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "A shared note, and the caller is not an admin", body = ErrorBody),
        (status = 404, description = "Unknown note (or another user's memory)", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.knowledge.delete(&id, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/knowledge/{id}`: one note and its text, to the same callers who find it in a listing.
#[utoipa::path(get, path = "/api/knowledge/{id}", tag = "knowledge", params(("id" = String, Path, description = "A note id")),
    responses(
        (status = 200, body = Note),
        (status = 404, description = "Unknown note (or another user's memory)", body = ErrorBody),
    ))]
pub async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Note>, ApiError> {
    Ok(Json(state.knowledge.get(&id, &caller).await?))
}

/// `GET /api/knowledge/search?q=&k=`: hybrid search (meaning and exact words), one hit per note.
#[utoipa::path(get, path = "/api/knowledge/search", tag = "knowledge", params(KnowledgeSearchQuery),
    responses((status = 200, body = KnowledgeSearchResponse), (status = 400, description = "An empty query or a bad k", body = ErrorBody),
        (status = 502, description = "The embeddings provider failed", body = ErrorBody),
        (status = 503, description = "No embeddings model is set up, or it does not fit the knowledge base", body = ErrorBody),
        (status = 504, description = "The embeddings provider did not answer in time", body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<KnowledgeSearchQuery>, QueryRejection>,
) -> Result<Json<KnowledgeSearchResponse>, ApiError> {
    let Query(request) = query.map_err(query_rejected)?;
    let text = request.q.trim();
    if text.is_empty() {
        return Err(ApiError::InvalidRequest("the query `q` is empty; say what to look for".into()));
    }
    if !(1..=MAX_HITS).contains(&request.k) {
        return Err(ApiError::InvalidRequest(format!("k must be between 1 and {MAX_HITS}")));
    }
    let hits = state.knowledge.search(&caller, text, request.k as usize, SearchMode::Hybrid).await?;
    let hits =
        hits.into_iter().map(|hit| KnowledgeSource { id: hit.note_id, title: hit.title, snippet: hit.snippet, score: hit.score }).collect();
    Ok(Json(KnowledgeSearchResponse { query: text.to_owned(), hits }))
}

fn query_rejected(rejection: QueryRejection) -> ApiError {
    ApiError::bad_query(&rejection)
}
