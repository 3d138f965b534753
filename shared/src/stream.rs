use serde::{Deserialize, Serialize};

use crate::error::ErrorBody;
use crate::session::SessionId;
use crate::turn::{AudioClip, KnowledgeSource, StageTimings, ToolCallRecord};

/// Where a turn is, as the user should see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TurnState {
    /// Waiting for the user.
    Idle,
    /// Receiving the user's speech.
    Listening,
    /// Turning speech into text.
    Transcribing,
    /// The agent is working on the answer (model and tools).
    Thinking,
    /// Answer audio is being sent.
    Speaking,
}

/// What the server sends during a streamed turn, in order: status changes, the transcript, answer text as it
/// is generated, tool calls, audio chunks as each sentence is spoken, and finally `done` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    Status {
        state: TurnState,
    },
    Transcript {
        text: String,
        /// `false` for a provisional transcript that may still change.
        is_final: bool,
    },
    AnswerDelta {
        text: String,
    },
    ToolCall {
        call: ToolCallRecord,
    },
    AudioChunk {
        /// Counts from 0 within a turn; play chunks in this order.
        sequence: u32,
        /// The text this chunk speaks.
        text: String,
        audio: AudioClip,
    },
    Done {
        session_id: SessionId,
        answer: String,
        sources: Vec<KnowledgeSource>,
        timings: StageTimings,
    },
    Error {
        error: ErrorBody,
    },
}
