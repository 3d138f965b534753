//! What the user sees when something fails, over HTTP and over the socket alike: the one place that knows
//! status codes and the wire's [`ErrorBody`]. The pipeline, the stages and the stores return their own errors;
//! each is mapped here to a status and a body with a stable code and a message a person can act on. Internal
//! details go to the log, never to the client, and what a message repeats of the request is cut short (see
//! [`echo`]), so no answer grows with what a client sends.

use axum::Json;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parlance_shared::openai::{OpenAiError, OpenAiErrorBody};
use parlance_shared::{ErrorBody, ErrorCode, SessionId, Stage};

use crate::agent::AgentError;
use crate::archive::ArchiveError;
use crate::audio::{AudioError, DecodeError};
use crate::embeddings::EmbedError;
use crate::knowledge::document::DocumentError;
use crate::knowledge::{IngestError, KnowledgeError};
use crate::llm::LlmError;
use crate::openai::ProviderError;
use crate::pipeline::{QueueFull, SpeechFailure, TurnError};
use crate::sessions::SessionError;
use crate::streaming::{ProtocolError, RecordingError, SocketError};
use crate::stt::SttError;
use crate::tts::TtsError;

/// When to ask again a server that is stopping: a restart's usual length.
const SHUTTING_DOWN_RETRY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Like `InvalidRequest`, but with the status the HTTP layer chose (e.g. 415 for a missing content type).
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("{0}")]
    MissingAudio(String),
    #[error("the request is too large: this server accepts at most {}", human_size(*.limit_bytes))]
    PayloadTooLarge { limit_bytes: usize },
    /// One socket message over the size a socket reads.
    #[error(
        "that socket message is too large: this server reads at most {} in one message; send audio in smaller frames (the socket is closed, reconnect)",
        human_size(*.limit_bytes)
    )]
    MessageTooLarge { limit_bytes: usize },
    /// A socket message that could not be read for another reason than its size.
    #[error("the socket could not read the last message ({0}); reconnect and send JSON text or audio frames")]
    BrokenMessage(String),
    #[error("the address is too long: this server reads at most {} of it", human_size(*.limit_bytes))]
    UriTooLong { limit_bytes: usize },
    #[error("the request's headers are too large: this server reads at most {} of them", human_size(*.limit_bytes))]
    HeadersTooLarge { limit_bytes: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The container was recognised but its audio could not be decoded (damaged or cut short).
    #[error("{0}")]
    UnreadableAudio(String),
    #[error("{0}")]
    RecordingTooLong(String),
    #[error("I didn't catch that: the recording holds no speech I could make out. Please try again.")]
    NoSpeech,
    #[error("there is no conversation {} (it may have been deleted); leave out session_id to start a new one", echo(.0.as_str(), SHORT_ECHO))]
    SessionNotFound(SessionId),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{} is not set up on this server; {}", stage_name(*.0), setup_hint(*.0))]
    NotConfigured(Stage),
    /// A stage is set up, but in a way that cannot work (e.g. an embeddings model of the wrong dimension).
    #[error("{0}")]
    Misconfigured(String),
    #[error("the {} failed: {}", provider_name(*.stage), .error.user_message())]
    Provider { stage: Stage, error: ProviderError },
    /// No token, or not one this server knows. The message never repeats what was sent.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Refused whatever the token: another site's page, a host name this server does not answer to, or a
    /// change only an admin may make.
    #[error("{0}")]
    Forbidden(String),
    #[error("too many questions in a short time; wait {retry_after_secs} s and ask again")]
    RateLimited { retry_after_secs: u64 },
    #[error("this client has {limit} sockets open already, as many as it may; close one (or another tab) first")]
    TooManySockets { limit: usize },
    #[error(
        "the server is answering as many questions as it can and {} more are waiting already; ask again in {} s",
        .0.waiting,
        .0.retry_after_secs
    )]
    Busy(QueueFull),
    #[error("the server is shutting down; ask again in a few seconds")]
    ShuttingDown,
    /// The detail is logged, not sent.
    #[error("something went wrong on the server; the details are in its log")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) | Self::MissingAudio(_) | Self::BrokenMessage(_) => StatusCode::BAD_REQUEST,
            Self::Rejected { status, .. } => *status,
            Self::PayloadTooLarge { .. } | Self::RecordingTooLong(_) | Self::MessageTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NoSpeech | Self::UnreadableAudio(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::SessionNotFound(_) | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotConfigured(_) | Self::Misconfigured(_) | Self::Busy(_) | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Provider { error, .. } if error.timed_out() => StatusCode::GATEWAY_TIMEOUT,
            Self::Provider { error, .. } if error.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Provider { .. } => StatusCode::BAD_GATEWAY,
            Self::RateLimited { .. } | Self::TooManySockets { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest(_) | Self::Rejected { .. } | Self::UnreadableAudio(_) | Self::BrokenMessage(_) => {
                ErrorCode::InvalidRequest
            }
            Self::MissingAudio(_) => ErrorCode::MissingAudio,
            Self::PayloadTooLarge { .. }
            | Self::RecordingTooLong(_)
            | Self::MessageTooLarge { .. }
            | Self::UriTooLong { .. }
            | Self::HeadersTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::NoSpeech => ErrorCode::NoSpeech,
            Self::SessionNotFound(_) => ErrorCode::SessionNotFound,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            Self::NotConfigured(_) | Self::Misconfigured(_) => ErrorCode::NotConfigured,
            Self::Busy(_) | Self::ShuttingDown => ErrorCode::ServerBusy,
            Self::Provider { error, .. } if error.is_unavailable() => ErrorCode::ProviderUnavailable,
            Self::Provider { .. } => ErrorCode::ProviderError,
            Self::RateLimited { .. } | Self::TooManySockets { .. } => ErrorCode::RateLimited,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// What the client reads. Whatever a message quotes of the request was cut short where it was quoted;
    /// this bounds the whole once more.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), sentence(&echo(&self.to_string(), LONGEST_MESSAGE)))
    }

    /// The error a bare status stands for, for the responses nothing of ours made (the router's 405, a file
    /// service's refusal, an extractor's plain-text rejection): the client still gets the error body.
    pub fn from_status(status: StatusCode) -> Self {
        let reason = status.canonical_reason().unwrap_or("refused").to_lowercase();
        match status {
            StatusCode::NOT_FOUND => Self::NotFound("there is nothing at this address".into()),
            StatusCode::METHOD_NOT_ALLOWED => {
                Self::MethodNotAllowed("this address does not take that method; the Allow header lists the ones it takes".into())
            }
            StatusCode::UNAUTHORIZED => Self::Unauthorized("this request needs a valid sign-in token"),
            StatusCode::FORBIDDEN => Self::Forbidden("this request is not allowed".into()),
            StatusCode::PAYLOAD_TOO_LARGE => Self::Rejected { status, message: "the request is larger than this server accepts".into() },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::UnsupportedMediaType("the request's content type is not one this address takes".into())
            }
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited { retry_after_secs: 1 },
            status if status.is_server_error() => Self::Internal(format!("a bare {status} from inside the server")),
            status => Self::Rejected { status, message: format!("the request was refused ({status} {reason})") },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            Self::Provider { stage, error } => tracing::warn!(?stage, %error, "provider failed"),
            _ if status.is_server_error() => tracing::warn!(error = %self, "request failed"),
            _ => tracing::debug!(error = %self, %status, "request refused"),
        }
        let mut response = (status, Json(self.body())).into_response();
        // For the metrics' count of errors by code (see `super::metrics::count_errors`).
        response.extensions_mut().insert(self.code());
        match self {
            Self::RateLimited { retry_after_secs } | Self::Busy(QueueFull { retry_after_secs, .. }) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Self::ShuttingDown => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(SHUTTING_DOWN_RETRY_SECS));
            }
            Self::Unauthorized(_) => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"parlance\""));
            }
            _ => {}
        }
        response
    }
}

