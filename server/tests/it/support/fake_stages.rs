//! Model stages inside the test process, for the tests about routing, the protocol and errors: no models, no
//! provider over HTTP, and conversations kept in memory. They answer the way the fake OpenAI-compatible server
//! does (`fake_openai.rs`): the transcript the test sets, the clock tool for a question about the time, the
//! memory tool for "Remember that ...", and otherwise an echo that says how much of the conversation the model was shown. They record what they were
//! asked, so tests can check what reached which stage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use parlance_server::audio::{AudioFormat, AudioUpload};
use parlance_server::backend::BackendInfo;
use parlance_server::llm::{ChatEvent, ChatMessage, ChatModel, ChatRequest, ChatStream, LlmError, ToolCall};
use parlance_server::openai::ProviderError;
use parlance_server::sessions::MemorySessions;
use parlance_server::stt::{SpeechToText, SttError};
use parlance_server::tts::{SpeechAudio, TextToSpeech, TtsError};
use parlance_server::{AppState, Settings, Stages};
use parlance_shared::Stage;
use reqwest::StatusCode;

use super::fake_openai::tone_wav;

/// How the fake stages behave; change it with [`FakeStages::configure`].
#[derive(Clone, Default)]
pub struct Behaviour {
    /// What speech-to-text hears.
    pub transcript: String,
    /// What the model answers to a question that needs no tool, instead of echoing it.
    pub answer: Option<String>,
    /// Text the model writes before it calls the clock tool (some models announce their calls).
    pub tool_lead_in: Option<String>,
    /// Pause before each word the model writes, as a model generating at a finite speed.
    pub delta_delay: Duration,
    /// Time a transcription takes.
    pub stt_delay: Duration,
    /// Stages that fail as a provider answering this status would.
    pub failing: HashMap<Stage, StatusCode>,
    /// When set, each answer waits for a permit of its own before its first word: a test holds a turn
    /// running for as long as it likes, then lets it go with `add_permits`.
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
}

/// The model's answers: how many are being written now, and which ones were dropped before the end.
#[derive(Debug, Clone, Default)]
pub struct ChatStreams {
    pub open: usize,
    pub finished: usize,
    /// When each answer dropped early was noticed as dropped.
    pub dropped_at: Vec<Instant>,
}

#[derive(Default)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    /// Each recording transcribed: its format and length in bytes.
    transcribed: Mutex<Vec<(AudioFormat, usize)>>,
    /// Each request to the model.
    asked: Mutex<Vec<ChatRequest>>,
    /// Each text spoken.
    spoken: Mutex<Vec<String>>,
    streams: Mutex<ChatStreams>,
    /// Keep no record of the calls (a long bench: the model's requests alone, each with its conversation so far,
    /// grew the process by ~3 MiB/s).
    forgetful: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn record<T>(&self, list: &Mutex<Vec<T>>, item: T) {
        if !self.forgetful.load(std::sync::atomic::Ordering::Relaxed) {
            list.lock().unwrap().push(item);
        }
    }
}

#[derive(Clone, Default)]
pub struct FakeStages {
    shared: Arc<Shared>,
}

impl FakeStages {
    pub fn new(transcript: &str) -> Self {
        let fakes = Self::default();
        fakes.configure(|behaviour| behaviour.transcript = transcript.to_owned());
        fakes
    }

    /// Stages that answer as usual but keep no record of what they were asked (`transcribed`, `asked`,
    /// `spoken` stay empty), for benches that run for minutes.
    pub fn forgetful(self) -> Self {
        self.shared.forgetful.store(true, std::sync::atomic::Ordering::Relaxed);
        self
    }

