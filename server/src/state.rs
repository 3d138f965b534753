//! Assembling the server from its settings: one backend per stage, shared by every request.

use std::sync::Arc;
use std::time::Duration;

use crate::access::{HostPolicy, TrustedProxies, Users};
use crate::agent::tools::{CurrentTime, Remember, SearchKnowledge, ToolRegistry};
use crate::agent::{Agent, AnswerStyle, Grounder};
use crate::archive::Archive;
use crate::backend::{PROBE_FOR, Probed};
use crate::budget::{SocketSlots, TurnBudget};
use crate::config::{AnswerStyleChoice, Settings, SocketSettings, StageBackend, VadSetting};
use crate::cpu::SpeechFirst;
use crate::embeddings::{EmbedError, Embedder, LocalEmbeddings, OpenAiEmbeddings};
use crate::knowledge::KnowledgeBase;
use crate::llm::{ChatModel, LocalChat, LocalChatOptions, LocalLlmError, OpenAiChat};
use crate::openai::{OpenAiClient, ProviderConfig};
use crate::pipeline::{NotesVocabulary, Pipeline, QueueLimits, TurnLimits};
use crate::sessions::{LanceSessions, SessionStore};
use crate::shutdown::Shutdown;
use crate::store::{Database, StoreError};
use crate::stt::{LocalStt, OpenAiStt, SpeechToText, SttError};
use crate::telemetry::Telemetry;
use crate::tts::{LocalTts, OpenAiTts, TextToSpeech, TtsError};
use crate::vad::{SileroVad, VadError};
use parlance_shared::Stage;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) embedder: Option<Arc<dyn Embedder>>,
    pub(crate) knowledge: Arc<KnowledgeBase>,
    /// The largest audio upload accepted, for telling people the limit they hit.
    pub(crate) max_upload_bytes: usize,
    /// Turns asked over the socket take from it (HTTP turns are counted by a layer on their routes).
    pub(crate) turn_budget: TurnBudget,
    /// Each open socket holds one of its client's.
    pub(crate) socket_slots: SocketSlots,
    /// Keepalive and idle time of the sockets.
    pub(crate) sockets: SocketSettings,
    /// The conversations, for checking whose they are (the pipeline reads and writes their lines).
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) access: Arc<Access>,
    /// The audio archive, when `--archive-dir` is set: the pipeline writes it; `crate::start` sweeps it.
    pub(crate) archive: Option<Arc<Archive>>,
    /// What `/metrics` shows.
    pub(crate) telemetry: Arc<Telemetry>,
    /// The stages whose provider did not answer when last asked, and why (for `/health`).
    pub(crate) unreachable: Arc<Probed<Vec<(Stage, String)>>>,
    /// Whether the server is stopping (see `crate::shutdown`).
    pub(crate) shutdown: Shutdown,
}

/// Who may call, from where, and through which proxies.
#[derive(Debug, Default)]
pub struct Access {
    /// `None`: no token is needed.
    pub users: Option<Users>,
    pub hosts: HostPolicy,
    pub proxies: TrustedProxies,
}