/// A failure of the OpenAI-compatible routes (`/v1`): the status and code [`ApiError`] gives it, in OpenAI's
/// error shape, which its SDKs read.
#[derive(Debug)]
pub struct OpenAiApiError(pub ApiError);

impl<E: Into<ApiError>> From<E> for OpenAiApiError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl OpenAiApiError {
    pub fn body(&self) -> OpenAiErrorBody {
        let kind = match self.0.status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            status if status >= 500 => "server_error",
            _ => "invalid_request_error",
        };
        let body = self.0.body();
        let code = serde_json::to_value(body.code).ok().and_then(|code| code.as_str().map(str::to_owned)).unwrap_or_default();
        OpenAiErrorBody { error: OpenAiError { message: body.message, kind: kind.to_owned(), code } }
    }
}

impl IntoResponse for OpenAiApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        // The same status, headers and log line as the /api error, with OpenAI's body instead.
        let original = self.0.into_response();
        let mut response = (original.status(), Json(body)).into_response();
        for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
            if let Some(value) = original.headers().get(&name) {
                response.headers_mut().insert(name, value.clone());
            }
        }
        if let Some(code) = original.extensions().get::<ErrorCode>() {
            response.extensions_mut().insert(*code);
        }
        response
    }
}

/// The error body for a provider failure that does not fail the whole request (e.g. speech).
pub fn provider_error_body(stage: Stage, error: &ProviderError) -> ErrorBody {
    let code = if error.is_unavailable() { ErrorCode::ProviderUnavailable } else { ErrorCode::ProviderError };
    ErrorBody::new(code, sentence(&format!("the {} failed: {}", provider_name(stage), error.user_message())))
}

