//! Assembling the server from its settings: one backend per stage, shared by every request.

use std::sync::Arc;

use crate::agent::Agent;
use crate::agent::tools::{CurrentTime, ToolRegistry};
use crate::config::{ProviderConfig, Settings, StageBackend};
use crate::embeddings::{EmbedError, Embedder, LocalEmbeddings, OpenAiEmbeddings};
use crate::llm::{ChatModel, LocalChat, LocalChatOptions, LocalLlmError, OpenAiChat};
use crate::openai::OpenAiClient;
use crate::pipeline::Pipeline;
use crate::sessions::{MemorySessions, SessionStore};
use crate::stt::{OpenAiStt, SpeechToText};
use crate::tts::{OpenAiTts, TextToSpeech};

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub embedder: Option<Arc<dyn Embedder>>,
    /// The largest audio upload accepted, for telling people the limit they hit.
    pub max_upload_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("could not set up the HTTP client for a model provider: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error(transparent)]
    Embeddings(#[from] EmbedError),
    #[error(transparent)]
    Llm(#[from] LocalLlmError),
}

impl AppState {
    pub fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        let stt: Option<Arc<dyn SpeechToText>> = openai(&settings.stt)?.map(|c| Arc::new(OpenAiStt::new(c)) as _);
        let llm: Option<Arc<dyn ChatModel>> = match &settings.llm {
            StageBackend::Local { .. } => {
                let defaults = LocalChatOptions::default();
                let threads = if settings.llm_threads == 0 { defaults.threads } else { settings.llm_threads };
                Some(Arc::new(LocalChat::load(&settings.llm_model_file, LocalChatOptions { threads, ..defaults })?))
            }
            other => openai(other)?.map(|c| Arc::new(OpenAiChat::new(c)) as _),
        };
        let tts: Option<Arc<dyn TextToSpeech>> =
            openai(&settings.tts)?.map(|c| Arc::new(OpenAiTts::new(c, settings.tts_voice.clone())) as _);
        let embedder: Option<Arc<dyn Embedder>> = match &settings.embeddings {
            StageBackend::Local { dir } => Some(Arc::new(LocalEmbeddings::load(dir)?)),
            other => openai(other)?.map(|c| Arc::new(OpenAiEmbeddings::new(c)) as _),
        };
        let sessions: Arc<dyn SessionStore> = Arc::new(MemorySessions::default());

        let tools = ToolRegistry::new().with(CurrentTime);
        let agent = llm.map(|model| Agent::new(model, tools, settings.max_tool_rounds));
        let pipeline =
            Pipeline { stt, agent, tts, sessions, history_turns: settings.history_turns, max_question_chars: settings.max_question_chars };
        Ok(Self { pipeline: Arc::new(pipeline), embedder, max_upload_bytes: settings.max_upload_bytes })
    }
}

fn openai(backend: &StageBackend) -> Result<Option<OpenAiClient>, reqwest::Error> {
    match backend {
        StageBackend::None | StageBackend::Local { .. } => Ok(None),
        StageBackend::OpenAi(config) => OpenAiClient::new(ProviderConfig::clone(config)).map(Some),
    }
}
