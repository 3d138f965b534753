//! The streaming conversation over `GET /api/ws`: one socket is one session, turns one after another. The
//! client sends [`ClientMessage`]s as JSON text frames and the recorded audio as binary frames; the server
//! answers with [`ServerEvent`]s as JSON text frames.

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
    /// The turn waits for the server to finish other people's turns first; `position` on the status event says
    /// where it is in line (1: next). Sent again whenever the place changes; `thinking` (or `transcribing`)
    /// follows when the turn starts. Clients that do not know this state may ignore it.
    Queued,
}

/// What the server sends: first, once per socket, `hello`; then during a streamed turn, in order: status
/// changes, the transcript, answer text as it is generated, tool calls, audio chunks as each sentence is
/// spoken, and finally `done` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The socket's first event, before any other: the protocol version the server speaks
    /// (`parlance_shared::PROTOCOL_VERSION`). A client made for another version should close the socket and tell its
    /// user to update (README: Versioning).
    Hello {
        protocol: u32,
    },
    Status {
        state: TurnState,
        /// With `queued`: the turn's place in line, 1 being the next to start. Absent with every other state.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<u32>,
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
        /// Why some or all of the answer was not spoken although speech was expected; the text is still valid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speech_error: Option<ErrorBody>,
    },
    /// The end of a turn the client interrupted, instead of `done`: nothing more comes for it. The
    /// conversation keeps only the part of the answer the client reported as played. With
    /// [`TurnDetection::barge_in`] the server sends it too when it heard the user interrupt the answer: stop
    /// playing it; the part kept is what the server reckons had been played when the user began to speak, and
    /// the user's next turn is already being listened to (`status` listening follows).
    Interrupted {
        session_id: SessionId,
        /// The answer as remembered: the text of the audio chunks played, empty if none was.
        kept_answer: String,
    },
    Error {
        error: ErrorBody,
    },
    /// The server heard speech begin in a `pcm16` stream (its voice activity detection), `at_ms` from the
    /// start of the recording.
    SpeechStarted {
        at_ms: u64,
    },
    /// The speech heard stopped at `at_ms`; the user may go on (another `speech_started`) or be done.
    SpeechStopped {
        at_ms: u64,
    },
    /// With [`TurnDetection::barge_in`]: speech heard while the answer played that does not interrupt it: the
    /// answer itself coming back through the microphone, a short acknowledgement, or a noise. `text` is what
    /// speech-to-text made of it.
    SpeechIgnored {
        text: String,
        reason: IgnoredSpeech,
    },
    /// The server ended the turn itself (see [`TurnDetection`]): stop sending audio for it (unless `barge_in`);
    /// the answer's events follow as after `end_turn`.
    TurnEnded {
        /// Where the last speech stopped, from the start of the recording.
        speech_end_ms: u64,
        /// How long the silence after it lasted when the turn was ended.
        silence_ms: u64,
        /// The language model's probability that what was heard is the user's whole turn, when it was judged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_of_turn_probability: Option<f32>,
    },
}

impl ServerEvent {
    /// A status change without a place in line.
    pub fn status(state: TurnState) -> Self {
        Self::Status { state, position: None }
    }

    /// The turn waits in line: `position` 1 starts next.
    pub fn queued(position: u32) -> Self {
        Self::Status { state: TurnState::Queued, position: Some(position) }
    }
}