/// Why the answer comes without audio (the written answer still comes). A local voice's failure is logged;
/// the user learns only that it failed.
pub fn speech_error_body(failure: &SpeechFailure) -> ErrorBody {
    match failure {
        SpeechFailure::NotConfigured => ApiError::NotConfigured(Stage::Tts).body(),
        SpeechFailure::Tts(TtsError::Provider(provider)) => provider_error_body(Stage::Tts, provider),
        SpeechFailure::Tts(error @ TtsError::NothingToSay) => ErrorBody::new(ErrorCode::Internal, sentence(&error.to_string())),
        SpeechFailure::Tts(_) => ErrorBody::new(
            ErrorCode::Internal,
            sentence("the local voice could not read this answer aloud; the details are in the server's log"),
        ),
        SpeechFailure::Stopped(detail) => ApiError::Internal(detail.clone()).body(),
    }
}

/// The `error` event of a socket message or turn that failed; the socket stays open.
pub fn socket_error_body(error: SocketError) -> ErrorBody {
    let error = match error {
        SocketError::Protocol(error) => error.into(),
        SocketError::Recording(error) => error.into(),
        SocketError::RateLimited { retry_after_secs } => ApiError::RateLimited { retry_after_secs },
        SocketError::Turn(error) => {
            let error = ApiError::from(error);
            tracing::warn!(%error, code = error.code().as_str(), "streamed turn failed");
            error
        }
        SocketError::NotStored(error) => {
            let error = ApiError::from(error);
            tracing::error!(%error, "a streamed turn could not be stored");
            error
        }
    };
    error.body()
}

impl From<TurnError> for ApiError {
    fn from(error: TurnError) -> Self {
        match error {
            TurnError::InvalidQuestion(message) => Self::InvalidRequest(message),
            TurnError::NotConfigured(stage) => Self::NotConfigured(stage),
            TurnError::SessionNotFound(id) => Self::SessionNotFound(id),
            TurnError::NoSpeech => Self::NoSpeech,
            TurnError::Stt(error) => error.into(),
            TurnError::Agent(error) => error.into(),
            TurnError::Sessions(error) => error.into(),
            TurnError::Archive(error) => error.into(),
            TurnError::Tts(error) => error.into(),
            TurnError::Busy(full) => Self::Busy(full),
            TurnError::ShuttingDown => Self::ShuttingDown,
        }
    }
}

impl From<ArchiveError> for ApiError {
    fn from(error: ArchiveError) -> Self {
        match error {
            ArchiveError::Off | ArchiveError::NotFound(_) => Self::NotFound(error.to_string()),
            // Paths and causes go to the log only.
            ArchiveError::Io { .. } | ArchiveError::Transcript { .. } | ArchiveError::Stopped(_) => Self::Internal(error.to_string()),
        }
    }
}

impl From<SttError> for ApiError {
    fn from(error: SttError) -> Self {
        match error {
            SttError::Provider(error) => Self::Provider { stage: Stage::Stt, error },
            SttError::Audio(error) => error.into(),
            error @ (SttError::Load { .. } | SttError::Inference(_)) => Self::Internal(error.to_string()),
        }
    }
}

