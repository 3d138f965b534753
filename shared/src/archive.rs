use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::session::SessionId;

/// `GET /api/sessions/{id}/archive`: what the server's opt-in audio archive (`--archive-dir`) keeps of a
/// conversation, oldest turn first. Only turns that had audio (spoken questions, spoken answers) are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionArchive {
    pub session_id: SessionId,
    pub entries: Vec<ArchiveEntry>,
}

/// One archived turn: its transcript and links to its audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchiveEntry {
    /// Names the turn in the audio links; sorts in the order the turns were asked.
    pub turn_id: String,
    /// When the user finished asking.
    pub asked_at: DateTime<Utc>,
    /// When the answer was complete (or cut off).
    pub answered_at: DateTime<Utc>,
    /// What the user said (the transcript of a spoken question, the text of a typed one).
    pub question: String,
    /// The answer; when `interrupted`, only the part that was played.
    pub answer: String,
    /// The user cut the answer off: `answer` and its audio hold only what was played.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// The question's recording as it was received (a raw PCM16 stream as WAV); absent for a typed question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_audio: Option<ArchivedAudio>,
    /// The spoken answer (a streamed answer's sentences joined); absent when it was not spoken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_audio: Option<ArchivedAudio>,
}

/// An archived recording, fetched from `url` with the same sign-in as the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchivedAudio {
    /// `/api/sessions/{id}/archive/{turn_id}/question` or `.../answer`.
    pub url: String,
    /// For example `audio/wav` or `audio/webm`; the download carries it as its `Content-Type`.
    pub mime_type: String,
    /// The file's size.
    pub bytes: u64,
}
