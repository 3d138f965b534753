//! Speech inside the server: the Piper voice on ONNX Runtime, or espeak-ng's own voice when Piper is not
//! installed, fails to load, or is not wanted.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use super::espeak::{DEFAULT_VOICE, Espeak};
use super::piper::PiperVoice;
use super::{Pcm, SpeechAudio, SpeechRate, TextToSpeech, TtsError, VoiceEngine};
use crate::backend::BackendInfo;
use crate::cpu::SpeechFirst;
use crate::text::sentences_to_speak;

/// Silence between sentences: Piper ends a sentence abruptly, and a short breath sounds natural.
const SENTENCE_PAUSE_MS: u32 = 250;

pub struct LocalTts {
    voice: Arc<Voice>,
    info: BackendInfo,
    /// Shared with the embedded language model, which pauses while this voice speaks.
    cores: Arc<SpeechFirst>,
}

enum Voice {
    Piper(PiperVoice),
    Espeak(&'static Espeak),
}

impl LocalTts {
    /// The Piper voice in `voice_dir` on the ONNX Runtime library `onnx_runtime`, or espeak-ng's voice if
    /// `engine` asks for it or Piper cannot load (logged as a warning). Fails only if espeak-ng cannot start.
    pub fn load(voice_dir: &Path, onnx_runtime: &Path, engine: VoiceEngine) -> Result<Self, TtsError> {
        Self::load_sharing_cores(voice_dir, onnx_runtime, engine, Arc::new(SpeechFirst::new()))
    }

    /// [`LocalTts::load`], with the language model of the same server waiting while this voice speaks.
    pub fn load_sharing_cores(
        voice_dir: &Path,
        onnx_runtime: &Path,
        engine: VoiceEngine,
        cores: Arc<SpeechFirst>,
    ) -> Result<Self, TtsError> {
        let started = Instant::now();
        let voice = match engine {
            VoiceEngine::Espeak => Voice::Espeak(Espeak::get()?),
            VoiceEngine::Piper => match load_piper(voice_dir, onnx_runtime) {
                Ok(piper) => Voice::Piper(piper),
                Err(error) => {
                    tracing::warn!(%error, "the Piper voice could not load; speaking with espeak-ng's voice instead");
                    Voice::Espeak(Espeak::get()?)
                }
            },
        };
        let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (model, location) = match &voice {
            Voice::Piper(_) => {
                let file = super::piper::model_file(voice_dir).unwrap_or_else(|_| voice_dir.join("voice.onnx"));
                (format!("piper {}", voice_name(voice_dir, &file)), file.display().to_string())
            }
            Voice::Espeak(_) => (format!("espeak-ng {DEFAULT_VOICE}"), "libespeak-ng".to_owned()),
        };
        tracing::info!(%model, %location, load_ms, "text-to-speech voice loaded");
        Ok(Self { voice: Arc::new(voice), info: BackendInfo { kind: "local", model, location, load_ms: Some(load_ms) }, cores })
    }

    /// Which voice engine runs: `piper` or `espeak` (the fallback).
    pub fn engine(&self) -> VoiceEngine {
        match *self.voice {
            Voice::Piper(_) => VoiceEngine::Piper,
            Voice::Espeak(_) => VoiceEngine::Espeak,
        }
    }

    /// The phonemes Piper reads for `text`, one string per sentence; `None` with the espeak-ng voice, which
    /// reads text itself.
    pub fn phonemes(&self, text: &str) -> Option<Result<Vec<String>, TtsError>> {
        match &*self.voice {
            Voice::Piper(piper) => Some(sentences_to_speak(text).iter().map(|sentence| piper.phonemes(sentence)).collect()),
            Voice::Espeak(_) => None,
        }
    }

