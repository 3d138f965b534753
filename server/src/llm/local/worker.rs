//! The one thread that owns the model and its context (llama.cpp contexts must not be shared between
//! threads). It serves requests from a queue, one at a time and in order, so concurrent turns wait for
//! their turn instead of corrupting each other; each request's events go back through its own channel.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use tokio::sync::mpsc;

use super::brevity::Brevity;
use super::engine::{self, Engine, EngineOptions};
use super::output::{Gone, Output};
use super::{LocalLlmError, grammar, prompt, sampling, tool_call};
use crate::cpu::{MAX_WAIT, SpeechFirst};
use crate::llm::{ChatEvent, ChatMessage, ChatRequest, LlmError, ToolCall, ToolSpec};

/// How many finished requests [`Reports`] remembers.
const REPORTS_KEPT: usize = 32;
/// The decision between calling a tool and answering in words: a call when at least this much of the
/// model's probability for its first token goes to structured output (tags, JSON, code). Measured on
/// Qwen2.5-Coder-0.5B with the agent's prompt: 0.59 for "What does my knowledge base say about ...?",
/// 0.82 for "What time is it?", 0.98 for "Remember that my bike is a Trek", but also 0.33 for "Tell me a
/// joke" (which then searched the notes) against 0.16 for "What is the capital of France?".
const TOOL_INTENT_THRESHOLD: f32 = 0.4;

pub struct WorkerOptions {
    pub engine: EngineOptions,
    pub max_answer_tokens: usize,
    pub max_answer_sentences: usize,
    pub max_tool_call_tokens: usize,
    pub tool_rounds_per_question: usize,
    /// The model waits between tokens while a voice sharing these cores speaks.
    pub cores: Arc<SpeechFirst>,
}

pub enum Job {
    /// Answer `request`, sending what comes out to `events`.
    Answer { request: ChatRequest, events: mpsc::Sender<Result<ChatEvent, LlmError>> },
    /// Evaluate `request`'s prompt now, so the answer to it starts sooner when it is asked for. Skipped if a
    /// request is already waiting (it would only delay that one). `done` hears when it is over, either way.
    Prepare { request: ChatRequest, done: Option<tokio::sync::oneshot::Sender<()>> },
    /// How likely the user's turn is over after `request`'s last message (see `ChatModel::end_of_turn`).
    /// Skipped like a preparation when a request is waiting: by then the turn has ended anyway.
    EndOfTurn { request: ChatRequest, done: tokio::sync::oneshot::Sender<Option<f32>> },
}

/// What the worker tells the loader once the model is ready.
pub struct Loaded {
    pub model_name: String,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    CalledTool,
    /// The reader dropped the stream; generation stopped at the next token.
    Cancelled,
    Failed,
}

/// The cost of one request, for logs, tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV cache entries were reused from the previous request.
    pub reused_tokens: usize,
    /// Time spent evaluating the rest of the prompt.
    pub prefill: Duration,
    /// Tokens sampled (tool call or answer).
    pub generated_tokens: usize,
    pub generation: Duration,
    /// Part of `generation` spent paused while the answer's sentences were synthesized.
    pub waited_for_speech: Duration,
}

/// The most recent reports, oldest first.
#[derive(Default)]
pub struct Reports(Mutex<VecDeque<Report>>);

impl Reports {
    pub fn recent(&self) -> Vec<Report> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).iter().copied().collect()
    }

    fn push(&self, report: Report) {
        let mut reports = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if reports.len() == REPORTS_KEPT {
            reports.pop_front();
        }
        reports.push_back(report);
    }
}