impl From<TtsError> for ApiError {
    fn from(error: TtsError) -> Self {
        match error {
            TtsError::Provider(error) => Self::Provider { stage: Stage::Tts, error },
            TtsError::NothingToSay => Self::InvalidRequest(error.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::Llm(error) => error.into(),
        }
    }
}

impl From<LlmError> for ApiError {
    fn from(error: LlmError) -> Self {
        match error {
            LlmError::Provider(error) => Self::Provider { stage: Stage::Llm, error },
            LlmError::ConversationTooLong { needed, limit } => Self::InvalidRequest(format!(
                "the conversation is too long for the language model ({needed} tokens, it holds {limit}); start a new conversation"
            )),
            LlmError::Local(error) => Self::Internal(error.to_string()),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<AudioError> for ApiError {
    fn from(error: AudioError) -> Self {
        match error {
            AudioError::Empty => Self::MissingAudio("the audio file is empty; record again and send the recording".into()),
            AudioError::Unsupported { .. } => Self::UnsupportedMediaType(error.to_string()),
        }
    }
}

impl From<DecodeError> for ApiError {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::Undecodable { .. } => Self::UnreadableAudio(error.to_string()),
            DecodeError::TooLong { .. } => Self::RecordingTooLong(error.to_string()),
            DecodeError::Resample(_) => Self::Internal(error.to_string()),
        }
    }
}

impl From<KnowledgeError> for ApiError {
    fn from(error: KnowledgeError) -> Self {
        match error {
            KnowledgeError::Ingest(IngestError::InvalidNote { .. } | IngestError::NoNotes) => Self::InvalidRequest(error.to_string()),
            KnowledgeError::NotFound(_) => Self::NotFound(error.to_string()),
            KnowledgeError::Shared(_) => Self::Forbidden(error.to_string()),
            KnowledgeError::NoEmbedder => Self::NotConfigured(Stage::Embeddings),
            KnowledgeError::Embeddings(EmbedError::Dimensions { .. })
            | KnowledgeError::Ingest(IngestError::Embeddings(EmbedError::Dimensions { .. })) => Self::Misconfigured(error.to_string()),
            KnowledgeError::Embeddings(EmbedError::Provider(error))
            | KnowledgeError::Ingest(IngestError::Embeddings(EmbedError::Provider(error))) => {
                Self::Provider { stage: Stage::Embeddings, error }
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<EmbedError> for ApiError {
    fn from(error: EmbedError) -> Self {
        match error {
            EmbedError::Provider(error) => Self::Provider { stage: Stage::Embeddings, error },
            EmbedError::Dimensions { .. } => Self::Misconfigured(error.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<DocumentError> for ApiError {
    fn from(mut error: DocumentError) -> Self {
        // The file name is the client's, of any length: quoted as an id is.
        let (DocumentError::WrongExtension { name }
        | DocumentError::Binary { name, .. }
        | DocumentError::NotUtf8 { name }
        | DocumentError::Empty { name }) = &mut error;
        *name = echo(name, SHORT_ECHO);
        match error {
            DocumentError::Empty { .. } => Self::InvalidRequest(error.to_string()),
            DocumentError::WrongExtension { .. } | DocumentError::Binary { .. } | DocumentError::NotUtf8 { .. } => {
                Self::UnsupportedMediaType(error.to_string())
            }
        }
    }
}

impl From<ProtocolError> for ApiError {
    fn from(error: ProtocolError) -> Self {
        match error {
            // The parser's words quote the message, which may be as long as a socket message may be.
            ProtocolError::Malformed(detail) => Self::InvalidRequest(ProtocolError::Malformed(echo(&detail, LONG_ECHO)).to_string()),
            other => Self::InvalidRequest(other.to_string()),
        }
    }
}

impl From<RecordingError> for ApiError {
    fn from(error: RecordingError) -> Self {
        match error {
            RecordingError::TooLarge { limit_bytes } => Self::PayloadTooLarge { limit_bytes },
            RecordingError::Audio(error) => error.into(),
            RecordingError::Wav(error) => Self::Internal(error.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::PayloadTooLarge { limit_bytes: super::JSON_BODY_LIMIT };
        }
        // serde's words quote the offending value, which may be most of the body.
        Self::Rejected { status, message: echo(&rejection.body_text(), LONG_ECHO) }
    }
}

impl ApiError {
    /// A multipart upload that could not be read; `limit_bytes` is the configured upload limit, so a person
    /// whose recording was too long learns how much is allowed.
    pub fn upload(error: MultipartError, limit_bytes: usize) -> Self {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::PayloadTooLarge { limit_bytes };
        }
        Self::InvalidRequest(format!("the upload is not a readable multipart form: {}", echo(&error.body_text(), LONG_ECHO)))
    }

    /// A request that is not a multipart form at all; `expected` says what to send instead.
    pub fn not_a_form(rejection: &MultipartRejection, expected: &str) -> Self {
        Self::Rejected { status: rejection.status(), message: format!("{expected} ({})", echo(&rejection.body_text(), LONG_ECHO)) }
    }

    pub fn bad_query(rejection: &QueryRejection) -> Self {
        Self::InvalidRequest(format!("the query string is not valid: {}", echo(&rejection.body_text(), LONG_ECHO)))
    }
}

/// What a message may quote of an id or a path the client sent.
pub const SHORT_ECHO: usize = 64;
/// What a message may quote of a parser's complaint (which itself quotes the request).
pub const LONG_ECHO: usize = 240;
/// The longest message of an error body.
const LONGEST_MESSAGE: usize = 600;

/// `input` as a message may repeat it: at most `max_chars` characters, control characters shown as spaces, and
/// an ellipsis where it was cut.
pub fn echo(input: &str, max_chars: usize) -> String {
    let mut shown: String = input.chars().take(max_chars).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if input.chars().nth(max_chars).is_some() {
        shown.push('…');
    }
    shown
}

/// Sizes as people read them: "25 MiB", "256 KiB".
fn human_size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= MIB => format!("{:.1} MiB", b as f64 / MIB as f64),
        b => format!("{} KiB", b.div_ceil(1024)),
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Stt => "speech-to-text",
        Stage::Llm => "the language model",
        Stage::Tts => "text-to-speech",
        Stage::Embeddings => "the embeddings model",
    }
}

fn provider_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Stt => "speech-to-text provider",
        Stage::Llm => "language model provider",
        Stage::Tts => "text-to-speech provider",
        Stage::Embeddings => "embeddings provider",
    }
}

fn setup_hint(stage: Stage) -> &'static str {
    match stage {
        Stage::Stt => {
            "run `parlance models` to install the local model, or set PARLANCE_STT_BASE_URL or PARLANCE_OPENAI_BASE_URL to an OpenAI-compatible server"
        }
        Stage::Llm => {
            "run `parlance models` to install the local model, or set PARLANCE_LLM_BASE_URL or PARLANCE_OPENAI_BASE_URL to an OpenAI-compatible server"
        }
        Stage::Tts => {
            "run `parlance models` to install the local voice (or use --tts-voice-engine espeak), or set PARLANCE_TTS_BASE_URL or PARLANCE_OPENAI_BASE_URL to an OpenAI-compatible server"
        }
        Stage::Embeddings => {
            "run `parlance models` to install the local model, or set PARLANCE_EMBEDDINGS_BASE_URL or PARLANCE_OPENAI_BASE_URL to an OpenAI-compatible server"
        }
    }
}

/// Messages are composed from lower-case fragments; people read them as sentences.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut sentence: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !sentence.ends_with(['.', '!', '?']) {
        sentence.push('.');
    }
    sentence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_cut_short_and_say_so() {
        assert_eq!(echo("short", 10), "short");
        assert_eq!(echo("abcdef", 3), "abc…");
        assert_eq!(echo("line\nbreak", 20), "line break", "no control characters");
        assert_eq!(echo("ééé", 2), "éé…", "cut between characters, not bytes");
    }

    #[test]
    fn a_bare_status_becomes_an_error_with_its_code() {
        assert_eq!(ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED).code(), ErrorCode::MethodNotAllowed);
        assert_eq!(ApiError::from_status(StatusCode::NOT_FOUND).code(), ErrorCode::NotFound);
        let range = ApiError::from_status(StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!((range.status(), range.code()), (StatusCode::RANGE_NOT_SATISFIABLE, ErrorCode::InvalidRequest));
        assert_eq!(ApiError::from_status(StatusCode::INTERNAL_SERVER_ERROR).code(), ErrorCode::Internal);
    }

    #[test]
    fn no_message_grows_with_the_request() {
        let body = ApiError::InvalidRequest("x".repeat(100_000)).body();
        assert!(body.message.chars().count() <= LONGEST_MESSAGE + 2, "{}", body.message.len());
    }
}
