//! Whisper inside the server process (candle), from the CTranslate2 weights `parlance models` installs;
//! they are converted once, on first load.

mod ct2;
mod decoder;
mod decoding;
mod energy;
mod mel;
mod model;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;

use super::{SpeechToText, SttError};
use crate::audio::{AudioUpload, decode_speech};
use crate::backend::BackendInfo;

/// Longer recordings are refused before any model time is spent: a spoken question takes seconds, and a
/// 2-minute clip already takes several seconds to transcribe on two cores.
pub const MAX_RECORDING_SECS: u64 = 120;

/// Hypotheses Whisper's beam search keeps for doubtful transcripts: none by default (greedy decoding). The
/// beam heard names and trade words better on the knowledge evaluation, but it also finished a question
/// broken off in a pause ("So my question is about the" became "... about this."), which the end-of-turn
/// judgement then took for a finished one (README: "The knowledge evaluation").
pub const DEFAULT_BEAM_SIZE: usize = 1;

/// Whisper tiny.en (or any Whisper in the same form) on the CPU.
pub struct LocalStt {
    /// Candle's Whisper keeps per-call state (the attention caches): one transcription at a time.
    whisper: Arc<Mutex<model::LoadedWhisper>>,
    info: BackendInfo,
}

impl LocalStt {
    /// Loads `model.bin` (converting it the first time), `tokenizer.json` and `config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, SttError> {
        let started = Instant::now();
        let whisper = model::load(dir).map_err(|e| SttError::Load { path: e.path, reason: e.reason })?;
        let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let model = dir.file_name().and_then(|name| name.to_str()).unwrap_or("whisper").to_owned();
        tracing::info!(dir = %dir.display(), load_ms, "speech-to-text model loaded");
        let info = BackendInfo { kind: "local", model, location: dir.display().to_string(), load_ms: Some(load_ms) };
        Ok(Self { whisper: Arc::new(Mutex::new(whisper)), info })
    }

    /// Keeps `beam_size` hypotheses while decoding (1: greedy, the fastest).
    pub fn with_beam_size(self, beam_size: usize) -> Self {
        self.whisper.lock().unwrap_or_else(PoisonError::into_inner).beam_size = beam_size.max(1);
        self
    }

    /// The words in 16 kHz mono samples; empty when there are none. For callers that already decoded audio.
    pub async fn transcribe_samples(&self, samples: Vec<f32>) -> Result<String, SttError> {
        let whisper = Arc::clone(&self.whisper);
        tokio::task::spawn_blocking(move || run(&whisper, &samples))
            .await
            .map_err(|e| SttError::Inference(format!("the transcription task stopped: {e}")))?
    }
}

fn run(whisper: &Mutex<model::LoadedWhisper>, samples: &[f32]) -> Result<String, SttError> {
    let started = Instant::now();
    // A panic mid-transcription leaves nothing half-done that the next call relies on: it resets the caches.
    let mut whisper = whisper.lock().unwrap_or_else(PoisonError::into_inner);
    let text = decoding::transcribe(&mut whisper, samples).map_err(|e| SttError::Inference(e.to_string()))?;
    tracing::debug!(
        audio_ms = samples.len() as u64 * 1000 / u64::from(crate::audio::SPEECH_SAMPLE_RATE),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        words = text.split_whitespace().count(),
        "transcribed locally"
    );
    Ok(text)
}

#[async_trait]
impl SpeechToText for LocalStt {
    async fn transcribe(&self, audio: &AudioUpload) -> Result<String, SttError> {
        let upload = audio.clone();
        let whisper = Arc::clone(&self.whisper);
        // Decoding and inference are CPU-bound: both stay off the async workers. Decoding happens before the
        // lock, so one request's decoding overlaps another's inference.
        tokio::task::spawn_blocking(move || {
            let samples = decode_speech(&upload, MAX_RECORDING_SECS)?;
            run(&whisper, &samples)
        })
        .await
        .map_err(|e| SttError::Inference(format!("the transcription task stopped: {e}")))?
    }

    fn expect_words(&self, words: &[String]) {
        let mut whisper = self.whisper.lock().unwrap_or_else(PoisonError::into_inner);
        let text = format!(" {}.", words.join(", "));
        whisper.expected = match whisper.tokenizer.encode(text, false) {
            // Whisper reads at most 223 tokens before the transcript; the most used words come first.
            Ok(encoding) => encoding.get_ids().iter().copied().take(MAX_EXPECTED_TOKENS).collect(),
            Err(error) => {
                tracing::warn!(%error, "could not tokenize the notes' vocabulary; transcribing without it");
                Vec::new()
            }
        };
        tracing::debug!(words = words.len(), tokens = whisper.expected.len(), "speech-to-text expects the notes' words");
    }

    fn info(&self) -> BackendInfo {
        self.info.clone()
    }
}

/// Tokens of expected words read before each window: each costs decoder time, and a long prompt makes
/// Whisper more likely to repeat it instead of hearing.
const MAX_EXPECTED_TOKENS: usize = 96;