/// The worker thread's body: loads the model, says so through `ready`, then serves `jobs` until every
/// sender is gone.
pub fn run(
    path: PathBuf,
    options: WorkerOptions,
    ready: SyncSender<Result<Loaded, LocalLlmError>>,
    jobs: Receiver<Job>,
    reports: Arc<Reports>,
) {
    let model = match engine::load_model(&path) {
        Ok(model) => model,
        Err(error) => {
            let _ = ready.send(Err(LocalLlmError::Load { path, reason: error.to_string() }));
            return;
        }
    };
    let engine = match Engine::new(&model, options.engine) {
        Ok(engine) => engine,
        Err(error) => {
            let _ = ready.send(Err(LocalLlmError::Load { path, reason: error.to_string() }));
            return;
        }
    };
    let model_name = model
        .meta_val_str("general.name")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "GGUF model".to_owned()));
    let mut worker = Worker {
        engine,
        unspeakable: sampling::unspeakable_tokens(&model),
        structure_openers: sampling::structure_openers(&model),
        turn_enders: sampling::turn_enders(&model),
        options,
        reports,
    };
    if ready.send(Ok(Loaded { model_name })).is_err() {
        return;
    }
    let mut waiting = None;
    while let Some(job) = waiting.take().or_else(|| jobs.recv().ok()) {
        let (served, events) = match job {
            // Dropping `done` tells whoever waits for the preparation that it is over.
            Job::Prepare { request, done: _done } => match jobs.try_recv() {
                // A request already waiting would only be delayed: it is served instead.
                Ok(next) => {
                    waiting = Some(next);
                    (true, None)
                }
                Err(_) => (std::panic::catch_unwind(AssertUnwindSafe(|| worker.prepare(&request))).is_ok(), None),
            },
            Job::EndOfTurn { request, done } => match jobs.try_recv() {
                Ok(next) => {
                    waiting = Some(next);
                    let _ = done.send(None);
                    (true, None)
                }
                Err(_) => match std::panic::catch_unwind(AssertUnwindSafe(|| worker.end_of_turn(&request))) {
                    Ok(probability) => {
                        let _ = done.send(probability);
                        (true, None)
                    }
                    Err(_) => (false, None),
                },
            },
            Job::Answer { request, events } => {
                (std::panic::catch_unwind(AssertUnwindSafe(|| worker.serve(&request, events.clone()))).is_ok(), Some(events))
            }
        };
        if !served {
            // The context may be half-updated: stop rather than answer from a corrupt state. Requests still
            // queued and all later ones fail with `WorkerStopped`.
            tracing::error!("the language model worker panicked and stopped");
            if let Some(events) = events {
                let _ = events.blocking_send(Err(LlmError::Local(LocalLlmError::WorkerStopped)));
            }
            fail_queued(&jobs);
            return;
        }
    }
    tracing::debug!("language model worker stopped: no more requests can come");
}

fn fail_queued(jobs: &Receiver<Job>) {
    for queued in jobs.try_iter() {
        if let Job::Answer { events, .. } = queued {
            let _ = events.blocking_send(Err(LlmError::Local(LocalLlmError::WorkerStopped)));
        }
    }
}

struct Worker<'model> {
    engine: Engine<'model>,
    /// Tokens an answer may not use (see [`sampling::unspeakable_tokens`]).
    unspeakable: Vec<LlamaLogitBias>,
    /// By token id: does it open structured output (see [`sampling::structure_openers`])?
    structure_openers: Vec<bool>,
    /// By token id: does it end a turn?
    turn_enders: Vec<bool>,
    options: WorkerOptions,
    reports: Arc<Reports>,
}

/// Where a request stands, for the report.
struct Progress {
    report: Report,
    generation_started: Option<Instant>,
}

