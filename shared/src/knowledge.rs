use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::turn::KnowledgeSource;

/// Name of the multipart file field of `POST /api/knowledge` (a `.md` or `.txt` document).
pub const KNOWLEDGE_FILE_FIELD: &str = "file";

/// One note to add to the knowledge base. Long text is split into overlapping chunks on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewNote {
    pub title: String,
    /// Plain text or Markdown; headings and paragraphs guide the chunking.
    pub text: String,
    /// Where the note came from (a file name, a URL, `remember`); shown with search hits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `POST /api/knowledge` as JSON: one or more notes, stored together or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddNotesRequest {
    pub notes: Vec<NewNote>,
}

/// A stored note as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoteSummary {
    /// Use it with `DELETE /api/knowledge/{id}`.
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How many searchable pieces the note was split into.
    pub chunks: u32,
    pub created_at: DateTime<Utc>,
    /// Set on a memory the assistant keeps for one user (they asked it to remember something): only that user
    /// finds it, and may delete it. Absent on the shared notes, which every user's questions draw on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// The answer to `POST /api/knowledge`. A note whose exact content is already stored is not stored twice:
/// it is listed with its existing id and counted in `unchanged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddNotesResponse {
    pub notes: Vec<NoteSummary>,
    pub added: u32,
    pub unchanged: u32,
}

/// `GET /api/knowledge`: one page of notes, in the order asked for (oldest first by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotePage {
    pub notes: Vec<NoteSummary>,
    /// Notes in the whole knowledge base.
    pub total: u64,
    pub offset: u64,
    pub limit: u32,
}

/// Query parameters of `GET /api/knowledge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct NotePageQuery {
    /// Notes to skip. Default 0.
    #[serde(default)]
    pub offset: u64,
    /// Notes per page, 1 to 100. Default 20.
    #[serde(default = "default_page_size")]
    pub limit: u32,
    /// `oldest` (default) or `newest` first.
    #[serde(default)]
    pub order: NoteOrder,
}

/// The order `GET /api/knowledge` lists notes in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NoteOrder {
    #[default]
    Oldest,
    Newest,
}

/// `GET /api/knowledge/{id}`: one note and its text, as the passages it was split into (in order; neighbouring
/// passages repeat a little of each other so a fact cut at the seam stays whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Note {
    pub note: NoteSummary,
    pub passages: Vec<String>,
}

fn default_page_size() -> u32 {
    20
}

impl Default for NotePageQuery {
    fn default() -> Self {
        Self { offset: 0, limit: default_page_size(), order: NoteOrder::Oldest }
    }
}

/// Query parameters of `GET /api/knowledge/search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct KnowledgeSearchQuery {
    /// What to look for, in words: a question, a phrase, or an exact term such as an error code.
    pub q: String,
    /// How many notes to return, 1 to 50. Default 5.
    #[serde(default = "default_hits")]
    pub k: u32,
}

fn default_hits() -> u32 {
    5
}

/// `GET /api/knowledge/search`: the best-matching notes, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KnowledgeSearchResponse {
    pub query: String,
    /// One hit per note (its best passage); `id` is the note id, `score` the fused rank score.
    pub hits: Vec<KnowledgeSource>,
}
