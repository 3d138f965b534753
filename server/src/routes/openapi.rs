//! `GET /api/openapi.json`: the API described for client generators and people writing their own clients.

use axum::Json;
use parlance_shared::*;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Parlance", description = "A self-hosted voice assistant: spoken or typed turns in, written and spoken answers out.\n\n\
Streaming conversation: open a WebSocket at `GET /api/ws` (one socket is one session, turns one after another). \
Send `ClientMessage` values as JSON text frames and the recorded audio as binary frames between `start` and \
`end_turn`; the server sends `ServerEvent` values as JSON text frames: status, transcript, answer_delta, \
tool_call, audio_chunk (one per spoken sentence, play in `sequence` order), then done, interrupted or error. \
A turn that waits for others to finish first gets a status `queued` with its `position` in line (1: next). \
The server pings the socket and closes it when pings go unanswered or the client is idle too long; a message \
over the size limit closes it with 1009. The README describes the exchange.\n\n\
Limits: the server answers a few turns at once and lets a few more wait; past that a turn gets 503 `server_busy` \
with `Retry-After`. Every error, the router's own 404 and 405 included, has an `ErrorBody`.\n\n\
Sign-in: a server with a token (`--token`, `--users-file`, or the one it makes when open to the network) needs \
`Authorization: Bearer <token>` on every `/api` call; the socket takes it as a second subprotocol, \
`Sec-WebSocket-Protocol: parlance, parlance.bearer.<token>`, and answers with `parlance`. Requests that change \
something from another site's page (`Origin`) are refused with 403, as are host names the server does not answer to."),
    paths(super::health::health, super::chat::chat, super::voice::voice, super::sessions::list, super::sessions::history, super::sessions::rename, super::sessions::delete, super::sessions::account,
        super::sessions::archive, super::sessions::archived_audio,
        super::knowledge::add, super::knowledge::list, super::knowledge::read, super::knowledge::delete, super::knowledge::search,
        super::v1::models, super::v1::chat_completions, super::v1::transcriptions, super::v1::speech),
    components(schemas(ServerEvent, TurnState, ClientMessage, AudioEncoding, HealthSummary)),
    tags(
        (name = "turns", description = "Ask a question, typed or spoken"),
        (name = "sessions", description = "List, read, rename or forget conversations and their archived audio; who is signed in"),
        (name = "knowledge", description = "Notes the assistant can search: add, list, read, delete, search"),
        (name = "health", description = "What the server runs on"),
        (name = "openai", description = "OpenAI's API, served by Parlance's models (model `parlance` is the agent); errors in OpenAI's shape"),
    )
)]
pub struct ApiDoc;

/// The multipart form of `POST /api/voice`, for the document only: the handler reads the parts itself.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct VoiceForm {
    /// The recording: WAV, WebM/Opus, Ogg/Opus, MP4/AAC, MP3 or FLAC (detected from the bytes).
    #[schema(value_type = String, format = Binary)]
    audio: Vec<u8>,
    /// Continue this conversation; leave out to start a new one.
    session_id: Option<String>,
}

/// The multipart form of `POST /api/knowledge`, for the document only.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DocumentForm {
    /// A Markdown (.md) or plain text (.txt) file, UTF-8; repeat the field for several. The first `# ` heading
    /// becomes the title, else the file name.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The multipart form of `POST /v1/audio/transcriptions`, for the document only.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TranscriptionForm {
    /// The recording, in any format `POST /api/voice` takes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Any name: the server's speech-to-text stage transcribes.
    model: String,
    /// `json` (default), `text` or `verbose_json`.
    response_format: Option<String>,
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