    /// One sentence as samples, for streaming speech sentence by sentence.
    pub async fn synthesize_sentence(&self, sentence: &str) -> Result<Pcm, TtsError> {
        let voice = Arc::clone(&self.voice);
        let cores = Arc::clone(&self.cores);
        let sentence = sentence.to_owned();
        // Inference takes tens to hundreds of milliseconds of CPU: keep it off the async workers.
        tokio::task::spawn_blocking(move || voice.synthesize(&sentence, SpeechRate::NORMAL, &cores))
            .await
            .map_err(|e| TtsError::Inference(format!("the speech task stopped: {e}")))?
    }

    /// All of `text`, sentence by sentence with short pauses between, as one clip.
    pub async fn synthesize_pcm(&self, text: &str) -> Result<Pcm, TtsError> {
        self.synthesize_pcm_at(text, SpeechRate::NORMAL).await
    }

    /// [`LocalTts::synthesize_pcm`] at `rate` (the espeak-ng fallback keeps its own pace).
    pub async fn synthesize_pcm_at(&self, text: &str, rate: SpeechRate) -> Result<Pcm, TtsError> {
        let sentences = sentences_to_speak(text);
        if sentences.is_empty() {
            return Err(TtsError::NothingToSay);
        }
        let voice = Arc::clone(&self.voice);
        let cores = Arc::clone(&self.cores);
        tokio::task::spawn_blocking(move || {
            let mut clip: Option<Pcm> = None;
            for sentence in &sentences {
                let pcm = voice.synthesize(sentence, rate, &cores)?;
                match &mut clip {
                    None => clip = Some(pcm),
                    Some(clip) => {
                        clip.pause(SENTENCE_PAUSE_MS);
                        clip.samples.extend_from_slice(&pcm.samples);
                    }
                }
            }
            clip.ok_or(TtsError::NothingToSay)
        })
        .await
        .map_err(|e| TtsError::Inference(format!("the speech task stopped: {e}")))?
    }
}

#[async_trait]
impl TextToSpeech for LocalTts {
    async fn synthesize(&self, text: &str) -> Result<SpeechAudio, TtsError> {
        self.synthesize_at(text, SpeechRate::NORMAL).await
    }

    async fn synthesize_at(&self, text: &str, rate: SpeechRate) -> Result<SpeechAudio, TtsError> {
        let started = Instant::now();
        let pcm = self.synthesize_pcm_at(text, rate).await?;
        let wav = pcm.to_wav()?;
        tracing::debug!(audio_secs = pcm.duration_secs(), compute_ms = started.elapsed().as_millis() as u64, "speech synthesised");
        Ok(SpeechAudio { bytes: Bytes::from(wav), mime_type: "audio/wav".to_owned() })
    }

    fn info(&self) -> BackendInfo {
        self.info.clone()
    }
}

impl Voice {
    fn synthesize(&self, sentence: &str, rate: SpeechRate, cores: &SpeechFirst) -> Result<Pcm, TtsError> {
        // The language model pauses meanwhile: someone is waiting to hear this (see `crate::cpu`).
        let _speaking = cores.speaking();
        match self {
            Voice::Piper(piper) => piper.synthesize(sentence, rate),
            Voice::Espeak(espeak) => Ok(Pcm::from_i16(&espeak.synthesize(sentence, DEFAULT_VOICE)?, espeak.sample_rate())),
        }
    }
}

fn load_piper(voice_dir: &Path, onnx_runtime: &Path) -> Result<PiperVoice, TtsError> {
    let environment = crate::onnx::runtime(onnx_runtime)?;
    PiperVoice::load(voice_dir, environment)
}

/// A downloaded voice's file is named after it (`en_US-lessac-medium.onnx`); the installed one's folder is
/// (`piper-en_US-joe-medium/voice.onnx`).
fn voice_name(voice_dir: &Path, file: &Path) -> String {
    let stem = file.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    if stem != "voice" {
        return stem;
    }
    let name = voice_dir.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_prefix("piper-").map(str::to_owned).unwrap_or(name)
}
