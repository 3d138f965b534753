//! The API contract between the Parlance server and its clients.
//!
//! Only serde types live here, so the crate compiles for `wasm32-unknown-unknown` (the web app) and for
//! native targets (the server, tests, other Rust clients) alike. JSON field names are `snake_case`; enums are
//! tagged with a `type` or `code` string so clients in any language can switch on them.

mod account;
mod archive;
mod error;
mod health;
mod knowledge;
pub mod openai;
mod session;
mod stream;
mod turn;
mod voice;

pub use account::Account;
pub use archive::{ArchiveEntry, ArchivedAudio, SessionArchive};
pub use error::{ErrorBody, ErrorCode};
pub use health::{Health, HealthStatus, HealthSummary, Stage, StageHealth};
pub use knowledge::{
    AddNotesRequest, AddNotesResponse, KNOWLEDGE_FILE_FIELD, KnowledgeSearchQuery, KnowledgeSearchResponse, NewNote, Note, NoteOrder,
    NotePage, NotePageQuery, NoteSummary,
};
pub use session::{
    HistoryTurn, MAX_SESSION_TITLE_CHARS, RenameSession, Role, SessionHistory, SessionId, SessionPage, SessionPageQuery, SessionSummary,
};
pub use stream::{AudioEncoding, ClientMessage, IgnoredSpeech, ServerEvent, TurnDetection, TurnState};
pub use turn::{AudioClip, KnowledgeSource, SPEECH_RATE_RANGE, StageTimings, TextTurnRequest, ToolCallRecord, TurnResponse};
pub use voice::{MAX_VOICE_ID_CHARS, VoiceInfo, VoiceList};

/// The version of the socket protocol and the shared types, announced in `GET /health` (`protocol`) and in
/// the socket's first event (`hello`). It goes up by one with every breaking change (README: Versioning);
/// additions a client may ignore (a new optional field, a new event type, a new status or error code) keep it.
pub const PROTOCOL_VERSION: u32 = 1;

/// Name of the multipart field that carries the recorded question in `POST /api/voice`.
pub const VOICE_AUDIO_FIELD: &str = "audio";
/// Name of the optional multipart field that continues an existing conversation in `POST /api/voice`.
pub const VOICE_SESSION_FIELD: &str = "session_id";
/// Name of the optional multipart field with the voice to answer in (`POST /api/voice`; see `GET /api/voices`).
pub const VOICE_VOICE_FIELD: &str = "voice";
/// Name of the optional multipart field with the speaking rate (`POST /api/voice`; 0.5 to 2).
pub const VOICE_RATE_FIELD: &str = "speech_rate";
