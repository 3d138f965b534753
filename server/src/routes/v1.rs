//! OpenAI's API, served by Parlance (`/v1`): speech to text, text to speech and chat, backed by whatever this
//! server runs (the local models by default). OpenAI's SDKs and the apps built on them can then use Parlance
//! as a private speech and assistant server. The model `parlance` is the agent itself, with its tools, the
//! notes and the caller's memories; the conversation is the client's, and nothing is stored. Errors come in
//! OpenAI's shape ([`OpenAiApiError`]), with Parlance's stable codes.

use std::convert::Infallible;
use std::sync::LazyLock;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Multipart, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::{Stream, StreamExt};
use parlance_shared::openai::{
    AGENT_MODEL, AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, ChunkDelta,
    ChunkToolCall, EmbeddingList, EmbeddingsInput, EmbeddingsRequest, FunctionCall, MessageToolCall, ModelCard, ModelList, OpenAiErrorBody,
    SpeechRequest, Transcription, TranscriptionSegment, VerboseTranscription,
};
use parlance_shared::{HistoryTurn, Role, ServerEvent, Stage};

use super::error::{ApiError, OpenAiApiError, SHORT_ECHO, echo};
use crate::access::Caller;
use crate::audio::{AudioUpload, SPEECH_SAMPLE_RATE, decode_speech, encode};
use crate::events::EventSink;
use crate::llm::{ChatEvent, ChatMessage, ChatRequest, ToolCall, ToolSpec};
use crate::pipeline::Completion;
use crate::state::AppState;
use crate::tts::{Delivery, SpeechRate};

/// The most texts one `/v1/embeddings` call takes, as OpenAI's.
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// The longest text `/v1/audio/speech` reads, as OpenAI's.
pub const MAX_SPEECH_CHARS: usize = 4096;

/// When this server started: the `created` time of its models.
static STARTED: LazyLock<i64> = LazyLock::new(|| Utc::now().timestamp());

/// `GET /v1/models`: `parlance` (the agent), and the models its stages run.
#[utoipa::path(get, path = "/v1/models", tag = "openai", responses((status = 200, body = ModelList)))]
pub async fn models(State(state): State<AppState>) -> Json<ModelList> {
    let card = |id: String| ModelCard { id, object: "model".into(), created: *STARTED, owned_by: "parlance".into() };
    let mut data = Vec::new();
    for (stage, info) in state.pipeline.stages() {
        let Some(info) = info else { continue };
        if stage == Stage::Llm {
            data.push(card(AGENT_MODEL.to_owned()));
        }
        data.push(card(info.model));
    }
    Json(ModelList { object: "list".into(), data })
}

/// `POST /v1/chat/completions`: the agent's answer to the last user message, with the user and assistant
/// messages before it as the conversation; streamed as server-sent events with `stream: true`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The answer (`text/event-stream` of `ChatCompletionChunk`s when streamed)", body = ChatCompletion),
        (status = 400, description = "No user message last, or malformed JSON", body = OpenAiErrorBody),
        (status = 404, description = "A model other than `parlance`", body = OpenAiErrorBody),
        (status = 413, description = "Body over 256 KiB", body = OpenAiErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = OpenAiErrorBody),
        (status = 422, description = "JSON of the wrong shape", body = OpenAiErrorBody),
        (status = 429, description = "Too many turns; see Retry-After", body = OpenAiErrorBody),
        (status = 502, description = "A model provider failed", body = OpenAiErrorBody),
        (status = 503, description = "No language model is set up, or as many turns run and wait as may (see Retry-After)", body = OpenAiErrorBody),
        (status = 504, description = "A model provider did not answer in time", body = OpenAiErrorBody),
    ))]
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request: Result<Json<ChatCompletionRequest>, JsonRejection>,
) -> Result<Response, OpenAiApiError> {
    let Json(request) = request.map_err(ApiError::from)?;
    if request.model != AGENT_MODEL {
        let model = language_model(&state);
        if model.as_deref() == Some(request.model.as_str()) {
            return model_completion(state, request).await;
        }
        let also = model.map(|model| format!(", or `{model}` for the language model itself")).unwrap_or_default();
        return Err(ApiError::NotFound(format!(
            "there is no model {:?} here; ask for `{AGENT_MODEL}` (the agent){also}",
            echo(&request.model, SHORT_ECHO)
        ))
        .into());
    }
    let (history, question) = conversation(&request)?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = Utc::now().timestamp();
    if !request.stream {
        let answer = state.pipeline.answer_only(&history, &question, &caller, &EventSink::none()).await?;
        let message = AssistantMessage { role: "assistant".into(), content: answer.text, tool_calls: Vec::new() };
        let choice = ChatChoice { index: 0, message, finish_reason: "stop".into() };
        let completion = ChatCompletion { id, object: "chat.completion".into(), created, model: AGENT_MODEL.into(), choices: vec![choice] };
        return Ok(Json(completion).into_response());
    }
    let header = ChunkHeader { id, created, model: AGENT_MODEL.into() };
    Ok(Sse::new(answer_events(state, caller, history, question, header)).keep_alive(KeepAlive::default()).into_response())
}

