use serde::{Deserialize, Serialize};

use crate::error::ErrorBody;
use crate::session::SessionId;

/// `POST /api/chat`: a typed question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextTurnRequest {
    /// Continue this conversation; omit to start a new one (the response carries the new id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    pub text: String,
    /// Also speak the answer (`audio` in the response). Defaults to `true`; text-only clients send `false`.
    #[serde(default = "speak_by_default")]
    pub speak: bool,
    /// How fast to speak the answer, relative to the voice's own pace (0.5 to 2; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_rate: Option<f32>,
    /// Which voice speaks the answer (an `id` from `GET /api/voices`); omit for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
}

/// The speaking rates a client may ask for (`speech_rate`): 2 speaks twice as fast, 0.5 half as fast.
pub const SPEECH_RATE_RANGE: std::ops::RangeInclusive<f32> = 0.5..=2.0;

fn speak_by_default() -> bool {
    true
}

/// The answer to one turn, typed or spoken. `POST /api/chat` and `POST /api/voice` both return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TurnResponse {
    pub session_id: SessionId,
    /// What the user said (the transcript of a spoken turn, the text of a typed one).
    pub transcript: String,
    pub answer: String,
    /// The spoken answer. Absent when speech is turned off or synthesis failed (see `speech_error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioClip>,
    /// Why `audio` is missing although speech was expected; the text answer is still valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_error: Option<ErrorBody>,
    /// Knowledge the answer drew on.
    #[serde(default)]
    pub sources: Vec<KnowledgeSource>,
    /// Tools the assistant called while answering, in order.
    #[serde(default)]
    pub tool_calls: Vec<ToolCallRecord>,
    pub timings: StageTimings,
}

/// Encoded audio carried inside JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AudioClip {
    /// For example `audio/wav` or `audio/mpeg`; hand it to the player as is.
    pub mime_type: String,
    /// The encoded file, standard base64 with padding.
    pub data_base64: String,
}

/// A piece of the knowledge base an answer used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KnowledgeSource {
    pub id: String,
    pub title: String,
    pub snippet: String,
    /// Relevance as ranked by the search; higher is better, only comparable within one answer.
    pub score: f32,
}

/// A tool call the assistant made while answering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolCallRecord {
    pub name: String,
    pub arguments: serde_json::Value,
}

/// Wall-clock time each stage of a turn took, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageTimings {
    /// Waiting in line for other turns to finish before this one could start (the server answers a limited
    /// number at once); 0 when it started at once. Not part of `llm_ms`.
    #[serde(default)]
    pub queued_ms: u64,
    /// Speech-to-text; 0 for a typed turn.
    pub stt_ms: u64,
    /// The agent: every model call and tool call until the answer was complete.
    pub llm_ms: u64,
    /// Text-to-speech; 0 when no audio was made.
    pub tts_ms: u64,
    /// The whole turn as the server saw it, including the wait in line and storage.
    pub total_ms: u64,
    /// Until the first audio was ready; set by the streaming path, where it is the figure that matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_audio_ms: Option<u64>,
    /// Until the first audio was ready, from the end of the user's speech (not from the end of the turn):
    /// what the user waits. Set on the socket for raw `pcm16` turns, where the server hears where the speech
    /// stopped; it adds the silence heard before the turn ended to `first_audio_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_audio_from_speech_end_ms: Option<u64>,
}
