//! The OpenAI-compatible face (`/v1`): the shapes of OpenAI's own API that Parlance serves, so its SDKs and the
//! apps built on them (Open WebUI, Home Assistant's OpenAI integrations) can use Parlance's models. Only the
//! fields Parlance reads or writes are here; requests may carry more, which are ignored.

use serde::{Deserialize, Serialize};

/// The model name that means "Parlance itself": the agent, with its tools, the notes and the memories.
pub const AGENT_MODEL: &str = "parlance";

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelCard {
    /// `parlance` (the agent), or the model a stage runs (for the audio endpoints, any name is accepted).
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds; when this server started.
    pub created: i64,
    pub owned_by: String,
}

/// `POST /v1/chat/completions`. The conversation is the client's: nothing is stored on the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatCompletionRequest {
    /// `parlance`.
    pub model: String,
    /// The conversation so far, oldest first; the last `user` message is the question.
    pub messages: Vec<ChatCompletionMessage>,
    /// Answer as server-sent events (`chat.completion.chunk`), ended by `data: [DONE]`.
    #[serde(default)]
    pub stream: bool,
    /// Functions the model may ask to call, for the language model itself (its id in `/v1/models`): the
    /// client runs them and sends their results back as `tool` messages. The agent (`parlance`) runs its own
    /// tools and does not read these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ChatTool>,
}

/// A function offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatTool {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDefinition,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Option<serde_json::Value>,
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageToolCall {
    pub id: String,
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunctionCall {
    pub name: String,
    /// The arguments as the model wrote them: meant to be a JSON object.
    pub arguments: String,
}

/// A call in a streamed answer. Parlance sends each call whole, in one chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChunkToolCall {
    /// Which call of the answer this is, from 0.
    pub index: u32,
    pub id: String,
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatCompletionMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`. Parlance keeps its own instructions: `system`,
    /// `developer` and `tool` messages are not read.
    pub role: String,
    /// Text, or an array of parts of which the `text` ones are read; `null` for an assistant's tool call.
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// An assistant's calls (for the language model itself; the agent does not read them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<MessageToolCall>,
    /// A `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// The text of the message: its string, or its `text` parts joined.
    pub fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Parts(parts) => parts.iter().filter_map(|part| part.text.as_deref()).collect::<Vec<_>>().join("\n"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContentPart {
    /// `text` (others, such as images, are not read).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A whole answer (`stream: false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatCompletion {
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    /// `stop`; `tool_calls` when the language model itself asked for calls (the agent runs its own tools and
    /// always answers in words).
    pub finish_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: String,
    pub content: String,
    /// The calls the language model itself asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<MessageToolCall>,
}

/// One server-sent event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatCompletionChunk {
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: ChunkDelta,
    /// `stop` on the last chunk, absent before.
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChunkDelta {
    /// `assistant` on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ChunkToolCall>,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmbeddingsRequest {
    /// Any name: the server's embeddings stage answers.
    pub model: String,
    /// One text, or several.
    pub input: EmbeddingsInput,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EmbeddingsInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmbeddingList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    /// The input's place in the request.
    pub index: u32,
    pub embedding: Vec<f32>,
}

/// `POST /v1/audio/speech`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SpeechRequest {
    /// Any name: the server's text-to-speech stage speaks.
    pub model: String,
    /// The text to speak.
    pub input: String,
    /// One of `GET /api/voices` speaks in it; any other name (OpenAI's `alloy`, ...) gets the default voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// How fast to speak relative to the voice's own pace, default 1: OpenAI's 0.25 to 4, held to 0.5 to 2 here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f32>,
    /// `wav` (16-bit PCM), `opus` (Ogg Opus, 48 kHz), or `pcm` (raw 16-bit little-endian mono at 24 kHz, as
    /// OpenAI's). Default `wav`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<String>,
}

/// `POST /v1/audio/transcriptions` with `response_format` `json` (the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transcription {
    pub text: String,
}

/// `POST /v1/audio/transcriptions` with `response_format=verbose_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerboseTranscription {
    /// Always `transcribe`.
    pub task: String,
    /// The language the model transcribes (the local model knows English only).
    pub language: String,
    /// The recording's length in seconds.
    pub duration: f64,
    pub text: String,
    /// The transcript in time: the local model hands its text over whole, so one segment spans the recording.
    pub segments: Vec<TranscriptionSegment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TranscriptionSegment {
    pub id: u32,
    pub seek: u32,
    /// Seconds from the start of the recording.
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// How `/v1` reports a failure: OpenAI's error shape, which its SDKs read. (The `/api` routes use
/// [`crate::ErrorBody`]; the code here is the same stable code.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenAiErrorBody {
    pub error: OpenAiError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenAiError {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Parlance's error code (the one `/api` uses in its error body).
    pub code: String,
}