/// The language model's id in `/v1/models`, if the server has one.
fn language_model(state: &AppState) -> Option<String> {
    state.pipeline.stages().into_iter().find(|(stage, _)| *stage == Stage::Llm).and_then(|(_, info)| info).map(|info| info.model)
}

/// The language model itself, for a client that runs its own agent and tools (another Parlance, whose
/// OpenAI-compatible backend points here): the client's whole conversation and tools go to the model, and
/// its text and tool calls come back in OpenAI's shape. Nothing of Parlance's own (instructions, tools,
/// notes, memories) is added.
async fn model_completion(state: AppState, request: ChatCompletionRequest) -> Result<Response, OpenAiApiError> {
    let chat =
        ChatRequest { messages: model_messages(&request)?, tools: request.tools.iter().map(tool_spec).collect(), default_call: None };
    let completion = state.pipeline.complete_only(chat).await?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = Utc::now().timestamp();
    if request.stream {
        let events = model_events(completion, ChunkHeader { id, created, model: request.model });
        return Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response());
    }
    let mut completion = completion;
    let (mut content, mut calls) = (String::new(), Vec::new());
    while let Some(event) = completion.events.next().await {
        match event.map_err(ApiError::from)? {
            ChatEvent::TextDelta(text) => content.push_str(&text),
            ChatEvent::ToolCall(call) => calls.push(wire_call(call)),
        }
    }
    let finish_reason = if calls.is_empty() { "stop" } else { "tool_calls" };
    let message = AssistantMessage { role: "assistant".into(), content, tool_calls: calls };
    let choice = ChatChoice { index: 0, message, finish_reason: finish_reason.into() };
    Ok(Json(ChatCompletion { id, object: "chat.completion".into(), created, model: request.model, choices: vec![choice] }).into_response())
}

/// The client's messages as the model reads them: every role, tool calls and results included.
fn model_messages(request: &ChatCompletionRequest) -> Result<Vec<ChatMessage>, ApiError> {
    if request.messages.is_empty() {
        return Err(ApiError::InvalidRequest("`messages` is empty; send at least the user's question".into()));
    }
    request
        .messages
        .iter()
        .map(|message| {
            let text = message.content.as_ref().map(|content| content.text()).unwrap_or_default();
            Ok(match message.role.as_str() {
                "system" | "developer" => ChatMessage::System(text),
                "user" => ChatMessage::User(text),
                "assistant" => ChatMessage::Assistant {
                    content: text,
                    tool_calls: message
                        .tool_calls
                        .iter()
                        .map(|call| ToolCall {
                            id: call.id.clone(),
                            name: call.function.name.clone(),
                            arguments: call.function.arguments.clone(),
                        })
                        .collect(),
                },
                "tool" => {
                    let Some(call_id) = message.tool_call_id.clone() else {
                        return Err(ApiError::InvalidRequest("a `tool` message needs the `tool_call_id` it answers".into()));
                    };
                    ChatMessage::Tool { call_id, content: text }
                }
                other => {
                    return Err(ApiError::InvalidRequest(format!(
                        "role {:?} is not one of system, developer, user, assistant or tool",
                        echo(other, SHORT_ECHO)
                    )));
                }
            })
        })
        .collect()
}

fn tool_spec(tool: &parlance_shared::openai::ChatTool) -> ToolSpec {
    ToolSpec {
        name: tool.function.name.clone(),
        description: tool.function.description.clone().unwrap_or_default(),
        parameters: tool.function.parameters.clone().unwrap_or_else(|| serde_json::json!({ "type": "object", "properties": {} })),
    }
}

fn wire_call(call: ToolCall) -> MessageToolCall {
    MessageToolCall { id: call.id, kind: "function".into(), function: FunctionCall { name: call.name, arguments: call.arguments } }
}

/// What every chunk of one streamed answer repeats.
struct ChunkHeader {
    id: String,
    created: i64,
    model: String,
}

impl ChunkHeader {
    fn event(&self, delta: ChunkDelta, finish: Option<&str>) -> Event {
        let chunk = ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice { index: 0, delta, finish_reason: finish.map(str::to_owned) }],
        };
        Event::default().json_data(chunk).unwrap_or_else(|_| Event::default().data("{}"))
    }
}