/// The model stages a server runs on; `None`: the stage is off. Built from the settings by
/// [`Stages::from_settings`], or handed to [`AppState::new`] directly (the tests use fakes in the process).
#[derive(Clone, Default)]
pub struct Stages {
    pub stt: Option<Arc<dyn SpeechToText>>,
    pub llm: Option<Arc<dyn ChatModel>>,
    pub tts: Option<Arc<dyn TextToSpeech>>,
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Finds speech in raw socket streams (see `crate::vad`); `None`: pauses are found by loudness.
    pub vad: Option<Arc<SileroVad>>,
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
    #[error(transparent)]
    Vad(#[from] VadError),
}

impl Stages {
    /// The backends the settings choose, loaded. The embedded language model and voice share `cores`: while
    /// a sentence is synthesised the model waits (see `crate::cpu`).
    pub fn from_settings(settings: &Settings, cores: &Arc<SpeechFirst>) -> Result<Self, StartupError> {
        let stt: Option<Arc<dyn SpeechToText>> = match &settings.stt {
            StageBackend::Local { dir } => Some(Arc::new(LocalStt::load(dir)?.with_beam_size(settings.stt_beam_size))),
            other => openai(other)?.map(|c| Arc::new(OpenAiStt::new(c)) as _),
        };
        let llm: Option<Arc<dyn ChatModel>> = match &settings.llm {
            StageBackend::Local { .. } => {
                let defaults = LocalChatOptions::default();
                let threads = if settings.llm_threads == 0 { defaults.threads } else { settings.llm_threads };
                let options = LocalChatOptions { threads, ..defaults };
                Some(Arc::new(LocalChat::load_sharing_cores(&settings.llm_model_file, options, Arc::clone(cores))?))
            }
            other => openai(other)?.map(|c| Arc::new(OpenAiChat::new(c)) as _),
        };
        let tts: Option<Arc<dyn TextToSpeech>> = match &settings.tts {
            StageBackend::Local { dir } => {
                Some(Arc::new(LocalTts::load_sharing_cores(dir, &settings.onnx_runtime, settings.tts_voice_engine, Arc::clone(cores))?))
            }
            other => openai(other)?.map(|c| Arc::new(OpenAiTts::new(c, settings.tts_voice.clone())) as _),
        };
        Ok(Self { stt, llm, tts, embedder: embedder(settings)?, vad: voice_activity(settings)? })
    }
}

/// The voice activity model the settings choose, loaded.
fn voice_activity(settings: &Settings) -> Result<Option<Arc<SileroVad>>, VadError> {
    let path = match &settings.vad {
        VadSetting::Off => return Ok(None),
        VadSetting::IfInstalled(path) if !path.is_file() => {
            tracing::info!("no voice activity model installed: pauses are found by loudness (`parlance models --only silero-vad`)");
            return Ok(None);
        }
        VadSetting::Required(path) | VadSetting::IfInstalled(path) => path,
    };
    let environment =
        crate::onnx::runtime(&settings.onnx_runtime).map_err(|e| VadError::Load { path: path.clone(), reason: e.to_string() })?;
    let vad = SileroVad::load(path, environment)?;
    tracing::info!(file = %path.display(), "voice activity model loaded");
    Ok(Some(Arc::new(vad)))
}

impl AppState {
    /// The server the settings describe: its stages loaded, conversations and notes in the database under
    /// the data directory.
    pub fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        // One per server: the embedded models of one process share one set of cores.
        let cores = Arc::new(SpeechFirst::new());
        let stages = Stages::from_settings(settings, &cores)?;
        Ok(Self::on_disk(settings, stages))
    }

    /// A server on the stages given, its conversations and notes in the database under the data directory
    /// exactly as `parlance` keeps them: the seam for tests and benches whose models are fakes but whose
    /// storage must be the real one.
    pub fn on_disk(settings: &Settings, stages: Stages) -> Self {
        // Opened on first use (the database is async); `crate::start` opens and seeds it before serving.
        let database = Arc::new(Database::new(&settings.data_dir));
        let sessions: Arc<dyn SessionStore> = Arc::new(LanceSessions::new(Arc::clone(&database)));
        Self::assemble(settings, stages, sessions, database)
    }

    /// A server on the stages and the conversation store given, with the settings' limits; its notes are in
    /// the database under the settings' data directory, opened only if a request needs them. The seam for
    /// tests about routing, the protocol and errors: fake stages in the process and conversations in memory
    /// need neither models nor a provider.
    pub fn new(settings: &Settings, stages: Stages, sessions: Arc<dyn SessionStore>) -> Self {
        Self::assemble(settings, stages, sessions, Arc::new(Database::new(&settings.data_dir)))
    }

