//! A stand-in for the OpenAI cloud, which tests cannot reach. It speaks the real wire protocol: multipart
//! transcription uploads, chat completions streamed as server-sent events with tool calls split into
//! fragments the way OpenAI sends them, WAV speech, and embeddings. It records every request so tests can
//! check what Parlance sent.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const API_KEY: &str = "sk-test-secret-key-0123456789";
/// What the fake's clock tool answers are built around: the answer quotes the tool's result.
pub const TOOL_CALL_ID: &str = "call_fake_0";

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub json: Option<Value>,
    /// For multipart uploads: field name -> (file name, content type, byte length) or text value.
    pub form: HashMap<String, String>,
}

#[derive(Clone, Default)]
pub struct Behaviour {
    /// What the transcription endpoint hears.
    pub transcript: String,
    /// Endpoint path (e.g. "/v1/chat/completions") -> status to fail with.
    pub failures: HashMap<&'static str, StatusCode>,
    /// Text the model writes before it calls the clock tool (some models announce their calls).
    pub tool_lead_in: Option<String>,
    /// What the model answers to a question that needs no tool, instead of echoing it.
    pub answer: Option<String>,
    /// Pause before each streamed chat chunk (one word each), as a model generating at a finite speed.
    pub delta_delay: Duration,
    /// Time the transcription takes.
    pub stt_delay: Duration,
    /// Time each speech request takes.
    pub speech_delay: Duration,
    /// How many times the model ends its turn without a word after reading a tool's result (small local
    /// models do).
    pub silent_after_tool: usize,
    /// Endpoint paths that take the request and never answer (a provider that hangs).
    pub hanging: Vec<&'static str>,
    /// Endpoint path -> how many of its next requests are answered 503 before it answers normally again (an
    /// overloaded provider that recovers).
    pub overloaded: HashMap<&'static str, usize>,
}

/// What happened to the chat completion streams: how many are sending right now, and which ones the
/// client hung up on before the model had finished.
#[derive(Debug, Clone, Default)]
pub struct ChatStreams {
    pub open: usize,
    pub finished: usize,
    /// When each stream the client dropped early was noticed as dropped.
    pub dropped_at: Vec<Instant>,
}

#[derive(Clone)]
struct Shared {
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    streams: Arc<Mutex<ChatStreams>>,
}

pub struct FakeOpenAi {
    /// Base URL including `/v1`, as a user would configure it.
    pub base_url: String,
    shared: Shared,
}

impl FakeOpenAi {
    pub async fn start(transcript: &str) -> Self {
        let shared = Shared {
            behaviour: Arc::new(Mutex::new(Behaviour { transcript: transcript.to_owned(), ..Behaviour::default() })),
            requests: Arc::default(),
            streams: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/audio/transcriptions", post(transcriptions))
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/audio/speech", post(speech))
            .route("/v1/embeddings", post(embeddings))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake provider");
        let address = listener.local_addr().expect("fake provider address");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("fake provider serves") });
        Self { base_url: format!("http://{address}/v1"), shared }
    }

    pub fn fail(&self, path: &'static str, status: StatusCode) {
        self.shared.behaviour.lock().unwrap().failures.insert(path, status);
    }

    pub fn set_transcript(&self, transcript: &str) {
        self.shared.behaviour.lock().unwrap().transcript = transcript.to_owned();
    }

    /// Changes how the fake behaves from now on.
    pub fn configure(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.shared.behaviour.lock().unwrap());
    }

    pub fn chat_streams(&self) -> ChatStreams {
        self.shared.streams.lock().unwrap().clone()
    }

    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }
}

/// A URL where nothing listens: a provider that is down.
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/v1")
}