/// A failure in the middle of a stream, in OpenAI's error shape (the status line has gone out already).
fn error_event(error: impl Into<OpenAiApiError>) -> Event {
    Event::default().json_data(error.into().body()).unwrap_or_else(|_| Event::default().data("{}"))
}

/// The language model's answer as OpenAI streams it: the role, each piece of text, each tool call whole (in
/// one chunk, with its index), the finish reason (`tool_calls` when there were calls), then `[DONE]`.
fn model_events(mut completion: Completion, header: ChunkHeader) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream::stream! {
        yield Ok(header.event(ChunkDelta { role: Some("assistant".into()), ..ChunkDelta::default() }, None));
        let mut calls = 0u32;
        while let Some(event) = completion.events.next().await {
            match event {
                Ok(ChatEvent::TextDelta(text)) => yield Ok(header.event(ChunkDelta { content: Some(text), ..ChunkDelta::default() }, None)),
                Ok(ChatEvent::ToolCall(call)) => {
                    let MessageToolCall { id, kind, function } = wire_call(call);
                    let delta = ChunkDelta { tool_calls: vec![ChunkToolCall { index: calls, id, kind, function }], ..ChunkDelta::default() };
                    calls += 1;
                    yield Ok(header.event(delta, None));
                }
                Err(error) => {
                    yield Ok(error_event(error));
                    yield Ok(Event::default().data("[DONE]"));
                    return;
                }
            }
        }
        yield Ok(header.event(ChunkDelta::default(), Some(if calls == 0 { "stop" } else { "tool_calls" })));
        yield Ok(Event::default().data("[DONE]"));
    }
}

/// `POST /v1/embeddings`: one vector per input text, from the server's embeddings stage (the local
/// all-MiniLM-L6-v2 by default: 384 dimensions).
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = EmbeddingsRequest,
    responses(
        (status = 200, description = "One embedding per input, in order", body = EmbeddingList),
        (status = 400, description = "No input, an empty text, or too many", body = OpenAiErrorBody),
        (status = 413, description = "Body over 256 KiB", body = OpenAiErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = OpenAiErrorBody),
        (status = 422, description = "JSON of the wrong shape", body = OpenAiErrorBody),
        (status = 502, description = "A model provider failed", body = OpenAiErrorBody),
        (status = 503, description = "No embeddings model is set up", body = OpenAiErrorBody),
        (status = 504, description = "A model provider did not answer in time", body = OpenAiErrorBody),
    ))]
pub async fn embeddings(
    State(state): State<AppState>,
    request: Result<Json<EmbeddingsRequest>, JsonRejection>,
) -> Result<Json<EmbeddingList>, OpenAiApiError> {
    let Json(request) = request.map_err(ApiError::from)?;
    let texts = match request.input {
        EmbeddingsInput::One(text) => vec![text],
        EmbeddingsInput::Many(texts) => texts,
    };
    if texts.is_empty() || texts.iter().any(|text| text.trim().is_empty()) {
        return Err(ApiError::InvalidRequest("`input` holds no text, or an empty one; give the texts to embed".into()).into());
    }
    if texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::InvalidRequest(format!("{} texts at once; the limit is {MAX_EMBEDDING_INPUTS}", texts.len())).into());
    }
    let embedder = state.embedder.as_ref().ok_or(ApiError::NotConfigured(Stage::Embeddings))?;
    let vectors = embedder.embed(&texts).await.map_err(ApiError::from)?;
    let data = vectors
        .into_iter()
        .zip(0u32..)
        .map(|(embedding, index)| parlance_shared::openai::Embedding { object: "embedding".into(), index, embedding })
        .collect();
    Ok(Json(EmbeddingList { object: "list".into(), data, model: request.model }))
}

/// The user and assistant messages before the last, and the last, which must be the user's.
fn conversation(request: &ChatCompletionRequest) -> Result<(Vec<HistoryTurn>, String), ApiError> {
    let spoken: Vec<(Role, String)> = request
        .messages
        .iter()
        .filter_map(|message| {
            let role = match message.role.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                // Parlance keeps its own instructions; tool results are its own business.
                _ => return None,
            };
            Some((role, message.content.as_ref().map(|content| content.text()).unwrap_or_default()))
        })
        .collect();
    match spoken.split_last() {
        Some(((Role::User, question), before)) if !question.trim().is_empty() => {
            let history = before
                .iter()
                .filter(|(_, text)| !text.trim().is_empty())
                .map(|(role, text)| HistoryTurn {
                    role: *role,
                    text: text.clone(),
                    created_at: Utc::now(),
                    sources: Vec::new(),
                    tool_calls: Vec::new(),
                    interrupted: false,
                })
                .collect();
            Ok((history, question.clone()))
        }
        _ => Err(ApiError::InvalidRequest("the last message must be the user's, with text: that is the question".into())),
    }
}