    fn assemble(settings: &Settings, stages: Stages, sessions: Arc<dyn SessionStore>, database: Arc<Database>) -> Self {
        let Stages { stt, llm, tts, embedder, vad } = stages;
        let telemetry = Arc::new(Telemetry::new());
        let shutdown = Shutdown::default();
        let loaded = [
            (Stage::Stt, stt.as_ref().map(|stt| stt.info())),
            (Stage::Llm, llm.as_ref().map(|llm| llm.info())),
            (Stage::Tts, tts.as_ref().map(|tts| tts.info())),
            (Stage::Embeddings, embedder.as_ref().map(|embedder| embedder.info())),
        ];
        for (stage, info) in loaded {
            if let Some(load_ms) = info.and_then(|info| info.load_ms) {
                telemetry.model_loaded(stage, load_ms);
            }
        }
        let knowledge = Arc::new(KnowledgeBase::new(database, embedder.clone()));
        let tools = ToolRegistry::new()
            .with(CurrentTime)
            .with(SearchKnowledge::new(Arc::clone(&knowledge)))
            .with(Remember::new(Arc::clone(&knowledge)));
        let style = match settings.answer_style {
            AnswerStyleChoice::Extractive => AnswerStyle::Extractive,
            AnswerStyleChoice::Generative => AnswerStyle::Generative,
            AnswerStyleChoice::Auto if matches!(settings.llm, StageBackend::Local { .. }) => AnswerStyle::Extractive,
            AnswerStyleChoice::Auto => AnswerStyle::Generative,
        };
        let agent = llm.map(|model| {
            let agent = Agent::new(model, tools, settings.max_tool_rounds);
            match settings.notes_similarity {
                Some(min_similarity) => agent.with_grounding(Grounder::new(Arc::clone(&knowledge), min_similarity, style)),
                None => agent,
            }
        });
        let limits = TurnLimits {
            history_turns: settings.history_turns,
            max_question_chars: settings.max_question_chars,
            queue: QueueLimits { running: settings.max_concurrent_turns, waiting: settings.turn_queue },
        };
        let archive = settings.archive.as_ref().map(|archive| Arc::new(Archive::new(&archive.dir, archive.keep_days)));
        Self {
            pipeline: Arc::new({
                let mut pipeline = Pipeline::new(stt, agent, tts, Arc::clone(&sessions), limits, Arc::clone(&telemetry), shutdown.clone());
                pipeline = pipeline
                    .with_vocabulary(NotesVocabulary::new(Arc::clone(&knowledge), settings.stt_vocabulary))
                    .with_answer_early(settings.answer_early);
                if let Some(archive) = &archive {
                    pipeline = pipeline.with_archive(Arc::clone(archive));
                }
                if let Some(vad) = vad {
                    pipeline = pipeline.with_vad(vad);
                }
                pipeline
            }),
            archive,
            telemetry,
            unreachable: Arc::new(Probed::new(PROBE_FOR)),
            shutdown,
            sessions,
            embedder,
            knowledge,
            max_upload_bytes: settings.max_upload_bytes,
            turn_budget: TurnBudget::new(settings.turns_per_minute),
            socket_slots: SocketSlots::new(settings.sockets.per_client),
            sockets: settings.sockets,
            access: Arc::new(Access {
                users: settings.access.users.clone(),
                hosts: settings.access.hosts.clone(),
                proxies: settings.access.proxies.clone(),
            }),
        }
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

/// How often the turns in flight are counted while the server waits for them to end.
const RECOUNT: Duration = Duration::from_millis(20);

/// The binary's handle on stopping the server [`crate::start`] built (see `crate::shutdown`).
pub struct Stopper {
    shutdown: Shutdown,
    pipeline: Arc<Pipeline>,
}

impl Stopper {
    pub(crate) fn new(shutdown: Shutdown, pipeline: Arc<Pipeline>) -> Self {
        Self { shutdown, pipeline }
    }

    /// No new turns from now on; idle sockets close.
    pub fn begin(&self) {
        self.shutdown.begin();
    }

    /// Resolves when no turn runs or waits and every socket has closed.
    pub async fn finished(&self) {
        while self.pipeline.turns_in_flight() > 0 {
            tokio::time::sleep(RECOUNT).await;
        }
        self.shutdown.sockets_closed().await;
    }

    /// The turns still running are cut, and what their clients were sent is stored (see [`Stopper::finished`]
    /// for when that is done).
    pub fn cut(&self) {
        self.shutdown.cut();
    }
}