    pub fn configure(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.shared.behaviour.lock().unwrap());
    }

    pub fn fail(&self, stage: Stage, status: StatusCode) {
        self.configure(|behaviour| {
            behaviour.failing.insert(stage, status);
        });
    }

    pub fn transcribed(&self) -> Vec<(AudioFormat, usize)> {
        self.shared.transcribed.lock().unwrap().clone()
    }

    pub fn asked(&self) -> usize {
        self.shared.asked.lock().unwrap().len()
    }

    /// The question of each request to the model, in the order the model was asked.
    pub fn questions(&self) -> Vec<String> {
        let asked = self.shared.asked.lock().unwrap();
        asked
            .iter()
            .filter_map(|request| {
                request.messages.iter().rev().find_map(|message| match message {
                    ChatMessage::User(text) => Some(text.clone()),
                    _ => None,
                })
            })
            .collect()
    }

    pub fn spoken(&self) -> Vec<String> {
        self.shared.spoken.lock().unwrap().clone()
    }

    pub fn chat_streams(&self) -> ChatStreams {
        self.shared.streams.lock().unwrap().clone()
    }

    /// Speech-to-text, the language model and text-to-speech; no embeddings.
    pub fn stages(&self) -> Stages {
        let shared = &self.shared;
        Stages {
            stt: Some(Arc::new(FakeStt(Arc::clone(shared)))),
            llm: Some(Arc::new(FakeChat(Arc::clone(shared)))),
            tts: Some(Arc::new(FakeTts(Arc::clone(shared)))),
            embedder: None,
            vad: None,
        }
    }

    /// Parlance on these stages, conversations in memory, with the flags a test adds (and no web app).
    pub fn app(&self, extra: &[&str]) -> Router {
        let settings = self.settings(extra);
        parlance_server::router(self.state(&settings), &settings)
    }

    /// Parlance on these stages on a real port, as `parlance` serves it (each connection's peer address known,
    /// for the per-client limits); its `host:port`.
    pub async fn serve(&self, extra: &[&str]) -> String {
        let settings = self.settings(extra);
        let app = parlance_server::router(self.state(&settings), &settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(parlance_server::without_nagle(listener), app.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .await
                .unwrap();
        });
        address.to_string()
    }

    pub fn settings(&self, extra: &[&str]) -> Settings {
        let mut args = vec!["--frontend-dir", "/nonexistent-parlance-frontend"];
        args.extend_from_slice(extra);
        super::settings(&args)
    }

    pub fn state(&self, settings: &Settings) -> AppState {
        AppState::new(settings, self.stages(), Arc::new(MemorySessions::default()))
    }
}

fn failure(shared: &Shared, stage: Stage) -> Option<ProviderError> {
    let status = shared.behaviour.lock().unwrap().failing.get(&stage).copied()?;
    Some(ProviderError::Status { endpoint: format!("the fake {stage:?} stage"), status, detail: "fake failure".to_owned() })
}

fn info(model: &str) -> BackendInfo {
    BackendInfo { kind: "fake", model: model.to_owned(), location: "in the test process".to_owned(), load_ms: None }
}

struct FakeStt(Arc<Shared>);

#[async_trait]
impl SpeechToText for FakeStt {
    async fn transcribe(&self, audio: &AudioUpload) -> Result<String, SttError> {
        self.0.record(&self.0.transcribed, (audio.format, audio.bytes.len()));
        if let Some(error) = failure(&self.0, Stage::Stt) {
            return Err(error.into());
        }
        let (transcript, delay) = {
            let behaviour = self.0.behaviour.lock().unwrap();
            (behaviour.transcript.clone(), behaviour.stt_delay)
        };
        tokio::time::sleep(delay).await;
        Ok(transcript)
    }

    fn info(&self) -> BackendInfo {
        info("fake-stt")
    }
}

struct FakeChat(Arc<Shared>);