/// The answer as OpenAI streams it: a first chunk with the role, a chunk per piece of text, a last one with
/// the finish reason, then `[DONE]`. A failure midway arrives as an event holding an `error`, as OpenAI's do.
fn answer_events(
    state: AppState,
    caller: Caller,
    history: Vec<HistoryTurn>,
    question: String,
    header: ChunkHeader,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let chunk = move |delta: ChunkDelta, finish: Option<&str>| header.event(delta, finish);
    async_stream::stream! {
        let (sink, mut events) = EventSink::channel();
        yield Ok(chunk(ChunkDelta { role: Some("assistant".into()), ..ChunkDelta::default() }, None));
        let answer = state.pipeline.answer_only(&history, &question, &caller, &sink);
        tokio::pin!(answer);
        let result = loop {
            tokio::select! {
                biased;
                Some(event) = events.recv() => {
                    if let ServerEvent::AnswerDelta { text } = event {
                        yield Ok(chunk(ChunkDelta { content: Some(text), ..ChunkDelta::default() }, None));
                    }
                }
                result = &mut answer => break result,
            }
        };
        while let Ok(event) = events.try_recv() {
            if let ServerEvent::AnswerDelta { text } = event {
                yield Ok(chunk(ChunkDelta { content: Some(text), ..ChunkDelta::default() }, None));
            }
        }
        match result {
            Ok(_) => yield Ok(chunk(ChunkDelta::default(), Some("stop"))),
            Err(error) => yield Ok(error_event(error)),
        }
        yield Ok(Event::default().data("[DONE]"));
    }
}

/// `POST /v1/audio/transcriptions`: multipart with `file` (any format `/api/voice` takes), `model` (any name)
/// and `response_format` `json` (default), `text` or `verbose_json`.
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    request_body(content = super::openapi::TranscriptionForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "`Transcription`; plain text for `text`; `VerboseTranscription` for `verbose_json`", body = Transcription),
        (status = 400, description = "No file, or an unknown response_format", body = OpenAiErrorBody),
        (status = 413, description = "Upload over the limit", body = OpenAiErrorBody),
        (status = 415, description = "Not audio Parlance can read", body = OpenAiErrorBody),
        (status = 422, description = "The recording holds no speech, or its audio cannot be decoded", body = OpenAiErrorBody),
        (status = 502, description = "A model provider failed", body = OpenAiErrorBody),
        (status = 503, description = "No speech-to-text is set up", body = OpenAiErrorBody),
        (status = 504, description = "A model provider did not answer in time", body = OpenAiErrorBody),
    ))]
pub async fn transcriptions(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, OpenAiApiError> {
    let mut multipart = multipart
        .map_err(|rejection| ApiError::not_a_form(&rejection, "send the recording as multipart/form-data in a file field named `file`"))?;
    let (mut audio, mut format) = (None, "json".to_owned());
    let unreadable = |error| ApiError::upload(error, state.max_upload_bytes);
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("file") => audio = Some(field.bytes().await.map_err(unreadable)?),
            Some("response_format") => format = field.text().await.map_err(unreadable)?.trim().to_owned(),
            // model, language, prompt, temperature: the stage transcribes as it is set up.
            _ => {}
        }
    }
    if !matches!(format.as_str(), "json" | "text" | "verbose_json") {
        return Err(ApiError::InvalidRequest(format!(
            "response_format {:?} is not offered here; use json, text or verbose_json",
            echo(&format, SHORT_ECHO)
        ))
        .into());
    }
    let audio = audio.ok_or_else(|| ApiError::MissingAudio("the form has no `file` field; send the recording in it".into()))?;
    let upload = AudioUpload::from_bytes(audio)?;
    let text = state.pipeline.transcribe_only(&upload).await?.trim().to_owned();
    Ok(match format.as_str() {
        "text" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        "verbose_json" => {
            let samples = tokio::task::spawn_blocking(move || decode_speech(&upload, crate::stt::MAX_RECORDING_SECS))
                .await
                .map_err(|error| ApiError::Internal(error.to_string()))?
                .map_err(crate::stt::SttError::from)
                .map_err(crate::pipeline::TurnError::from)?;
            let duration = samples.len() as f64 / f64::from(SPEECH_SAMPLE_RATE);
            let segments = if text.is_empty() {
                Vec::new()
            } else {
                vec![TranscriptionSegment { id: 0, seek: 0, start: 0.0, end: duration, text: text.clone() }]
            };
            Json(VerboseTranscription { task: "transcribe".into(), language: "english".into(), duration, text, segments }).into_response()
        }
        _ => Json(Transcription { text }).into_response(),
    })
}

