//! One llama.cpp context over a loaded model, with a memory of which tokens its KV cache holds. A new
//! prompt reuses the longest prefix it shares with what is cached (system prompt, tool descriptions,
//! history) and evaluates only the rest, so a turn pays for its new tokens only.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

/// Tokens evaluated per llama.cpp call while reading a prompt.
const BATCH_TOKENS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("llama.cpp could not start: {0}")]
    Backend(String),
    #[error("the model file could not be loaded: {0}")]
    Model(String),
    #[error("llama.cpp could not create a context of {tokens} tokens: {reason}")]
    Context { tokens: u32, reason: String },
    #[error("the conversation is too long for the model: {needed} tokens, at most {limit}")]
    TooLong { needed: usize, limit: usize },
    #[error("llama.cpp failed to evaluate tokens: {0}")]
    Decode(String),
    #[error("llama.cpp failed to pick a token: {0}")]
    Sample(String),
}

/// How to set up the context.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    pub threads: usize,
    pub context_tokens: u32,
}

/// What reading a prompt cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefill {
    /// Tokens whose keys and values were already cached.
    pub reused: usize,
    /// Tokens evaluated now.
    pub evaluated: usize,
}

/// llama.cpp's process-wide state: initialised once, whatever number of models a process loads.
fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|reason| EngineError::Backend(reason.clone()))
}

/// Loads a GGUF file, logging progress: memory-mapped, so this is quick unless the disk is slow.
pub fn load_model(path: &Path) -> Result<LlamaModel, EngineError> {
    let backend = backend()?;
    let shown = path.display().to_string();
    let mut next_report = 0.0_f32;
    let params = LlamaModelParams::default().with_progress_callback(move |progress| {
        if progress >= next_report {
            tracing::info!(file = %shown, percent = (progress * 100.0).round() as u32, "loading the language model");
            next_report += 0.25;
        }
        true
    });
    LlamaModel::load_from_file(backend, path, &params)
        .inspect(|_| crate::exit::skip_native_teardown())
        .map_err(|e| EngineError::Model(e.to_string()))
}

pub struct Engine<'model> {
    model: &'model LlamaModel,
    context: LlamaContext<'model>,
    batch: LlamaBatch<'static>,
    /// The tokens whose keys and values the context holds, at positions 0, 1, ...
    cached: Vec<LlamaToken>,
    /// Where, in the last evaluated batch, the logits for the next token are.
    logits_index: i32,
}

impl<'model> Engine<'model> {
    pub fn new(model: &'model LlamaModel, options: EngineOptions) -> Result<Self, EngineError> {
        let threads = i32::try_from(options.threads.max(1)).unwrap_or(i32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(options.context_tokens))
            .with_n_batch(BATCH_TOKENS as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let context = model
            .new_context(backend()?, params)
            .map_err(|e| EngineError::Context { tokens: options.context_tokens, reason: e.to_string() })?;
        crate::exit::skip_native_teardown();
        Ok(Self { model, context, batch: LlamaBatch::new(BATCH_TOKENS, 1), cached: Vec::new(), logits_index: 0 })
    }

    pub fn model(&self) -> &'model LlamaModel {
        self.model
    }

    /// The most tokens the context holds.
    pub fn capacity(&self) -> usize {
        self.context.n_ctx() as usize
    }

    /// How many more tokens fit after what is cached.
    pub fn room(&self) -> usize {
        self.capacity().saturating_sub(self.cached.len())
    }

