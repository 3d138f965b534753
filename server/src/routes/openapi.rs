//! `GET /api/openapi.json`: the API described for client generators and people writing their own clients;
//! `GET /api/schema/socket.json`: the socket's messages as a JSON Schema, which OpenAPI cannot describe as
//! operations. Both are made from the contract's own types (`parlance_shared`), and both are checked into the
//! repository (docs/), so every change to the contract shows in review.

use axum::Json;
use parlance_shared::*;
use serde_json::{Value, json};
use utoipa::openapi::schema::{AnyOfBuilder, Ref};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Parlance", description = "A self-hosted voice assistant: spoken or typed turns in, written and spoken answers out.\n\n\
Streaming conversation: open a WebSocket at `GET /api/ws` (one socket is one session, turns one after another). \
The server's first event is `hello` with the protocol version it speaks (as `protocol` in `GET /health`; README: \
Versioning). Send `ClientMessage` values as JSON text frames and the recorded audio as binary frames between `start` and \
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
    paths(super::health::health, super::chat::chat, super::voice::voice, super::sessions::list, super::sessions::history, super::sessions::rename, super::sessions::delete, super::sessions::account, super::voices::list,
        super::sessions::archive, super::sessions::archived_audio,
        super::knowledge::add, super::knowledge::list, super::knowledge::read, super::knowledge::delete, super::knowledge::search,
        super::ws::socket, super::v1::models, super::v1::chat_completions, super::v1::transcriptions, super::v1::speech, super::v1::embeddings,
        document, socket_schema, super::docs::page),
    components(schemas(ServerEvent, TurnState, ClientMessage, AudioEncoding, HealthSummary)),
    tags(
        (name = "turns", description = "Ask a question, typed or spoken"),
        (name = "sessions", description = "List, read, rename or forget conversations and their archived audio; who is signed in"),
        (name = "knowledge", description = "Notes the assistant can search: add, list, read, delete, search"),
        (name = "health", description = "What the server runs on"),
        (name = "docs", description = "This document, the socket's JSON Schema, and the page that shows them; no token needed"),
        (name = "openai", description = "OpenAI's API, served by Parlance's models (model `parlance` is the agent); errors in OpenAI's shape"),
    ),
    modifiers(&HealthForEveryone, &SignIn)
)]
pub struct ApiDoc;

/// Every `/api` and `/v1` operation but the documentation's own needs the token on a server that has one.
struct SignIn;

impl Modify for SignIn {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("The server's sign-in token (`--token`, `--users-file`), when it has one"))
            .build();
        openapi.components.get_or_insert_with(Default::default).add_security_scheme("token", SecurityScheme::Http(scheme));
        for (path, item) in &mut openapi.paths.paths {
            let public = path == "/health" || path == "/api/openapi.json" || path == "/api/docs" || path.starts_with("/api/schema/");
            if public {
                continue;
            }
            let body = if path.starts_with("/v1/") { "OpenAiErrorBody" } else { "ErrorBody" };
            let operations = [&mut item.get, &mut item.post, &mut item.delete, &mut item.put, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                operation.security = Some(vec![SecurityRequirement::new("token", Vec::<String>::new())]);
                let unauthorized = ResponseBuilder::new()
                    .description("No token, or a wrong one (on a server that needs one)")
                    .content("application/json", Content::new(Some(Ref::from_schema_name(body))))
                    .build();
                operation.responses.responses.entry("401".to_owned()).or_insert(RefOr::T(unauthorized));
            }
        }
    }
}

/// `GET /health` answers a `HealthSummary` to a caller without the token, which the derive cannot say (both
/// shapes are JSON objects, and a whole `Health` is a summary too, so `anyOf`, not `oneOf`).
struct HealthForEveryone;

impl Modify for HealthForEveryone {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // The document is served without the token: it names the protocol it describes, not the server's build,
        // which `/health` shows only to a signed-in caller.
        openapi.info.version = format!("protocol {PROTOCOL_VERSION}");
        let either = AnyOfBuilder::new().item(Ref::from_schema_name("Health")).item(Ref::from_schema_name("HealthSummary"));
        let health = openapi.paths.paths.get_mut("/health").and_then(|item| item.get.as_mut());
        if let Some(RefOr::T(ok)) = health.and_then(|operation| operation.responses.responses.get_mut("200")) {
            ok.content.insert("application/json".to_owned(), Content::new(Some(either)));
        }
    }
}

/// The multipart form of `POST /api/voice`, for the document only: the handler reads the parts itself.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct VoiceForm {
    /// The recording: WAV, WebM/Opus, Ogg/Opus, MP4/AAC, MP3 or FLAC (detected from the bytes).
    #[schema(value_type = String, format = Binary)]
    audio: Vec<u8>,
    /// Continue this conversation; leave out to start a new one.
    session_id: Option<String>,
    /// Speak the answer in this voice (an `id` from `GET /api/voices`); leave out or empty for the default.
    voice: Option<String>,
    /// How fast to speak the answer, relative to the voice's own pace (0.5 to 2; default 1).
    speech_rate: Option<f32>,
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

#[utoipa::path(get, path = "/api/openapi.json", tag = "docs", responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[utoipa::path(get, path = "/api/schema/socket.json", tag = "docs",
    responses((status = 200, description = "`ClientMessage` and `ServerEvent` (and the types they use) as a JSON Schema (2020-12) document", body = Object)))]
pub async fn socket_schema() -> Json<Value> {
    Json(socket_messages())
}

/// The socket's messages as one JSON Schema document: the OpenAPI document's schemas for them (OpenAPI 3.1's
/// schemas are JSON Schema 2020-12), with what they refer to under `$defs`.
pub fn socket_messages() -> Value {
    let mut schemas = match serde_json::to_value(ApiDoc::openapi().components.map(|components| components.schemas)) {
        Ok(Value::Object(schemas)) => schemas,
        _ => serde_json::Map::new(),
    };
    let mut defs = serde_json::Map::new();
    let mut wanted = vec!["ClientMessage".to_owned(), "ServerEvent".to_owned()];
    while let Some(name) = wanted.pop() {
        if defs.contains_key(&name) {
            continue;
        }
        if let Some(mut schema) = schemas.remove(&name) {
            wanted.extend(rewrite_refs(&mut schema));
            defs.insert(name, schema);
        }
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "/api/schema/socket.json",
        "title": "Parlance socket messages",
        "description": format!("The JSON text frames of `GET /api/ws`, protocol version {PROTOCOL_VERSION}: the client sends \
            `ClientMessage`s (`#/$defs/ClientMessage`), the server `ServerEvent`s (`#/$defs/ServerEvent`), `hello` first."),
        "x-parlance-protocol": PROTOCOL_VERSION,
        "anyOf": [{ "$ref": "#/$defs/ClientMessage" }, { "$ref": "#/$defs/ServerEvent" }],
        "$defs": defs,
    })
}

/// Points `#/components/schemas/X` references at `#/$defs/X`; returns the names referred to.
fn rewrite_refs(value: &mut Value) -> Vec<String> {
    const OPENAPI: &str = "#/components/schemas/";
    let mut names = Vec::new();
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get_mut("$ref")
                && let Some(name) = reference.strip_prefix(OPENAPI).map(str::to_owned)
            {
                *reference = format!("#/$defs/{name}");
                names.push(name);
            }
            for child in object.values_mut() {
                names.extend(rewrite_refs(child));
            }
        }
        Value::Array(items) => {
            for child in items {
                names.extend(rewrite_refs(child));
            }
        }
        _ => {}
    }
    names
}