impl Worker<'_> {
    fn model(&self) -> &LlamaModel {
        self.engine.model()
    }

    /// Evaluates `request`'s prompt into the cache (see [`Job::Prepare`]); a failure is only logged, the
    /// request itself will meet it again.
    fn prepare(&mut self, request: &ChatRequest) {
        let started = Instant::now();
        let tokens = self.engine.tokenize(&prompt::render(&request.messages, &request.tools));
        match self.engine.prefill(&tokens, self.options.max_answer_tokens.max(self.options.max_tool_call_tokens)) {
            Ok(prefill) => tracing::debug!(
                prompt_tokens = tokens.len(),
                reused_tokens = prefill.reused,
                prefill_ms = started.elapsed().as_millis() as u64,
                "prompt prepared ahead of its request"
            ),
            Err(error) => tracing::debug!(%error, "could not prepare the prompt"),
        }
    }

    /// The probability that the user's turn ends after `request`'s last message (see [`Job::EndOfTurn`]).
    /// The evaluated prompt stays in the cache: the answer's prompt begins with it.
    fn end_of_turn(&mut self, request: &ChatRequest) -> Option<f32> {
        let started = Instant::now();
        let text = prompt::render_unfinished(&request.messages, &request.tools)?;
        let tokens = self.engine.tokenize(&text);
        match self.engine.prefill(&tokens, self.options.max_answer_tokens.max(self.options.max_tool_call_tokens)) {
            Ok(prefill) => {
                let probability = self.engine.probability_of(&self.turn_enders);
                tracing::debug!(
                    probability,
                    evaluated_tokens = prefill.evaluated,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "end of turn judged"
                );
                Some(probability)
            }
            Err(error) => {
                tracing::debug!(%error, "could not judge the end of the turn");
                None
            }
        }
    }

    fn serve(&mut self, request: &ChatRequest, events: mpsc::Sender<Result<ChatEvent, LlmError>>) {
        let mut output = Output::new(events);
        let mut progress = Progress {
            report: Report {
                outcome: Outcome::Failed,
                prompt_tokens: 0,
                reused_tokens: 0,
                prefill: Duration::ZERO,
                generated_tokens: 0,
                generation: Duration::ZERO,
                waited_for_speech: Duration::ZERO,
            },
            generation_started: None,
        };
        let result = if output.is_gone() { Ok(Outcome::Cancelled) } else { self.respond(request, &mut output, &mut progress) };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(%error, "the local language model failed");
                let _ = output.send(Err(LlmError::from(error)));
                Outcome::Failed
            }
        };
        let mut report = progress.report;
        report.outcome = outcome;
        report.generation = progress.generation_started.map(|started| started.elapsed()).unwrap_or_default();
        tracing::info!(
            outcome = ?report.outcome,
            prompt_tokens = report.prompt_tokens,
            reused_tokens = report.reused_tokens,
            prefill_ms = report.prefill.as_millis() as u64,
            generated_tokens = report.generated_tokens,
            generation_ms = report.generation.as_millis() as u64,
            waited_for_speech_ms = report.waited_for_speech.as_millis() as u64,
            "language model request done"
        );
        self.reports.push(report);
    }

    fn respond(&mut self, request: &ChatRequest, output: &mut Output, progress: &mut Progress) -> Result<Outcome, LocalLlmError> {
        let text = prompt::render(&request.messages, &request.tools);
        let tokens = self.engine.tokenize(&text);
        let started = Instant::now();
        let prefill = self.engine.prefill(&tokens, self.options.max_answer_tokens.max(self.options.max_tool_call_tokens))?;
        progress.report.prompt_tokens = tokens.len();
        progress.report.reused_tokens = prefill.reused;
        progress.report.prefill = started.elapsed();
        progress.generation_started = Some(Instant::now());

        if !request.tools.is_empty() && tool_rounds_so_far(&request.messages) < self.options.tool_rounds_per_question {
            let tool_intent = self.engine.probability_of(&self.structure_openers);
            let call_tool = tool_intent >= TOOL_INTENT_THRESHOLD;
            tracing::debug!(tool_intent, call_tool, "tool decision");
            if call_tool {
                match self.call_tool(&request.tools, output, progress)? {
                    Ok(Some(call)) => {
                        return Ok(match output.send(Ok(ChatEvent::ToolCall(call))) {
                            Ok(()) => Outcome::CalledTool,
                            Err(Gone) => Outcome::Cancelled,
                        });
                    }
                    // Back to the end of the prompt, with its logits, as if the call had never started.
                    Ok(None) => {
                        self.engine.prefill(&tokens, self.options.max_answer_tokens)?;
                    }
                    Err(Gone) => return Ok(Outcome::Cancelled),
                }
            } else if let Some(call) = &request.default_call {
                return Ok(match output.send(Ok(ChatEvent::ToolCall(call.clone()))) {
                    Ok(()) => Outcome::CalledTool,
                    Err(Gone) => Outcome::Cancelled,
                });
            }
        }
        Ok(match self.answer(output, progress)? {
            Ok(()) => Outcome::Answered,
            Err(Gone) => Outcome::Cancelled,
        })
    }

    /// A tool call under the grammar; `None` if it ran past its token budget (then the model answers instead).
    fn call_tool(
        &mut self,
        tools: &[ToolSpec],
        output: &Output,
        progress: &mut Progress,
    ) -> Result<Result<Option<ToolCall>, Gone>, LocalLlmError> {
        let grammar_text = grammar::tool_call_grammar(tools);
        let mut sampler = sampling::tool_call(self.model(), &grammar_text).map_err(|e| LocalLlmError::Grammar(e.to_string()))?;
        let close = tool_call::CLOSE.as_bytes();
        let mut text = Vec::new();
        while !text.ends_with(close) {
            if output.is_gone() {
                return Ok(Err(Gone));
            }
            if progress.report.generated_tokens >= self.options.max_tool_call_tokens {
                tracing::warn!(tokens = progress.report.generated_tokens, "the tool call ran too long; answering in words instead");
                return Ok(Ok(None));
            }
            let token = self.engine.sample(&mut sampler)?;
            progress.report.generated_tokens += 1;
            if self.engine.is_end_of_turn(token) {
                break;
            }
            // Markup as the grammar sees it: `<tool_call>` may be a token of its own.
            text.extend_from_slice(&self.engine.piece(token, true));
            self.engine.feed(token)?;
        }
        let (name, arguments) = tool_call::parse(&String::from_utf8_lossy(&text))?;
        Ok(Ok(Some(ToolCall { id: format!("call_{}", uuid::Uuid::new_v4().simple()), name, arguments })))
    }

    /// Free text after the prompt, until end of turn or the budget.
    fn answer(&mut self, output: &mut Output, progress: &mut Progress) -> Result<Result<(), Gone>, LocalLlmError> {
        let mut sampler = sampling::answer(self.model(), &self.unspeakable);
        let mut brevity = Brevity::new(self.options.max_answer_sentences);
        for _ in 0..self.options.max_answer_tokens {
            if output.is_gone() {
                return Ok(Err(Gone));
            }
            let token: LlamaToken = self.engine.sample(&mut sampler)?;
            progress.report.generated_tokens += 1;
            if self.engine.is_end_of_turn(token) {
                break;
            }
            let (kept, complete) = brevity.admit(&output.decode_text(&self.engine.piece(token, false)));
            // Sent before the next evaluation: the listener gets each token as soon as it exists.
            if let Err(gone) = output.send_text(kept) {
                return Ok(Err(gone));
            }
            if complete {
                break;
            }
            // A sentence of this answer may be being synthesized: it goes first (see `crate::cpu`).
            progress.report.waited_for_speech += self.options.cores.wait_for_speech(MAX_WAIT);
            self.engine.feed(token)?;
        }
        Ok(output.finish_text())
    }
}

/// Tool rounds since the user's last message.
fn tool_rounds_so_far(messages: &[ChatMessage]) -> usize {
    let since_question = messages.iter().rposition(|m| matches!(m, ChatMessage::User(_))).map_or(messages, |last| &messages[last..]);
    since_question.iter().filter(|m| matches!(m, ChatMessage::Assistant { tool_calls, .. } if !tool_calls.is_empty())).count()
}