    /// Prompt text (with ChatML's special tokens spelled out) as tokens.
    pub fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        vocab.tokenize(text.as_bytes(), vocab.should_add_bos(), true)
    }

    pub fn is_end_of_turn(&self, token: LlamaToken) -> bool {
        self.model.vocab().is_eog(token)
    }

    /// A token's text, as bytes (a character can be split over two tokens); special tokens such as
    /// `<|im_end|>` appear only with `with_special`.
    pub fn piece(&self, token: LlamaToken, with_special: bool) -> Vec<u8> {
        self.model.vocab().token_to_piece(token, with_special, None)
    }

    /// Makes the context hold exactly `prompt`, evaluating only what differs from what it holds, and leaves
    /// the logits for the token after it ready for [`Self::sample`].
    pub fn prefill(&mut self, prompt: &[LlamaToken], room_after: usize) -> Result<Prefill, EngineError> {
        let needed = prompt.len() + room_after;
        if prompt.is_empty() || needed > self.capacity() {
            return Err(EngineError::TooLong { needed, limit: self.capacity() });
        }
        let shared = self.cached.iter().zip(prompt).take_while(|(cached, new)| cached == new).count();
        // At least the last token is evaluated again: its logits are what the next token is sampled from.
        let reused = self.rewind(shared.min(prompt.len() - 1))?;
        for chunk in prompt[reused..].chunks(BATCH_TOKENS) {
            self.evaluate(chunk)?;
        }
        Ok(Prefill { reused, evaluated: prompt.len() - reused })
    }

    /// Picks the next token with `sampler` (which then also records it).
    pub fn sample(&mut self, sampler: &mut LlamaSampler) -> Result<LlamaToken, EngineError> {
        let mut candidates = self.context.token_data_array_ith(self.logits_index);
        candidates.apply_sampler(sampler);
        let token = candidates.selected_token().ok_or_else(|| EngineError::Sample("no token was selected".to_owned()))?;
        sampler.try_accept(token).map_err(|e| EngineError::Sample(e.to_string()))?;
        Ok(token)
    }

    /// The probability, under the current logits, that the next token is one of those marked in `which`
    /// (indexed by token id).
    pub fn probability_of(&self, which: &[bool]) -> f32 {
        let logits = self.context.get_logits_ith(self.logits_index);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let (mut marked, mut total) = (0.0_f64, 0.0_f64);
        for (index, logit) in logits.iter().enumerate() {
            let weight = f64::from((logit - max).exp());
            total += weight;
            if which.get(index).copied().unwrap_or(false) {
                marked += weight;
            }
        }
        if total > 0.0 { (marked / total) as f32 } else { 0.0 }
    }

    /// Evaluates a generated token, so the next one can be sampled.
    pub fn feed(&mut self, token: LlamaToken) -> Result<(), EngineError> {
        if self.room() == 0 {
            return Err(EngineError::TooLong { needed: self.capacity() + 1, limit: self.capacity() });
        }
        self.evaluate(&[token])
    }

    /// Forgets everything after the first `keep` cached tokens; returns how many are still cached (fewer
    /// if llama.cpp could not cut the cache there and dropped it all).
    pub fn rewind(&mut self, keep: usize) -> Result<usize, EngineError> {
        if keep >= self.cached.len() {
            return Ok(self.cached.len());
        }
        let from = u32::try_from(keep).map_err(|e| EngineError::Decode(e.to_string()))?;
        let cut = self.context.clear_kv_cache_seq(Some(0), Some(from), None).map_err(|e| EngineError::Decode(e.to_string()))?;
        if cut {
            self.cached.truncate(keep);
        } else {
            self.context.clear_kv_cache();
            self.cached.clear();
        }
        Ok(self.cached.len())
    }

    fn evaluate(&mut self, tokens: &[LlamaToken]) -> Result<(), EngineError> {
        self.batch.clear();
        let start = self.cached.len();
        for (offset, &token) in tokens.iter().enumerate() {
            let position = i32::try_from(start + offset).map_err(|e| EngineError::Decode(e.to_string()))?;
            let is_last = offset + 1 == tokens.len();
            self.batch.add(token, position, &[0], is_last).map_err(|e| EngineError::Decode(e.to_string()))?;
        }
        if let Err(error) = self.context.decode(&mut self.batch) {
            // What the cache holds after a failed call is unknown: start from nothing next time.
            self.context.clear_kv_cache();
            self.cached.clear();
            return Err(EngineError::Decode(error.to_string()));
        }
        self.cached.extend_from_slice(tokens);
        self.logits_index = i32::try_from(tokens.len() - 1).map_err(|e| EngineError::Decode(e.to_string()))?;
        Ok(())
    }
}