#[async_trait]
impl ChatModel for FakeChat {
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        self.0.record(&self.0.asked, request.clone());
        if let Some(error) = failure(&self.0, Stage::Llm) {
            return Err(error.into());
        }
        let behaviour = self.0.behaviour.lock().unwrap().clone();
        let last = request.messages.last().cloned().unwrap_or(ChatMessage::User(String::new()));
        let offers_clock = request.tools.iter().any(|tool| tool.name == "current_time");
        let offers_memory = request.tools.iter().any(|tool| tool.name == "remember");
        let memory = match &last {
            ChatMessage::User(question) if offers_memory => question.strip_prefix("Remember that ").map(str::to_owned),
            _ => None,
        };
        let mut events: Vec<ChatEvent> = match &last {
            ChatMessage::Tool { content, .. } if content.starts_with("Saved") => words("I will remember that."),
            ChatMessage::Tool { content, .. } => words(&format!("It is {content} right now.")),
            ChatMessage::User(_) if memory.is_some() => vec![ChatEvent::ToolCall(ToolCall {
                id: "call_fake_0".to_owned(),
                name: "remember".to_owned(),
                arguments: serde_json::json!({"fact": memory}).to_string(),
            })],
            ChatMessage::User(question) if offers_clock && question.to_lowercase().contains("time") => {
                let mut events = words(behaviour.tool_lead_in.as_deref().unwrap_or_default());
                events.push(ChatEvent::ToolCall(ToolCall {
                    id: "call_fake_0".to_owned(),
                    name: "current_time".to_owned(),
                    arguments: "{}".to_owned(),
                }));
                events
            }
            _ => match &behaviour.answer {
                Some(answer) => words(answer),
                None => {
                    let said = match &last {
                        ChatMessage::User(text) => text.clone(),
                        _ => String::new(),
                    };
                    let conversation =
                        request.messages.iter().filter(|m| matches!(m, ChatMessage::User(_) | ChatMessage::Assistant { .. }));
                    let earlier = conversation.count().saturating_sub(1);
                    words(&format!("You said: {said}. I was shown {earlier} earlier messages."))
                }
            },
        };
        events.retain(|event| !matches!(event, ChatEvent::TextDelta(text) if text.is_empty()));
        let mut watch = StreamWatch::open(&self.0);
        let delay = behaviour.delta_delay;
        let gate = behaviour.gate;
        Ok(Box::pin(async_stream::stream! {
            if let Some(gate) = gate {
                gate.acquire().await.expect("the gate stays open").forget();
            }
            for event in events {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                yield Ok::<ChatEvent, LlmError>(event);
            }
            watch.finished();
        }))
    }

    fn info(&self) -> BackendInfo {
        info("fake-llm")
    }
}

/// A text written a word at a time.
fn words(text: &str) -> Vec<ChatEvent> {
    text.split_inclusive(' ').map(|word| ChatEvent::TextDelta(word.to_owned())).collect()
}

/// Lives inside an answer's stream: Parlance drops the stream when it stops the answer.
struct StreamWatch {
    shared: Arc<Shared>,
    finished: bool,
}

impl StreamWatch {
    fn open(shared: &Arc<Shared>) -> Self {
        shared.streams.lock().unwrap().open += 1;
        Self { shared: Arc::clone(shared), finished: false }
    }

    fn finished(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamWatch {
    fn drop(&mut self) {
        let mut streams = self.shared.streams.lock().unwrap();
        streams.open -= 1;
        if self.finished {
            streams.finished += 1;
        } else {
            streams.dropped_at.push(Instant::now());
        }
    }
}

struct FakeTts(Arc<Shared>);

#[async_trait]
impl TextToSpeech for FakeTts {
    async fn synthesize(&self, text: &str) -> Result<SpeechAudio, TtsError> {
        self.0.record(&self.0.spoken, text.to_owned());
        if let Some(error) = failure(&self.0, Stage::Tts) {
            return Err(error.into());
        }
        // About a third of a second of tone per word: long enough that tests can check plausibility.
        let words = text.split_whitespace().count();
        Ok(SpeechAudio { bytes: tone_wav(16_000, words.max(1) as f32 / 3.0).into(), mime_type: "audio/wav".to_owned() })
    }

    fn info(&self) -> BackendInfo {
        info("fake-tts")
    }
}
