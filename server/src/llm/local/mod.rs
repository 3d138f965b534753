//! A GGUF chat model running inside the server through llama.cpp (Qwen2.5-Coder-0.5B-Instruct by default).
//!
//! - `worker`: the thread that owns the model and serves a queue of requests;
//! - `engine`: the llama.cpp context and its reusable KV cache;
//! - `prompt`: the conversation as ChatML; `tool_call`: the tool-call text format;
//! - `grammar`: the constrained tool-or-answer decision; `sampling`: how tokens are picked;
//! - `output`: the events a request's stream receives.

mod brevity;
mod engine;
mod grammar;
mod output;
mod prompt;
mod sampling;
mod tool_call;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;

pub use self::engine::EngineError;
use self::engine::EngineOptions;
pub use self::tool_call::ToolCallError;
use self::worker::{Job, Reports, WorkerOptions};
pub use self::worker::{Outcome, Report};
use super::{ChatModel, ChatRequest, ChatStream, LlmError};
use crate::backend::BackendInfo;
use crate::cpu::SpeechFirst;

#[derive(Debug, thiserror::Error)]
pub enum LocalLlmError {
    #[error("could not load the language model from {}: {reason}; `parlance models` reinstalls it", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("the language model is not running any more (its worker thread stopped)")]
    WorkerStopped,
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the tool-call grammar was refused by llama.cpp: {0}")]
    Grammar(String),
    #[error("the model's tool call could not be read: {0}")]
    ToolCall(#[from] ToolCallError),
}

/// Settings of the embedded model.
#[derive(Debug, Clone, Copy)]
pub struct LocalChatOptions {
    /// CPU threads llama.cpp uses.
    pub threads: usize,
    /// Tokens the context holds: prompt (system, tools, history) plus answer.
    pub context_tokens: u32,
    /// Longest answer, in tokens: a spoken answer of two to four sentences needs far fewer.
    pub max_answer_tokens: usize,
    /// Longest answer, in sentences; a paragraph break ends it too (see `brevity`).
    pub max_answer_sentences: usize,
    /// Longest tool call, in tokens, before the model is made to answer in words instead.
    pub max_tool_call_tokens: usize,
    /// Tool calls the model may make for one question before it must answer. Small models given a tool
    /// result mostly echo the call again (Qwen2.5-Coder-0.5B puts 98% of its first token on JSON there), so
    /// by default the answer follows the first result.
    pub tool_rounds_per_question: usize,
}

impl Default for LocalChatOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            context_tokens: 4096,
            max_answer_tokens: 200,
            max_answer_sentences: 3,
            max_tool_call_tokens: 128,
            tool_rounds_per_question: 1,
        }
    }
}

pub struct LocalChat {
    jobs: mpsc::Sender<Job>,
    reports: Arc<Reports>,
    info: BackendInfo,
}

impl LocalChat {
    /// Loads the GGUF file at `path` on a new worker thread and waits until it is ready.
    pub fn load(path: &Path, options: LocalChatOptions) -> Result<Self, LocalLlmError> {
        Self::load_sharing_cores(path, options, Arc::new(SpeechFirst::new()))
    }

    /// [`LocalChat::load`], with the model pausing between tokens while a voice sharing `cores` speaks.
    pub fn load_sharing_cores(path: &Path, options: LocalChatOptions, cores: Arc<SpeechFirst>) -> Result<Self, LocalLlmError> {
        let started = Instant::now();
        tracing::info!(file = %path.display(), threads = options.threads, context_tokens = options.context_tokens, "loading the language model");
        let (ready_sender, ready) = mpsc::sync_channel(1);
        let (jobs, queue) = mpsc::channel();
        let reports = Arc::new(Reports::default());
        let worker_options = WorkerOptions {
            engine: EngineOptions { threads: options.threads, context_tokens: options.context_tokens },
            max_answer_tokens: options.max_answer_tokens,
            max_answer_sentences: options.max_answer_sentences,
            max_tool_call_tokens: options.max_tool_call_tokens,
            tool_rounds_per_question: options.tool_rounds_per_question,
            cores,
        };
        let worker_path = path.to_path_buf();
        let worker_reports = Arc::clone(&reports);
        std::thread::Builder::new()
            .name("llm-worker".to_owned())
            .spawn(move || worker::run(worker_path, worker_options, ready_sender, queue, worker_reports))
            .map_err(|e| LocalLlmError::Load { path: path.to_path_buf(), reason: format!("could not start its thread: {e}") })?;
        let loaded = ready.recv().map_err(|_| LocalLlmError::WorkerStopped)??;

        let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(file = %path.display(), model = %loaded.model_name, load_ms, "language model loaded");
        let info = BackendInfo { kind: "local", model: loaded.model_name, location: path.display().to_string(), load_ms: Some(load_ms) };
        Ok(Self { jobs, reports, info })
    }

    /// [`ChatModel::prepare`], returning once the prompt is evaluated (or the preparation skipped).
    pub async fn prepare_now(&self, request: ChatRequest) {
        let (done, finished) = tokio::sync::oneshot::channel();
        if self.jobs.send(Job::Prepare { request, done: Some(done) }).is_ok() {
            let _ = finished.await;
        }
    }

    /// What the most recent requests cost (the last 32, oldest first).
    pub fn reports(&self) -> Vec<Report> {
        self.reports.recent()
    }
}

#[async_trait]
impl ChatModel for LocalChat {
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let (events, mut receiver) = tokio::sync::mpsc::channel(output::BUFFERED_EVENTS);
        self.jobs.send(Job::Answer { request, events }).map_err(|_| LocalLlmError::WorkerStopped)?;
        // Dropping this stream drops the receiver: the worker sees it before its next token and stops.
        Ok(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed())
    }

    fn prepare(&self, request: ChatRequest) {
        // A stopped worker is reported by the request that follows.
        let _ = self.jobs.send(Job::Prepare { request, done: None });
    }

    async fn end_of_turn(&self, request: ChatRequest) -> Option<f32> {
        let (done, probability) = tokio::sync::oneshot::channel();
        self.jobs.send(Job::EndOfTurn { request, done }).ok()?;
        probability.await.ok().flatten()
    }

    fn info(&self) -> BackendInfo {
        self.info.clone()
    }
}