/// Records the request, then fails, hangs or lets it through as the behaviour says.
async fn record(shared: &Shared, path: &str, headers: &HeaderMap, json: Option<Value>, form: HashMap<String, String>) -> Option<Response> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    shared.requests.lock().unwrap().push(Recorded { path: path.to_owned(), authorization, json, form });
    let (hangs, overloaded) = {
        let mut behaviour = shared.behaviour.lock().unwrap();
        let overloaded = behaviour.overloaded.get_mut(path).filter(|left| **left > 0).map(|left| *left -= 1).is_some();
        (behaviour.hanging.contains(&path), overloaded)
    };
    if hangs {
        // Longer than any test waits: Parlance must give up first.
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    if overloaded {
        return Some((StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": {"message": "overloaded, try again"}}))).into_response());
    }
    let failure = shared.behaviour.lock().unwrap().failures.get(path).copied();
    failure.map(|status| {
        (status, Json(json!({"error": {"message": format!("fake failure; key {API_KEY}"), "type": "server_error"}}))).into_response()
    })
}

async fn transcriptions(State(shared): State<Shared>, headers: HeaderMap, mut multipart: Multipart) -> Response {
    let mut form = HashMap::new();
    while let Some(field) = multipart.next_field().await.expect("valid multipart from Parlance") {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let bytes = field.bytes().await.expect("field bytes");
        let value = match file_name {
            Some(file) => format!("{file}|{}|{}", content_type.unwrap_or_default(), bytes.len()),
            None => String::from_utf8_lossy(&bytes).into_owned(),
        };
        form.insert(name, value);
    }
    if let Some(failure) = record(&shared, "/v1/audio/transcriptions", &headers, None, form.clone()).await {
        return failure;
    }
    if !form.contains_key("file") || !form.contains_key("model") {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": {"message": "file and model are required"}}))).into_response();
    }
    let (transcript, delay) = {
        let behaviour = shared.behaviour.lock().unwrap();
        (behaviour.transcript.clone(), behaviour.stt_delay)
    };
    tokio::time::sleep(delay).await;
    Json(json!({"text": transcript})).into_response()
}

async fn chat_completions(State(shared): State<Shared>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    if let Some(failure) = record(&shared, "/v1/chat/completions", &headers, Some(request.clone()), HashMap::new()).await {
        return failure;
    }
    assert_eq!(request["stream"], true, "Parlance streams chat completions");
    let messages = request["messages"].as_array().expect("messages array");
    let last = messages.last().expect("at least one message");
    let offers_clock = request["tools"].as_array().is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == "current_time"));

    let silent = last["role"] == "tool" && {
        let mut behaviour = shared.behaviour.lock().unwrap();
        let silent = behaviour.silent_after_tool > 0;
        behaviour.silent_after_tool = behaviour.silent_after_tool.saturating_sub(1);
        silent
    };
    let chunks: Vec<Value> = if silent {
        text_chunks("")
    } else if last["role"] == "tool" {
        let said = format!("It is {} right now.", last["content"].as_str().unwrap_or_default());
        text_chunks(&said)
    } else if last["role"] == "user" && offers_clock && last["content"].as_str().unwrap_or_default().to_lowercase().contains("time") {
        // Split the way OpenAI streams calls: id and name first, the arguments in pieces, then finish.
        let lead_in = shared.behaviour.lock().unwrap().tool_lead_in.clone().unwrap_or_default();
        let mut chunks: Vec<Value> =
            text_chunks(&lead_in).into_iter().filter(|c| c["choices"][0]["delta"]["content"].is_string()).collect();
        chunks.extend([
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": TOOL_CALL_ID, "type": "function", "function": {"name": "current_time", "arguments": ""}}]}, "finish_reason": null}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}, "finish_reason": null}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}, "finish_reason": null}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ]);
        chunks
    } else if let Some(answer) = shared.behaviour.lock().unwrap().answer.clone() {
        text_chunks(&answer)
    } else {
        // Says how much of the conversation it was shown, so tests can check memory.
        let earlier = messages.iter().filter(|m| m["role"] == "user" || m["role"] == "assistant").count() - 1;
        let said = format!("You said: {}. I was shown {earlier} earlier messages.", last["content"].as_str().unwrap_or_default());
        text_chunks(&said)
    };
    let mut events: Vec<String> = chunks
        .into_iter()
        .map(|chunk| {
            let mut event = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": request["model"]});
            event["choices"] = chunk["choices"].clone();
            format!("data: {event}\n\n")
        })
        .collect();
    events.push("data: [DONE]\n\n".to_owned());

    let delay = shared.behaviour.lock().unwrap().delta_delay;
    let mut watch = StreamWatch::open(&shared.streams);
    let body = async_stream::stream! {
        for event in events {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            yield Ok::<_, Infallible>(event);
        }
        watch.finished();
    };
    Response::builder().header(header::CONTENT_TYPE, "text/event-stream").body(Body::from_stream(body)).unwrap()
}

/// Lives inside a streamed response body: the server drops the body when the client hangs up.
struct StreamWatch {
    streams: Arc<Mutex<ChatStreams>>,
    finished: bool,
}

impl StreamWatch {
    fn open(streams: &Arc<Mutex<ChatStreams>>) -> Self {
        streams.lock().unwrap().open += 1;
        Self { streams: Arc::clone(streams), finished: false }
    }

    fn finished(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamWatch {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().unwrap();
        streams.open -= 1;
        if self.finished {
            streams.finished += 1;
        } else {
            streams.dropped_at.push(Instant::now());
        }
    }
}

/// A sentence streamed a word at a time, then the finishing chunk.
fn text_chunks(text: &str) -> Vec<Value> {
    let mut chunks: Vec<Value> = text
        .split_inclusive(' ')
        .map(|word| json!({"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]}))
        .collect();
    chunks.push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
    chunks
}

async fn speech(State(shared): State<Shared>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    if let Some(failure) = record(&shared, "/v1/audio/speech", &headers, Some(request.clone()), HashMap::new()).await {
        return failure;
    }
    let delay = shared.behaviour.lock().unwrap().speech_delay;
    tokio::time::sleep(delay).await;
    let words = request["input"].as_str().unwrap_or_default().split_whitespace().count();
    // About a third of a second of tone per word: long enough that tests can check plausibility.
    let wav = tone_wav(16_000, words.max(1) as f32 / 3.0);
    ([(header::CONTENT_TYPE, "audio/wav")], wav).into_response()
}

async fn embeddings(State(shared): State<Shared>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    if let Some(failure) = record(&shared, "/v1/embeddings", &headers, Some(request.clone()), HashMap::new()).await {
        return failure;
    }
    let inputs = request["input"].as_array().cloned().unwrap_or_default();
    // Letter counts: different texts get different vectors. Returned in reverse, as `index` allows.
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let mut vector = [0f32; 26];
            for c in text.as_str().unwrap_or_default().to_lowercase().bytes().filter(u8::is_ascii_lowercase) {
                vector[usize::from(c - b'a')] += 1.0;
            }
            json!({"object": "embedding", "index": index, "embedding": vector.to_vec()})
        })
        .collect();
    data.reverse();
    Json(json!({"object": "list", "data": data, "model": request["model"]})).into_response()
}

/// A mono 16-bit PCM WAV file holding a 440 Hz tone.
pub fn tone_wav(sample_rate: u32, seconds: f32) -> Vec<u8> {
    let samples = (sample_rate as f32 * seconds) as u32;
    let mut wav = Vec::with_capacity(44 + samples as usize * 2);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&sample_rate.to_le_bytes());
    wav.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(samples * 2).to_le_bytes());
    for n in 0..samples {
        let value = (f32::sin(2.0 * std::f32::consts::PI * 440.0 * n as f32 / sample_rate as f32) * 8000.0) as i16;
        wav.extend_from_slice(&value.to_le_bytes());
    }
    wav
}

/// Reads the duration of a PCM WAV file, checking its header on the way.
pub fn wav_seconds(wav: &[u8]) -> f32 {
    assert_eq!(&wav[0..4], b"RIFF", "not a RIFF file");
    assert_eq!(&wav[8..12], b"WAVE", "not a WAVE file");
    let sample_rate = u32::from_le_bytes(wav[24..28].try_into().unwrap());
    let byte_rate = u32::from_le_bytes(wav[28..32].try_into().unwrap());
    assert!(sample_rate > 0 && byte_rate > 0);
    let data_len = u32::from_le_bytes(wav[40..44].try_into().unwrap());
    data_len as f32 / byte_rate as f32
}