/// `POST /v1/audio/speech`: `input` spoken by the server's voice, as `wav`, `opus` or `pcm`; without
/// `response_format`, as the voice speaks it (WAV for the local voice).
#[utoipa::path(post, path = "/v1/audio/speech", tag = "openai", request_body = SpeechRequest,
    responses(
        (status = 200, description = "The speech: audio/wav, audio/ogg (Opus) or audio/pcm (24 kHz 16-bit mono)", content_type = "audio/wav"),
        (status = 400, description = "Empty or too long input, or a format not offered", body = OpenAiErrorBody),
        (status = 413, description = "Body over 256 KiB", body = OpenAiErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = OpenAiErrorBody),
        (status = 422, description = "JSON of the wrong shape", body = OpenAiErrorBody),
        (status = 502, description = "A model provider failed", body = OpenAiErrorBody),
        (status = 503, description = "No text-to-speech is set up", body = OpenAiErrorBody),
        (status = 504, description = "A model provider did not answer in time", body = OpenAiErrorBody),
    ))]
pub async fn speech(
    State(state): State<AppState>,
    request: Result<Json<SpeechRequest>, JsonRejection>,
) -> Result<Response, OpenAiApiError> {
    let Json(request) = request.map_err(ApiError::from)?;
    let input = request.input.trim();
    if input.is_empty() {
        return Err(ApiError::InvalidRequest("`input` is empty; give the text to speak".into()).into());
    }
    let length = input.chars().count();
    if length > MAX_SPEECH_CHARS {
        return Err(ApiError::InvalidRequest(format!("`input` is {length} characters long; the limit is {MAX_SPEECH_CHARS}")).into());
    }
    let asked = request.response_format.as_deref().map(str::trim).filter(|format| !format.is_empty());
    let format = asked.unwrap_or("wav").to_owned();
    if !matches!(format.as_str(), "wav" | "opus" | "pcm") {
        return Err(ApiError::InvalidRequest(format!(
            "response_format {:?} is not offered here; use wav, opus or pcm",
            echo(&format, SHORT_ECHO)
        ))
        .into());
    }
    // OpenAI takes 0.25 to 4: a client written for it gets the nearest pace this server's voices have.
    let speed = request.speed.filter(|speed| speed.is_finite()).map(|speed| speed.clamp(0.5, 2.0));
    let rate = SpeechRate::from_client(speed).map_err(ApiError::InvalidRequest)?;
    // OpenAI's clients always name a voice (theirs: `alloy`, ...): one of ours speaks as asked, any other name
    // gets the default rather than a refusal.
    let voice = request.voice.as_deref().and_then(|voice| state.pipeline.choose_voice(Some(voice)).ok().flatten());
    let speech = state.pipeline.speak_only(input, &Delivery { rate, voice }).await?;
    let wav = speech.mime_type.starts_with("audio/wav") || speech.mime_type.starts_with("audio/x-wav");
    // Unasked, the voice's own format goes out as it is (a provider's voice may speak MP3).
    if (format == "wav" && wav) || asked.is_none() {
        return Ok(([(header::CONTENT_TYPE, speech.mime_type)], speech.bytes).into_response());
    }
    if !wav {
        return Err(ApiError::InvalidRequest(format!(
            "this server's voice speaks {}, which it cannot convert to {format}; leave out response_format to get it as it is",
            speech.mime_type
        ))
        .into());
    }
    let converted = tokio::task::spawn_blocking(move || {
        let (samples, rate) = encode::read_wav(&speech.bytes)?;
        match format.as_str() {
            "opus" => encode::to_ogg_opus(&samples, rate).map(|bytes| ("audio/ogg", bytes)),
            _ => encode::to_raw_pcm(&samples, rate).map(|bytes| ("audio/pcm", bytes)),
        }
    })
    .await
    .map_err(|error| ApiError::Internal(error.to_string()))?
    .map_err(|error| ApiError::Internal(error.to_string()))?;
    let (content_type, bytes) = converted;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// Unknown `/v1` paths.
pub async fn not_found(uri: axum::http::Uri) -> OpenAiApiError {
    ApiError::NotFound(format!("there is no OpenAI-compatible endpoint at {}", echo(uri.path(), SHORT_ECHO))).into()
}
