//! Chat models: a conversation (and the tools on offer) in, a stream of answer text and tool calls out.

pub mod local;
mod openai;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use self::local::{LocalChat, LocalChatOptions, LocalLlmError};
pub use self::openai::OpenAiChat;
use crate::backend::BackendInfo;
use crate::openai::ProviderError;

/// One message of the conversation the model sees.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatMessage {
    System(String),
    User(String),
    Assistant {
        content: String,
        tool_calls: Vec<ToolCall>,
    },
    /// A tool's result, answering the assistant's call with the same id.
    Tool {
        call_id: String,
        content: String,
    },
}

/// A tool the model asked to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: meant to be JSON, but a model can get that wrong.
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Empty: the model must answer in text.
    pub tools: Vec<ToolSpec>,
    /// The call to make when the model would answer without a tool (see `agent::AutoSearch`). Only backends
    /// that see the model's decision before it answers (the embedded one) can honour it; others ignore it.
    pub default_call: Option<ToolCall>,
}

/// What a model produces while it answers, in order. The stream ends when the model is done.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    TextDelta(String),
    ToolCall(ToolCall),
}

pub type ChatStream = BoxStream<'static, Result<ChatEvent, LlmError>>;

#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Starts generating. Errors before the first token come from here, later ones from the stream.
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError>;
    /// A hint that `request` is likely to be streamed soon (the user has paused after a question): a backend
    /// that keeps its prompt's evaluation between requests can do that work now. The answer is the same
    /// without it; backends that cannot use it ignore it.
    fn prepare(&self, _request: ChatRequest) {}
    /// How likely the user's turn is over after the last (user) message of `request`: the model's
    /// probability that their words end there (the end of its turn, or a sentence's closing punctuation
    /// next), as a turn detector reads it ("What is the capital of France" high, "What is the" low). `None`
    /// when the backend cannot tell (a provider gives no such probability).
    async fn end_of_turn(&self, _request: ChatRequest) -> Option<f32> {
        None
    }
    fn info(&self) -> BackendInfo;
    /// Whether the backend can answer now: a provider is asked briefly (see `OpenAiClient::probe`); a model
    /// in this process is ready once loaded.
    async fn reachable(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("language model provider: {0}")]
    Provider(#[from] ProviderError),
    /// The prompt (system prompt, recent turns, tools, question) does not fit the model's context. A case of its
    /// own, whatever backend noticed it, because the user can do something about it: start a new conversation.
    #[error("the conversation is too long for the language model: {needed} tokens, it holds {limit}")]
    ConversationTooLong { needed: usize, limit: usize },
    #[error("local language model: {0}")]
    Local(LocalLlmError),
}

impl From<LocalLlmError> for LlmError {
    fn from(error: LocalLlmError) -> Self {
        match error {
            LocalLlmError::Engine(local::EngineError::TooLong { needed, limit }) => Self::ConversationTooLong { needed, limit },
            other => Self::Local(other),
        }
    }
}
