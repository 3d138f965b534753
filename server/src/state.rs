//! Assembling the server from its settings: one backend per stage, shared by every request.

use std::sync::Arc;

use crate::agent::tools::{CurrentTime, Remember, SearchKnowledge, ToolRegistry};
use crate::agent::{Agent, AutoSearch};
use crate::config::{Settings, StageBackend};
use crate::embeddings::{EmbedError, Embedder, LocalEmbeddings, OpenAiEmbeddings};
use crate::knowledge::KnowledgeBase;
use crate::llm::{ChatModel, LocalChat, LocalChatOptions, LocalLlmError, OpenAiChat};
use crate::openai::{OpenAiClient, ProviderConfig};
use crate::pipeline::{Pipeline, TurnLimits};
use crate::sessions::{LanceSessions, SessionStore};
use crate::store::{Database, StoreError};
use crate::stt::{LocalStt, OpenAiStt, SpeechToText, SttError};
use crate::tts::{LocalTts, OpenAiTts, TextToSpeech, TtsError};

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub embedder: Option<Arc<dyn Embedder>>,
    pub knowledge: Arc<KnowledgeBase>,
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
    Tts(#[from] TtsError),
    #[error(transparent)]
    Stt(#[from] SttError),
    #[error(transparent)]
    Llm(#[from] LocalLlmError),
    #[error(transparent)]
    Database(#[from] StoreError),
    #[error(transparent)]
    Knowledge(#[from] crate::knowledge::KnowledgeError),
}

impl AppState {
    pub fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        let stt: Option<Arc<dyn SpeechToText>> = match &settings.stt {
            StageBackend::Local { dir } => Some(Arc::new(LocalStt::load(dir)?)),
            other => openai(other)?.map(|c| Arc::new(OpenAiStt::new(c)) as _),
        };
        let llm: Option<Arc<dyn ChatModel>> = match &settings.llm {
            StageBackend::Local { .. } => {
                let defaults = LocalChatOptions::default();
                let threads = if settings.llm_threads == 0 { defaults.threads } else { settings.llm_threads };
                Some(Arc::new(LocalChat::load(&settings.llm_model_file, LocalChatOptions { threads, ..defaults })?))
            }
            other => openai(other)?.map(|c| Arc::new(OpenAiChat::new(c)) as _),
        };
        let tts: Option<Arc<dyn TextToSpeech>> = match &settings.tts {
            StageBackend::Local { dir } => Some(Arc::new(LocalTts::load(dir, &settings.onnx_runtime, settings.tts_voice_engine)?)),
            other => openai(other)?.map(|c| Arc::new(OpenAiTts::new(c, settings.tts_voice.clone())) as _),
        };
        let embedder = embedder(settings)?;
        // Opened on first use (the database is async); `crate::start` opens and seeds it before serving.
        let database = Arc::new(Database::new(&settings.data_dir));
        let knowledge = Arc::new(KnowledgeBase::new(Arc::clone(&database), embedder.clone()));
        let sessions: Arc<dyn SessionStore> = Arc::new(LanceSessions::new(database));

        let tools = ToolRegistry::new()
            .with(CurrentTime)
            .with(SearchKnowledge::new(Arc::clone(&knowledge)))
            .with(Remember::new(Arc::clone(&knowledge)));
        let agent = llm.map(|model| {
            let agent = Agent::new(model, tools, settings.max_tool_rounds);
            match settings.auto_search_similarity {
                Some(min_similarity) => agent.with_auto_search(AutoSearch::new(Arc::clone(&knowledge), min_similarity)),
                None => agent,
            }
        });
        let limits = TurnLimits { history_turns: settings.history_turns, max_question_chars: settings.max_question_chars };
        let pipeline = Pipeline::new(stt, agent, tts, sessions, limits);
        Ok(Self { pipeline: Arc::new(pipeline), embedder, knowledge, max_upload_bytes: settings.max_upload_bytes })
    }
}

/// The embeddings backend the settings choose, loaded.
pub fn embedder(settings: &Settings) -> Result<Option<Arc<dyn Embedder>>, StartupError> {
    Ok(match &settings.embeddings {
        StageBackend::Local { dir } => Some(Arc::new(LocalEmbeddings::load(dir, &settings.onnx_runtime)?)),
        other => openai(other)?.map(|c| Arc::new(OpenAiEmbeddings::new(c)) as _),
    })
}

fn openai(backend: &StageBackend) -> Result<Option<OpenAiClient>, reqwest::Error> {
    match backend {
        StageBackend::None | StageBackend::Local { .. } => Ok(None),
        StageBackend::OpenAi(config) => OpenAiClient::new(ProviderConfig::clone(config)).map(Some),
    }
}