/// What a client sends over the socket, as JSON text frames. Audio goes in binary frames between `start` and
/// `end_turn`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The user starts speaking: binary frames with audio in `encoding` follow, until `end_turn`.
    Start {
        /// Continue this conversation; omit to stay in the socket's current one (a new one at first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<SessionId>,
        encoding: AudioEncoding,
        /// Let the server end the turn when the user is done (`pcm16` only); without it the client sends
        /// `end_turn`, which also works alongside.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn_detection: Option<TurnDetection>,
        /// How fast to speak the answers on this socket from now on, relative to the voice's own pace (0.5 to 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speech_rate: Option<f32>,
        /// Which voice speaks the answers on this socket from now on (an `id` from `GET /api/voices`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        voice: Option<String>,
    },
    /// The user stopped speaking: the server transcribes what it received and answers.
    EndTurn,
    /// Stop the turn now: while listening the audio is dropped; while answering, generation and speech stop and
    /// the conversation keeps only what was played. The server confirms with `interrupted` (or `status` idle
    /// when there was nothing to stop).
    Interrupt {
        /// The `sequence` of the last audio chunk the user heard to the end; omit if none was played.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        played_through: Option<u32>,
    },
    /// A typed question, answered like a spoken one.
    Text {
        /// Continue this conversation; omit to stay in the socket's current one (a new one at first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<SessionId>,
        text: String,
        /// Also speak the answer (`audio_chunk` events). Defaults to `true`.
        #[serde(default = "speak_by_default")]
        speak: bool,
        /// How fast to speak the answers on this socket from now on, relative to the voice's own pace (0.5 to 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speech_rate: Option<f32>,
        /// Which voice speaks the answers on this socket from now on (an `id` from `GET /api/voices`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        voice: Option<String>,
    },
    /// Leave the current conversation: the next turn starts a new one.
    NewSession,
}

fn speak_by_default() -> bool {
    true
}

/// Why speech heard during an answer did not interrupt it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IgnoredSpeech {
    /// The words are the answer's own: the speakers heard by the microphone.
    Echo,
    /// "Uh-huh", "okay", "right", "mm": the user is listening, not taking the turn.
    Backchannel,
    /// No words in it, or too few to tell that the user is taking the turn (often the answer's voice misheard).
    Noise,
}

/// How the server decides that the user is done speaking: after a short silence when the language model
/// judges what was heard a complete turn ("What time is it?"), after a long one otherwise ("What is the ...").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TurnDetection {
    /// The turn ends after this much silence following speech, whatever was said.
    #[serde(default = "TurnDetection::default_silence_ms")]
    pub silence_ms: u32,
    /// The turn ends after this shorter silence when what was heard sounds complete; 0 waits for
    /// `silence_ms` every time.
    #[serde(default = "TurnDetection::default_complete_silence_ms")]
    pub complete_silence_ms: u32,
    /// The client keeps the microphone streaming while the answer plays (and after it), and the server
    /// decides what speech means: the answer's own voice coming back from the speakers and short
    /// acknowledgements are ignored (`speech_ignored`), anything else interrupts the answer (`interrupted`)
    /// and becomes the user's next turn, with the same settings. The client then never sends `start` or
    /// `interrupt` itself; audio is the same 16 kHz PCM16 stream throughout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub barge_in: bool,
}

impl TurnDetection {
    pub const fn default_silence_ms() -> u32 {
        1_500
    }

    /// Longer than most pauses people make mid-question: the model also judges fragments finished ("When is
    /// the"), and at 300 ms one spoken question in five with a half-second pause in it was cut off (README:
    /// Turn-taking).
    pub const fn default_complete_silence_ms() -> u32 {
        600
    }
}

impl Default for TurnDetection {
    fn default() -> Self {
        Self { silence_ms: Self::default_silence_ms(), complete_silence_ms: Self::default_complete_silence_ms(), barge_in: false }
    }
}

/// How the binary frames of a spoken turn carry the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AudioEncoding {
    /// Pieces of one WebM file, e.g. MediaRecorder's `timeslice` chunks (they concatenate into a valid file).
    Webm,
    /// Pieces of one Ogg file.
    Ogg,
    /// Pieces of one MP4/M4A file.
    Mp4,
    /// Pieces of one WAV file, header first.
    Wav,
    /// Raw samples: signed 16-bit little-endian, mono, 16 kHz, no header (e.g. from an AudioWorklet).
    Pcm16,
}

impl AudioEncoding {
    /// Sample rate of [`AudioEncoding::Pcm16`] frames.
    pub const PCM16_SAMPLE_RATE: u32 = 16_000;
}
